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
//   - `sluis audit verify` of the whole chain (with a signed checkpoint
//     every 10,000 events): events per second and the peak RSS of the
//     command, run as its own process (built with go build);
//   - `sluis audit export` of the whole trail: wall time and peak RSS.
//
// What should hold: lookups flat (an index on the token's hash), audit
// --since 1h flat (an index on time), session list, verify and export
// linear in what they read, with the same rate per item, and verify's and
// export's memory flat (they read the trail in batches).
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
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

const (
	portalHost = "login.bench.test"
	appHost    = "wiki.bench.test"
	// recent is how many events both stores hold from the last hour.
	recent = 1000
)

var keepDir string

type size struct {
	name             string
	sessions, events int
}

type figures struct {
	coldP50, coldP99, warmP50, warmP99 time.Duration
	sessionList, auditSince            time.Duration
	verifyRate                         float64 // events per second
	verifyRSS, exportRSS               int64   // peak RSS of the process, bytes
	export                             time.Duration
	seed                               time.Duration
}

func main() {
	sessions := flag.Int("sessions", 100_000, "live sessions in the large store")
	events := flag.Int("events", 1_000_000, "audit events in the large store")
	lookups := flag.Int("lookups", 2000, "session lookups measured per size")
	keep := flag.String("keep", "", "keep the large store's directory here (to look into it)")
	flag.Parse()
	keepDir = *keep
	bin, err := buildSluis()
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(bin))
	sizes := []size{{"small", 100, 10_000}, {"large", *sessions, *events}}
	fmt.Printf("bench/scale: SQLite, %d cores; small = %d sessions, %d events; large = %d sessions, %d events\n",
		runtime.NumCPU(), sizes[0].sessions, sizes[0].events, sizes[1].sessions, sizes[1].events)
	fmt.Printf("load at start: %s\n", loadavg())
	defer func() { fmt.Printf("load at end: %s\n", loadavg()) }()
	var out []figures
	for _, sz := range sizes {
		f, err := measure(sz, *lookups, bin)
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
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Printf("%-32s %12s %12s %8.2f\n", "sluis audit verify, peak RSS", mib(s.verifyRSS), mib(l.verifyRSS), float64(l.verifyRSS)/float64(s.verifyRSS))
	row("sluis audit export", s.export, l.export)
	fmt.Printf("%-32s %12s %12s %8.2f\n", "sluis audit export, peak RSS", mib(s.exportRSS), mib(l.exportRSS), float64(l.exportRSS)/float64(s.exportRSS))
	perSession := func(f figures, n int) float64 { return float64(f.sessionList) / float64(n) }
	fmt.Printf("%-32s %12s %12s %8.2f   (per session listed)\n", "sluis session list / session", "", "", perSession(l, sizes[1].sessions)/perSession(s, sizes[0].sessions))
}

func measure(sz size, lookups int, bin string) (figures, error) {
	var f figures
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluis-bench-scale-")
	if err != nil {
		return f, err
	}
	if keepDir != "" && sz.name == "large" {
		os.Remove(dir)
		dir = keepDir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return f, err
		}
	} else {
		defer os.RemoveAll(dir)
	}
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
	took, rss, err := child(bin, cfg, io.Discard, "audit", "verify")
	if err != nil {
		return f, err
	}
	f.verifyRate, f.verifyRSS = float64(sz.events)/took.Seconds(), rss
	if f.export, f.exportRSS, err = child(bin, cfg, io.Discard, "audit", "export"); err != nil {
		return f, err
	}
	return f, nil
}

// buildSluis builds the sluis command into a temp dir, to run the
// commands whose memory is measured as processes of their own.
func buildSluis() (string, error) {
	dir, err := os.MkdirTemp("", "sluis-bench-scale-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sluis")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/sluis").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// child runs `sluis --config cfg args...` and returns its wall time and
// its peak resident memory (VmHWM, read every 5 ms while it runs; the
// kernel's maxrss of a child counts the parent's memory from before the
// exec, so it is not used).
func child(bin, cfg string, stdout io.Writer, args ...string) (time.Duration, int64, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--config", cfg}, args...)...)
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			took := time.Since(start)
			if err != nil {
				return 0, 0, fmt.Errorf("sluis %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			return took, peak, nil
		case <-t.C:
			peak = max(peak, hwm(cmd.Process.Pid))
		}
	}
}

// hwm is a process's peak resident memory so far, in bytes (0 once it is
// gone).
func hwm(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
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
	key, err := keys.LoadAuditKey(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	// A checkpoint every 10,000 events: verify checks each, as the
	// gateway's (one a minute while events flow) would be.
	cps := &audit.Checkpointer{Store: st, Key: key}
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
		if (i+batch)%10_000 == 0 {
			if err := cps.Checkpoint(ctx); err != nil {
				return nil, err
			}
		}
	}
	return tokens, nil
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// loadavg is the machine's load (as uptime prints it), to read the
// figures by: the machine is shared.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
