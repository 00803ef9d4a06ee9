package e2e

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Ordinary traffic through a real gateway records no security.probe: the
// login flow, the launcher and the portal's pages, and the requests of the
// apps usually put behind a gateway, sent first without a session (when
// the probe rules are applied to them) and again after login.
func TestOrdinaryTrafficRecordsNoProbe(t *testing.T) {
	w := setup(t)
	g := w.g
	const password = `c0rrect h0rse; b@ttery! 'staple' $(not) | & "quoted" <x> %20`
	secret := g.AddUser("anna", password, "staff")

	jwt := "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbm5hIiwiZXhwIjoxNzMyMDAwMDAwLCJncm91cHMiOlsic3RhZmYiXX0.MEUCIQDxk3pYQ2x-9l_Z8vT0mR4nB7cW1eD6fG5hJ2kL3pQ0rU"
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	type appRequest struct {
		method, path string
		header       map[string]string
	}
	app := []appRequest{
		{"GET", "/docs/remote-work/vpn-guide", nil},
		{"GET", "/display/ENG/On-call+runbook?focusedCommentId=1234#comment-1234", nil},
		{"GET", "/infra/ansible/-/merge_requests/412/diffs?commit_id=3f2a1b0c9d8e7f6a5b4c", map[string]string{"Cookie": "known_sign_in=VWpXbzB0Y; event_filter=all"}},
		{"GET", "/search?search=SELECT+name+FROM+users+WHERE+id+%3D+%3F&scope=blobs", nil},
		{"GET", "/search?q=students%27+and+teachers%27+handbook+dogs%3B+cat+toys", nil},
		{"GET", "/d/abc123/node-exporter-full?orgId=1&from=now-6h&to=now&var-job=node&var-instance=All&refresh=30s", map[string]string{"Cookie": "grafana_session_expiry=1732000000"}},
		{"POST", "/api/ds/query?ds_type=prometheus&requestId=SQR101", map[string]string{"Content-Type": "application/json", "X-Grafana-Org-Id": "1"}},
		{"GET", "/api/queues/vhost/orders.created?lengths_age=60&lengths_incr=5", map[string]string{"Authorization": basic("ops", "colon:and;semi|pipe$dollar'quote")}},
		{"GET", "/api/overview", map[string]string{"Authorization": basic("monitor", "s3cr3t!#hash&amp")}},
		{"GET", "/lab/tree/notebooks/analysis.ipynb", nil},
		{"PUT", "/api/contents/notebooks/Untitled1.ipynb", map[string]string{"Content-Type": "application/json"}},
		{"GET", "/remote.php/dav/files/anna/Documents/", map[string]string{"Authorization": basic("anna", "app-password-Xk9Lm-2Qw8Z")}},
		{"GET", "/api/v1/users/me", map[string]string{"Authorization": "Bearer " + jwt}},
		{"GET", "/autodiscover/autodiscover.json?Email=anna%40sluis.test&Protocol=ActiveSync", nil},
		{"OPTIONS", "/api/v1/items", map[string]string{"Origin": "https://" + wikiHost, "Access-Control-Request-Method": "PUT"}},
		{"GET", "/menu/today", nil},
		{"GET", "/wiki/Caf%C3%A9_menu", nil},
		// An app's own paths that are also on scanners' lists: on an app
		// host they are the app's (frontdoor.BroadRule).
		{"GET", "/webui/index.html", nil},
		{"GET", "/tmp/scratch-project/-/tree/main", nil},
		{"GET", "/actuator/health", nil},
		{"GET", "/cgi-bin/koha/opac-search.pl?q=remote+work", nil},
	}
	send := func(c *http.Client, host string, r appRequest) {
		t.Helper()
		req, err := http.NewRequest(r.method, g.URL(host, r.path), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		req.Header.Set("Accept-Language", "nl-NL,nl;q=0.9,en;q=0.8")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
		for k, v := range r.header {
			req.Header.Set(k, v)
		}
		if p := g.Do(c, req); p.StatusCode == http.StatusForbidden {
			t.Errorf("%s %s %s: 403", r.method, host, r.path)
		}
	}

	// Before login, the rules are applied to every app request.
	anon := g.Client()
	for _, r := range app {
		send(anon, wikiHost, r)
	}
	// An OIDC-style hand-over with long code and state, which fails.
	send(anon, wikiHost, appRequest{"GET", "/.sluis/callback?code=" + strings.Repeat("sYc2XqL0d9Jm4Rk7Vt1W", 8) + "&state=" + strings.Repeat("Zq8Lx3Vb6Nm1Kj4H", 6), nil})

	// The portal's pre-login surface.
	for _, p := range []string{
		"/login",
		"/login?rd=" + url.QueryEscape(g.URL(wikiHost, "/display/ENG/On-call+runbook?focus=comment-1234&q=a%20b%25c")),
		"/assets/sluis.css", "/assets/passkey.js", "/.well-known/jwks.json", "/healthz",
		"/login/oidc/entra/callback?code=0.AXoAv4j5cvGGr0GRqy180BHbR8b1dL5S0vJLhjKo-U3vXq16AAA.AgABAAIAAAAmoFfGtYxvRrNriQdPKIZ&state=eyJyZCI6Imh0dHBzOi8vd2lraSJ9.MEUCIQDx&session_state=5c1f2a3b-4d5e-6f70-8192-a3b4c5d6e7f8",
	} {
		send(anon, g.Portal, appRequest{"GET", p, nil})
	}

	// Log in (password with punctuation, then TOTP), open the wiki, the
	// launcher and the portal's pages, use the apps, log out.
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/docs/page?id=7"), "anna", password, secret); p.StatusCode != 200 {
		t.Fatalf("login: %d\n%s", p.StatusCode, p.Body)
	}
	for _, p := range []string{"/", "/passkeys", "/device"} {
		if page := g.Get(c, g.URL(g.Portal, p)); page.StatusCode != 200 {
			t.Errorf("portal %s: %d", p, page.StatusCode)
		}
	}
	for _, r := range app {
		send(c, wikiHost, r)
	}
	launcher := g.Get(c, g.URL(g.Portal, "/"))
	if p := g.Post(c, g.URL(g.Portal, "/logout"), url.Values{"csrf": {testenv.CSRF(launcher.Body)}}); p.StatusCode >= 400 {
		t.Errorf("logout: %d", p.StatusCode)
	}

	for _, ev := range assertAudit(t, g, "login.success", "mfa.success") {
		if ev["type"] == "security.probe" || ev["type"] == "security.blocked" {
			t.Errorf("ordinary traffic recorded %v: %v", ev["type"], ev["detail"])
		}
	}
}
