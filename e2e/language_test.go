package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/mfa"
)

// logoPNG is a 1x1 PNG.
var logoPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")

const brandingYAML = `language: en
branding:
  title: Gemeente Voorbeeld
  logo_file: logo.png
  colour: "#1d3a8a"
  help:
    text: Servicedesk ICT, werkdagen 8-17 uur
    phone: "+31 20 123 4567"
    email: servicedesk@voorbeeld.nl
    url: https://help.voorbeeld.nl/
`

// startBranded runs a gateway with the organisation's face, a wiki for
// staff (with a title and description) and an HR app for hr only.
func startBranded(t *testing.T) *testenv.Gateway {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>wiki</title><h1 id="page">Wiki</h1>`)
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "logo.png"), logoPNG, 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.StartIn(t, dir, brandingYAML,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true,
			Extra: "    title: Kennisbank\n    description: Handleidingen en werkinstructies\n    icon_file: logo.png\n"},
		testenv.App{Name: "hr", Host: hrHost, Upstream: app.URL, Groups: []string{"hr"}, MFA: true})
}

// speaking returns c sending Accept-Language: lang on every request, as a
// browser set to that language does.
func speaking(c *http.Client, lang string) *http.Client {
	cc := *c
	cc.Transport = acceptLanguage{lang, c.Transport}
	return &cc
}

type acceptLanguage struct {
	lang string
	next http.RoundTripper
}

func (a acceptLanguage) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Language", a.lang)
	return a.next.RoundTrip(r)
}

func mustContain(t *testing.T, what string, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, body)
		}
	}
}

// A Dutch browser gets the login page, the launcher and the error pages in
// Dutch; the switch's cookie wins over the browser's language.
func TestLanguageDutchThroughGateway(t *testing.T) {
	g := startBranded(t)
	secret := g.AddUser("anna", pw, "staff")
	nl := speaking(g.Client(), "nl-NL,nl;q=0.9,en;q=0.8")

	login := g.Get(nl, g.URL(g.Portal, "/login"))
	mustContain(t, "Dutch login page", login.Body, `<html lang="nl">`, "<h1>Inloggen</h1>", "Gebruikersnaam", "Wachtwoord", `href="/language?lang=en`)

	// Wrong password: the error in Dutch.
	p := g.SubmitPassword(nl, "", "anna", "wrong")
	// ... the name stays filled in, and the passkey stays on offer.
	mustContain(t, "wrong password", p.Body, "Gebruikersnaam of wachtwoord klopt niet.", `value="anna"`, `id="passkey-login"`, "Inloggen met een passkey")

	// An error page of the portal (404) and of an app host (a policy
	// denial, 403), in Dutch, with the help desk and an error ID.
	nf := g.Get(nl, g.URL(g.Portal, "/nowhere"))
	if nf.StatusCode != http.StatusNotFound {
		t.Fatalf("404: %d", nf.StatusCode)
	}
	mustContain(t, "Dutch 404", nf.Body, `<html lang="nl">`, "Niet gevonden", "Wat u kunt doen", "Servicedesk ICT", "Foutcode")
	if !errorIDRE.MatchString(nf.Body) {
		t.Errorf("404 has no findable error ID:\n%s", nf.Body)
	}
	if csp := nf.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src 'self'") {
		t.Errorf("error page CSP %q", csp)
	}

	launcher := g.Login(nl, "", "anna", pw, secret)
	mustContain(t, "Dutch launcher", launcher.Body, "<h1>Uw toepassingen</h1>", "Uitloggen")
	denied := g.Follow(nl, g.Get(nl, g.URL(hrHost, "/")))
	if denied.StatusCode != http.StatusForbidden {
		t.Fatalf("hr for staff: %d", denied.StatusCode)
	}
	mustContain(t, "Dutch policy denial", denied.Body, `<html lang="nl">`, "Geen toegang", "U mag dit niet openen.", "Naar uw toepassingen", "Gemeente Voorbeeld")
	if !errorIDRE.MatchString(denied.Body) {
		t.Errorf("403 has no findable error ID:\n%s", denied.Body)
	}

	// The switch: English, remembered in the cookie, wins over the
	// browser's Dutch.
	sw := g.Get(nl, g.URL(g.Portal, "/language?lang=en&back=/"))
	if sw.StatusCode != http.StatusSeeOther || sw.Header.Get("Location") != "/" {
		t.Fatalf("switch: %d to %q", sw.StatusCode, sw.Header.Get("Location"))
	}
	en := g.Get(nl, g.URL(g.Portal, "/"))
	mustContain(t, "launcher after the switch", en.Body, `<html lang="en">`, "<h1>Your applications</h1>", "Log out")
}

// The organisation's name, logo and help desk are on the login page and
// the error pages; the launcher shows apps' titles and descriptions, not
// their host names; the logo is served from the portal.
func TestBrandingThroughGateway(t *testing.T) {
	g := startBranded(t)
	secret := g.AddUser("anna", pw, "staff")
	c := speaking(g.Client(), "en-GB")
	login := g.Get(c, g.URL(g.Portal, "/login"))
	face := []string{"Gemeente Voorbeeld", `<img class="logo" src="/assets/logo"`, "Servicedesk ICT, werkdagen 8-17 uur", `href="tel:&#43;31201234567"`,
		`href="mailto:servicedesk@voorbeeld.nl"`, `href="https://help.voorbeeld.nl/"`, `href="/assets/brand.css"`}
	mustContain(t, "login page", login.Body, face...)

	logo := g.Get(c, g.URL(g.Portal, "/assets/logo"))
	if logo.StatusCode != 200 || logo.Header.Get("Content-Type") != "image/png" || logo.Body != string(logoPNG) ||
		!strings.Contains(logo.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("logo: %d %s %q", logo.StatusCode, logo.Header, logo.Body)
	}
	css := g.Get(c, g.URL(g.Portal, "/assets/brand.css"))
	mustContain(t, "brand.css", css.Body, "--accent: #1d3a8a")

	nf := g.Get(c, g.URL(wikiHost, "/a%2Fb")) // refused by the front door before login
	mustContain(t, "error page on an app host", nf.Body, "Gemeente Voorbeeld", "Servicedesk ICT, werkdagen 8-17 uur",
		`src="`+g.URL(g.Portal, "/assets/logo")+`"`, `href="`+g.URL(g.Portal, "/assets/sluis.css")+`"`)

	// An app's icon is for who is logged in only: it names the app.
	if p := g.Get(c, g.URL(g.Portal, "/assets/app/wiki")); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("an app's icon before login: %d", p.StatusCode)
	}
	launcher := g.Login(c, "", "anna", pw, secret)
	mustContain(t, "launcher", launcher.Body, ">Kennisbank</a>", "Handleidingen en werkinstructies", `<img class="icon" src="/assets/app/wiki"`)
	if p := g.Get(c, g.URL(g.Portal, "/assets/app/wiki")); p.StatusCode != 200 || p.Header.Get("Content-Type") != "image/png" || p.Body != string(logoPNG) {
		t.Fatalf("the app's icon: %d %s", p.StatusCode, p.Header)
	}
	if strings.Contains(launcher.Body, ">"+wikiHost+"<") || strings.Contains(launcher.Body, "<small>"+wikiHost) {
		t.Errorf("launcher shows the host name:\n%s", launcher.Body)
	}
}

// A person whose browser is Dutch logs in with Chromium, in Dutch: the
// login page, the enrolment, the recovery codes and the launcher.
func TestLanguageBrowserLoginInDutch(t *testing.T) {
	chromium(t)
	g := startBranded(t)
	g.MustCLI(pw+"\n", "user", "add", "anna", "--groups", "staff", "--password-stdin")
	bctx := newBrowser(t, 90*time.Second, ignoreCertificates)
	dir := artifacts(t)

	var lang chromedp.AttributeResult
	var h1, label, secret, enrolH1, codesH1, launcherH1, apps string
	var shot []byte
	err := chromedp.Do(bctx,
		// What a browser set to Dutch sends.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "nl-NL,nl;q=0.9"}})
			return err
		}),
		chromedp.Navigate(g.URL(g.Portal, "/login")),
		chromedp.WaitVisible(chromedp.ID("username")),
		into(&lang, chromedp.AttributeValue(chromedp.CSS("html"), "lang")),
		into(&h1, chromedp.Text(chromedp.CSS("h1"))),
		into(&label, chromedp.Text(chromedp.CSS(`label[for="username"]`))),
		into(&shot, chromedp.FullScreenshot(100)),
	)
	if err != nil {
		t.Fatalf("login page: %v\n%s", err, g.Logs())
	}
	os.WriteFile(filepath.Join(dir, "language-login-nl.png"), shot, 0o644)
	if lang.Value != "nl" || h1 != "Inloggen" || label != "Gebruikersnaam" {
		t.Fatalf("login page: lang %q, h1 %q, label %q", lang.Value, h1, label)
	}
	err = chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("totp-secret")),
		into(&secret, chromedp.Text(chromedp.ID("totp-secret"))),
		into(&enrolH1, chromedp.Text(chromedp.CSS("h1"))),
		into(&shot, chromedp.FullScreenshot(100)),
	)
	if err == nil {
		os.WriteFile(filepath.Join(dir, "language-enrol-nl.png"), shot, 0o644)
	}
	if err != nil {
		t.Fatalf("enrolment: %v\n%s", err, g.Logs())
	}
	code, err := mfa.Code(secret, time.Now())
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	g.UseCode("anna", mfa.Step(time.Now()))
	err = chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("recovery-codes")),
		into(&codesH1, chromedp.Text(chromedp.CSS("h1"))),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			b, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err == nil {
				os.WriteFile(filepath.Join(dir, "language-recovery-nl.png"), b, 0o644)
			}
			return err
		}),
		chromedp.Navigate(g.URL(g.Portal, "/")),
		chromedp.WaitVisible(chromedp.CSS(".apps")),
		into(&launcherH1, chromedp.Text(chromedp.CSS("h1"))),
		into(&apps, chromedp.Text(chromedp.CSS(".apps"))),
		into(&shot, chromedp.FullScreenshot(100)),
	)
	if err != nil {
		t.Fatalf("code and launcher: %v\n%s", err, g.Logs())
	}
	os.WriteFile(filepath.Join(dir, "language-launcher-nl.png"), shot, 0o644)
	if enrolH1 != "Uw authenticator instellen" || codesH1 != "Uw herstelcodes" || launcherH1 != "Uw toepassingen" || !regexp.MustCompile(`Kennisbank`).MatchString(apps) {
		t.Fatalf("Dutch flow: enrolment %q, codes %q, launcher %q, apps %q", enrolH1, codesH1, launcherH1, apps)
	}

	// An error page of an app host, styled by the portal's stylesheet
	// under its own CSP.
	var errH1, errID string
	err = chromedp.Do(bctx,
		chromedp.Navigate(g.URL(wikiHost, "/a%2Fb")),
		chromedp.WaitVisible(chromedp.CSS(".errorid")),
		into(&errH1, chromedp.Text(chromedp.CSS("h1"))),
		into(&errID, chromedp.Text(chromedp.CSS(".errorid"))),
		into(&shot, chromedp.FullScreenshot(100)),
	)
	if err != nil {
		t.Fatalf("error page: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "language-error-nl.png"), shot, 0o644)
	if errH1 != "Onjuist verzoek" || !errorIDRE.MatchString(errID) {
		t.Fatalf("error page: h1 %q, %q", errH1, errID)
	}
}

// Each kind of refusal has words of its own, in the user's language: a
// policy denial, a switched-off app and an emergency level (both shown as
// a warning), and a blocked address (with no link into the gateway);
// each with the help desk and an error ID to read out.
func TestErrorPageKindsThroughGateway(t *testing.T) {
	g := startBranded(t)
	anna := g.AddUser("anna", pw, "staff")
	otto := g.AddUser("otto", pw, "visitors")
	nl := speaking(g.Client(), "nl-NL")
	g.Login(nl, "", "anna", pw, anna)
	outsider := speaking(g.Client(), "nl-NL")
	g.Login(outsider, "", "otto", pw, otto)
	wiki := func(c *http.Client) testenv.Page { return g.Follow(c, g.Get(c, g.URL(wikiHost, "/"))) }

	check := func(what string, p testenv.Page, status int, warning bool, wants ...string) {
		t.Helper()
		if p.StatusCode != status {
			t.Fatalf("%s: %d, want %d\n%s", what, p.StatusCode, status, p.Body)
		}
		mustContain(t, what, p.Body, append(wants, `<html lang="nl">`, "Servicedesk ICT", "Foutcode voor de helpdesk · Error ID: ")...)
		if got := strings.Contains(p.Body, `class="warning"`); got != warning {
			t.Errorf("%s: shown as a warning %v, want %v", what, got, warning)
		}
	}
	check("policy denial", wiki(outsider), http.StatusForbidden, false, "U mag dit niet openen.", "Naar uw toepassingen")

	g.MustCLI("", "app", "disable", "wiki", "--reason", "onderhoud <tot 18:00>")
	check("switched-off app", wiki(nl), http.StatusServiceUnavailable, true, "Deze toepassing is uitgeschakeld: onderhoud &lt;tot 18:00&gt;", "Noodmaatregel")
	g.MustCLI("", "app", "enable", "wiki")

	g.MustCLI("", "emergency", "set", "essential", "--reason", "CVE-2026-0001")
	check("emergency level", wiki(nl), http.StatusServiceUnavailable, true, "Alleen essentiële toepassingen zijn open: CVE-2026-0001", "Noodmaatregel")
	g.MustCLI("", "emergency", "clear")
	if p := wiki(nl); p.StatusCode != http.StatusOK {
		t.Fatalf("wiki after the emergency: %d", p.StatusCode)
	}

	g.MustCLI("", "block", "add", "127.0.0.5/32", "--reason", "test")
	blocked := g.Get(speaking(g.ClientFrom("127.0.0.5"), "nl-NL"), g.URL(g.Portal, "/login"))
	check("blocked address", blocked, http.StatusForbidden, false, "Verzoeken vanaf uw netwerkadres worden door deze gateway geblokkeerd")
	if strings.Contains(blocked.Body, "Naar uw toepassingen") {
		t.Errorf("a blocked address is offered a link into the gateway:\n%s", blocked.Body)
	}
}
