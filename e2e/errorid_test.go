package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

var errorIDRE = regexp.MustCompile(`Error ID: ([0-9a-f]{12})`)

// TestErrorIDs: for each status the gateway answers with its own page,
// provoked against a real gateway, the page's error ID is in the log on a
// line with the status, the cause and (where known) the user, and a
// refusal the audit trail records is found there by `sluis audit --id`.
// Nothing secret (a password, a query's code) reaches the log.
func TestErrorIDs(t *testing.T) {
	wiki, hr := newUpstream(t), newUpstream(t)
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "hr", Host: hrHost, Upstream: hr.URL, Groups: []string{"staff"}, MFA: true},
		testenv.App{Name: "down", Host: "down.sluis.test", Upstream: "http://127.0.0.1:1", Groups: []string{"staff"}, MFA: true})
	annaSecret := g.AddUser("anna", pw, "staff")
	bobSecret := g.AddUser("bob", pw, "sales")
	g.AddUser("carl", pw, "staff")
	anna, bob := g.Client(), g.Client()
	if p := g.Login(anna, "", "anna", pw, annaSecret); p.StatusCode != 200 {
		t.Fatalf("anna's login: %d", p.StatusCode)
	}
	if p := g.Login(bob, "", "bob", pw, bobSecret); p.StatusCode != 200 {
		t.Fatalf("bob's login: %d", p.StatusCode)
	}
	settle := func(c *http.Client, host string) {
		// Follows the hand-over to the app host until the app answers.
		p := g.Get(c, g.URL(host, "/"))
		for i := 0; i < 5 && p.StatusCode == http.StatusSeeOther; i++ {
			p = g.Follow(c, p)
		}
	}
	// A session on each app host (the hand-over of the first visit).
	settle(anna, wikiHost)
	settle(anna, hrHost)
	settle(anna, "down.sluis.test")
	settle(bob, wikiHost)

	get := func(c *http.Client, host, path string) func() testenv.Page {
		return func() testenv.Page { return g.Get(c, g.URL(host, path)) }
	}
	tests := []struct {
		name    string
		before  func()
		do      func() testenv.Page
		status  int
		cause   string
		user    string
		audited string // the event type `sluis audit --id` shows; "" when the refusal is not audited
	}{
		{name: "401 API call without session", do: func() testenv.Page {
			req, _ := http.NewRequest("POST", g.URL(wikiHost, "/api/items?code=s3cr3tc0de"), strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			return g.Do(g.Client(), req)
		}, status: 401, cause: "not logged in"},
		{name: "403 policy", do: get(bob, wikiHost, "/"), status: 403, cause: "denied: rule 1", user: "bob", audited: "access.denied"},
		{name: "403 probe", do: get(g.ClientFrom("127.0.0.8"), g.Portal, "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession"),
			status: 403, cause: "fortinet", audited: "security.probe"},
		{name: "403 blocked source", before: func() { g.MustCLI("", "block", "add", "127.0.0.99/32", "--reason", "error ID test") },
			do: get(g.ClientFrom("127.0.0.99"), g.Portal, "/"), status: 403, cause: "blocked source"},
		{name: "404 portal", do: get(g.Client(), g.Portal, "/no/such/page"), status: 404, cause: "portal: not found"},
		{name: "421 unknown host", do: func() testenv.Page {
			req, _ := http.NewRequest("GET", g.URL(g.Portal, "/"), nil)
			req.Host = "other.sluis.test"
			return g.Do(g.Client(), req)
		}, status: 421, cause: "refused: unknown host", audited: "security.probe"},
		{name: "429 throttled login", do: func() testenv.Page {
			c := g.ClientFrom("127.0.0.7")
			var p testenv.Page
			for i := 0; i < 8; i++ {
				if p = g.SubmitPassword(c, "", "carl", fmt.Sprintf("guess %d", i)); p.StatusCode == http.StatusTooManyRequests {
					break
				}
			}
			return p
		}, status: 429, cause: "throttled", user: "carl"},
		{name: "431 too many header fields", do: func() testenv.Page {
			req, _ := http.NewRequest("GET", g.URL(g.Portal, "/"), nil)
			for i := 0; i < 101; i++ {
				req.Header.Set(fmt.Sprintf("X-Filler-%d", i), "x")
			}
			return g.Do(g.Client(), req)
		}, status: 431, cause: "too many header fields", audited: "security.probe"},
		{name: "502 upstream down", do: get(anna, "down.sluis.test", "/"), status: 502, cause: "upstream failed", user: "anna"},
		{name: "503 app switched off", before: func() { g.MustCLI("", "app", "disable", "hr", "--reason", "patching") },
			do: get(anna, hrHost, "/"), status: 503, cause: "the app is switched off: patching", user: "anna", audited: "access.denied"},
		{name: "503 level essential", before: func() { g.MustCLI("", "emergency", "set", "essential", "--reason", "incident 41") },
			do: get(anna, "down.sluis.test", "/"), status: 503, cause: "only essential apps are open: incident 41", user: "anna", audited: "access.denied"},
		// Lockdown and closed end the sessions of everyone but break-glass
		// staff: what a user meets is the login page's refusal.
		{name: "401 login at lockdown", before: func() { g.MustCLI("", "emergency", "set", "lockdown", "--reason", "incident 42") },
			do: func() testenv.Page { return g.SubmitPassword(g.ClientFrom("127.0.0.9"), "", "anna", pw) }, status: 401, cause: "lockdown: not emergency staff", user: "anna", audited: "login.failure"},
		{name: "503 login at closed", before: func() { g.MustCLI("", "emergency", "set", "closed", "--reason", "incident 43") },
			do: func() testenv.Page { return g.SubmitPassword(g.ClientFrom("127.0.0.9"), "", "anna", pw) }, status: 503, cause: "incident 43"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			var p testenv.Page
			var line string
			// A level or a switch counts once the gateway has read it:
			// tried again until the status is the one wanted.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if p = tt.do(); p.StatusCode == tt.status || time.Now().After(deadline) {
					break
				}
			}
			if p.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", p.StatusCode, tt.status, p.Body)
			}
			m := errorIDRE.FindStringSubmatch(p.Body)
			if m == nil {
				t.Fatalf("no error ID on the page:\n%s", p.Body)
			}
			id := m[1]
			await(t, 5*time.Second, "the log line of error ID "+id, func() bool {
				line = logLine(g.Logs(), "error_id="+id)
				return line != ""
			})
			t.Log(line)
			for _, want := range []string{fmt.Sprintf("status=%d", tt.status), tt.cause} {
				if !strings.Contains(line, want) {
					t.Errorf("log line lacks %q: %s", want, line)
				}
			}
			if tt.user != "" && !strings.Contains(line, "user="+tt.user) {
				t.Errorf("log line lacks user=%s: %s", tt.user, line)
			}
			if tt.status >= 500 && tt.status != 503 && !strings.Contains(line, "level=ERROR") {
				t.Errorf("a fault is not logged as an error: %s", line)
			}
			if tt.status < 500 && !strings.Contains(line, "level=INFO") {
				t.Errorf("a refusal is not logged at info: %s", line)
			}
			if tt.audited != "" {
				await(t, 5*time.Second, "the audit event of error ID "+id, func() bool {
					out := g.MustCLI("", "audit", "--id", id)
					return strings.Contains(out, tt.audited) && strings.Contains(out, "error ID "+id)
				})
				if out := g.MustCLI("", "audit", "--id", "0123456789ab"); strings.Contains(out, tt.audited) {
					t.Errorf("sluis audit --id of another ID shows events:\n%s", out)
				}
			}
		})
	}
	for _, secret := range []string{pw, "s3cr3tc0de", "guess 1"} {
		if strings.Contains(g.Logs(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// TestErrorIDOfFoldedDenials: denials of one user and app within the fold
// interval are one audit event, and every one of their pages shows that
// event's error ID (each with a log line of its own).
func TestErrorIDOfFoldedDenials(t *testing.T) {
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("bob", pw, "sales")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/"), "bob", pw, secret); p.StatusCode != http.StatusForbidden {
		t.Fatalf("bob's first request: %d", p.StatusCode)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		p := g.Get(c, g.URL(wikiHost, "/page/"+url.PathEscape(fmt.Sprint(i))))
		m := errorIDRE.FindStringSubmatch(p.Body)
		if p.StatusCode != http.StatusForbidden || m == nil {
			t.Fatalf("denial %d: %d\n%s", i, p.StatusCode, p.Body)
		}
		ids = append(ids, m[1])
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("folded denials show different IDs: %v", ids)
	}
	out := g.MustCLI("", "audit", "--id", ids[0])
	if strings.Count(out, "access.denied") != 1 {
		t.Fatalf("sluis audit --id %s:\n%s", ids[0], out)
	}
	if n := strings.Count(g.Logs(), "error_id="+ids[0]); n < 3 {
		t.Fatalf("%d log lines with the ID, want one per denial:\n%s", n, g.Logs())
	}
}

// TestErrorIDOfATunnelRefusal: `sluis connect` for an app the user may
// not use prints the refusal with its error ID, which is in the log with
// the user and the cause, and in the access.denied event.
func TestErrorIDOfATunnelRefusal(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	bertSecret := g.AddUser("bert", pw, "staff")
	var errb bytes.Buffer
	err := cli.Run(context.Background(), []string{"sluis", "connect", "echo", "--gateway", g.URL(g.Portal, ""), "--connect", g.Addr(),
		"--ca", filepath.Join(g.Dir, "data", "ca.pem"), "--user", "bert", "--password-stdin", "--code", g.Code("bert", bertSecret)},
		func(k string) string {
			if k == "XDG_CONFIG_HOME" {
				return t.TempDir()
			}
			return ""
		}, strings.NewReader(pw+"\n"), io.Discard, &errb)
	m := regexp.MustCompile(`error ID ([0-9a-f]{12})`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("sluis connect: %v\n%s", err, errb.String())
	}
	line := logLine(g.Logs(), "error_id="+m[1])
	if !strings.Contains(line, "status=403") || !strings.Contains(line, "user=bert") || !strings.Contains(line, "app=echo") || !strings.Contains(line, "tunnel: ") {
		t.Errorf("log line: %q", line)
	}
	await(t, 5*time.Second, "the access.denied event", func() bool {
		return strings.Contains(g.MustCLI("", "audit", "--id", m[1]), "access.denied")
	})
}

// logLine returns the first line of logs that contains s.
func logLine(logs, s string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// The tunnel server's other refusals (no token, no such app, not a
// stream, a logout that is not a POST) print an error ID too, and the log
// has it with the status, the cause and the user when known.
func TestErrorIDsOfTheTunnelServer(t *testing.T) {
	echo := newEcho(t)
	g := testenv.Start(t, testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	dir := t.TempDir()
	startConnect(t, g, dir, "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	token := savedLogins(t, dir)["anna"]
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		user                      string
	}{
		{"no token", "GET", "/.sluis/tunnel/echo", "", http.StatusUnauthorized, ""},
		{"no such app", "GET", "/.sluis/tunnel/nosuch", token, http.StatusNotFound, "anna"},
		{"not a stream", "PUT", "/.sluis/tunnel/echo", token, http.StatusMethodNotAllowed, "anna"},
		{"logout not a POST", "GET", "/.sluis/connect/logout", token, http.StatusMethodNotAllowed, "anna"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.URL(g.Portal, tc.path), nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			p := g.Do(g.Client(), req)
			m := regexp.MustCompile(`error ID ([0-9a-f]{12})`).FindStringSubmatch(p.Body)
			if p.StatusCode != tc.status || m == nil {
				t.Fatalf("%d %q, want %d with an error ID", p.StatusCode, p.Body, tc.status)
			}
			line := logLine(g.Logs(), "error_id="+m[1])
			if !strings.Contains(line, fmt.Sprintf("status=%d", tc.status)) || !strings.Contains(line, "tunnel: ") ||
				tc.user != "" && !strings.Contains(line, "user="+tc.user) || tc.token != "" && strings.Contains(line, tc.token) {
				t.Errorf("log line: %q", line)
			}
		})
	}
}

// TestErrorIDOfJSONRefusals: the portal's JSON answers (device login,
// passkeys) carry the error ID of a refusal too, logged with its status
// and cause, and the passkey script shows it with the error.
func TestErrorIDOfJSONRefusals(t *testing.T) {
	g := testenv.Start(t)
	c := g.ClientFrom("127.0.0.12")
	var p testenv.Page
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest("POST", g.URL(g.Portal, "/device/start"), strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if p = g.Do(c, req); p.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if p.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("50 device logins from one source: %d, want 429 at last", p.StatusCode)
	}
	var answer struct {
		Error   string `json:"error"`
		ErrorID string `json:"error_id"`
	}
	if err := json.Unmarshal([]byte(p.Body), &answer); err != nil || answer.Error == "" || len(answer.ErrorID) != 12 {
		t.Fatalf("the 429 answer has no error and ID: %v %s", err, p.Body)
	}
	var line string
	await(t, 5*time.Second, "the log line of error ID "+answer.ErrorID, func() bool {
		line = logLine(g.Logs(), "error_id="+answer.ErrorID)
		return line != ""
	})
	if !strings.Contains(line, "status=429") || !strings.Contains(line, "Try again") {
		t.Errorf("log line lacks the status or the cause: %s", line)
	}
}
