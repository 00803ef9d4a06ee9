package admin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/admin"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// call sends one request to the API as op (nobody when op.Name is
// empty), with body as JSON when it is not "".
func call(t *testing.T, api http.Handler, op admin.Operator, method, path, body string) (int, map[string]any, *httptest.ResponseRecorder) {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if op.Name != "" {
		r = r.WithContext(admin.WithOperator(r.Context(), op))
	}
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	var v map[string]any
	if ct := w.Header().Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, w.Body)
		}
	}
	return w.Code, v, w
}

func newAPI(t *testing.T) (*fixture, *admin.API) {
	f := newFixture(t)
	return f, &admin.API{Actions: f.act}
}

// Who may do what through the API, and the record of what they did.
func TestAPIRoles(t *testing.T) {
	tests := []struct {
		name          string
		method, path  string
		body          string
		min           admin.Role
		event, detail string // the event a successful write leaves
	}{
		{"overview", "GET", "/api/v1/overview", "", admin.RoleViewer, "", ""},
		{"audit", "GET", "/api/v1/audit", "", admin.RoleViewer, "", ""},
		{"preview", "GET", "/api/v1/emergency/preview?level=lockdown&reason=x", "", admin.RoleViewer, "", ""},
		{"revoke a session", "POST", "/api/v1/sessions/s-anna/revoke", "{}", admin.RoleHelpdesk, sluis.EventSessionRevoked, "session s-anna"},
		{"revoke by group", "POST", "/api/v1/sessions/revoke", `{"group":"staff"}`, admin.RoleHelpdesk, admin.EventSessionsRevoke, "sessions of group staff"},
		{"revoke everyone", "POST", "/api/v1/sessions/revoke", `{"all":true}`, admin.RoleOperator, admin.EventSessionsRevoke, "sessions of everyone"},
		{"disable a user", "POST", "/api/v1/users/anna/disable", "{}", admin.RoleHelpdesk, admin.EventUserDisable, ""},
		{"reset MFA", "POST", "/api/v1/users/anna/mfa-reset", "{}", admin.RoleHelpdesk, admin.EventUserMFAReset, "TOTP secret"},
		{"set a level", "POST", "/api/v1/emergency", `{"level":"closed","reason":"CVE-2026-0001","for":"2h"}`, admin.RoleOperator, admin.EventEmergencySet, "level closed until "},
		{"clear the level", "POST", "/api/v1/emergency/clear", "{}", admin.RoleOperator, admin.EventEmergencySet, "level normal"},
		{"add a block", "POST", "/api/v1/blocks", `{"cidr":"203.0.113.0/24","reason":"scanner","for":"1h"}`, admin.RoleOperator, admin.EventBlockAdd, "203.0.113.0/24 until "},
		{"switch an app off", "POST", "/api/v1/apps/mail/disable", `{"reason":"patching"}`, admin.RoleOperator, admin.EventAppDisable, "app mail; patching"},
		{"switch an app on", "POST", "/api/v1/apps/mail/enable", `{}`, admin.RoleOperator, admin.EventAppEnable, "app mail"},
	}
	for _, tt := range tests {
		for _, op := range []admin.Operator{viewer, helpdesk, operator} {
			t.Run(tt.name+" as "+op.Role.String(), func(t *testing.T) {
				f, api := newAPI(t)
				status, body, w := call(t, api, op, tt.method, tt.path, tt.body)
				if op.Role < tt.min {
					if status != http.StatusForbidden || body["error"] != "forbidden" || !strings.Contains(body["message"].(string), "needs the role ") {
						t.Fatalf("%d %v, want 403 naming the role %s", status, body, tt.min)
					}
					if tt.event != "" && len(f.events(t, tt.event)) != 0 {
						t.Fatal("a refused write left its event")
					}
					return
				}
				if status != http.StatusOK {
					t.Fatalf("%d %s", status, w.Body)
				}
				if tt.event == "" {
					return
				}
				evs := f.events(t, tt.event)
				if len(evs) != 1 || evs[0].Source != op.Source || !strings.HasPrefix(evs[0].Detail, "by "+op.Name+";") || !strings.Contains(evs[0].Detail, tt.detail) {
					t.Fatalf("events %+v, want one by %s from %s with %q", evs, op.Name, op.Source, tt.detail)
				}
			})
		}
	}
}

// The check, through the API: a helpdesk user can revoke but
// cannot set a level; a viewer can do neither. What was refused did not
// happen.
func TestAPIHelpdeskRevokesButSetsNoLevel(t *testing.T) {
	for _, tt := range []struct {
		op               admin.Operator
		revoke, setLevel int
	}{
		{helpdesk, http.StatusOK, http.StatusForbidden},
		{viewer, http.StatusForbidden, http.StatusForbidden},
	} {
		t.Run(tt.op.Role.String(), func(t *testing.T) {
			f, api := newAPI(t)
			if status, _, w := call(t, api, tt.op, "POST", "/api/v1/sessions/revoke", `{"user":"bert"}`); status != tt.revoke {
				t.Fatalf("revoke: %d %s", status, w.Body)
			}
			if got := !f.live(t)["s-bert"]; got != (tt.revoke == http.StatusOK) {
				t.Fatalf("bert's session revoked: %v", got)
			}
			if status, _, w := call(t, api, tt.op, "POST", "/api/v1/emergency", `{"level":"lockdown","reason":"x"}`); status != tt.setLevel {
				t.Fatalf("set level: %d %s", status, w.Body)
			}
			if em, _ := f.st.Emergency(context.Background()); em.Level != "" {
				t.Fatalf("level set: %+v", em)
			}
		})
	}
}

// Errors are JSON with a code and words a person can act on.
func TestAPIErrors(t *testing.T) {
	big := `{"reason":"` + strings.Repeat("x", admin.MaxAPIBody) + `"}`
	tests := []struct {
		name         string
		op           admin.Operator
		method, path string
		body         string
		contentType  string // "" means application/json when there is a body
		status       int
		code, words  string
	}{
		{"nobody logged in", admin.Operator{}, "GET", "/api/v1/overview", "", "", 401, "unauthorized", "log in"},
		{"no role", admin.Operator{Name: "x", Role: admin.RoleNone}, "GET", "/api/v1/overview", "", "", 403, "forbidden", "needs the role viewer"},
		{"no such endpoint", viewer, "GET", "/api/v1/nothing", "", "", 404, "not_found", "no such endpoint"},
		{"GET of a write", operator, "GET", "/api/v1/blocks/remove", "", "", 405, "method_not_allowed", "takes POST"},
		{"POST of a read", operator, "POST", "/api/v1/overview", "{}", "", 405, "method_not_allowed", "takes GET"},
		{"a form instead of JSON", operator, "POST", "/api/v1/emergency/clear", "level=normal", "application/x-www-form-urlencoded", 415, "unsupported_media_type", "Content-Type: application/json"},
		{"text/plain", operator, "POST", "/api/v1/emergency/clear", "{}", "text/plain", 415, "unsupported_media_type", "JSON"},
		{"a body too large", operator, "POST", "/api/v1/apps/mail/disable", big, "", 413, "too_large", "more than 16384 bytes"},
		{"an unknown field", operator, "POST", "/api/v1/blocks", `{"cidr":"192.0.2.1","reason":"x","forever":true}`, "", 400, "invalid", `unknown field "forever"`},
		{"no body", operator, "POST", "/api/v1/emergency/clear", "", "application/json", 400, "invalid", "send a JSON object"},
		{"two bodies", operator, "POST", "/api/v1/emergency/clear", "{}{}", "", 400, "invalid", "more than one"},
		{"a bad duration", operator, "POST", "/api/v1/emergency", `{"level":"closed","reason":"x","for":"soon"}`, "", 400, "invalid", `"soon" is not a duration`},
		{"an unknown level", operator, "POST", "/api/v1/emergency", `{"level":"red","reason":"x"}`, "", 400, "invalid", `unknown level "red"`},
		{"a level without reason", operator, "POST", "/api/v1/emergency", `{"level":"closed"}`, "", 400, "invalid", "a reason is required"},
		{"an unknown user", helpdesk, "POST", "/api/v1/users/nobody/disable", "{}", "", 404, "not_found", "no user nobody"},
		{"an unknown session", helpdesk, "POST", "/api/v1/sessions/nope/revoke", "{}", "", 404, "not_found", "no session"},
		{"an unknown app", helpdesk, "POST", "/api/v1/sessions/revoke", `{"app":"nope"}`, "", 404, "not_found", `no app "nope"`},
		{"two selections", helpdesk, "POST", "/api/v1/sessions/revoke", `{"user":"anna","group":"staff"}`, "", 400, "invalid", "exactly one"},
		{"a wide block without force", operator, "POST", "/api/v1/blocks", `{"cidr":"::/0","reason":"x"}`, "", 409, "needs_force", `"force": true`},
		{"removing no block", operator, "POST", "/api/v1/blocks/remove", `{"cidr":"192.0.2.1"}`, "", 404, "not_found", "no block of 192.0.2.1/32"},
		{"an app on with a reason", operator, "POST", "/api/v1/apps/mail/enable", `{"reason":"x"}`, "", 400, "invalid", "no reason"},
		{"a limit too large", viewer, "GET", "/api/v1/audit?limit=1001", "", "", 400, "invalid", "limit is a number from 1 to 1000"},
		{"a bad time", viewer, "GET", "/api/v1/audit?since=yesterday", "", "", 400, "invalid", "since is a time"},
		{"a bad cursor", viewer, "GET", "/api/v1/audit?before=x", "", "", 400, "invalid", "cursor"},
		{"a cursor of no event", viewer, "GET", "/api/v1/audit?before=999", "", "", 400, "invalid", "no event 999"},
		{"an error ID not hex", viewer, "GET", "/api/v1/audit?error_id=zz", "", "", 400, "invalid", "hex digits"},
		{"a preview of no level", viewer, "GET", "/api/v1/emergency/preview?level=red", "", "", 400, "invalid", "unknown level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, api := newAPI(t)
			var r *http.Request
			if tt.body != "" {
				r = httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			} else {
				r = httptest.NewRequest(tt.method, tt.path, nil)
			}
			switch {
			case tt.contentType != "":
				r.Header.Set("Content-Type", tt.contentType)
			case tt.body != "":
				r.Header.Set("Content-Type", "application/json")
			}
			if tt.op.Name != "" {
				r = r.WithContext(admin.WithOperator(r.Context(), tt.op))
			}
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			var body struct{ Error, Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("not JSON (%v): %s", err, w.Body)
			}
			if w.Code != tt.status || body.Error != tt.code || !strings.Contains(body.Message, tt.words) {
				t.Fatalf("%d %+v, want %d %s with %q", w.Code, body, tt.status, tt.code, tt.words)
			}
		})
	}
}

// The reads the console's pages and scripts use.
func TestAPIReads(t *testing.T) {
	ctx := context.Background()
	f, api := newAPI(t)
	// An hour of traffic before f.now, and probes two hours back.
	var es []sluis.Event
	for i, typ := range []string{sluis.EventLoginSuccess, sluis.EventLoginSuccess, sluis.EventLoginFailure, sluis.EventMFAFailure} {
		es = append(es, sluis.Event{Time: f.now.Add(-time.Duration(i+1) * time.Minute), Type: typ, User: "anna", Source: "192.0.2.1", Outcome: "x"})
	}
	es = append(es, sluis.Event{Time: f.now.Add(-2 * time.Hour), Type: "security.probe", Source: "198.51.100.7", Outcome: "denied", Detail: "target /.env; error ID 0123456789ab"},
		sluis.Event{Time: f.now.Add(-2 * time.Hour), Type: "security.blocked", Source: "198.51.100.7", Outcome: "denied"})
	if _, err := f.st.AppendEvents(ctx, es); err != nil {
		t.Fatal(err)
	}
	f.session(t, "s-mail", "bert", "mail.corp.test")
	if _, err := f.act.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "203.0.113.9", Reason: "scanner"}); err != nil {
		t.Fatal(err)
	}
	if err := f.act.DisableApp(ctx, operator, "mail", "patching"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.act.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelStrict, Reason: "CVE-2026-0001", For: time.Hour}); err != nil {
		t.Fatal(err)
	}
	get := func(path string) map[string]any {
		t.Helper()
		status, v, w := call(t, api, viewer, "GET", path, "")
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, w.Body)
		}
		return v
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	o := get("/api/v1/overview")
	for _, want := range []string{`"sessions":4`, `"sessions_by_app":{"mail":1,"wiki":3}`, `"login.success":2`, `"login.failure":1`, `"mfa.failure":1`, `"blocks":1`, `"apps_off":1`,
		`"level":"strict"`, `"notice":"Security is tightened: CVE-2026-0001"`, `"until":"2026-11-30T10:00:00Z"`} {
		if !strings.Contains(js(o), want) {
			t.Errorf("overview lacks %s: %s", want, js(o))
		}
	}
	hourly := o["hourly"].([]any)
	if len(hourly) != 24 || js(hourly[21]) != `{"blocked":1,"probes":1,"start":"2026-11-30T07:00:00Z"}` || js(hourly[23]) != `{"blocked":0,"probes":0,"start":"2026-11-30T09:00:00Z"}` {
		t.Errorf("hourly: %s", js(hourly))
	}

	for _, tt := range []struct{ path, want, not string }{
		{"/api/v1/users?q=ANN", `"name":"anna"`, `"bert"`},
		{"/api/v1/users?q=ict-ops", `"name":"olga"`, `"anna"`},
		{"/api/v1/users?limit=1", `"more":true`, `"bert"`},
		{"/api/v1/users/Anna", `"last_logins":[{"app":"","detail":"","id":1,`, `password`},
		{"/api/v1/users/anna", `"hosts":["wiki.corp.test"]`, `token`},
		{"/api/v1/sessions?group=staff", `"id":"s-mail"`, `"s-olga"`},
		{"/api/v1/sessions?app=mail", `"hosts":["mail.corp.test"]`, `"s-anna"`},
		{"/api/v1/sessions?user=olga", `"id":"s-olga"`, `"s-anna"`},
		{"/api/v1/blocks", `{"auto":false,"cidr":"203.0.113.9/32","created_at":"2026-11-30T09:00:00Z","reason":"scanner"}`, `"until"`},
		{"/api/v1/apps", `{"disabled":true,"essential":false,"host":"mail.corp.test","name":"mail","reason":"patching","users_see":"This application is switched off: patching"}`, ``},
		{"/api/v1/emergency", `"previous":"normal"`, ``},
		{"/api/v1/emergency/preview?level=lockdown&reason=intrusion", `"revoked":3`, ``},
		{"/api/v1/audit?type=login.failure", `"type":"login.failure"`, `login.success`},
		{"/api/v1/audit?error_id=0123456789AB", `"type":"security.probe"`, `login`},
		{"/api/v1/audit?since=90m&user=anna", `"type":"mfa.failure"`, `probe`},
		{"/api/v1/audit?until=2026-11-30T08:00:00Z", `"security.blocked"`, `login`},
	} {
		got := js(get(tt.path))
		if !strings.Contains(got, tt.want) || tt.not != "" && strings.Contains(got, tt.not) {
			t.Errorf("GET %s: want %s, not %q:\n%s", tt.path, tt.want, tt.not, got)
		}
	}

	// Paging: every event once, newest first, then no next.
	var seen []float64
	path := "/api/v1/audit?limit=3"
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("pages never end")
		}
		v := get(path)
		for _, e := range v["events"].([]any) {
			seen = append(seen, e.(map[string]any)["id"].(float64))
		}
		next, ok := v["next"].(float64)
		if !ok {
			break
		}
		path = "/api/v1/audit?limit=3&before=" + js(next)
	}
	last, _, _ := f.st.LastEvent(ctx)
	if len(seen) != int(last) {
		t.Fatalf("pages gave %d events of %d: %v", len(seen), last, seen)
	}
}

// The export is `sluis audit export`'s format, and verifies; verify
// finds an intact trail with its checkpoint.
func TestAPIAuditExportAndVerify(t *testing.T) {
	ctx := context.Background()
	f, api := newAPI(t)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	api.AuditKey = pub
	if _, err := f.act.DisableUser(ctx, helpdesk, "anna"); err != nil {
		t.Fatal(err)
	}
	if err := (&audit.Checkpointer{Store: f.st, Key: key}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.act.EnableUser(ctx, helpdesk, "anna"); err != nil {
		t.Fatal(err)
	}
	status, _, w := call(t, api, viewer, "GET", "/api/v1/audit/export", "")
	if status != http.StatusOK || w.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %v", status, w.Header())
	}
	evs, cps, err := audit.ReadExport(bytes.NewReader(w.Body.Bytes()))
	if err != nil || len(evs) != 4 || len(cps) != 1 {
		t.Fatalf("export: %d events, %d checkpoints, %v\n%s", len(evs), len(cps), err, w.Body)
	}
	if _, err := audit.VerifyTrail(evs, cps, pub); err != nil {
		t.Fatalf("the export does not verify: %v", err)
	}
	_, v, _ := call(t, api, viewer, "GET", "/api/v1/audit/verify", "")
	if v["intact"] != true || v["events"] != 4.0 || v["checkpoints_checked"] != true || v["after_checkpoint"] != 1.0 {
		t.Fatalf("verify: %v", v)
	}
	// Without the key, the chain alone, and it says so.
	api2 := &admin.API{Actions: f.act}
	_, v, _ = call(t, api2, viewer, "GET", "/api/v1/audit/verify", "")
	if v["intact"] != true || v["checkpoints_checked"] != false {
		t.Fatalf("verify without key: %v", v)
	}
}

// Mounted behind http.StripPrefix too.
func TestAPIWithoutPrefix(t *testing.T) {
	_, api := newAPI(t)
	h := http.StripPrefix("/api/v1", api)
	if status, v, _ := call(t, h, viewer, "GET", "/api/v1/emergency", ""); status != 200 || v["level"] != "normal" {
		t.Fatalf("%d %v", status, v)
	}
}

// The overview on a busy store: 10,000 live sessions and
// SLUIS_BENCH_EVENTS audit events (default 1,000,000) over 30 days, as
// the figure asks; it reports the p50 and p99 of one overview.
// Building the store takes minutes: run it alone, with -benchtime=50x.
func BenchmarkAPIOverview(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sluis.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SLUIS_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	end := t0
	for i := 0; i < 1000; i++ {
		if err := st.CreateUser(ctx, sluis.User{Name: fmt.Sprintf("user%d", i), Groups: []string{"staff"}, PasswordHash: "h", CreatedAt: end}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 10000; i++ {
		x := sluis.Session{ID: fmt.Sprintf("s%05d", i), User: fmt.Sprintf("user%d", i%1000), Stage: sluis.StageComplete, CreatedAt: end.Add(-time.Hour),
			LastSeen: end, ExpiresAt: end.Add(8 * time.Hour), MFAAt: end.Add(-time.Hour), Source: "192.0.2.1"}
		if err := st.CreateSession(ctx, x, []byte(fmt.Sprintf("token-hash-%027d", i)), "wiki.corp.test"); err != nil {
			b.Fatal(err)
		}
	}
	types := []string{sluis.EventLoginSuccess, sluis.EventLoginFailure, sluis.EventMFASuccess, sluis.EventAccessDenied, "security.probe", "security.blocked"}
	step := 30 * 24 * time.Hour / time.Duration(n)
	for i := 0; i < n; i += 10000 {
		var es []sluis.Event
		for j := i; j < min(i+10000, n); j++ {
			es = append(es, sluis.Event{Time: end.Add(-30*24*time.Hour + time.Duration(j)*step), Type: types[j%len(types)], User: fmt.Sprintf("user%d", j%1000),
				Source: fmt.Sprintf("198.51.100.%d", j%250), Outcome: sluis.OutcomeSuccess})
		}
		if _, err := st.AppendEvents(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	api := &admin.API{Actions: &admin.Actions{Store: st, Config: &config.Config{}, Now: func() time.Time { return end }}}
	var times []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		o, err := api.Overview(ctx, end)
		if err != nil || o.Sessions != 10000 {
			b.Fatal(o.Sessions, err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// Over a real TLS listener, as the admin listener mounts it (the login
// puts the operator in the context): a helpdesk operator's script revokes
// a session but cannot set a level, and a form another site's page
// submits is refused before anything is read.
func TestAPIOverTLS(t *testing.T) {
	f, api := newAPI(t)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(admin.WithOperator(r.Context(), helpdesk)))
	}))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	c := srv.Client()
	post := func(path, ct, body string) (int, string) {
		t.Helper()
		res, err := c.Post(srv.URL+path, ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return res.StatusCode, b.String()
	}
	for _, tt := range []struct {
		path, ct, body string
		status         int
		words          string
	}{
		{"/api/v1/sessions/s-anna/revoke", "application/json", "{}", 200, `"revoked":["s-anna"]`},
		{"/api/v1/emergency", "application/json", `{"level":"closed","reason":"x"}`, 403, "needs the role operator"},
		{"/api/v1/sessions/revoke", "application/x-www-form-urlencoded", "all=true", 415, "application/json"},
		{"/api/v1/sessions/revoke", "text/plain", `{"user":"bert"}`, 415, "application/json"},
	} {
		if status, body := post(tt.path, tt.ct, tt.body); status != tt.status || !strings.Contains(body, tt.words) {
			t.Errorf("POST %s (%s): %d %s, want %d with %q", tt.path, tt.ct, status, body, tt.status, tt.words)
		}
	}
	live := f.live(t)
	if live["s-anna"] || !live["s-bert"] {
		t.Fatalf("live: %v", live)
	}
}
