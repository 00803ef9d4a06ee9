// Package e2e tests the whole gateway from the outside: the real program on
// a real TLS listener, real upstreams, and clients that behave like
// browsers, scripts and attackers.
package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// upstream is a real HTTP server that records what reaches it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	// release lets the streaming handler send its second chunk.
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(r.Context()))
	u.mu.Unlock()
	switch r.URL.Path {
	case "/stream":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprintln(w, "second")
		return
	case "/ws":
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo: " + line)
		rw.Flush()
		return
	case "/error":
		http.Error(w, "upstream's own error text", http.StatusTeapot)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Set-Cookie", "__Host-sluis=planted; Path=/; Secure")
	w.Header().Add("Set-Cookie", "app=1; Path=/")
	json.NewEncoder(w).Encode(map[string]string{"user": r.Header.Get("X-Sluis-User"), "path": r.URL.Path})
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

func (u *upstream) last(t *testing.T) *http.Request {
	t.Helper()
	r := u.requests()
	if len(r) == 0 {
		t.Fatal("upstream saw no request")
	}
	return r[len(r)-1]
}

const (
	wikiHost = "wiki.sluis.test"
	hrHost   = "hr.sluis.test"
	pw       = "correct horse battery"
)

type world struct {
	g        *testenv.Gateway
	wiki, hr *upstream
}

// setup starts a gateway with two apps: wiki for staff, hr for group hr;
// both require MFA.
func setup(t *testing.T) *world {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: w.hr.URL, Groups: []string{"hr"}, MFA: true},
	)
	return w
}

// loggedIn returns a client logged in as user (created with groups) that
// has opened the wiki once.
func (w *world) loggedIn(t *testing.T, user string, groups ...string) (*http.Client, string) {
	t.Helper()
	secret := w.g.AddUser(user, pw, groups...)
	c := w.g.Client()
	p := w.g.Login(c, w.g.URL(wikiHost, "/start"), user, pw, secret)
	if p.StatusCode != 200 {
		t.Fatalf("login to wiki: %d\n%s", p.StatusCode, p.Body)
	}
	return c, secret
}

func TestFirstLoginEnrolsTOTPAndReachesTheApp(t *testing.T) {
	w := setup(t)
	g := w.g
	g.MustCLI(pw+"\n", "user", "add", "anna", "--groups", "staff", "--password-stdin")
	c := g.Client()

	// A browser asking for a page is sent to the portal with its URL.
	want := g.URL(wikiHost, "/docs/page?id=7")
	p := g.Get(c, want)
	if p.StatusCode != http.StatusSeeOther {
		t.Fatalf("unauthenticated browser request: %d", p.StatusCode)
	}
	loc, _ := url.Parse(p.Header.Get("Location"))
	if loc.Host != fmt.Sprintf("%s:%d", g.Portal, g.Port) || loc.Path != "/login" || loc.Query().Get("rd") != want {
		t.Fatalf("redirect to %s", loc)
	}
	if len(w.wiki.requests()) != 0 {
		t.Fatal("upstream reached before login")
	}

	// Password, then the enrolment page shows a QR code and the secret.
	p = g.SubmitPassword(c, want, "anna", pw)
	if p.StatusCode != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/enroll") {
		t.Fatalf("after password: %d %s", p.StatusCode, p.Header.Get("Location"))
	}
	checkCookie(t, p.Response)
	enrol := g.Follow(c, p)
	secret := testenv.EnrolmentSecret(enrol.Body)
	if secret == "" || !strings.Contains(enrol.Body, `src="data:image/png;base64,`) {
		t.Fatalf("enrolment page without secret or QR:\n%s", enrol.Body)
	}
	// A wrong code does not enrol.
	p = g.Post(c, g.URL(g.Portal, "/enroll"), url.Values{"csrf": {testenv.CSRF(enrol.Body)}, "rd": {want}, "code": {"000000"}})
	if p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong enrolment code: %d", p.StatusCode)
	}
	p = g.Post(c, g.URL(g.Portal, "/enroll"), url.Values{"csrf": {testenv.CSRF(p.Body)}, "rd": {want}, "code": {g.Code("anna", secret)}})
	codes, next := testenv.RecoveryCodes(p.Body)
	if p.StatusCode != http.StatusOK || len(codes) != 10 || next == "" {
		t.Fatalf("enrolment: %d, %d recovery codes, next %q\n%s", p.StatusCode, len(codes), next, p.Body)
	}
	checkCookie(t, p.Response)

	// Back at the page first asked for, through the app's own cookie.
	p = g.Follow(c, g.Get(c, next))
	if p.StatusCode != 200 || p.Request.URL.String() != want {
		t.Fatalf("landed on %s with %d", p.Request.URL, p.StatusCode)
	}
	r := w.wiki.last(t)
	if r.URL.Path != "/docs/page" || r.URL.RawQuery != "id=7" || r.Header.Get("X-Sluis-User") != "anna" || r.Header.Get("X-Sluis-Groups") != "staff" {
		t.Fatalf("upstream got %s?%s user=%q groups=%q", r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Sluis-User"), r.Header.Get("X-Sluis-Groups"))
	}

	// The assertion verifies with the portal's published keys.
	jwks := g.Get(c, g.URL(g.Portal, "/.well-known/jwks.json"))
	claims, err := assertion.Verify(r.Header.Get("X-Sluis-Assertion"), []byte(jwks.Body), g.URL(g.Portal, ""), g.URL(wikiHost, ""), time.Now())
	if err != nil {
		t.Fatalf("assertion: %v", err)
	}
	if claims.Subject != "anna" || claims.App != "wiki" || len(claims.Groups) != 1 || claims.Groups[0] != "staff" ||
		claims.Expiry.Time().Sub(time.Now()) > assertion.Lifetime {
		t.Fatalf("claims %+v", claims)
	}

	// The launcher lists the wiki and not hr.
	l := g.Get(c, g.URL(g.Portal, "/"))
	if l.StatusCode != 200 || !strings.Contains(l.Body, g.URL(wikiHost, "/")) || strings.Contains(l.Body, hrHost) {
		t.Fatalf("launcher:\n%s", l.Body)
	}

	// The next login asks for a code, not for enrolment.
	c2 := g.Client()
	p = g.SubmitPassword(c2, "", "anna", pw)
	if !strings.HasPrefix(p.Header.Get("Location"), "/mfa") {
		t.Fatalf("second login goes to %s", p.Header.Get("Location"))
	}
	assertAudit(t, g, "login.success", "mfa.enrolled", "mfa.success", "mfa.failure")
}

func checkCookie(t *testing.T, r *http.Response) {
	t.Helper()
	for _, c := range r.Cookies() {
		if c.Name != "__Host-sluis" {
			continue
		}
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || len(c.Value) != 43 {
			t.Fatalf("session cookie attributes: %+v", c)
		}
		return
	}
	t.Fatalf("no session cookie set: %v", r.Header["Set-Cookie"])
}

// assertAudit checks that `sluis audit --json` lists the event types and
// that every line has the documented fields.
func assertAudit(t *testing.T, g *testenv.Gateway, types ...string) []map[string]any {
	t.Helper()
	out := g.MustCLI("", "audit", "--since", "1h", "--json")
	var evs []map[string]any
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		for _, k := range []string{"time", "type", "user", "source", "app", "outcome", "detail"} {
			if _, ok := ev[k]; !ok {
				t.Fatalf("audit line without %q: %s", k, line)
			}
		}
		seen[ev["type"].(string)] = true
		evs = append(evs, ev)
	}
	for _, typ := range types {
		if !seen[typ] {
			t.Errorf("no %s event in audit:\n%s", typ, out)
		}
	}
	return evs
}

func TestNonBrowserRequestsGet401(t *testing.T) {
	w := setup(t)
	c := w.g.Client()
	for _, accept := range []string{"", "application/json", "*/*"} {
		req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/api/items"), nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		p := w.g.Do(c, req)
		if p.StatusCode != http.StatusUnauthorized || p.Header.Get("Location") != "" || strings.Contains(p.Body, "password") {
			t.Fatalf("Accept %q: %d %q", accept, p.StatusCode, p.Header.Get("Location"))
		}
	}
	// A POST from a browser is not turned into a login redirect either.
	req, _ := http.NewRequest("POST", w.g.URL(wikiHost, "/save"), strings.NewReader("x=1"))
	req.Header.Set("Accept", "text/html")
	if p := w.g.Do(c, req); p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST: %d", p.StatusCode)
	}
	if n := len(w.wiki.requests()); n != 0 {
		t.Fatalf("upstream saw %d unauthenticated requests", n)
	}
}

func TestSpoofedIdentityAndForwardingHeadersNeverReachTheUpstream(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	// HTTP/1.1, where a client can send Connection (HTTP/2 forbids it).
	c = w.g.HTTP1(c)
	req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/x"), nil)
	h := req.Header
	h.Set("X-Sluis-User", "admin")
	h.Set("X-Sluis-Groups", "admins")
	h.Set("X-Sluis-Assertion", "forged")
	h.Set("X-Sluis-Anything", "1")
	h["X_Sluis_User"] = []string{"admin"}
	h["x-sluis-user"] = []string{"admin"}
	h.Set("Forwarded", "for=127.0.0.1;host=internal")
	h.Set("X-Forwarded-For", "10.0.0.1")
	h.Set("X-Forwarded-Host", "internal")
	h.Set("X-Forwarded-Proto", "http")
	h["X_Forwarded_For"] = []string{"10.0.0.2"}
	h.Set("X-Real-IP", "10.0.0.3")
	h.Set("X-Original-URL", "/admin")
	h.Set("X-Rewrite-URL", "/admin")
	h.Set("X-Custom", "kept")
	h.Set("X-Hop", "dropped")
	h.Set("Connection", "X-Hop")
	h.Set("Cookie", "app=1; theme=dark")
	p := w.g.Do(c, req)
	if p.StatusCode != 200 {
		t.Fatalf("status %d", p.StatusCode)
	}
	r := w.wiki.last(t)
	for name, vals := range r.Header {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		switch {
		case n == "x-sluis-user" && (len(vals) != 1 || vals[0] != "anna"),
			n == "x-sluis-groups" && (len(vals) != 1 || vals[0] != "staff"),
			n == "x-sluis-assertion" && (len(vals) != 1 || vals[0] == "forged"),
			n == "x-forwarded-for" && (len(vals) != 1 || vals[0] != "127.0.0.1"),
			n == "x-forwarded-host" && (len(vals) != 1 || vals[0] != fmt.Sprintf("%s:%d", wikiHost, w.g.Port)),
			n == "x-forwarded-proto" && (len(vals) != 1 || vals[0] != "https"),
			n == "x-sluis-anything", n == "forwarded", n == "x-real-ip", n == "x-original-url", n == "x-rewrite-url", n == "x-hop":
			t.Errorf("upstream got %s: %q", name, vals)
		}
		if name != http.CanonicalHeaderKey(name) {
			t.Errorf("non-canonical header reached upstream: %s", name)
		}
	}
	if r.Header.Get("X-Custom") != "kept" {
		t.Error("an ordinary header was dropped")
	}
	// The app's cookies pass; the gateway's session cookie does not.
	cookie := strings.Join(r.Header.Values("Cookie"), "; ")
	if strings.Contains(cookie, "__Host-sluis") || !strings.Contains(cookie, "app=1") || !strings.Contains(cookie, "theme=dark") {
		t.Errorf("upstream cookies: %q", cookie)
	}
	// The upstream cannot overwrite the gateway's cookie.
	for _, sc := range p.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "__Host-sluis=") {
			t.Errorf("upstream's Set-Cookie for the session cookie was relayed: %q", sc)
		}
	}
}

func TestRevocationTakesEffectOnTheNextRequest(t *testing.T) {
	w := setup(t)
	g := w.g
	api := func(c *http.Client) int {
		req, _ := http.NewRequest("GET", g.URL(wikiHost, "/api"), nil)
		return g.Do(c, req).StatusCode
	}
	tests := []struct {
		name   string
		revoke func(user string)
	}{
		{"revoke by user", func(user string) { g.MustCLI("", "session", "revoke", "--user", user) }},
		{"revoke by id", func(user string) {
			for _, line := range strings.Split(g.MustCLI("", "session", "list"), "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[1] == user {
					g.MustCLI("", "session", "revoke", f[0])
				}
			}
		}},
		{"disable user", func(user string) { g.MustCLI("", "user", "disable", user) }},
		{"revoke by group", func(user string) { g.MustCLI("", "session", "revoke", "--group", "staff") }},
		{"revoke by app", func(user string) { g.MustCLI("", "session", "revoke", "--app", "wiki") }},
		{"revoke all", func(user string) { g.MustCLI("", "session", "revoke", "--all") }},
		{"new password", func(user string) { g.MustCLI("another password\n", "user", "passwd", user, "--password-stdin") }},
		{"new TOTP secret", func(user string) { g.MustCLI("", "user", "totp", user) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := fmt.Sprintf("user%d", i)
			c, _ := w.loggedIn(t, user, "staff")
			if s := api(c); s != 200 {
				t.Fatalf("before: %d", s)
			}
			tt.revoke(user)
			if s := api(c); s != http.StatusUnauthorized {
				t.Fatalf("after %s: %d", tt.name, s)
			}
			// The portal session is gone too.
			if p := g.Get(c, g.URL(g.Portal, "/")); p.StatusCode != http.StatusSeeOther {
				t.Fatalf("launcher after revocation: %d", p.StatusCode)
			}
		})
	}
	assertAudit(t, g, "session.revoked", "admin.user.disable", "admin.user.add")
}

func TestWrongGroupGets403AndTheUpstreamSeesNothing(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	p := w.g.Get(c, w.g.URL(hrHost, "/salaries"))
	p = w.g.Follow(c, p) // through the portal hand-over to hr's host
	if p.StatusCode != http.StatusForbidden {
		t.Fatalf("hr for staff: %d", p.StatusCode)
	}
	if strings.Contains(p.Body, "salaries") || strings.Contains(p.Body, "anna") {
		t.Fatalf("403 page echoes the request: %s", p.Body)
	}
	if n := len(w.hr.requests()); n != 0 {
		t.Fatalf("hr upstream saw %d requests", n)
	}
	// Removing the group counts on the next request, too.
	w.g.MustCLI("", "user", "groups", "anna", "--groups", "guests")
	req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/x"), nil)
	if p := w.g.Do(c, req); p.StatusCode != http.StatusForbidden {
		t.Fatalf("wiki after group removed: %d", p.StatusCode)
	}
	// A flood of denied requests is folded into one event a minute.
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/x"), nil)
		w.g.Do(c, req)
	}
	evs := assertAudit(t, w.g, "access.denied", "admin.user.groups")
	wikiDenied := 0
	for _, ev := range evs {
		if ev["type"] == "access.denied" && ev["app"] == "wiki" {
			wikiDenied++
		}
	}
	if wikiDenied != 1 {
		t.Errorf("%d access.denied events for 21 denied wiki requests, want 1", wikiDenied)
	}
	for _, ev := range evs {
		if ev["type"] == "access.denied" && (ev["user"] != "anna" || ev["outcome"] != "denied" || ev["app"] == "") {
			t.Errorf("access.denied event: %v", ev)
		}
	}
}

func TestReplayedTOTPCodeIsRefused(t *testing.T) {
	w := setup(t)
	g := w.g
	secret := g.AddUser("anna", pw, "staff")
	code := g.Code("anna", secret)
	c1 := g.Client()
	g.SubmitPassword(c1, "", "anna", pw)
	if p := g.SubmitCode(c1, "", code); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use: %d", p.StatusCode)
	}
	c2 := g.Client()
	g.SubmitPassword(c2, "", "anna", pw)
	p := g.SubmitCode(c2, "", code)
	if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "not valid") {
		t.Fatalf("replayed code: %d", p.StatusCode)
	}
	// The session stays half-logged-in: no app, no launcher.
	if l := g.Get(c2, g.URL(g.Portal, "/")); l.StatusCode != http.StatusSeeOther {
		t.Fatalf("launcher after replay: %d", l.StatusCode)
	}
	evs := assertAudit(t, g, "mfa.failure")
	found := false
	for _, ev := range evs {
		found = found || ev["type"] == "mfa.failure" && strings.HasPrefix(fmt.Sprint(ev["detail"]), "code already used; error ID ")
	}
	if !found {
		t.Error("no mfa.failure 'code already used' event")
	}
}

func TestReturnURLMustBeThePortalOrAnApp(t *testing.T) {
	w := setup(t)
	g := w.g
	c, _ := w.loggedIn(t, "anna", "staff")
	port := fmt.Sprint(g.Port)
	bad := []string{
		"https://evil.example/",
		"//evil.example/",
		"/\\evil.example",
		"https:evil.example",
		"https://" + wikiHost + ":" + port + "@evil.example/",
		"https://evil.example\\@" + wikiHost + ":" + port + "/",
		"http://" + wikiHost + ":" + port + "/",
		"https://" + wikiHost + ":1/",
		"https://" + wikiHost + "/",
		"javascript:alert(1)",
		"https://" + wikiHost + ":" + port + "/%0d%0aSet-Cookie:x",
		"https://" + wikiHost + ":" + port + "/\r\nX: y",
		"https://" + wikiHost + ":" + port + "/../admin",
		"https://" + wikiHost + ".evil.example:" + port + "/",
		"/%09/evil.example",
	}
	for _, rd := range bad {
		p := g.Get(c, g.URL(g.Portal, "/login?rd="+url.QueryEscape(rd)))
		// Sent to the launcher instead, or refused outright as a probe
		// (a dot-segment in the query): never sent where rd says.
		refused := p.StatusCode == http.StatusForbidden && p.Header.Get("Location") == ""
		if !refused && (p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/") {
			t.Errorf("rd %q: %d to %q", rd, p.StatusCode, p.Header.Get("Location"))
		}
	}
	// A good app URL is sent to the app host, which starts a hand-over
	// bound to this browser.
	good := g.URL(wikiHost, "/a/b?c=d")
	p := g.Get(c, g.URL(g.Portal, "/login?rd="+url.QueryEscape(good)))
	if loc := p.Header.Get("Location"); loc != good {
		t.Fatalf("good rd goes to %q", loc)
	}
	if p = g.Follow(c, p); p.Request.URL.String() != good {
		t.Fatalf("landed on %s", p.Request.URL)
	}
}

// handOver starts a hand-over to host from browser c (logged in at the
// portal) and returns the callback URL with its code, unvisited.
func handOver(t *testing.T, g *testenv.Gateway, c *http.Client, host string) string {
	t.Helper()
	p := g.Get(c, g.URL(host, "/"))
	p = g.Get(c, p.Header.Get("Location"))
	loc := p.Header.Get("Location")
	if !strings.HasPrefix(loc, g.URL(host, "/.sluis/callback?code=")) {
		t.Fatalf("hand-over goes to %q", loc)
	}
	return loc
}

func TestHandOverCodesWorkOnceOnlyOnTheirHostAndInTheirBrowser(t *testing.T) {
	w := setup(t)
	g := w.g
	c, _ := w.loggedIn(t, "anna", "staff", "hr")
	// Drop the wiki cookie so the next visit needs a hand-over.
	fresh := func() {
		u, _ := url.Parse(g.URL(wikiHost, "/"))
		c.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-sluis", Value: "", MaxAge: -1, Path: "/"}})
	}
	// On another app's host the code is worthless, and that use burns it.
	fresh()
	loc := handOver(t, g, c, wikiHost)
	code := loc[strings.Index(loc, "code=")+5:]
	if p := g.Get(c, g.URL(hrHost, "/.sluis/callback?code="+code)); p.StatusCode != http.StatusBadRequest {
		t.Fatalf("code on another host: %d", p.StatusCode)
	}
	if p := g.Get(c, loc); p.StatusCode != http.StatusBadRequest {
		t.Fatalf("code after a use on another host: %d", p.StatusCode)
	}
	// A code planted in another browser (login CSRF / session fixation)
	// does not work there, and is burnt.
	loc = handOver(t, g, c, wikiHost)
	victim := g.Client()
	if p := g.Get(victim, loc); p.StatusCode != http.StatusBadRequest {
		t.Fatalf("code in another browser: %d", p.StatusCode)
	}
	if p := g.Get(c, loc); p.StatusCode != http.StatusBadRequest {
		t.Fatalf("code after a use in another browser: %d", p.StatusCode)
	}
	// In its own browser it works once.
	loc = handOver(t, g, c, wikiHost)
	if p := g.Get(c, loc); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use: %d", p.StatusCode)
	}
	if p := g.Get(c, loc); p.StatusCode != http.StatusBadRequest {
		t.Fatalf("second use: %d", p.StatusCode)
	}
}

func TestLogoutRevokesTheSessionServerSide(t *testing.T) {
	w := setup(t)
	g := w.g
	c, _ := w.loggedIn(t, "anna", "staff")
	// Keep a copy of the cookies, as a thief would.
	thief := g.Client()
	for _, host := range []string{g.Portal, wikiHost} {
		u, _ := url.Parse(g.URL(host, "/"))
		thief.Jar.SetCookies(u, c.Jar.Cookies(u))
	}
	launcher := g.Get(c, g.URL(g.Portal, "/"))
	p := g.Post(c, g.URL(g.Portal, "/logout"), url.Values{"csrf": {testenv.CSRF(launcher.Body)}})
	if p.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", p.StatusCode)
	}
	req, _ := http.NewRequest("GET", g.URL(wikiHost, "/"), nil)
	if p := g.Do(thief, req); p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stolen app cookie after logout: %d", p.StatusCode)
	}
	if p := g.Get(thief, g.URL(g.Portal, "/")); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("stolen portal cookie after logout: %d", p.StatusCode)
	}
	assertAudit(t, g, "logout")
}

func TestFormsRequireCSRFTokens(t *testing.T) {
	w := setup(t)
	g := w.g
	g.AddUser("anna", pw, "staff")
	c := g.Client()
	form := g.Get(c, g.URL(g.Portal, "/login"))
	tok := testenv.CSRF(form.Body)
	wrong := "x" + tok[1:]
	if wrong == tok {
		wrong = "y" + tok[1:]
	}
	tests := []struct {
		name   string
		values url.Values
		site   string
	}{
		{"no token", url.Values{"username": {"anna"}, "password": {pw}}, "same-origin"},
		{"wrong token", url.Values{"csrf": {wrong}, "username": {"anna"}, "password": {pw}}, "same-origin"},
		{"cross-site", url.Values{"csrf": {tok}, "username": {"anna"}, "password": {pw}}, "cross-site"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("POST", g.URL(g.Portal, "/login"), strings.NewReader(tt.values.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", tt.site)
		p := g.Do(c, req)
		if p.StatusCode != http.StatusForbidden || p.Header.Get("Location") != "" {
			t.Errorf("%s: %d", tt.name, p.StatusCode)
		}
	}
}

func TestPasswordGuessingIsThrottled(t *testing.T) {
	// Refusals are folded per user for a second here (a minute by
	// default), so the folded reasons show within the test.
	g := testenv.StartWith(t, "audit:\n  fold_refusals: 1s\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	g.AddUser("anna", pw, "staff")
	bertSecret := g.AddUser("bert", pw, "staff")
	c := g.Client()
	for i := 0; i < 6; i++ {
		if p := g.SubmitPassword(c, "", "anna", fmt.Sprintf("guess %d", i)); p.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, p.StatusCode)
		}
	}
	// Now even the right password has to wait, and says so.
	p := g.SubmitPassword(c, "", "anna", pw)
	if p.StatusCode != http.StatusTooManyRequests || !strings.Contains(p.Body, "Try again in") {
		t.Fatalf("right password while throttled: %d", p.StatusCode)
	}
	// Another user from the same address is not locked out.
	if p := g.Login(g.Client(), "", "bert", pw, bertSecret); p.StatusCode != 200 {
		t.Fatalf("bert: %d", p.StatusCode)
	}
	// The first wrong password is written as it happens; the later ones,
	// throttled tries among them, are folded into one event with their
	// reasons.
	await(t, 5*time.Second, "the folded refusals of anna", func() bool {
		return strings.Contains(g.MustCLI("", "audit"), "throttled")
	})
	evs := assertAudit(t, g, "login.failure")
	reasons := map[any]bool{}
	for _, ev := range evs {
		if ev["type"] == "login.failure" {
			// Without the error ID of the refusal's page.
			detail, _, _ := strings.Cut(fmt.Sprint(ev["detail"]), "; error ID ")
			reasons[detail] = true
		}
	}
	if !reasons["bad password"] {
		t.Errorf("login.failure reasons: %v", reasons)
	}
	// Unknown and disabled users fail with the same message as a bad password.
	g.MustCLI("", "user", "disable", "bert")
	for _, user := range []string{"nobody", "bert"} {
		p := g.SubmitPassword(g.Client(), "", user, pw)
		if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "Wrong user name or password.") {
			t.Errorf("%s: %d", user, p.StatusCode)
		}
	}
	evs = assertAudit(t, g)
	reasons = map[any]bool{}
	for _, ev := range evs {
		if ev["type"] == "login.failure" {
			// Without the error ID of the refusal's page.
			detail, _, _ := strings.Cut(fmt.Sprint(ev["detail"]), "; error ID ")
			reasons[detail] = true
		}
	}
	if !reasons["unknown user"] || !reasons["disabled"] {
		t.Errorf("login.failure reasons: %v", reasons)
	}
}

func TestUpstreamDownGivesAPlain502(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	g := testenv.Start(t, testenv.App{Name: "gone", Host: "gone.sluis.test", Upstream: deadURL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	p := g.Login(c, g.URL("gone.sluis.test", "/"), "anna", pw, secret)
	if p.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d", p.StatusCode)
	}
	for _, leak := range []string{"dial", "refused", strings.TrimPrefix(deadURL, "http://"), "goroutine", ".go:"} {
		if strings.Contains(p.Body, leak) {
			t.Errorf("502 page leaks %q:\n%s", leak, p.Body)
		}
	}
}

func TestUpstreamErrorsAreRelayed(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/error"), nil)
	p := w.g.Do(c, req)
	if p.StatusCode != http.StatusTeapot || !strings.Contains(p.Body, "upstream's own error text") {
		t.Fatalf("%d %q", p.StatusCode, p.Body)
	}
}

func TestStreamedResponsesPassThrough(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	resp, err := c.Get(w.g.URL(wikiHost, "/stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first chunk arrives while the upstream is still holding the
	// second: the gateway does not buffer the response.
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	close(w.wiki.release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Fatalf("rest: %q", rest)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	u, _ := url.Parse(w.g.URL(wikiHost, "/"))
	var cookies []string
	for _, ck := range c.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	cookie := strings.Join(cookies, "; ")
	conn, err := tls.Dial("tcp", w.g.Addr(), w.g.TLSConfig(wikiHost))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", wikiHost, cookie)
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("status %q", status)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	fmt.Fprintf(conn, "hello\n")
	echo, err := br.ReadString('\n')
	if err != nil || echo != "echo: hello\n" {
		t.Fatalf("echo %q %v", echo, err)
	}
	if r := w.wiki.last(t); r.Header.Get("X-Sluis-User") != "anna" {
		t.Fatalf("upgrade request without identity: %v", r.Header)
	}
	// Without a session, no upgrade reaches the upstream.
	before := len(w.wiki.requests())
	conn2, err := tls.Dial("tcp", w.g.Addr(), w.g.TLSConfig(wikiHost))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn2, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", wikiHost)
	status, _ = bufio.NewReader(conn2).ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 401") || len(w.wiki.requests()) != before {
		t.Fatalf("unauthenticated upgrade: %q", status)
	}
}

func TestUnknownHostGets421(t *testing.T) {
	w := setup(t)
	c := w.g.Client()
	req, _ := http.NewRequest("GET", w.g.URL(w.g.Portal, "/"), nil)
	req.Host = "other.sluis.test"
	p := w.g.Do(c, req)
	if p.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("status %d", p.StatusCode)
	}
}

func TestAppWithoutAllowRuleIsUnreachable(t *testing.T) {
	up := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "closed", Host: "closed.sluis.test", Upstream: up.URL, NoAllow: true})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	p := g.Login(c, g.URL("closed.sluis.test", "/"), "anna", pw, secret)
	if p.StatusCode != http.StatusForbidden || len(up.requests()) != 0 {
		t.Fatalf("status %d, upstream saw %d", p.StatusCode, len(up.requests()))
	}
}

func TestPortalSecurityHeaders(t *testing.T) {
	w := setup(t)
	p := w.g.Get(w.g.Client(), w.g.URL(w.g.Portal, "/login"))
	want := map[string]string{
		"Strict-Transport-Security": "max-age=",
		"Content-Security-Policy":   "frame-ancestors 'none'",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
	}
	for h, v := range want {
		if !strings.Contains(p.Header.Get(h), v) {
			t.Errorf("%s: %q", h, p.Header.Get(h))
		}
	}
	if csp := p.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if p.Header.Get("Server") != "" {
		t.Errorf("Server header %q", p.Header.Get("Server"))
	}
	if p.ProtoMajor != 2 {
		t.Errorf("HTTP/%d, want HTTP/2", p.ProtoMajor)
	}
	if p.TLS == nil || p.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS %v", p.TLS)
	}
}

func TestOldTLSIsRefused(t *testing.T) {
	w := setup(t)
	conf := w.g.TLSConfig(w.g.Portal)
	conf.MaxVersion = tls.VersionTLS11
	conf.MinVersion = tls.VersionTLS10
	if conn, err := tls.Dial("tcp", w.g.Addr(), conf); err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

// No secret ever shows in the audit trail or the logs.
func TestSecretsAreNotLoggedOrAudited(t *testing.T) {
	w := setup(t)
	g := w.g
	c, secret := w.loggedIn(t, "anna", "staff")
	code := g.Code("anna", secret)
	c2 := g.Client()
	g.SubmitPassword(c2, "", "anna", pw)
	g.SubmitCode(c2, "", code)
	g.SubmitPassword(g.Client(), "", "anna", "wrong password value")
	out := g.MustCLI("", "audit", "--json") + g.MustCLI("", "audit") + g.Logs()
	u, _ := url.Parse(g.URL(wikiHost, "/"))
	secrets := []string{pw, "wrong password value", secret, code}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "__Host-sluis" {
			secrets = append(secrets, ck.Value)
		}
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q appears in audit or logs", s)
		}
	}
}

// An open WebSocket ends when its session is revoked, within a second.
// An open WebSocket ends within a second when its session is revoked, or
// when its source is blocked.
func TestRevocationClosesOpenWebSockets(t *testing.T) {
	for _, tt := range []struct {
		name string
		cli  []string
	}{
		{"session revoke", []string{"session", "revoke", "--user", "anna"}},
		{"block add", []string{"block", "add", "127.0.0.1", "--reason", "incident"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := setup(t)
			c, _ := w.loggedIn(t, "anna", "staff")
			u, _ := url.Parse(w.g.URL(wikiHost, "/"))
			var cookies []string
			for _, ck := range c.Jar.Cookies(u) {
				cookies = append(cookies, ck.Name+"="+ck.Value)
			}
			conn, err := tls.Dial("tcp", w.g.Addr(), w.g.TLSConfig(wikiHost))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", wikiHost, strings.Join(cookies, "; "))
			br := bufio.NewReader(conn)
			if status, _ := br.ReadString('\n'); !strings.HasPrefix(status, "HTTP/1.1 101") {
				t.Fatalf("status %q", status)
			}
			for {
				if l, err := br.ReadString('\n'); err != nil || l == "\r\n" {
					break
				}
			}
			w.g.MustCLI("", tt.cli...)
			start := time.Now()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = br.ReadByte()
			if err == nil || time.Since(start) > time.Second {
				t.Fatalf("WebSocket after %s: read %v after %v", tt.name, err, time.Since(start))
			}
		})
	}
}

func TestOnlyWebSocketUpgradesAreAccepted(t *testing.T) {
	w := setup(t)
	c, _ := w.loggedIn(t, "anna", "staff")
	before := len(w.wiki.requests())
	c1 := w.g.HTTP1(c)
	for _, h := range []map[string]string{
		{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"},
		{"Connection": "Upgrade", "Upgrade": "tls/1.2"},
		{"Connection": "Upgrade", "Upgrade": "websocket, h2c"},
	} {
		req, _ := http.NewRequest("GET", w.g.URL(wikiHost, "/ws"), nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if p := w.g.Do(c1, req); p.StatusCode != http.StatusBadRequest {
			t.Errorf("%v: %d", h, p.StatusCode)
		}
	}
	if n := len(w.wiki.requests()); n != before {
		t.Fatalf("upstream saw %d refused upgrades", n-before)
	}
}

// What an attacker types as a user name cannot forge audit lines.
func TestTypedNamesCannotForgeAuditLines(t *testing.T) {
	w := setup(t)
	g := w.g
	forged := "x\n2026-11-26 16:00:00  admin.user.groups  mallory  cli  \x1b]0;pwned\x07"
	g.SubmitPassword(g.Client(), "", forged, "whatever")
	table := g.MustCLI("", "audit")
	if strings.Contains(table, "\x1b") || strings.Contains(table, "admin.user.groups") {
		t.Fatalf("audit table:\n%s", table)
	}
	assertAudit(t, g, "login.failure")
	if !strings.Contains(table, "(invalid name)") {
		t.Fatalf("audit table does not record the invalid name as such:\n%s", table)
	}
}

// An operator switches an app off for everyone in one command, with a
// reason users see; switching it on brings it back. Both count at once.
func TestAppDisableAndEnable(t *testing.T) {
	w := setup(t)
	g := w.g
	c, _ := w.loggedIn(t, "anna", "staff")
	get := func() testenv.Page {
		req, _ := http.NewRequest("GET", g.URL(wikiHost, "/x"), nil)
		return g.Do(c, req)
	}
	before := len(w.wiki.requests())
	g.MustCLI("", "app", "disable", "wiki", "--reason", "CVE-2026-1234: patch in progress <b>")
	p := get()
	if p.StatusCode != http.StatusServiceUnavailable || !strings.Contains(p.Body, "CVE-2026-1234: patch in progress &lt;b&gt;") {
		t.Fatalf("disabled app: %d\n%s", p.StatusCode, p.Body)
	}
	if n := len(w.wiki.requests()); n != before {
		t.Fatal("a request reached a disabled app")
	}
	if l := g.Get(c, g.URL(g.Portal, "/")); !strings.Contains(l.Body, "switched off: CVE-2026-1234") || strings.Contains(l.Body, `href="`+g.URL(wikiHost, "/")) {
		t.Fatalf("launcher while the app is off:\n%s", l.Body)
	}
	if _, err := g.CLI("", "app", "disable", "wiki"); err == nil {
		t.Fatal("disable without a reason accepted")
	}
	g.MustCLI("", "app", "enable", "wiki")
	if p := get(); p.StatusCode != 200 {
		t.Fatalf("enabled app: %d", p.StatusCode)
	}
	assertAudit(t, g, "admin.app.disable", "admin.app.enable")
}

// A browser that sends Origin but no Sec-Fetch-Site (Safari before 16.4)
// logs in on a gateway that listens on a port other than 443; a foreign
// Origin is still refused.
func TestLoginWithOriginOnlyOnAnotherPort(t *testing.T) {
	w := setup(t)
	g := w.g
	if g.Port == 443 {
		t.Fatal("the test needs a port other than 443")
	}
	g.AddUser("olga", pw, "staff")
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{fmt.Sprintf("https://%s:%d", g.Portal, g.Port), http.StatusSeeOther},
		{"https://evil.example", http.StatusForbidden},
		{fmt.Sprintf("https://%s", g.Portal), http.StatusForbidden}, // another port is another origin
		{fmt.Sprintf("http://%s:%d", g.Portal, g.Port), http.StatusForbidden},
		{fmt.Sprintf("https://%s:%d", wikiHost, g.Port), http.StatusForbidden},
	} {
		c := g.Client()
		form := g.Get(c, g.URL(g.Portal, "/login"))
		req, err := http.NewRequest("POST", g.URL(g.Portal, "/login"), strings.NewReader(url.Values{
			"csrf": {testenv.CSRF(form.Body)}, "username": {"olga"}, "password": {pw}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", tt.origin)
		if p := g.Do(c, req); p.StatusCode != tt.want {
			t.Errorf("Origin %s without Sec-Fetch-Site: %d, want %d", tt.origin, p.StatusCode, tt.want)
		}
	}
}
