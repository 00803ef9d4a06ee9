//go:build !unix

package datadir

import "math"

// Free reports unlimited space where statfs(2) is not available.
func Free(dir string) (uint64, error) { return math.MaxUint64, nil }
