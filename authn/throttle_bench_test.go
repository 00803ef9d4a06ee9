package authn

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/store/postgres"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// What one throttle check costs (a Begin that counts, as each guess
// does three times): in memory (one node), on SQLite, and on PostgreSQL
// (several nodes; loopback, fsync off as in tests, and with every commit
// flushed as in production).
func BenchmarkThrottleBegin(b *testing.B) {
	stores := []struct {
		name  string
		store func(b *testing.B) sluis.CounterStore
	}{
		{"memory", func(*testing.B) sluis.CounterStore { return nil }},
		{"sqlite", func(b *testing.B) sluis.CounterStore {
			db, err := sqlite.Open(bg, filepath.Join(b.TempDir(), "s.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return db
		}},
		{"postgres", func(b *testing.B) sluis.CounterStore {
			srv := pgtest.Start(b)
			db, err := postgres.Open(bg, srv.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return db
		}},
		// Commits flushed to disk as in production: the counters'
		// commits do not wait for the flush (synchronous_commit off).
		{"postgres-durable", func(b *testing.B) sluis.CounterStore {
			dir, err := os.MkdirTemp("", "sluis-bench-throttle-")
			if err != nil {
				b.Fatal(err)
			}
			srv, err := pgtest.Run(dir, pgtest.Durable...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.Stop(); os.RemoveAll(dir) })
			url, err := srv.CreateDatabase(bg)
			if err != nil {
				b.Fatal(err)
			}
			db, err := postgres.Open(bg, url)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return db
		}},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			th := &Throttle{Free: 1 << 30, Store: s.store(b), Name: "user-source"}
			i := 0
			for b.Loop() {
				// A thousand keys, as guesses from many users and
				// addresses: rows that exist and grow.
				if _, err := th.Begin(bg, fmt.Sprintf("login:user%d@198.51.100.%d", i%1000, i%250)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
