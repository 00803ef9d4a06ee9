//go:build unix

package connlimit

import "syscall"

// RaiseFileLimit raises the soft limit on open files to the hard limit
// where the system allows it (Go's runtime already tries this at start on
// most systems; doing it here also tells us the number), and returns the
// soft limit in force; 0 if it cannot be read.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			r = want
		} else if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, err
		}
	}
	return uint64(r.Cur), nil
}
