package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Rules per path and condition, and `sluis policy explain`: for each case
// the command's decision is checked against a real request through the
// gateway, from the same source address.
func TestPolicyRulesAndExplain(t *testing.T) {
	wiki := newUpstream(t)
	// A time window that is not now (two hours ahead, in UTC).
	from := (time.Now().UTC().Hour() + 2) % 24
	window := fmt.Sprintf("daily %02d:00-%02d:00", from, from+1)
	g := testenv.StartWith(t, "time_zone: UTC\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, NoAllow: true, Extra: `    allow:
      - paths: [/admin/]
        groups: [wiki-admins]
        mfa: true
        networks: [127.0.0.2/32]
      - paths: [/reports/]
        groups: [staff]
        hours: ["` + window + `"]
      - paths: [/keys/]
        groups: [staff]
        mfa: phishing_resistant
      - paths: [/api/]
        methods: [POST, PUT, DELETE]
        groups: [api-writers]
      - groups: [staff, wiki-admins]
        mfa: true
`})
	clients := map[string]*http.Client{}
	for _, u := range []struct {
		name   string
		groups []string
	}{{"anna", []string{"staff"}}, {"olga", []string{"wiki-admins"}}} {
		secret := g.AddUser(u.name, pw, u.groups...)
		c := g.Client()
		if p := g.Login(c, g.URL(wikiHost, "/start"), u.name, pw, secret); p.StatusCode != 200 {
			t.Fatalf("login %s: %d\n%s", u.name, p.StatusCode, p.Body)
		}
		clients[u.name] = c
	}
	// The same session from another address (the office).
	from2 := func(c *http.Client) *http.Client {
		o := g.ClientFrom("127.0.0.2")
		o.Jar = c.Jar
		return o
	}

	tests := []struct {
		name, user, method, path, from string
		decision                       string // as explain prints it
		status                         int    // what the gateway answers
		says                           string // in explain's output
	}{
		{"staff on a page", "anna", "GET", "/wiki/Main", "127.0.0.1", "decision: allow", 200, "rule: 5 of 5"},
		{"staff at /admin/", "anna", "GET", "/admin/users", "127.0.0.2", "decision: deny (403)", 403, "unmet: needs one of the groups wiki-admins"},
		{"admin from home", "olga", "GET", "/admin/users", "127.0.0.1", "decision: deny (403)", 403, "unmet: needs a source address in 127.0.0.2/32, not 127.0.0.1"},
		{"admin from the office", "olga", "GET", "/admin/users", "127.0.0.2", "decision: allow", 200, "rule: 1 of 5"},
		{"reports outside hours", "anna", "GET", "/reports/q3", "127.0.0.1", "decision: deny (403)", 403, "unmet: outside hours " + window + " (UTC)"},
		{"a part that wants a passkey", "anna", "GET", "/keys/", "127.0.0.1", "decision: step up (the portal asks for a passkey)", 303, "unmet: needs a passkey"},
		{"staff writes to the api", "anna", "POST", "/api/pages", "127.0.0.1", "decision: deny (403)", 403, "unmet: needs one of the groups api-writers"},
		{"staff reads the api (the next rule)", "anna", "GET", "/api/pages", "127.0.0.1", "decision: allow", 200, "rule: 5 of 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := g.MustCLI("", "policy", "explain", tt.user, "wiki", "--path", tt.path, "--method", tt.method, "--from", tt.from)
			if !strings.Contains(out, tt.decision) || !strings.Contains(out, tt.says) {
				t.Fatalf("explain: want %q and %q in\n%s", tt.decision, tt.says, out)
			}
			c := clients[tt.user]
			if tt.from == "127.0.0.2" {
				c = from2(c)
			}
			req, _ := http.NewRequest(tt.method, g.URL(wikiHost, tt.path), nil)
			req.Header.Set("Accept", "text/html")
			if p := g.Do(c, req); p.StatusCode != tt.status {
				t.Fatalf("the gateway answers %d, explain says\n%s", p.StatusCode, out)
			}
		})
	}

	// The user who may use the part is told when it is open; who may not
	// learns nothing of the rules.
	req, _ := http.NewRequest("GET", g.URL(wikiHost, "/admin/users"), nil)
	if p := g.Do(clients["olga"], req); !strings.Contains(p.Body, "only from the organisation") {
		t.Fatalf("admin from home is not told why:\n%s", p.Body)
	}
	req, _ = http.NewRequest("GET", g.URL(wikiHost, "/admin/users"), nil)
	if p := g.Do(from2(clients["anna"]), req); strings.Contains(p.Body, "network") || strings.Contains(p.Body, "wiki-admins") {
		t.Fatalf("a refusal tells about the rules:\n%s", p.Body)
	}
	// Inside the hours, the reports are open.
	at := time.Now().UTC().Truncate(24 * time.Hour).Add(time.Duration(from)*time.Hour + 30*time.Minute).Format(time.RFC3339)
	if out := g.MustCLI("", "policy", "explain", "anna", "wiki", "--path", "/reports/q3", "--at", at); !strings.Contains(out, "decision: allow") {
		t.Fatalf("reports inside the hours:\n%s", out)
	}
	// The level and the app's switch are named, and decide.
	g.MustCLI("", "app", "disable", "wiki", "--reason", "CVE-2026-4242")
	out := g.MustCLI("", "policy", "explain", "anna", "wiki")
	if !strings.Contains(out, "decision: deny (503)") || !strings.Contains(out, "app wiki switched off (CVE-2026-4242)") || !strings.Contains(out, "level normal") {
		t.Fatalf("explain with the app off:\n%s", out)
	}

	// An unknown user or app: a clear error and exit status 2.
	for _, args := range [][]string{{"nobody", "wiki"}, {"anna", "payroll"}} {
		out, err := g.CLI("", append([]string{"policy", "explain"}, args...)...)
		if err == nil || cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "no ") {
			t.Fatalf("explain %v: %v (exit %d)\n%s", args, err, cli.ExitCode(err), out)
		}
	}
}
