package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// runConnect runs `sluis connect` with its own config directory until it
// ends (a refusal, a logout) and returns its error and what it said on
// standard error. args come after the gateway's address, so they may
// replace it.
func runConnect(t *testing.T, g *testenv.Gateway, configDir, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stderr := &syncWriter{}
	full := append([]string{"sluis", "connect", "--gateway", g.URL(g.Portal, ""), "--connect", g.Addr(),
		"--ca", filepath.Join(g.Dir, "data", "ca.pem")}, args...)
	err := cli.Run(ctx, full, func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return configDir
		}
		return ""
	}, strings.NewReader(stdin), &syncWriter{}, stderr)
	return stderr.String(), err
}

// savedLogins returns the tokens in a config directory's credentials file
// by user, whatever the file's format: every object with a token and a
// user in it.
func savedLogins(t *testing.T, configDir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(configDir, "sluis", "connect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("credentials file: %v\n%s", err, b)
	}
	out := map[string]string{}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if tok, ok := v["token"].(string); ok {
				user, _ := v["user"].(string)
				out[user] = tok
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

// tunnelOpenedBy returns the users named by the tunnel.open events.
func tunnelOpenedBy(t *testing.T, g *testenv.Gateway) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, ev := range assertAudit(t, g) {
		if ev["type"] == "tunnel.open" {
			out[ev["user"].(string)]++
		}
	}
	return out
}

// checkToken asks the gateway whether token may use app, and returns the
// status and the user the gateway says the token is of.
func checkToken(t *testing.T, g *testenv.Gateway, app, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", g.URL(g.Portal, "/.sluis/tunnel/"+app), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := g.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Sluis-User")
}

// Logins are kept per gateway and user: after alice's login, bob's
// --user bob runs as bob (it never borrows alice's), and both are kept.
// Without --user, the one saved login is used and the client says whose
// it is; with several, it refuses and names them.
func TestConnectKeepsALoginPerUser(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"alice", "bob"}, MFA: true})
	aliceSecret := g.AddUser("alice", pw, "staff")
	bobSecret := g.AddUser("bob", pw, "staff")
	dir := t.TempDir()

	a := startConnect(t, g, dir, "echo", pw+"\n", "--user", "alice", "--password-stdin", "--code", g.Code("alice", aliceSecret))
	if err := roundTrip(t, a.addr, 1000); err != nil {
		t.Fatal(err)
	}
	b := startConnect(t, g, dir, "echo", pw+"\n", "--user", "bob", "--password-stdin", "--code", g.Code("bob", bobSecret))
	if err := roundTrip(t, b.addr, 1000); err != nil {
		t.Fatal(err)
	}
	if by := tunnelOpenedBy(t, g); by["alice"] != 1 || by["bob"] != 1 {
		t.Fatalf("tunnels opened by %v, want one by alice and one by bob\nbob's client:\n%s", by, b.stderr)
	}
	if saved := savedLogins(t, dir); len(saved) != 2 || saved["alice"] == "" || saved["bob"] == "" || saved["alice"] == saved["bob"] {
		t.Fatalf("saved logins after alice's and bob's: %v", saved)
	}
	// --user with another spelling of the name uses the saved login: no
	// password is asked (there is none on standard input).
	a2 := startConnect(t, g, dir, "echo", "", "--user", "Alice")
	if err := roundTrip(t, a2.addr, 1000); err != nil {
		t.Fatal(err)
	}
	if by := tunnelOpenedBy(t, g); by["alice"] != 2 {
		t.Fatalf("--user Alice: tunnels opened by %v", by)
	}

	// Two saved logins and no --user: refused, with both named.
	said, err := runConnect(t, g, dir, "", "echo")
	if err == nil || !strings.Contains(err.Error(), "alice, bob") || !strings.Contains(err.Error(), "--user") {
		t.Fatalf("connect without --user with two saved logins: %v\n%s", err, said)
	}

	// One saved login: used, and said whose.
	one := t.TempDir()
	startConnect(t, g, one, "echo", pw+"\n", "--user", "alice", "--password-stdin", "--code", g.Code("alice", aliceSecret))
	c := startConnect(t, g, one, "echo", "")
	if err := roundTrip(t, c.addr, 1000); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.stderr.String(), "connected as alice") {
		t.Fatalf("connect with alice's saved login does not say whose it is:\n%s", c.stderr)
	}
}

// A login filed under one user (an old file, a hand-edited one) is used
// as that user's only if the gateway says it is theirs.
func TestConnectNeverUsesAnotherUsersLogin(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"alice", "bob"}, MFA: true})
	aliceSecret := g.AddUser("alice", pw, "staff")
	bobSecret := g.AddUser("bob", pw, "staff")
	first := t.TempDir()
	startConnect(t, g, first, "echo", pw+"\n", "--user", "alice", "--password-stdin", "--code", g.Code("alice", aliceSecret))
	aliceToken := savedLogins(t, first)["alice"]

	// The first format, one login per gateway, with alice's token said
	// to be bob's.
	dir := t.TempDir()
	writeOldCredentials(t, g, dir, "bob", aliceToken)
	b := startConnect(t, g, dir, "echo", pw+"\n", "--user", "bob", "--password-stdin", "--code", g.Code("bob", bobSecret))
	if err := roundTrip(t, b.addr, 1000); err != nil {
		t.Fatal(err)
	}
	if by := tunnelOpenedBy(t, g); by["bob"] != 1 || by["alice"] != 0 {
		t.Fatalf("--user bob with alice's token filed as bob's: tunnels opened by %v\n%s", by, b.stderr)
	}
	if !strings.Contains(b.stderr.String(), "the login saved for bob is alice's") {
		t.Errorf("the client does not say why it logged in again:\n%s", b.stderr)
	}
	if saved := savedLogins(t, dir); saved["alice"] != aliceToken || saved["bob"] == "" || saved["bob"] == aliceToken {
		t.Errorf("saved logins: %v", saved)
	}
}

// writeOldCredentials writes a credentials file of the first format (one
// login per gateway) into configDir.
func writeOldCredentials(t *testing.T, g *testenv.Gateway, configDir, user, token string) {
	t.Helper()
	old, _ := json.Marshal(map[string]any{"gateways": map[string]any{
		strings.ToLower(g.URL(g.Portal, "")): map[string]any{"token": token, "user": user, "saved": time.Now().UTC()},
	}})
	if err := os.MkdirAll(filepath.Join(configDir, "sluis"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configDir, "sluis", "connect.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A credentials file of the first format still works: its login is its
// recorded user's, used with and without --user, and the file is
// rewritten with the gateway's name for the user.
func TestConnectReadsTheOldCredentialsFile(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"alice"}, MFA: true})
	aliceSecret := g.AddUser("alice", pw, "staff")
	first := t.TempDir()
	startConnect(t, g, first, "echo", pw+"\n", "--user", "alice", "--password-stdin", "--code", g.Code("alice", aliceSecret))
	token := savedLogins(t, first)["alice"]

	dir := t.TempDir()
	writeOldCredentials(t, g, dir, "Alice", token) // as typed
	c := startConnect(t, g, dir, "echo", "")
	if err := roundTrip(t, c.addr, 1000); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.stderr.String(), "connected as alice") {
		t.Fatalf("the old file's login does not say whose it is:\n%s", c.stderr)
	}
	if saved := savedLogins(t, dir); len(saved) != 1 || saved["alice"] != token {
		t.Fatalf("the old file after use: %v", saved)
	}
	writeOldCredentials(t, g, dir, "alice", token)
	c2 := startConnect(t, g, dir, "echo", "", "--user", "alice")
	if err := roundTrip(t, c2.addr, 1000); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := openDB(t, g).QueryRow(`SELECT count(*) FROM sessions WHERE user_agent = 'sluis connect'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("client sessions: %d %v; the old file's login was not used", n, err)
	}
}

// logoutEvents returns "user: detail" of each logout event.
func logoutEvents(t *testing.T, g *testenv.Gateway) []string {
	t.Helper()
	var out []string
	for _, ev := range assertAudit(t, g) {
		if ev["type"] == "logout" {
			out = append(out, ev["user"].(string)+": "+ev["detail"].(string))
		}
	}
	return out
}

// The logout of `sluis connect` ends the session of the token it is sent
// with, and only with that token: no token, a wrong one or a browser's
// cookie gets 401 and ends nothing. It is audited.
func TestTunnelLogoutNeedsTheToken(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	browser := g.Client()
	g.Login(browser, "", "anna", pw, secret)
	dir := t.TempDir()
	startConnect(t, g, dir, "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	token := savedLogins(t, dir)["anna"]
	if status, user := checkToken(t, g, "echo", token); status != http.StatusNoContent || user != "anna" {
		t.Fatalf("check with anna's token: %d, user %q", status, user)
	}
	logout := g.URL(g.Portal, "/.sluis/connect/logout")
	post := func(c *http.Client, method, auth string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, logout, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, auth := range []string{"", "Bearer " + strings.Repeat("A", 43), "Bearer ", "Basic YW5uYTp4"} {
		if resp := post(g.Client(), "POST", auth); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Sluis-User") != "" {
			t.Errorf("logout with %q: %d %q", auth, resp.StatusCode, resp.Header.Get("Sluis-User"))
		}
	}
	if resp := post(browser, "POST", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("logout with a browser's cookie: %d", resp.StatusCode)
	}
	if p := g.Get(browser, g.URL(g.Portal, "/")); p.StatusCode != 200 || !strings.Contains(p.Body, "echo") {
		t.Fatalf("the browser's session after its cookie was sent to the client's logout: %d", p.StatusCode)
	}
	if resp := post(g.Client(), "GET", "Bearer "+token); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of the logout: %d", resp.StatusCode)
	}
	if status, _ := checkToken(t, g, "echo", token); status != http.StatusNoContent {
		t.Fatalf("the token after refused logouts: %d", status)
	}
	if evs := logoutEvents(t, g); len(evs) != 0 {
		t.Fatalf("logout events before the logout: %q", evs)
	}
	if resp := post(g.Client(), "POST", "Bearer "+token); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Sluis-User") != "anna" {
		t.Fatalf("logout with the token: %d %q", resp.StatusCode, resp.Header.Get("Sluis-User"))
	}
	if status, _ := checkToken(t, g, "echo", token); status != http.StatusUnauthorized {
		t.Fatalf("the token after its logout: %d", status)
	}
	if evs := logoutEvents(t, g); len(evs) != 1 || !strings.HasPrefix(evs[0], "anna: sluis connect") {
		t.Fatalf("logout events: %q", evs)
	}
	// The browser's session is its own.
	if p := g.Get(browser, g.URL(g.Portal, "/")); p.StatusCode != 200 || !strings.Contains(p.Body, "echo") {
		t.Fatalf("the browser's session after the client's logout: %d", p.StatusCode)
	}
}

// `sluis connect --logout --user NAME` ends NAME's session on the gateway
// (its tunnels close) and forgets the login, and only NAME's. When the
// gateway cannot be reached, the login is forgotten all the same and the
// client says the session could not be ended.
func TestConnectLogout(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"alice", "bob"}, MFA: true})
	aliceSecret := g.AddUser("alice", pw, "staff")
	bobSecret := g.AddUser("bob", pw, "staff")
	dir := t.TempDir()
	a := startConnect(t, g, dir, "echo", pw+"\n", "--user", "alice", "--password-stdin", "--code", g.Code("alice", aliceSecret))
	startConnect(t, g, dir, "echo", pw+"\n", "--user", "bob", "--password-stdin", "--code", g.Code("bob", bobSecret))
	saved := savedLogins(t, dir)
	conn, err := net.Dial("tcp", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("x"))
	if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	// Two logins, no --user: which one is not guessed.
	said, err := runConnect(t, g, dir, "", "--logout")
	if err == nil || !strings.Contains(err.Error(), "alice, bob") {
		t.Fatalf("--logout without --user with two logins: %v\n%s", err, said)
	}
	if evs := logoutEvents(t, g); len(evs) != 0 {
		t.Fatalf("logout events after a refused --logout: %q", evs)
	}

	said, err = runConnect(t, g, dir, "", "--logout", "--user", "alice")
	if err != nil || !strings.Contains(said, "logged alice out") {
		t.Fatalf("--logout --user alice: %v\n%s", err, said)
	}
	if now := savedLogins(t, dir); len(now) != 1 || now["bob"] != saved["bob"] {
		t.Fatalf("saved logins after alice's logout: %v", now)
	}
	if status, _ := checkToken(t, g, "echo", saved["alice"]); status != http.StatusUnauthorized {
		t.Fatalf("alice's old token after her logout: %d", status)
	}
	if status, user := checkToken(t, g, "echo", saved["bob"]); status != http.StatusNoContent || user != "bob" {
		t.Fatalf("bob's token after alice's logout: %d %q", status, user)
	}
	if evs := logoutEvents(t, g); len(evs) != 1 || !strings.HasPrefix(evs[0], "alice: sluis connect") {
		t.Fatalf("logout events: %q", evs)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("alice's open tunnel survived her logout")
	}
	if said, err := runConnect(t, g, dir, "", "--logout", "--user", "alice"); err == nil || !strings.Contains(err.Error(), "no login of alice") {
		t.Errorf("a second --logout --user alice: %v\n%s", err, said)
	}

	// The gateway out of reach: forgotten here, and said so.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	said, err = runConnect(t, g, dir, "", "--logout", "--connect", closed)
	if err == nil || !strings.Contains(err.Error(), "forgot the login of bob") || !strings.Contains(err.Error(), "could not end its session on the gateway") {
		t.Fatalf("--logout with the gateway out of reach: %v\n%s", err, said)
	}
	if now := savedLogins(t, dir); len(now) != 0 {
		t.Fatalf("saved logins after bob's logout: %v", now)
	}
	if status, _ := checkToken(t, g, "echo", saved["bob"]); status != http.StatusNoContent {
		t.Fatalf("bob's token after a logout that did not reach the gateway: %d", status)
	}
}

// A login that a new one replaces (--login) ends on the gateway too.
func TestConnectReplacedLoginEnds(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"alice"}, MFA: true})
	secret := g.AddUser("alice", pw, "staff")
	dir := t.TempDir()
	startConnect(t, g, dir, "echo", pw+"\n", "--user", "alice", "--password-stdin", "--code", g.Code("alice", secret))
	first := savedLogins(t, dir)["alice"]
	startConnect(t, g, dir, "echo", pw+"\n", "--user", "alice", "--login", "--password-stdin", "--code", g.Code("alice", secret))
	second := savedLogins(t, dir)["alice"]
	if first == "" || second == "" || first == second {
		t.Fatalf("saved tokens %q then %q", first, second)
	}
	if status, _ := checkToken(t, g, "echo", first); status != http.StatusUnauthorized {
		t.Fatalf("the replaced login's token: %d, want 401", status)
	}
	if status, user := checkToken(t, g, "echo", second); status != http.StatusNoContent || user != "alice" {
		t.Fatalf("the new login's token: %d %q", status, user)
	}
}
