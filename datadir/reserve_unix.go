//go:build unix

package datadir

import (
	"syscall"
)

// Free returns the bytes free to an unprivileged user on dir's
// filesystem.
func Free(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
