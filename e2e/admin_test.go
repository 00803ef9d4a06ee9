package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/admin"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// adminPaths are the paths of every route of the admin listener (its
// patterns' wildcards filled in), and the paths under its prefixes.
func adminPaths(t *testing.T) []string {
	s, err := admin.New(context.Background(), admin.Options{Host: testenv.AdminHost, Port: 9443})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	wildcard := regexp.MustCompile(`\{[^}]*\}`)
	for _, rt := range s.Routes() {
		_, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok {
			path = rt.Pattern
		}
		path = wildcard.ReplaceAllString(path, "x")
		seen[strings.TrimSuffix(path, "x")] = true
		seen[path] = true
	}
	for _, p := range []string{"/", "/login", "/api/v1/", "/api/v1/sessions", "/api/v1/emergency", "/metrics", "/assets/admin.css", "/assets/admin.js"} {
		seen[p] = true
	}
	out := slices.Sorted(func(yield func(string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	})
	if len(out) < 8 {
		t.Fatalf("admin routes: %q", out)
	}
	return out
}

// anyHost is a client that sends requests to addr whatever their URL's
// host, with that host as the TLS server name, accepting any certificate
// (what is checked is the answer, not the certificate).
func anyHost(addr string, h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// answer is a response as compared across the two gateways: its status,
// and its body with what differs between any two answers (error IDs,
// ports, tokens) taken out.
type answer struct {
	status int
	body   string
}

var (
	hexID    = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	token43  = regexp.MustCompile(`[A-Za-z0-9_-]{43}`)
	anyPort  = regexp.MustCompile(`:\d{2,5}\b`)
	adminish = regexp.MustCompile(`(?i)admin console|sluis admin|/assets/admin\.`)
)

func ask(t *testing.T, c *http.Client, method, url string) (answer, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{status: -1, body: err.Error()}, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	body := hexID.ReplaceAllString(string(b), "ID")
	body = token43.ReplaceAllString(body, "TOKEN")
	body = anyPort.ReplaceAllString(body, ":PORT")
	return answer{resp.StatusCode, body}, resp.Header
}

// The public listener serves nothing of the admin listener: no path of the
// console, the API or the metrics answers there, for any method, for any
// host (the portal's, an app's, the admin host's, with the admin port or
// none, an unknown one, an address), over HTTP/1.1 and HTTP/2. Every
// answer is the one a gateway without an admin block gives, byte for byte
// but for error IDs and ports: the public pre-login surface is unchanged
// (portal.TestPreLoginSurfaceIsExactlyThis pins its routes). And the
// public certificate does not name the admin host.
func TestAdminPublicListenerServesNoAdminRoute(t *testing.T) {
	up := newUpstream(t)
	apps := []testenv.App{{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true}}
	// Thousands of odd requests from one address: the probe detector must
	// not block it in the middle of one gateway's run and not the other's.
	probes := "probes:\n  block_after: 10000\n  block_window: 1s\n"
	with := testenv.StartWith(t, probes+testenv.AdminConfig("  metrics:\n    networks: [127.0.0.0/8]\n"), apps...)
	without := testenv.StartWith(t, probes, apps...)
	adminPort := with.AdminPort()
	if adminPort == with.Port {
		t.Fatal("one port for both listeners")
	}

	paths := adminPaths(t)
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"}
	hosts := []string{with.Portal, wikiHost, testenv.AdminHost, "unknown.sluis.test", "127.0.0.1"}
	compared := 0
	for _, h2 := range []bool{false, true} {
		cw, co := anyHost(with.Addr(), h2), anyHost(without.Addr(), h2)
		for _, host := range hosts {
			for _, port := range []string{"", fmt.Sprint(adminPort), "PUBLIC"} {
				for _, path := range paths {
					for _, m := range methods {
						pw, po := port, port
						if port == "PUBLIC" {
							pw, po = fmt.Sprint(with.Port), fmt.Sprint(without.Port)
						}
						url := func(p string) string {
							if p == "" {
								return "https://" + host + path
							}
							return "https://" + net.JoinHostPort(host, p) + path
						}
						a, ah := ask(t, cw, m, url(pw))
						b, _ := ask(t, co, m, url(po))
						compared++
						if a != b {
							t.Errorf("%s %s (h2 %v): with an admin block %d %q, without %d %q", m, url(pw), h2, a.status, cut(a.body), b.status, cut(b.body))
							continue
						}
						if a.status == -1 || a.status == http.StatusOK && m != "GET" && m != "HEAD" || adminish.MatchString(a.body) {
							t.Errorf("%s %s (h2 %v): %d %q", m, url(pw), h2, a.status, cut(a.body))
						}
						if ah.Get("Content-Type") == "application/json" && strings.HasPrefix(path, "/api/") || strings.Contains(ah.Get("Content-Type"), "openmetrics") || strings.Contains(a.body, "# HELP") {
							t.Errorf("%s %s: an API or metrics answer: %v %q", m, url(pw), ah, cut(a.body))
						}
					}
				}
			}
		}
	}
	t.Logf("%d requests compared", compared)
	// The admin host sent to the public port is not a host of the gateway.
	if a, _ := ask(t, anyHost(with.Addr(), false), "GET", fmt.Sprintf("https://%s:%d/", testenv.AdminHost, with.Port)); a.status != http.StatusMisdirectedRequest {
		t.Errorf("the admin host on the public port: %d, want 421", a.status)
	}

	// The public certificate names the portal and the apps, never the
	// admin host; the admin listener's names the admin host alone.
	names := func(addr, sni string) []string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].DNSNames
	}
	if n := names(with.Addr(), testenv.AdminHost); slices.Contains(n, testenv.AdminHost) {
		t.Errorf("the public certificate names the admin host: %q", n)
	}
	if n := names(with.AdminAddr(), testenv.AdminHost); !slices.Equal(n, []string{testenv.AdminHost}) {
		t.Errorf("the admin certificate names %q", n)
	}
	// Both chain to the gateway's CA.
	conn, err := tls.Dial("tcp", with.AdminAddr(), &tls.Config{ServerName: testenv.AdminHost, RootCAs: with.CA})
	if err != nil {
		t.Fatalf("the admin listener's certificate: %v", err)
	}
	conn.Close()
}

func cut(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// The admin listener answers only to its own host name (with its port):
// any other Host, as a DNS rebinding sends, or another TLS server name, gets
// 421, with the console's security headers. It speaks TLS 1.2 and 1.3
// only, with AEAD suites, as the public listener does.
func TestAdminListenerHostCheck(t *testing.T) {
	g := testenv.StartAdmin(t, "")
	port := g.AdminPort()
	c := anyHost(g.AdminAddr(), false)
	for _, tc := range []struct {
		host string
		want int
	}{
		{fmt.Sprintf("%s:%d", testenv.AdminHost, port), http.StatusSeeOther},
		{fmt.Sprintf("%s:%d", strings.ToUpper(testenv.AdminHost), port), http.StatusSeeOther},
		{testenv.AdminHost, http.StatusMisdirectedRequest}, // the port is not 443
		{fmt.Sprintf("%s:%d", testenv.AdminHost, port+1), http.StatusMisdirectedRequest},
		{fmt.Sprintf("%s.:%d", testenv.AdminHost, port), http.StatusMisdirectedRequest},
		{fmt.Sprintf("%s:%d", g.Portal, port), http.StatusMisdirectedRequest},
		{fmt.Sprintf("evil.example:%d", port), http.StatusMisdirectedRequest},
		{fmt.Sprintf("127.0.0.1:%d", port), http.StatusMisdirectedRequest},
	} {
		req, _ := http.NewRequest("GET", fmt.Sprintf("https://%s:%d/", testenv.AdminHost, port), nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("Host %q: %v", tc.host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %q: %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("Host %q: no %s", tc.host, h)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("Host %q: CSP %q", tc.host, csp)
		}
	}
	// The right Host with another TLS server name.
	other := &http.Client{Transport: &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return net.Dial("tcp", g.AdminAddr()) },
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: g.Portal},
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", fmt.Sprintf("https://%s:%d/", testenv.AdminHost, port), nil)
	if resp, err := other.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("another server name: %v %v", resp, err)
	}
	// TLS: 1.2 with AEAD suites and 1.3; nothing older, no CBC.
	for _, tc := range []struct {
		conf *tls.Config
		ok   bool
	}{
		{&tls.Config{MinVersion: tls.VersionTLS13}, true},
		{&tls.Config{MaxVersion: tls.VersionTLS12}, true},
		{&tls.Config{MaxVersion: tls.VersionTLS11}, false},
		{&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false},
	} {
		tc.conf.ServerName, tc.conf.RootCAs = testenv.AdminHost, g.CA
		conn, err := tls.Dial("tcp", g.AdminAddr(), tc.conf)
		if (err == nil) != tc.ok {
			t.Errorf("TLS %x-%x %v: %v", tc.conf.MinVersion, tc.conf.MaxVersion, tc.conf.CipherSuites, err)
		}
		if err == nil {
			conn.Close()
		}
	}
}

// The console and its API behind one login (here with allow_totp, a code
// in place of the passkey, as a script's test logs in): without it the
// API answers 401; a viewer reads but changes nothing (403); a write needs
// a JSON body (415) from the console's own origin (403 from another); an
// operator's change counts at once on the public listener. `sluis session
// revoke --user` ends a console session too.
func TestAdminAPIBehindTheConsoleLogin(t *testing.T) {
	up := newUpstream(t)
	g := testenv.StartAdmin(t, "  allow_totp: true\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	secrets := map[string]string{}
	for user, group := range map[string]string{"vera": "auditors", "olga": "ict-ops"} {
		secrets[user] = g.AddUser(user, pw, group, "staff")
	}
	api := func(c *http.Client, method, path, ctype, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, g.AdminURL("/api/v1"+path), strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		p := g.Do(c, req)
		return p.StatusCode, p.Body
	}
	if s, body := api(g.AdminClient(), "GET", "/overview", "", ""); s != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
		t.Fatalf("the API without a login: %d %s", s, body)
	}
	vera := g.AdminLogin("vera", pw, secrets["vera"])
	if s, body := api(vera, "GET", "/overview", "", ""); s != http.StatusOK || !strings.Contains(body, `"emergency"`) {
		t.Fatalf("the overview for a viewer: %d %s", s, body)
	}
	if s, body := api(vera, "POST", "/emergency", "application/json", `{"level":"closed","reason":"x"}`); s != http.StatusForbidden {
		t.Fatalf("a viewer sets a level: %d %s", s, body)
	}
	olga := g.AdminLogin("olga", pw, secrets["olga"])
	if s, body := api(olga, "POST", "/emergency", "application/x-www-form-urlencoded", `level=closed&reason=x`); s != http.StatusUnsupportedMediaType {
		t.Fatalf("a form to the API: %d %s", s, body)
	}
	if s, body := api(olga, "POST", "/emergency", "application/json", `{"level":"closed","reason":"x"}`, "Origin", g.URL(g.Portal, ""), "Sec-Fetch-Site", "same-site"); s != http.StatusForbidden {
		t.Fatalf("a write from the portal's origin: %d %s", s, body)
	}
	if out := g.MustCLI("", "emergency", "status"); !strings.HasPrefix(out, "level normal") {
		t.Fatalf("a refused write changed the level: %s", out)
	}
	if s, body := api(olga, "POST", "/emergency", "application/json", `{"level":"closed","reason":"API test"}`); s != http.StatusOK {
		t.Fatalf("an operator sets a level: %d %s", s, body)
	}
	if p := g.Get(g.Client(), g.URL(g.Portal, "/login")); !strings.Contains(p.Body, "Access through the gateway is closed: API test") {
		t.Fatalf("the portal at closed:\n%s", p.Body)
	}
	if out := g.MustCLI("", "audit", "--json"); !strings.Contains(out, `"detail":"by olga; level closed until changed; API test"`) {
		t.Fatalf("the trail:\n%s", out)
	}
	// The console's session is a store session.
	g.MustCLI("", "session", "revoke", "--user", "vera")
	if p := g.Get(vera, g.AdminURL("/")); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("the console after session revoke --user: %d", p.StatusCode)
	}
}

// A reload's apps count on the console at once (the apps page lists an
// added app, and an operator switches it off there); a reload that
// changes the admin block is refused at its line, and the console goes
// on.
func TestAdminConsoleFollowsReload(t *testing.T) {
	up := newUpstream(t)
	g := testenv.StartAdmin(t, "  allow_totp: true\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	olga := g.AdminLogin("olga", pw, g.AddUser("olga", pw, "ict-ops", "staff"))
	if p := g.Get(olga, g.AdminURL("/apps")); !strings.Contains(p.Body, `data-app="wiki"`) || strings.Contains(p.Body, `data-app="docs"`) {
		t.Fatalf("apps before the reload:\n%s", p.Body)
	}
	cfg, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	added := strings.Replace(string(cfg), "apps:\n", "apps:\n  - name: docs\n    host: docs.sluis.test\n    upstream: "+up.URL+"\n    allow:\n      groups: [staff]\n", 1)
	if err := os.WriteFile(g.ConfigPath, []byte(added), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := g.MustCLI("", "reload"); strings.TrimSpace(out) != "reloaded" {
		t.Fatalf("reload: %s", out)
	}
	if p := g.Get(olga, g.AdminURL("/apps")); !strings.Contains(p.Body, `data-app="docs"`) {
		t.Fatalf("the apps page after the reload:\n%s", p.Body)
	}
	if p := g.AdminPost(olga, "/apps/docs/disable", url.Values{"confirm": {"1"}, "reason": {"not yet open"}}); p.StatusCode != http.StatusOK || !strings.Contains(p.Body, "App docs is switched off") {
		t.Fatalf("switching the new app off: %d\n%s", p.StatusCode, p.Body)
	}
	changed := strings.Replace(added, "operator: [ict-ops]", "operator: [ict-ops, staff]", 1)
	if err := os.WriteFile(g.ConfigPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := g.CLI("", "reload"); err == nil || !strings.Contains(out+err.Error(), "admin: admin cannot change while running (restart sluis serve)") {
		t.Fatalf("a reload of the admin block: %v\n%s", err, out)
	}
	if p := g.Get(olga, g.AdminURL("/")); p.StatusCode != http.StatusOK {
		t.Fatalf("the console after a refused reload: %d", p.StatusCode)
	}
}
