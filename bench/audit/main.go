// Command audit measures what the tamper-evident chain costs: audit events
// appended per second through the store with the chain (each append reads
// the last event, numbers the new one after it and hashes it with SHA-256
// over the previous hash), against the same rows inserted without the
// chain (no read of the last event, no hash), on the same kind of database
// with the same settings (WAL, synchronous FULL, one transaction an event),
// in interleaved rounds of one run. With -store postgres the same is
// measured on PostgreSQL (Debian's, started for the run on loopback, every
// commit flushed to disk as in production), where appends from all
// writers queue on the chain's head row. With -store postgres -nodes 2 it
// measures instead appends from one node against appends from two nodes
// (two pools on one database, as two gateways are), each node with its own
// recorder and a checkpointer under a lease (package lease) signing every
// second; the trail, with its checkpoints, must verify at the end.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/audit [-d 3s] [-rounds 3] [-store sqlite|postgres] [-nodes 2]
package main

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/lease"
	"github.com/sluis-gateway/sluis/store/postgres"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func main() {
	d := flag.Duration("d", 3*time.Second, "duration of each measurement")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	store := flag.String("store", "sqlite", "sqlite, or postgres (started for the run)")
	nodes := flag.Int("nodes", 1, "2: one node against two on one database (with -store postgres)")
	flag.Parse()
	var err error
	switch {
	case *nodes == 2 && *store == "postgres":
		err = runNodes(*d, *rounds)
	case *nodes == 1:
		err = run(*d, *rounds, *store)
	default:
		err = fmt.Errorf("-nodes %d -store %s: -nodes 2 needs -store postgres", *nodes, *store)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// result is one measurement.
type result struct {
	events   int
	secs     float64
	p50, p99 time.Duration
}

func (r result) rate() float64 { return float64(r.events) / r.secs }

func event(i int) sluis.Event {
	return sluis.Event{Time: time.Now(), Type: "access.denied", User: "anna", Source: "203.0.113.7", App: "wiki", Outcome: "denied",
		Detail: fmt.Sprintf("GET /projects/%d: not in group hr (count 1)", i)}
}

// measure runs append from workers goroutines for d.
func measure(workers int, d time.Duration, appendOne func(i int) error) (result, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t := time.Now()
				if err := appendOne(w*1_000_000 + i); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if firstErr != nil {
		return result{}, firstErr
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{events: len(lat), secs: secs}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r, nil
}

// chainedStore is what the benchmark appends to with the chain.
type chainedStore interface {
	sluis.AuditStore
	Close() error
}

func run(d time.Duration, rounds int, store string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluis-bench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var chained chainedStore
	var insertPlain func(e sluis.Event) error
	var settings string
	switch store {
	case "sqlite":
		chained, insertPlain, err = openSQLite(ctx, dir)
		settings = "SQLite WAL, synchronous FULL, one transaction an event"
	case "postgres":
		srv, err := pgtest.Run(dir, pgtest.Durable...)
		if err != nil {
			return err
		}
		defer srv.Stop()
		chained, insertPlain, err = openPostgres(ctx, srv)
		if err != nil {
			return err
		}
		settings = "PostgreSQL on loopback, fsync on, synchronous_commit on, one transaction an event"
	default:
		return fmt.Errorf("-store %q: want sqlite or postgres", store)
	}
	if err != nil {
		return err
	}
	defer chained.Close()

	rec := &audit.Recorder{Store: chained, Log: slog.New(slog.DiscardHandler)}
	modes := []struct {
		name string
		fn   func(i int) error
	}{
		{"without chain", func(i int) error { return insertPlain(event(i)) }},
		{"with chain", func(i int) error {
			_, err := chained.AppendEvent(ctx, event(i))
			return err
		}},
		// The gateway's path: the Recorder, which writes events recorded
		// at the same time in one transaction (group commit).
		{"recorder", func(i int) error {
			rec.Record(ctx, event(i))
			return nil
		}},
	}
	fmt.Printf("bench/audit: %d rounds of %s per measurement; %s\n", rounds, d, settings)
	for _, workers := range []int{1, 8} {
		got := map[string][]result{}
		for r := 1; r <= rounds; r++ {
			for _, m := range modes {
				res, err := measure(workers, d, m.fn)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				got[m.name] = append(got[m.name], res)
				fmt.Printf("  %d writer(s), round %d, %-13s %8.0f events/s  p50 %-9s p99 %s\n", workers, r, m.name, res.rate(), res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond))
			}
		}
		off, on, rc := median(got["without chain"]), median(got["with chain"]), median(got["recorder"])
		fmt.Printf("%d writer(s): with chain %.0f events/s, without %.0f events/s: ratio %.2f; through the recorder (group commit) %.0f events/s: ratio %.2f\n\n",
			workers, on.rate(), off.rate(), on.rate()/off.rate(), rc.rate(), rc.rate()/off.rate())
	}

	// The chained trail must verify, or the figure means nothing.
	events, err := chained.Events(ctx, time.Time{})
	if err != nil {
		return err
	}
	if err := audit.Verify(events); err != nil {
		return fmt.Errorf("the benchmark's own trail does not verify: %w", err)
	}
	fmt.Printf("the chained trail of %d events verifies\n", len(events))
	return nil
}

// openSQLite opens the chained store and, as the baseline, a database of
// the same schema and settings with rows inserted as they would be without
// a chain.
func openSQLite(ctx context.Context, dir string) (chainedStore, func(sluis.Event) error, error) {
	chained, err := sqlite.Open(ctx, filepath.Join(dir, "chain.db"))
	if err != nil {
		return nil, nil, err
	}
	plainPath := filepath.Join(dir, "plain.db")
	st, err := sqlite.Open(ctx, plainPath)
	if err != nil {
		return nil, nil, err
	}
	st.Close()
	plain, err := sql.Open("sqlite", "file:"+plainPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return nil, nil, err
	}
	plain.SetMaxOpenConns(8)
	insert := func(e sluis.Event) error {
		tx, err := plain.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit_events (time, type, user, source, app, outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, x'', x'')`,
			e.Time.UnixNano(), e.Type, e.User, e.Source, e.App, e.Outcome, e.Detail)
		if err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	return closeBoth{chained, plain}, insert, nil
}

// openPostgres is openSQLite on two databases of one PostgreSQL server;
// the baseline numbers its rows from a sequence, without the head row.
func openPostgres(ctx context.Context, srv *pgtest.Server) (chainedStore, func(sluis.Event) error, error) {
	chainURL, err := srv.CreateDatabase(ctx)
	if err != nil {
		return nil, nil, err
	}
	plainURL, err := srv.CreateDatabase(ctx)
	if err != nil {
		return nil, nil, err
	}
	chained, err := postgres.Open(ctx, chainURL)
	if err != nil {
		return nil, nil, err
	}
	st, err := postgres.Open(ctx, plainURL)
	if err != nil {
		return nil, nil, err
	}
	st.Close()
	plain, err := pgxpool.New(ctx, plainURL)
	if err != nil {
		return nil, nil, err
	}
	if _, err := plain.Exec(ctx, `CREATE SEQUENCE bench_ids`); err != nil {
		return nil, nil, err
	}
	insert := func(e sluis.Event) error {
		_, err := plain.Exec(ctx, `INSERT INTO audit_events (id, time, type, user_name, source, app, outcome, detail) VALUES (nextval('bench_ids'), $1, $2, $3, $4, $5, $6, $7)`,
			e.Time.UnixNano(), e.Type, e.User, e.Source, e.App, e.Outcome, e.Detail)
		return err
	}
	return closeBoth{chained, closer(plain.Close)}, insert, nil
}

// closeBoth is a chained store that closes its baseline with it.
type closeBoth struct {
	chainedStore
	other interface{ Close() error }
}

func (c closeBoth) Close() error {
	c.other.Close()
	return c.chainedStore.Close()
}

type closer func()

func (f closer) Close() error { f(); return nil }

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate() < rs[j].rate() })
	return rs[len(rs)/2]
}

// runNodes measures appends to one chain from one node and from two,
// while the node holding the checkpoint lease signs every second.
func runNodes(d time.Duration, rounds int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluis-bench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := pgtest.Run(dir, pgtest.Durable...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		return err
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var nodes []*postgres.DB
	var recs []*audit.Recorder
	for n := range 2 {
		db, err := postgres.Open(ctx, url)
		if err != nil {
			return err
		}
		defer db.Close()
		nodes = append(nodes, db)
		recs = append(recs, &audit.Recorder{Store: db, Log: slog.New(slog.DiscardHandler)})
		l := &lease.Lease{Store: db, Name: lease.AuditCheckpoints, Holder: fmt.Sprintf("node-%d", n+1)}
		cp := &audit.Checkpointer{Store: db, Key: key, Held: l.Held}
		wg.Go(func() { l.Run(bg) })
		wg.Go(func() { cp.Run(bg, time.Second, slog.New(slog.DiscardHandler)) })
	}
	fmt.Printf("bench/audit -nodes 2: %d rounds of %s per measurement; PostgreSQL on loopback, fsync on, synchronous_commit on; a checkpoint every second by the lease holder\n", rounds, d)
	// Worker w of measure appends through node w%nodes.
	through := func(nodeCount int, direct bool) func(i int) error {
		return func(i int) error {
			n := (i / 1_000_000) % nodeCount
			if direct {
				_, err := nodes[n].AppendEvent(ctx, event(i))
				return err
			}
			recs[n].Record(ctx, event(i))
			return nil
		}
	}
	for _, perNode := range []int{1, 8} {
		got := map[string][]result{}
		for r := 1; r <= rounds; r++ {
			for _, m := range []struct {
				name  string
				nodes int
				rec   bool
			}{{"1 node", 1, false}, {"2 nodes", 2, false}, {"1 node rec", 1, true}, {"2 nodes rec", 2, true}} {
				res, err := measure(perNode*m.nodes, d, through(m.nodes, !m.rec))
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				got[m.name] = append(got[m.name], res)
				fmt.Printf("  %d writer(s) a node, round %d, %-12s %8.0f events/s  p50 %-9s p99 %s\n", perNode, r, m.name, res.rate(), res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond))
			}
		}
		one, two := median(got["1 node"]), median(got["2 nodes"])
		oneR, twoR := median(got["1 node rec"]), median(got["2 nodes rec"])
		fmt.Printf("%d writer(s) a node, each event its own transaction: one node %.0f events/s, two nodes %.0f events/s: ratio %.2f\n", perNode, one.rate(), two.rate(), two.rate()/one.rate())
		fmt.Printf("%d writer(s) a node, through each node's recorder (group commit): one node %.0f events/s, two nodes %.0f events/s: ratio %.2f\n\n", perNode, oneR.rate(), twoR.rate(), twoR.rate()/oneR.rate())
	}
	stop()
	wg.Wait()
	events, err := nodes[0].Events(ctx, time.Time{})
	if err != nil {
		return err
	}
	cps, err := nodes[0].Checkpoints(ctx)
	if err != nil {
		return err
	}
	rep, err := audit.VerifyTrail(events, cps, pub)
	if err != nil {
		return fmt.Errorf("the trail two nodes wrote does not verify: %w", err)
	}
	fmt.Printf("the trail two nodes wrote, %d events, is one chain and verifies against its %d signed checkpoints (%d events after the last)\n", rep.Events, len(cps), rep.AfterCheckpoint)
	return nil
}
