package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/frontdoor"
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
