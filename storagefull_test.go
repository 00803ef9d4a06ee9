package sluis

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestStorageFull(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{nil, false},
		{fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{errors.New("database or disk is full (13)"), true},
		// pgx's text of a PostgreSQL error
		{errors.New(`ERROR: could not extend file "base/16384/16390": No space left on device (SQLSTATE 53100)`), true},
		{errors.New("ERROR: duplicate key value violates unique constraint (SQLSTATE 23505)"), false},
	} {
		if got := StorageFull(c.err); got != c.full {
			t.Errorf("StorageFull(%v) = %v", c.err, got)
		}
	}
}
