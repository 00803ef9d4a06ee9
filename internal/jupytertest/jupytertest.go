// Package jupytertest runs a real Jupyter Notebook server (Debian's
// jupyter-notebook) on loopback with a notebook of one code cell, for
// tests that put a real app with WebSockets, Origin and Host checks behind
// the gateway. It starts processes, so only tests may import it
// (internal/deptest checks this).
package jupytertest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluis-gateway/sluis/internal/testserver"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The notebook the server starts with: one code cell, whose output shows
// only when a kernel ran it.
const (
	// NotebookPath is the notebook's path under the server's root, as in
	// /notebooks/NotebookPath.
	NotebookPath = "sluis.ipynb"
	// Cell is the source of its one code cell.
	Cell = `print("kernel says", 6 * 7)`
	// Output is what the cell prints when it runs; the notebook holds no
	// output before.
	Output = "kernel says 42"
)

// Server is a running Jupyter Notebook server.
type Server struct {
	URL   string // http://127.0.0.1:PORT, the root of the server
	Token string // its token: in the login form, or ?token= / Authorization: token
	Dir   string // its notebook directory
	// Started is how long the server took from start to answering.
	Started time.Duration

	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process has ended
	log    *testserver.Output

	stopOnce sync.Once
}

// Start runs a notebook server for a test, or skips the test when Jupyter
// Notebook is not installed (and fails under SLUIS_REQUIRE_INTEGRATION=1).
// config is Python for its jupyter_notebook_config.py, one statement a
// line, as an operator would add (for example
// `c.NotebookApp.local_hostnames = ["notebook.example"]`); without it the
// server runs with Jupyter's defaults, apart from the fixed token and not
// opening a browser. The server and every kernel it started are ended when
// the test ends.
func Start(t testing.TB, config ...string) *Server {
	t.Helper()
	exe, err := exec.LookPath("jupyter-notebook")
	if err != nil {
		testserver.Missing(t, "jupyter-notebook", "jupyter-notebook")
	}
	s, err := run(exe, t.TempDir(), config)
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

// run starts the server with everything it writes under dir.
func run(exe, dir string, config []string) (*Server, error) {
	tok := make([]byte, 24)
	rand.Read(tok)
	s := &Server{Token: hex.EncodeToString(tok), Dir: filepath.Join(dir, "notebooks")}
	env := map[string]string{
		"HOME":                filepath.Join(dir, "home"),
		"JUPYTER_CONFIG_DIR":  filepath.Join(dir, "config"),
		"JUPYTER_DATA_DIR":    filepath.Join(dir, "data"),
		"JUPYTER_RUNTIME_DIR": filepath.Join(dir, "runtime"),
		"IPYTHONDIR":          filepath.Join(dir, "ipython"),
	}
	for _, d := range append([]string{s.Dir}, env["HOME"], env["JUPYTER_CONFIG_DIR"], env["JUPYTER_DATA_DIR"], env["JUPYTER_RUNTIME_DIR"], env["IPYTHONDIR"]) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	conf := fmt.Sprintf("c.NotebookApp.token = %q\nc.NotebookApp.open_browser = False\n%s\n", s.Token, strings.Join(config, "\n"))
	if err := os.WriteFile(filepath.Join(env["JUPYTER_CONFIG_DIR"], "jupyter_notebook_config.py"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, NotebookPath), notebook(), 0o600); err != nil {
		return nil, err
	}
	// Only what Python needs of this process's environment: a JUPYTER_*
	// or PYTHON* variable of the machine's must not change the server.
	cmdEnv := []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	for k, v := range env {
		cmdEnv = append(cmdEnv, k+"="+v)
	}
	// The port is picked, then bound by the server: another process may
	// take it in between. So: up to three tries.
	var last error
	for try := 0; try < 3; try++ {
		port := testserver.FreePort()
		s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		s.cmd = exec.Command(exe, "--no-browser", "--ip=127.0.0.1", "--port="+strconv.Itoa(port), "--port-retries=0",
			"--notebook-dir="+s.Dir, "--allow-root")
		s.cmd.Env = cmdEnv
		s.cmd.Dir = dir
		s.log = &testserver.Output{}
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		// Its own process group, so that Stop reaches whatever it started
		// in it.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		retry, err := s.start()
		if err == nil {
			return s, nil
		}
		if last = err; !retry {
			break
		}
	}
	return nil, last
}

// start runs the server and waits until it answers an authenticated API
// request. If the server exited, it may be worth another try (on another
// port).
func (s *Server) start() (retry bool, err error) {
	begin := time.Now()
	if err := s.cmd.Start(); err != nil {
		return false, err
	}
	s.exited = make(chan struct{})
	cmd, exited := s.cmd, s.exited
	go func() { cmd.Wait(); close(exited) }()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("GET", s.URL+"/api/status", nil)
		req.Header.Set("Authorization", "token "+s.Token)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.Started = time.Since(begin)
				return false, nil
			}
		}
		select {
		case <-exited:
			return true, fmt.Errorf("jupyter-notebook exited: %v\n%s", cmd.ProcessState, s.log)
		case <-time.After(50 * time.Millisecond): // the server gives no signal but answering
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("jupyter-notebook not answering after 60s:\n%s", s.log)
			if serr := s.stop(); serr != nil {
				err = fmt.Errorf("%w\n%v", err, serr)
			}
			return false, err
		}
	}
}

// Log returns what the server printed so far.
func (s *Server) Log() string { return s.log.String() }

// Stop ends the server and its kernels. The server is asked to stop
// (SIGTERM, on which it shuts its kernels down) and killed with its process
// group after 10s. Kernels run in sessions of their own, so each kernel it
// started (a child of the server) is killed too, in case the server could
// not end it. Stop returns an error if any of them is still alive after
// that.
func (s *Server) Stop() error {
	var err error
	s.stopOnce.Do(func() { err = s.stop() })
	return err
}

func (s *Server) stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	kernels := children(pid)
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	syscall.Kill(-pid, syscall.SIGKILL) // anything left in its group
	var alive []int
	for _, k := range kernels {
		syscall.Kill(-k, syscall.SIGKILL) // a kernel leads its own group
		syscall.Kill(k, syscall.SIGKILL)
		if !gone(k, 5*time.Second) {
			alive = append(alive, k)
		}
	}
	if len(alive) > 0 {
		return fmt.Errorf("jupytertest: processes %v of the notebook server still alive after it stopped", alive)
	}
	return nil
}

// Kernels returns the process ids of the server's children (its kernels).
func (s *Server) Kernels() []int { return children(s.cmd.Process.Pid) }

// children returns the ids of the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, id)
		}
	}
	return out
}

// gone waits up to d for process pid to be gone (or a zombie, which only
// its parent can reap).
func gone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		if i := strings.LastIndexByte(string(stat), ')'); err == nil && i >= 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // a process's end gives no signal to others
	}
}

// notebook is the notebook file: nbformat 4, one code cell, no output.
func notebook() []byte {
	nb := map[string]any{
		"nbformat": 4, "nbformat_minor": 5,
		"metadata": map[string]any{
			"kernelspec":    map[string]any{"name": "python3", "display_name": "Python 3", "language": "python"},
			"language_info": map[string]any{"name": "python"},
		},
		"cells": []any{map[string]any{
			"cell_type": "code", "id": "sluis-cell", "metadata": map[string]any{},
			"execution_count": nil, "outputs": []any{}, "source": Cell,
		}},
	}
	b, err := json.MarshalIndent(nb, "", " ")
	if err != nil {
		panic(err)
	}
	return b
}
