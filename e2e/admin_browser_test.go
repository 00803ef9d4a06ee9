package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
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
