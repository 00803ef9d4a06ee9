package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// spellings returns name as clients may write it: as listed, lower and
// upper case, canonical, and with underscores for dashes.
func spellings(name string) []string {
	u := strings.ReplaceAll(name, "-", "_")
	return []string{name, strings.ToLower(name), strings.ToUpper(name), http.CanonicalHeaderKey(name),
		u, strings.ToUpper(u), http.CanonicalHeaderKey(u)}
}

// TestEveryListedHeaderInEverySpellingIsDropped sends, for an authenticated
// request, every header of the default list (one of each prefix family) in
// every spelling, twice, and checks that the canary upstream receives none
// of them: only the gateway's own identity and forwarding headers, with the
// gateway's values.
func TestEveryListedHeaderInEverySpellingIsDropped(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	c = w.g.HTTP1(c)
	names := []string{"X-Webauth-User", "X-Webauth-Email", "X-Auth-Request-User", "X-Auth-Request-Email",
		"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Original-URI", "X-Envoy-Original-Path",
		"X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method", "X-Originating-IP", "X-Host"}
	for _, n := range frontdoor.SpoofableNames() {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			n = p + "probe"
		}
		names = append(names, n)
	}
	for _, name := range names {
		req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/hdr"), nil)
		for _, s := range spellings(name) {
			req.Header[s] = []string{"admin", "admin@corp.test"}
		}
		req.Header.Set("X-Custom", "kept")
		if p := w.g.Do(c, req); p.StatusCode != 200 {
			t.Fatalf("%s: status %d", name, p.StatusCode)
		}
		r := w.wiki.last(t)
		for got, vals := range r.Header {
			n := strings.ToLower(strings.ReplaceAll(got, "_", "-"))
			switch n {
			case "x-sluis-user", "x-sluis-groups", "x-sluis-assertion", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto":
				if len(vals) != 1 || vals[0] == "admin" || vals[0] == "admin@corp.test" {
					t.Errorf("sent %s: upstream got %s: %q", name, got, vals)
				}
				continue
			}
			if n == strings.ToLower(name) || strings.Contains(got, "_") || frontdoor.Spoofable(got) {
				t.Errorf("sent %s: upstream got %s: %q", name, got, vals)
			}
		}
		if r.Header.Get("X-Custom") != "kept" {
			t.Errorf("sent %s: an ordinary header was dropped", name)
		}
	}
}

// TestAppHeaderRules: an app's identity_headers carry the gateway's
// identity whatever the client sends, in any spelling; request_headers
// keeps and removes what the app asks for.
func TestAppHeaderRules(t *testing.T) {
	wiki := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true,
		Extra: "    identity_headers: {X-WEBAUTH-USER: user, Remote-Groups: groups, X-App-User: user, X-Webauth-Email: email, X-Webauth-Name: name}\n" +
			"    request_headers:\n      remove: [X-Debug]\n      keep: [X-Real-IP]\n"})
	w := &world{g: g, wiki: wiki}
	c, _ := w.loggedIn(t, "anna", "staff", "ops")
	c = g.HTTP1(c)
	// Set while logged in: the next request carries it.
	g.MustCLI("", "user", "profile", "anna", "--email", "anna@corp.test", "--name", "Anna Ångström")
	req, _ := http.NewRequest("GET", g.URL(wikiHost, "/hdr"), nil)
	for _, name := range []string{"X-Webauth-User", "Remote-Groups", "X-App-User", "X-Webauth-Email", "X-Webauth-Name"} {
		for _, s := range spellings(name) {
			req.Header[s] = []string{"admin", "admins"}
		}
	}
	req.Header.Set("X-Debug", "1")
	req.Header["x_debug"] = []string{"1"}
	req.Header.Set("X-Real-IP", "10.1.2.3")
	req.Header["X_Real_IP"] = []string{"10.9.9.9"}
	req.Header.Set("X-Original-URI", "/admin")
	if p := g.Do(c, req); p.StatusCode != 200 {
		t.Fatalf("status %d", p.StatusCode)
	}
	r := wiki.last(t)
	want := map[string]string{"X-Webauth-User": "anna", "Remote-Groups": "staff,ops", "X-App-User": "anna", "X-Real-Ip": "10.1.2.3",
		"X-Webauth-Email": "anna@corp.test", "X-Webauth-Name": "Anna Ångström"}
	for name, vals := range r.Header {
		if strings.Contains(name, "_") {
			t.Errorf("upstream got %s: %q", name, vals)
		}
		if v, ok := want[name]; ok && (len(vals) != 1 || vals[0] != v) {
			t.Errorf("upstream got %s: %q, want %q", name, vals, v)
		}
	}
	for name := range want {
		if _, ok := r.Header[name]; !ok {
			t.Errorf("upstream did not get %s", name)
		}
	}
	for _, name := range []string{"X-Debug", "X-Original-Uri"} {
		if v := r.Header.Values(name); len(v) != 0 {
			t.Errorf("upstream got %s: %q", name, v)
		}
	}
}

func TestUserAddTakesEmailAndName(t *testing.T) {
	wiki := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true,
		Extra: "    identity_headers: {X-Webauth-Email: email, X-Webauth-Name: name}\n"})
	g.MustCLI(pw+"\n", "user", "add", "bert", "--groups", "staff", "--email", "bert@corp.test", "--name", "Bert Berg", "--password-stdin")
	uri := g.MustCLI("", "user", "totp", "bert")
	secret := uri[strings.Index(uri, "secret=")+len("secret="):]
	secret = secret[:strings.IndexAny(secret+"&", "&\n")]
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/start"), "bert", pw, secret); p.StatusCode != 200 {
		t.Fatalf("login: %d", p.StatusCode)
	}
	r := wiki.last(t)
	if r.Header.Get("X-Webauth-Email") != "bert@corp.test" || r.Header.Get("X-Webauth-Name") != "Bert Berg" {
		t.Fatalf("upstream got %v", r.Header)
	}
	for _, bad := range [][]string{{"--email", "not-an-address"}, {"--name", "Bert\x01"}, {"--email", "a@b\r\nX-Sluis-User: admin"}} {
		if _, err := g.CLI(pw+"\n", append([]string{"user", "add", "carl", "--groups", "staff", "--password-stdin"}, bad...)...); err == nil {
			t.Errorf("user add %q was accepted", bad)
		}
	}
}
