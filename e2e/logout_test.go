package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Item 8 of issue 12: logout sends Clear-Site-Data on the portal and, by a
// chain of redirects through /.sluis/logout, on each app host the session
// used, and on no other; app responses are private unless the app says
// otherwise, and no-store for an app with cache: no-store.
func TestLogoutClearsSiteDataOnEachAppHostUsed(t *testing.T) {
	wiki, hr, other := newUpstream(t), newUpstream(t), newUpstream(t)
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: hr.URL, Groups: []string{"staff"}, MFA: true, Cache: "no-store"},
		testenv.App{Name: "other", Host: "other.sluis.test", Upstream: other.URL, Groups: []string{"staff"}, MFA: true},
	)
	w := &world{g: g, wiki: wiki, hr: hr}
	c, _ := w.loggedIn(t, "anna", "staff")
	p := g.Follow(c, g.Get(c, g.URL(hrHost, "/record")))
	if p.StatusCode != 200 {
		t.Fatalf("opening hr: %d", p.StatusCode)
	}
	if cc := p.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
		t.Errorf("hr (cache: no-store) answered Cache-Control %q", cc)
	}
	if p := g.Get(c, g.URL(wikiHost, "/page")); p.StatusCode != 200 || p.Header.Get("Cache-Control") != "private" {
		t.Errorf("wiki page: %d, Cache-Control %q", p.StatusCode, p.Header.Get("Cache-Control"))
	}

	launcher := g.Get(c, g.URL(g.Portal, "/"))
	p = g.Post(c, g.URL(g.Portal, "/logout"), url.Values{"csrf": {testenv.CSRF(launcher.Body)}})
	// Portal, wiki, hr (in the order of the configuration), then the
	// login page; not "other", which the session never used.
	want := []string{g.Portal, wikiHost, hrHost}
	for i, host := range want {
		if p.StatusCode != http.StatusSeeOther || p.Header.Get("Clear-Site-Data") != `"cache", "cookies"` {
			t.Fatalf("hop %d (%s): %d, Clear-Site-Data %q", i, host, p.StatusCode, p.Header.Get("Clear-Site-Data"))
		}
		if got := p.Request.URL.Hostname(); got != host {
			t.Fatalf("hop %d is %s, want %s", i, got, host)
		}
		loc, err := p.Location()
		if err != nil {
			t.Fatal(err)
		}
		if i+1 < len(want) && (loc.Hostname() != want[i+1] || loc.Path != "/.sluis/logout") {
			t.Fatalf("hop %d sends on to %s", i, loc)
		}
		if i+1 == len(want) && loc.String() != g.URL(g.Portal, "/login?logged_out=1") {
			t.Fatalf("last hop sends on to %s", loc)
		}
		p = g.Get(c, loc.String())
	}
	if p.StatusCode != 200 || p.Request.URL.Hostname() != g.Portal {
		t.Fatalf("after logout: %d at %s", p.StatusCode, p.Request.URL)
	}
	// The hop is no open redirect: only configured app hosts.
	for _, next := range []string{"evil.test", wikiHost + ",evil.test", g.Portal, "%2F%2Fevil.test"} {
		if p := g.Get(g.Client(), g.URL(hrHost, "/.sluis/logout?next="+next)); p.StatusCode != http.StatusBadRequest {
			t.Errorf("next=%s: %d %s", next, p.StatusCode, p.Header.Get("Location"))
		}
	}
}
