// Package storetest is the one suite every sluis.Store implementation must
// pass, so the gateway behaves the same on every backend.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Run runs the suite. open must return a new, empty store each call.
func Run(t *testing.T, open func(t *testing.T) sluis.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s sluis.Store)
	}{
		{"Users", testUsers},
		{"TOTPStepsAreSingleUse", testTOTPSteps},
		{"SessionLifecycle", testSessionLifecycle},
		{"TokensAreBoundToHost", testTokenHost},
		{"GrantsWorkOnce", testGrants},
		{"RevisionAdvancesOnAccessChanges", testRevision},
		{"Audit", testAudit},
		{"CountSessions", testCountSessions},
		{"AuditSearch", testAuditSearch},
		{"AuditInBatchesByID", testAuditByID},
		{"AuditCounts", testAuditCounts},
		{"AppSwitches", testAppSwitches},
		{"Blocks", testBlocks},
		{"KnownBrowsers", testKnownBrowsers},
		{"ChangesWithEvents", testChangesWithEvents},
		{"Emergency", testEmergency},
		{"Passkeys", testPasskeys},
		{"DeviceGrants", testDeviceGrants},
		{"RecoveryCodesAndReset", testRecovery},
		{"Counters", testCounters},
		{"CountersUnderConcurrentUpdates", testCountersConcurrent},
		{"Leases", testLeases},
		{"SharesAddUpToALimit", testShares},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func mustUser(t *testing.T, s sluis.Store, name string, groups ...string) {
	t.Helper()
	if err := s.CreateUser(context.Background(), sluis.User{Name: name, Groups: groups, PasswordHash: "h", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

func mustSession(t *testing.T, s sluis.Store, id, user, token, host string) {
	t.Helper()
	x := sluis.Session{ID: id, User: user, Stage: sluis.StageComplete, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour), MFAAt: t0, Source: "192.0.2.1"}
	if err := s.CreateSession(context.Background(), x, hash(token), host); err != nil {
		t.Fatal(err)
	}
}

func testUsers(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna", "staff", "ops")
	if err := s.CreateUser(ctx, sluis.User{Name: "anna", CreatedAt: t0}); sluis.ErrorCode(err) != sluis.ECONFLICT {
		t.Fatalf("duplicate user: got %v, want conflict", err)
	}
	// One name, one person: a twin in other case is refused too.
	for _, twin := range []string{"Anna", "ANNA", "aNNa"} {
		if err := s.CreateUser(ctx, sluis.User{Name: twin, CreatedAt: t0}); sluis.ErrorCode(err) != sluis.ECONFLICT || !strings.Contains(err.Error(), `"anna"`) {
			t.Fatalf("twin %s: got %v, want a conflict naming anna", twin, err)
		}
	}
	for _, typed := range []string{"anna", "ANNA", "Anna"} {
		if us, err := s.UsersNamed(ctx, typed); err != nil || len(us) != 1 || us[0].Name != "anna" {
			t.Fatalf("UsersNamed(%s) = %v, %v; want anna", typed, us, err)
		}
	}
	if us, err := s.UsersNamed(ctx, "ann"); err != nil || len(us) != 0 {
		t.Fatalf("UsersNamed(ann) = %v, %v; want none", us, err)
	}
	if _, err := s.User(ctx, "nobody"); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("missing user: got %v, want not found", err)
	}
	if err := s.SetDisabled(ctx, "nobody", true); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("disable missing user: got %v", err)
	}
	must(t, s.SetPassword(ctx, "anna", "h2"))
	must(t, s.SetGroups(ctx, "anna", []string{"staff"}))
	must(t, s.SetDisabled(ctx, "anna", true))
	must(t, s.SetTOTP(ctx, "anna", []byte("sealed")))
	must(t, s.SetProfile(ctx, "anna", "anna@corp.test", "Anna Ångström"))
	u, err := s.User(ctx, "anna")
	must(t, err)
	if u.PasswordHash != "h2" || !slices.Equal(u.Groups, []string{"staff"}) || !u.Disabled || !bytes.Equal(u.TOTPSecret, []byte("sealed")) || !u.CreatedAt.Equal(t0) ||
		u.Email != "anna@corp.test" || u.DisplayName != "Anna Ångström" {
		t.Fatalf("user after updates: %+v", u)
	}
	if err := s.SetProfile(ctx, "nobody", "x@corp.test", ""); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("profile of missing user: got %v", err)
	}
	must(t, s.CreateUser(ctx, sluis.User{Name: "carl", PasswordHash: "h", CreatedAt: t0, Email: "carl@corp.test", DisplayName: "Carl"}))
	if c, err := s.User(ctx, "carl"); err != nil || c.Email != "carl@corp.test" || c.DisplayName != "Carl" {
		t.Fatalf("created with a profile: %+v, %v", c, err)
	}
	mustUser(t, s, "bert")
	all, err := s.Users(ctx)
	must(t, err)
	if len(all) != 3 || all[0].Name != "anna" || all[1].Name != "bert" || all[1].HasTOTP() {
		t.Fatalf("users: %+v", all)
	}
}

func testTOTPSteps(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	for _, c := range []struct {
		step int64
		ok   bool
	}{{100, true}, {100, false}, {99, false}, {101, true}, {101, false}} {
		ok, err := s.UseTOTPStep(ctx, "anna", c.step)
		must(t, err)
		if ok != c.ok {
			t.Fatalf("step %d: got %v, want %v", c.step, ok, c.ok)
		}
	}
	// A new secret forgets the used steps.
	must(t, s.SetTOTP(ctx, "anna", []byte("new")))
	if ok, _ := s.UseTOTPStep(ctx, "anna", 50); !ok {
		t.Fatal("step after new secret refused")
	}
}

func testSessionLifecycle(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	pending := sluis.Session{ID: "s1", User: "anna", Stage: sluis.StagePassword, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour), EnrollSecret: []byte("e")}
	must(t, s.CreateSession(ctx, pending, hash("tok1"), "login"))
	got, err := s.SessionByToken(ctx, hash("tok1"), "login")
	must(t, err)
	if got.ID != "s1" || got.Stage != sluis.StagePassword || !bytes.Equal(got.EnrollSecret, []byte("e")) {
		t.Fatalf("pending session: %+v", got)
	}
	must(t, s.CompleteSession(ctx, "s1", t0.Add(time.Minute), sluis.FactorTOTP, t0.Add(12*time.Hour), hash("tok2"), "login"))
	if _, err := s.SessionByToken(ctx, hash("tok1"), "login"); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("token from before the second factor still works: %v", err)
	}
	got, err = s.SessionByToken(ctx, hash("tok2"), "login")
	must(t, err)
	if got.Stage != sluis.StageComplete || !got.MFAAt.Equal(t0.Add(time.Minute)) || got.MFAMethod != sluis.FactorTOTP || !got.ExpiresAt.Equal(t0.Add(12*time.Hour)) || got.EnrollSecret != nil {
		t.Fatalf("completed session: %+v", got)
	}
	// A step-up with a passkey moves the time and the method.
	must(t, s.RefreshMFA(ctx, "s1", t0.Add(90*time.Second), sluis.FactorPasskey))
	got, _ = s.Session(ctx, "s1")
	if !got.MFAAt.Equal(t0.Add(90*time.Second)) || got.MFAMethod != sluis.FactorPasskey {
		t.Fatalf("after a passkey step-up: %+v", got)
	}
	must(t, s.TouchSession(ctx, "s1", t0.Add(2*time.Minute)))
	must(t, s.TouchSession(ctx, "s1", t0.Add(1*time.Minute))) // never goes back
	got, _ = s.Session(ctx, "s1")
	if !got.LastSeen.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("last seen %v", got.LastSeen)
	}
	child := sluis.Session{ID: "s1-child", User: "anna", Stage: sluis.StageComplete, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour), ParentID: "s1"}
	must(t, s.CreateSession(ctx, child, hash("tok-child"), "tunnel"))
	must(t, s.RevokeSession(ctx, "s1", t0.Add(3*time.Minute)))
	must(t, s.RevokeSession(ctx, "s1", t0.Add(4*time.Minute))) // idempotent
	if c, _ := s.Session(ctx, "s1-child"); !c.Revoked() || c.ParentID != "s1" {
		t.Fatalf("a session made from a revoked one lives on: %+v", c)
	}
	got, _ = s.Session(ctx, "s1")
	if !got.Revoked() || !got.RevokedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("revoked: %+v", got)
	}
	if err := s.RevokeSession(ctx, "nope", t0); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("revoke unknown: %v", err)
	}
	mustSession(t, s, "s2", "anna", "a", "login")
	mustSession(t, s, "s3", "anna", "b", "login")
	ids, err := s.RevokeSessions(ctx, sluis.SessionFilter{User: "anna"}, t0)
	must(t, err)
	if !slices.Equal(ids, []string{"s2", "s3"}) {
		t.Fatalf("revoked ids %v", ids)
	}
	all, _ := s.Sessions(ctx)
	for _, x := range all {
		if !x.Revoked() {
			t.Fatalf("session %s not revoked", x.ID)
		}
	}
	// By group, by app host, all.
	mustUser(t, s, "bert", "ops", "hr")
	mustUser(t, s, "carl", "hrx")
	mustSession(t, s, "b1", "bert", "tb1", "login")
	mustSession(t, s, "c1", "carl", "tc1", "login")
	must(t, s.AddToken(ctx, "c1", hash("tc1-wiki"), "wiki"))
	mustSession(t, s, "a9", "anna", "ta9", "login")
	for _, c := range []struct {
		f    sluis.SessionFilter
		want []string
	}{
		{sluis.SessionFilter{Group: "hr"}, []string{"b1"}}, // not carl of "hrx"
		{sluis.SessionFilter{Host: "wiki"}, []string{"c1"}},
		{sluis.SessionFilter{All: true}, []string{"a9"}},
		{sluis.SessionFilter{All: true}, nil},
	} {
		ids, err := s.RevokeSessions(ctx, c.f, t0)
		must(t, err)
		if !slices.Equal(ids, c.want) {
			t.Fatalf("revoke %+v: %v, want %v", c.f, ids, c.want)
		}
	}
	if _, err := s.RevokeSessions(ctx, sluis.SessionFilter{}, t0); err == nil {
		t.Fatal("an empty filter revoked sessions")
	}
	// Keep spares one session (the acting operator's, at a lockdown), and
	// only that one.
	mustUser(t, s, "dora", "ops")
	mustSession(t, s, sluis.ConsoleSessionPrefix+"d1", "dora", "td1", "admin")
	mustSession(t, s, "d2", "dora", "td2", "login")
	mustSession(t, s, sluis.ConsoleSessionPrefix+"d3", "dora", "td3", "admin")
	ids, err = s.RevokeSessions(ctx, sluis.SessionFilter{User: "dora", Keep: sluis.ConsoleSessionPrefix + "d1"}, t0)
	must(t, err)
	if !slices.Equal(ids, []string{sluis.ConsoleSessionPrefix + "d3", "d2"}) {
		t.Fatalf("revoke keeping one: %v", ids)
	}
	if c, _ := s.Session(ctx, sluis.ConsoleSessionPrefix+"d1"); c.Revoked() {
		t.Fatal("the session to keep was revoked")
	}
	ids, err = s.RevokeSessions(ctx, sluis.SessionFilter{User: "dora"}, t0)
	must(t, err)
	if !slices.Equal(ids, []string{sluis.ConsoleSessionPrefix + "d1"}) {
		t.Fatalf("revoke without Keep: %v", ids)
	}
}

func testTokenHost(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	mustSession(t, s, "s1", "anna", "portal-token", "login")
	must(t, s.AddToken(ctx, "s1", hash("app-token"), "wiki"))
	if _, err := s.SessionByToken(ctx, hash("app-token"), "wiki"); err != nil {
		t.Fatal(err)
	}
	must(t, s.AddToken(ctx, "s1", hash("app-token-2"), "wiki"))
	must(t, s.AddToken(ctx, "s1", hash("hr-token"), "hr"))
	if hosts, err := s.SessionHosts(ctx, "s1"); err != nil || !slices.Equal(hosts, []string{"hr", "login", "wiki"}) {
		t.Errorf("SessionHosts = %q, %v; want hr, login, wiki", hosts, err)
	}
	if hosts, err := s.SessionHosts(ctx, "nope"); err != nil || len(hosts) != 0 {
		t.Errorf("SessionHosts of an unknown session = %q, %v", hosts, err)
	}
	for _, c := range []struct{ tok, host string }{{"app-token", "login"}, {"portal-token", "wiki"}, {"app-token", "other"}, {"", "wiki"}} {
		if _, err := s.SessionByToken(ctx, hash(c.tok), c.host); sluis.ErrorCode(err) != sluis.ENOTFOUND {
			t.Errorf("token %q on host %q: got %v, want not found", c.tok, c.host, err)
		}
	}
}

func testGrants(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	mustSession(t, s, "s1", "anna", "tok", "login")
	must(t, s.CreateGrant(ctx, hash("code"), "s1", "wiki", "/page?x=1", hash("state"), t0.Add(time.Minute)))
	must(t, s.CreateGrant(ctx, hash("astray"), "s1", "wiki", "/", hash("state"), t0.Add(time.Minute)))
	if _, _, _, err := s.RedeemGrant(ctx, hash("astray"), "other", t0); err == nil {
		t.Fatal("grant redeemed on another host")
	}
	if _, _, _, err := s.RedeemGrant(ctx, hash("astray"), "wiki", t0); err == nil {
		t.Fatal("grant tried on another host still works on its own")
	}
	id, path, state, err := s.RedeemGrant(ctx, hash("code"), "wiki", t0)
	must(t, err)
	if id != "s1" || path != "/page?x=1" || !bytes.Equal(state, hash("state")) {
		t.Fatalf("grant: %q %q", id, path)
	}
	if _, _, _, err := s.RedeemGrant(ctx, hash("code"), "wiki", t0); err == nil {
		t.Fatal("grant redeemed twice")
	}
	must(t, s.CreateGrant(ctx, hash("late"), "s1", "wiki", "/", hash("state"), t0.Add(time.Minute)))
	if _, _, _, err := s.RedeemGrant(ctx, hash("late"), "wiki", t0.Add(time.Minute)); err == nil {
		t.Fatal("expired grant redeemed")
	}
	must(t, s.CreateGrant(ctx, hash("revoked"), "s1", "wiki", "/", hash("state"), t0.Add(time.Minute)))
	must(t, s.RevokeSession(ctx, "s1", t0))
	if _, _, _, err := s.RedeemGrant(ctx, hash("revoked"), "wiki", t0); err == nil {
		t.Fatal("grant of a revoked session redeemed")
	}
}

func testRevision(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	mustSession(t, s, "s1", "anna", "tok", "login")
	changes := []struct {
		name string
		fn   func() error
	}{
		{"groups", func() error { return s.SetGroups(ctx, "anna", []string{"x"}) }},
		{"disable", func() error { return s.SetDisabled(ctx, "anna", true) }},
		{"password", func() error { return s.SetPassword(ctx, "anna", "h3") }},
		{"totp", func() error { return s.SetTOTP(ctx, "anna", []byte("s")) }},
		{"profile", func() error { return s.SetProfile(ctx, "anna", "a@corp.test", "A") }},
		{"complete", func() error {
			return s.CompleteSession(ctx, "s1", t0, sluis.FactorTOTP, t0.Add(time.Hour), hash("tok9"), "login")
		}},
		{"revoke", func() error { return s.RevokeSession(ctx, "s1", t0) }},
		{"add block", func() error { return s.AddBlock(ctx, sluis.Block{CIDR: "192.0.2.0/24", Reason: "r", CreatedAt: t0}) }},
		{"remove block", func() error { return s.RemoveBlock(ctx, "192.0.2.0/24") }},
		{"disable app", func() error { return s.SetAppDisabled(ctx, "wiki", true, "patching", t0) }},
		{"enable app", func() error { return s.SetAppDisabled(ctx, "wiki", false, "", t0) }},
		{"revoke user", func() error { _, err := s.RevokeSessions(ctx, sluis.SessionFilter{User: "anna"}, t0); return err }},
		{"revoke group", func() error { _, err := s.RevokeSessions(ctx, sluis.SessionFilter{Group: "x"}, t0); return err }},
		{"revoke app", func() error { _, err := s.RevokeSessions(ctx, sluis.SessionFilter{Host: "wiki.test"}, t0); return err }},
		{"emergency", func() error {
			return s.SetEmergency(ctx, sluis.Emergency{Level: sluis.LevelEssential, Reason: "r", SetBy: "op", SetAt: t0})
		}},
		{"reset mfa", func() error { return s.ResetMFA(ctx, "anna") }},
	}
	for _, c := range changes {
		before, err := s.Revision(ctx)
		must(t, err)
		must(t, c.fn())
		after, err := s.Revision(ctx)
		must(t, err)
		if after == before {
			t.Errorf("%s: revision stayed %d", c.name, before)
		}
	}
}

func testAudit(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	for i, typ := range []string{sluis.EventLoginFailure, sluis.EventLoginSuccess, sluis.EventLogout} {
		e, err := s.AppendEvent(ctx, sluis.Event{Time: t0.Add(time.Duration(i) * time.Minute), Type: typ, User: "anna", Source: "192.0.2.1", Outcome: "x", Detail: "d"})
		must(t, err)
		if e.ID != int64(i+1) || len(e.Hash) != 32 {
			t.Fatalf("stored event not returned numbered and chained: %+v", e)
		}
	}
	evs, err := s.Events(ctx, t0.Add(time.Minute))
	must(t, err)
	if len(evs) != 2 || evs[0].Type != sluis.EventLoginSuccess || evs[1].Type != sluis.EventLogout || !evs[1].Time.Equal(t0.Add(2*time.Minute)) || evs[0].User != "anna" {
		t.Fatalf("events: %+v", evs)
	}
	// The store chains the trail: each event's hash covers it and the one
	// before, numbered without gaps.
	all, err := s.Events(ctx, time.Time{})
	must(t, err)
	var prev []byte
	for i, e := range all {
		if e.ID != int64(i+1) || !bytes.Equal(e.PrevHash, prev) || len(e.Hash) != 32 || !bytes.Equal(e.Hash, e.ChainHash(prev)) {
			t.Fatalf("event %d is not chained: %+v", i+1, e)
		}
		prev = e.Hash
	}
}

// The overview's count of who is connected: live complete sessions, in
// all and by the hosts they were used on.
func testCountSessions(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	mustSession(t, s, "live", "anna", "t1", "portal.test")
	must(t, s.AddToken(ctx, "live", hash("t2"), "wiki.test"))
	mustSession(t, s, "idle", "anna", "t3", "portal.test")
	mustSession(t, s, "revoked", "anna", "t4", "wiki.test")
	must(t, s.RevokeSession(ctx, "revoked", t0))
	must(t, s.CreateSession(ctx, sluis.Session{ID: "expired", User: "anna", Stage: sluis.StageComplete, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Minute)}, hash("t5"), "wiki.test"))
	must(t, s.CreateSession(ctx, sluis.Session{ID: "half", User: "anna", Stage: sluis.StagePassword, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour)}, hash("t6"), "portal.test"))
	must(t, s.TouchSession(ctx, "live", t0.Add(20*time.Minute)))
	now := t0.Add(30 * time.Minute)
	for _, tt := range []struct {
		seenSince time.Time
		total     int
		byHost    map[string]int
	}{
		{time.Time{}, 2, map[string]int{"portal.test": 2, "wiki.test": 1}},
		{t0.Add(10 * time.Minute), 1, map[string]int{"portal.test": 1, "wiki.test": 1}},
	} {
		total, byHost, err := s.CountSessions(ctx, now, tt.seenSince)
		must(t, err)
		if total != tt.total || fmt.Sprint(byHost) != fmt.Sprint(tt.byHost) {
			t.Fatalf("seen since %v: %d %v, want %d %v", tt.seenSince, total, byHost, tt.total, tt.byHost)
		}
	}
}

// trail appends events for the searches: event i (ID i+1) at t0 plus i
// minutes, except that event 5 (ID 6) is stamped a minute before event 4
// (a clock step between nodes), so time and ID order differ once.
func trail(t *testing.T, s sluis.Store) []sluis.Event {
	t.Helper()
	es := []sluis.Event{
		{Type: sluis.EventLoginFailure, User: "anna", Source: "192.0.2.1", Detail: "bad password"},
		{Type: sluis.EventLoginSuccess, User: "anna", Source: "192.0.2.1"},
		{Type: sluis.EventAccessDenied, User: "anna", Source: "192.0.2.1", App: "wiki", Detail: "rule 1: needs a passkey; error ID 0a1b2c3d4e5f"},
		{Type: sluis.EventAccessDenied, User: "bert", Source: "192.0.2.2", App: "mail", Detail: "no rule; error ID 0A1B2C3D4E5FFF"},
		{Type: sluis.EventLoginSuccess, User: "bert", Source: "192.0.2.2"},
		{Type: sluis.EventLoginFailure, User: "bert", Source: "192.0.2.2"},
		{Type: "security.probe", Source: "198.51.100.7", Detail: "/.env"},
		{Type: sluis.EventAccessDenied, User: "carl", Source: "192.0.2.3", App: "wiki", Detail: `target "/?error ID 0a1b2c3d4e5f"; error ID 99999999999a`},
		{Type: sluis.EventLogout, User: "anna", Source: "192.0.2.1"},
	}
	for i := range es {
		es[i].Time = t0.Add(time.Duration(i) * time.Minute)
		es[i].Outcome = sluis.OutcomeSuccess
	}
	es[5].Time = t0.Add(3*time.Minute + 30*time.Second)
	out, err := s.AppendEvents(context.Background(), es)
	must(t, err)
	return out
}

func ids(es []sluis.Event) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// Verify and export read the trail in batches by ID: together the
// batches are what Events returns for the same since, in ID order, also
// where an event's time is out of step with its ID; never more than the
// batch.
func testAuditByID(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	trail(t, s)
	for _, tt := range []struct {
		name  string
		since time.Time
		want  []int64
	}{
		{"whole trail", time.Time{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		// ID 6 is stamped 3m30s, before ID 5 (4m): left out, as Events does.
		{"since 3m45s", t0.Add(3*time.Minute + 45*time.Second), []int64{5, 7, 8, 9}},
		{"since 3m30s", t0.Add(3*time.Minute + 30*time.Second), []int64{5, 6, 7, 8, 9}},
		{"since after the last", t0.Add(time.Hour), []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := s.Events(ctx, tt.since)
			must(t, err)
			if fmt.Sprint(ids(evs)) != fmt.Sprint(tt.want) {
				t.Fatalf("Events: %v, want %v", ids(evs), tt.want)
			}
			for _, batch := range []int{1, 2, 4, sluis.MaxEventsBatch} {
				var got []sluis.Event
				for after, n := int64(0), 0; ; n++ {
					page, err := s.EventsByID(ctx, tt.since, after, batch)
					must(t, err)
					if len(page) > batch {
						t.Fatalf("batch of %d gave %d events", batch, len(page))
					}
					if len(page) == 0 {
						break
					}
					if n > len(tt.want) {
						t.Fatalf("batch of %d: paging does not end", batch)
					}
					got = append(got, page...)
					after = page[len(page)-1].ID
				}
				if fmt.Sprint(ids(got)) != fmt.Sprint(tt.want) {
					t.Fatalf("batches of %d: %v, want %v", batch, ids(got), tt.want)
				}
				for i := range got {
					if e := evs[i]; got[i].Type != e.Type || !got[i].Time.Equal(e.Time) || got[i].Detail != e.Detail || !bytes.Equal(got[i].Hash, e.Hash) || !bytes.Equal(got[i].PrevHash, e.PrevHash) {
						t.Fatalf("batches of %d: event %d is %+v, Events has %+v", batch, e.ID, got[i], e)
					}
				}
			}
		})
	}
	for _, tt := range []struct {
		after int64
		limit int
	}{{0, 0}, {0, -1}, {0, sluis.MaxEventsBatch + 1}, {-1, 10}} {
		if _, err := s.EventsByID(ctx, time.Time{}, tt.after, tt.limit); sluis.ErrorCode(err) != sluis.EINVALID {
			t.Fatalf("after %d, limit %d: %v, want EINVALID", tt.after, tt.limit, err)
		}
	}
}

// The console's audit search: newest first, filters that must all hold,
// pages that together give every event once.
func testAuditSearch(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	trail(t, s)
	for _, tt := range []struct {
		name string
		q    sluis.AuditQuery
		want []int64
	}{
		// By time: event 6 (3m30s) comes before event 5 (4m).
		{"all, newest first", sluis.AuditQuery{}, []int64{9, 8, 7, 5, 6, 4, 3, 2, 1}},
		{"since", sluis.AuditQuery{Since: t0.Add(6 * time.Minute)}, []int64{9, 8, 7}},
		{"until", sluis.AuditQuery{Until: t0.Add(2 * time.Minute)}, []int64{2, 1}},
		{"period", sluis.AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(4 * time.Minute)}, []int64{6, 4, 3, 2}},
		{"type", sluis.AuditQuery{Type: sluis.EventAccessDenied}, []int64{8, 4, 3}},
		{"user", sluis.AuditQuery{User: "anna"}, []int64{9, 3, 2, 1}},
		{"source", sluis.AuditQuery{Source: "192.0.2.2"}, []int64{5, 6, 4}},
		{"app", sluis.AuditQuery{App: "wiki"}, []int64{8, 3}},
		{"user and type", sluis.AuditQuery{User: "bert", Type: sluis.EventLoginFailure}, []int64{6}},
		// The ID the gateway wrote, any case; not an ID that only begins
		// with it, nor one a client put in the detail before it.
		{"error ID", sluis.AuditQuery{ErrorID: "0A1B2C3D4E5F"}, []int64{3}},
		{"error ID after a client's text", sluis.AuditQuery{ErrorID: "99999999999a"}, []int64{8}},
		{"error ID of another length", sluis.AuditQuery{ErrorID: "0a1b2c3d4e5fff"}, []int64{4}},
		{"error ID and user", sluis.AuditQuery{ErrorID: "0a1b2c3d4e5f", User: "bert"}, []int64{}},
		{"nothing", sluis.AuditQuery{User: "nobody"}, []int64{}},
		{"limit", sluis.AuditQuery{Limit: 2}, []int64{9, 8}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.SearchEvents(ctx, tt.q)
			must(t, err)
			if got := ids(p.Events); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for _, e := range p.Events {
				if len(e.Hash) != 32 || e.Time.IsZero() || e.Outcome == "" {
					t.Fatalf("event not returned whole: %+v", e)
				}
			}
		})
	}
	// Pages of any size give every event once, in order, and the last
	// page says it is the last.
	for _, size := range []int{1, 2, 4, 9, 10} {
		var got []int64
		q := sluis.AuditQuery{Limit: size}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("size %d: pages never end", size)
			}
			p, err := s.SearchEvents(ctx, q)
			must(t, err)
			if len(p.Events) > size {
				t.Fatalf("size %d: a page of %d", size, len(p.Events))
			}
			got = append(got, ids(p.Events)...)
			if p.Next == 0 {
				break
			}
			q.Before = p.Next
		}
		if want := []int64{9, 8, 7, 5, 6, 4, 3, 2, 1}; !slices.Equal(got, want) {
			t.Fatalf("size %d: pages gave %v, want %v", size, got, want)
		}
	}
	// Paging with a filter.
	p, err := s.SearchEvents(ctx, sluis.AuditQuery{Source: "192.0.2.2", Limit: 1, Before: 5})
	must(t, err)
	if !slices.Equal(ids(p.Events), []int64{6}) || p.Next != 6 {
		t.Fatalf("second page by source: %v next %d", ids(p.Events), p.Next)
	}
	for _, tt := range []struct {
		name string
		q    sluis.AuditQuery
	}{
		{"page too large", sluis.AuditQuery{Limit: sluis.MaxAuditPage + 1}},
		{"negative limit", sluis.AuditQuery{Limit: -1}},
		{"error ID not hex", sluis.AuditQuery{ErrorID: "0a1b%"}},
		{"error ID too long", sluis.AuditQuery{ErrorID: strings.Repeat("a", 33)}},
		{"end before start", sluis.AuditQuery{Since: t0.Add(time.Hour), Until: t0}},
		{"cursor of no event", sluis.AuditQuery{Before: 99}},
		{"field too long", sluis.AuditQuery{User: strings.Repeat("a", 257)}},
	} {
		if _, err := s.SearchEvents(ctx, tt.q); sluis.ErrorCode(err) != sluis.EINVALID {
			t.Errorf("%s: err %v, want invalid", tt.name, err)
		}
	}
}

// Counts per type and bucket, for the overview's numbers and charts.
func testAuditCounts(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	trail(t, s)
	got, err := s.CountEvents(ctx, []string{sluis.EventLoginSuccess, sluis.EventLoginFailure, "security.probe", "nothing.here"}, t0, t0.Add(10*time.Minute), 2*time.Minute)
	must(t, err)
	want := []sluis.EventCount{
		{Type: sluis.EventLoginFailure, Start: t0, N: 1},
		{Type: sluis.EventLoginFailure, Start: t0.Add(2 * time.Minute), N: 1}, // 3m30s
		{Type: sluis.EventLoginSuccess, Start: t0, N: 1},
		{Type: sluis.EventLoginSuccess, Start: t0.Add(4 * time.Minute), N: 1},
		{Type: "security.probe", Start: t0.Add(6 * time.Minute), N: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Type != want[i].Type || !got[i].Start.Equal(want[i].Start) || got[i].N != want[i].N {
			t.Fatalf("count %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// The period's ends hold: the failure at 0m is before, the one at
	// 3m30s within [1m, 4m).
	got, err = s.CountEvents(ctx, []string{sluis.EventLoginFailure}, t0.Add(time.Minute), t0.Add(4*time.Minute), time.Hour)
	must(t, err)
	if len(got) != 1 || got[0].N != 1 || !got[0].Start.Equal(t0.Add(time.Minute)) {
		t.Fatalf("period: %+v", got)
	}
	for _, tt := range []struct {
		name         string
		types        []string
		since, until time.Time
		bucket       time.Duration
	}{
		{"no types", nil, t0, t0.Add(time.Hour), time.Minute},
		{"too many types", make([]string, sluis.MaxCountTypes+1), t0, t0.Add(time.Hour), time.Minute},
		{"bucket under a second", []string{"x"}, t0, t0.Add(time.Hour), time.Millisecond},
		{"too many buckets", []string{"x"}, t0, t0.Add(1001 * time.Second), time.Second},
		{"empty period", []string{"x"}, t0, t0, time.Second},
	} {
		if _, err := s.CountEvents(ctx, tt.types, tt.since, tt.until, tt.bucket); sluis.ErrorCode(err) != sluis.EINVALID {
			t.Errorf("%s: err %v, want invalid", tt.name, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testAppSwitches(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	must(t, s.SetAppDisabled(ctx, "wiki", true, "patching", t0))
	must(t, s.SetAppDisabled(ctx, "hr", true, "audit", t0))
	must(t, s.SetAppDisabled(ctx, "wiki", true, "still patching", t0))
	must(t, s.SetAppDisabled(ctx, "hr", false, "", t0))
	m, err := s.DisabledApps(ctx)
	must(t, err)
	if len(m) != 1 || m["wiki"] != "still patching" {
		t.Fatalf("disabled apps: %v", m)
	}
}

func testBlocks(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "192.0.2.0/24", Reason: "scanner", CreatedAt: t0}))
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "198.51.100.7/32", Reason: "probes", Until: t0.Add(15 * time.Minute), Auto: true, CreatedAt: t0.Add(time.Second)}))
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "192.0.2.0/24", Reason: "scanner, again", CreatedAt: t0}))
	bs, err := s.Blocks(ctx)
	must(t, err)
	if len(bs) != 2 || bs[0].Reason != "scanner, again" || !bs[0].Until.IsZero() || !bs[1].Auto || !bs[1].Until.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("blocks: %+v", bs)
	}
	must(t, s.RemoveBlock(ctx, "192.0.2.0/24"))
	if err := s.RemoveBlock(ctx, "192.0.2.0/24"); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("removing a missing block: %v", err)
	}
	// An automatic block never turns an operator's into a timed one; an
	// operator's replaces an automatic one.
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "203.0.113.5/32", Reason: "operator", CreatedAt: t0}))
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "203.0.113.5/32", Reason: "probes", Until: t0.Add(time.Minute), Auto: true, CreatedAt: t0}))
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "198.51.100.7/32", Reason: "operator now", CreatedAt: t0}))
	bs, err = s.Blocks(ctx)
	must(t, err)
	for _, b := range bs {
		if b.Auto || !b.Until.IsZero() || !strings.HasPrefix(b.Reason, "operator") {
			t.Fatalf("after operator and automatic blocks of one address: %+v", bs)
		}
	}
	// Adding an automatic block deletes the automatic blocks that ended.
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "2001:db8:1::/64", Reason: "probes", Until: t0.Add(time.Minute), Auto: true, CreatedAt: t0}))
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "2001:db8:2::/64", Reason: "probes", Until: t0.Add(time.Hour), Auto: true, CreatedAt: t0}))
	must(t, s.AddBlock(ctx, sluis.Block{CIDR: "2001:db8:3::/64", Reason: "probes", Until: t0.Add(2 * time.Hour), Auto: true, CreatedAt: t0.Add(time.Hour)}))
	bs, err = s.Blocks(ctx)
	must(t, err)
	var cidrs []string
	for _, b := range bs {
		cidrs = append(cidrs, b.CIDR)
	}
	if slices.Contains(cidrs, "2001:db8:1::/64") || slices.Contains(cidrs, "2001:db8:2::/64") || !slices.Contains(cidrs, "2001:db8:3::/64") || !slices.Contains(cidrs, "203.0.113.5/32") {
		t.Fatalf("after an automatic block an hour later: %v", cidrs)
	}
}

func testKnownBrowsers(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "kim", "staff")
	mustUser(t, s, "lou", "ops")
	must(t, s.AddKnownBrowser(ctx, sluis.KnownBrowser{ID: "b1", User: "kim", CreatedAt: t0}, hash("kim-1")))
	must(t, s.AddKnownBrowser(ctx, sluis.KnownBrowser{ID: "b2", User: "lou", CreatedAt: t0}, hash("lou-1")))
	b, err := s.KnownBrowser(ctx, hash("kim-1"))
	if err != nil || b.ID != "b1" || b.User != "kim" || !b.CreatedAt.Equal(t0) {
		t.Fatalf("known browser: %+v %v", b, err)
	}
	if _, err := s.KnownBrowser(ctx, hash("nobody")); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("unknown browser: %v", err)
	}
	// A user keeps the newest MaxKnownBrowsers.
	for i := 2; i <= sluis.MaxKnownBrowsers+1; i++ {
		must(t, s.AddKnownBrowser(ctx, sluis.KnownBrowser{ID: fmt.Sprint("b", i), User: "kim", CreatedAt: t0.Add(time.Duration(i) * time.Minute)}, hash(fmt.Sprint("kim-", i))))
	}
	if _, err := s.KnownBrowser(ctx, hash("kim-1")); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("the oldest browser beyond the limit: %v", err)
	}
	if _, err := s.KnownBrowser(ctx, hash("kim-2")); err != nil {
		t.Fatalf("a browser within the limit: %v", err)
	}
	// Revoking by app keeps them; by user forgets that user's only.
	_, err = s.RevokeSessions(ctx, sluis.SessionFilter{Host: "wiki.test"}, t0)
	must(t, err)
	if _, err := s.KnownBrowser(ctx, hash("kim-2")); err != nil {
		t.Fatalf("after revoking an app's sessions: %v", err)
	}
	_, err = s.RevokeSessions(ctx, sluis.SessionFilter{User: "kim"}, t0)
	must(t, err)
	if _, err := s.KnownBrowser(ctx, hash("kim-2")); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("after revoking kim's sessions: %v", err)
	}
	if _, err := s.KnownBrowser(ctx, hash("lou-1")); err != nil {
		t.Fatalf("lou's browser after revoking kim's sessions: %v", err)
	}
	_, err = s.RevokeSessions(ctx, sluis.SessionFilter{Group: "ops"}, t0)
	must(t, err)
	if _, err := s.KnownBrowser(ctx, hash("lou-1")); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("after revoking group ops: %v", err)
	}
}

// A change and the events its context carries commit together: both, or
// (when the change fails) neither.
func testChangesWithEvents(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	count := func() int {
		evs, err := s.Events(ctx, time.Time{})
		must(t, err)
		return len(evs)
	}
	before := count()
	ev := sluis.Event{Time: t0, Type: "admin.block.add", Source: "cli", Outcome: sluis.OutcomeSuccess, Detail: "192.0.2.99/32"}
	must(t, s.AddBlock(sluis.WithEvents(ctx, ev), sluis.Block{CIDR: "192.0.2.99/32", Reason: "r", CreatedAt: t0}))
	if n := count(); n != before+1 {
		t.Fatalf("%d events after a change with one, want %d", n, before+1)
	}
	evs, _ := s.Events(ctx, time.Time{})
	if last := evs[len(evs)-1]; last.Type != "admin.block.add" || len(last.Hash) == 0 {
		t.Fatalf("the change's event: %+v", last)
	}
	// A change that fails stores no event.
	if err := s.RemoveBlock(sluis.WithEvents(ctx, ev), "198.51.100.250/32"); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("removing a missing block: %v", err)
	}
	mustUser(t, s, "casey")
	if err := s.CreateUser(sluis.WithEvents(ctx, ev), sluis.User{Name: "Casey", CreatedAt: t0}); sluis.ErrorCode(err) != sluis.ECONFLICT {
		t.Fatalf("a twin: %v", err)
	}
	if n := count(); n != before+1 {
		t.Fatalf("%d events after two failed changes, want %d", n, before+1)
	}
	// Other changes carry their events too.
	must(t, s.CreateUser(sluis.WithEvents(ctx, ev), sluis.User{Name: "dana", CreatedAt: t0}))
	must(t, s.SetEmergency(sluis.WithEvents(ctx, ev), sluis.Emergency{Level: sluis.LevelStrict, SetAt: t0}))
	_, err := s.RevokeSessions(sluis.WithEvents(ctx, ev), sluis.SessionFilter{User: "dana"}, t0)
	must(t, err)
	if n := count(); n != before+4 {
		t.Fatalf("%d events, want %d", n, before+4)
	}
	must(t, s.SetEmergency(ctx, sluis.Emergency{SetAt: t0}))
}

func testEmergency(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	e, err := s.Emergency(ctx)
	must(t, err)
	if level, _ := e.Effective(t0); level != sluis.LevelNormal {
		t.Fatalf("initial level %q", level)
	}
	before, _ := s.Revision(ctx)
	must(t, s.SetEmergency(ctx, sluis.Emergency{Level: sluis.LevelClosed, Reason: "r", Previous: sluis.LevelEssential, Until: t0.Add(time.Hour), SetBy: "op", SetAt: t0}))
	if after, _ := s.Revision(ctx); after == before {
		t.Fatal("setting the level did not advance the revision")
	}
	e, err = s.Emergency(ctx)
	must(t, err)
	if level, reason := e.Effective(t0.Add(time.Minute)); level != sluis.LevelClosed || reason != "r" {
		t.Fatalf("level %q %q", level, reason)
	}
	if level, _ := e.Effective(t0.Add(time.Hour)); level != sluis.LevelEssential {
		t.Fatalf("after expiry: %q", level)
	}
}

func testPasskeys(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	mustUser(t, s, "bert")
	if _, err := s.PasskeyHandle(ctx, "anna", false); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("handle before any was made: %v", err)
	}
	h, err := s.PasskeyHandle(ctx, "anna", true)
	must(t, err)
	again, err := s.PasskeyHandle(ctx, "anna", true)
	must(t, err)
	if len(h) != 32 || !bytes.Equal(h, again) {
		t.Fatalf("handle %x, then %x", h, again)
	}
	hb, err := s.PasskeyHandle(ctx, "bert", true)
	must(t, err)
	if bytes.Equal(h, hb) {
		t.Fatal("two users share a handle")
	}
	if u, err := s.UserByPasskeyHandle(ctx, h); err != nil || u != "anna" {
		t.Fatalf("user by handle: %q %v", u, err)
	}
	if _, err := s.UserByPasskeyHandle(ctx, []byte("nobody")); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("unknown handle: %v", err)
	}
	must(t, s.AddPasskey(ctx, sluis.Passkey{ID: []byte("k1"), User: "anna", Name: "laptop", Data: []byte("d1"), CreatedAt: t0}))
	must(t, s.AddPasskey(ctx, sluis.Passkey{ID: []byte("k2"), User: "anna", Name: "phone", Data: []byte("d2"), CreatedAt: t0.Add(time.Second)}))
	for _, k := range []sluis.Passkey{
		{ID: []byte("k1"), User: "bert", Name: "x", Data: []byte("d"), CreatedAt: t0},     // ID taken
		{ID: []byte("k3"), User: "anna", Name: "phone", Data: []byte("d"), CreatedAt: t0}, // name taken
	} {
		if err := s.AddPasskey(ctx, k); sluis.ErrorCode(err) != sluis.ECONFLICT {
			t.Errorf("AddPasskey(%s, %s): %v, want a conflict", k.ID, k.Name, err)
		}
	}
	must(t, s.UsePasskey(ctx, []byte("k1"), []byte("d1b"), t0.Add(time.Hour)))
	keys, err := s.Passkeys(ctx, "anna")
	must(t, err)
	if len(keys) != 2 || keys[0].Name != "laptop" || string(keys[0].Data) != "d1b" || !keys[0].LastUsed.Equal(t0.Add(time.Hour)) ||
		keys[1].Name != "phone" || !keys[1].LastUsed.IsZero() || !keys[1].CreatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("anna's passkeys: %+v", keys)
	}
	if err := s.RemovePasskey(ctx, "bert", []byte("k1")); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("bert removed anna's key: %v", err)
	}
	must(t, s.RemovePasskey(ctx, "anna", []byte("k1")))
	if keys, _ := s.Passkeys(ctx, "anna"); len(keys) != 1 || keys[0].Name != "phone" {
		t.Fatalf("after removal: %+v", keys)
	}
	fresh, err := s.UseChallenge(ctx, hash("c1"), time.Now().Add(time.Minute))
	must(t, err)
	again2, err := s.UseChallenge(ctx, hash("c1"), time.Now().Add(time.Minute))
	must(t, err)
	if !fresh || again2 {
		t.Fatalf("challenge spent: first %v, second %v", fresh, again2)
	}
}

func testDeviceGrants(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	g := sluis.DeviceGrant{DeviceHash: hash("dev1"), UserCode: "BCDF-GHJK", Source: "198.51.100.7", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	must(t, s.CreateDeviceGrant(ctx, g))
	if err := s.CreateDeviceGrant(ctx, sluis.DeviceGrant{DeviceHash: hash("dev2"), UserCode: "BCDF-GHJK", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}); sluis.ErrorCode(err) != sluis.ECONFLICT {
		t.Fatalf("a user code twice: %v", err)
	}
	got, err := s.DeviceGrantByUserCode(ctx, "BCDF-GHJK", t0.Add(time.Minute))
	must(t, err)
	if got.Source != "198.51.100.7" || got.State != sluis.DevicePending {
		t.Fatalf("pending grant: %+v", got)
	}
	if _, err := s.DeviceGrantByUserCode(ctx, "BCDF-GHJK", t0.Add(11*time.Minute)); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("an expired grant was found: %v", err)
	}
	// Polling before approval: pending, and nothing taken.
	if got, err := s.TakeDeviceGrant(ctx, hash("dev1"), t0.Add(time.Minute)); err != nil || got.State != sluis.DevicePending {
		t.Fatalf("poll before approval: %+v %v", got, err)
	}
	must(t, s.DecideDeviceGrant(ctx, "BCDF-GHJK", true, "anna", "s9", []byte("sealed"), t0.Add(2*time.Minute)))
	if err := s.DecideDeviceGrant(ctx, "BCDF-GHJK", false, "anna", "", nil, t0.Add(2*time.Minute)); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("a grant was decided twice: %v", err)
	}
	got, err = s.TakeDeviceGrant(ctx, hash("dev1"), t0.Add(3*time.Minute))
	must(t, err)
	if got.State != sluis.DeviceApproved || got.User != "anna" || got.SessionID != "s9" || string(got.SealedToken) != "sealed" {
		t.Fatalf("taken grant: %+v", got)
	}
	got, err = s.TakeDeviceGrant(ctx, hash("dev1"), t0.Add(3*time.Minute))
	must(t, err)
	if got.State != sluis.DeviceTaken || got.SealedToken != nil {
		t.Fatalf("a grant's token was handed out twice: %+v", got)
	}
	// A denied grant says so.
	must(t, s.CreateDeviceGrant(ctx, sluis.DeviceGrant{DeviceHash: hash("dev3"), UserCode: "LMNP-QRST", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}))
	must(t, s.DecideDeviceGrant(ctx, "LMNP-QRST", false, "anna", "", nil, t0.Add(time.Minute)))
	if got, err := s.TakeDeviceGrant(ctx, hash("dev3"), t0.Add(time.Minute)); err != nil || got.State != sluis.DeviceDenied {
		t.Fatalf("denied grant: %+v %v", got, err)
	}
}

func testRecovery(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	mustUser(t, s, "anna")
	must(t, s.SetRecoveryCodes(ctx, "anna", [][]byte{hash("r1"), hash("r2"), hash("r3")}))
	if n, err := s.RecoveryCodesLeft(ctx, "anna"); err != nil || n != 3 {
		t.Fatalf("left: %d %v", n, err)
	}
	ok, left, err := s.UseRecoveryCode(ctx, "anna", hash("r2"), t0)
	if err != nil || !ok || left != 2 {
		t.Fatalf("first use: %v %d %v", ok, left, err)
	}
	if ok, _, _ := s.UseRecoveryCode(ctx, "anna", hash("r2"), t0); ok {
		t.Fatal("a recovery code worked twice")
	}
	if ok, _, _ := s.UseRecoveryCode(ctx, "anna", hash("nope"), t0); ok {
		t.Fatal("an unknown recovery code worked")
	}
	// New codes replace the old ones.
	must(t, s.SetRecoveryCodes(ctx, "anna", [][]byte{hash("r4")}))
	if ok, _, _ := s.UseRecoveryCode(ctx, "anna", hash("r1"), t0); ok {
		t.Fatal("a replaced code worked")
	}
	// The reset removes every factor and advances the revision.
	must(t, s.SetTOTP(ctx, "anna", []byte("sealed")))
	must(t, s.AddPasskey(ctx, sluis.Passkey{ID: []byte("k"), User: "anna", Name: "key", Data: []byte("d"), CreatedAt: t0}))
	rev, _ := s.Revision(ctx)
	must(t, s.ResetMFA(ctx, "anna"))
	u, _ := s.User(ctx, "anna")
	keys, _ := s.Passkeys(ctx, "anna")
	left, _ = s.RecoveryCodesLeft(ctx, "anna")
	if u.HasTOTP() || len(keys) != 0 || left != 0 {
		t.Fatalf("after the reset: totp %v, %d passkeys, %d codes", u.HasTOTP(), len(keys), left)
	}
	if rev2, _ := s.Revision(ctx); rev2 == rev {
		t.Fatal("the reset did not advance the revision")
	}
	if err := s.ResetMFA(ctx, "nobody"); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatalf("reset of an unknown user: %v", err)
	}
}

// Counters: read-modify-write of one key, expiry read as nothing, purge
// by expiry and by a cap that keeps locked and recent counters.
func testCounters(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	c, err := s.ReadCounter(ctx, "login:anna", t0)
	if err != nil || c != (sluis.Counter{}) {
		t.Fatalf("absent counter: %+v, %v", c, err)
	}
	bump := func(c *sluis.Counter) bool {
		c.N++
		c.Last = t0
		c.Until = t0.Add(time.Minute)
		c.Expires = t0.Add(time.Hour)
		return true
	}
	for i := 1; i <= 3; i++ {
		c, err := s.UpdateCounter(ctx, "login:anna", t0, bump)
		if err != nil || c.N != i || !c.Until.Equal(t0.Add(time.Minute)) || !c.Last.Equal(t0) || !c.Expires.Equal(t0.Add(time.Hour)) {
			t.Fatalf("update %d: %+v, %v", i, c, err)
		}
	}
	// fn returning false stores nothing and returns what is stored.
	c, err = s.UpdateCounter(ctx, "login:anna", t0, func(c *sluis.Counter) bool { c.N = 99; return false })
	if err != nil || c.N != 99 {
		t.Fatalf("unstored update returns fn's view: %+v, %v", c, err)
	}
	if c, err := s.ReadCounter(ctx, "login:anna", t0); err != nil || c.N != 3 {
		t.Fatalf("after an unstored update: %+v, %v", c, err)
	}
	if c, err := s.UpdateCounter(ctx, "login:nobody", t0, func(c *sluis.Counter) bool { return false }); err != nil || c != (sluis.Counter{}) {
		t.Fatalf("unstored update of a new key: %+v, %v", c, err)
	}
	// An expired counter reads, and updates, as the zero Counter.
	later := t0.Add(time.Hour)
	if c, err := s.ReadCounter(ctx, "login:anna", later); err != nil || c != (sluis.Counter{}) {
		t.Fatalf("expired counter: %+v, %v", c, err)
	}
	c, err = s.UpdateCounter(ctx, "login:anna", later, func(c *sluis.Counter) bool {
		if c.N != 0 {
			t.Errorf("fn saw an expired counter: %+v", *c)
		}
		c.N, c.Expires = 1, later.Add(time.Hour)
		return true
	})
	if err != nil || c.N != 1 {
		t.Fatalf("update after expiry: %+v, %v", c, err)
	}
	if err := s.DeleteCounter(ctx, "login:anna"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.ReadCounter(ctx, "login:anna", t0); err != nil || c.N != 0 {
		t.Fatalf("deleted counter: %+v, %v", c, err)
	}
	if err := s.DeleteCounter(ctx, "login:anna"); err != nil {
		t.Fatalf("deleting an absent counter: %v", err)
	}

	// Purge: expired ones go; past the cap, the unlocked that changed
	// least recently go first.
	set := func(key string, last, until, expires time.Time) {
		t.Helper()
		if _, err := s.UpdateCounter(ctx, key, t0, func(c *sluis.Counter) bool {
			*c = sluis.Counter{N: 1, Last: last, Until: until, Expires: expires}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(10 * time.Minute)
	set("old", t0, time.Time{}, t0.Add(5*time.Minute)) // expired at now
	set("locked", t0, now.Add(time.Hour), now.Add(time.Hour))
	set("recent", now.Add(-time.Second), time.Time{}, now.Add(time.Hour))
	set("stale", now.Add(-time.Minute), time.Time{}, now.Add(time.Hour))
	n, err := s.PurgeCounters(ctx, now, 2)
	if err != nil || n != 2 {
		t.Fatalf("purge: %d, %v; want 2 (old, stale)", n, err)
	}
	for key, want := range map[string]int{"old": 0, "stale": 0, "locked": 1, "recent": 1} {
		if c, err := s.ReadCounter(ctx, key, now); err != nil || c.N != want {
			t.Errorf("after purge, %s: %+v, %v; want N=%d", key, c, err, want)
		}
	}
	if n, err := s.PurgeCounters(ctx, now, 100); err != nil || n != 0 {
		t.Fatalf("purge with nothing to do: %d, %v", n, err)
	}
}

// Updates of one key from many goroutines (and, for a shared store,
// connections) at once lose none.
func testCountersConcurrent(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := s.UpdateCounter(ctx, "probe:192.0.2.0/24", t0, func(c *sluis.Counter) bool {
					c.N++
					c.Expires = t0.Add(time.Hour)
					return true
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c, err := s.ReadCounter(ctx, "probe:192.0.2.0/24", t0); err != nil || c.N != workers*each {
		t.Fatalf("after %d concurrent updates: %+v, %v", workers*each, c, err)
	}
}

// Leases: one holder at a time; the holder renews; a lease that ran out
// or was released goes to whoever asks next.
func testLeases(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	try := func(holder string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := s.TryLease(ctx, "audit-checkpoints", holder, ttl)
		if err != nil || got != want {
			t.Fatalf("TryLease(%s) = %v, %v; want %v", holder, got, err, want)
		}
	}
	try("node-1", time.Hour, true)
	try("node-2", time.Hour, false)
	try("node-1", time.Hour, true) // renewed
	if got, err := s.TryLease(ctx, "directory-recheck", "node-2", time.Hour); err != nil || !got {
		t.Fatalf("another lease: %v, %v", got, err)
	}
	if err := s.ReleaseLease(ctx, "audit-checkpoints", "node-2"); err != nil {
		t.Fatal(err)
	}
	try("node-2", time.Hour, false) // node-2 could not release node-1's lease
	if err := s.ReleaseLease(ctx, "audit-checkpoints", "node-1"); err != nil {
		t.Fatal(err)
	}
	try("node-2", 50*time.Millisecond, true)
	try("node-1", time.Hour, false)
	time.Sleep(100 * time.Millisecond)
	try("node-1", time.Hour, true) // node-2 stopped renewing
	try("node-2", time.Hour, false)
}

// Shares: the holders' shares of a key add up to at most the limit, even
// when many try at once; an expired share stops counting, a renewed one
// does not expire; a decrease always applies.
func testShares(t *testing.T, s sluis.Store) {
	ctx := context.Background()
	exp := t0.Add(30 * time.Second)
	add := func(holder string, delta int, now, expires time.Time, want bool) {
		t.Helper()
		got, err := s.AddShare(ctx, "tunnels/anna", holder, delta, 3, now, expires)
		if err != nil || got != want {
			t.Fatalf("AddShare(%s, %+d) = %v, %v; want %v", holder, delta, got, err, want)
		}
	}
	add("node-1", 1, t0, exp, true)
	add("node-1", 1, t0, exp, true)
	add("node-2", 1, t0, exp, true)
	add("node-2", 1, t0, exp, false) // 4 > 3
	if ok, err := s.AddShare(ctx, "tunnels/bert", "node-2", 1, 3, t0, exp); err != nil || !ok {
		t.Fatalf("another key: %v, %v", ok, err)
	}
	add("node-1", -1, t0, exp, true)
	add("node-2", 1, t0, exp, true)
	add("node-1", -5, t0, exp, true) // never below zero
	add("node-1", 1, t0, exp, true)
	add("node-1", 1, t0, exp, false)
	// node-1 stops renewing, node-2 renews: node-1's shares stop
	// counting once they expire.
	later := t0.Add(time.Minute)
	if err := s.RenewShares(ctx, "node-2", later.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	add("node-3", 1, later, later.Add(30*time.Second), true) // node-2's 2, node-3's 1
	add("node-3", 1, later, later.Add(30*time.Second), false)
	if _, err := s.PurgeCounters(ctx, later, 1000); err != nil {
		t.Fatal(err)
	}
	add("node-2", -2, later, later.Add(30*time.Second), true)
	if err := s.RenewShares(ctx, "node-2", later.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	// Many at once, from two holders: exactly the limit get through.
	var wg sync.WaitGroup
	var mu sync.Mutex
	okCount := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.AddShare(ctx, "tunnels/carl", fmt.Sprintf("node-%d", i%2), 1, 5, t0, exp)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				okCount++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if okCount != 5 {
		t.Fatalf("%d of 16 concurrent adds got through a limit of 5", okCount)
	}
}
