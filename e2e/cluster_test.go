package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/haproxytest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Two gateway nodes on one PostgreSQL database behind a real HAProxy (TCP
// mode, PROXY protocol v2, a health check every 250 ms): staff log in
// through the balancer; a revocation made on one node is in force on the
// other within a second, also for a stream open there, and so are an
// emergency level and blocks; probes through the
// balancer block the prober only; and when a node stops, the session goes
// on through the other with no new login.
func TestTwoNodesBehindHAProxy(t *testing.T) {
	wiki := newUpstream(t)
	a, b, _ := twoNodes(t, "probes:\n  block_after: 3\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true})
	// Each node directly (not through the balancer), for what one node
	// must see of a change made on the other.
	direct := func(g *testenv.Gateway, c *http.Client) *http.Client {
		d := g.ClientTo(g.Addr(), g.CA, "")
		d.Jar = c.Jar
		return d
	}
	get := func(c *http.Client, path string) int {
		req, _ := http.NewRequest("GET", a.URL(wikiHost, path), nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// within awaits a status from c, returning how long it took.
	within := func(what string, c *http.Client, status int, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for get(c, "/x") != status {
			if time.Since(start) > limit {
				t.Fatalf("%s: not %d after %v\nnode A:\n%s\nnode B:\n%s", what, status, limit, a.Logs(), b.Logs())
			}
			time.Sleep(20 * time.Millisecond) // polling another process
		}
		return time.Since(start)
	}

	annSecret := a.AddUser("anna", pw, "staff")
	bertSecret := a.AddUser("bert", pw, "staff")
	login := func(user, secret, src string) *http.Client {
		c := a.ClientFrom(src)
		if p := a.Login(c, a.URL(wikiHost, "/start"), user, pw, secret); p.StatusCode != http.StatusOK {
			t.Fatalf("login of %s through the balancer: %d\n%s", user, p.StatusCode, p.Body)
		}
		return c
	}
	anna := login("anna", annSecret, "127.0.0.2")
	bert := login("bert", bertSecret, "127.0.0.4")
	for _, g := range []*testenv.Gateway{a, b} {
		if s := get(direct(g, anna), "/on-each-node"); s != http.StatusOK {
			t.Fatalf("anna's session on node %s: %d", g.Addr(), s)
		}
	}

	// Revoked on B: refused on A within a second.
	b.MustCLI("", "session", "revoke", "--user", "bert")
	took := within("bert on node A after a revocation on node B", direct(a, bert), http.StatusUnauthorized, time.Second)
	t.Logf("a revocation on B was in force on A after %v", took.Round(time.Millisecond))

	// A stream open on A ends within a second of a revocation on B.
	carl := login("carl", a.AddUser("carl", pw, "staff"), "127.0.0.6")
	req, _ := http.NewRequest("GET", a.URL(wikiHost, "/stream"), nil)
	resp, err := direct(a, carl).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("carl's stream on node A: %v %v", resp, err)
	}
	first := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); ended <- err }()
	b.MustCLI("", "session", "revoke", "--user", "carl")
	revoked := time.Now()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("carl's stream on node A ended cleanly after the revocation on B")
		}
		t.Logf("carl's stream on node A failed %v after the revocation on node B returned", time.Since(revoked).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("carl's stream on node A still flows a second after the revocation on node B")
	}
	resp.Body.Close()

	// An emergency level set on A: in force on B.
	a.MustCLI("", "emergency", "set", "essential", "--reason", "CVE-2026-0001")
	took = within("the wiki on node B at essential set on node A", direct(b, anna), http.StatusServiceUnavailable, time.Second)
	t.Logf("a level set on A was in force on B after %v", took.Round(time.Millisecond))
	a.MustCLI("", "emergency", "clear")
	within("the wiki on node B after the level is cleared", direct(b, anna), http.StatusOK, time.Second)

	// How soon a change made through one node counts on the other: a
	// block added with B's CLI, until A refuses the blocked source
	// (SLUIS_TRIALS trials, 20 unless set).
	trials := 20
	if n, err := strconv.Atoi(os.Getenv("SLUIS_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	blocked := a.ClientTo(a.Addr(), a.CA, "127.0.0.5")
	var lags []time.Duration
	for range trials {
		b.MustCLI("", "block", "add", "127.0.0.5/32", "--reason", "propagation trial")
		lags = append(lags, within("a source blocked through node B, on node A", blocked, http.StatusForbidden, time.Second))
		b.MustCLI("", "block", "remove", "127.0.0.5/32")
		within("a source unblocked through node B, on node A", blocked, http.StatusUnauthorized, time.Second)
		blocked.CloseIdleConnections()
	}
	slices.Sort(lags)
	t.Logf("a block added through node B counted on node A after p50 %v, p99 %v, worst %v (%d trials, from the CLI returning)",
		lags[len(lags)/2].Round(100*time.Microsecond), lags[(len(lags)*99+99)/100-1].Round(100*time.Microsecond), lags[len(lags)-1].Round(100*time.Microsecond), len(lags))

	// Probes through the balancer block the prober, not the balancer or
	// anna behind it.
	scanner := a.ClientFrom("127.0.0.3")
	for range 5 {
		req, _ := http.NewRequest("GET", a.URL(a.Portal, "/vpns/cfg/smb.conf"), nil)
		if resp, err := scanner.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	for _, c := range []*http.Client{scanner, a.ClientFrom("127.0.0.3")} {
		req, _ := http.NewRequest("GET", a.URL(a.Portal, "/login"), nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("the scanner after its probes: %d", resp.StatusCode)
		}
	}
	if s := get(anna, "/after-the-scan"); s != http.StatusOK {
		t.Fatalf("anna behind the same balancer after the scan: %d", s)
	}

	// Node A stops: anna's session goes on through B, no new login.
	a.Stop()
	stopped := time.Now()
	anna.CloseIdleConnections()
	within("anna through the balancer with node A stopped", anna, http.StatusOK, 5*time.Second)
	t.Logf("with node A stopped, anna's next request was served after %v (failover)", time.Since(stopped).Round(time.Millisecond))
}

// twoNodes starts two gateway nodes with apps on one PostgreSQL database
// (the second with a copy of the first's data_dir: the same keys) and a
// real HAProxy in front of them in TCP mode with the PROXY protocol v2,
// health-checking both every 250 ms. Clients of either Gateway connect
// through HAProxy, and the URLs they build carry its port.
func twoNodes(t *testing.T, extra string, apps ...testenv.App) (a, b *testenv.Gateway, lb *haproxytest.HAProxy) {
	t.Helper()
	_, urlFile := newDatabase(t)
	port := haproxytest.FreePort()
	extra = fmt.Sprintf("store:\n  postgres:\n    url_file: %s\npublic_url: https://login.sluis.test:%d\ntrusted_proxies: [%s/32]\nproxy_protocol: true\n%s",
		urlFile, port, balancerAddr, extra)
	a = testenv.StartWith(t, extra, apps...)
	b = secondNode(t, a, extra, apps...)
	lb = haproxytest.Start(t, haproxytest.Config{Mode: "tcp", Backends: []string{a.Addr(), b.Addr()}, Port: port, SendProxy: true, Source: balancerAddr})
	for _, g := range []*testenv.Gateway{a, b} {
		g.Front, g.PublicPort = lb.Addr, lb.Port
	}
	return a, b, lb
}

// A tunnel's node goes away: sluis connect, pointed at the balancer, goes
// on through the other node by itself, with no new login. The connection
// that was open on the node is cut (a TCP stream cannot move); a new one
// through the same sluis connect works.
func TestTunnelGoesOnThroughTheOtherNode(t *testing.T) {
	echo := newEcho(t)
	a, b, lb := twoNodes(t, "connections:\n  shutdown_grace: 1s\n", testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	// Node B is away while sluis connect logs in and opens its tunnel, so
	// the tunnel is on node A; then B is back.
	b.Stop()
	secret := a.AddUser("anna", pw, "staff")
	dir := t.TempDir()
	c := startConnect(t, a, dir, "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", a.Code("anna", secret), "--connect", lb.Addr)
	open, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(open, make([]byte, 5)); err != nil {
		t.Fatalf("through the tunnel: %v\n%s", err, c.stderr)
	}
	b = b.Restart()
	logins := strings.Count(b.MustCLI("", "audit"), "login.success")

	stopped := time.Now()
	a.Terminate()
	// The open connection is cut when node A's grace runs out.
	open.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := open.Read(make([]byte, 1)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the connection open on node A after it stopped: %d bytes, %v", n, err)
	}
	if err := a.Exited(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// A new connection through the same sluis connect goes through node
	// B (once the balancer's check has it back), with the same login.
	for {
		err := roundTrip(t, c.addr, 1000)
		if err == nil {
			break
		}
		if time.Since(stopped) > 20*time.Second {
			t.Fatalf("no tunnel through node B 20s after node A stopped: %v\n%s", err, c.stderr)
		}
	}
	t.Logf("node A stopped: its open connection was cut at its grace (1s), and a new connection through sluis connect went through node B %v after the stop",
		time.Since(stopped).Round(time.Millisecond))
	if n := strings.Count(b.MustCLI("", "audit"), "login.success"); n != logins {
		t.Fatalf("%d new logins to go on through node B", n-logins)
	}
}
