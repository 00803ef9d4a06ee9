// Command tunnel measures tunnels to TCP apps: bulk throughput (1 GiB a
// run, by default) and connection setup latency through sluis (the real
// gateway as its own process, the real client in this one), against the
// same transfer directly and through `ssh -L` to a local sshd when OpenSSH
// is installed, in interleaved rounds of one run; and the gateway's memory
// per idle tunnel.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/tunnel [-size 1024] [-rounds 3] [-idle 500]
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"github.com/sluis-gateway/sluis/bench/internal/wrk"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/connect"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
	"github.com/sluis-gateway/sluis/tunnel"
)

func main() {
	size := flag.Int("size", 1024, "MiB sent in each throughput measurement")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	trials := flag.Int("trials", 200, "connections timed for setup latency, per path and round")
	idle := flag.Int("idle", 500, "idle tunnels opened to measure the gateway's memory per tunnel")
	flag.Parse()
	if err := run(int64(*size)<<20, *rounds, *trials, *idle); err != nil {
		log.Fatal(err)
	}
}

// serveTCP runs handle for each connection accepted on a loopback port.
func serveTCP(handle func(net.Conn)) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln, nil
}

// send writes n bytes to addr, half-closes and waits for the far end to
// close: the whole transfer, end to end.
func send(addr string, n int64) (time.Duration, error) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		m := int64(len(buf))
		if left < m {
			m = left
		}
		if _, err := c.Write(buf[:m]); err != nil {
			return 0, err
		}
		left -= m
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	return time.Since(start), nil
}

// setup times dial, one byte there and back, close.
func setup(addr string) (time.Duration, error) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

type path struct {
	name       string
	sink, echo string
}

func run(size int64, rounds, trials, idle int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "sluis-bench-tunnel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The sink reads everything and closes when the sender is done; the
	// echo sends back what it gets.
	sink, err := serveTCP(func(c net.Conn) { io.CopyBuffer(io.Discard, c, make([]byte, 256<<10)) })
	if err != nil {
		return err
	}
	echo, err := serveTCP(func(c net.Conn) { io.Copy(c, c) })
	if err != nil {
		return err
	}

	// The gateway, as its own process, so its memory can be read.
	bin := filepath.Join(dir, "sluis")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/sluis").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "sluis.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
portal: login.bench.test
data_dir: %s
tls: {self_signed: true}
tunnels: {max_per_user: %d}
apps:
  - name: sink
    tcp: %s
    allow: {users: [bench], mfa: true}
  - name: echo
    tcp: %s
    allow: {users: [bench], mfa: true}
`, filepath.Join(dir, "data"), idle+100, sink.Addr(), echo.Addr())), 0o600)
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "data", "sluis.db"))
	if err != nil {
		return err
	}
	now := time.Now()
	st.CreateUser(ctx, sluis.User{Name: "bench", CreatedAt: now})
	tok, hash := session.NewToken()
	x := sluis.Session{ID: session.NewID(), User: "bench", Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(time.Hour), MFAAt: now, MFAMethod: sluis.FactorTOTP}
	if err := st.CreateSession(ctx, x, hash[:], tunnel.Host); err != nil {
		return err
	}
	st.Close()
	gw := exec.CommandContext(ctx, bin, "serve", "--config", cfg)
	stdout, _ := gw.StdoutPipe()
	if err := gw.Start(); err != nil {
		return err
	}
	defer func() { gw.Process.Signal(os.Interrupt); gw.Wait() }()
	addrRE := regexp.MustCompile(`listening on (\S+)`)
	sc := bufio.NewScanner(stdout)
	var gwAddr string
	for sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			gwAddr = m[1]
			break
		}
	}
	if gwAddr == "" {
		return errors.New("the gateway did not start")
	}
	go io.Copy(io.Discard, stdout)
	pem, err := os.ReadFile(filepath.Join(dir, "data", "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	_, port, _ := net.SplitHostPort(gwAddr)
	gwURL, _ := url.Parse("https://login.bench.test:" + port)
	opts := connect.Options{Gateway: gwURL, RootCAs: pool, ConnectTo: gwAddr}
	listenClient := func(app string) (string, error) {
		c := &connect.Client{Gateway: gwURL, App: app, Token: tok, HTTP: connect.NewHTTP(opts)}
		if _, err := c.Check(ctx); err != nil {
			return "", err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		go c.Serve(ctx, ln)
		return ln.Addr().String(), nil
	}
	sluisSink, err := listenClient("sink")
	if err != nil {
		return err
	}
	sluisEcho, err := listenClient("echo")
	if err != nil {
		return err
	}
	paths := []path{{"direct", sink.Addr().String(), echo.Addr().String()}, {"sluis", sluisSink, sluisEcho}}
	if sshSink, sshEcho, stop, err := sshForward(ctx, dir, sink.Addr().String(), echo.Addr().String()); err == nil {
		defer stop()
		paths = append(paths, path{"ssh -L", sshSink, sshEcho})
	} else {
		fmt.Printf("(no ssh -L baseline: %v)\n", err)
	}

	fmt.Printf("bench/tunnel: %d MiB per transfer, %d rounds, %d setups per path and round, %d cores\n", size>>20, rounds, trials, runtime.NumCPU())
	rate := map[string][]float64{}
	lat := map[string][]time.Duration{}
	for r := 1; r <= rounds; r++ {
		for _, p := range paths {
			d, err := send(p.sink, size)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			mibs := float64(size>>20) / d.Seconds()
			rate[p.name] = append(rate[p.name], mibs)
			var ls []time.Duration
			for range trials {
				l, err := setup(p.echo)
				if err != nil {
					return fmt.Errorf("%s setup: %w", p.name, err)
				}
				ls = append(ls, l)
			}
			lat[p.name] = append(lat[p.name], ls...)
			fmt.Printf("  round %d %-7s %8.0f MiB/s  setup p50 %8s p99 %8s\n", r, p.name, mibs, wrk.Pct(ls, 50), wrk.Pct(ls, 99))
		}
	}
	fmt.Println("median of rounds:")
	med := map[string]float64{}
	for _, p := range paths {
		med[p.name] = median(rate[p.name])
		fmt.Printf("  %-7s %8.0f MiB/s  setup p50 %8s p99 %8s\n", p.name, med[p.name], wrk.Pct(lat[p.name], 50), wrk.Pct(lat[p.name], 99))
	}
	fmt.Printf("ratios: sluis/direct %.2f (goal at least 0.5)", med["sluis"]/med["direct"])
	if med["ssh -L"] > 0 {
		fmt.Printf("  sluis/ssh-L %.2f (goal above 1)", med["sluis"]/med["ssh -L"])
	}
	fmt.Println()

	// Memory per idle tunnel, in the gateway process.
	before, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	var conns []net.Conn
	for range idle {
		c, err := net.Dial("tcp", sluisEcho)
		if err != nil {
			return err
		}
		c.Write([]byte{1})
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			return err
		}
		conns = append(conns, c)
	}
	time.Sleep(2 * time.Second)
	after, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	for _, c := range conns {
		c.Close()
	}
	per := float64(after-before) / float64(idle)
	fmt.Printf("gateway memory: %d idle tunnels took %.1f MiB of resident memory, %.1f KiB each (goal under 64 KiB)\n", idle, float64(after-before)/(1<<20), per/1024)
	return nil
}

// rss reads a process's resident memory from /proc.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0, errors.New("no VmRSS")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, nil
}

// sshForward starts a local sshd and `ssh -N -L` forwards to sink and echo.
func sshForward(ctx context.Context, dir, sink, echo string) (string, string, func(), error) {
	sshd, err := exec.LookPath("/usr/sbin/sshd")
	if err != nil {
		return "", "", nil, errors.New("sshd is not installed")
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return "", "", nil, errors.New("ssh is not installed")
	}
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			return "", "", nil, fmt.Errorf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "client.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	port := freePort()
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n",
		port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys"))), 0o600)
	if os.Getuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755)
	}
	d := exec.CommandContext(ctx, sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	if err := d.Start(); err != nil {
		return "", "", nil, err
	}
	waitPort(fmt.Sprintf("127.0.0.1:%d", port))
	me, _ := user.Current()
	ls, le := freePort(), freePort()
	s := exec.CommandContext(ctx, sshBin, "-N", "-F", "/dev/null", "-i", filepath.Join(dir, "client"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(port), "-L", fmt.Sprintf("127.0.0.1:%d:%s", ls, sink), "-L", fmt.Sprintf("127.0.0.1:%d:%s", le, echo), me.Username+"@127.0.0.1")
	if err := s.Start(); err != nil {
		d.Process.Kill()
		return "", "", nil, err
	}
	stop := func() { s.Process.Kill(); s.Wait(); d.Process.Kill(); d.Wait() }
	if !waitPort(fmt.Sprintf("127.0.0.1:%d", ls)) || !waitPort(fmt.Sprintf("127.0.0.1:%d", le)) {
		stop()
		return "", "", nil, errors.New("ssh -L did not start")
	}
	return fmt.Sprintf("127.0.0.1:%d", ls), fmt.Sprintf("127.0.0.1:%d", le), stop, nil
}

func freePort() int {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(addr string) bool {
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
