package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

const (
	testPortal = "login.test"
	testHost   = "admin.login.test"
	testPW     = "correct horse battery"
)

// consoleEnv is a console on a real TLS listener over a real SQLite
// store, with a clock the test moves, and users: olga (ict-ops:
// operator), vera (auditors: viewer), hank (servicedesk: helpdesk), each
// with a passkey registered on the portal; sam (staff: no role) with a
// passkey; tina (servicedesk) with a one-time code generator and no
// passkey.
type consoleEnv struct {
	t      *testing.T
	st     *sqlite.DB
	srv    *Server
	base   string
	client func() *http.Client
	keys   map[string]*softKey
	sealer *keys.Sealer
	totp   map[string]string
	logs   *bytes.Buffer

	mu  sync.Mutex
	now time.Time
}

var roleGroups = map[string]Role{"auditors": RoleViewer, "servicedesk": RoleHelpdesk, "ict-ops": RoleOperator}

func testRoles(groups []string) Role {
	best := RoleNone
	for _, g := range groups {
		best = max(best, roleGroups[g])
	}
	return best
}

func newConsoleEnv(t *testing.T, o Options) *consoleEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := keys.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &consoleEnv{t: t, st: st, keys: map[string]*softKey{}, sealer: sealer, totp: map[string]string{}, logs: &bytes.Buffer{}, now: time.Now()}
	clock := func() time.Time {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.now
	}
	hash, err := authn.Hash(testPW, authn.Params{Memory: 1024, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	portalKeys, err := mfa.NewPasskeys(testPortal, "https://"+testPortal, "sluis")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, group string }{{"olga", "ict-ops"}, {"vera", "auditors"}, {"hank", "servicedesk"}, {"sam", "staff"}, {"tina", "servicedesk"}} {
		if err := st.CreateUser(ctx, sluis.User{Name: u.name, Groups: []string{u.group}, PasswordHash: hash, CreatedAt: e.now}); err != nil {
			t.Fatal(err)
		}
		if u.name == "tina" {
			k, err := mfa.NewKey("sluis", "tina")
			if err != nil {
				t.Fatal(err)
			}
			if err := st.SetTOTP(ctx, "tina", sealer.Seal([]byte(k.Secret), "totp:tina")); err != nil {
				t.Fatal(err)
			}
			e.totp["tina"] = k.Secret
			continue
		}
		// A passkey registered on the portal, as a user adds one there.
		handle, err := st.PasskeyHandle(ctx, u.name, true)
		if err != nil {
			t.Fatal(err)
		}
		c, err := portalKeys.BeginRegistration(mfa.Account{Handle: handle, Name: u.name})
		if err != nil {
			t.Fatal(err)
		}
		sk := newSoftKey(t)
		id, data, err := portalKeys.FinishRegistration(mfa.Account{Handle: handle, Name: u.name}, c.State, sk.register(t, c.Options, "https://"+testPortal))
		if err != nil {
			t.Fatalf("registering %s's passkey: %v", u.name, err)
		}
		if err := st.AddPasskey(ctx, sluis.Passkey{ID: id, User: u.name, Name: "key", Data: data, CreatedAt: e.now}); err != nil {
			t.Fatal(err)
		}
		e.keys[u.name] = sk
	}
	o.Host, o.Portal, o.PortalURL = testHost, testPortal, "https://"+testPortal
	o.Roles, o.Store, o.Sealer, o.Now = testRoles, st, sealer, clock
	o.Audit = &audit.Recorder{Store: st, Log: slog.New(slog.DiscardHandler), Now: clock}
	o.Log = slog.New(slog.NewTextHandler(e.logs, nil))
	srv, client, port := tlsServer(t, o)
	e.srv, e.st = srv, st
	e.base = fmt.Sprintf("https://%s:%d", testHost, port)
	e.client = func() *http.Client {
		c := *client
		c.Jar, _ = cookiejar.New(nil)
		return &c
	}
	return e
}

func (e *consoleEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// do sends a request to the console as its own pages would (same
// origin), and returns the answer and its body.
func (e *consoleEnv) do(c *http.Client, method, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", e.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	csrfData  = regexp.MustCompile(`data-csrf="([^"]+)"`)
)

func field(t *testing.T, re *regexp.Regexp, page string) string {
	t.Helper()
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, page)
	}
	return m[1]
}

// password runs the login's first step for user and returns the answer.
func (e *consoleEnv) password(c *http.Client, user, pw string) (*http.Response, string) {
	e.t.Helper()
	_, page := e.do(c, "GET", "/login", nil)
	form := url.Values{"csrf": {field(e.t, csrfField, page)}, "username": {user}, "password": {pw}}
	return e.do(c, "POST", "/login", strings.NewReader(form.Encode()))
}

// passkey runs the passkey step with user's key answering for origin, and
// returns the finish's answer.
func (e *consoleEnv) passkey(c *http.Client, user, origin string) (*http.Response, string) {
	e.t.Helper()
	resp, page := e.do(c, "GET", "/login/key", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `data-passkey="login"`) {
		e.t.Fatalf("the passkey page: %d\n%s", resp.StatusCode, page)
	}
	csrf := field(e.t, csrfData, page)
	resp, opts := e.do(c, "POST", "/login/key/begin", strings.NewReader("{}"), "Content-Type", "application/json", "X-CSRF-Token", csrf)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("begin: %d %s", resp.StatusCode, opts)
	}
	return e.do(c, "POST", "/login/key/finish", bytes.NewReader(e.keys[user].assert(e.t, []byte(opts), origin)), "Content-Type", "application/json", "X-CSRF-Token", csrf)
}

// login logs user in with password and passkey and returns the client.
func (e *consoleEnv) login(user string) *http.Client {
	e.t.Helper()
	c := e.client()
	if resp, body := e.password(c, user, testPW); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/key" {
		e.t.Fatalf("password of %s: %d %s", user, resp.StatusCode, body)
	}
	if resp, body := e.passkey(c, user, e.base); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"redirect":"/"`) {
		e.t.Fatalf("passkey of %s: %d %s\n%s", user, resp.StatusCode, body, e.logs)
	}
	return c
}

func (e *consoleEnv) events(typ string) []sluis.Event {
	e.t.Helper()
	evs, err := e.st.Events(context.Background(), time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []sluis.Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// An operator logs in with a password and then the passkey they added on
// the portal; the console's session is a store session bound to the admin
// host, in a __Host- cookie (Secure, HttpOnly, SameSite=Strict), and
// every step is recorded.
func TestAdminLoginWithPasskey(t *testing.T) {
	e := newConsoleEnv(t, Options{})
	c := e.client()
	resp, body := e.password(c, "olga", testPW)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/key" {
		t.Fatalf("password: %d %s", resp.StatusCode, body)
	}
	var set *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			set = ck
		}
	}
	if set == nil || !set.Secure || !set.HttpOnly || set.SameSite != http.SameSiteStrictMode || set.Path != "/" || set.Domain != "" {
		t.Fatalf("session cookie: %+v", set)
	}
	// Before the passkey the console is closed.
	if resp, _ := e.do(c, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("the overview after the password alone: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = e.passkey(c, "olga", e.base)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"redirect":"/"`) {
		t.Fatalf("passkey: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(c, "GET", "/", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-role="operator"`) {
		t.Fatalf("overview: %d %s", resp.StatusCode, body)
	}
	// A store session, bound to the admin host alone.
	sessions, err := e.st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var x sluis.Session
	for _, s := range sessions {
		if s.User == "olga" && !s.Revoked() {
			x = s
		}
	}
	if !IsConsoleSession(x.ID) || x.Stage != sluis.StageComplete || x.MFAMethod != sluis.FactorPasskey || x.ExpiresAt.Sub(x.MFAAt) != SessionLifetime {
		t.Fatalf("session: %+v", x)
	}
	if hosts, err := e.st.SessionHosts(context.Background(), x.ID); err != nil || len(hosts) != 1 || hosts[0] != testHost {
		t.Fatalf("hosts of the session: %v %v", hosts, err)
	}
	logins := e.events(EventLogin)
	if len(logins) != 2 || !strings.Contains(logins[0].Detail, "password accepted (role operator)") || !strings.Contains(logins[1].Detail, "passkey; logged in as operator") ||
		logins[1].Outcome != sluis.OutcomeSuccess || logins[1].User != "olga" || logins[1].Source != "127.0.0.1" {
		t.Fatalf("events: %+v", logins)
	}
	// Logout ends the session.
	_, page := e.do(c, "GET", "/", nil)
	form := url.Values{"csrf": {field(t, csrfField, page)}}
	if resp, _ := e.do(c, "POST", "/logout", strings.NewReader(form.Encode())); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := e.do(c, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
	if n := len(e.events(EventLogout)); n != 1 {
		t.Fatalf("%d logout events", n)
	}
}

// What the console refuses at login: a wrong password (counted, and
// throttled after five from one source), a user with no role, a passkey
// answer made for another origin (the portal's own pages, a look-alike),
// the same answer twice, a one-time code unless allow_totp.
func TestAdminLoginRefusals(t *testing.T) {
	e := newConsoleEnv(t, Options{})

	resp, body := e.password(e.client(), "olga", "wrong")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, wrongPassword) || !strings.Contains(body, `id="error-id"`) {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
	id := regexp.MustCompile(`id="error-id">([0-9a-f]+)<`).FindStringSubmatch(body)[1]
	if evs := e.events(EventLogin); len(evs) != 1 || evs[0].Outcome != sluis.OutcomeFailure || !strings.HasSuffix(evs[0].Detail, "bad password; error ID "+id) {
		t.Fatalf("events of a wrong password: %+v", evs)
	}
	if resp, body := e.password(e.client(), "nobody", testPW); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, wrongPassword) {
		t.Fatalf("unknown user: %d %s", resp.StatusCode, body)
	}

	// sam's password is right, but staff has no role.
	resp, body = e.password(e.client(), "sam", testPW)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no role on the console") {
		t.Fatalf("no role: %d %s", resp.StatusCode, body)
	}
	if evs := e.events(EventLogin); evs[len(evs)-1].Outcome != sluis.OutcomeDenied || !strings.Contains(evs[len(evs)-1].Detail, "no role") {
		t.Fatalf("no role's event: %+v", evs[len(evs)-1])
	}

	// An answer made on the portal's page (its origin) is no answer to
	// the console, nor a look-alike's; the attempt is recorded.
	for _, origin := range []string{"https://" + testPortal, "https://admin.login.test.evil.example", "https://" + testHost} {
		c := e.client()
		if resp, body := e.password(c, "vera", testPW); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("password: %d %s", resp.StatusCode, body)
		}
		resp, body := e.passkey(c, "vera", origin)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not accepted") {
			t.Fatalf("passkey answered for %s: %d %s", origin, resp.StatusCode, body)
		}
	}

	// The same answer twice: the second finds no ceremony.
	c := e.client()
	e.password(c, "vera", testPW)
	_, page := e.do(c, "GET", "/login/key", nil)
	csrf := field(t, csrfData, page)
	_, opts := e.do(c, "POST", "/login/key/begin", strings.NewReader("{}"), "Content-Type", "application/json", "X-CSRF-Token", csrf)
	answer := e.keys["vera"].assert(t, []byte(opts), e.base)
	if resp, body := e.do(c, "POST", "/login/key/finish", bytes.NewReader(answer), "Content-Type", "application/json", "X-CSRF-Token", csrf); resp.StatusCode != http.StatusOK {
		t.Fatalf("first answer: %d %s", resp.StatusCode, body)
	}
	other := e.client()
	e.password(other, "vera", testPW)
	if resp, _ := e.do(other, "POST", "/login/key/finish", bytes.NewReader(answer), "Content-Type", "application/json", "X-CSRF-Token", csrf); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the answer again, in another login: %d", resp.StatusCode)
	}

	// Without the CSRF token of the pending login, no ceremony.
	c = e.client()
	e.password(c, "hank", testPW)
	if resp, _ := e.do(c, "POST", "/login/key/begin", strings.NewReader("{}"), "Content-Type", "application/json"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("begin without a token: %d", resp.StatusCode)
	}
	if resp, _ := e.do(c, "POST", "/login/key/begin", strings.NewReader("{}"), "X-CSRF-Token", "x"); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("begin as a form: %d", resp.StatusCode)
	}

	// tina has a code and no passkey: the console says so, and takes no
	// code.
	c = e.client()
	if resp, _ := e.password(c, "tina", testPW); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("tina's password: %d", resp.StatusCode)
	}
	_, page = e.do(c, "GET", "/login/key", nil)
	if !strings.Contains(page, `id="no-passkey"`) || strings.Contains(page, `name="code"`) || !strings.Contains(page, "https://login.test/passkeys") {
		t.Fatalf("the second-factor page without a passkey:\n%s", page)
	}
	code, err := mfa.Code(e.totp["tina"], e.srv.o.Now())
	if err != nil {
		t.Fatal(err)
	}
	csrf = csrfFor(cookieOf(t, c, e.base)) // the page has no form to take it from
	form := url.Values{"csrf": {csrf}, "code": {code}}
	if resp, body := e.do(c, "POST", "/login/code", strings.NewReader(form.Encode())); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "passkey only") {
		t.Fatalf("a code without allow_totp: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.do(c, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the console after a refused code: %d", resp.StatusCode)
	}

	// Six wrong passwords from one source (five free, the sixth locks),
	// then even the right one waits.
	for i := 0; i < 6; i++ {
		e.password(e.client(), "hank", "wrong")
	}
	if resp, body := e.password(e.client(), "hank", testPW); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many attempts") {
		t.Fatalf("the sixth attempt: %d %s", resp.StatusCode, body)
	}
}

// cookieOf returns the console session's token the client holds.
func cookieOf(t *testing.T, c *http.Client, base string) string {
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// With allow_totp an operator without a passkey passes with a code;
// recovery codes never pass.
func TestAdminLoginWithCode(t *testing.T) {
	e := newConsoleEnv(t, Options{AllowTOTP: true})
	c := e.client()
	e.password(c, "tina", testPW)
	_, page := e.do(c, "GET", "/login/key", nil)
	if !strings.Contains(page, `name="code"`) {
		t.Fatalf("no code form with allow_totp:\n%s", page)
	}
	code, _ := mfa.Code(e.totp["tina"], e.srv.o.Now())
	form := url.Values{"csrf": {field(t, csrfField, page[strings.Index(page, "<main"):])}, "code": {code}}
	if resp, body := e.do(c, "POST", "/login/code", strings.NewReader(form.Encode())); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("code: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.do(c, "GET", "/", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-role="helpdesk"`) {
		t.Fatalf("overview: %d %s", resp.StatusCode, body)
	}
	// The same code again, in a new login: refused.
	c2 := e.client()
	e.password(c2, "tina", testPW)
	_, page = e.do(c2, "GET", "/login/key", nil)
	form = url.Values{"csrf": {field(t, csrfField, page[strings.Index(page, "<main"):])}, "code": {code}}
	if resp, _ := e.do(c2, "POST", "/login/code", strings.NewReader(form.Encode())); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the code again: %d", resp.StatusCode)
	}
	// There is no route for recovery codes.
	form.Set("recovery", "ABCD-EFGH-IJKL")
	if resp, _ := e.do(c2, "POST", "/login/recovery", strings.NewReader(form.Encode())); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a recovery route: %d", resp.StatusCode)
	}
}

// A logged-in operator loses the console at the next request when the
// user is disabled, the role is taken away (the session ends), the
// sessions are revoked as `sluis session revoke --user` does, after 15
// minutes idle, and 8 hours after login.
func TestAdminSessionEnds(t *testing.T) {
	e := newConsoleEnv(t, Options{})
	ctx := context.Background()
	ok := func(c *http.Client) bool {
		resp, _ := e.do(c, "GET", "/", nil)
		return resp.StatusCode == http.StatusOK
	}

	c := e.login("olga")
	if err := e.st.SetDisabled(ctx, "olga", true); err != nil {
		t.Fatal(err)
	}
	if ok(c) {
		t.Fatal("a disabled user still has the console")
	}
	e.st.SetDisabled(ctx, "olga", false)

	c = e.login("vera")
	if err := e.st.SetGroups(ctx, "vera", []string{"staff"}); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(c, "GET", "/", nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no role") {
		t.Fatalf("without a role: %d %s", resp.StatusCode, body)
	}
	e.st.SetGroups(ctx, "vera", []string{"auditors"})
	if ok(c) {
		t.Fatal("the role is back, but the session ended with its loss")
	}

	c = e.login("hank")
	if _, err := e.st.RevokeSessions(ctx, sluis.SessionFilter{User: "hank"}, e.srv.o.Now()); err != nil {
		t.Fatal(err)
	}
	if ok(c) {
		t.Fatal("revoked by user, the console session goes on")
	}

	c = e.login("olga")
	e.advance(SessionIdle - time.Minute)
	if !ok(c) {
		t.Fatal("ended before the idle timeout")
	}
	e.advance(SessionIdle + time.Second)
	if ok(c) {
		t.Fatal("not ended after 15 minutes idle")
	}

	c = e.login("olga")
	for i := 0; i < 40; i++ { // used every 14 minutes, for over 8 hours
		e.advance(14 * time.Minute)
		if !ok(c) {
			if i*14 < int(SessionLifetime/time.Minute)-14 {
				t.Fatalf("ended after %d minutes of use", (i+1)*14)
			}
			return
		}
	}
	t.Fatal("a console session outlived its 8 hours")
}

// Every request that changes something must come from the console's own
// pages: another origin (the portal and the apps are the same site, never
// the same origin) is refused, and a form needs the session's CSRF token.
func TestAdminSameOriginAndCSRF(t *testing.T) {
	e := newConsoleEnv(t, Options{})
	c := e.login("olga")
	_, page := e.do(c, "GET", "/", nil)
	csrf := field(t, csrfField, page)
	for _, tc := range []struct {
		hdr  []string
		want int
	}{
		{[]string{"Origin", "https://" + testPortal, "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{[]string{"Origin", "https://wiki.login.test", "Sec-Fetch-Site", ""}, http.StatusForbidden},
		{[]string{"Origin", "null", "Sec-Fetch-Site", ""}, http.StatusForbidden},
		{[]string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
	} {
		form := url.Values{"csrf": {csrf}}
		if resp, _ := e.do(c, "POST", "/logout", strings.NewReader(form.Encode()), tc.hdr...); resp.StatusCode != tc.want {
			t.Errorf("%v: %d, want %d", tc.hdr, resp.StatusCode, tc.want)
		}
	}
	if resp, _ := e.do(c, "POST", "/logout", strings.NewReader("csrf=nope")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout with a wrong token: %d", resp.StatusCode)
	}
	// Still logged in: none of them logged out.
	if resp, _ := e.do(c, "GET", "/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after refused posts: %d", resp.StatusCode)
	}
	// The login form needs its own token, bound to its cookie.
	if resp, _ := e.do(e.client(), "POST", "/login", strings.NewReader("username=olga&password="+url.QueryEscape(testPW)+"&csrf=x")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without its token: %d", resp.StatusCode)
	}
}

// fakeDirectory knows one account and its password.
type fakeDirectory struct{ name, password string }

func (d fakeDirectory) Authenticate(_ context.Context, user, password string) (directory.Account, error) {
	if user != d.name || password != d.password {
		return directory.Account{}, fmt.Errorf("invalid credentials")
	}
	return directory.Account{Name: d.name, Groups: []string{"ict-ops"}}, nil
}

func (d fakeDirectory) Resolve(_ context.Context, user string) (string, error) { return user, nil }

// A reload's directory is the one the console asks: after the directory
// is replaced (or removed), the old one no longer lets anyone in.
func TestAdminLoginFollowsTheDirectory(t *testing.T) {
	e := newConsoleEnv(t, Options{Directory: fakeDirectory{"dora", "old directory password"}})
	if err := e.st.CreateUser(context.Background(), sluis.User{Name: "dora", Source: sluis.SourceLDAP, Groups: []string{"ict-ops"}, CreatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name     string
		set      bool
		dir      Directory
		password string
		status   int
	}{
		{name: "the directory at start", password: "old directory password", status: http.StatusSeeOther},
		{name: "a new directory, the old password", set: true, dir: fakeDirectory{"dora", "new directory password"}, password: "old directory password", status: http.StatusUnauthorized},
		{name: "a new directory, its password", password: "new directory password", status: http.StatusSeeOther},
		{name: "no directory any more", set: true, dir: nil, password: "new directory password", status: http.StatusUnauthorized},
	} {
		if step.set {
			e.srv.SetDirectory(step.dir)
		}
		if resp, body := e.password(e.client(), "dora", step.password); resp.StatusCode != step.status {
			t.Fatalf("%s: %d, want %d: %s", step.name, resp.StatusCode, step.status, body)
		}
	}
}
