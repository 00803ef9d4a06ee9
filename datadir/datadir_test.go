package datadir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/keys"
)

// The names here are the names keys writes.
func TestNamesAreKeys(t *testing.T) {
	for mine, theirs := range map[string]string{SealKey: keys.SealKeyFile, SigningKey: keys.SigningKeyFile, AuditKey: keys.AuditKeyFile, CA: keys.CAFile, CAKey: keys.CAKeyFile} {
		if mine != theirs {
			t.Errorf("%s here, %s in keys", mine, theirs)
		}
	}
}

func TestInspect(t *testing.T) {
	files := Layout(true)
	write := func(dir string, names ...string) {
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := []string{Database, SealKey, SigningKey, AuditKey, CA, CAKey}
	tests := []struct {
		name    string
		setup   func(dir string)
		want    State
		missing string
	}{
		{"no directory", func(dir string) { os.Remove(dir) }, New, ""},
		{"empty directory", func(string) {}, New, ""},
		{"everything", func(dir string) { write(dir, all...) }, Complete, ""},
		{"database deleted", func(dir string) { write(dir, all[1:]...) }, Incomplete, Database},
		{"database emptied", func(dir string) { write(dir, all[1:]...); os.WriteFile(filepath.Join(dir, Database), nil, 0o600) }, Incomplete, Database},
		{"seal key deleted", func(dir string) { write(dir, Database, SigningKey, AuditKey, CA, CAKey) }, Incomplete, SealKey},
		{"audit key deleted", func(dir string) { write(dir, Database, SealKey, SigningKey, CA, CAKey) }, Incomplete, AuditKey},
		{"only the database", func(dir string) { write(dir, Database) }, Incomplete, SealKey},
		{"only empty files", func(dir string) {
			for _, n := range all {
				os.WriteFile(filepath.Join(dir, n), nil, 0o600)
			}
		}, New, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			os.Mkdir(dir, 0o700)
			tt.setup(dir)
			st, err := Check(dir, files)
			if st != tt.want {
				t.Fatalf("state %v, want %v (%v)", st, tt.want, err)
			}
			if tt.want == Incomplete {
				ie, ok := err.(*IncompleteError)
				if !ok || !strings.Contains(err.Error(), tt.missing+": ") || !strings.Contains(err.Error(), "sluis init --new") {
					t.Fatalf("error %v does not name %s", err, tt.missing)
				}
				for _, f := range ie.Missing {
					if f.Meaning == "" {
						t.Errorf("%s: no meaning", f.Name)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
	// Without self-signed TLS the CA is not part of the directory.
	dir := t.TempDir()
	write(dir, Database, SealKey, SigningKey, AuditKey)
	if st, err := Check(dir, Layout(false)); st != Complete || err != nil {
		t.Fatalf("without the CA: %v %v", st, err)
	}
}

func TestLockIsOnePerDirectory(t *testing.T) {
	dir := t.TempDir()
	release, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); err == nil || !strings.Contains(err.Error(), "in use by process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("a second lock: %v", err)
	}
	release()
	release2, err := Lock(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release2()
}
