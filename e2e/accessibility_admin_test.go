package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// TestAccessibilityAdminConsole: the console's pages (its login, and
// each page an operator sees after it) pass axe-core's WCAG 2.1 A and AA
// rules at both widths and in both colour schemes, as the portal's do.
// The console is in English only.
func TestAccessibilityAdminConsole(t *testing.T) {
	chromium(t)
	script := axeScript(t)
	g := testenv.StartAdmin(t, "", testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	dir := artifacts(t)
	bctx := adminBrowser(t, g)
	addPasskey(t, bctx, g, "olga", g.AddUser("olga", pw, "ict-ops", "staff"))
	g.AddUser("anna", pw, "staff")
	if err := chromedp.Do(bctx, chromedp.Navigate(g.AdminURL("/login")), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatal(err)
	}
	violations := checkPage(t, bctx, script, dir, "admin-login", "en")
	if role := adminLogin(t, bctx, g, "olga"); role != "operator" {
		t.Fatalf("olga logged in as %q", role)
	}
	for _, page := range []struct{ name, path string }{
		{"admin-overview", "/"}, {"admin-users", "/users"}, {"admin-user", "/users/anna"}, {"admin-sessions", "/sessions"},
		{"admin-apps", "/apps"}, {"admin-emergency", "/emergency"}, {"admin-blocks", "/blocks"}, {"admin-audit", "/audit"},
	} {
		if err := chromedp.Do(bctx, chromedp.Navigate(g.AdminURL(page.path)), chromedp.WaitVisible(chromedp.ID("operator"))); err != nil {
			t.Fatalf("%s: %v", page.path, err)
		}
		violations += checkPage(t, bctx, script, dir, page.name, "en")
	}
	if violations > 0 {
		t.Logf("%d violations on the console's pages", violations)
	}
}
