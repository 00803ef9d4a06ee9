package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/mfa"
)

// startAccessible runs a gateway with the organisation's face and every
// kind of launcher entry: a web app with a title, description and icon,
// an app for hr only, an app whose upstream is down, and a TCP app (a
// command with a copy button).
func startAccessible(t *testing.T) *testenv.Gateway {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html lang="en"><title>wiki</title><main><h1 id="page">Wiki</h1></main></html>`))
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "logo.png"), logoPNG, 0o600); err != nil {
		t.Fatal(err)
	}
	// The error pages' test provokes a few refusals from loopback, which
	// count as probes: it must not block itself before it is done.
	return testenv.StartIn(t, dir, brandingYAML+"probes:\n  block_after: 1000\n",
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true,
			Extra: "    title: Kennisbank\n    description: Handleidingen en werkinstructies\n    icon_file: logo.png\n"},
		testenv.App{Name: "hr", Host: hrHost, Upstream: app.URL, Groups: []string{"hr"}, MFA: true},
		testenv.App{Name: "down", Host: "down.sluis.test", Upstream: "http://127.0.0.1:1", Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "db", TCP: "127.0.0.1:5432", Groups: []string{"staff"}, MFA: true,
			Extra: "    title: Database\n    description: PostgreSQL van de afdeling\n"})
}

// langs are the portal's languages with what a browser set to each sends.
var langs = []struct{ code, accept string }{{"en", "en-GB,en;q=0.9"}, {"nl", "nl-NL,nl;q=0.9"}}

// speak makes the browser send Accept-Language: accept (and any other
// headers in more) from now on.
func speak(accept string, more ...string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		h := network.Headers{"Accept-Language": accept}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	})
}

// startDevice starts a `sluis connect` login as its client does and
// returns the code the user types on the device page.
func startDevice(t *testing.T, g *testenv.Gateway) string {
	t.Helper()
	req, _ := http.NewRequest("POST", g.URL(g.Portal, "/device/start"), strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	p := g.Do(g.ClientFrom("127.0.0.20"), req)
	var s struct {
		UserCode string `json:"user_code"`
	}
	if err := json.Unmarshal([]byte(p.Body), &s); err != nil || s.UserCode == "" {
		t.Fatalf("device start: %d %v %s", p.StatusCode, err, p.Body)
	}
	return s.UserCode
}

// Every page of the portal, in English and in Dutch, at 1280 and 390 px,
// in light and in dark mode, passes axe-core's WCAG 2.1 A and AA rules:
// the login page (empty and after a wrong password), the enrolment, the
// recovery codes, the launcher, the passkeys and sessions pages, the
// device approval (asking for the code, the request, and approved), the
// launcher with an app switched off and at an emergency level, the
// code page, the page after a recovery code, and a throttled login (429).
func TestAccessibilityPortal(t *testing.T) {
	chromium(t)
	script := axeScript(t)
	g := startAccessible(t)
	dir := artifacts(t)
	for _, l := range langs {
		t.Run(l.code, func(t *testing.T) {
			user := "anna-" + l.code
			g.MustCLI(pw+"\n", "user", "add", user, "--groups", "staff", "--password-stdin")
			// With a virtual authenticator: the passkeys page is checked
			// with a passkey in its table.
			bctx := passkeyBrowser(t, g)
			check := func(page string, steps ...chromedp.Action[chromedp.Void]) {
				t.Helper()
				if err := chromedp.Do(bctx, steps...); err != nil {
					t.Fatalf("%s: %v\n%s", page, err, g.Logs())
				}
				checkPage(t, bctx, script, dir, page, l.code)
			}
			var secret, codes string
			check("login", speak(l.accept), chromedp.Navigate(g.URL(g.Portal, "/login")), chromedp.WaitVisible(chromedp.ID("username")))
			check("login-wrong",
				chromedp.SendKeys(chromedp.ID("username"), user),
				chromedp.SendKeys(chromedp.ID("password"), "wrong"),
				chromedp.Submit(chromedp.ID("password")),
				chromedp.WaitVisible(chromedp.CSS(".error")))
			check("enrol",
				chromedp.SendKeys(chromedp.ID("password"), pw),
				chromedp.Submit(chromedp.ID("password")),
				chromedp.WaitVisible(chromedp.ID("totp-secret")),
				into(&secret, chromedp.Text(chromedp.ID("totp-secret"))))
			code, err := mfa.Code(strings.ReplaceAll(secret, " ", ""), time.Now())
			if err != nil {
				t.Fatalf("secret %q: %v", secret, err)
			}
			g.UseCode(user, mfa.Step(time.Now()))
			check("recovery-codes",
				chromedp.SendKeys(chromedp.ID("code"), code),
				chromedp.Submit(chromedp.ID("code")),
				chromedp.WaitVisible(chromedp.ID("recovery-codes")),
				into(&codes, chromedp.Text(chromedp.ID("recovery-codes"))))
			check("launcher", chromedp.Navigate(g.URL(g.Portal, "/")), chromedp.WaitVisible(chromedp.CSS(".apps")))
			// An app switched off shows greyed, with its reason.
			g.MustCLI("", "app", "disable", "down", "--reason", "onderhoud tot 18:00")
			check("launcher-app-off", reload(g.URL(g.Portal, "/"), ".apps .off"), chromedp.WaitVisible(chromedp.CSS(".apps .off")))
			g.MustCLI("", "app", "enable", "down")
			// An emergency level: the launcher shows it as a warning.
			g.MustCLI("", "emergency", "set", "essential", "--reason", "CVE-2026-0001")
			check("launcher-level", reload(g.URL(g.Portal, "/"), ".warning"), chromedp.WaitVisible(chromedp.CSS(".warning")))
			g.MustCLI("", "emergency", "clear")
			check("passkeys-none", chromedp.Navigate(g.URL(g.Portal, "/passkeys")), chromedp.WaitVisible(chromedp.ID("passkey-name")))
			err = chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("passkey-name"), "werklaptop"), chromedp.Click(chromedp.ID("passkey-add")))
			if err == nil {
				err = waitOrStatus(bctx, chromedp.CSS("td.key-name"))
			}
			if err != nil {
				t.Fatalf("adding a passkey: %v\n%s", err, g.Logs())
			}
			check("passkeys")
			// Another session of the user's, so that the page offers to
			// end it.
			g.Login(g.ClientFrom("127.0.0.21"), "", user, pw, secret)
			check("sessions", chromedp.Navigate(g.URL(g.Portal, "/sessions")), chromedp.WaitVisible(chromedp.CSS("table.sessions")))
			check("device", chromedp.Navigate(g.URL(g.Portal, "/device")), chromedp.WaitVisible(chromedp.ID("code")))
			check("device-approve",
				chromedp.SendKeys(chromedp.ID("code"), startDevice(t, g)),
				chromedp.Submit(chromedp.ID("code")),
				chromedp.WaitVisible(chromedp.ID("approve")))
			check("device-approved", chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS(".notice")))
			// Out, and in again: the code page, and a recovery code.
			recovery := strings.Fields(codes)
			if len(recovery) == 0 {
				t.Fatalf("no recovery codes in %q", codes)
			}
			check("code",
				chromedp.Navigate(g.URL(g.Portal, "/")),
				chromedp.Submit(chromedp.CSS(".logout button")),
				chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), user),
				chromedp.SendKeys(chromedp.ID("password"), pw),
				chromedp.Submit(chromedp.ID("password")),
				chromedp.WaitVisible(chromedp.ID("code")))
			check("recovered",
				chromedp.Click(chromedp.CSS("details.recovery summary")),
				chromedp.SendKeys(chromedp.ID("recovery"), recovery[len(recovery)-1]),
				chromedp.Submit(chromedp.ID("recovery")),
				chromedp.WaitVisible(chromedp.ID("continue")))
			// Wrong passwords until the login is throttled (429): the page
			// says when to try again.
			g.AddUser("carl-"+l.code, pw, "staff")
			if err := chromedp.Do(bctx, chromedp.Navigate(g.URL(g.Portal, "/")), chromedp.WaitVisible(chromedp.CSS(".logout button")),
				chromedp.Submit(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), "carl-"+l.code)); err != nil {
				t.Fatal(err)
			}
			status := 0
			for i := 0; i < 10 && status != http.StatusTooManyRequests; i++ {
				err := chromedp.Do(bctx,
					chromedp.SendKeys(chromedp.ID("password"), "wrong"),
					// A mark on this document, to know the next one has come.
					chromedp.Evaluate[chromedp.Void](`window.before = 1`),
					chromedp.Submit(chromedp.ID("password")),
					nextDocument(`!!document.querySelector('.error')`),
					into(&status, chromedp.Evaluate[int](`performance.getEntriesByType('navigation')[0].responseStatus`)))
				if err != nil {
					t.Fatalf("wrong password %d: %v", i, err)
				}
			}
			if status != http.StatusTooManyRequests {
				t.Fatalf("10 wrong passwords: %d, not throttled", status)
			}
			check("login-throttled")
		})
	}
}

// Each kind of error page, in English and in Dutch, at both widths and in
// both colour schemes, passes axe-core's WCAG 2.1 A and AA rules: 400,
// 401, 403 for a policy and for a blocked address, 404, 421, 429 (a
// throttled login), 431, 502, 503 for a switched-off app and for an
// emergency level.
func TestAccessibilityErrorPages(t *testing.T) {
	chromium(t)
	script := axeScript(t)
	g := startAccessible(t)
	secret := g.AddUser("anna", pw, "staff")
	g.AddUser("carl", pw, "staff")
	dir := artifacts(t)
	bctx := newBrowser(t, 5*time.Minute, ignoreCertificates)
	// reach opens u until the page's title names status (a level or a
	// switch counts once the gateway has read it).
	reach := func(l struct{ code, accept string }, u, status string, post bool, headers ...string) error {
		var title string
		open := chromedp.Navigate(u)
		if post {
			open = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				if _, err := chromedp.Navigate("about:blank")(ctx, tg); err != nil {
					return err
				}
				_, err := chromedp.Evaluate[chromedp.Void](`{const f = document.createElement('form'); f.method = 'post'; f.action = `+strconv.Quote(u)+`;
					document.body.append(f); f.submit()}`)(ctx, tg)
				if err != nil {
					return err
				}
				_, err = chromedp.WaitReady(chromedp.CSS("main"))(ctx, tg)
				return err
			})
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err := chromedp.Do(bctx, speak(l.accept, headers...), open, into(&title, chromedp.Title()))
			if err == nil && strings.Contains(title, "("+status+")") {
				break
			}
			if time.Now().After(deadline) {
				if err != nil {
					return err
				}
				break
			}
		}
		if !strings.Contains(title, "("+status+")") {
			return &pageError{title}
		}
		return chromedp.Do(bctx, speak(l.accept))
	}
	filler := []string{}
	for i := 0; i < 101; i++ {
		filler = append(filler, "X-Filler-"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "x")
	}
	// Pages without a session first (an API call without one gets 401),
	// then those of a logged-in user.
	pages := []struct {
		session                  bool
		name, status, host, path string
		before, after            []string // CLI commands
		headers                  []string
		post                     bool // a form posted from another page: not sent to log in
	}{
		{name: "400", status: "400", host: wikiHost, path: "/a%2Fb"},
		{name: "401", status: "401", host: hrHost, path: "/form", post: true},
		{session: true, name: "403-policy", status: "403", host: hrHost, path: "/"},
		{name: "404", status: "404", host: g.Portal, path: "/nowhere"},
		{name: "421", status: "421", host: "other.sluis.test", path: "/"},
		{name: "431", status: "431", host: g.Portal, path: "/", headers: filler},
		{session: true, name: "502", status: "502", host: "down.sluis.test", path: "/"},
		{session: true, name: "503-app-off", status: "503", host: wikiHost, path: "/",
			before: []string{"app disable wiki --reason onderhoud"}, after: []string{"app enable wiki"}},
		{session: true, name: "503-level", status: "503", host: "down.sluis.test", path: "/",
			before: []string{"emergency set essential --reason CVE-2026-0001"}, after: []string{"emergency clear"}},
		{session: true, name: "403-blocked", status: "403", host: g.Portal, path: "/login",
			before: []string{"block add 127.0.0.1/32 --reason test"}, after: []string{"block remove 127.0.0.1/32"}},
	}
	login := func() {
		err := chromedp.Do(bctx,
			chromedp.Navigate(g.URL(g.Portal, "/login")),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), "anna"),
			chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.Submit(chromedp.ID("password")),
			chromedp.WaitVisible(chromedp.ID("code")),
			chromedp.SendKeys(chromedp.ID("code"), g.Code("anna", secret)),
			chromedp.Submit(chromedp.ID("code")),
			chromedp.WaitVisible(chromedp.CSS(".apps")),
		)
		if err != nil {
			t.Fatalf("login: %v\n%s", err, g.Logs())
		}
	}
	for _, session := range []bool{false, true} {
		if session {
			login()
		}
		for _, l := range langs {
			for _, p := range pages {
				if p.session != session {
					continue
				}
				for _, c := range p.before {
					g.MustCLI("", strings.Fields(c)...)
				}
				if err := reach(l, g.URL(p.host, p.path), p.status, p.post, p.headers...); err != nil {
					t.Fatalf("%s (%s): %v\n%s", p.name, l.code, err, g.Logs())
				}
				checkPage(t, bctx, script, dir, "error-"+p.name, l.code)
				for _, c := range p.after {
					g.MustCLI("", strings.Fields(c)...)
				}
			}
		}
	}
}

type pageError struct{ title string }

func (e *pageError) Error() string { return "the page is " + e.title }

// nextDocument waits, at most 10 s, for a document that replaced the one
// marked with window.before = 1 and in which cond (JavaScript) holds. The
// old one's context goes away under a navigation: errors meanwhile are
// awaited through.
func nextDocument(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var ok bool
			ok, err = chromedp.Evaluate[bool](`!window.before && document.readyState === 'complete' && (`+cond+`)`)(ctx, tg)
			if err == nil && ok {
				return nil
			}
		}
		return fmt.Errorf("no new document where %s: %v", cond, err)
	})
}

// reload opens u until an element matches sel (a switch or a level counts
// once the gateway has read it), at most 5 s.
func reload(u, sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err := chromedp.Navigate(u)(ctx, tg); err != nil {
				return err
			}
			there, err := chromedp.Evaluate[bool](`!!document.querySelector(`+strconv.Quote(sel)+`)`)(ctx, tg)
			if err != nil || there || time.Now().After(deadline) {
				return err
			}
		}
	})
}
