package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/store/sqlite"
	"github.com/sluis-gateway/sluis/store/storetest"
	driver "modernc.org/sqlite"
)

func open(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sluis.Store {
		return open(t, filepath.Join(t.TempDir(), "sluis.db"))
	})
}

// The CLI and the gateway are separate processes with separate connections:
// a change made through one must show in the other's Revision at once.
func TestRevisionSeesOtherConnections(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluis.db")
	server, cli := open(t, path), open(t, path)
	if err := cli.CreateUser(ctx, sluis.User{Name: "anna"}); err != nil {
		t.Fatal(err)
	}
	before, err := server.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.SetDisabled(ctx, "anna", true); err != nil {
		t.Fatal(err)
	}
	after, err := server.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatal("revision did not change after another connection's commit")
	}
	// Reopening migrates nothing twice and keeps data.
	again := open(t, path)
	if u, err := again.User(ctx, "anna"); err != nil || !u.Disabled {
		t.Fatalf("reopened: %+v %v", u, err)
	}
}

func BenchmarkRevision(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "sluis.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Revision(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// Ready: a migrated database is ready; one missing a migration this
// binary knows, or closed, is not, and says why.
func TestReady(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluis.db")
	db := open(t, path)
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("a migrated database: %v", err)
	}
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DELETE FROM schema_migrations WHERE name = (SELECT max(name) FROM schema_migrations)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err == nil || !strings.Contains(err.Error(), "has not been applied") {
		t.Fatalf("a database missing a migration: %v", err)
	}
	db.Close()
	if err := db.Ready(ctx); err == nil {
		t.Fatal("a closed database is ready")
	}
}

// The console's audit queries on a trail of 1,000,000 events (see
// storetest.BenchAudit; run with -benchtime=20x).
func BenchmarkAuditSearch(b *testing.B) {
	storetest.BenchAudit(b, open(b, filepath.Join(b.TempDir(), "sluis.db")))
}

// Commits are synced with fdatasync on Linux (see the package's init): a
// tunnel's setup waits for one.
func TestCommitsSyncWithFdatasync(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("fdatasync is chosen where the driver offers it; checked on Linux")
	}
	if !driver.FdatasyncEnabled() {
		t.Fatal("the store syncs its commits with fsync, not fdatasync")
	}
}
