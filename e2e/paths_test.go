package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

const gitHost = "git.sluis.test"

// pathsWorld is setup's two apps plus git, which passes encoded slashes
// and path parameters.
func pathsWorld(t *testing.T) (*world, *upstream) {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	git := newUpstream(t)
	w.g = testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "git", Host: gitHost, Upstream: git.URL, Groups: []string{"staff"}, MFA: true, EncodedSlashes: true, PathParams: true},
	)
	return w, git
}

// Item 4 of issue 12: with a session, an app with encoded_slashes and
// path_params pass gets the raw path byte for byte; without one, and on
// every other host, the strict form holds; traversal stays refused
// everywhere.
func TestEncodedSlashesAndPathParamsPassOnlyWithASession(t *testing.T) {
	w, git := pathsWorld(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	// Open git once, so the client has git's own cookie.
	if p := w.g.Follow(c, w.g.Get(c, w.g.URL(gitHost, "/"))); p.StatusCode != 200 {
		t.Fatalf("opening git: %d", p.StatusCode)
	}
	var cookies []string
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "https", Host: gitHost}) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	if len(cookies) == 0 {
		t.Fatal("no cookie for git")
	}
	withSession := "Cookie: " + strings.Join(cookies, "; ") + "\r\n"
	req := func(host, target, extra string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "Connection: close\r\n\r\n"
	}
	for i, target := range []string{
		"/api/v4/projects/group%2Fproject",
		"/api/vhosts/%2F",
		"/job/feature%252Fx/",
		"/app/page.jsp;jsessionid=ABC123?x=1",
		// Never the gateway's own callback, whatever it decodes to.
		"/.sluis%2Fcallback?code=x",
	} {
		src := fmt.Sprintf("127.0.2.%d", i+1) // refusals block a source after ten
		before := len(git.requests())
		if s := w.rawRequest(t, src, gitHost, req(gitHost, target, withSession)); !strings.HasPrefix(s, "200") {
			t.Errorf("%s with a session: %s", target, s)
			continue
		}
		if got := git.last(t).RequestURI; len(git.requests()) != before+1 || got != target {
			t.Errorf("%s reached the upstream as %q", target, got)
		}
		// Without a session: 400, and nothing reaches the upstream.
		if s := w.rawRequest(t, src, gitHost, req(gitHost, target, "")); !strings.HasPrefix(s, "400") {
			t.Errorf("%s without a session: %s", target, s)
		}
		// With a stale or forged cookie: the same.
		if s := w.rawRequest(t, src, gitHost, req(gitHost, target, "Cookie: __Host-sluis=x\r\n")); !strings.HasPrefix(s, "400") {
			t.Errorf("%s with a bad cookie: %s", target, s)
		}
		// On an app without the setting and on the portal: always 400.
		if s := w.rawRequest(t, src, wikiHost, req(wikiHost, target, "")); !strings.HasPrefix(s, "400") {
			t.Errorf("%s on the wiki: %s", target, s)
		}
		// (403 where the portal takes the path for a product's probe.)
		if s := w.rawRequest(t, src, w.g.Portal, req(w.g.Portal, target, "")); !strings.HasPrefix(s, "400") && !strings.HasPrefix(s, "403") {
			t.Errorf("%s on the portal: %s", target, s)
		}
		if len(git.requests()) != before+1 {
			t.Fatalf("%s reached the upstream without a session", target)
		}
	}
	// The wiki refuses them with a session too.
	wikiCookies := ""
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "https", Host: wikiHost}) {
		wikiCookies += ck.Name + "=" + ck.Value + "; "
	}
	if s := w.rawRequest(t, "127.0.0.3", wikiHost, req(wikiHost, "/a%2Fb", "Cookie: "+wikiCookies+"\r\n")); !strings.HasPrefix(s, "400") {
		t.Errorf("encoded slash on the wiki with a session: %s", s)
	}
	// Traversal stays refused everywhere, with a session or not.
	before := len(git.requests())
	// Each from its own source, which refusals would block after ten.
	for i, target := range []string{
		"/api/../admin", "/api/%2e%2e/admin", "/a%2F..%2Fadmin", "/a%252F..%252Fadmin", "/tmui/login.jsp/..;/tmui/x",
		"/a%00b", "/a%5c..%5cb", "/%c0%ae%c0%ae/x", "/%2Fevil.test", "/a%3Bx", "/%2577",
	} {
		for _, cookie := range []string{withSession, ""} {
			s := w.rawRequest(t, fmt.Sprintf("127.0.1.%d", i+1), gitHost, req(gitHost, target, cookie))
			if !strings.HasPrefix(s, "400") {
				t.Errorf("%s (cookie %v): %s", target, cookie != "", s)
			}
		}
	}
	if len(git.requests()) != before {
		t.Fatalf("a traversal form reached the upstream: %s", git.last(t).RequestURI)
	}
}

// Item 6 of issue 12: an app with cors_preflight: pass gets CORS
// preflights without a session, with no identity and no cookies; nothing
// else passes without a session, and other apps get no preflight.
func TestCORSPreflightPassesWithoutASession(t *testing.T) {
	wiki, api := newUpstream(t), newUpstream(t)
	const apiHost = "api.sluis.test"
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "api", Host: apiHost, Upstream: api.URL, Groups: []string{"staff"}, MFA: true, CORSPreflight: true},
	)
	w := &world{g: g}
	send := func(src, host, method, target, extra string) string {
		return w.rawRequest(t, src, host, method+" "+target+" HTTP/1.1\r\nHost: "+host+"\r\n"+extra+"Connection: close\r\n\r\n")
	}
	const preflight = "Origin: https://wiki.sluis.test\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\n"
	const forged = "Cookie: __Host-sluis=x; app=secret\r\nAuthorization: Bearer t\r\nX-Sluis-User: admin\r\nX-Forwarded-For: 10.0.0.1\r\n"
	if s := send("127.0.0.1", apiHost, "OPTIONS", "/v1/items?x=1", preflight+forged); !strings.HasPrefix(s, "200") {
		t.Fatalf("preflight: %s", s)
	}
	r := api.last(t)
	if r.Method != "OPTIONS" || r.RequestURI != "/v1/items?x=1" || r.Header.Get("Origin") != "https://wiki.sluis.test" || r.Header.Get("Access-Control-Request-Method") != "PUT" {
		t.Fatalf("upstream got %s %s %v", r.Method, r.RequestURI, r.Header)
	}
	for _, h := range []string{"Cookie", "Authorization", "X-Sluis-User", "X-Sluis-Groups", "X-Sluis-Assertion", "X-Forwarded-For"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("preflight reached the upstream with %s: %q", h, v)
		}
	}
	n := len(api.requests())
	for _, c := range []struct{ host, method, extra string }{
		{apiHost, "OPTIONS", "Origin: https://wiki.sluis.test\r\n"},    // no Access-Control-Request-Method
		{apiHost, "OPTIONS", "Access-Control-Request-Method: PUT\r\n"}, // no Origin
		{apiHost, "OPTIONS", ""},    // plain OPTIONS
		{apiHost, "GET", preflight}, // not OPTIONS
		{apiHost, "OPTIONS", preflight + "Content-Length: 3\r\n\r\nabc"}, // with a body
		{wikiHost, "OPTIONS", preflight},                                 // an app without the setting
	} {
		if s := send("127.0.0.1", c.host, c.method, "/v1/items", c.extra); strings.HasPrefix(s, "2") {
			t.Errorf("%s %s %q without a session: %s", c.host, c.method, c.extra, s)
		}
	}
	if len(api.requests()) != n || len(wiki.requests()) != 0 {
		t.Fatal("a request that is no preflight reached an upstream without a session")
	}
}
