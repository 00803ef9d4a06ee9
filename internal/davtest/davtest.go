// Package davtest runs a real Apache httpd with mod_dav on loopback, a
// WebDAV server for tests and benchmark programs. It starts a process, so
// only they may import it (internal/deptest checks this).
package davtest

import (
	"errors"
	"fmt"
	"github.com/sluis-gateway/sluis/internal/testserver"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// apache is Debian's httpd binary; its modules are in modules.
const (
	apache  = "/usr/sbin/apache2"
	modules = "/usr/lib/apache2/modules"
)

// Server is Apache httpd serving Root over WebDAV at URL, with no
// authentication of its own, no cap on the size of a body
// (LimitRequestBody 0) and a Timeout of 300 s between reads, so that the
// gateway's bounds are the ones a test sees.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Root string // the directory served at /; what a PUT stored is here
	dir  string
	cmd  *exec.Cmd
	// exited is closed when httpd has ended.
	exited chan struct{}
}

// Start runs Apache for a test, or skips the test when it is not
// installed (and fails under SLUIS_REQUIRE_INTEGRATION=1).
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath(apache); err != nil {
		testserver.Missing(t, "apache2", "apache2")
	}
	s, err := Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Run runs Apache with its files in dir (for benchmark programs); the
// caller stops it. Run as root, Apache serves as nobody (it refuses to
// serve as root), so dir and its parents inside the temporary directory
// are made traversable for others.
func Run(dir string) (*Server, error) {
	if _, err := exec.LookPath(apache); err != nil {
		return nil, fmt.Errorf("apache2 not found (install Debian's apache2 package): %w", err)
	}
	for _, m := range []string{"mod_mpm_event.so", "mod_authz_core.so", "mod_dav.so", "mod_dav_fs.so"} {
		if _, err := os.Stat(filepath.Join(modules, m)); err != nil {
			return nil, fmt.Errorf("apache2 module %s missing: %w", m, err)
		}
	}
	s := &Server{Root: filepath.Join(dir, "dav"), dir: dir}
	lock := filepath.Join(dir, "lock")
	for _, d := range []string{s.Root, lock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var account string
	if os.Geteuid() == 0 {
		uid, gid, err := nobody()
		if err != nil {
			return nil, err
		}
		for _, d := range []string{s.Root, lock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
		if err := testserver.Reachable(dir); err != nil {
			return nil, err
		}
		account = fmt.Sprintf("User #%d\nGroup #%d\n", uid, gid)
	}
	// Free ports are picked, then bound by httpd: another process may take
	// one in between, and httpd then exits. So: up to three tries.
	var last error
	for try := 0; try < 3; try++ {
		if last = s.start(account, lock); last == nil {
			return s, nil
		}
	}
	return nil, last
}

// start writes the configuration for a fresh port, runs httpd, and waits
// until it answers.
func (s *Server) start(account, lock string) error {
	port := testserver.FreePort()
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	conf := filepath.Join(s.dir, "httpd.conf")
	text := fmt.Sprintf(httpdConf, s.dir, port, modules, account, lock, s.Root)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	s.cmd = exec.Command(apache, "-f", conf, "-d", s.dir, "-DFOREGROUND")
	// Its own process group, so that Stop ends the workers too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	cmd := s.cmd
	go func() { cmd.Wait(); close(exited) }()
	s.exited = exited
	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		// OPTIONS answers with the DAV header once mod_dav serves.
		req, _ := http.NewRequest(http.MethodOptions, s.URL+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.Header.Get("DAV") != "" {
				return nil
			}
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("apache2 exited:\n%s\n%s", out.String(), s.ErrorLog())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("apache2 not serving WebDAV after 15s:\n%s\n%s", out.String(), s.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpdConf is a minimal configuration: WebDAV on the served directory,
// nothing else. mod_reqtimeout is not loaded, so Apache asks for no
// minimum upload rate; Debian's build has mod_log_config and mod_unixd
// (User, Group) compiled in.
const httpdConf = `ServerRoot %[1]s
ServerName 127.0.0.1
Listen 127.0.0.1:%[2]d
LoadModule mpm_event_module %[3]s/mod_mpm_event.so
LoadModule authz_core_module %[3]s/mod_authz_core.so
LoadModule dav_module %[3]s/mod_dav.so
LoadModule dav_fs_module %[3]s/mod_dav_fs.so
%[4]sPidFile %[1]s/httpd.pid
ErrorLog %[1]s/error.log
LogLevel info
LogFormat "%%r %%>s %%B" plain
CustomLog %[1]s/access.log plain
Timeout 300
LimitRequestBody 0
DavLockDB %[5]s/davlock
DocumentRoot %[6]s
<Directory />
	Require all denied
</Directory>
<Directory %[6]s>
	Dav On
	Require all granted
</Directory>
`

// ErrorLog returns what httpd logged about errors so far.
func (s *Server) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
	return string(b)
}

// AccessLog returns httpd's access log so far: one line per request it
// finished, as "METHOD TARGET PROTOCOL STATUS BYTES".
func (s *Server) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "access.log"))
	return string(b)
}

// Stop ends httpd and its workers.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	// The whole group: the workers die with the parent, whatever they
	// are doing.
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.cmd.Process.Kill()
	}
	<-s.exited
	s.cmd = nil
}

// nobody is the unprivileged account Apache serves as when started by
// root.
func nobody() (uid, gid int, err error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root, Apache needs an unprivileged account: %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}
