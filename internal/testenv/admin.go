package testenv

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// AdminHost is the admin host of StartAdmin's gateways: a name under the
// portal's, as passkeys need.
const AdminHost = "admin.login.sluis.test"

// AdminConfig is the admin block StartAdmin writes, with roles for the
// groups "auditors" (viewer), "servicedesk" (helpdesk) and "ict-ops"
// (operator), followed by more, each line indented by two spaces.
func AdminConfig(more string) string {
	return "admin:\n  listen: 127.0.0.1:0\n  host: " + AdminHost + "\n  roles:\n    viewer: [auditors]\n    helpdesk: [servicedesk]\n    operator: [ict-ops]\n" + more
}

// StartAdmin is StartWith with an admin listener (AdminConfig(more)).
func StartAdmin(t testing.TB, more string, apps ...App) *Gateway {
	t.Helper()
	return StartWith(t, AdminConfig(more), apps...)
}

var adminLine = regexp.MustCompile(`sluis: admin listening on 127\.0\.0\.1:(\d+)`)

// AdminPort is the admin listener's port; the test fails when the program
// printed none.
func (g *Gateway) AdminPort() int {
	g.t.Helper()
	m := adminLine.FindStringSubmatch(g.stdout.String())
	if m == nil {
		g.t.Fatalf("the gateway has no admin listener:\n%s", g.stdout)
	}
	var port int
	fmt.Sscan(m[1], &port)
	return port
}

// AdminAddr is the admin listener's address.
func (g *Gateway) AdminAddr() string { return fmt.Sprintf("127.0.0.1:%d", g.AdminPort()) }

// AdminURL returns the URL of path on the console.
func (g *Gateway) AdminURL(path string) string {
	return fmt.Sprintf("https://%s:%d%s", AdminHost, g.AdminPort(), path)
}

// AdminClient returns a browser-like client (see Client) that reaches
// every host name at the admin listener.
func (g *Gateway) AdminClient() *http.Client {
	return g.ClientTo(g.AdminAddr(), g.CA, "")
}

// AdminLogin logs user in on the console of a gateway with
// admin.allow_totp: true, with the password and a one-time code, and
// returns the client (a browser's cookies, the admin listener's address).
func (g *Gateway) AdminLogin(user, password, secret string) *http.Client {
	g.t.Helper()
	c := g.AdminClient()
	form := g.Get(c, g.AdminURL("/login"))
	p := g.AdminPost(c, "/login", url.Values{"csrf": {CSRF(form.Body)}, "username": {user}, "password": {password}})
	if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/login/key" {
		g.t.Fatalf("console password of %s: %d\n%s", user, p.StatusCode, p.Body)
	}
	key := g.Get(c, g.AdminURL("/login/key"))
	p = g.AdminPost(c, "/login/code", url.Values{"csrf": {CSRF(key.Body)}, "code": {g.Code(user, secret)}})
	if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/" {
		g.t.Fatalf("console code of %s: %d\n%s", user, p.StatusCode, p.Body)
	}
	return c
}

// AdminPost submits a form to the console's path as its own pages do
// (same origin), with the CSRF token of the console session c holds
// unless form has one.
func (g *Gateway) AdminPost(c *http.Client, path string, form url.Values) Page {
	g.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", CSRF(g.Get(c, g.AdminURL("/")).Body))
	}
	req, err := http.NewRequest("POST", g.AdminURL(path), strings.NewReader(form.Encode()))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", g.AdminURL(""))
	return g.Do(c, req)
}
