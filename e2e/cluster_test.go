package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/haproxytest"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Two gateway nodes on one PostgreSQL database behind a real HAProxy (TCP
// mode, PROXY protocol v2, a health check every 250 ms): staff log in
// through the balancer; a revocation made on one node is in force on the
// other within a second, and so is an emergency level; probes through the
// balancer block the prober only; and when a node stops, the session goes
// on through the other with no new login.
func TestTwoNodesBehindHAProxy(t *testing.T) {
	srv := pgtest.Start(t)
	urlFile := filepath.Join(t.TempDir(), "db-url")
	if err := os.WriteFile(urlFile, []byte(srv.NewDatabase(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := haproxytest.FreePort()
	extra := fmt.Sprintf("store:\n  postgres:\n    url_file: %s\npublic_url: https://login.sluis.test:%d\ntrusted_proxies: [%s/32]\nproxy_protocol: true\nprobes:\n  block_after: 3\n",
		urlFile, port, balancerAddr)
	wiki := newUpstream(t)
	app := testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true}
	a := testenv.StartWith(t, extra, app)
	dir2 := t.TempDir()
	copyDir(t, filepath.Join(a.Dir, "data"), filepath.Join(dir2, "data"))
	b := testenv.StartIn(t, dir2, extra, app)
	lb := haproxytest.Start(t, haproxytest.Config{Mode: "tcp", Backends: []string{a.Addr(), b.Addr()}, Port: port, SendProxy: true, Source: balancerAddr})
	for _, g := range []*testenv.Gateway{a, b} {
		g.Front, g.PublicPort = lb.Addr, lb.Port
	}
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

	// An emergency level set on A: in force on B.
	a.MustCLI("", "emergency", "set", "essential", "--reason", "CVE-2026-0001")
	took = within("the wiki on node B at essential set on node A", direct(b, anna), http.StatusServiceUnavailable, time.Second)
	t.Logf("a level set on A was in force on B after %v", took.Round(time.Millisecond))
	a.MustCLI("", "emergency", "clear")
	within("the wiki on node B after the level is cleared", direct(b, anna), http.StatusOK, time.Second)

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
