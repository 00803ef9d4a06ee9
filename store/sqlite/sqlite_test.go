package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/store/sqlite"
	"github.com/sluis-gateway/sluis/store/storetest"
)

func open(t *testing.T, path string) *sqlite.DB {
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

// benchTrail is a store with SLUIS_BENCH_EVENTS audit events (default
// 1,000,000) over the 30 days before benchEnd, built once per run: the
// mix of a busy gateway (logins, failures, denials with error IDs, probes,
// blocks) by 1,000 users from 5,000 addresses on 20 apps.
var (
	benchOnce sync.Once
	benchDB   *sqlite.DB
	benchErr  error
	benchEnd  = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
)

func benchStore(b *testing.B) *sqlite.DB {
	benchOnce.Do(func() {
		n := 1_000_000
		if v, err := strconv.Atoi(os.Getenv("SLUIS_BENCH_EVENTS")); err == nil && v > 0 {
			n = v
		}
		dir, err := os.MkdirTemp("", "sluis-bench-audit-")
		if err != nil {
			benchErr = err
			return
		}
		benchDB, benchErr = sqlite.Open(context.Background(), filepath.Join(dir, "sluis.db"))
		if benchErr != nil {
			return
		}
		types := []string{sluis.EventLoginSuccess, sluis.EventLoginSuccess, sluis.EventLoginFailure, sluis.EventMFASuccess, sluis.EventMFASuccess,
			sluis.EventAccessDenied, "security.probe", "security.probe", "security.blocked", sluis.EventTunnelOpen}
		start, step := benchEnd.Add(-30*24*time.Hour), 30*24*time.Hour/time.Duration(n)
		const batch = 10000
		for i := 0; i < n; i += batch {
			es := make([]sluis.Event, 0, batch)
			for j := i; j < min(i+batch, n); j++ {
				e := sluis.Event{Time: start.Add(time.Duration(j) * step), Type: types[j%len(types)], User: fmt.Sprintf("user%d", j%1000),
					Source: fmt.Sprintf("198.51.%d.%d", j%5000/250, j%250), App: fmt.Sprintf("app%d", j%20), Outcome: sluis.OutcomeSuccess}
				if e.Type == sluis.EventAccessDenied {
					e.Detail = fmt.Sprintf("rule 1: needs a passkey; error ID %012x", j)
				}
				es = append(es, e)
			}
			if _, benchErr = benchDB.AppendEvents(context.Background(), es); benchErr != nil {
				return
			}
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDB
}

// The console's audit queries on a large trail: each page and count must
// stay well under the time of a page render (run with -benchtime=20x).
func BenchmarkAuditSearch(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	deep := benchEnd.Add(-20 * 24 * time.Hour)
	var mid int64
	if p, err := st.SearchEvents(ctx, sluis.AuditQuery{Until: deep, Limit: 1}); err != nil || len(p.Events) == 0 {
		b.Fatal(p, err)
	} else {
		mid = p.Events[0].ID
	}
	for _, bb := range []struct {
		name string
		q    sluis.AuditQuery
	}{
		{"newest", sluis.AuditQuery{}},
		{"page-from-cursor", sluis.AuditQuery{Before: mid}},
		{"user", sluis.AuditQuery{User: "user7"}},
		{"type", sluis.AuditQuery{Type: sluis.EventLoginFailure}},
		{"app-and-period", sluis.AuditQuery{App: "app3", Since: deep.Add(-time.Hour), Until: deep}},
		{"source", sluis.AuditQuery{Source: "198.51.3.7"}},
		{"error-id-last-24h", sluis.AuditQuery{ErrorID: "0000000f41fb", Since: benchEnd.Add(-24 * time.Hour)}},
		{"error-id-whole-trail", sluis.AuditQuery{ErrorID: "0000000f41fb"}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := st.SearchEvents(ctx, bb.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("count-logins-last-hour", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.CountEvents(ctx, []string{sluis.EventLoginSuccess, sluis.EventLoginFailure}, benchEnd.Add(-time.Hour), benchEnd, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("count-probes-per-hour-24h", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.CountEvents(ctx, []string{"security.probe", "security.blocked"}, benchEnd.Add(-24*time.Hour), benchEnd, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}
