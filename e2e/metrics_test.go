package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/promtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/metrics"
)

// A real Prometheus scrapes a gateway's metrics over TLS with a bearer
// token while known traffic goes through it, and what it then answers
// through its HTTP API is that traffic: requests per app and status
// class, logins and second factors by method and outcome, a probe, an
// upstream that refuses connections, the live session, an open stream,
// a WebSocket, the tunnels of a TCP app, reloads, and the build. One Prometheus
// gets in with the bearer token, the other by its network.
//
// Until the admin listener serves /metrics, the test serves the node's
// metrics handler (the same handler, the same access check) on a TLS
// listener of its own.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	wiki := newUpstream(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := ln.Addr().String()
	ln.Close() // nothing listens there: the upstream of "down" refuses
	const downHost = "down.sluis.test"
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "down", Host: downHost, Upstream: "http://" + refusing, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "echo", TCP: refusing, Groups: []string{"staff"}, MFA: true},
	)
	w := &world{g: g, wiki: wiki}

	tok := make([]byte, 32)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	target := httptest.NewUnstartedServer(g.Metrics().Handler(metrics.Access{TokenHash: metrics.HashToken(token)}))
	target.StartTLS()
	defer target.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: target.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without the token: nothing.
	if resp, err := target.Client().Get(target.URL + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without a token: %v %v", resp, err)
	}
	prom := promtest.Start(t, promtest.Target{Addr: target.Listener.Addr().String(), CAFile: ca, Token: token})

	// The traffic.
	secret := g.AddUser("olga", pw, "staff")
	c := g.Client()
	if p := g.SubmitPassword(c, "", "olga", "not the password"); p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", p.StatusCode)
	}
	if p := g.Login(c, g.URL(wikiHost, "/start"), "olga", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login to wiki: %d", p.StatusCode)
	}
	for _, r := range []struct {
		path   string
		status int
	}{{"/a", 200}, {"/b", 200}, {"/error", http.StatusTeapot}, {"/error", http.StatusTeapot}} {
		if p := g.Get(c, g.URL(wikiHost, r.path)); p.StatusCode != r.status {
			t.Fatalf("%s: %d, want %d", r.path, p.StatusCode, r.status)
		}
	}
	if p := g.Follow(c, g.Get(c, g.URL(downHost, "/"))); p.StatusCode != http.StatusBadGateway {
		t.Fatalf("down: %d, want 502", p.StatusCode)
	}
	probe := "GET /remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession HTTP/1.1\r\nHost: " + g.Portal + "\r\nConnection: close\r\n\r\n"
	if status := w.rawRequest(t, "127.0.0.3", g.Portal, probe); !strings.HasPrefix(status, "4") {
		t.Fatalf("probe: %s", status)
	}

	// What Prometheus read.
	const within = 30 * time.Second
	for _, tc := range []struct {
		expr string
		want float64
	}{
		{`sluis_requests_total{app="wiki",code="2xx"}`, 3}, // /start after the login, /a, /b
		{`sluis_requests_total{app="wiki",code="4xx"}`, 2},
		{`sluis_requests_total{app="wiki",code="5xx"}`, 0},
		{`sluis_requests_total{app="down",code="5xx"}`, 1},
		{`sluis_upstream_errors_total{app="down",kind="refused"}`, 1},
		{`sluis_upstream_response_seconds_count{app="wiki"}`, 5},
		{`sluis_upstream_response_seconds_count{app="down"}`, 0},
		{`sluis_logins_total{method="password",outcome="failure"}`, 1},
		{`sluis_logins_total{method="password",outcome="success"}`, 1},
		{`sluis_second_factors_total{method="totp",outcome="success"}`, 1},
		{`sum(sluis_probes_total)`, 1},
		{`sluis_sessions_active`, 1},
		{`sluis_tunnels_open{app="echo"}`, 0},
		{`sluis_blocks_in_force{kind="automatic"}`, 0},
		{`sluis_config_reloads_total{result="failure"}`, 0},
		{`sluis_build_info{goversion="` + runtime.Version() + `"}`, 1},
	} {
		prom.Await(t, tc.expr, within, func(s []promtest.Sample) bool {
			v, ok := promtest.Value(s)
			return ok && v == tc.want
		})
	}
	// The gateway's overhead is observed for every answer of the app's
	// host (the login's redirects too), and is small.
	prom.Await(t, `sluis_gateway_overhead_seconds_count{app="wiki"} >= 5`, within, func(s []promtest.Sample) bool { return len(s) == 1 })
	prom.Await(t, `histogram_quantile(0.5, sluis_gateway_overhead_seconds_bucket{app="wiki"}) < 0.25`, within, func(s []promtest.Sample) bool { return len(s) == 1 })

	// A response that streams is open while it streams.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", g.URL(wikiHost, "/stream"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("stream: %q %v", line, err)
	}
	prom.Await(t, `sluis_requests_open{app="wiki",kind="stream"}`, within, func(s []promtest.Sample) bool {
		v, ok := promtest.Value(s)
		return ok && v == 1
	})
	close(wiki.release)
	resp.Body.Close()
	prom.Await(t, `sluis_requests_open{app="wiki",kind="stream"}`, within, equals(0))

	// So is a WebSocket, and it counts as 101 once it ends.
	u, _ := url.Parse(g.URL(wikiHost, "/"))
	var cookies []string
	for _, ck := range c.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	ws, err := tls.Dial("tcp", g.Addr(), g.TLSConfig(wikiHost))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(within))
	fmt.Fprintf(ws, "GET /ws HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", wikiHost, strings.Join(cookies, "; "))
	br := bufio.NewReader(ws)
	if status, _ := br.ReadString('\n'); !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("websocket: %q", status)
	}
	for {
		if l, err := br.ReadString('\n'); err != nil || l == "\r\n" {
			break // the end of the response head
		}
	}
	prom.Await(t, `sluis_requests_open{app="wiki",kind="websocket"}`, within, equals(1))
	fmt.Fprintf(ws, "hello\n") // the upstream echoes one line and closes
	if echo, err := br.ReadString('\n'); err != nil || echo != "echo: hello\n" {
		t.Fatalf("websocket echo: %q %v", echo, err)
	}
	ws.Close()
	prom.Await(t, `sluis_requests_open{app="wiki",kind="websocket"}`, within, equals(0))
	prom.Await(t, `sluis_requests_total{app="wiki",code="1xx"}`, within, equals(1))

	// A tunnel through `sluis connect` is open while its connection is.
	echo := newEcho(t)
	g2 := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	target2 := httptest.NewUnstartedServer(g2.Metrics().Handler(metrics.Access{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	target2.StartTLS()
	defer target2.Close()
	ca2 := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca2, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: target2.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	prom2 := promtest.Start(t, promtest.Target{Addr: target2.Listener.Addr().String(), CAFile: ca2}) // by its network, without a token
	secret2 := g2.AddUser("anna", pw, "staff")
	cl := startConnect(t, g2, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g2.Code("anna", secret2))
	conn, err := net.Dial("tcp", cl.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(within))
	fmt.Fprintf(conn, "ping\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("tunnel: %q %v", line, err)
	}
	prom2.Await(t, `sluis_tunnels_open{app="echo"}`, within, equals(1))
	// The client's login made two sessions: the login's, and the
	// client's own that it approved (see portal/device.go).
	prom2.Await(t, `sluis_sessions_active`, within, equals(2))
	prom2.Await(t, `sluis_logins_total{method="device",outcome="success"}`, within, equals(1))
	conn.Close()
	prom2.Await(t, `sluis_tunnels_open{app="echo"}`, within, equals(0))

	// Every guess counts, also those the audit trail folds into one
	// event, and the throttled one apart.
	g2.AddUser("piet", pw, "staff")
	c2 := g2.Client()
	for i := range 6 {
		if p := g2.SubmitPassword(c2, "", "piet", fmt.Sprintf("guess %d", i)); p.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, p.StatusCode)
		}
	}
	if p := g2.SubmitPassword(c2, "", "piet", pw); p.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right password while throttled: %d", p.StatusCode)
	}
	prom2.Await(t, `sluis_logins_total{method="password",outcome="failure"}`, within, equals(6))
	prom2.Await(t, `sluis_logins_total{method="password",outcome="throttled"}`, within, equals(1))
	prom2.Await(t, `sluis_throttled_total{kind="login"}`, within, equals(1))

	// Reloads are counted, and a reloaded gateway counts its app's
	// requests in the same series as before.
	before := time.Now()
	if out := g.MustCLI("", "reload"); strings.TrimSpace(out) != "reloaded" {
		t.Fatalf("sluis reload: %s", out)
	}
	if p := g.Get(c, g.URL(wikiHost, "/a")); p.StatusCode != http.StatusOK {
		t.Fatalf("after the reload: %d", p.StatusCode)
	}
	editConfig(t, g, "listen: 127.0.0.1:0\n", "listen: 127.0.0.1:1\n") // cannot change while running
	if out, err := g.CLI("", "reload"); err == nil {
		t.Fatalf("a reload that changes listen was taken: %s", out)
	}
	prom.Await(t, `sluis_config_reloads_total{result="success"}`, within, equals(1))
	prom.Await(t, `sluis_config_reloads_total{result="failure"}`, within, equals(1))
	prom.Await(t, `sluis_config_last_reload_success_timestamp_seconds`, within, func(s []promtest.Sample) bool {
		v, ok := promtest.Value(s)
		return ok && v >= float64(before.Unix())
	})
	// /start, /a, /b, the stream, and /a after the reload.
	prom.Await(t, `sluis_requests_total{app="wiki",code="2xx"}`, within, equals(5))
}

// equals accepts an answer of one sample whose value is want.
func equals(want float64) func([]promtest.Sample) bool {
	return func(s []promtest.Sample) bool {
		v, ok := promtest.Value(s)
		return ok && v == want
	}
}

// The admin listener serves the node's metrics at /metrics to the bearer
// token of admin.metrics.token_file, and nothing without it.
func TestMetricsOnTheAdminListener(t *testing.T) {
	tok := make([]byte, 32)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	tokenFile := filepath.Join(t.TempDir(), "metrics.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testenv.StartAdmin(t, "  metrics:\n    token_file: "+tokenFile+"\n",
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	c := g.AdminClient()
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"the token", "Bearer " + token, http.StatusOK},
		{"no token", "", http.StatusUnauthorized},
		{"a wrong token", "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest("GET", g.AdminURL("/metrics"), nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		p := g.Do(c, req)
		if p.StatusCode != tc.status {
			t.Fatalf("%s: %d, want %d", tc.name, p.StatusCode, tc.status)
		}
		has := strings.Contains(p.Body, `sluis_build_info{goversion="`+runtime.Version()+`"`) && strings.Contains(p.Body, `sluis_requests_open{app="wiki",kind="stream"} 0`)
		if has != (tc.status == http.StatusOK) || strings.Contains(p.Body, token) {
			t.Fatalf("%s: body %.300q", tc.name, p.Body)
		}
	}
	// A real Prometheus scrapes the admin listener by its address, as a
	// scraper whose configuration names no host does; the certificate is
	// checked against admin.host. The console's pages are not served to
	// that address.
	prom := promtest.Start(t, promtest.Target{Addr: g.AdminAddr(), ServerName: testenv.AdminHost, CAFile: filepath.Join(g.Dir, "data", "ca.pem"), Token: token})
	prom.Await(t, `sluis_build_info`, 30*time.Second, func(s []promtest.Sample) bool {
		v, ok := promtest.Value(s)
		return ok && v == 1
	})
	req, _ := http.NewRequest("GET", g.AdminURL("/login"), nil)
	req.Host = g.AdminAddr()
	if p := g.Do(c, req); p.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("the console's login by the listener's address: %d, want 421", p.StatusCode)
	}
}
