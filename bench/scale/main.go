// Command scale measures how sluis's store-bound work grows with the size
// of what the store holds: a small store (100 live sessions, 10,000 audit
// events) is the baseline, and a large one (100,000 sessions, 1,000,000
// events) is measured against it in the same run, on the same kind of
// database (SQLite in a temp dir, as `sluis serve` opens it).
//
// Figures, each for both sizes and as a ratio large/small:
//   - session lookup (session.Service.Lookup of a token never seen
//     before, so the store is asked, and of one seen before, from the
//     cache): p50 and p99;
//   - `sluis session list` (every session, printed): wall time;
//   - `sluis audit --since 1h`, where both stores hold the same 1,000
//     events of the last hour and differ in the older ones: wall time;
//   - `sluis audit verify` of the whole chain: events per second.
//
// What should hold: lookups flat (an index on the token's hash), audit
// --since 1h flat (an index on time), session list and verify linear in
// what they read, with the same rate per item.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/scale [-sessions 100000] [-events 1000000] [-lookups 2000]
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

const (
	portalHost = "login.bench.test"
	appHost    = "wiki.bench.test"
	// recent is how many events both stores hold from the last hour.
	recent = 1000
)

type size struct {
	name             string
	sessions, events int
}

type figures struct {
	coldP50, coldP99, warmP50, warmP99 time.Duration
	sessionList, auditSince            time.Duration
	verifyRate                         float64 // events per second
	seed                               time.Duration
}

func main() {
	sessions := flag.Int("sessions", 100_000, "live sessions in the large store")
	events := flag.Int("events", 1_000_000, "audit events in the large store")
	lookups := flag.Int("lookups", 2000, "session lookups measured per size")
	flag.Parse()
	sizes := []size{{"small", 100, 10_000}, {"large", *sessions, *events}}
	fmt.Printf("bench/scale: SQLite, %d cores; small = %d sessions, %d events; large = %d sessions, %d events\n",
		runtime.NumCPU(), sizes[0].sessions, sizes[0].events, sizes[1].sessions, sizes[1].events)
	var out []figures
	for _, sz := range sizes {
		f, err := measure(sz, *lookups)
		if err != nil {
			log.Fatalf("%s: %v", sz.name, err)
		}
		fmt.Printf("%-5s seeded in %s\n", sz.name, f.seed.Round(time.Millisecond))
		out = append(out, f)
	}
	s, l := out[0], out[1]
	row := func(name string, a, b time.Duration) {
		fmt.Printf("%-32s %12s %12s %8.2f\n", name, a.Round(time.Microsecond), b.Round(time.Microsecond), float64(b)/float64(a))
	}
	fmt.Printf("%-32s %12s %12s %8s\n", "", "small", "large", "large/small")
	row("session lookup, store, p50", s.coldP50, l.coldP50)
	row("session lookup, store, p99", s.coldP99, l.coldP99)
	row("session lookup, cached, p50", s.warmP50, l.warmP50)
	row("session lookup, cached, p99", s.warmP99, l.warmP99)
	row("sluis session list", s.sessionList, l.sessionList)
	row("sluis audit --since 1h", s.auditSince, l.auditSince)
	fmt.Printf("%-32s %12.0f %12.0f %8.2f   (events/s)\n", "sluis audit verify", s.verifyRate, l.verifyRate, l.verifyRate/s.verifyRate)
	perSession := func(f figures, n int) float64 { return float64(f.sessionList) / float64(n) }
	fmt.Printf("%-32s %12s %12s %8.2f   (per session listed)\n", "sluis session list / session", "", "", perSession(l, sizes[1].sessions)/perSession(s, sizes[0].sessions))
}

func measure(sz size, lookups int) (figures, error) {
	var f figures
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluis-bench-scale-")
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "sluis.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
portal: %s
data_dir: %s
tls: {self_signed: true}
apps:
  - name: wiki
    host: %s
    upstream: http://127.0.0.1:1
    allow: {groups: [staff], mfa: true}
`, portalHost, data, appHost)), 0o600); err != nil {
		return f, err
	}
	sluisCLI := func(stdin string, args ...string) (time.Duration, error) {
		var out bytes.Buffer
		start := time.Now()
		err := cli.Run(ctx, append([]string{"sluis", "--config", cfg}, args...), func(string) string { return "" }, strings.NewReader(stdin), io.Discard, &out)
		took := time.Since(start)
		if err != nil {
			return took, fmt.Errorf("sluis %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return took, nil
	}
	if _, err := sluisCLI("bench password 1\n", "user", "add", "bench", "--groups", "staff", "--password-stdin"); err != nil {
		return f, err
	}
	start := time.Now()
	tokens, err := seed(ctx, filepath.Join(data, "sluis.db"), sz)
	if err != nil {
		return f, err
	}
	f.seed = time.Since(start)

	st, err := sqlite.Open(ctx, filepath.Join(data, "sluis.db"))
	if err != nil {
		return f, err
	}
	svc := &session.Service{Store: st, IdleTimeout: 24 * time.Hour}
	pick := rand.Perm(len(tokens))
	if len(pick) > lookups {
		pick = pick[:lookups]
	}
	var cold, warm []time.Duration
	for pass := range 2 {
		for _, i := range pick {
			t0 := time.Now()
			if _, err := svc.Lookup(ctx, tokens[i], appHost); err != nil {
				st.Close()
				return f, fmt.Errorf("lookup: %w", err)
			}
			if pass == 0 {
				cold = append(cold, time.Since(t0))
			} else {
				warm = append(warm, time.Since(t0))
			}
		}
	}
	st.Close()
	f.coldP50, f.coldP99 = quantile(cold, 0.50), quantile(cold, 0.99)
	f.warmP50, f.warmP99 = quantile(warm, 0.50), quantile(warm, 0.99)

	if f.sessionList, err = sluisCLI("", "session", "list"); err != nil {
		return f, err
	}
	if f.auditSince, err = sluisCLI("", "audit", "--since", "1h"); err != nil {
		return f, err
	}
	took, err := sluisCLI("", "audit", "verify")
	if err != nil {
		return f, err
	}
	f.verifyRate = float64(sz.events) / took.Seconds()
	return f, nil
}

// seed fills the database at path with sz's sessions (each with a token
// on the app's host) and events: recent of them in the last hour, the
// rest spread over the 90 days before. Sessions go in by SQL, many to a
// transaction (one by one, every commit flushed, would take longer than
// the measurements); events through the store, so that the chain is
// the store's own and verifies.
func seed(ctx context.Context, path string, sz size) (tokens []string, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	now := time.Now()
	const batch = 5000
	for i := 0; i < sz.sessions; i += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		for j := i; j < min(i+batch, sz.sessions); j++ {
			tok, hash := session.NewToken()
			id := session.NewID()
			at := now.Add(-time.Duration(j%3600) * time.Second)
			if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, user, stage, created_at, last_seen, expires_at, mfa_at, mfa_method, source, user_agent, enroll_secret, parent_id)
				VALUES (?, 'bench', ?, ?, ?, ?, ?, ?, '127.0.0.1', 'bench', NULL, '')`,
				id, sluis.StageComplete, at.UnixNano(), at.UnixNano(), now.Add(8*time.Hour).UnixNano(), at.UnixNano(), sluis.FactorTOTP); err != nil {
				tx.Rollback()
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES (?, ?, ?)`, hash[:], id, appHost); err != nil {
				tx.Rollback()
				return nil, err
			}
			tokens = append(tokens, tok)
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
	}
	db.Close()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	old := sz.events - recent
	span := 90 * 24 * time.Hour
	types := []string{"login.success", "login.failure", "access.denied", "security.probe", "session.revoked"}
	for i := 0; i < sz.events; i += batch {
		var es []sluis.Event
		for j := i; j < min(i+batch, sz.events); j++ {
			var at time.Time
			if j < old {
				at = now.Add(-time.Hour - span + time.Duration(float64(span)*float64(j)/float64(old)))
			} else {
				at = now.Add(-time.Hour + time.Duration(j-old)*time.Hour/time.Duration(recent+1))
			}
			es = append(es, sluis.Event{Time: at.UTC(), Type: types[j%len(types)], User: fmt.Sprintf("user%d", j%500), Source: "192.0.2.7",
				App: "wiki", Outcome: sluis.OutcomeSuccess, Detail: "bench event"})
		}
		if _, err := st.AppendEvents(ctx, es); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
