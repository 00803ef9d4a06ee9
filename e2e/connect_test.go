package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

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
