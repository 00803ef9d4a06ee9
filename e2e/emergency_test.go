package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
	_ "modernc.org/sqlite"
)

// Incident day, in steps: only essential apps, then everything closed for
// a while (returning to essential by itself), then back to normal; each
// step counts on the next request, and users see why.
func TestEmergencyLevels(t *testing.T) {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true, Essential: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: w.hr.URL, Groups: []string{"staff"}, MFA: true},
	)
	g := w.g
	c, _ := w.loggedIn(t, "anna", "staff")
	g.Follow(c, g.Get(c, g.URL(hrHost, "/"))) // a session on hr too
	status := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", g.URL(host, "/x"), nil)
		p := g.Do(c, req)
		return p.StatusCode, p.Body
	}
	if s, _ := status(hrHost); s != 200 {
		t.Fatalf("hr before: %d", s)
	}

	g.MustCLI("", "emergency", "set", "essential", "--reason", "CVE-2026-0001 in the HR app")
	if s, body := status(hrHost); s != http.StatusServiceUnavailable || !strings.Contains(body, "Only essential applications are open: CVE-2026-0001 in the HR app") {
		t.Fatalf("hr at essential: %d\n%s", s, body)
	}
	if s, _ := status(wikiHost); s != 200 {
		t.Fatalf("essential wiki at essential: %d", s)
	}
	if l := g.Get(c, g.URL(g.Portal, "/")); !strings.Contains(l.Body, "Only essential applications are open") {
		t.Fatalf("launcher does not show the level:\n%s", l.Body)
	}

	g.MustCLI("", "emergency", "set", "closed", "--reason", "patching the gateway", "--for", "2s")
	start := time.Now()
	if s, body := status(wikiHost); s != http.StatusServiceUnavailable || !strings.Contains(body, "closed: patching the gateway") {
		t.Fatalf("wiki at closed: %d\n%s", s, body)
	}
	form := g.Get(g.Client(), g.URL(g.Portal, "/login"))
	if !strings.Contains(form.Body, "Access through the gateway is closed: patching the gateway") {
		t.Fatalf("login page at closed:\n%s", form.Body)
	}
	if p := g.SubmitPassword(g.Client(), "", "anna", pw); p.StatusCode != http.StatusServiceUnavailable || p.Header.Get("Set-Cookie") != "" && strings.Contains(p.Header.Get("Set-Cookie"), "__Host-sluis=") {
		t.Fatalf("login at closed: %d", p.StatusCode)
	}
	if out := g.MustCLI("", "emergency", "status"); !strings.HasPrefix(out, "level closed: patching the gateway") || !strings.Contains(out, "then essential") {
		t.Fatalf("status: %q", out)
	}
	// After two seconds the level returns to essential by itself.
	for {
		if s, _ := status(wikiHost); s == 200 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the timed level did not run out")
		}
		time.Sleep(50 * time.Millisecond) // waiting for the clock
	}
	if s, _ := status(hrHost); s != http.StatusServiceUnavailable {
		t.Fatalf("hr after closed ran out: %d", s)
	}

	g.MustCLI("", "emergency", "clear")
	if s, _ := status(hrHost); s != 200 {
		t.Fatalf("hr after clear: %d", s)
	}
	if _, err := g.CLI("", "emergency", "set", "closed"); err == nil {
		t.Fatal("a level without a reason was accepted")
	}
	assertAudit(t, g, "emergency.set")
}

// Lockdown: only the break-glass users keep working; everyone else loses
// their session and cannot log in until the level is lifted.
func TestLockdownKeepsOnlyBreakGlass(t *testing.T) {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.StartWith(t, "emergency:\n  break_glass:\n    users: [carl]\n",
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true})
	g := w.g
	anna, _ := w.loggedIn(t, "anna", "staff")
	carl, carlSecret := w.loggedIn(t, "carl", "staff")
	get := func(c *http.Client) int {
		req, _ := http.NewRequest("GET", g.URL(wikiHost, "/x"), nil)
		return g.Do(c, req).StatusCode
	}
	out := g.MustCLI("", "emergency", "set", "lockdown", "--reason", "intrusion under investigation")
	if !strings.Contains(out, "revoked 1 session(s)") {
		t.Fatalf("lockdown output: %q", out)
	}
	if s := get(anna); s != http.StatusUnauthorized {
		t.Fatalf("anna at lockdown: %d", s)
	}
	if s := get(carl); s != 200 {
		t.Fatalf("carl (break glass) at lockdown: %d", s)
	}
	p := g.SubmitPassword(g.Client(), "", "anna", pw)
	if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "Access is limited to emergency staff: intrusion under investigation") {
		t.Fatalf("anna logging in at lockdown: %d\n%s", p.StatusCode, p.Body)
	}
	if p := g.Login(g.Client(), "", "carl", pw, carlSecret); p.StatusCode != 200 {
		t.Fatalf("carl logging in at lockdown: %d", p.StatusCode)
	}
	g.MustCLI("", "emergency", "clear")
	if p := g.SubmitPassword(g.Client(), "", "anna", pw); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("anna after clear: %d", p.StatusCode)
	}
}

// Strict: a session whose second factor is older than strict.reauth_after
// passes it again before going on; enrolling a new factor is frozen, so a
// stolen password alone gets nowhere.
func TestStrictAsksForTheSecondFactorAgainAndFreezesEnrolment(t *testing.T) {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.StartWith(t, "strict:\n  reauth_after: 30m\n",
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true})
	g := w.g
	anna, secret := w.loggedIn(t, "anna", "staff")
	// Anna's second factor was passed two hours ago.
	db, err := sql.Open("sqlite", filepath.Join(g.Dir, "data", "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE sessions SET mfa_at = mfa_at - ? WHERE user = 'anna'`, int64(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	g.MustCLI("", "emergency", "set", "strict", "--reason", "passwords leaked")

	req, _ := http.NewRequest("GET", g.URL(wikiHost, "/api"), nil)
	if p := g.Do(anna, req); p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API call with an old second factor: %d", p.StatusCode)
	}
	p := g.Follow(anna, g.Get(anna, g.URL(wikiHost, "/page")))
	if p.StatusCode != 200 || p.Request.URL.Path != "/mfa" || !strings.Contains(p.Body, "Security is tightened: passwords leaked") {
		t.Fatalf("browser with an old second factor lands on %s (%d)", p.Request.URL, p.StatusCode)
	}
	f := p.Request.URL.Query()
	p = g.Post(anna, g.URL(g.Portal, "/mfa"), url.Values{"csrf": {testenv.CSRF(p.Body)}, "rd": {f.Get("rd")}, "state": {f.Get("state")}, "code": {g.Code("anna", secret)}})
	if p = g.Follow(anna, p); p.StatusCode != 200 || p.Request.URL.String() != g.URL(wikiHost, "/page") {
		t.Fatalf("after the step-up: %s (%d)", p.Request.URL, p.StatusCode)
	}
	if p := g.Do(anna, req); p.StatusCode != 200 {
		t.Fatalf("API call after the step-up: %d", p.StatusCode)
	}

	// A stolen password of a user without a second factor cannot enrol one.
	g.MustCLI(pw+"\n", "user", "add", "bert", "--groups", "staff", "--password-stdin")
	thief := g.Client()
	p = g.Follow(thief, g.SubmitPassword(thief, "", "bert", pw))
	if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "Enrolment of new second factors is frozen: passwords leaked") {
		t.Fatalf("enrolment at strict: %d\n%s", p.StatusCode, p.Body)
	}
	g.MustCLI("", "emergency", "clear")
	if p := g.Follow(thief, g.SubmitPassword(thief, "", "bert", pw)); p.StatusCode != 200 || testenv.EnrolmentSecret(p.Body) == "" {
		t.Fatalf("enrolment after clear: %d", p.StatusCode)
	}
}

// At the level strict, the apps listed in strict.phishing_resistant want
// a passkey: a session that passed only TOTP is sent to a passkey step,
// where a code is not enough, and its API calls get 401. Other apps and
// the same app after `clear` work as before.
func TestStrictWantsAPasskeyForListedApps(t *testing.T) {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.StartWith(t, "strict:\n  phishing_resistant: [hr]\n",
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: w.hr.URL, Groups: []string{"staff"}, MFA: true})
	g := w.g
	anna, secret := w.loggedIn(t, "anna", "staff")
	api := func(host string) int {
		req, _ := http.NewRequest("GET", g.URL(host, "/api"), nil)
		return g.Do(anna, req).StatusCode
	}
	if p := g.Follow(anna, g.Get(anna, g.URL(hrHost, "/page"))); p.StatusCode != 200 || p.Request.URL.Host != hrHost+":"+fmt.Sprint(g.Port) {
		t.Fatalf("hr at normal: %s (%d)", p.Request.URL, p.StatusCode)
	}
	before := len(w.hr.requests())

	g.MustCLI("", "emergency", "set", "strict", "--reason", "phishing wave")
	if code := api(hrHost); code != http.StatusUnauthorized {
		t.Fatalf("hr API with a TOTP session at strict: %d", code)
	}
	if code := api(wikiHost); code != 200 {
		t.Fatalf("wiki API at strict: %d", code)
	}
	p := g.Follow(anna, g.Get(anna, g.URL(hrHost, "/page")))
	if p.StatusCode != 200 || p.Request.URL.Path != "/mfa" || !strings.Contains(p.Body, "needs a passkey") || strings.Contains(p.Body, `name="code"`) {
		t.Fatalf("hr in a browser at strict lands on %s (%d):\n%s", p.Request.URL, p.StatusCode, p.Body)
	}
	// The page offers no code form; a code posted anyway (with a valid
	// CSRF token, taken from the launcher) is refused.
	f := p.Request.URL.Query()
	csrf := testenv.CSRF(g.Get(anna, g.URL(g.Portal, "/")).Body)
	p = g.Post(anna, g.URL(g.Portal, "/mfa"), url.Values{"csrf": {csrf}, "rd": {f.Get("rd")}, "state": {f.Get("state")}, "code": {g.Code("anna", secret)}})
	if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "a code is not enough") {
		t.Fatalf("a code where a passkey is needed: %d\n%s", p.StatusCode, p.Body)
	}
	if n := len(w.hr.requests()); n != before {
		t.Fatalf("%d requests reached hr at strict", n-before)
	}

	g.MustCLI("", "emergency", "clear")
	if code := api(hrHost); code != 200 {
		t.Fatalf("hr API after clear: %d", code)
	}
}
