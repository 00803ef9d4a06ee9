//go:build !unix

package datadir

// Lock is a no-op where flock(2) is not available: run one `sluis serve`
// per data directory.
func Lock(dir string) (release func(), err error) { return func() {}, nil }
