// Command tunnel measures tunnels to TCP apps through sluis (the real
// gateway as its own process, the real `sluis connect` client in this
// one), beside the same work done directly and through `ssh -L` (with
// aes128-gcm@openssh.com, to a local sshd) in interleaved rounds of one
// run:
//
//   - oneway: bulk throughput to a sink, one connection;
//   - echo: send and receive at once on one connection, to an echo
//     server (SIZE each way);
//   - echo-par: the same on -parallel connections at once (SIZE each way
//     in all);
//   - setup: a new connection through the established session until its
//     first echoed byte, p50 and p99;
//   - and the gateway's resident memory per idle tunnel (-idle of them).
//
// The client is the real `sluis connect`, as its own process, as ssh is.
// Beside the throughput, the CPU time of the processes that carry each
// path (the gateway and the client; ssh and sshd) is given per MiB: a busy
// machine moves it much less than the throughput.
//
// Ratios are medians of the ratios within each round, so that noise that
// moves a whole round (a busy machine) cancels out.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/tunnel [-size 256] [-rounds 3] [-trials 200] [-idle 1000] [-modes oneway,echo,echo-par,setup] [-gwprofile F] [-clientprofile F]
package main

import (
	"bufio"
	"bytes"
	"context"
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/connect"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
	"github.com/sluis-gateway/sluis/tunnel"
)

func main() {
	size := flag.Int("size", 256, "MiB sent one way, and each way in an echo, per measurement")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	trials := flag.Int("trials", 200, "connections timed for setup latency, per path and round")
	idle := flag.Int("idle", 1000, "idle tunnels opened to measure the gateway's memory per tunnel")
	parallel := flag.Int("parallel", 8, "connections in the parallel echo")
	modes := flag.String("modes", "oneway,echo,echo-par,setup", "measurements to make, comma-separated")
	clientProfile := flag.String("clientprofile", "", "write the CPU profiles of the sluis connect clients here, with the app's name appended")
	gwProfile := flag.String("gwprofile", "", "write the gateway's CPU profile here")
	flag.Parse()
	if err := run(int64(*size)<<20, *rounds, *trials, *idle, *parallel, strings.Split(*modes, ","), *gwProfile, *clientProfile); err != nil {
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

// copyBuf is the buffer of every copy the benchmark makes itself (the
// sink, the echo, the senders), the same on every path.
const copyBuf = 256 << 10

// send writes n bytes to addr, half-closes and waits for the far end to
// close: the whole transfer, end to end.
func send(addr string, n int64) (time.Duration, error) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := write(c, n); err != nil {
		return 0, err
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	return time.Since(start), nil
}

func write(c net.Conn, n int64) error {
	buf := make([]byte, copyBuf)
	for left := n; left > 0; {
		m := min(int64(len(buf)), left)
		if _, err := c.Write(buf[:m]); err != nil {
			return err
		}
		left -= m
	}
	return nil
}

// echo sends n bytes to an echo server on each of conns connections to
// addr while reading the n bytes coming back, all at once, and returns the
// time until the last byte came back: both directions at once.
func echo(addr string, n int64, conns int) (time.Duration, error) {
	start := time.Now()
	errc := make(chan error, 2*conns)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		go func() {
			err := write(c, n)
			c.(*net.TCPConn).CloseWrite()
			errc <- err
		}()
		go func() {
			got, err := io.CopyBuffer(io.Discard, c, make([]byte, copyBuf))
			if err == nil && got != n {
				err = fmt.Errorf("echoed %d bytes of %d", got, n)
			}
			errc <- err
		}()
	}
	for range 2 * conns {
		if err := <-errc; err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// setup times a new connection until its first byte has come back: dial,
// one byte there and back.
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
	procs      []int // the processes that carry it (their children too), whose CPU time is counted
}

// measurement is one figure of one path in one round: MiB/s for the
// transfers (higher is better), the p50 for setup (lower is better).
type figures map[string]map[string][]float64 // mode -> path -> rounds

func (f figures) add(mode, path string, v float64) {
	if f[mode] == nil {
		f[mode] = map[string][]float64{}
	}
	f[mode][path] = append(f[mode][path], v)
}

// ratio is the median over rounds of a/b within each round: pairing the
// two figures of a round cancels the noise that moves a whole round.
func (f figures) ratio(mode, a, b string) float64 {
	var q []float64
	for i, x := range f[mode][a] {
		if i < len(f[mode][b]) && f[mode][b][i] > 0 {
			q = append(q, x/f[mode][b][i])
		}
	}
	if len(q) == 0 {
		return 0
	}
	return median(q)
}

func run(size int64, rounds, trials, idle, parallel int, modes []string, gwProfile, clientProfile string) error {
	want := map[string]bool{}
	for _, m := range modes {
		want[strings.TrimSpace(m)] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "sluis-bench-tunnel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The sink reads everything and closes when the sender is done; the
	// echo sends back what it gets.
	sink, err := serveTCP(func(c net.Conn) { io.CopyBuffer(io.Discard, c, make([]byte, copyBuf)) })
	if err != nil {
		return err
	}
	echoLn, err := serveTCP(func(c net.Conn) { io.CopyBuffer(c, c, make([]byte, copyBuf)) })
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
`, filepath.Join(dir, "data"), idle+100, sink.Addr(), echoLn.Addr())), 0o600)
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	// The data directory is made whole by `sluis init` (keys, CA and
	// store), and the bench's user and session are added to its store.
	if out, err := exec.Command(bin, "init", "--config", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("sluis init: %v\n%s", err, out)
	}
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
	if gwProfile != "" {
		abs, _ := filepath.Abs(gwProfile)
		gw.Env = append(os.Environ(), "SLUIS_CPUPROFILE="+abs)
	}
	stdout, _ := gw.StdoutPipe()
	gwLog, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return err
	}
	gw.Stderr = gwLog
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
		b, _ := os.ReadFile(gwLog.Name())
		return fmt.Errorf("the gateway did not start:\n%s", b)
	}
	go io.Copy(io.Discard, stdout)
	_, port, _ := net.SplitHostPort(gwAddr)
	gwURL, _ := url.Parse("https://login.bench.test:" + port)
	// The client is the real `sluis connect`, as its own process (as ssh
	// is), one per app, with the bench's login saved where it looks.
	cfgHome := filepath.Join(dir, "config")
	credPath, err := connect.CredentialsPath(func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return cfgHome
		}
		return ""
	})
	if err != nil {
		return err
	}
	creds := &connect.Credentials{}
	creds.Put(connect.Login{Gateway: connect.Key(gwURL.String()), User: "bench", Token: tok, Saved: now})
	if err := creds.Save(credPath); err != nil {
		return err
	}
	var clients []*exec.Cmd
	listenClient := func(app string) (string, error) {
		c := exec.CommandContext(ctx, bin, "connect", app, "--gateway", gwURL.String(), "--ca", filepath.Join(dir, "data", "ca.pem"),
			"--connect", gwAddr, "--listen", "127.0.0.1:0")
		c.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome)
		if clientProfile != "" {
			abs, _ := filepath.Abs(clientProfile + "." + app)
			c.Env = append(c.Env, "SLUIS_CPUPROFILE="+abs)
		}
		out, _ := c.StdoutPipe()
		var errOut bytes.Buffer
		c.Stderr = &errOut
		if err := c.Start(); err != nil {
			return "", err
		}
		clients = append(clients, c)
		sc := bufio.NewScanner(out)
		re := regexp.MustCompile(`sluis connect: \S+ on (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				go io.Copy(io.Discard, out)
				return m[1], nil
			}
		}
		c.Wait()
		return "", fmt.Errorf("sluis connect %s did not start: %s", app, errOut.Bytes())
	}
	defer func() {
		for _, c := range clients {
			c.Process.Signal(os.Interrupt)
			c.Wait()
		}
	}()
	sluisSink, err := listenClient("sink")
	if err != nil {
		return err
	}
	sluisEcho, err := listenClient("echo")
	if err != nil {
		return err
	}
	sluisProcs := []int{gw.Process.Pid}
	for _, c := range clients {
		sluisProcs = append(sluisProcs, c.Process.Pid)
	}
	paths := []path{{"direct", sink.Addr().String(), echoLn.Addr().String(), nil}, {"sluis", sluisSink, sluisEcho, sluisProcs}}
	if sshSink, sshEcho, stop, procs, err := sshForward(ctx, dir, sink.Addr().String(), echoLn.Addr().String()); err == nil {
		defer stop()
		paths = append(paths, path{"ssh -L", sshSink, sshEcho, procs})
	} else {
		fmt.Printf("(no ssh -L baseline: %v)\n", err)
	}
	for _, p := range paths {
		if _, err := setup(p.echo); err != nil {
			return fmt.Errorf("%s: warming up: %w", p.name, err)
		}
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("bench/tunnel: %d MiB per transfer (each way in an echo), %d rounds, %d setups per path and round, %d cores, load %s",
		size>>20, rounds, trials, runtime.NumCPU(), load)
	figs := figures{}
	lat := map[string][]time.Duration{}
	for r := 1; r <= rounds; r++ {
		// Every other round in reverse order, so that no path always
		// follows the same one.
		order := append([]path(nil), paths...)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, p := range order {
			line := fmt.Sprintf("  round %d %-7s", r, p.name)
			if want["oneway"] {
				cpu0 := cpuTime(p.procs)
				d, err := send(p.sink, size)
				figs.add("cpu-oneway", p.name, float64((cpuTime(p.procs)-cpu0).Milliseconds())/float64(1*size>>20))
				if err != nil {
					return fmt.Errorf("%s one way: %w", p.name, err)
				}
				v := float64(size>>20) / d.Seconds()
				figs.add("oneway", p.name, v)
				line += fmt.Sprintf("  one way %6.0f MiB/s", v)
			}
			if want["echo"] {
				cpu0 := cpuTime(p.procs)
				d, err := echo(p.echo, size, 1)
				figs.add("cpu-echo", p.name, float64((cpuTime(p.procs)-cpu0).Milliseconds())/float64(2*size>>20))
				if err != nil {
					return fmt.Errorf("%s echo: %w", p.name, err)
				}
				v := float64(size>>20) / d.Seconds()
				figs.add("echo", p.name, v)
				line += fmt.Sprintf("  echo %6.0f MiB/s each way", v)
			}
			if want["echo-par"] {
				cpu0 := cpuTime(p.procs)
				d, err := echo(p.echo, size/int64(parallel), parallel)
				figs.add("cpu-echo-par", p.name, float64((cpuTime(p.procs)-cpu0).Milliseconds())/float64(2*size>>20))
				if err != nil {
					return fmt.Errorf("%s parallel echo: %w", p.name, err)
				}
				v := float64(size>>20) / d.Seconds()
				figs.add("echo-par", p.name, v)
				line += fmt.Sprintf("  echo x%d %6.0f MiB/s each way", parallel, v)
			}
			if want["setup"] {
				var ls []time.Duration
				for range trials {
					l, err := setup(p.echo)
					if err != nil {
						return fmt.Errorf("%s setup: %w", p.name, err)
					}
					ls = append(ls, l)
				}
				lat[p.name] = append(lat[p.name], ls...)
				figs.add("setup", p.name, float64(wrk.Pct(ls, 50)))
				line += fmt.Sprintf("  setup p50 %7s p99 %7s", wrk.Pct(ls, 50), wrk.Pct(ls, 99))
			}
			fmt.Println(line)
		}
	}
	fmt.Println("medians of rounds, and medians of the ratios within each round:")
	goals := map[string]string{"oneway": "sluis/ssh-L goal at least 1.5", "echo": "sluis/ssh-L goal at least 1.0", "echo-par": "sluis/ssh-L goal at least 1.0"}
	for _, m := range []string{"oneway", "echo", "echo-par"} {
		if !want[m] {
			continue
		}
		fmt.Printf("  %-8s", m)
		for _, p := range paths {
			fmt.Printf("  %s %6.0f MiB/s", p.name, median(figs[m][p.name]))
		}
		fmt.Printf("  sluis/direct %.2f", figs.ratio(m, "sluis", "direct"))
		if figs[m]["ssh -L"] != nil {
			fmt.Printf("  sluis/ssh-L %.2f (%s)", figs.ratio(m, "sluis", "ssh -L"), goals[m])
		}
		fmt.Println()
	}
	header := false
	for _, m := range []string{"oneway", "echo", "echo-par"} {
		if !want[m] {
			continue
		}
		if !header {
			fmt.Println("CPU time of the processes that carry each path (gateway and client; ssh and sshd), ms per MiB carried (each way counts):")
			header = true
		}
		fmt.Printf("  %-8s", m)
		for _, p := range paths[1:] {
			fmt.Printf("  %s %5.2f", p.name, median(figs["cpu-"+m][p.name]))
		}
		if figs["cpu-"+m]["ssh -L"] != nil {
			fmt.Printf("  sluis/ssh-L %.2f", figs.ratio("cpu-"+m, "sluis", "ssh -L"))
		}
		fmt.Println()
	}
	if want["setup"] {
		fmt.Printf("  setup   ")
		for _, p := range paths {
			fmt.Printf("  %s p50 %s p99 %s", p.name, wrk.Pct(lat[p.name], 50), wrk.Pct(lat[p.name], 99))
		}
		fmt.Printf("  sluis/direct %.2f", figs.ratio("setup", "sluis", "direct"))
		if lat["ssh -L"] != nil {
			fmt.Printf("  sluis/ssh-L %.2f (p50; goal at most 2)", figs.ratio("setup", "sluis", "ssh -L"))
		}
		fmt.Println()
	}
	if idle <= 0 {
		return nil
	}

	// Memory per idle tunnel, in the gateway process: N tunnels opened
	// (one byte echoed through each, so each is fully set up), then left
	// idle.
	runtime.GC()
	before, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range idle {
		c, err := net.Dial("tcp", sluisEcho)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		c.Write([]byte{1})
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			return fmt.Errorf("idle tunnel %d: %w", len(conns), err)
		}
	}
	time.Sleep(2 * time.Second)
	after, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	per := float64(after-before) / float64(idle)
	fmt.Printf("gateway memory: %d idle tunnels took %.1f MiB of resident memory, %.1f KiB each (goal under 64 KiB)\n", idle, float64(after-before)/(1<<20), per/1024)
	return nil
}

// cpuTime returns the CPU time (user and system) that the processes
// pids and their descendants have used so far.
func cpuTime(pids []int) time.Duration {
	if len(pids) == 0 {
		return 0
	}
	parent := map[int]int{}
	ticks := map[int]int64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state ppid ... utime(14) stime(15).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		parent[pid], _ = strconv.Atoi(f[1])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks[pid] = u + st
	}
	roots := map[int]bool{}
	for _, p := range pids {
		roots[p] = true
	}
	var sum int64
	for pid, t := range ticks {
		for q := pid; q > 1; q = parent[q] {
			if roots[q] {
				sum += t
				break
			}
		}
	}
	return time.Duration(sum) * 10 * time.Millisecond // USER_HZ is 100 on Linux
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
func sshForward(ctx context.Context, dir, sink, echo string) (string, string, func(), []int, error) {
	sshd, err := exec.LookPath("/usr/sbin/sshd")
	if err != nil {
		return "", "", nil, nil, errors.New("sshd is not installed")
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return "", "", nil, nil, errors.New("ssh is not installed")
	}
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			return "", "", nil, nil, fmt.Errorf("ssh-keygen: %v %s", err, out)
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
		return "", "", nil, nil, err
	}
	waitPort(fmt.Sprintf("127.0.0.1:%d", port))
	me, _ := user.Current()
	ls, le := freePort(), freePort()
	s := exec.CommandContext(ctx, sshBin, "-N", "-F", "/dev/null", "-i", filepath.Join(dir, "client"), "-o", "IdentitiesOnly=yes", "-c", "aes128-gcm@openssh.com", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(port), "-L", fmt.Sprintf("127.0.0.1:%d:%s", ls, sink), "-L", fmt.Sprintf("127.0.0.1:%d:%s", le, echo), me.Username+"@127.0.0.1")
	if err := s.Start(); err != nil {
		d.Process.Kill()
		return "", "", nil, nil, err
	}
	stop := func() { s.Process.Kill(); s.Wait(); d.Process.Kill(); d.Wait() }
	if !waitPort(fmt.Sprintf("127.0.0.1:%d", ls)) || !waitPort(fmt.Sprintf("127.0.0.1:%d", le)) {
		stop()
		return "", "", nil, nil, errors.New("ssh -L did not start")
	}
	return fmt.Sprintf("127.0.0.1:%d", ls), fmt.Sprintf("127.0.0.1:%d", le), stop, []int{s.Process.Pid, d.Process.Pid}, nil
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
