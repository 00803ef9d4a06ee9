package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The reserve is a file of ReserveSize bytes that the gateway keeps in the
// data directory. When the disk fills up (a flood, or logs, or anything
// else on the same filesystem), the operator's commands release it before
// they change anything, so emergency levels, blocks, app switches and
// revocations still commit. Logins do not get it: they fail closed (503)
// when their events cannot be stored.
const (
	ReserveFile = "reserve"
	ReserveSize = 2 << 20
	// ReserveFloor is the free space below which a command releases the
	// reserve first.
	ReserveFloor = 1 << 20
)

// KeepReserve makes sure the reserve exists, writing it when it does not;
// an error (no space for it) leaves none.
func KeepReserve(dir string) error {
	path := filepath.Join(dir, ReserveFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() == ReserveSize {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	// Written, not only sized: a sparse file would reserve nothing.
	buf := make([]byte, 64<<10)
	for n := 0; n < ReserveSize; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("keeping a reserve of %d MiB in %s: %w", ReserveSize>>20, dir, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// ReleaseIfLow deletes the reserve when dir's filesystem has less than
// ReserveFloor free, and reports whether it did.
func ReleaseIfLow(dir string) (bool, error) {
	free, err := Free(dir)
	if err != nil || free >= ReserveFloor {
		return false, err
	}
	err = os.Remove(filepath.Join(dir, ReserveFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
