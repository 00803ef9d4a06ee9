//go:build !unix

package connlimit

// RaiseFileLimit is not available here: it returns 0 (the limit is
// unknown) and DefaultLimits picks fixed defaults.
func RaiseFileLimit() (uint64, error) { return 0, nil }
