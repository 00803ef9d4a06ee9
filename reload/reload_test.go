package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A request reaches the gateway's function and its result comes back:
// "ok", or every problem as it was (bounded in number and length, one a
// line); with nothing listening, Ask says no gateway runs.
func TestAskServe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("abstract Unix sockets are Linux's")
	}
	many := make([]string, MaxProblems+5)
	for i := range many {
		many[i] = fmt.Sprintf("s.yaml:%d: apps[%d].bogus: unknown key", i+1, i)
	}
	tests := []struct {
		name string
		res  Result
		want Result
	}{
		{"ok", Result{OK: true}, Result{OK: true}},
		{"rejected", Result{Problems: []string{"s.yaml:1: listen: listen cannot change while running (restart sluis serve)", "s.yaml:9: apps[0].bogus: unknown key"}},
			Result{Problems: []string{"s.yaml:1: listen: listen cannot change while running (restart sluis serve)", "s.yaml:9: apps[0].bogus: unknown key"}}},
		{"a problem with a newline stays one line", Result{Problems: []string{"s.yaml:1: a\nb"}}, Result{Problems: []string{"s.yaml:1: a b"}}},
		{"a long problem is cut", Result{Problems: []string{strings.Repeat("x", MaxLine+100)}}, Result{Problems: []string{strings.Repeat("x", MaxLine)}}},
		{"many problems", Result{Problems: many}, Result{Problems: append(slices.Clone(many[:MaxProblems]), "and 5 more problems (see the gateway's log)")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ask(t.Context(), dir); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("without a gateway: %v", err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			calls := 0
			wait, err := Serve(ctx, dir, func(context.Context) Result { calls++; return tt.res }, quiet())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Ask(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.OK != tt.want.OK || !slices.Equal(got.Problems, tt.want.Problems) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			// Anything but the one request is not acted on.
			c, err := net.Dial("unix", SocketName(dir))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "reload now please\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if b, _ := io.ReadAll(c); len(b) != 0 {
				t.Errorf("an unknown request was answered %q", b)
			}
			c.Close()
			cancel()
			wait()
			if calls != 1 {
				t.Errorf("the reload ran %d times, want 1", calls)
			}
			if _, err := Ask(t.Context(), dir); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("after the gateway stopped: %v", err)
			}
		})
	}
}

// The kernel's word for who is at the other end: this process's user on
// both ends here.
func TestPeerUID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_PEERCRED is Linux's")
	}
	ln, err := net.Listen("unix", SocketName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			if uid, err := peerUID(c); err != nil || uid != os.Getuid() {
				t.Errorf("the server sees uid %d, %v; want %d", uid, err, os.Getuid())
			}
			io.ReadAll(c)
		}
	}()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := peerUID(c); err != nil || uid != os.Getuid() {
		t.Errorf("the client sees uid %d, %v; want %d", uid, err, os.Getuid())
	}
	c.Close()
	if uid := ownerUID(t.TempDir()); uid != os.Getuid() {
		t.Errorf("owner of a new directory: %d, want %d", uid, os.Getuid())
	}
}

// Another local user gets nothing: the gateway closes the connection
// without reloading or answering. (Run as root, which can play another
// user: a python3 of Debian's connects as nobody.)
func TestServeRefusesOtherUsers(t *testing.T) {
	if runtime.GOOS != "linux" || os.Getuid() != 0 {
		t.Skip("needs root on Linux to connect as another user")
	}
	// Debian's, which nobody may run (not one under root's home). The
	// connection is closed, or reset (the request was left unread).
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("/usr/bin/python3 not found, and SLUIS_REQUIRE_INTEGRATION=1 (install Debian's python3 package)")
		}
		t.Skip("/usr/bin/python3 not found")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var calls atomic.Int64
	wait, err := Serve(ctx, dir, func(context.Context) Result { calls.Add(1); return Result{OK: true} }, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	defer cancel()
	script := `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("\0" + sys.argv[1][1:])
s.settimeout(10)
try:
    s.sendall(b"reload\n")
    got = s.recv(100)
except (ConnectionResetError, BrokenPipeError):
    got = b""
sys.stdout.write(repr(got))`
	cmd := exec.Command(python, "-c", script, SocketName(dir))
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 as nobody: %v\n%s", err, out)
	}
	if string(out) != "b''" {
		t.Errorf("nobody was answered %s", out)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("a request of nobody's reloaded %d times", n)
	}
	// Root (this test) is served.
	if res, err := Ask(t.Context(), dir); err != nil || !res.OK || calls.Load() != 1 {
		t.Fatalf("root: %+v %v", res, err)
	}
}
