package e2e

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/mfa"
)

// chromium finds the browser, or skips (fails under
// SLUIS_REQUIRE_INTEGRATION=1, where a missing browser is a broken setup).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("Chromium not found, and SLUIS_REQUIRE_INTEGRATION=1 (install Debian's chromium package)")
	}
	t.Skip("Chromium not found; install Debian's chromium package or run the README's test command")
	return ""
}

// artifacts is where screenshots are kept: $SLUIS_ARTIFACTS, or the
// repository's artifacts/ folder.
func artifacts(t *testing.T) string {
	dir := os.Getenv("SLUIS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A person logs in with a real browser: password, TOTP enrolment by reading
// the secret off the page, a code, and the app.
func TestBrowserLogin(t *testing.T) {
	chromium(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>wiki</title><h1>Wiki</h1><p>Signed in as <b id="user">%s</b> (groups <span id="groups">%s</span>)</p>`,
			html.EscapeString(r.Header.Get("X-Sluis-User")), html.EscapeString(r.Header.Get("X-Sluis-Groups")))
	}))
	defer app.Close()
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true})
	g.MustCLI(pw+"\n", "user", "add", "anna", "--groups", "staff", "--password-stdin")

	bctx := newBrowser(t, 90*time.Second, ignoreCertificates)

	dir := artifacts(t)
	var loginURL, secret, enrolShot, user, groups, finalURL, codes string
	var shot []byte
	err := chromedp.Do(bctx,
		chromedp.Navigate(g.URL(wikiHost, "/welcome")),
		chromedp.WaitVisible(chromedp.ID("username")),
		into(&loginURL, chromedp.Location()),
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
		into(&secret, chromedp.Text(chromedp.ID("totp-secret"))),
		into(&shot, chromedp.FullScreenshot(100)),
	)
	if err != nil {
		t.Fatalf("login and enrolment page: %v\n%s", err, g.Logs())
	}
	if !strings.HasPrefix(loginURL, g.URL(g.Portal, "/login?rd=")) {
		t.Fatalf("the browser was not sent to the portal: %s", loginURL)
	}
	enrolShot = filepath.Join(dir, "browser-enrol.png")
	os.WriteFile(enrolShot, shot, 0o644)
	code, err := mfa.Code(secret, time.Now())
	if err != nil {
		t.Fatalf("secret %q from the page: %v", secret, err)
	}
	g.UseCode("anna", mfa.Step(time.Now()))
	err = chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("recovery-codes")),
		into(&codes, chromedp.Text(chromedp.ID("recovery-codes"))),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("user")),
		into(&user, chromedp.Text(chromedp.ID("user"))),
		into(&groups, chromedp.Text(chromedp.ID("groups"))),
		into(&finalURL, chromedp.Location()),
		into(&shot, chromedp.FullScreenshot(100)),
	)
	if err != nil {
		t.Fatalf("code and app: %v\n%s", err, g.Logs())
	}
	os.WriteFile(filepath.Join(dir, "browser-app.png"), shot, 0o644)
	if n := len(regexp.MustCompile(`[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}`).FindAllString(codes, -1)); n != 10 {
		t.Fatalf("%d recovery codes shown after enrolment: %q", n, codes)
	}
	if user != "anna" || groups != "staff" || finalURL != g.URL(wikiHost, "/welcome") {
		t.Fatalf("app page: user %q groups %q at %s", user, groups, finalURL)
	}

	// The launcher lists the app; logging out ends the session.
	var apps string
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(g.Portal, "/")),
		chromedp.WaitVisible(chromedp.CSS(".apps")),
		into(&apps, chromedp.Text(chromedp.CSS(".apps"))),
		into(&shot, chromedp.FullScreenshot(100)),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Navigate(g.URL(wikiHost, "/welcome")),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	if err != nil {
		t.Fatalf("launcher and logout: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "browser-launcher.png"), shot, 0o644)
	if !strings.Contains(apps, "wiki") {
		t.Fatalf("launcher shows %q", apps)
	}
	t.Logf("screenshots in %s", dir)
}

// newBrowser starts headless Chromium for a test, resolving every
// *.sluis.test host to the gateway and idp.test (another site, see
// idpHost) to loopback, with certFlag (a flag that makes it
// accept the gateway's certificate) and a profile of its own; it ends with
// the test or after timeout. It returns the browser's first tab, with the
// browser started: steps may then run under timeouts of their own (the
// first run on a context binds the browser's life to that run's context).
func newBrowser(t *testing.T, timeout time.Duration, certFlag chromedp.ExecAllocatorOption) context.Context {
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		certFlag,
		chromedp.Flag("host-resolver-rules", "MAP *.sluis.test 127.0.0.1, MAP "+idpHost+" 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 900),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return bctx
}

// ignoreCertificates makes Chromium accept any certificate: the gateway's
// CA is not in its store, and certificate checks are covered by the Go
// tests.
var ignoreCertificates = chromedp.Flag("ignore-certificate-errors", true)

// into runs a that yields a value and stores the value in dst.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// Two tabs of one browser, with no session, each open a page of an app and
// land on the login page; the user logs in on the first, and both reach
// their own page (each login in flight has its own state cookie).
func TestBrowserTwoTabsLogIn(t *testing.T) {
	chromium(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>wiki</title><h1 id="page">%s</h1><p>Signed in as <b id="user">%s</b></p>`,
			html.EscapeString(r.URL.Path), html.EscapeString(r.Header.Get("X-Sluis-User")))
	}))
	defer app.Close()
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")

	tab1 := newBrowser(t, 90*time.Second, ignoreCertificates)
	if err := chromedp.Do(tab1, chromedp.Navigate(g.URL(wikiHost, "/one")), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatalf("first tab: %v", err)
	}
	tab2, cancel2 := chromedp.NewContext(tab1) // another tab of the same browser
	defer cancel2()
	if err := chromedp.Do(tab2, chromedp.Navigate(g.URL(wikiHost, "/two")), chromedp.WaitVisible(chromedp.ID("username"))); err != nil {
		t.Fatalf("second tab: %v", err)
	}
	// Log in on the first tab.
	var page, user, status string
	err := chromedp.Do(tab1,
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), g.Code("anna", secret)),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.CSS("h1")),
		into(&status, chromedp.Title()),
		into(&page, chromedp.Text(chromedp.CSS("h1"))),
	)
	if err != nil {
		t.Fatalf("login on the first tab: %v\n%s", err, g.Logs())
	}
	if page != "/one" {
		t.Fatalf("the first tab ended on %q (title %q), not its page /one", page, status)
	}
	// The second tab's login page, reloaded, carries on to its own page
	// with the session the first tab made.
	err = chromedp.Do(tab2,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("h1")),
		into(&status, chromedp.Title()),
		into(&page, chromedp.Text(chromedp.CSS("h1"))),
		into(&user, chromedp.Text(chromedp.ID("user"))),
	)
	if err != nil {
		t.Fatalf("the second tab: %v", err)
	}
	if page != "/two" || user != "anna" {
		t.Fatalf("the second tab ended on %q as %q (title %q)", page, user, status)
	}
}
