package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/haproxytest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// The load balancers the gateway is tested behind: a real HAProxy in HTTP
// mode (it terminates TLS with a certificate of its own, adds
// X-Forwarded-For, and speaks TLS to the gateway, verifying it with the
// gateway's CA) and in TCP mode (TLS passes through to the gateway,
// preceded by a PROXY protocol v2 header). Either way the gateway sees
// every connection come from 127.0.0.9, the balancer, and trusts it;
// clients connect from other addresses (127.0.0.1 for those that cannot
// choose, such as Chromium and sluis connect).
var balancers = []struct {
	name  string
	mode  string
	extra string
}{
	{"HTTP mode with X-Forwarded-For", "http", ""},
	{"TCP mode with the PROXY protocol v2", "tcp", "proxy_protocol: true\n"},
}

const (
	opsHost = "ops.sluis.test"
	// balancerAddr is where the balancer connects to the gateway from.
	balancerAddr = "127.0.0.9"
)

// behind starts a gateway with public_url and trusted_proxies behind a
// HAProxy in mode, with the apps of setup and ops (for ann and bob, from
// 127.0.0.2 only). Its clients connect to HAProxy.
func behind(t *testing.T, mode, extra string) (*world, *haproxytest.HAProxy) {
	t.Helper()
	port := haproxytest.FreePort()
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	ops := newUpstream(t)
	w.g = testenv.StartWith(t, fmt.Sprintf("public_url: https://login.sluis.test:%d\ntrusted_proxies: [127.0.0.9/32]\n%s", port, extra),
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: w.hr.URL, Groups: []string{"hr"}, MFA: true},
		testenv.App{Name: "ops", Host: opsHost, Upstream: ops.URL, NoAllow: true,
			Extra: "    allow:\n      users: [ann, bob]\n      mfa: true\n      networks: [127.0.0.2/32]\n"},
	)
	cfg := haproxytest.Config{Mode: mode, Backend: w.g.Addr(), Port: port, Source: balancerAddr}
	if mode == "http" {
		cfg.Hosts = []string{w.g.Portal, wikiHost, hrHost, opsHost}
		cfg.BackendCA, cfg.BackendName = filepath.Join(w.g.Dir, "data", "ca.pem"), w.g.Portal
	} else {
		cfg.SendProxy = true
	}
	h := haproxytest.Start(t, cfg)
	w.g.Front, w.g.FrontCA, w.g.PublicPort = h.Addr, h.CA, h.Port
	return w, h
}

// Behind a balancer every user is still told apart: logins work and are
// recorded under the user's own address, the URLs the gateway builds carry
// the balancer's port, a client that probes is blocked alone (though it
// names another client in X-Forwarded-For), and policy networks see the
// user's address.
func TestBehindBalancer(t *testing.T) {
	for _, b := range balancers {
		t.Run(b.name, func(t *testing.T) {
			w, h := behind(t, b.mode, b.extra)
			g := w.g
			annSecret := g.AddUser("ann", pw, "staff")
			bobSecret := g.AddUser("bob", pw, "staff")

			// Redirects carry the balancer's port, not the gateway's.
			ann := g.ClientFrom("127.0.0.2")
			p := g.Get(ann, g.URL(wikiHost, "/start"))
			loc, err := url.Parse(p.Header.Get("Location"))
			if p.StatusCode != http.StatusSeeOther || err != nil || loc.Host != fmt.Sprintf("%s:%d", g.Portal, h.Port) ||
				loc.Query().Get("rd") != fmt.Sprintf("https://%s:%d/start", wikiHost, h.Port) {
				t.Fatalf("redirect to login: %d %q", p.StatusCode, p.Header.Get("Location"))
			}
			// Login through the balancer, back to the app: the return URL
			// with the balancer's port is accepted, and the app learns
			// the user's address and the public host.
			if p := g.Login(ann, g.URL(wikiHost, "/start"), "ann", pw, annSecret); p.StatusCode != http.StatusOK || p.Request.URL.Port() != fmt.Sprint(h.Port) {
				t.Fatalf("login through the balancer: %d at %s\n%s", p.StatusCode, p.Request.URL, p.Body)
			}
			up := w.wiki.last(t)
			if got := up.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.2" {
				t.Fatalf("the app got X-Forwarded-For %q, want the user's address alone", got)
			}
			if got := up.Header.Get("X-Forwarded-Host"); got != fmt.Sprintf("%s:%d", wikiHost, h.Port) {
				t.Fatalf("the app got X-Forwarded-Host %q", got)
			}
			// The policy's networks see the user's address: ann, from
			// 127.0.0.2, may use ops; bob, from 127.0.0.4, may not.
			if p := g.Get(ann, g.URL(opsHost, "/")); p.StatusCode != http.StatusSeeOther {
				t.Fatalf("ops for ann: %d", p.StatusCode)
			} else if p = g.Follow(ann, p); p.StatusCode != http.StatusOK {
				t.Fatalf("ops for ann from 127.0.0.2: %d\n%s", p.StatusCode, p.Body)
			}
			bob := g.ClientFrom("127.0.0.4")
			if p := g.Login(bob, g.URL(wikiHost, "/start"), "bob", pw, bobSecret); p.StatusCode != http.StatusOK {
				t.Fatalf("bob's login: %d", p.StatusCode)
			}
			if p := g.Follow(bob, g.Get(bob, g.URL(opsHost, "/"))); p.StatusCode != http.StatusForbidden {
				t.Fatalf("ops for bob from 127.0.0.4: %d, want 403", p.StatusCode)
			}

			// A scanner behind the same balancer probes, naming ann's
			// address in X-Forwarded-For: it is blocked, and only it.
			scanner := g.ClientFrom("127.0.0.3")
			for range 10 {
				req, _ := http.NewRequest("GET", g.URL(g.Portal, "/vpns/cfg/smb.conf"), nil)
				req.Header.Set("X-Forwarded-For", "127.0.0.2")
				g.Do(scanner, req)
			}
			if p := g.Get(scanner, g.URL(g.Portal, "/login")); p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "your network address are blocked") {
				t.Fatalf("the scanner after its probes: %d\n%s", p.StatusCode, p.Body)
			}
			list := g.MustCLI("", "block", "list")
			if !strings.Contains(list, "127.0.0.3/32  automatic") || strings.Contains(list, balancerAddr+"/") || strings.Contains(list, "127.0.0.2/") {
				t.Fatalf("block list:\n%s", list)
			}
			// Ann, behind the same balancer, is still served, and so is
			// somebody new.
			if p := g.Get(ann, g.URL(wikiHost, "/start")); p.StatusCode != http.StatusOK {
				t.Fatalf("ann after the scanner's block: %d", p.StatusCode)
			}
			if p := g.Get(g.ClientFrom("127.0.0.5"), g.URL(g.Portal, "/login")); p.StatusCode != http.StatusOK {
				t.Fatalf("a new client after the scanner's block: %d", p.StatusCode)
			}

			// The audit trail names the users' and the scanner's
			// addresses, never the balancer's.
			sources := map[string]string{}
			for _, ev := range assertAudit(t, g, "login.success", "security.probe", "security.blocked", "access.denied") {
				src, _ := ev["source"].(string)
				if src == balancerAddr {
					t.Errorf("event with the balancer's address: %v", ev)
				}
				typ, _ := ev["type"].(string)
				if user, _ := ev["user"].(string); user != "" {
					typ += " " + user
				}
				if _, ok := sources[typ]; !ok {
					sources[typ] = src
				}
			}
			for typ, want := range map[string]string{"login.success ann": "127.0.0.2", "login.success bob": "127.0.0.4",
				"access.denied bob": "127.0.0.4", "security.probe": "127.0.0.3", "security.blocked": "127.0.0.3"} {
				if sources[typ] != want {
					t.Errorf("%s from %q, want %s", typ, sources[typ], want)
				}
			}
		})
	}
}

// Straight to the gateway, past the balancer, X-Forwarded-For and
// Forwarded are a client's words and change nothing: probes that name
// another address block the prober, and a PROXY header from a client is
// refused (it would name any address it liked).
func TestBehindBalancerForgedHeadersFromElsewhere(t *testing.T) {
	for _, b := range balancers {
		t.Run(b.name, func(t *testing.T) {
			w, _ := behind(t, b.mode, b.extra)
			g := w.g
			direct := g.ClientTo(g.Addr(), g.CA, "127.0.0.6")
			for range 10 {
				req, _ := http.NewRequest("GET", g.URL(g.Portal, "/vpns/cfg/smb.conf"), nil)
				req.URL.Host = fmt.Sprintf("%s:%d", g.Portal, g.Port)
				req.Header.Set("X-Forwarded-For", "127.0.0.2")
				req.Header.Set("Forwarded", "for=127.0.0.2")
				g.Do(direct, req)
			}
			list := g.MustCLI("", "block", "list")
			if !strings.Contains(list, "127.0.0.6/32  automatic") || strings.Contains(list, "127.0.0.2/") {
				t.Fatalf("block list after forged probes:\n%s", list)
			}
			// 127.0.0.2 is still served, through the balancer.
			if p := g.Get(g.ClientFrom("127.0.0.2"), g.URL(g.Portal, "/login")); p.StatusCode != http.StatusOK {
				t.Fatalf("the named address after the forger's block: %d", p.StatusCode)
			}
			for _, ev := range assertAudit(t, g, "security.probe") {
				if ev["type"] == "security.probe" && ev["source"] != "127.0.0.6" {
					t.Errorf("probe recorded from %v", ev["source"])
				}
			}

			// A PROXY header from a client that is not a trusted proxy:
			// the connection is closed, with or without proxy_protocol
			// (without it, the header is no TLS and fails the handshake).
			d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}
			conn, err := d.Dial("tcp", g.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "PROXY TCP4 127.0.0.2 127.0.0.1 40000 %d\r\n", g.Port)
			if status := tryLogin(conn, g); status != "" {
				t.Fatalf("a client's PROXY header was taken: %s", status)
			}
			// A client that connects directly without a header is served,
			// with or without proxy_protocol.
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.8")}
			plain, err := d.Dial("tcp", g.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if status := tryLogin(plain, g); status != "200 OK" {
				t.Fatalf("a direct client: %q", status)
			}
			// With proxy_protocol, the balancer's address must send a
			// header: a connection from it without one is closed.
			if b.mode == "tcp" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(balancerAddr)}
				conn, err := d.Dial("tcp", g.Addr())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if status := tryLogin(conn, g); status != "" {
					t.Fatalf("a connection from the balancer without a PROXY header was served: %s", status)
				}
			}
		})
	}
}

// tryLogin speaks TLS on conn and asks for the login page; it returns
// the status, or "" if the connection was refused.
func tryLogin(conn net.Conn, g *testenv.Gateway) string {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, g.TLSConfig(g.Portal))
	if err := tc.Handshake(); err != nil {
		return ""
	}
	tc.Write([]byte("GET /login HTTP/1.1\r\nHost: " + g.Portal + "\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return ""
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Status
}

// A passkey is bound to the portal's origin as users see it: behind a TCP
// balancer (TLS passes through, so Chromium trusts the gateway's own key)
// on another port than the gateway's, a person adds a passkey at the
// balancer's origin and logs in with it alone, in a real browser.
func TestBehindBalancerPasskeys(t *testing.T) {
	w, h := behind(t, "tcp", "proxy_protocol: true\n")
	g := w.g
	secret := g.AddUser("ann", pw, "staff")
	bctx := passkeyBrowser(t, g)
	var keys, at string
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.URL(wikiHost, "/start")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "ann"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), g.Code("ann", secret)),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.CSS("pre")),
		chromedp.Navigate(g.URL(g.Portal, "/passkeys")),
		chromedp.WaitVisible(chromedp.ID("passkey-name")),
		chromedp.SendKeys(chromedp.ID("passkey-name"), "laptop"),
		chromedp.Click(chromedp.ID("passkey-add")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.CSS("td.key-name"))
	}
	if err == nil {
		err = chromedp.Do(bctx, into(&keys, chromedp.Text(chromedp.CSS("table.keys"))))
	}
	if err != nil || !strings.Contains(keys, "laptop") {
		t.Fatalf("adding a passkey at port %d: %v %q\n%s", h.Port, err, keys, g.Logs())
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/")),
		chromedp.WaitVisible(chromedp.CSS(".logout button")),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Navigate(g.URL(wikiHost, "/start")),
		chromedp.WaitVisible(chromedp.ID("passkey-login")),
		chromedp.Click(chromedp.ID("passkey-login")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.CSS("pre"))
	}
	if err == nil {
		err = chromedp.Do(bctx, into(&at, chromedp.Location()))
	}
	if err != nil || at != g.URL(wikiHost, "/start") {
		t.Fatalf("passwordless login through the balancer: %v, at %q\n%s", err, at, g.Logs())
	}
	if audit := g.MustCLI("", "audit"); !strings.Contains(audit, "passwordless") {
		t.Fatalf("no passwordless login in the audit trail:\n%s", audit)
	}
}

// Tunnels through the balancer: `sluis connect` logs in and carries TCP
// through HAProxy (HTTP mode: over the balancer's own TLS, and HTTP/2 to
// the gateway, as the README says it must be: over HTTP/1.1 HAProxy sends
// the tunnel's stream chunked, which the portal host refuses before
// login), and the tunnel's audit names the client's address, not the
// balancer's.
func TestBehindBalancerTunnels(t *testing.T) {
	for _, b := range balancers {
		t.Run(b.name, func(t *testing.T) {
			echo := newEcho(t)
			port := haproxytest.FreePort()
			g := testenv.StartWith(t, fmt.Sprintf("public_url: https://login.sluis.test:%d\ntrusted_proxies: [%s/32]\n%s", port, balancerAddr, b.extra),
				testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
			cfg := haproxytest.Config{Mode: b.mode, Backend: g.Addr(), Port: port, Source: balancerAddr, SendProxy: b.mode == "tcp",
				Hosts: []string{g.Portal}, BackendCA: filepath.Join(g.Dir, "data", "ca.pem"), BackendName: g.Portal, BackendHTTP2: true}
			h := haproxytest.Start(t, cfg)
			g.Front, g.FrontCA, g.PublicPort = h.Addr, h.CA, h.Port
			ca := filepath.Join(g.Dir, "data", "ca.pem")
			if b.mode == "http" {
				ca = h.CAFile
			}
			secret := g.AddUser("anna", pw, "staff")
			c := startConnect(t, g, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret),
				"--connect", h.Addr, "--ca", ca)
			if err := roundTrip(t, c.addr, 1<<20); err != nil {
				t.Fatalf("through the tunnel: %v\n%s\n%s", err, c.stderr, g.Logs())
			}
			await(t, 5*time.Second, "tunnel.close", func() bool { return strings.Contains(g.MustCLI("", "audit"), "tunnel.close") })
			opened := 0
			for _, ev := range assertAudit(t, g, "login.success", "tunnel.open", "tunnel.close") {
				if ev["source"] == balancerAddr {
					t.Errorf("event with the balancer's address: %v", ev)
				}
				if ev["type"] == "tunnel.open" && ev["source"] == "127.0.0.1" {
					opened++
				}
			}
			if opened != 1 {
				t.Errorf("%d tunnel.open events from the client's address, want 1", opened)
			}
		})
	}
}

// The OIDC callback a provider is asked to send users back to is the
// portal's public URL, with the balancer's port.
func TestBehindBalancerOIDCCallback(t *testing.T) {
	var issuer string
	op := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":"%s/authorize","token_endpoint":"%s/token","jwks_uri":"%s/keys","response_types_supported":["code"],"id_token_signing_alg_values_supported":["RS256"]}`,
			issuer, issuer, issuer, issuer)
	}))
	t.Cleanup(op.Close)
	issuer = op.URL
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(secret, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, h := behind(t, "http", fmt.Sprintf("oidc:\n  - name: idp\n    issuer: %s\n    client_id: web\n    client_secret_file: %s\n", issuer, secret))
	g := w.g
	p := g.Get(g.ClientFrom("127.0.0.2"), g.URL(g.Portal, "/login/oidc/idp"))
	loc, err := url.Parse(p.Header.Get("Location"))
	if p.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), issuer+"/authorize?") {
		t.Fatalf("single sign-on start: %d %q\n%s", p.StatusCode, p.Header.Get("Location"), p.Body)
	}
	if got, want := loc.Query().Get("redirect_uri"), fmt.Sprintf("https://%s:%d/login/oidc/idp/callback", g.Portal, h.Port); got != want {
		t.Fatalf("redirect_uri %q, want %q", got, want)
	}
}

// A form posted by a browser that sends Origin without Sec-Fetch-Site is
// the portal's own when its origin is the public one, with the balancer's
// port; the gateway's own port is another origin.
func TestBehindBalancerFormOrigin(t *testing.T) {
	w, h := behind(t, "http", "")
	g := w.g
	tests := []struct {
		origin    string
		forbidden bool
	}{
		{fmt.Sprintf("https://%s:%d", g.Portal, h.Port), false},
		{fmt.Sprintf("https://%s:%d", g.Portal, g.Port), true},
		{"https://" + g.Portal, true},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			c := g.ClientFrom("127.0.0.2")
			form := g.Get(c, g.URL(g.Portal, "/login"))
			req, _ := http.NewRequest("POST", g.URL(g.Portal, "/login"),
				strings.NewReader(url.Values{"csrf": {testenv.CSRF(form.Body)}, "username": {"nobody"}, "password": {"wrong"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", tt.origin)
			p := g.Do(c, req)
			if (p.StatusCode == http.StatusForbidden) != tt.forbidden {
				t.Fatalf("status %d, want forbidden %v\n%s", p.StatusCode, tt.forbidden, p.Body)
			}
		})
	}
}

// With the PROXY protocol the gateway knows each connection's client:
// max_per_source caps a client's connections through the balancer, while
// the balancer, which holds them all, is not capped as one source.
func TestBehindBalancerConnectionCapsPerClient(t *testing.T) {
	w, h := behind(t, "tcp", "proxy_protocol: true\nconnections:\n  max_per_source: 2\n")
	g := w.g
	dial := func(src string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		conn, err := d.Dial("tcp", h.Addr)
		if err != nil {
			return nil, err
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(conn, g.TLSConfig(g.Portal))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn.SetDeadline(time.Time{})
		t.Cleanup(func() { tc.Close() })
		return tc, nil
	}
	for i, src := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"} {
		if _, err := dial(src); err != nil {
			t.Fatalf("connection %d from %s: %v", i, src, err)
		}
	}
	if _, err := dial("127.0.0.2"); err == nil {
		t.Fatal("a third connection of one client through the balancer was admitted")
	}
	if !strings.Contains(g.Logs(), "max_per_source") || !strings.Contains(g.Logs(), "source=127.0.0.2") {
		t.Fatalf("the refusal is not logged under the client:\n%s", g.Logs())
	}
	// Another client is still admitted: four connections from the
	// balancer's address are open already.
	if _, err := dial("127.0.0.4"); err != nil {
		t.Fatalf("another client: %v", err)
	}
}
