package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// January 2020, as a test: a wave of exploit probes arrives; the operator
// tightens access in steps instead of sending everyone home; then clears;
// the audit trail is intact, and an altered row is found.
func TestJanuary2020(t *testing.T) {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true, Essential: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: w.hr.URL, Groups: []string{"staff"}, MFA: true},
	)
	g := w.g
	anna, _ := w.loggedIn(t, "anna", "staff")                                          // has her own second factor
	g.MustCLI(pw+"\n", "user", "add", "bert", "--groups", "staff", "--password-stdin") // his password is stolen; no second factor yet
	open := func(c *http.Client, host string) int {
		return g.Follow(c, g.Get(c, g.URL(host, "/work"))).StatusCode
	}

	// 1. The wave of probes: recorded, the source blocked.
	for i := 0; i < 12; i++ {
		w.rawRequest(t, "127.0.0.66", g.Portal, fmt.Sprintf("GET /vpn/../vpns/cfg/smb.conf?%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", i, g.Portal))
	}
	if s := w.rawRequest(t, "127.0.0.66", g.Portal, "GET /login HTTP/1.1\r\nHost: "+g.Portal+"\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(s, "403") {
		t.Fatalf("the probing source is not blocked: %s", s)
	}
	if !strings.Contains(g.MustCLI("", "block", "list"), "127.0.0.66/32  automatic") {
		t.Fatal("the automatic block is not listed")
	}

	// 2. strict: the stolen password gets nowhere; anna keeps working.
	g.MustCLI("", "emergency", "set", "strict", "--reason", "CVE-2019-19781-like flaw reported")
	thief := g.Client()
	p := g.Follow(thief, g.SubmitPassword(thief, g.URL(wikiHost, "/work"), "bert", pw))
	if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "frozen") {
		t.Fatalf("stolen password at strict: %d", p.StatusCode)
	}
	if p := g.Follow(thief, g.Get(thief, g.URL(wikiHost, "/work"))); strings.HasPrefix(p.Request.URL.String(), g.URL(wikiHost, "")) {
		t.Fatalf("the thief reached the wiki: %s", p.Request.URL)
	}
	for _, r := range w.wiki.requests() {
		if r.Header.Get("X-Sluis-User") == "bert" {
			t.Fatal("the upstream saw the thief")
		}
	}
	if s := open(anna, wikiHost); s != 200 {
		t.Fatalf("anna at strict: %d", s)
	}

	// 3. essential: only essential apps open; the others say why.
	g.MustCLI("", "emergency", "set", "essential", "--reason", "HR app unpatched")
	if s := open(anna, wikiHost); s != 200 {
		t.Fatalf("wiki at essential: %d", s)
	}
	req, _ := http.NewRequest("GET", g.URL(hrHost, "/work"), nil)
	g.Follow(anna, g.Get(anna, g.URL(hrHost, "/")))
	if p := g.Do(anna, req); p.StatusCode != http.StatusServiceUnavailable || !strings.Contains(p.Body, "HR app unpatched") {
		t.Fatalf("hr at essential: %d", p.StatusCode)
	}

	// 4. clear: back to normal.
	g.MustCLI("", "emergency", "clear")
	if p := g.Do(anna, req); p.StatusCode != 200 {
		t.Fatalf("hr after clear: %d", p.StatusCode)
	}

	// 5. The trail is intact, and an altered row is found by number.
	if out := g.MustCLI("", "audit", "verify"); !strings.HasPrefix(out, "intact, ") {
		t.Fatalf("audit verify: %q", out)
	}
	evs := assertAudit(t, g, "security.probe", "security.blocked", "emergency.set", "mfa.failure")
	target := evs[len(evs)/2]["id"]
	db, err := sql.Open("sqlite", filepath.Join(g.Dir, "data", "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET detail = 'nothing happened' WHERE id = ?`, target); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err := g.CLI("", "audit", "verify")
	if err == nil || !strings.Contains(out, fmt.Sprintf("BROKEN at event %v:", target)) {
		t.Fatalf("verify after tampering: %v %q", err, out)
	}
}
