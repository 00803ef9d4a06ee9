package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// adminBrowser starts headless Chromium that trusts the keys of the
// gateway's public and admin certificates (so both are secure contexts,
// as WebAuthn wants), with a virtual authenticator that keeps
// discoverable credentials and verifies its user.
func adminBrowser(t *testing.T, g *testenv.Gateway) context.Context {
	spki := func(addr, host string) string {
		conn, err := tls.Dial("tcp", addr, g.TLSConfig(host))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		h := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
		return base64.StdEncoding.EncodeToString(h[:])
	}
	list := spki(g.Addr(), g.Portal) + "," + spki(g.AdminAddr(), testenv.AdminHost)
	bctx := newBrowser(t, 240*time.Second, chromedp.Flag("ignore-certificate-errors-spki-list", list))
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/healthz")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
			return err
		}),
	)
	if err != nil {
		t.Fatalf("browser with a virtual authenticator: %v", err)
	}
	return bctx
}

// shot saves a screenshot of the page to dir/name.
func shot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		b, err := chromedp.FullScreenshot(90)(ctx, tg)
		if err == nil {
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		return err
	})
}

// addPasskey logs user in on the portal (password and code) and adds a
// passkey there, as a person does once; then logs out of the portal.
func addPasskey(t *testing.T, bctx context.Context, g *testenv.Gateway, user, secret string) {
	t.Helper()
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), g.Code(user, secret)),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.CSS(".logout button")),
		chromedp.Navigate(g.URL(g.Portal, "/passkeys")),
		chromedp.WaitVisible(chromedp.ID("passkey-name")),
		chromedp.SendKeys(chromedp.ID("passkey-name"), user+"'s key"),
		chromedp.Click(chromedp.ID("passkey-add")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.CSS("td.key-name"))
	}
	if err == nil {
		err = chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(".logout button")),
			chromedp.WaitVisible(chromedp.ID("username")))
	}
	if err != nil {
		t.Fatalf("adding %s's passkey on the portal: %v\n%s", user, err, g.Logs())
	}
}

// adminLogin logs user in on the console with the password and the
// passkey, and returns the role the console shows.
func adminLogin(t *testing.T, bctx context.Context, g *testenv.Gateway, user string) string {
	t.Helper()
	var role chromedp.AttributeResult
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("passkey")),
		chromedp.Click(chromedp.ID("passkey")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.ID("operator"))
	}
	if err == nil {
		err = chromedp.Do(bctx, into(&role, chromedp.AttributeValue(chromedp.ID("operator"), "data-role")))
	}
	if err != nil {
		t.Fatalf("console login of %s: %v\n%s", user, err, g.Logs())
	}
	return role.Value
}

// adminLogout logs out of the console.
func adminLogout(t *testing.T, bctx context.Context, g *testenv.Gateway) {
	t.Helper()
	if err := chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("username")),
	); err != nil {
		t.Fatalf("console logout: %v", err)
	}
}

// Operators of each role log in on the console in Chromium with their
// password and the passkey they added on the portal (one virtual
// authenticator, keys bound to the portal's name, answered on the admin
// host); a user whose groups have no role is refused with a page that
// says so.
func TestAdminBrowserLogin(t *testing.T) {
	up := newUpstream(t)
	g := testenv.StartAdmin(t, "", testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	bctx := adminBrowser(t, g)
	dir := artifacts(t)
	for user, group := range map[string]string{"vera": "auditors", "hank": "servicedesk", "olga": "ict-ops", "sam": "staff"} {
		addPasskey(t, bctx, g, user, g.AddUser(user, pw, group, "staff"))
	}
	for _, tc := range []struct{ user, role string }{{"vera", "viewer"}, {"hank", "helpdesk"}, {"olga", "operator"}} {
		if role := adminLogin(t, bctx, g, tc.user); role != tc.role {
			t.Fatalf("%s logged in as %q, want %q", tc.user, role, tc.role)
		}
		if err := chromedp.Do(bctx, shot(dir, "admin-login-"+tc.role+".png")); err != nil {
			t.Fatal(err)
		}
		// The console's sessions are the store's: listed with the rest.
		if out := g.MustCLI("", "session", "list"); !strings.Contains(out, "admin-") || !strings.Contains(out, tc.user) {
			t.Errorf("session list shows no console session of %s:\n%s", tc.user, out)
		}
		adminLogout(t, bctx, g)
	}
	var msg string
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "sam"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("message")),
		into(&msg, chromedp.Text(chromedp.ID("message"))),
		shot(dir, "admin-no-role.png"),
	)
	if err != nil || !strings.Contains(msg, "no role on the console") {
		t.Fatalf("sam, without a role: %v %q", err, msg)
	}
	audit := g.MustCLI("", "audit")
	for _, want := range []string{"admin.login", "passkey; logged in as operator", "no role"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %q:\n%s", want, audit)
		}
	}
}

// sessionOf returns the ID of user's newest live browser session, from
// `sluis session list`.
func sessionOf(t *testing.T, g *testenv.Gateway, user string) string {
	t.Helper()
	id := ""
	for _, line := range strings.Split(g.MustCLI("", "session", "list"), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == user && !strings.HasPrefix(f[0], "admin-") {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatalf("%s has no session", user)
	}
	return id
}

// forceClick turns a disabled button on and clicks it, as someone who
// edits the page would (through DevTools, which the page's CSP does not
// govern): what the server does with the request is what counts.
func forceClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(function(){var b=document.querySelector(`+"`"+sel+"`"+`); b.disabled=false; b.click(); return true})()`)(ctx, tg)
		return err
	})
}

// The console in Chromium, for each role, logged in with a passkey: a
// viewer sees the sessions and the level but can neither end a session
// nor set a level (the buttons are off, and a request made all the same
// is refused); a help desk user ends a user's session (after its
// confirmation), which the public listener applies at once, but cannot
// set a level; an operator sets the level closed, with its preview, and
// the public listener refuses the user within a second.
func TestAdminBrowserRoles(t *testing.T) {
	w := &world{wiki: newUpstream(t)}
	w.g = testenv.StartAdmin(t, "", testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true})
	g := w.g
	bctx := adminBrowser(t, g)
	dir := artifacts(t)
	for user, group := range map[string]string{"vera": "auditors", "hank": "servicedesk", "olga": "ict-ops"} {
		addPasskey(t, bctx, g, user, g.AddUser(user, pw, group, "staff"))
	}
	anna, annaSecret := w.loggedIn(t, "anna", "staff")
	wiki := func(c *http.Client) int {
		req, _ := http.NewRequest("GET", g.URL(wikiHost, "/x"), nil)
		return g.Do(c, req).StatusCode
	}
	if s := wiki(anna); s != http.StatusOK {
		t.Fatalf("anna on the wiki: %d", s)
	}
	id := sessionOf(t, g, "anna")
	revoke := `[data-revoke="` + id + `"]`

	// The viewer.
	adminLogin(t, bctx, g, "vera")
	var revokeOff, levelOff bool
	var msg string
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/sessions")),
		chromedp.WaitVisible(chromedp.CSS(revoke)),
		into(&revokeOff, chromedp.Evaluate[bool](`document.querySelector('`+revoke+`').disabled`)),
		shot(dir, "admin-viewer-sessions.png"),
		forceClick(revoke),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		forceClick("#confirm-button"),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(&msg, chromedp.Text(chromedp.ID("error"))),
	)
	if err != nil || !revokeOff || !strings.Contains(msg, "your role does not allow this") {
		t.Fatalf("viewer ending a session: %v, button off %v, page %q", err, revokeOff, msg)
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/emergency")),
		chromedp.WaitVisible(chromedp.ID("level-form")),
		into(&levelOff, chromedp.Evaluate[bool](`document.getElementById("level-set").disabled`)),
		chromedp.SetValue(chromedp.ID("level"), "closed"),
		chromedp.SendKeys(chromedp.ID("reason"), "viewer tries"),
		forceClick("#level-set"),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		forceClick("#confirm-button"),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(&msg, chromedp.Text(chromedp.ID("error"))),
	)
	if err != nil || !levelOff || !strings.Contains(msg, "your role does not allow this") {
		t.Fatalf("viewer setting a level: %v, button off %v, page %q", err, levelOff, msg)
	}
	if s := wiki(anna); s != http.StatusOK {
		t.Fatalf("after the viewer: anna gets %d", s)
	}
	adminLogout(t, bctx, g)

	// The help desk: ends anna's session, and cannot set a level.
	adminLogin(t, bctx, g, "hank")
	var preview string
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/sessions")),
		chromedp.WaitVisible(chromedp.CSS(revoke)),
		chromedp.Click(chromedp.CSS(revoke)),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		into(&preview, chromedp.Text(chromedp.ID("confirm"))),
		shot(dir, "admin-helpdesk-confirm.png"),
		chromedp.Click(chromedp.ID("confirm-button")),
		chromedp.WaitVisible(chromedp.ID("notice")),
		into(&msg, chromedp.Text(chromedp.ID("notice"))),
		shot(dir, "admin-helpdesk-revoked.png"),
	)
	if err != nil || !strings.Contains(preview, "of anna") || !strings.Contains(msg, "Session "+id+" of anna ended.") {
		t.Fatalf("help desk ending anna's session: %v; confirmation %q; result %q", err, preview, msg)
	}
	if s := wiki(anna); s != http.StatusUnauthorized { // a session no longer
		t.Fatalf("anna after the help desk ended her session: %d", s)
	}
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/emergency")),
		chromedp.WaitVisible(chromedp.ID("level-form")),
		into(&levelOff, chromedp.Evaluate[bool](`document.getElementById("level-set").disabled`)),
		chromedp.SetValue(chromedp.ID("level"), "closed"),
		chromedp.SendKeys(chromedp.ID("reason"), "help desk tries"),
		forceClick("#level-set"),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		forceClick("#confirm-button"),
		chromedp.WaitVisible(chromedp.ID("error")),
		into(&msg, chromedp.Text(chromedp.ID("error"))),
	)
	if err != nil || !levelOff || !strings.Contains(msg, "needs the role operator") {
		t.Fatalf("help desk setting a level: %v, button off %v, page %q", err, levelOff, msg)
	}
	if out := g.MustCLI("", "emergency", "status"); !strings.HasPrefix(out, "level normal") {
		t.Fatalf("the help desk set a level: %s", out)
	}
	adminLogout(t, bctx, g)

	// The operator: closed, after the preview; the public listener
	// refuses anna within a second of the console's answer.
	anna = g.Client()
	if p := g.Login(anna, g.URL(wikiHost, "/"), "anna", pw, annaSecret); p.StatusCode != http.StatusOK {
		t.Fatalf("anna logs in again: %d", p.StatusCode)
	}
	adminLogin(t, bctx, g, "olga")
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.AdminURL("/emergency")),
		chromedp.WaitVisible(chromedp.ID("level-form")),
		chromedp.SetValue(chromedp.ID("level"), "closed"),
		chromedp.SendKeys(chromedp.ID("reason"), "incident 42"),
		chromedp.Click(chromedp.ID("level-set")),
		chromedp.WaitVisible(chromedp.ID("preview")),
		into(&preview, chromedp.Text(chromedp.ID("preview"))),
		shot(dir, "admin-operator-preview.png"),
	)
	if err != nil || !strings.Contains(preview, "Access through the gateway is closed: incident 42") || !strings.Contains(preview, "sessions lose every app") {
		t.Fatalf("the level's preview: %v %q", err, preview)
	}
	if s := wiki(anna); s != http.StatusOK {
		t.Fatalf("the preview changed something: anna gets %d", s)
	}
	err = chromedp.Do(bctx,
		chromedp.Click(chromedp.ID("confirm-button")),
		chromedp.WaitVisible(chromedp.ID("notice")),
		into(&msg, chromedp.Text(chromedp.ID("notice"))),
	)
	set := time.Now()
	if err != nil || !strings.Contains(msg, "The level closed is in force") {
		t.Fatalf("setting the level: %v %q", err, msg)
	}
	for wiki(anna) != http.StatusServiceUnavailable {
		if time.Since(set) > time.Second {
			t.Fatalf("the public listener still lets anna through %s after the level was set", time.Since(set))
		}
		time.Sleep(20 * time.Millisecond) // polling the public listener
	}
	t.Logf("the public listener refused anna %s after the console's answer", time.Since(set).Round(time.Millisecond))
	if err := chromedp.Do(bctx, shot(dir, "admin-operator-closed.png")); err != nil {
		t.Fatal(err)
	}
	audit := g.MustCLI("", "audit")
	for _, want := range []string{"by hank; session " + id, "by olga; level closed until changed; incident 42"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the trail lacks %q:\n%s", want, audit)
		}
	}
}
