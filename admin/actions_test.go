package admin_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/admin"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

var (
	viewer   = admin.Operator{Name: "vera", Role: admin.RoleViewer, Source: "10.1.0.7"}
	helpdesk = admin.Operator{Name: "hank", Role: admin.RoleHelpdesk, Source: "10.1.0.8"}
	operator = admin.Operator{Name: "olga", Role: admin.RoleOperator, Source: "10.1.0.9"}
)

// fixture is a real SQLite store in a temp dir with users anna (staff),
// bert (staff) and olga (ict-ops, break-glass), each with a live
// session, and apps wiki (essential) and mail.
type fixture struct {
	st  *sqlite.DB
	act *admin.Actions
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &config.Config{File: "sluis.yaml",
		Apps:      []config.App{{Name: "wiki", Host: "wiki.corp.test", Essential: true}, {Name: "mail", Host: "mail.corp.test"}, {Name: "rdp", TCP: "10.0.0.5:3389"}},
		Emergency: config.Emergency{BreakGlass: config.BreakGlass{Groups: []string{"ict-ops"}}},
		Strict:    config.Strict{ReauthAfter: config.Duration(time.Hour)}}
	f := &fixture{st: st, now: t0}
	f.act = &admin.Actions{Store: st, Config: c, Now: func() time.Time { return f.now }}
	for _, u := range []struct{ name, group string }{{"anna", "staff"}, {"bert", "staff"}, {"olga", "ict-ops"}} {
		if err := st.CreateUser(ctx, sluis.User{Name: u.name, Groups: []string{u.group}, PasswordHash: "h", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		f.session(t, "s-"+u.name, u.name, "wiki.corp.test")
	}
	return f
}

func (f *fixture) session(t *testing.T, id, user, host string) {
	t.Helper()
	x := sluis.Session{ID: id, User: user, Stage: sluis.StageComplete, CreatedAt: t0.Add(-2 * time.Hour), LastSeen: t0, ExpiresAt: t0.Add(8 * time.Hour), MFAAt: t0.Add(-2 * time.Hour), Source: "192.0.2.1"}
	if err := f.st.CreateSession(context.Background(), x, []byte(id+"-token-hash-0123456789abcdef0123"), host); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) live(t *testing.T) map[string]bool {
	t.Helper()
	all, err := f.st.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, x := range all {
		out[x.ID] = !x.Revoked()
	}
	return out
}

// events returns the trail's events of type typ.
func (f *fixture) events(t *testing.T, typ string) []sluis.Event {
	t.Helper()
	all, err := f.st.Events(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var out []sluis.Event
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Each action: who may do it, and the record it leaves, naming the
// operator and where they acted from.
func TestActionsRolesAndRecords(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		min   admin.Role
		do    func(a *admin.Actions, op admin.Operator) error
		event string // type of the event the change commits with
		user  string
		words string // in its detail
	}{
		{"revoke one session", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.RevokeSession(ctx, op, "s-anna")
			return err
		}, sluis.EventSessionRevoked, "anna", "session s-anna"},
		{"revoke by user", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.RevokeSessions(ctx, op, sluis.SessionFilter{User: "ANNA"})
			return err
		}, admin.EventSessionsRevoke, "anna", "sessions of user anna"},
		{"revoke by group", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.RevokeSessions(ctx, op, sluis.SessionFilter{Group: "staff"})
			return err
		}, admin.EventSessionsRevoke, "", "sessions of group staff"},
		{"revoke by app", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.RevokeSessions(ctx, op, sluis.SessionFilter{Host: "wiki.corp.test"})
			return err
		}, admin.EventSessionsRevoke, "", "sessions used on app wiki"},
		{"revoke all", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.RevokeSessions(ctx, op, sluis.SessionFilter{All: true})
			return err
		}, admin.EventSessionsRevoke, "", "sessions of everyone"},
		{"disable user", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.DisableUser(ctx, op, "bert")
			return err
		}, admin.EventUserDisable, "bert", ""},
		{"enable user", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.EnableUser(ctx, op, "bert")
			return err
		}, admin.EventUserEnable, "bert", ""},
		{"reset MFA", admin.RoleHelpdesk, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.ResetMFA(ctx, op, "anna")
			return err
		}, admin.EventUserMFAReset, "anna", "TOTP secret, passkeys and recovery codes removed"},
		{"set level", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.SetLevel(ctx, op, admin.LevelChange{Level: sluis.LevelStrict, Reason: "CVE-2026-0001", For: time.Hour})
			return err
		}, admin.EventEmergencySet, "", "level strict until "},
		{"clear level", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.ClearLevel(ctx, op)
			return err
		}, admin.EventEmergencySet, "", "level normal (cleared; was normal)"},
		{"add block", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			_, err := a.AddBlock(ctx, op, admin.BlockRequest{CIDR: "198.51.100.7", Reason: "scanner"})
			return err
		}, admin.EventBlockAdd, "", "198.51.100.7/32 until removed; scanner"},
		{"remove block", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			if err := a.Store.AddBlock(ctx, sluis.Block{CIDR: "198.51.100.0/24", Reason: "x", CreatedAt: t0}); err != nil {
				return err
			}
			_, err := a.RemoveBlock(ctx, op, "198.51.100.9/24")
			return err
		}, admin.EventBlockRemove, "", "198.51.100.0/24"},
		{"disable app", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			return a.DisableApp(ctx, op, "mail", "patch in progress")
		}, admin.EventAppDisable, "", "app mail; patch in progress"},
		{"enable app", admin.RoleOperator, func(a *admin.Actions, op admin.Operator) error {
			return a.EnableApp(ctx, op, "mail")
		}, admin.EventAppEnable, "", "app mail"},
	}
	for _, tt := range tests {
		for _, op := range []admin.Operator{viewer, helpdesk, operator} {
			t.Run(tt.name+" as "+op.Role.String(), func(t *testing.T) {
				f := newFixture(t)
				err := tt.do(f.act, op)
				if op.Role < tt.min {
					if !errors.Is(err, admin.ErrForbidden) || admin.Status(err) != 403 || !strings.Contains(err.Error(), "needs the role "+tt.min.String()) {
						t.Fatalf("err %v, want forbidden naming %s", err, tt.min)
					}
					if n := len(f.events(t, tt.event)); n != 0 {
						t.Fatalf("a refused action left %d %s events", n, tt.event)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				evs := f.events(t, tt.event)
				if len(evs) != 1 {
					t.Fatalf("%d %s events, want 1", len(evs), tt.event)
				}
				e := evs[0]
				if e.User != tt.user || e.Source != op.Source || !strings.HasPrefix(e.Detail, "by "+op.Name+";") || !strings.Contains(e.Detail, tt.words) {
					t.Fatalf("event %+v, want user %q, source %s, detail by %s with %q", e, tt.user, op.Source, op.Name, tt.words)
				}
			})
		}
	}
}

// What the actions change, and the errors a person can act on.
func TestActionsEffects(t *testing.T) {
	ctx := context.Background()
	t.Run("revoke by user ends the user's sessions only, each recorded", func(t *testing.T) {
		f := newFixture(t)
		f.session(t, "s-anna2", "anna", "mail.corp.test")
		r, err := f.act.RevokeSessions(ctx, helpdesk, sluis.SessionFilter{User: "anna"})
		if err != nil || len(r.IDs) != 2 || r.What != "of user anna" {
			t.Fatalf("%+v %v", r, err)
		}
		live := f.live(t)
		if live["s-anna"] || live["s-anna2"] || !live["s-bert"] {
			t.Fatalf("live: %v", live)
		}
		if n := len(f.events(t, sluis.EventSessionRevoked)); n != 2 {
			t.Fatalf("%d session.revoked events, want 2", n)
		}
	})
	t.Run("revoke by app ends the sessions used on it", func(t *testing.T) {
		f := newFixture(t)
		f.session(t, "s-mail", "bert", "mail.corp.test")
		host, err := f.act.AppHost("mail")
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.act.RevokeSessions(ctx, helpdesk, sluis.SessionFilter{Host: host})
		if err != nil || len(r.IDs) != 1 || r.IDs[0] != "s-mail" {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("disable ends the sessions, enable lets the user in again", func(t *testing.T) {
		f := newFixture(t)
		c, err := f.act.DisableUser(ctx, helpdesk, "Bert")
		if err != nil || c.User != "bert" || len(c.Revoked) != 1 {
			t.Fatalf("%+v %v", c, err)
		}
		if u, _ := f.st.User(ctx, "bert"); !u.Disabled {
			t.Fatal("bert is not disabled")
		}
		if _, err := f.act.EnableUser(ctx, helpdesk, "bert"); err != nil {
			t.Fatal(err)
		}
		if u, _ := f.st.User(ctx, "bert"); u.Disabled {
			t.Fatal("bert is still disabled")
		}
	})
	t.Run("reset MFA removes the factors and ends the sessions", func(t *testing.T) {
		f := newFixture(t)
		if err := f.st.SetTOTP(ctx, "anna", []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.act.ResetMFA(ctx, helpdesk, "anna"); err != nil {
			t.Fatal(err)
		}
		if u, _ := f.st.User(ctx, "anna"); u.HasTOTP() {
			t.Fatal("anna keeps her TOTP secret")
		}
		if f.live(t)["s-anna"] {
			t.Fatal("anna keeps her session")
		}
	})
	t.Run("lockdown ends every session outside break_glass but the acting operator's", func(t *testing.T) {
		f := newFixture(t)
		// anna and bert, outside break_glass, are at the console too: bert
		// sets the lockdown and keeps the session he acts in; anna's
		// console session ends with her others.
		f.session(t, admin.SessionPrefix+"anna", "anna", "admin.corp.test")
		f.session(t, admin.SessionPrefix+"bert", "bert", "admin.corp.test")
		operator := operator
		operator.SessionID = admin.SessionPrefix + "bert"
		p, err := f.act.Preview(ctx, operator, sluis.LevelLockdown, "intrusion")
		if err != nil || p.Live != 4 || p.Revoked != 3 || p.Notice != "Access is limited to emergency staff: intrusion" {
			t.Fatalf("preview %+v %v", p, err)
		}
		r, err := f.act.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelLockdown, Reason: "intrusion"})
		if err != nil || r.Revoked != 3 || r.Emergency.SetBy != "olga" || r.Until != "until changed" {
			t.Fatalf("%+v %v", r, err)
		}
		live := f.live(t)
		if live["s-anna"] || live["s-bert"] || !live["s-olga"] || live[admin.SessionPrefix+"anna"] || !live[admin.SessionPrefix+"bert"] {
			t.Fatalf("live: %v", live)
		}
		em, _ := f.st.Emergency(ctx)
		if lvl, why := em.Effective(f.now); lvl != sluis.LevelLockdown || why != "intrusion" {
			t.Fatalf("level %s %q", lvl, why)
		}
	})
	t.Run("a timed level returns to the one before", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.act.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelStrict, Reason: "a"}); err != nil {
			t.Fatal(err)
		}
		r, err := f.act.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelClosed, Reason: "b", For: time.Hour})
		if err != nil || !strings.HasSuffix(r.Until, ", then strict") {
			t.Fatalf("%+v %v", r, err)
		}
		em, _ := f.st.Emergency(ctx)
		if lvl, _ := em.Effective(f.now.Add(time.Hour)); lvl != sluis.LevelStrict {
			t.Fatalf("after the hour: %s", lvl)
		}
	})
	t.Run("previews", func(t *testing.T) {
		f := newFixture(t)
		for _, tt := range []struct {
			level                  string
			affected, revoked      int
			notice, effectContains string
		}{
			{sluis.LevelNormal, 0, 0, "", "Every app is open"},
			{sluis.LevelStrict, 3, 0, "Security is tightened: why", "3 of 3 live sessions"},
			{sluis.LevelEssential, 3, 0, "Only essential applications are open: why", "open stay: wiki"},
			{sluis.LevelClosed, 3, 0, "Access through the gateway is closed: why", "nobody can log in"},
		} {
			p, err := f.act.Preview(ctx, viewer, tt.level, "why")
			if err != nil || p.Affected != tt.affected || p.Revoked != tt.revoked || p.Notice != tt.notice || !strings.Contains(p.Effect, tt.effectContains) {
				t.Errorf("%s: %+v %v", tt.level, p, err)
			}
		}
		if f.live(t)["s-anna"] != true {
			t.Fatal("a preview changed something")
		}
	})
	for _, tt := range []struct {
		name   string
		do     func(a *admin.Actions) error
		status int
		words  string
	}{
		{"unknown session", func(a *admin.Actions) error { _, err := a.RevokeSession(ctx, helpdesk, "nope"); return err }, 404, "no session"},
		{"unknown user", func(a *admin.Actions) error { _, err := a.DisableUser(ctx, helpdesk, "nobody"); return err }, 404, "no user nobody"},
		{"no filter", func(a *admin.Actions) error {
			_, err := a.RevokeSessions(ctx, helpdesk, sluis.SessionFilter{})
			return err
		}, 400, "exactly one"},
		{"two filters", func(a *admin.Actions) error {
			_, err := a.RevokeSessions(ctx, helpdesk, sluis.SessionFilter{User: "anna", Group: "staff"})
			return err
		}, 400, "exactly one"},
		{"unknown app host", func(a *admin.Actions) error {
			_, err := a.RevokeSessions(ctx, helpdesk, sluis.SessionFilter{Host: "x.corp.test"})
			return err
		}, 404, "no app has the host"},
		{"TCP app host", func(a *admin.Actions) error { _, err := a.AppHost("rdp"); return err }, 400, "TCP app"},
		{"unknown level", func(a *admin.Actions) error {
			_, err := a.SetLevel(ctx, operator, admin.LevelChange{Level: "red", Reason: "x"})
			return err
		}, 400, `unknown level "red"`},
		{"level without reason", func(a *admin.Actions) error {
			_, err := a.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelClosed, Reason: "  "})
			return err
		}, 400, "a reason is required"},
		{"reason of two lines", func(a *admin.Actions) error {
			_, err := a.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelClosed, Reason: "a\nb"})
			return err
		}, 400, "one line"},
		{"reason too long", func(a *admin.Actions) error {
			_, err := a.SetLevel(ctx, operator, admin.LevelChange{Level: sluis.LevelClosed, Reason: strings.Repeat("x", 501)})
			return err
		}, 400, "at most 500"},
		{"negative duration", func(a *admin.Actions) error {
			_, err := a.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "192.0.2.1", Reason: "x", For: -time.Hour})
			return err
		}, 400, "positive"},
		{"duration past the limit", func(a *admin.Actions) error {
			_, err := a.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "192.0.2.1", Reason: "x", For: admin.MaxFor + time.Hour})
			return err
		}, 400, "at most"},
		{"block without reason", func(a *admin.Actions) error {
			_, err := a.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "192.0.2.1"})
			return err
		}, 400, "a reason is required"},
		{"block of no address", func(a *admin.Actions) error {
			_, err := a.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "192.0.2.300", Reason: "x"})
			return err
		}, 400, "not an address or a range"},
		{"wide block without force", func(a *admin.Actions) error {
			_, err := a.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "0.0.0.0/0", Reason: "x"})
			return err
		}, 409, "0.0.0.0/0 covers every IPv4 address (2^32): it would lock out staff too"},
		{"remove a block that is not there", func(a *admin.Actions) error { _, err := a.RemoveBlock(ctx, operator, "192.0.2.1"); return err }, 404, "no block of 192.0.2.1/32"},
		{"unknown app", func(a *admin.Actions) error { return a.DisableApp(ctx, operator, "nope", "x") }, 404, `no app "nope"`},
		{"app off without reason", func(a *admin.Actions) error { return a.DisableApp(ctx, operator, "mail", "") }, 400, "a reason is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			err := tt.do(f.act)
			if admin.Status(err) != tt.status || err == nil || !strings.Contains(err.Error(), tt.words) {
				t.Fatalf("err %v (status %d), want %d with %q", err, admin.Status(err), tt.status, tt.words)
			}
		})
	}
	t.Run("a reloaded configuration counts at once", func(t *testing.T) {
		f := newFixture(t)
		next := *f.act.Config
		next.Apps = append(slices.Clone(next.Apps), config.App{Name: "new", Host: "new.corp.test"})
		f.act.Current = func() *config.Config { return &next }
		if err := f.act.DisableApp(ctx, operator, "new", "not yet"); err != nil {
			t.Fatal(err)
		}
		if off, _ := f.st.DisabledApps(ctx); off["new"] != "not yet" {
			t.Fatalf("disabled: %v", off)
		}
	})
	t.Run("wide block with force is recorded as forced", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.act.AddBlock(ctx, operator, admin.BlockRequest{CIDR: "::/0", Reason: "test", Force: true}); err != nil {
			t.Fatal(err)
		}
		evs := f.events(t, admin.EventBlockAdd)
		if len(evs) != 1 || !strings.Contains(evs[0].Detail, "::/0 until removed (forced: covers every IPv6 address (2^128)); test") {
			t.Fatalf("%+v", evs)
		}
	})
}

// A help desk cannot change the account of a console user whose role is
// above theirs: resetting an operator's second factors would let whoever
// has the operator's password enrol a passkey, and reach the console as
// operator. An operator can; the help desk keeps its hold on staff.
func TestActionsOnAHigherRole(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.act.Config.Admin = &config.Admin{Roles: map[string][]string{"helpdesk": {"servicedesk"}, "operator": {"ict-ops"}}}
	for _, tt := range []struct {
		name string
		do   func(op admin.Operator, user string) error
	}{
		{"reset MFA", func(op admin.Operator, user string) error { _, err := f.act.ResetMFA(ctx, op, user); return err }},
		{"disable", func(op admin.Operator, user string) error { _, err := f.act.DisableUser(ctx, op, user); return err }},
		{"enable", func(op admin.Operator, user string) error { _, err := f.act.EnableUser(ctx, op, user); return err }},
	} {
		if err := tt.do(helpdesk, "olga"); !errors.Is(err, admin.ErrForbidden) {
			t.Errorf("helpdesk may %s an operator: %v", tt.name, err)
		}
		if err := tt.do(helpdesk, "anna"); err != nil {
			t.Errorf("helpdesk may not %s staff: %v", tt.name, err)
		}
		if err := tt.do(operator, "olga"); err != nil {
			t.Errorf("an operator may not %s an operator: %v", tt.name, err)
		}
	}
	if n := len(f.events(t, admin.EventUserMFAReset)); n != 2 {
		t.Errorf("%d MFA resets recorded, want 2 (the refused one is not)", n)
	}
}
