// Package datadir knows what a sluis data directory holds, and keeps a
// gateway from starting on one that has lost part of it. A directory that
// holds none of its files is new, and everything is created; one that holds
// all of them is used; one that holds some but not all has lost data (a
// deleted database, a missing key), and starting anyway would start afresh
// without a word: no users, no blocks, codes that fail, an audit trail that
// looks tampered with. Then sluis refuses and says what is missing and what
// that means, until an operator starts anew deliberately (`sluis init
// --new`).
//
// It also holds the lock that lets one `sluis serve` at a time use a data
// directory.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// File names inside the data directory. keys defines the names of the key
// files; they are repeated here (and checked by a test) so that this
// package needs nothing of keys.
const (
	Database   = "sluis.db"
	SealKey    = "seal.key"
	SigningKey = "assertion-key.pem"
	AuditKey   = "audit-key.pem"
	CA         = "ca.pem"
	CAKey      = "ca-key.pem"
	LockFile   = "serve.lock"
)

// File is one file a data directory holds, and what is lost without it.
type File struct {
	Name    string
	Meaning string
}

// Layout returns the files of a data directory: the local CA too when the
// gateway makes its own certificates.
func Layout(selfSigned bool) []File {
	files := []File{
		{Database, "the database: users and their second factors, sessions, blocks, the emergency level and the audit trail. Without it the gateway would start with none of them"},
		{SealKey, "the key that seals the users' TOTP secrets: without it no enrolled one-time code can be checked, and every user would have to enrol again"},
		{SigningKey, "the key that signs the identity assertions apps receive: apps that verify them would have to learn a new key"},
		{AuditKey, "the key that signs the audit trail's checkpoints: with a new one, `sluis audit verify` can no longer verify the trail recorded so far"},
	}
	if selfSigned {
		files = append(files,
			File{CA, "the local CA certificate that clients trust: with a new CA every client would have to trust it again"},
			File{CAKey, "the local CA's key: without it no certificate can be issued under the CA that clients trust"})
	}
	return files
}

// State is what a data directory holds.
type State int

const (
	// New: the directory does not exist, or holds none of the files.
	New State = iota
	// Complete: it holds every file.
	Complete
	// Incomplete: it holds some files but not all.
	Incomplete
)

// Inspect reports what dir holds of files. An empty file counts as
// missing (a truncated database is as good as none). It returns the
// missing files, and an error when dir cannot be read (other than not
// existing).
func Inspect(dir string, files []File) (State, []File, error) {
	var missing []File
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			missing = append(missing, f)
		case err != nil:
			return 0, nil, err
		case !fi.Mode().IsRegular():
			return 0, nil, fmt.Errorf("%s is not a file", filepath.Join(dir, f.Name))
		case fi.Size() == 0:
			missing = append(missing, f)
		}
	}
	switch len(missing) {
	case 0:
		return Complete, nil, nil
	case len(files):
		return New, missing, nil
	}
	return Incomplete, missing, nil
}

// IncompleteError says that a data directory has lost some of its files.
type IncompleteError struct {
	Dir     string
	Missing []File
}

func (e *IncompleteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir %s is incomplete, so sluis will not start afresh on it without a word. Missing:", e.Dir)
	for _, f := range e.Missing {
		fmt.Fprintf(&b, "\n  - %s: %s", f.Name, f.Meaning)
	}
	b.WriteString("\nRestore the missing files from a backup. To start anew deliberately, creating only what is missing (and losing what is said above), run `sluis init --new`.")
	return b.String()
}

// Check returns nil when dir is new or complete, and an *IncompleteError
// naming what is missing otherwise.
func Check(dir string, files []File) (State, error) {
	st, missing, err := Inspect(dir, files)
	if err != nil {
		return st, fmt.Errorf("data_dir: %w", err)
	}
	if st == Incomplete {
		return st, &IncompleteError{Dir: dir, Missing: missing}
	}
	return st, nil
}

// Writable reports whether files can be created in dir; when not, the
// error says why in an operator's words (a read-only filesystem, no
// permission).
func Writable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		switch {
		case errors.Is(err, syscall.EROFS):
			return fmt.Errorf("data_dir %s is on a read-only filesystem", dir)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("data_dir %s is read-only for this user (uid %d)", dir, os.Getuid())
		case errors.Is(err, syscall.ENOSPC):
			return nil // full, not read-only: that has its own answers
		}
		return fmt.Errorf("data_dir %s cannot be written: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
