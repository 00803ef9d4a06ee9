package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sluis-gateway/sluis/internal/slapdtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// One name, one person: a name that differs from a user's only in case is
// that user, never a second one; twins that an older store holds still let
// the gateway start, are marked and logged, and cannot log in until an
// operator keeps one.
func TestOneNameOnePerson(t *testing.T) {
	w := setup(t)
	g := w.g
	secret := g.AddUser("alice", pw, "staff")
	for _, twin := range []string{"ALICE", "Alice", "ａｌｉｃｅ"} {
		out, err := g.CLI(pw+"\n", "user", "add", twin, "--groups", "hr", "--password-stdin")
		if err == nil || !strings.Contains(err.Error(), `user "alice" exists already`) {
			t.Fatalf("user add %s while alice exists: %v\n%s", twin, err, out)
		}
	}
	if out := g.MustCLI(pw+"\n", "user", "add", "Bob", "--groups", "staff", "--password-stdin"); !strings.Contains(out, "user bob added") {
		t.Fatalf("user add Bob: %s", out)
	}
	// Typed in any case, the name logs in as alice and reaches the app as
	// alice.
	p := g.Login(g.Client(), g.URL(wikiHost, "/start"), "ALICE", pw, secret)
	if p.StatusCode != http.StatusOK {
		t.Fatalf("ALICE: %d", p.StatusCode)
	}
	if u := w.wiki.last(t).Header.Get("X-Sluis-User"); u != "alice" {
		t.Fatalf("ALICE reached the app as %q", u)
	}
	// The operator's commands find her in any case too.
	if out := g.MustCLI("", "user", "groups", "Alice", "--groups", "staff,ops"); !strings.Contains(out, "groups of alice: staff,ops") {
		t.Fatalf("user groups Alice: %s", out)
	}

	// A store from before: twins Alice and alice.
	db, err := sql.Open("sqlite", filepath.Join(filepath.Dir(g.ConfigPath), "data", "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO users (name, groups, password_hash, disabled, totp_secret, created_at, source, external_id)
		SELECT 'Alice', 'hr', password_hash, 0, totp_secret, created_at, source, external_id FROM users WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	g = g.Restart()
	if !strings.Contains(g.Logs(), "share one name") || !strings.Contains(g.Logs(), "Alice, alice") {
		t.Fatalf("no warning naming the twins in the log:\n%s", g.Logs())
	}
	out, err := g.CLI("", "user", "list")
	if err != nil || !strings.Contains(out, "TWIN of Alice") || !strings.Contains(out, "TWIN of alice") || strings.Contains(out, "bob  ") && strings.Contains(out, "TWIN of bob") {
		t.Fatalf("user list does not mark the twins: %v\n%s", err, out)
	}
	// Neither twin can log in while both are enabled.
	for _, typed := range []string{"alice", "Alice"} {
		if p := g.SubmitPassword(g.Client(), "", typed, pw); p.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s with twins: %d", typed, p.StatusCode)
		}
	}
	if a := g.MustCLI("", "audit"); !strings.Contains(a, "the name is shared by several users") {
		t.Fatal("the audit trail does not say why the twins were refused")
	}
	// The operator names a twin exactly and disables it; the other one is
	// the person from then on.
	if out, err := g.CLI("", "user", "disable", "ALICE"); err == nil || !strings.Contains(err.Error(), "several users") {
		t.Fatalf("user disable ALICE with twins: %v %s", err, out)
	}
	g.MustCLI("", "user", "disable", "Alice")
	if p := g.Login(g.Client(), g.URL(wikiHost, "/start"), "ALICE", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("alice after her twin was disabled: %d", p.StatusCode)
	}
	if u := w.wiki.last(t).Header.Get("X-Sluis-User"); u != "alice" {
		t.Fatalf("reached the app as %q", u)
	}
}

// Throttles follow the account, not the typed name: guesses through one
// name of a directory account lock every name of it, and the audit trail
// names the account.
func TestLDAPLocksFollowTheAccount(t *testing.T) {
	s := slapdtest.Start(t)
	up := newUpstream(t)
	g := testenv.StartWith(t, ldapConfig(s)+"audit:\n  fold_refusals: 1s\n", testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	c := g.Client()
	for i := 0; i < 6; i++ {
		if p := g.SubmitPassword(c, "", "carol", fmt.Sprintf("guess %d", i)); p.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, p.StatusCode)
		}
	}
	// Her mail address is the same account: locked too, for a wrong and
	// for the right password, in any case.
	for _, try := range []struct{ name, password string }{
		{"carol", "guess 7"},
		{"carol@corp.test", "wrong again"},
		{"Carol@Corp.Test", "carol-pass"},
	} {
		if p := g.SubmitPassword(c, "", try.name, try.password); p.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s after six wrong passwords for carol: %d, want 429", try.name, p.StatusCode)
		}
	}
	// Refusals at one account are folded into one event a second here,
	// with their reasons: the throttled tries through either name are
	// carol's.
	await(t, 5*time.Second, "the folded refusals of carol", func() bool {
		return strings.Contains(g.MustCLI("", "audit"), "2 throttled (typed as carol@corp.test)")
	})
	for _, ev := range assertAudit(t, g, "login.failure") {
		if ev["type"] == "login.failure" && ev["user"] != "carol" {
			t.Errorf("a login failure names %v, not the account carol", ev["user"])
		}
	}
	// Another account from the same address is not locked.
	if p := g.SubmitPassword(g.Client(), "", "erin", "erin-pass"); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("erin: %d", p.StatusCode)
	}
}
