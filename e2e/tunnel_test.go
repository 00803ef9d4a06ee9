package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// echoServer is a real TCP server that sends back what it gets; accepted
// counts the connections that reached it.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
}

func newEcho(t *testing.T) *echoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

// client is a running `sluis connect`.
type client struct {
	addr      string // where it listens
	stderr    *syncWriter
	cancel    func()
	done      chan error
	configDir string
}

type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// await polls cond every 10ms for up to d.
func await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startConnect runs `sluis connect APP` with its own config directory and
// the given extra arguments and standard input; it waits until it listens.
func startConnect(t *testing.T, g *testenv.Gateway, configDir, app, stdin string, args ...string) *client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{stderr: &syncWriter{}, cancel: cancel, done: make(chan error, 1), configDir: configDir}
	out := &syncWriter{}
	full := append([]string{"sluis", "connect", app, "--gateway", g.URL(g.Portal, ""), "--connect", g.Addr(),
		"--ca", filepath.Join(g.Dir, "data", "ca.pem")}, args...)
	getenv := func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return configDir
		}
		return ""
	}
	go func() { c.done <- cli.Run(ctx, full, getenv, strings.NewReader(stdin), out, c.stderr) }()
	re := regexp.MustCompile(`sluis connect: \S+ on (127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			c.addr = m[1]
			break
		}
		select {
		case err := <-c.done:
			t.Fatalf("sluis connect ended: %v\n%s", err, c.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluis connect not listening after 30s:\n%s", c.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Errorf("sluis connect did not stop")
		}
	})
	return c
}

// roundTrip sends n random bytes through a connection to the echo app and
// checks that the same bytes come back.
func roundTrip(t *testing.T, addr string, n int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		conn.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		return fmt.Errorf("%d bytes sent, %d came back, not the same", n, len(got))
	}
	return nil
}

// A TCP app through the real client: the client logs in with a password
// and code, data arrives intact both ways (large payloads, many parallel
// connections, all on one TLS connection), every tunnel is audited, and
// the login is kept in a file only its user can read.
func TestTunnelCarriesTCP(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	dir := t.TempDir()
	c := startConnect(t, g, dir, "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))

	if fi, err := os.Stat(filepath.Join(dir, "sluis", "connect.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- roundTrip(t, c.addr, (1<<20)*(1+i%4))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.Fatalf("client log:\n%s\n%s", c.stderr, g.Logs())
	}
	await(t, 5*time.Second, "16 tunnel.close events", func() bool { return strings.Count(g.MustCLI("", "audit"), "tunnel.close") >= 16 })
	audit := g.MustCLI("", "audit")
	if n := strings.Count(audit, "tunnel.open"); n != 16 || !strings.Contains(audit, "to "+echo.addr()) || !regexp.MustCompile(`\d+ bytes up, \d+ bytes down`).MatchString(audit) {
		t.Errorf("audit after 16 tunnels (%d tunnel.open):\n%s", n, audit)
	}
	// A second run uses the stored login: no password asked.
	c2 := startConnect(t, g, dir, "echo", "")
	if err := roundTrip(t, c2.addr, 1000); err != nil {
		t.Fatal(err)
	}
}

// The device login: the client prints a portal address with a code, the
// user (logged in with a browser) approves it there, and the client is in.
func TestTunnelDeviceLogin(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	browser := g.Client()
	g.Login(browser, "", "anna", pw, secret)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr, out := &syncWriter{}, &syncWriter{}
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, []string{"sluis", "connect", "echo", "--gateway", g.URL(g.Portal, ""), "--connect", g.Addr(), "--ca", filepath.Join(g.Dir, "data", "ca.pem")},
			func(k string) string {
				if k == "XDG_CONFIG_HOME" {
					return dir
				}
				return ""
			}, strings.NewReader(""), out, stderr)
	}()
	re := regexp.MustCompile(`(https://\S+/device)\s[^A-Z]*([A-Z]{4}-[A-Z]{4})`)
	var m []string
	await(t, 10*time.Second, "the login address", func() bool { m = re.FindStringSubmatch(stderr.String()); return m != nil })
	// A link with the code in it fills in nothing.
	page := g.Get(browser, m[1]+"?code="+m[2])
	if page.StatusCode != 200 || strings.Contains(page.Body, m[2]) || !strings.Contains(page.Body, `name="code"`) {
		t.Fatalf("the device page with a code in its address: %d\n%s", page.StatusCode, page.Body)
	}
	// The user types the code, sees where the client is, approves.
	shown := g.Post(browser, g.URL(g.Portal, "/device"), map[string][]string{"csrf": {testenv.CSRF(page.Body)}, "code": {strings.ToLower(m[2])}, "decision": {"show"}})
	if shown.StatusCode != 200 || !strings.Contains(shown.Body, m[2]) || !strings.Contains(shown.Body, "127.0.0.1") || !strings.Contains(shown.Body, `value="approve"`) {
		t.Fatalf("approval page: %d\n%s", shown.StatusCode, shown.Body)
	}
	p := g.Post(browser, g.URL(g.Portal, "/device"), map[string][]string{"csrf": {testenv.CSRF(shown.Body)}, "code": {m[2]}, "decision": {"approve"}})
	if p.StatusCode != 200 || !strings.Contains(p.Body, "Approved") {
		t.Fatalf("approving: %d\n%s", p.StatusCode, p.Body)
	}
	addrRE := regexp.MustCompile(`on (127\.0\.0\.1:\d+)`)
	await(t, 10*time.Second, "the client listening", func() bool { return addrRE.MatchString(out.String()) })
	if err := roundTrip(t, addrRE.FindStringSubmatch(out.String())[1], 100000); err != nil {
		t.Fatal(err)
	}
	if s := g.MustCLI("", "session", "list"); strings.Count(s, "anna") != 2 {
		t.Fatalf("sessions after the device login (want the browser's and the client's):\n%s", s)
	}
	// Logging out of the browser that approved the client ends the
	// client's session too.
	defer func() {
		lp := g.Get(browser, g.URL(g.Portal, "/"))
		g.Post(browser, g.URL(g.Portal, "/logout"), map[string][]string{"csrf": {testenv.CSRF(lp.Body)}})
		conn, err := net.Dial("tcp", addrRE.FindStringSubmatch(out.String())[1])
		if err == nil {
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			conn.Write([]byte("x"))
			if n, err := conn.Read(make([]byte, 1)); err == nil {
				t.Errorf("the client's tunnel still works after the approving browser logged out (%d bytes)", n)
			}
		}
	}()
	// The client's session is not phishing-resistant, however the
	// approving login was made.
	db := openDB(t, g)
	var method string
	if err := db.QueryRow(`SELECT mfa_method FROM sessions WHERE user_agent = 'sluis connect'`).Scan(&method); err != nil || method != "device" {
		t.Fatalf("the client's session: method %q %v", method, err)
	}
}

// An open tunnel: revoking its session, or an emergency level that
// forbids the app, closes it within a second; the wrong user is refused;
// a tunnel request without a login never makes the gateway dial.
func TestTunnelControl(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	bertSecret := g.AddUser("bert", pw, "staff")

	// No token: 401, and nothing reaches the target.
	before := echo.accepted.Load()
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: g.CA},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", g.Addr())
		}}}
	for _, auth := range []string{"", "Bearer " + strings.Repeat("A", 43), "Bearer "} {
		req, _ := http.NewRequest("POST", g.URL(g.Portal, "/.sluis/tunnel/echo"), strings.NewReader("hello"))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.ProtoMajor != 2 {
			t.Errorf("tunnel with %q: %d over HTTP/%d", auth, resp.StatusCode, resp.ProtoMajor)
		}
	}
	if n := echo.accepted.Load() - before; n != 0 {
		t.Fatalf("unauthenticated tunnel requests made the gateway dial %d times", n)
	}

	// Bert may not use the app: the client says so and ends.
	var errb bytes.Buffer
	err := cli.Run(context.Background(), []string{"sluis", "connect", "echo", "--gateway", g.URL(g.Portal, ""), "--connect", g.Addr(),
		"--ca", filepath.Join(g.Dir, "data", "ca.pem"), "--user", "bert", "--password-stdin", "--code", g.Code("bert", bertSecret)},
		func(k string) string {
			if k == "XDG_CONFIG_HOME" {
				return t.TempDir()
			}
			return ""
		}, strings.NewReader(pw+"\n"), io.Discard, &errb)
	if err == nil || !strings.Contains(err.Error(), "you may not use this app") {
		t.Fatalf("bert's connect: %v\n%s", err, errb.String())
	}
	if n := echo.accepted.Load() - before; n != 0 {
		t.Fatalf("the wrong user made the gateway dial %d times", n)
	}

	cut := func(what string, act func()) time.Duration {
		t.Helper()
		c := startConnect(t, g, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
			t.Fatalf("%s: echo before: %q %v", what, buf, err)
		}
		start := time.Now()
		act()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(buf)
		took := time.Since(start)
		if err == nil || took > time.Second {
			t.Fatalf("%s: the tunnel was still open %s later (%v)", what, took, err)
		}
		return took
	}
	t1 := cut("session revoke", func() { g.MustCLI("", "session", "revoke", "--user", "anna") })
	t2 := cut("emergency set closed", func() { g.MustCLI("", "emergency", "set", "closed", "--reason", "incident") })
	g.MustCLI("", "emergency", "clear")
	t4 := cut("app disable", func() { g.MustCLI("", "app", "disable", "echo", "--reason", "maintenance") })
	g.MustCLI("", "app", "enable", "echo")
	t3 := cut("block add", func() { g.MustCLI("", "block", "add", "127.0.0.1", "--for", "1m", "--reason", "test") })
	g.MustCLI("", "block", "remove", "127.0.0.1")
	// At strict, a client session whose second factor is older than
	// strict.reauth_after loses its tunnels and opens no more.
	t5 := cut("strict with an old second factor", func() {
		if _, err := openDB(t, g).Exec(`UPDATE sessions SET mfa_at = mfa_at - ? WHERE user_agent = 'sluis connect'`, int64(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		g.MustCLI("", "emergency", "set", "strict", "--reason", "credentials leaked")
	})
	g.MustCLI("", "emergency", "clear")
	t.Logf("tunnel cut after: revoke %s, emergency %s, app disable %s, block %s, strict %s", t1, t2, t4, t3, t5)
	if audit := g.MustCLI("", "audit"); !strings.Contains(audit, "cut: session ended or access withdrawn") {
		t.Errorf("no cut tunnel in the audit trail:\n%s", audit)
	}
}

// The launcher shows TCP apps with the command to run, and a remote
// desktop file for RDP that points at the client's local port.
func TestLauncherShowsTCPApps(t *testing.T) {
	g := testenv.Start(t,
		testenv.App{Name: "desktop-anna", TCP: "10.1.2.3:3389", Users: []string{"anna"}, MFA: true},
		testenv.App{Name: "build-box", TCP: "10.1.2.4:22", Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	bertSecret := g.AddUser("bert", pw, "staff")
	anna := g.Client()
	p := g.Login(anna, "", "anna", pw, secret)
	base := g.URL(g.Portal, "")
	for _, want := range []string{
		"sluis connect desktop-anna --gateway " + base + " --listen 127.0.0.1:13389",
		"ssh -o ProxyCommand=&#39;sluis connect build-box --gateway " + base + " --stdio&#39; USER@build-box",
		`href="/rdp/desktop-anna"`,
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("launcher lacks %q:\n%s", want, p.Body)
		}
	}
	rdp := g.Get(anna, g.URL(g.Portal, "/rdp/desktop-anna"))
	if rdp.StatusCode != 200 || rdp.Header.Get("Content-Type") != "application/x-rdp" || !strings.Contains(rdp.Body, "full address:s:127.0.0.1:13389") {
		t.Fatalf("rdp file: %d %q\n%s", rdp.StatusCode, rdp.Header.Get("Content-Type"), rdp.Body)
	}
	if p := g.Get(anna, g.URL(g.Portal, "/rdp/build-box")); p.StatusCode != 404 {
		t.Errorf("an rdp file for an SSH app: %d", p.StatusCode)
	}
	bert := g.Client()
	g.Login(bert, "", "bert", pw, bertSecret)
	if p := g.Get(bert, g.URL(g.Portal, "/rdp/desktop-anna")); p.StatusCode != 404 {
		t.Errorf("bert got anna's desktop file: %d", p.StatusCode)
	}
}

// countingForwarder passes TCP connections on to addr and counts them.
func countingForwarder(t *testing.T, addr string) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), &n
}

// Tunnels have limits: an idle one is closed, a user has at most
// max_per_user open, a target that does not read makes the client wait
// (the gateway buffers a bounded amount), and every tunnel of a client
// shares one TLS connection.
func TestTunnelLimits(t *testing.T) {
	echo := newEcho(t)
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c) // never read
			heldMu.Unlock()
		}
	}()
	g := testenv.StartWith(t, "tunnels:\n  idle_timeout: 1s\n  max_per_user: 3\n",
		testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true},
		testenv.App{Name: "sink", TCP: sink.Addr().String(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	dir := t.TempDir()
	fwd, conns := countingForwarder(t, g.Addr())
	start := func(app string, stdin string, args ...string) *client {
		full := append([]string{"--connect", fwd}, args...)
		return startConnect(t, g, dir, app, stdin, full...)
	}
	c := start("echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))

	// One TLS connection for many tunnels.
	before := conns.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- roundTrip(t, c.addr, 1<<20) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load() - before; n > 1 {
		t.Errorf("3 tunnels took %d new TLS connections", n)
	}

	// Idle: closed after about a second of silence.
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("x"))
	io.ReadFull(conn, make([]byte, 1))
	idleStart := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || time.Since(idleStart) > 5*time.Second {
		t.Errorf("an idle tunnel: read gave %v after %s", err, time.Since(idleStart))
	}
	conn.Close()

	// At most 3 open: the 4th is refused.
	var open []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("y"))
		if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		open = append(open, conn)
	}
	fourth, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	fourth.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := fourth.Read(make([]byte, 1)); err == nil {
		t.Errorf("a 4th tunnel was opened (%d bytes)", n)
	}
	fourth.Close()
	await(t, 5*time.Second, "the refusal in the client's log", func() bool { return strings.Contains(c.stderr.String(), "you have 3 tunnels open") })
	for _, o := range open {
		o.Close()
	}

	// Back-pressure: a target that reads nothing. The client can hand over
	// only a bounded amount before its writes stop.
	s := start("sink", "")
	sc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	chunk := make([]byte, 256<<10)
	var written int64
	sc.SetWriteDeadline(time.Now().Add(3 * time.Second))
	for written < 256<<20 {
		n, err := sc.Write(chunk)
		written += int64(n)
		if err != nil {
			break
		}
	}
	t.Logf("a target that reads nothing took %d MiB before the writer had to wait", written>>20)
	if written >= 64<<20 {
		t.Errorf("%d MiB went into a tunnel whose target reads nothing: no back-pressure", written>>20)
	}
}

func openDB(t *testing.T, g *testenv.Gateway) *sql.DB {
	db, err := sql.Open("sqlite", filepath.Join(g.Dir, "data", "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A client that stops reading while its target floods it is cut all the
// same when its session is revoked: the tunnel's end is recorded and its
// place freed.
func TestTunnelStalledReaderIsCut(t *testing.T) {
	flood := newFlood(t)
	g := testenv.StartWith(t, "tunnels:\n  max_per_user: 1\n", testenv.App{Name: "flood", TCP: flood, Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := startConnect(t, g, t.TempDir(), "flood", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // never read
	await(t, 5*time.Second, "the tunnel open", func() bool { return strings.Contains(g.MustCLI("", "audit"), "tunnel.open") })
	time.Sleep(500 * time.Millisecond) // let the buffers fill: the writes must be stuck
	g.MustCLI("", "session", "revoke", "--user", "anna")
	await(t, 5*time.Second, "tunnel.close of the stalled tunnel", func() bool {
		return strings.Contains(g.MustCLI("", "audit"), "cut: session ended or access withdrawn")
	})
}

// A local connection that its own side closes after a normal exchange is
// logged as closed, with its bytes, and the gateway records its end as
// "closed": neither side resets the stream as though something failed.
func TestTunnelNormalCloseIsLoggedAsClosed(t *testing.T) {
	echo := newEcho(t)
	flood := newFlood(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true},
		testenv.App{Name: "flood", TCP: flood, Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	dir := t.TempDir()
	c := startConnect(t, g, dir, "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	const n = 20
	for i := range n {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("hello %02d\n", i)
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: %q %v", buf, err)
		}
		conn.Close()
	}
	closedRE := regexp.MustCompile(`connection from 127\.0\.0\.1:\d+ closed after \S+: 9 bytes sent, 9 received`)
	await(t, 10*time.Second, "every connection's end in the client's log", func() bool {
		return strings.Count(c.stderr.String(), "connection from") >= n
	})
	if got := len(closedRE.FindAllString(c.stderr.String(), -1)); got != n || strings.Contains(c.stderr.String(), "stream error") {
		t.Errorf("%d of %d normally closed connections logged as closed:\n%s", got, n, c.stderr)
	}
	await(t, 5*time.Second, "every tunnel.close", func() bool { return strings.Count(g.MustCLI("", "audit"), "tunnel.close") >= n })
	if audit := g.MustCLI("", "audit"); strings.Count(audit, "9 bytes up, 9 bytes down") != n || strings.Count(audit, "; closed") != n {
		t.Errorf("the gateway's record of %d normal ends:\n%s", n, audit)
	}

	// The local side closes while the app is still sending: that is its
	// own doing, not a failure of the tunnel.
	f := startConnect(t, g, dir, "flood", "")
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 100000)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	await(t, 10*time.Second, "the connection's end in the client's log", func() bool { return strings.Contains(f.stderr.String(), "connection from") })
	if log := f.stderr.String(); !regexp.MustCompile(`connection from 127\.0\.0\.1:\d+ closed after \S+: 0 bytes sent, \d+ received`).MatchString(log) {
		t.Errorf("a local side that closed while the app was sending:\n%s", log)
	}
}

// newFlood starts a TCP server that sends without end to whoever
// connects, and returns its address.
func newFlood(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A target that resets its connection ends the tunnel, and the audit
// trail says it was the target's error, not a normal close.
func TestTunnelTargetResetIsRecorded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Once the tunnel carries data both ways, the target
				// resets its connection.
				io.ReadFull(c, make([]byte, 1))
				c.Write([]byte("hi\n"))
				c.(*net.TCPConn).SetLinger(0) // Close sends RST
				c.Close()
			}()
		}
	}()
	g := testenv.Start(t, testenv.App{Name: "reset", TCP: ln.Addr().String(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := startConnect(t, g, t.TempDir(), "reset", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the local connection after the target's reset: %v", err)
	}
	await(t, 5*time.Second, "tunnel.close", func() bool { return strings.Contains(g.MustCLI("", "audit"), "tunnel.close") })
	if audit := g.MustCLI("", "audit"); !strings.Contains(audit, "closed by the target with an error") {
		t.Errorf("a reset by the target is not recorded as such:\n%s", audit)
	}
}
