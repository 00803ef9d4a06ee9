package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// The upstream's own address stays behind the gateway: its absolute
// redirects, Content-Location, Refresh and cookie domains are translated to
// the public face, WebDAV's Destination the other way; X-Forwarded-Host has
// the public port; with preserve_host the app sees the public host instead.
func TestHostAndRedirects(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{} // by path: what the app received
	hosts := map[string]string{}
	var upstream string
	app := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path], hosts[r.URL.Path] = r.Header.Clone(), r.Host
		mu.Unlock()
		switch r.URL.Path {
		case "/go":
			w.Header().Set("Content-Location", upstream+"/here")
			w.Header().Set("Refresh", "0; url="+upstream+"/later")
			http.SetCookie(w, &http.Cookie{Name: "app", Value: "1", Domain: "127.0.0.1", Path: "/"})
			http.Redirect(w, r, upstream+"/next?x=1", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, r, "https://other.example/", http.StatusFound)
		}
	})
	upstream = app
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: app, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: app, Groups: []string{"staff"}, MFA: true, Extra: "    preserve_host: true\n"})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/"), "anna", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", p.StatusCode)
	}
	public := fmt.Sprintf("https://%s:%d", wikiHost, g.Port)

	p := g.Get(c, g.URL(wikiHost, "/go"))
	if loc := p.Header.Get("Location"); loc != public+"/next?x=1" {
		t.Errorf("Location %q, want %q", loc, public+"/next?x=1")
	}
	if cl := p.Header.Get("Content-Location"); cl != public+"/here" {
		t.Errorf("Content-Location %q", cl)
	}
	if rf := p.Header.Get("Refresh"); rf != "0; url="+public+"/later" {
		t.Errorf("Refresh %q", rf)
	}
	if sc := strings.Join(p.Header.Values("Set-Cookie"), "|"); !strings.HasPrefix(sc, "app=1") || strings.Contains(strings.ToLower(sc), "domain=") {
		t.Errorf("Set-Cookie %q", sc)
	}
	if loc := g.Get(c, g.URL(wikiHost, "/elsewhere")).Header.Get("Location"); loc != "https://other.example/" {
		t.Errorf("a redirect elsewhere was changed: %q", loc)
	}
	mu.Lock()
	fwdHost, upHost := seen["/go"].Get("X-Forwarded-Host"), hosts["/go"]
	mu.Unlock()
	if fwdHost != fmt.Sprintf("%s:%d", wikiHost, g.Port) || !strings.HasPrefix(upstream, "http://"+upHost) {
		t.Errorf("X-Forwarded-Host %q, Host %q", fwdHost, upHost)
	}

	// WebDAV MOVE: the client names the public URL.
	req, _ := http.NewRequest("MOVE", g.URL(wikiHost, "/dav/a.txt"), nil)
	req.Header.Set("Destination", public+"/dav/b%20c.txt")
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	mu.Lock()
	dest := seen["/dav/a.txt"].Get("Destination")
	mu.Unlock()
	if dest != upstream+"/dav/b%20c.txt" {
		t.Errorf("Destination %q, want %q", dest, upstream+"/dav/b%20c.txt")
	}

	// preserve_host: the app sees the public host, and its URLs stay.
	p = g.Follow(c, g.Get(c, g.URL(hrHost, "/")))
	p = g.Get(c, g.URL(hrHost, "/go"))
	mu.Lock()
	upHost = hosts["/go"]
	mu.Unlock()
	if want := fmt.Sprintf("%s:%d", hrHost, g.Port); upHost != want {
		t.Errorf("preserve_host: the app saw Host %q, want %q", upHost, want)
	}
	if loc := p.Header.Get("Location"); loc != upstream+"/next?x=1" {
		t.Errorf("preserve_host: Location %q was changed", loc)
	}
}

// An app with cross_site_post: allow gets a SameSite=None session cookie
// (still __Host-, Secure, HttpOnly), so a form POST from another site (a
// SAML POST binding) arrives with it; other apps keep Lax.
func TestCrossSitePostCookie(t *testing.T) {
	app := newUpstreamFunc(t, func(w http.ResponseWriter, r *http.Request) {})
	g := testenv.Start(t,
		testenv.App{Name: "sso-app", Host: wikiHost, Upstream: app, Groups: []string{"staff"}, MFA: true, Extra: "    cross_site_post: allow\n"},
		testenv.App{Name: "hr", Host: hrHost, Upstream: app, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	g.Login(c, g.URL(g.Portal, "/"), "anna", pw, secret)
	cookieOf := func(host string) string {
		p := g.Get(c, g.URL(host, "/"))
		for i := 0; i < 10 && p.StatusCode >= 300 && p.StatusCode < 400; i++ {
			for _, sc := range p.Header.Values("Set-Cookie") {
				if strings.HasPrefix(sc, "__Host-sluis=") && p.Request.URL.Hostname() == host {
					return sc
				}
			}
			loc, _ := p.Request.URL.Parse(p.Header.Get("Location"))
			p = g.Get(c, loc.String())
		}
		t.Fatalf("no session cookie set on %s", host)
		return ""
	}
	if sc := cookieOf(wikiHost); !strings.Contains(sc, "SameSite=None") || !strings.Contains(sc, "Secure") || !strings.Contains(sc, "HttpOnly") {
		t.Errorf("cross_site_post app's cookie: %s", sc)
	}
	if sc := cookieOf(hrHost); !strings.Contains(sc, "SameSite=Lax") {
		t.Errorf("another app's cookie: %s", sc)
	}
}
