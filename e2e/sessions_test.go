package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// A user sees their own sessions (device, source, start), when this one
// ends, and ends another one, which is then gone; another user's session
// cannot be ended from there.
func TestSessionsPage(t *testing.T) {
	up := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	anna := g.AddUser("anna", pw, "staff")
	bob := g.AddUser("bob", pw, "staff")
	laptop, phone, bobs := g.ClientFrom("127.0.0.2"), g.ClientFrom("127.0.0.3"), g.Client()
	g.Login(laptop, "", "anna", pw, anna)
	g.Login(phone, "", "anna", pw, anna)
	g.Login(bobs, "", "bob", pw, bob)

	page := g.Get(laptop, g.URL(g.Portal, "/sessions"))
	if page.StatusCode != http.StatusOK {
		t.Fatalf("sessions page: %d", page.StatusCode)
	}
	mustContain(t, "sessions page", page.Body, "This session", "127.0.0.2", "127.0.0.3", "This session ends at ", "minutes without use", `id="end-others"`)
	ids := regexp.MustCompile(`name="id" value="([^"]+)"`).FindAllStringSubmatch(page.Body, -1)
	if len(ids) != 1 {
		t.Fatalf("%d sessions to end, want the phone's only:\n%s", len(ids), page.Body)
	}
	// Bob's session is not anna's to end.
	bobsPage := g.Get(bobs, g.URL(g.Portal, "/sessions"))
	if strings.Contains(bobsPage.Body, "127.0.0.2") {
		t.Fatalf("bob sees anna's sessions:\n%s", bobsPage.Body)
	}
	bobsID := ""
	for _, line := range strings.Split(g.MustCLI("", "session", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "bob" {
			bobsID = f[0]
		}
	}
	if bobsID == "" {
		t.Fatal("bob's session is not in the session list")
	}
	csrf := testenv.CSRF(page.Body)
	for _, id := range []string{bobsID, "no-such-session"} {
		if p := g.Post(laptop, g.URL(g.Portal, "/sessions/end"), url.Values{"csrf": {csrf}, "id": {id}}); p.StatusCode != http.StatusNotFound {
			t.Fatalf("ending session %q, which is not anna's: %d", id, p.StatusCode)
		}
	}
	ended := g.Post(laptop, g.URL(g.Portal, "/sessions/end"), url.Values{"csrf": {csrf}, "id": {ids[0][1]}})
	mustContain(t, "after ending the phone's session", ended.Body, "1 session ended.")
	if strings.Contains(ended.Body, "127.0.0.3") {
		t.Fatalf("the ended session is still listed:\n%s", ended.Body)
	}
	if p := g.Get(phone, g.URL(g.Portal, "/")); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("the phone's session lived on: %d", p.StatusCode)
	}
	for _, c := range []*http.Client{laptop, bobs} {
		if p := g.Get(c, g.URL(g.Portal, "/")); p.StatusCode != http.StatusOK {
			t.Fatalf("a session that was not ended ended: %d", p.StatusCode)
		}
	}
	if s := g.MustCLI("", "audit"); !strings.Contains(s, "ended by the user") {
		t.Fatalf("no audit event:\n%s", s)
	}
}

// TestSessionsPageLeavesTheConsoleAlone: an operator's console session is
// not on the portal's sessions page, and ending "the others" there does
// not end it (a portal session, passed with a code or stolen, must not
// reach the console).
func TestSessionsPageLeavesTheConsoleAlone(t *testing.T) {
	g := testenv.StartAdmin(t, "  allow_totp: true\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"ict-ops"}, MFA: true})
	secret := g.AddUser("olga", pw, "ict-ops")
	console := g.AdminLogin("olga", pw, secret)
	browser := g.Client()
	g.Login(browser, "", "olga", pw, secret)
	page := g.Get(browser, g.URL(g.Portal, "/sessions"))
	if page.StatusCode != http.StatusOK || strings.Contains(page.Body, `id="end-others"`) || strings.Contains(page.Body, "admin-") {
		t.Fatalf("the portal's sessions page offers the console's session: %d\n%s", page.StatusCode, page.Body)
	}
	g.Post(browser, g.URL(g.Portal, "/sessions/end"), url.Values{"csrf": {testenv.CSRF(page.Body)}, "others": {"1"}})
	if p := g.Get(console, g.AdminURL("/")); p.StatusCode != http.StatusOK {
		t.Fatalf("the console after the portal ended the others: %d", p.StatusCode)
	}
}
