package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
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

// passkeyBrowser starts headless Chromium that trusts the gateway's
// certificate (by its key, so the page is a secure context without
// certificate errors, as WebAuthn wants) and has a virtual authenticator
// that keeps discoverable credentials and verifies its user.
func passkeyBrowser(t *testing.T, g *testenv.Gateway) context.Context {
	addr := g.Addr()
	if g.Front != "" {
		addr = g.Front // a TCP balancer: the gateway's certificate, through it
	}
	conn, err := tls.Dial("tcp", addr, g.TLSConfig(g.Portal))
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	conn.Close()
	// Only the gateway's key is trusted, so WebAuthn runs in a real
	// secure context.
	bctx := newBrowser(t, 120*time.Second, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	err = chromedp.Do(bctx,
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

// whoApp is an upstream that names the user the gateway vouches for.
func whoApp(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>%s</title><h1 id="app">%s</h1><p>Signed in as <b id="user">%s</b></p>`,
			name, name, html.EscapeString(r.Header.Get("X-Sluis-User")))
	}))
	t.Cleanup(s.Close)
	return s
}

// A person adds a passkey in a real browser (Chromium's virtual
// authenticator), is asked for it when opening an app that wants a
// phishing-resistant factor after logging in with a code (a step-up, no
// new login), and later logs in with the passkey alone.
func TestBrowserPasskeys(t *testing.T) {
	wiki, hr := whoApp(t, "wiki"), whoApp(t, "hr")
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: hr.URL, Groups: []string{"staff"}, Key: true})
	secret := g.AddUser("anna", pw, "staff")
	bctx := passkeyBrowser(t, g)
	dir := artifacts(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			b, err := chromedp.FullScreenshot(90)(ctx, tg)
			if err == nil {
				os.WriteFile(filepath.Join(dir, name), b, 0o644)
			}
			return err
		})
	}

	// 1. Password and code, headed for hr: the code is accepted, and hr
	// then asks for a passkey, which anna does not have yet.
	var notice, stepUp string
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.URL(hrHost, "/")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")),
		into(&notice, chromedp.Text(chromedp.CSS(".notice"))),
		chromedp.SendKeys(chromedp.ID("code"), g.Code("anna", secret)),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.CSS(".error")),
		into(&stepUp, chromedp.Text(chromedp.CSS(".error"))),
		shot("passkey-needed.png"),
	)
	if err != nil {
		t.Fatalf("login headed for hr: %v\n%s", err, g.Logs())
	}
	if !strings.Contains(notice, "needs a passkey") || !strings.Contains(stepUp, "you have none") {
		t.Fatalf("the way to hr without a passkey: notice %q, then %q", notice, stepUp)
	}

	// 2. Anna adds a passkey on her passkeys page.
	var keys string
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/passkeys")),
		chromedp.WaitVisible(chromedp.ID("passkey-name")),
		chromedp.SendKeys(chromedp.ID("passkey-name"), "work laptop"),
		chromedp.Click(chromedp.ID("passkey-add")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.CSS("td.key-name"))
	}
	if err == nil {
		err = chromedp.Do(bctx, into(&keys, chromedp.Text(chromedp.CSS("table.keys"))), shot("passkey-added.png"))
	}
	if err != nil {
		t.Fatalf("adding a passkey: %v\n%s", err, g.Logs())
	}
	if !strings.Contains(keys, "work laptop") {
		t.Fatalf("passkeys page: %q", keys)
	}
	if out := g.MustCLI("", "user", "keys", "anna"); !strings.Contains(out, "work laptop") {
		t.Fatalf("user keys anna:\n%s", out)
	}

	// 2b. The same authenticator again: the browser refuses (it holds a
	// passkey for anna already), and the page says so in a sentence, not
	// with the browser's technical message.
	var refused string
	err = chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("passkey-name"), " again"),
		chromedp.Click(chromedp.ID("passkey-add")),
		chromedp.WaitVisible(chromedp.CSS(`#passkey-status:not(:empty)`)),
	)
	for deadline := time.Now().Add(20 * time.Second); err == nil && time.Now().Before(deadline); {
		err = chromedp.Do(bctx, into(&refused, chromedp.Text(chromedp.ID("passkey-status"))))
		if refused != "Waiting for your passkey..." {
			break
		}
		chromedp.Do(bctx, chromedp.WaitReady(chromedp.ID("passkey-add"))) // a round trip to the browser, not a sleep
	}
	if err != nil || refused != "This device holds a passkey for your account already." {
		t.Fatalf("adding the same passkey again: %v; the page says %q", err, refused)
	}

	// 3. hr again: the portal asks for the passkey only (no code form),
	// and the same session goes on to hr.
	var user, app, url string
	var codeForms int
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(hrHost, "/")),
		chromedp.WaitVisible(chromedp.ID("passkey")),
		into(&codeForms, chromedp.Evaluate[int](`document.querySelectorAll("#code").length`)),
		shot("passkey-step-up.png"),
		chromedp.Click(chromedp.ID("passkey")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.ID("user"))
	}
	if err == nil {
		err = chromedp.Do(bctx,
			into(&app, chromedp.Text(chromedp.ID("app"))),
			into(&user, chromedp.Text(chromedp.ID("user"))),
			into(&url, chromedp.Location()),
		)
	}
	if err != nil {
		t.Fatalf("step-up to hr: %v\n%s", err, g.Logs())
	}
	if codeForms != 0 || app != "hr" || user != "anna" || url != g.URL(hrHost, "/") {
		t.Fatalf("after the step-up: code forms %d, app %q, user %q at %s", codeForms, app, user, url)
	}
	sessions := g.MustCLI("", "session", "list")
	if n := strings.Count(sessions, "anna"); n != 1 {
		t.Fatalf("the step-up made a new session (%d of anna's):\n%s", n, sessions)
	}

	// 4. Logged out, anna logs in with the passkey alone and lands on the
	// wiki.
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/")),
		chromedp.WaitVisible(chromedp.CSS(".logout button")),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Navigate(g.URL(wikiHost, "/")),
		chromedp.WaitVisible(chromedp.ID("passkey-login")),
		shot("passkey-login.png"),
		chromedp.Click(chromedp.ID("passkey-login")),
	)
	if err == nil {
		err = waitOrStatus(bctx, chromedp.ID("user"))
	}
	if err == nil {
		err = chromedp.Do(bctx, into(&app, chromedp.Text(chromedp.ID("app"))), into(&user, chromedp.Text(chromedp.ID("user"))))
	}
	if err != nil {
		t.Fatalf("passwordless login: %v\n%s", err, g.Logs())
	}
	if app != "wiki" || user != "anna" {
		t.Fatalf("after the passwordless login: app %q, user %q", app, user)
	}
	audit := g.MustCLI("", "audit")
	for _, want := range []string{"mfa.enrolled", "passkey work laptop", "passkey step-up", "passwordless"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %q:\n%s", want, audit)
		}
	}
	t.Logf("screenshots in %s", dir)
}

// waitOrStatus waits for sel to show after a passkey button was pressed;
// if it does not within 20s, the error carries what the page's passkey
// script said.
func waitOrStatus[S chromedp.Selectable](bctx context.Context, sel S) error {
	ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.WaitVisible(sel))
	if err == nil {
		return nil
	}
	var status, where string
	chromedp.Do(bctx,
		into(&where, chromedp.Location()),
		into(&status, chromedp.Evaluate[string](`(document.getElementById("passkey-status")||{}).textContent||""`)))
	return fmt.Errorf("%w; at %s the page says %q", err, where, status)
}
