// Package testserver holds what the packages that run a real server for
// tests (slapdtest, davtest, rabbittest, jupytertest, pgtest, haproxytest)
// share: the rule for a server that is not installed, a free loopback
// port, a buffer for the server's output, and directories the server's
// unprivileged account can reach. It starts nothing itself.
package testserver

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Missing ends a test whose server, what, is not installed: it fails
// under SLUIS_REQUIRE_INTEGRATION=1 (the README's test command, where a
// missing dependency must not pass unseen), and skips otherwise, naming
// the Debian package pkg that provides it.
func Missing(t testing.TB, what, pkg string) {
	t.Helper()
	if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%s not found, and SLUIS_REQUIRE_INTEGRATION=1 (install Debian's %s package)", what, pkg)
	}
	t.Skipf("%s not found; install Debian's %s package or run the README's test command", what, pkg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, or
// 0. Another process may take it before the server binds it; servers that
// can, retry.
func FreePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Output collects a server's output from its two pipes; safe for
// concurrent use.
type Output struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Output) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Output) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reachable lets others traverse dir and its parents up to the system's
// temporary directory (t.TempDir makes them 0700), so that a server run
// under an unprivileged account reaches its files.
func Reachable(dir string) error {
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := dir; strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
			return err
		}
	}
	return nil
}
