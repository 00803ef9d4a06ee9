package cli

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/datadir"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/store/postgres"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func h(s string) []byte { x := sha256.Sum256([]byte(s)); return x[:] }

// `sluis store copy` moves a gateway from SQLite to PostgreSQL with
// everything it knew: a store with rows in every table is copied, reads
// back the same through the Store interface, keeps its single-use things
// used, and its audit trail verifies (`sluis audit verify`, with the
// signed checkpoints) on the copy. A gateway switched to an empty
// PostgreSQL store beside its old sluis.db is refused; the copy refuses a
// data_dir in use and a target that holds anything.
func TestStoreCopyToPostgreSQL(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	cfg := writeConfig(t, goodConfig)
	dataDir := filepath.Join(filepath.Dir(cfg), "data")
	dbPath := filepath.Join(dataDir, datadir.Database)
	for _, args := range [][]string{
		{"user", "add", "anna", "--groups", "staff,ops", "--password-stdin"},
		{"user", "totp", "anna"},
		{"block", "add", "192.0.2.0/24", "--reason", "scanner"},
		{"app", "disable", "wiki", "--reason", "patching"},
		{"emergency", "set", "strict", "--reason", "drill", "--for", "4h"},
	} {
		if r := runCLI("long enough pw\n", append([]string{"--config", cfg}, args...)...); r.err != nil {
			t.Fatalf("%v: %v\n%s", args, r.err, r.errOut)
		}
	}
	// What logins leave behind, written as the gateway would.
	src, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(src.CreateUser(ctx, sluis.User{Name: "bert", Groups: []string{"hr"}, PasswordHash: "h", Source: sluis.SourceLDAP, ExternalID: "uuid-1", Email: "bert@corp.test", DisplayName: "Bert", CreatedAt: t0}))
	must(src.CreateSession(ctx, sluis.Session{ID: "s1", User: "anna", Stage: sluis.StageComplete, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour), MFAAt: t0, MFAMethod: sluis.FactorTOTP, Source: "198.51.100.1", UserAgent: "test"}, h("portal-token"), "login.test"))
	must(src.AddToken(ctx, "s1", h("wiki-token"), "wiki.test"))
	must(src.CreateSession(ctx, sluis.Session{ID: "s2", User: "anna", Stage: sluis.StagePassword, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour), ParentID: "s1", EnrollSecret: []byte("sealed")}, h("pending-token"), "login.test"))
	must(src.CreateGrant(ctx, h("code"), "s1", "wiki.test", "/page", h("state"), time.Now().Add(time.Hour)))
	must(src.AddPasskey(ctx, sluis.Passkey{ID: []byte("key-1"), User: "anna", Name: "laptop", Data: []byte("credential"), CreatedAt: t0}))
	_, err = src.PasskeyHandle(ctx, "anna", true)
	must(err)
	must(src.SetRecoveryCodes(ctx, "anna", [][]byte{h("r1"), h("r2")}))
	_, _, err = src.UseRecoveryCode(ctx, "anna", h("r1"), t0)
	must(err)
	must(src.CreateDeviceGrant(ctx, sluis.DeviceGrant{DeviceHash: h("device"), UserCode: "BCDF-GHJK", Source: "198.51.100.2", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
	must(src.AddKnownBrowser(ctx, sluis.KnownBrowser{ID: "b1", User: "anna", CreatedAt: t0}, h("browser")))
	_, err = src.UseChallenge(ctx, h("challenge"), time.Now().Add(time.Hour))
	must(err)
	_, err = src.UseTOTPStep(ctx, "anna", 1000)
	must(err)
	_, err = src.AppendEvent(ctx, sluis.Event{Type: sluis.EventLoginSuccess, User: "anna", Source: "198.51.100.1", Outcome: sluis.OutcomeSuccess})
	must(err)
	_, err = src.UpdateCounter(ctx, "login:anna@198.51.100.1", time.Now(), func(c *sluis.Counter) bool {
		c.N, c.Last, c.Expires = 1, time.Now(), time.Now().Add(time.Hour)
		return true
	})
	must(err)
	_, err = src.AddShare(ctx, "tunnels/anna", "node-1", 1, 32, time.Now(), time.Now().Add(time.Minute))
	must(err)
	_, err = src.TryLease(ctx, "audit-checkpoints", "node-1", time.Minute)
	must(err)
	key, err := keys.LoadAuditKey(dataDir)
	must(err)
	must((&audit.Checkpointer{Store: src, Key: key}).Checkpoint(ctx))
	src.Close()
	// Every table of the SQLite store holds something, so the copy is
	// tried on all of them.
	raw, err := sql.Open("sqlite", dbPath)
	must(err)
	rows, err := raw.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations'`)
	must(err)
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for _, table := range tables {
		var n int
		must(raw.QueryRow(`SELECT count(*) FROM "` + table + `"`).Scan(&n))
		if n == 0 {
			t.Errorf("table %s of the source is empty; give it a row, so that the copy is tested on it", table)
		}
	}
	raw.Close()

	url := srv.NewDatabase(t)
	urlFile := filepath.Join(t.TempDir(), "db-url")
	must(os.WriteFile(urlFile, []byte(url+"\n"), 0o600))
	pgCfg := writeConfig(t, strings.Replace(goodConfig, "data_dir: ./data", "data_dir: "+dataDir+"\nstore: {postgres: {url_file: "+urlFile+"}}", 1))

	// Switched without copying: refused, saying how to copy.
	if r := runCLI("", "--config", pgCfg, "user", "list"); r.err == nil || !strings.Contains(r.err.Error(), "sluis store copy --from sqlite:"+dbPath) {
		t.Fatalf("an empty PostgreSQL store beside sluis.db: %v", r.err)
	}
	// Not while a gateway runs on the source.
	unlock, err := datadir.Lock(dataDir)
	must(err)
	if r := runCLI("", "store", "copy", "--from", "sqlite:"+dbPath, "--to-file", urlFile); r.err == nil || !strings.Contains(r.err.Error(), "in use") {
		t.Fatalf("copy from a data_dir in use: %v", r.err)
	}
	unlock()
	if r := runCLI("", "store", "copy", "--from", "sqlite:"+filepath.Join(dataDir, "nope.db"), "--to-file", urlFile); r.err == nil {
		t.Fatal("copied a database that does not exist")
	}

	r := runCLI("", "store", "copy", "--from", "sqlite:"+dbPath, "--to", url)
	if r.err != nil {
		t.Fatalf("store copy: %v\n%s%s", r.err, r.out, r.errOut)
	}
	if !strings.Contains(r.out, "chained as in the source") || !regexp.MustCompile(`\n  users +2 rows\n`).MatchString(r.out) || strings.Contains(r.out, srv.Password) {
		t.Fatalf("store copy printed:\n%s", r.out)
	}
	// Once only: the target is no longer empty.
	if r := runCLI("", "store", "copy", "--from", "sqlite:"+dbPath, "--to-file", urlFile); r.err == nil || !strings.Contains(r.err.Error(), "not empty") {
		t.Fatalf("a second copy into the same database: %v", r.err)
	}
	if r := runCLI("", "--config", pgCfg, "audit", "verify"); r.err != nil || !strings.HasPrefix(r.out, "intact, ") || !strings.Contains(r.out, "last checkpoint") {
		t.Fatalf("audit verify on the copy: %v\n%s%s", r.err, r.out, r.errOut)
	}

	// The copy reads back as the source.
	src, err = sqlite.Open(ctx, dbPath)
	must(err)
	defer src.Close()
	dst, err := postgres.Open(ctx, url)
	must(err)
	defer dst.Close()
	same := func(what string, get func(sluis.Store) (any, error)) {
		t.Helper()
		a, errA := get(src)
		b, errB := get(dst)
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: source %+v (%v), copy %+v (%v)", what, a, errA, b, errB)
		}
	}
	same("users", func(s sluis.Store) (any, error) { return s.Users(ctx) })
	same("sessions", func(s sluis.Store) (any, error) { return s.Sessions(ctx) })
	same("session by token", func(s sluis.Store) (any, error) { return s.SessionByToken(ctx, h("wiki-token"), "wiki.test") })
	same("session hosts", func(s sluis.Store) (any, error) { return s.SessionHosts(ctx, "s1") })
	same("passkeys", func(s sluis.Store) (any, error) { return s.Passkeys(ctx, "anna") })
	same("passkey handle", func(s sluis.Store) (any, error) { return s.PasskeyHandle(ctx, "anna", false) })
	same("recovery codes", func(s sluis.Store) (any, error) { return s.RecoveryCodesLeft(ctx, "anna") })
	same("blocks", func(s sluis.Store) (any, error) { return s.Blocks(ctx) })
	same("disabled apps", func(s sluis.Store) (any, error) { return s.DisabledApps(ctx) })
	same("emergency", func(s sluis.Store) (any, error) { return s.Emergency(ctx) })
	same("device grant", func(s sluis.Store) (any, error) { return s.DeviceGrantByUserCode(ctx, "BCDF-GHJK", time.Now()) })
	same("known browser", func(s sluis.Store) (any, error) { return s.KnownBrowser(ctx, h("browser")) })
	same("events", func(s sluis.Store) (any, error) {
		evs, err := s.Events(ctx, time.Time{})
		for i := range evs {
			if len(evs[i].PrevHash) == 0 {
				evs[i].PrevHash = nil // the first event's: empty, nil or not
			}
		}
		return evs, err
	})
	same("checkpoints", func(s sluis.Store) (any, error) { return s.Checkpoints(ctx) })
	// Spent things stay spent; the unspent work.
	if ok, _, _ := dst.UseRecoveryCode(ctx, "anna", h("r1"), t0); ok {
		t.Error("a used recovery code works on the copy")
	}
	if ok, _ := dst.UseChallenge(ctx, h("challenge"), time.Now().Add(time.Hour)); ok {
		t.Error("a spent WebAuthn challenge is fresh on the copy")
	}
	if ok, _ := dst.UseTOTPStep(ctx, "anna", 1000); ok {
		t.Error("a used TOTP step works on the copy")
	}
	if id, path, _, err := dst.RedeemGrant(ctx, h("code"), "wiki.test", time.Now()); err != nil || id != "s1" || path != "/page" {
		t.Errorf("the grant on the copy: %q %q %v", id, path, err)
	}
	srcRev, _ := src.Revision(ctx)
	if dstRev, _ := dst.Revision(ctx); dstRev <= srcRev {
		t.Errorf("revision %d on the copy, %d on the source", dstRev, srcRev)
	}
	// The next event chains on, and the next checkpoint is numbered on.
	if _, err := dst.AppendEvent(ctx, sluis.Event{Type: "test"}); err != nil {
		t.Fatal(err)
	}
	must((&audit.Checkpointer{Store: dst, Key: key}).Checkpoint(ctx))
	if r := runCLI("", "--config", pgCfg, "audit", "verify"); r.err != nil {
		t.Fatalf("audit verify after an event more: %v\n%s", r.err, r.out)
	}
	if r := runCLI("", "--config", pgCfg, "user", "list"); r.err != nil || !strings.Contains(r.out, "anna") || !strings.Contains(r.out, "bert") {
		t.Fatalf("user list on PostgreSQL: %v\n%s", r.err, r.out)
	}
}
