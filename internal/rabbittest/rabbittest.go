// Package rabbittest runs a real RabbitMQ broker with its management plugin
// on loopback, for tests and benchmark programs. It starts processes, so
// only they may import it (internal/deptest checks this).
package rabbittest

import (
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// server is Debian's start script itself: /usr/sbin/rabbitmq-server
	// is a wrapper that, run by root, switches to the rabbitmq account
	// and writes to /var/log/rabbitmq.
	server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	epmd   = "/usr/bin/epmd"
)

// Broker is a RabbitMQ node whose every file is in one directory and
// whose every listener (AMQP, management, Erlang distribution, and an
// epmd of its own) is on 127.0.0.1.
type Broker struct {
	URL            string // the management API, http://127.0.0.1:PORT
	User, Password string // an administrator (HTTP basic auth)
	Node           string // the Erlang node name
	// BootTime is how long the broker took until its management API
	// answered for the node.
	BootTime time.Duration

	dir      string
	cmd      *exec.Cmd     // the start script, leader of its process group
	exited   chan struct{} // closed when it has ended
	booted   bool          // it answered; its pid file was written
	epmd     *exec.Cmd
	epmdDone chan struct{}
}

// Start runs RabbitMQ for a test, or skips the test when it is not
// installed (and fails under SLUIS_REQUIRE_INTEGRATION=1).
func Start(t testing.TB) *Broker {
	t.Helper()
	if !installed() {
		testserver.Missing(t, "rabbitmq-server", "rabbitmq-server")
	}
	b, err := Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func installed() bool {
	for _, p := range []string{server, epmd} {
		if _, err := exec.LookPath(p); err != nil {
			return false
		}
	}
	return true
}

// brokers numbers the brokers of this process, for unique node names.
var brokers atomic.Int64

// Run runs RabbitMQ with its files in dir (for benchmark programs); the
// caller stops it.
func Run(dir string) (*Broker, error) {
	if !installed() {
		return nil, fmt.Errorf("%s or %s not found (install Debian's rabbitmq-server package)", server, epmd)
	}
	b := &Broker{dir: dir, User: "sluis-test", Password: "rabbit-secret", Node: fmt.Sprintf("sluis-test-%d-%d@localhost", os.Getpid(), brokers.Add(1))}
	// Free ports are picked, then bound by the broker: another process
	// may take one in between, and it then exits. So: up to three tries.
	var last error
	for try := 0; try < 3; try++ {
		if last = b.start(); last == nil {
			return b, nil
		}
		if err := b.Stop(); err != nil {
			return nil, fmt.Errorf("%v; and then: %v", last, err)
		}
		os.RemoveAll(filepath.Join(dir, "mnesia"))
	}
	return nil, last
}

// start runs epmd and the broker on fresh ports and waits until the
// management API answers.
func (b *Broker) start() error {
	epmdPort, amqpPort, distPort, mgmtPort := testserver.FreePort(), testserver.FreePort(), testserver.FreePort(), testserver.FreePort()
	b.URL = fmt.Sprintf("http://127.0.0.1:%d", mgmtPort)
	conf := filepath.Join(b.dir, "rabbitmq.conf")
	text := fmt.Sprintf(rabbitConf, amqpPort, mgmtPort, b.User, b.Password, filepath.Join(b.dir, "http-log"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	plugins := filepath.Join(b.dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[rabbitmq_management].\n"), 0o600); err != nil {
		return err
	}
	// An empty file instead of /etc/rabbitmq/rabbitmq-env.conf.
	envConf := filepath.Join(b.dir, "rabbitmq-env.conf")
	if err := os.WriteFile(envConf, nil, 0o600); err != nil {
		return err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "ERL_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"HOME="+b.dir, // the Erlang cookie
		"ERL_EPMD_ADDRESS=127.0.0.1",
		fmt.Sprintf("ERL_EPMD_PORT=%d", epmdPort),
		"RABBITMQ_NODENAME="+b.Node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", amqpPort),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", distPort),
		"RABBITMQ_CONFIG_FILE="+conf,
		// Not /etc/rabbitmq/conf.d/*.conf, the default.
		"RABBITMQ_CONFIG_FILES="+filepath.Join(b.dir, "conf.d", "*.conf"),
		"RABBITMQ_CONF_ENV_FILE="+envConf,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(b.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
		"RABBITMQ_MNESIA_BASE="+filepath.Join(b.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(b.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(b.dir, "rabbitmq.pid"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(b.dir, "plugins-expand"),
		"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(b.dir, "feature_flags"),
		"RABBITMQ_QUORUM_DIR="+filepath.Join(b.dir, "quorum"),
		"RABBITMQ_STREAM_DIR="+filepath.Join(b.dir, "stream"),
		// epmd is ours (below), and the distribution listens on
		// loopback only.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
	)

	var out strings.Builder
	b.epmd = exec.Command(epmd, "-address", "127.0.0.1", "-port", fmt.Sprint(epmdPort))
	b.epmd.Stdout, b.epmd.Stderr = &out, &out
	if err := b.epmd.Start(); err != nil {
		return err
	}
	b.epmdDone = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(b.epmd, b.epmdDone)

	started := time.Now()
	b.cmd = exec.Command(server)
	b.cmd.Dir, b.cmd.Env = b.dir, env
	// Its own process group: the script and the Erlang VM it starts.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.Stdout, b.cmd.Stderr = &out, &out
	if err := b.cmd.Start(); err != nil {
		return err
	}
	b.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(b.cmd, b.exited)

	// RabbitMQ takes several seconds to boot, more on a busy machine.
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		if b.ready(client) {
			b.BootTime, b.booted = time.Since(started), true
			return nil
		}
		select {
		case <-b.exited:
			return fmt.Errorf("rabbitmq-server exited:\n%s", out.String())
		case <-b.epmdDone:
			return fmt.Errorf("epmd exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("RabbitMQ's management API not answering after 90s:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rabbitConf: AMQP and the management API on loopback, an administrator
// of the test's own, and the management API's requests logged (so a test
// can tell what reached it).
const rabbitConf = `listeners.tcp.default = 127.0.0.1:%d
management.tcp.ip = 127.0.0.1
management.tcp.port = %d
default_user = %s
default_pass = %s
default_user_tags.administrator = true
loopback_users = none
management.http_log_dir = %s
`

// ready tells whether the management API answers for the node.
func (b *Broker) ready(client *http.Client) bool {
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/api/overview", nil)
	req.SetBasicAuth(b.User, b.Password)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var overview struct {
		Node string `json:"node"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&overview) == nil && overview.Node == b.Node
}

// HTTPLog returns the management API's access log so far: what reached
// RabbitMQ's HTTP server.
func (b *Broker) HTTPLog() string {
	var all strings.Builder
	files, _ := filepath.Glob(filepath.Join(b.dir, "http-log", "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		all.Write(data)
	}
	return all.String()
}

// Stop ends the broker and its epmd, and waits until the Erlang VM is
// gone. It kills rather than asks: the broker's data is thrown away with
// the directory, and an orderly shutdown takes seconds.
func (b *Broker) Stop() error {
	defer b.stopEPMD()
	if b.cmd != nil && b.cmd.Process != nil {
		if err := syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			b.cmd.Process.Kill()
		}
		<-b.exited
		b.cmd = nil
	}
	// The VM was in the script's process group, and wrote its process
	// id to the pid file as it booted; once the script is gone, init
	// reaps it.
	pidFile := filepath.Join(b.dir, "rabbitmq.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		if b.booted {
			return fmt.Errorf("the broker booted but left no pid file, so its Erlang VM may still run: %w", err)
		}
		return nil
	}
	b.booted = false
	defer os.Remove(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("pid file: %q", data)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("RabbitMQ's Erlang VM (pid %d) still runs 10s after it was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (b *Broker) stopEPMD() {
	if b.epmd != nil && b.epmd.Process != nil {
		b.epmd.Process.Kill()
		<-b.epmdDone
		b.epmd = nil
	}
}

// alive tells whether process pid runs (a zombie, dead but not yet
// reaped, does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
