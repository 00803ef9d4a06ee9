package e2e

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// idpHost is another site than the gateway's (its registrable domain is
// idp.test, the gateway's hosts' is sluis.test): a single sign-on
// provider's pages, which post forms to apps.
const idpHost = "idp.test"

// Item 7 of issue 12, in Chromium: a page of another site posts a form to
// an app, as a SAML IdP's POST binding does (a page that submits itself).
// For an app with cross_site_post: allow, the browser sends its session
// with the POST and the app receives it as the user; for an app without,
// the browser holds a session for the app (a same-site request shows it)
// but does not send it on the cross-site POST: the user gets sluis's 401
// page and the app never sees the POST.
func TestBrowserCrossSitePost(t *testing.T) {
	chromium(t)
	const ssoHost = "sso.sluis.test"
	type received struct{ method, path, user, saml string }
	var mu sync.Mutex
	var seen []received
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		seen = append(seen, received{r.Method, r.URL.Path, r.Header.Get("X-Sluis-User"), r.PostForm.Get("SAMLResponse")})
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>app</title><p id=app>%s %s as <b id=user>%s</b>: <span id=saml>%s</span></p>`,
			html.EscapeString(r.Method), html.EscapeString(r.URL.Path), html.EscapeString(r.Header.Get("X-Sluis-User")), html.EscapeString(r.PostForm.Get("SAMLResponse")))
	}))
	t.Cleanup(app.Close)
	posts := func(path string) []received {
		mu.Lock()
		defer mu.Unlock()
		var out []received
		for _, r := range seen {
			if r.method == "POST" && r.path == path {
				out = append(out, r)
			}
		}
		return out
	}
	g := testenv.Start(t,
		testenv.App{Name: "sso", Host: ssoHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true, Extra: "    cross_site_post: allow\n"},
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: app.URL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")

	// The other site: /post?app=HOST&saml=VALUE answers with a form that
	// posts itself to HOST's /acs on the gateway.
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>IdP</title><body onload="document.forms[0].submit()">
<form method=post action="%s"><input type=hidden name=SAMLResponse value="%s"><input type=hidden name=RelayState value=r1><noscript><button>Continue</button></noscript></form>`,
			html.EscapeString(g.URL(r.URL.Query().Get("app"), "/acs")), html.EscapeString(r.URL.Query().Get("saml")))
	}))
	t.Cleanup(idp.Close)
	idpURL := strings.Replace(idp.URL, "127.0.0.1", idpHost, 1)

	b := &tab{t: t, ctx: newBrowser(t, 90*time.Second, ignoreCertificates), logs: g.Logs}
	b.step("the sso app sends a browser without a session to the login page", stepTime,
		chromedp.Navigate(g.URL(ssoHost, "/start")),
		chromedp.WaitVisible(chromedp.ID("username")))
	b.step("the password leads to the code form", stepTime,
		chromedp.SendKeys(chromedp.ID("username"), "anna"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("code")))
	b.step("the code leads to the sso app", stepTime,
		chromedp.SendKeys(chromedp.ID("code"), g.Code("anna", secret)),
		chromedp.Submit(chromedp.ID("code")),
		chromedp.WaitVisible(chromedp.ID("app")))

	for _, tt := range []struct {
		name, host string
		allow      bool
	}{
		{"cross_site_post allow", ssoHost, true},
		{"default", wikiHost, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &tab{t: t, ctx: b.ctx, logs: b.logs}
			// The user is logged in on the app's host: a same-site visit
			// shows the app as anna.
			var user string
			b.step("the app, opened from the gateway, shows the user", stepTime,
				chromedp.Navigate(g.URL(tt.host, "/home")),
				chromedp.WaitVisible(chromedp.ID("user")),
				into(&user, chromedp.Text(chromedp.ID("user"))))
			if user != "anna" {
				t.Fatalf("the app shows user %q before the cross-site POST", user)
			}
			canary := "canary-" + strings.ReplaceAll(tt.host, ".", "-")
			b.step("the other site's page posts its form to the app", stepTime,
				chromedp.Navigate(idpURL+"/post?app="+tt.host+"&saml="+canary))
			b.until("the browser shows the app host's answer to the POST", stepTime, fmt.Sprintf(
				`location.href === %q && document.readyState === "complete"`, g.URL(tt.host, "/acs")))
			p, err := b.page()
			if err != nil {
				t.Fatal(err)
			}
			got := posts("/acs")
			var mine []received
			for _, r := range got {
				if r.saml == canary {
					mine = append(mine, r)
				}
			}
			if tt.allow {
				if len(mine) != 1 || mine[0].user != "anna" {
					t.Fatalf("the app received the cross-site POST as %+v, want once as anna; the browser shows %q (title %q)", mine, p.Text, p.Title)
				}
				if want := "POST /acs as anna: " + canary; !strings.Contains(p.Text, want) {
					t.Fatalf("the browser shows %q, want the app's %q", p.Text, want)
				}
				return
			}
			if len(mine) != 0 {
				t.Fatalf("the app received the cross-site POST: %+v; the browser shows %q", mine, p.Text)
			}
			if !strings.Contains(p.Title, "401") || !strings.Contains(p.Text, "You need to log in first.") {
				t.Fatalf("the browser shows %q (title %q), want sluis's 401 page", p.Text, p.Title)
			}
		})
	}
}
