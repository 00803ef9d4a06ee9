package portal

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// Twins from an older store (Alice and alice, both enabled) can neither log
// in in one step (a passkey, single sign-on, the directory) nor use a
// session, until an operator disables one; then the other can.
func TestTwinsCannotLogInOrUseSessions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	alice := sluis.User{Name: "alice", Groups: []string{"staff"}, CreatedAt: now}
	if err := st.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	tok, hash := session.NewToken()
	x := sluis.Session{ID: session.NewID(), User: "alice", Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour), MFAAt: now}
	if err := st.CreateSession(ctx, x, hash[:], "wiki.test"); err != nil {
		t.Fatal(err)
	}
	p := &Portal{Store: st, Audit: &audit.Recorder{Store: st, Log: slog.Default()}, Log: slog.Default(), Now: time.Now}
	sessions := &session.Service{Store: st, Now: time.Now, IdleTimeout: time.Hour}
	r := httptest.NewRequest("GET", "https://login.test/", nil)
	check := func(wantRefused bool) {
		t.Helper()
		reason, err := p.refusal(r, alice)
		if err != nil || (reason == twinReason) != wantRefused {
			t.Fatalf("refusal of alice: %q, %v; want refused as a twin: %v", reason, err, wantRefused)
		}
		_, err = sessions.Lookup(ctx, tok, "wiki.test")
		if (err != nil) != wantRefused {
			t.Fatalf("alice's session: %v; want refused: %v", err, wantRefused)
		}
	}
	check(false)

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO users (name, groups, password_hash, disabled, created_at, source, external_id) VALUES ('Alice', 'admins', '', 0, 0, '', '');
		UPDATE meta SET value = value + 1 WHERE key = 'revision'`); err != nil {
		t.Fatal(err)
	}
	check(true)
	if err := st.SetDisabled(ctx, "Alice", true); err != nil {
		t.Fatal(err)
	}
	check(false)
}
