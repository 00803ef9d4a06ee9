package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The server runs as an unprivileged account, on loopback only, takes
// connections with its password only, and is gone after Stop.
func TestServer(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	u := s.NewDatabase(t)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	var listen string
	var superuser bool
	if err := conn.QueryRow(ctx, `SELECT current_setting('listen_addresses'), rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&listen, &superuser); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if listen != "127.0.0.1" || !superuser {
		t.Fatalf("listen_addresses %q, superuser %v", listen, superuser)
	}
	if _, err := pgx.Connect(ctx, strings.Replace(u, s.Password, "wrong", 1)); err == nil {
		t.Fatal("a wrong password was taken")
	}
	pidData, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.SplitN(string(pidData), "\n", 2)[0]
	if os.Geteuid() == 0 {
		out, err := exec.Command("ps", "-o", "user=", "-p", pid).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "postgres" {
			t.Fatalf("the server runs as %q, not postgres", got)
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(pid); n > 0 {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Fatalf("the postmaster (pid %s) still runs after Stop", pid)
		}
	}
}

// Tests that share a server get databases of their own on it.
func TestShared(t *testing.T) {
	a, b := Shared(t), Shared(t)
	if a != b {
		t.Fatal("two shared servers")
	}
	if u1, u2 := a.NewDatabase(t), a.NewDatabase(t); u1 == u2 {
		t.Fatal("one database for two tests")
	}
	pid := a.cmd.Process.Pid
	if err := StopShared(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Fatalf("the shared server (pid %d) still runs after StopShared", pid)
	}
}
