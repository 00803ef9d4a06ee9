package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/config"
)

// newConsoleWithActions is newConsoleEnv with the console's actions, over
// apps wiki (essential, web), mail (web) and rdp (TCP), and a browser
// session of anna (staff) on the wiki.
func newConsoleWithActions(t *testing.T) *consoleEnv {
	t.Helper()
	c := &config.Config{File: "sluis.yaml",
		Apps:   []config.App{{Name: "wiki", Host: "wiki.login.test", Essential: true}, {Name: "mail", Host: "mail.login.test"}, {Name: "rdp", TCP: "10.0.0.5:3389"}},
		Strict: config.Strict{ReauthAfter: config.Duration(time.Hour)}}
	var e *consoleEnv
	act := &Actions{Config: c}
	e = newConsoleEnv(t, Options{Actions: act})
	act.Store, act.Now = e.st, e.srv.o.Now
	ctx := context.Background()
	if err := e.st.CreateUser(ctx, sluis.User{Name: "anna", Groups: []string{"staff"}, PasswordHash: "x", CreatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	now := e.srv.o.Now()
	x := sluis.Session{ID: "s-anna", User: "anna", Stage: sluis.StageComplete, CreatedAt: now.Add(-time.Hour), LastSeen: now, ExpiresAt: now.Add(8 * time.Hour),
		MFAAt: now.Add(-time.Hour), MFAMethod: sluis.FactorTOTP, Source: "192.0.2.1"}
	if err := e.st.CreateSession(ctx, x, []byte("anna-token-hash-0123456789abcdef012"), "wiki.login.test"); err != nil {
		t.Fatal(err)
	}
	return e
}

// post submits a console form from page's CSRF token.
func (e *consoleEnv) post(c *http.Client, path string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	if form.Get("csrf") == "" {
		form.Set("csrf", csrfFor(cookieOf(e.t, c, e.base)))
	}
	return e.do(c, "POST", path, strings.NewReader(form.Encode()))
}

func (e *consoleEnv) live(id string) bool {
	e.t.Helper()
	x, err := e.st.Session(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return !x.Revoked()
}

// Every page renders for every role, with the console's CSP and no inline
// script or style, and a viewer's action buttons are off.
func TestAdminConsolePages(t *testing.T) {
	e := newConsoleWithActions(t)
	for _, user := range []string{"vera", "hank", "olga"} {
		c := e.login(user)
		for path, want := range map[string]string{
			"/":                                    `<tr data-app="wiki"><td>wiki</td><td class="num">1</td>`,
			"/users":                               `href="/users/anna"`,
			"/users/anna":                          `id="user-sessions"`,
			"/users?q=staff":                       `href="/users/sam"`,
			"/sessions":                            `data-session="s-anna"`,
			"/apps":                                `data-app="rdp"`,
			"/emergency":                           `id="level-form"`,
			"/blocks":                              `id="block-form"`,
			"/audit":                               `id="events"`,
			"/audit?type=admin.login&user=" + user: "logged in as",
		} {
			resp, body := e.do(c, "GET", path, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("%s: GET %s: %d, want %q in:\n%s", user, path, resp.StatusCode, want, body)
				continue
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("%s: CSP %q", path, csp)
			}
			if regexp.MustCompile(`<script>|<script [^>]*>[^<]|style="|onclick=|javascript:`).MatchString(body) {
				t.Errorf("%s: inline script or style:\n%s", path, body)
			}
			disabled := strings.Contains(body, `id="user-disable" disabled`) || strings.Contains(body, `data-revoke="s-anna" disabled`) || strings.Contains(body, `id="level-set" disabled`)
			if user == "vera" && (path == "/users/anna" || path == "/sessions" || path == "/emergency") && !disabled {
				t.Errorf("%s: a viewer's buttons are on:\n%s", path, body)
			}
		}
	}
}

// What each role may do is decided by Actions, whatever the page shows:
// a viewer's actions are refused (403) and change nothing; a help desk
// revokes sessions and disables users but sets no level; an operator sets
// a level (after a confirmation with its preview), blocks and switches
// apps. Each result shows on the page at once.
func TestAdminConsoleActionsByRole(t *testing.T) {
	e := newConsoleWithActions(t)
	ctx := context.Background()

	// The viewer: the confirmation says the role lacks it; forced, 403.
	vera := e.login("vera")
	resp, body := e.post(vera, "/sessions/s-anna/revoke", url.Values{})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="confirm-button" disabled`) || !strings.Contains(body, "needs the role helpdesk") {
		t.Fatalf("viewer's confirmation: %d\n%s", resp.StatusCode, body)
	}
	for path, form := range map[string]url.Values{
		"/sessions/s-anna/revoke": {"confirm": {"1"}},
		"/sessions/revoke":        {"confirm": {"1"}, "by": {"user"}, "value": {"anna"}},
		"/users/anna/disable":     {"confirm": {"1"}},
		"/emergency":              {"confirm": {"1"}, "level": {"closed"}, "reason": {"x"}},
		"/emergency/clear":        {},
		"/blocks/add":             {"confirm": {"1"}, "cidr": {"198.51.100.0/24"}, "reason": {"x"}},
		"/apps/wiki/disable":      {"confirm": {"1"}, "reason": {"x"}},
	} {
		resp, body := e.post(vera, path, form)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "your role does not allow this") {
			t.Errorf("viewer: POST %s: %d\n%s", path, resp.StatusCode, body)
		}
	}
	if !e.live("s-anna") {
		t.Fatal("a viewer ended a session")
	}

	// The help desk.
	hank := e.login("hank")
	resp, body = e.post(hank, "/sessions/s-anna/revoke", url.Values{})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="confirm-button">End the session`) || !e.live("s-anna") {
		t.Fatalf("help desk's confirmation: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.post(hank, "/sessions/s-anna/revoke", url.Values{"confirm": {"1"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Session s-anna of anna ended.") || e.live("s-anna") {
		t.Fatalf("help desk revokes: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, `data-session="s-anna"`) {
		t.Fatal("the revoked session is still listed")
	}
	revoked := false
	for _, ev := range e.events(sluis.EventSessionRevoked) {
		revoked = revoked || ev.User == "anna" && strings.HasPrefix(ev.Detail, "by hank;")
	}
	if !revoked {
		t.Fatalf("no session.revoked event by hank: %+v", e.events(sluis.EventSessionRevoked))
	}
	resp, body = e.post(hank, "/emergency", url.Values{"confirm": {"1"}, "level": {"strict"}, "reason": {"x"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("help desk sets a level: %d\n%s", resp.StatusCode, body)
	}
	if em, _ := e.st.Emergency(ctx); em.Level != "" {
		t.Fatalf("level set by the help desk: %+v", em)
	}
	resp, body = e.post(hank, "/users/sam/disable", url.Values{"confirm": {"1"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "sam disabled") || !strings.Contains(body, `id="user-enable"`) {
		t.Fatalf("help desk disables: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.post(hank, "/users/sam/enable", url.Values{})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "sam enabled") {
		t.Fatalf("help desk enables: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.post(hank, "/users/sam/mfa-reset", url.Values{"confirm": {"1"}})
	if keys, _ := e.st.Passkeys(ctx, "sam"); resp.StatusCode != http.StatusOK || len(keys) != 0 {
		t.Fatalf("help desk resets sam's factors: %d, %d keys left\n%s", resp.StatusCode, len(keys), body)
	}
	resp, _ = e.post(hank, "/sessions/revoke", url.Values{"confirm": {"1"}, "by": {"all"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("help desk revokes everyone's: %d", resp.StatusCode)
	}

	// The operator: a level, after its preview.
	olga := e.login("olga")
	resp, body = e.post(olga, "/emergency", url.Values{"level": {"essential"}, "reason": {"incident 42"}, "for": {"2h"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Only essential applications are open: incident 42") || !strings.Contains(body, `id="preview-affected"`) {
		t.Fatalf("the level's preview: %d\n%s", resp.StatusCode, body)
	}
	if em, _ := e.st.Emergency(ctx); em.Level != "" {
		t.Fatalf("the preview set the level: %+v", em)
	}
	resp, body = e.post(olga, "/emergency", url.Values{"confirm": {"1"}, "level": {"essential"}, "reason": {"incident 42"}, "for": {"2h"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "The level essential is in force until") || !strings.Contains(body, `class="big level-essential"`) {
		t.Fatalf("setting the level: %d\n%s", resp.StatusCode, body)
	}
	if em, _ := e.st.Emergency(ctx); em.Level != sluis.LevelEssential || em.SetBy != "olga" || em.Until.IsZero() {
		t.Fatalf("stored level: %+v", em)
	}
	if resp, body := e.post(olga, "/emergency", url.Values{"confirm": {"1"}, "level": {"closed"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "reason is required") {
		t.Fatalf("a level without a reason: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := e.post(olga, "/emergency/clear", url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(body, `class="big level-normal"`) {
		t.Fatalf("clearing: %d\n%s", resp.StatusCode, body)
	}

	// A block: confirmed; a wide one needs the confirmation that says so.
	resp, body = e.post(olga, "/blocks/add", url.Values{"confirm": {"1"}, "cidr": {"198.51.100.0/24"}, "reason": {"scanner"}, "for": {"1h"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-block="198.51.100.0/24"`) {
		t.Fatalf("block: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.post(olga, "/blocks/add", url.Values{"confirm": {"1"}, "cidr": {"10.0.0.0/7"}, "reason": {"everyone"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "wider than one network") || !strings.Contains(body, `name="force" value="1"`) {
		t.Fatalf("a wide block: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := e.post(olga, "/blocks/remove", url.Values{"cidr": {"198.51.100.0/24"}}); resp.StatusCode != http.StatusOK || strings.Contains(body, `data-block="198.51.100.0/24"`) {
		t.Fatalf("unblock: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := e.post(olga, "/blocks/add", url.Values{"confirm": {"1"}, "cidr": {"not an address"}, "reason": {"x"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad address: %d\n%s", resp.StatusCode, body)
	}

	// An app switch: what users will read, then off, then on.
	resp, body = e.post(olga, "/apps/mail/disable", url.Values{"reason": {"maintenance until 14:00"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "This application is switched off: maintenance until 14:00") {
		t.Fatalf("the app switch's confirmation: %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.post(olga, "/apps/mail/disable", url.Values{"confirm": {"1"}, "reason": {"maintenance until 14:00"}})
	if off, _ := e.st.DisabledApps(ctx); resp.StatusCode != http.StatusOK || off["mail"] != "maintenance until 14:00" {
		t.Fatalf("switching mail off: %d %v\n%s", resp.StatusCode, off, body)
	}
	if resp, _ := e.post(olga, "/apps/mail/enable", url.Values{}); resp.StatusCode != http.StatusOK {
		t.Fatalf("switching mail on: %d", resp.StatusCode)
	}
	if off, _ := e.st.DisabledApps(ctx); len(off) != 0 {
		t.Fatalf("apps off: %v", off)
	}

	// Every change names its operator.
	for _, typ := range []string{EventEmergencySet, EventBlockAdd, EventBlockRemove, EventAppDisable, EventAppEnable} {
		evs := e.events(typ)
		if len(evs) == 0 || !strings.HasPrefix(evs[0].Detail, "by olga;") || evs[0].Source != "127.0.0.1" {
			t.Errorf("%s: %+v", typ, evs)
		}
	}
	// Without its CSRF token, nothing.
	if resp, _ := e.do(olga, "POST", "/emergency/clear", strings.NewReader("csrf=x")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an action without its token: %d", resp.StatusCode)
	}
}

// The audit page searches by time, type, user, source, app and error ID,
// pages through, exports a period (which verifies) and checks the chain.
func TestAdminConsoleAudit(t *testing.T) {
	e := newConsoleWithActions(t)
	ctx := context.Background()
	var evs []sluis.Event
	for i := 0; i < 250; i++ {
		evs = append(evs, sluis.Event{Time: e.srv.o.Now().Add(-time.Duration(250-i) * time.Minute), Type: sluis.EventAccessDenied, User: "anna", Source: "192.0.2.1",
			App: "wiki", Outcome: sluis.OutcomeDenied, Detail: fmt.Sprintf("denied %d; error ID %012x", i, i)})
	}
	if _, err := e.st.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	c := e.login("vera")
	_, body := e.do(c, "GET", "/audit?type=access.denied&user=anna&app=wiki&source=192.0.2.1", nil)
	if n := strings.Count(body, "<td>access.denied</td>"); n != 100 || !strings.Contains(body, `id="next-page"`) {
		t.Fatalf("first page: %d rows\n%s", n, body)
	}
	next := regexp.MustCompile(`href="(/audit\?[^"]+)" id="next-page"`).FindStringSubmatch(body)[1]
	_, body = e.do(c, "GET", strings.ReplaceAll(next, "&amp;", "&"), nil)
	if n := strings.Count(body, "<td>access.denied</td>"); n != 100 || !strings.Contains(body, "denied 149;") {
		t.Fatalf("second page: %d rows", n)
	}
	_, body = e.do(c, "GET", "/audit?error_id=0000000000c8", nil)
	if n := strings.Count(body, "<td>access.denied</td>"); n != 1 || !strings.Contains(body, "denied 200;") {
		t.Fatalf("by error ID: %d rows\n%s", n, body)
	}
	_, body = e.do(c, "GET", "/audit?since=30m&type=access.denied", nil)
	if n := strings.Count(body, "<td>access.denied</td>"); n < 29 || n > 31 {
		t.Fatalf("the last 30 minutes: %d rows", n)
	}
	if resp, body := e.do(c, "GET", "/audit?since=yesterday", nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "is not a time") {
		t.Fatalf("a bad time: %d\n%s", resp.StatusCode, body)
	}
	// The export verifies as `sluis audit verify --file` would.
	resp, body := e.do(c, "GET", "/audit/export", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	got, _, err := audit.ReadExport(strings.NewReader(body))
	if err != nil || len(got) < 250 {
		t.Fatalf("export: %d events, %v", len(got), err)
	}
	if err := audit.Verify(got); err != nil {
		t.Fatalf("the export does not verify: %v", err)
	}
	// The check of the whole trail, shown on the overview too.
	resp, body = e.post(c, "/audit/verify", url.Values{})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "The trail is intact") {
		t.Fatalf("verify: %d\n%s", resp.StatusCode, body)
	}
	if _, body := e.do(c, "GET", "/", nil); !strings.Contains(body, `<span class="ok" id="chain-status">intact</span>`) {
		t.Fatalf("overview after the check:\n%s", body)
	}
}
