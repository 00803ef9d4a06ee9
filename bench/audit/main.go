// Command audit measures what the tamper-evident chain costs: audit events
// appended per second through the store with the chain (each append reads
// the last event, numbers the new one after it and hashes it with SHA-256
// over the previous hash), against the same rows inserted without the
// chain (no read of the last event, no hash), on the same kind of database
// with the same settings (WAL, synchronous FULL, one transaction an event),
// in interleaved rounds of one run.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/audit [-d 3s] [-rounds 3]
package main

import (
	"context"
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

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func main() {
	d := flag.Duration("d", 3*time.Second, "duration of each measurement")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	flag.Parse()
	if err := run(*d, *rounds); err != nil {
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

func run(d time.Duration, rounds int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluis-bench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	chained, err := sqlite.Open(ctx, filepath.Join(dir, "chain.db"))
	if err != nil {
		return err
	}
	defer chained.Close()
	// The baseline: the same schema and settings, rows inserted as they
	// would be without a chain.
	plainPath := filepath.Join(dir, "plain.db")
	st, err := sqlite.Open(ctx, plainPath)
	if err != nil {
		return err
	}
	st.Close()
	plain, err := sql.Open("sqlite", "file:"+plainPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer plain.Close()
	plain.SetMaxOpenConns(8)

	rec := &audit.Recorder{Store: chained, Log: slog.New(slog.DiscardHandler)}
	modes := []struct {
		name string
		fn   func(i int) error
	}{
		{"without chain", func(i int) error {
			e := event(i)
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
		}},
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
	fmt.Printf("bench/audit: %d rounds of %s per measurement; SQLite WAL, synchronous FULL, one transaction an event\n", rounds, d)
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

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate() < rs[j].rate() })
	return rs[len(rs)/2]
}
