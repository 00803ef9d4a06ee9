package testenv

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

var (
	csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	// The page shows the secret in groups of four, each in a <span>.
	secretRE = regexp.MustCompile(`<code id="totp-secret"[^>]*>((?:<span>[A-Z2-7]{1,4}</span>)+)</code>`)
)

// Page is a fetched response with its body read.
type Page struct {
	*http.Response
	Body string
}

// Get fetches url with a browser's Accept header.
func (g *Gateway) Get(c *http.Client, u string) Page {
	g.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	return g.Do(c, req)
}

// Do sends req and reads the whole response.
func (g *Gateway) Do(c *http.Client, req *http.Request) Page {
	g.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return Page{resp, string(b)}
}

// Post submits a form to u, as a same-origin browser form would.
func (g *Gateway) Post(c *http.Client, u string, form url.Values) Page {
	g.t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return g.Do(c, req)
}

// Follow follows redirects from p, like a browser, and returns the last
// page.
func (g *Gateway) Follow(c *http.Client, p Page) Page {
	g.t.Helper()
	for i := 0; i < 10 && p.StatusCode >= 300 && p.StatusCode < 400; i++ {
		loc, err := p.Request.URL.Parse(p.Header.Get("Location"))
		if err != nil {
			g.t.Fatal(err)
		}
		p = g.Get(c, loc.String())
	}
	return p
}

// CSRF returns the CSRF token in a page's form.
func CSRF(body string) string {
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// EnrolmentSecret returns the TOTP secret shown on an enrolment page.
func EnrolmentSecret(body string) string {
	m := secretRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return strings.NewReplacer("<span>", "", "</span>", "").Replace(m[1])
}

// SubmitPassword opens the login form (with return URL rd, if any) and
// submits the password; it returns the answer without following it.
func (g *Gateway) SubmitPassword(c *http.Client, rd, user, password string) Page {
	g.t.Helper()
	u := g.URL(g.Portal, "/login")
	if rd != "" {
		u += "?rd=" + url.QueryEscape(rd)
	}
	form := g.Get(c, u)
	if form.StatusCode != 200 {
		g.t.Fatalf("login form: %d", form.StatusCode)
	}
	return g.Post(c, g.URL(g.Portal, "/login"), url.Values{"csrf": {CSRF(form.Body)}, "rd": {rd}, "username": {user}, "password": {password}})
}

// SubmitCode opens the code form and submits code.
func (g *Gateway) SubmitCode(c *http.Client, rd, code string) Page {
	g.t.Helper()
	u := g.URL(g.Portal, "/mfa")
	if rd != "" {
		u += "?rd=" + url.QueryEscape(rd)
	}
	form := g.Get(c, u)
	if form.StatusCode != 200 {
		g.t.Fatalf("code form: %d %s", form.StatusCode, form.Header.Get("Location"))
	}
	return g.Post(c, g.URL(g.Portal, "/mfa"), url.Values{"csrf": {CSRF(form.Body)}, "rd": {rd}, "code": {code}})
}

// Login logs c in as an enrolled user and follows the redirects to rd (or
// the launcher); it returns the final page.
func (g *Gateway) Login(c *http.Client, rd, user, password, secret string) Page {
	g.t.Helper()
	p := g.SubmitPassword(c, rd, user, password)
	if p.StatusCode != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/mfa") {
		g.t.Fatalf("password step: %d %q\n%s", p.StatusCode, p.Header.Get("Location"), p.Body)
	}
	p = g.SubmitCode(c, rd, g.Code(user, secret))
	if p.StatusCode != http.StatusSeeOther {
		g.t.Fatalf("code step: %d\n%s", p.StatusCode, p.Body)
	}
	return g.Follow(c, p)
}

var (
	recoveryRE = regexp.MustCompile(`<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>`)
	continueRE = regexp.MustCompile(`<a href="([^"]+)" id="continue">`)
)

// RecoveryCodes returns the recovery codes shown after enrolment, and the
// address the page continues to.
func RecoveryCodes(body string) (codes []string, next string) {
	for _, m := range recoveryRE.FindAllStringSubmatch(body, -1) {
		codes = append(codes, m[1])
	}
	if m := continueRE.FindStringSubmatch(body); m != nil {
		next = html.UnescapeString(m[1])
	}
	return codes, next
}
