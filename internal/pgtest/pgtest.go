// Package pgtest runs a real PostgreSQL server (Debian's binaries) on
// loopback, for tests and benchmark programs. It starts a process, so only
// they may import it (internal/deptest checks this).
//
// PostgreSQL refuses to run as root: run by root, the server runs as the
// postgres account that Debian's package creates, with its data directory
// handed to that account. It listens on 127.0.0.1 and on a Unix socket in
// its own directory, with a superuser whose random password is in the URLs
// it hands out, and without fsync (a test's data is thrown away).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sluis-gateway/sluis/internal/testserver"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server on loopback.
type Server struct {
	Host     string // 127.0.0.1
	Port     int
	User     string // the superuser
	Password string
	// Socket is the directory of the server's Unix socket.
	Socket string
	// BootTime is how long initdb and the start took.
	BootTime time.Duration

	dir      string
	data     string
	bin      string              // where the server's binaries are
	cred     *syscall.Credential // whom it runs as (nil: this process's user)
	settings []string            // Run's
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the postmaster has ended
	logs     *testserver.Output
	dbs      atomic.Int64
}

// binDir finds the directory of Debian's PostgreSQL binaries, the newest
// version installed.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var found []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return "", errors.New("PostgreSQL not found: no /usr/lib/postgresql/*/bin/initdb (install Debian's postgresql package)")
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return found[0], nil
}

func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

// Installed reports whether PostgreSQL's server binaries are here.
func Installed() bool { _, err := binDir(); return err == nil }

// Start runs PostgreSQL for a test, or skips the test when it is not
// installed (and fails under SLUIS_REQUIRE_INTEGRATION=1). The server is
// stopped, and checked gone, when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if !Installed() {
		testserver.Missing(t, "PostgreSQL", "postgresql")
	}
	// Not t.TempDir: its parents are private to root, and the server
	// runs as postgres.
	dir, err := os.MkdirTemp("", "sluis-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := Run(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// shared is the server of Shared, one per test binary.
var shared struct {
	mu  sync.Mutex
	srv *Server
	dir string
	err error
}

// Shared returns a server shared by the tests of this test binary,
// started by the first of them, for tests that each make their own
// database on it (NewDatabase): one server start instead of one a test.
// It skips or fails the test like Start. The package's TestMain must call
// StopShared after m.Run, which stops it.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !Installed() {
		Start(t) // skips, or fails under SLUIS_REQUIRE_INTEGRATION=1
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "sluis-pgtest-")
		if shared.err == nil {
			shared.srv, shared.err = Run(shared.dir)
		}
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// StopShared stops the server of Shared, if one was started, checks it
// gone and removes its files. Call it from TestMain after m.Run.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var err error
	if shared.srv != nil {
		err = shared.srv.Stop()
		shared.srv = nil
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
		shared.dir = ""
	}
	return err
}

// Durable are settings for Run that make every commit reach the disk, as
// in production (the tests' server runs without fsync), for benchmark
// programs whose figures should mean what they would there.
var Durable = []string{"fsync=on", "synchronous_commit=on", "full_page_writes=on"}

// Run runs PostgreSQL with its files in dir (for benchmark programs); the
// caller stops it. dir must be reachable by the postgres account when run
// as root (under the system's temporary directory it is made so).
// settings (name=value) are passed to the server after the defaults, so
// they win (see Durable).
func Run(dir string, settings ...string) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	started := time.Now()
	s := &Server{Host: "127.0.0.1", User: "sluis", dir: dir, data: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "run")}
	pw := make([]byte, 16)
	rand.Read(pw)
	s.Password = hex.EncodeToString(pw)
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("run as root, PostgreSQL needs the unprivileged postgres account (Debian's package makes it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if err := testserver.Reachable(dir); err != nil {
			return nil, err
		}
	}
	pwFile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, d := range []string{s.data, s.Socket} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if cred != nil {
		for _, p := range []string{s.data, s.Socket, pwFile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data, "-U", s.User, "--pwfile", pwFile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	initdb.Env = serverEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwFile)
	// Free ports are picked, then bound by the server: another process
	// may take one in between, and it then exits. So: up to three tries.
	s.bin, s.cred, s.settings = bin, cred, settings
	for try := 0; ; try++ {
		err := s.start(testserver.FreePort())
		if err == nil {
			s.BootTime = time.Since(started)
			return s, nil
		}
		if try == 2 {
			return nil, err
		}
	}
}

// serverEnv is the environment of initdb and the server: no PG*
// variables of the caller's, and the C locale.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// Start starts a stopped server again, with its data, on the port it had:
// its clients' URLs stay good (a test of what they do while it is away).
func (s *Server) Start() error {
	if s.cmd != nil {
		return errors.New("pgtest: the server runs")
	}
	return s.start(s.Port)
}

// start runs the postmaster on port and waits until it takes connections.
func (s *Server) start(port int) error {
	bin, cred, settings := s.bin, s.cred, s.settings
	s.Port = port
	s.logs = &testserver.Output{}
	args := []string{"-D", s.data,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(s.Port),
		"-c", "unix_socket_directories=" + s.Socket,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning"}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	s.cmd.Env = serverEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// Its own process group, so a ^C of the test does not reach it
	// before Stop does.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-s.exited:
			s.cmd = nil
			return fmt.Errorf("postgres exited:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("postgres not taking connections after 30s (%v):\n%s", err, s.logs.String())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// URL returns the URL of database db over TCP, with the superuser's
// password in it.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.User, s.Password), Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a new, empty database and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("sluis_%d", s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// NewDatabase is CreateDatabase for a test.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	u, err := s.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Logs returns what the server wrote so far.
func (s *Server) Logs() string { return s.logs.String() }

// Stop shuts the server down (fast shutdown: SIGINT, which ends every
// session), waits for the postmaster to end, and checks that it removed
// its pid file, which it does after its last child has gone. Past 30s it
// kills the process group.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		return fmt.Errorf("postgres did not stop within 30s of a fast shutdown; killed:\n%s", s.logs.String())
	}
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		return fmt.Errorf("postgres ended but left postmaster.pid: its processes may still run:\n%s", s.logs.String())
	}
	return nil
}
