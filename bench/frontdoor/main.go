// Command frontdoor measures what the front door and the session check
// cost the proxy. In one process it serves the same authenticated 1 KB GET
// two ways, each on its own TLS listener with the same settings: through
// the whole gateway handler (front door, probe check, session lookup,
// policy, proxy), and through the bare proxy with a session looked up once
// beforehand. wrk loads them in turn, interleaved, and the program prints
// requests/s, p50 and p99 of each and the ratio. The goal: the front door
// and the session check cost less than 10% of the throughput.
//
// A third listener serves the same gateway with only upgraded connections
// tracked (gateway.Options.TrackOnlyUpgrades), as sluis did before it
// tracked every request in flight; the ratio gateway/untracked is what
// that tracking costs. As throughput moves with whatever else the machine
// runs, the two are then also loaded in turn for the CPU time this process
// spends per request, which moves much less, and their handlers are
// measured in process (testing.Benchmark: time and allocations per
// request, without TLS or wrk). The gateways have their metrics, as
// sluis serve's has; in process the same gateway without them is
// measured too, for what counting costs.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/frontdoor [-d 10s] [-c 64] [-rounds 3]
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/bench/internal/wrk"
	"github.com/sluis-gateway/sluis/changes"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/metrics"
	"github.com/sluis-gateway/sluis/proxy"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

const (
	portalHost = "login.bench.test"
	appHost    = "wiki.bench.test"
)

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of each measurement")
	conns := flag.Int("c", 64, "connections")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	flag.Parse()
	if err := run(*dur, *conns, *rounds); err != nil {
		log.Fatal(err)
	}
}

func run(dur time.Duration, conns, rounds int) error {
	if err := wrk.Ensure("wrk", "wrk"); err != nil {
		return err
	}
	debug.SetGCPercent(400) // as sluis serve does
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "sluis-bench-frontdoor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	body := []byte(strings.Repeat("0123456789abcdef", 64))
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(upLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))

	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	untrackedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := gwLn.Addr().(*net.TCPAddr).Port
	c, err := config.Parse("(bench)", []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
portal: %s
data_dir: %s
tls: {self_signed: true}
apps:
  - name: wiki
    host: %s
    upstream: http://%s
    allow: {groups: [staff], mfa: true}
`, port, portalHost, dir, appHost, upLn.Addr())))
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sluis.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	watcher := &changes.Watcher{Source: st, DataDir: dir, Log: quiet}
	if err := watcher.Start(ctx); err != nil {
		return err
	}
	st.Changed = watcher.Changed
	sealer, err := keys.LoadSealer(dir)
	if err != nil {
		return err
	}
	sigKey, err := keys.LoadSigningKey(dir)
	if err != nil {
		return err
	}
	base := gateway.BaseURLFunc(port)
	signer, err := assertion.NewSigner(base(portalHost), sigKey, keys.KeyID(&sigKey.PublicKey))
	if err != nil {
		return err
	}
	cert, _, err := keys.SelfSigned(dir, []string{portalHost, appHost}, time.Now())
	if err != nil {
		return err
	}

	// A logged-in user with a session on the app host.
	now := time.Now()
	if err := st.CreateUser(ctx, sluis.User{Name: "bench", Groups: []string{"staff"}, CreatedAt: now}); err != nil {
		return err
	}
	tok, hash := session.NewToken()
	x := sluis.Session{ID: session.NewID(), User: "bench", Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(time.Hour), MFAAt: now}
	if err := st.CreateSession(ctx, x, hash[:], appHost); err != nil {
		return err
	}

	// Each gateway has its metrics, as sluis serve's has; the one
	// without is measured in process only, for what they cost.
	gw, err := gateway.New(ctx, gateway.Options{Config: c, Store: st, Sealer: sealer, Signer: signer, PublicPort: port,
		Log: quiet, Revision: watcher.Current, OnChange: watcher.OnChange, Metrics: metrics.New()})
	if err != nil {
		return err
	}
	untracked, err := gateway.New(ctx, gateway.Options{Config: c, Store: st, Sealer: sealer, Signer: signer, PublicPort: port,
		Log: quiet, Revision: watcher.Current, OnChange: watcher.OnChange, TrackOnlyUpgrades: true, Metrics: metrics.New()})
	if err != nil {
		return err
	}
	unmeasured, err := gateway.New(ctx, gateway.Options{Config: c, Store: st, Sealer: sealer, Signer: signer, PublicPort: port,
		Log: quiet, Revision: watcher.Current, OnChange: watcher.OnChange})
	if err != nil {
		return err
	}
	// The baseline: the same proxy, with the session looked up once.
	sessions := &session.Service{Store: st, IdleTimeout: time.Hour, Revision: watcher.Current}
	active, err := sessions.Lookup(ctx, tok, appHost)
	if err != nil {
		return err
	}
	app := gateway.Apps(c)[0]
	px, err := proxy.New(app, base(appHost), signer, proxy.NewTransport(), nil, quiet)
	if err != nil {
		return err
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { px.Serve(w, r, active) })

	serve := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10,
			ErrorLog: log.New(io.Discard, "", 0)}
		go srv.ServeTLS(ln, "", "")
		go func() { <-ctx.Done(); srv.Close() }()
	}
	serve(gwLn, gw)
	serve(bareLn, bare)
	serve(untrackedLn, untracked)

	headers := []string{"Host: " + appHost, "Cookie: " + session.CookieName + "=" + tok}
	targets := []wrk.Target{
		{Name: "bare", URL: fmt.Sprintf("https://%s/", bareLn.Addr()), Headers: headers},
		{Name: "gateway", URL: fmt.Sprintf("https://%s/", gwLn.Addr()), Headers: headers},
		{Name: "untracked", URL: fmt.Sprintf("https://%s/", untrackedLn.Addr()), Headers: headers},
	}
	// Both must answer with the upstream's body; the gateway also must
	// refuse the same request without the cookie.
	for _, t := range targets {
		if err := wrk.Check(t, http.StatusOK, len(body)); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	if err := wrk.Check(wrk.Target{Name: "gateway", URL: targets[1].URL, Headers: headers[:1]}, http.StatusUnauthorized, -1); err != nil {
		return fmt.Errorf("gateway without a session: %w", err)
	}

	fmt.Printf("bench/frontdoor: authenticated 1 KB GET, %d connections, %s per measurement, %d interleaved rounds, %d cores\n",
		conns, dur, rounds, runtime.NumCPU())
	runs, err := wrk.Interleave(targets, rounds, dur, conns)
	if err != nil {
		return err
	}
	ratio := runs.Ratio("gateway", "bare")
	fmt.Printf("ratio gateway/bare %.3f: the front door and the session check cost %.1f%% of the throughput (goal: under 10%%)\n",
		ratio, (1-ratio)*100)
	tracked := runs.Ratio("gateway", "untracked")
	fmt.Printf("ratio gateway/untracked %.3f: tracking every request in flight costs %.1f%% of the gateway's throughput\n",
		tracked, (1-tracked)*100)
	// Throughput moves with whatever else the machine runs; the CPU time
	// this process spends per request does much less.
	cpu, err := cpuPerRequest(targets[1:], rounds, dur, conns)
	if err != nil {
		return err
	}
	fmt.Printf("CPU per request (this process: gateway and upstream), median of %d rounds: gateway %v, untracked %v: tracking costs %.1f%%\n",
		rounds, cpu["gateway"], cpu["untracked"], (float64(cpu["gateway"])/float64(cpu["untracked"])-1)*100)
	// The handlers alone, one request at a time, without TLS or wrk:
	// exact allocations, and time with less of the machine's noise.
	inproc := map[string][]testing.BenchmarkResult{}
	for r := 1; r <= rounds; r++ {
		order := []string{"gateway", "untracked", "no metrics"}
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, name := range order {
			h := map[string]http.Handler{"gateway": gw, "untracked": untracked, "no metrics": unmeasured}[name]
			status := 0
			res := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				req := httptest.NewRequest("GET", "/", nil) // origin-form, as a client sends it
				req.Host = appHost
				req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
				req.RemoteAddr = "127.0.0.1:50000"
				req.Header.Set("Cookie", session.CookieName+"="+tok)
				for b.Loop() {
					// A server gives each request a cancellable context.
					ctx, cancel := context.WithCancel(context.Background())
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req.WithContext(ctx))
					cancel()
					status = w.Code
				}
			})
			if status != http.StatusOK {
				return fmt.Errorf("%s in process: status %d", name, status)
			}
			inproc[name] = append(inproc[name], res)
			fmt.Printf("  round %d %-10s in process: %v ns/op  %d B/op  %d allocs/op\n", r, name, res.NsPerOp(), res.AllocedBytesPerOp(), res.AllocsPerOp())
		}
	}
	median := func(rs []testing.BenchmarkResult) testing.BenchmarkResult {
		rs = slices.Clone(rs)
		slices.SortFunc(rs, func(a, b testing.BenchmarkResult) int { return int(a.NsPerOp() - b.NsPerOp()) })
		return rs[len(rs)/2]
	}
	g, u := median(inproc["gateway"]), median(inproc["untracked"])
	fmt.Printf("in process, median of %d rounds: gateway %d ns/op %d B/op %d allocs/op, untracked %d ns/op %d B/op %d allocs/op: tracking costs %d ns (%.1f%%), %d B and %d allocations per request\n",
		rounds, g.NsPerOp(), g.AllocedBytesPerOp(), g.AllocsPerOp(), u.NsPerOp(), u.AllocedBytesPerOp(), u.AllocsPerOp(),
		g.NsPerOp()-u.NsPerOp(), (float64(g.NsPerOp())/float64(u.NsPerOp())-1)*100, g.AllocedBytesPerOp()-u.AllocedBytesPerOp(), g.AllocsPerOp()-u.AllocsPerOp())
	n := median(inproc["no metrics"])
	fmt.Printf("in process, median of %d rounds: without metrics %d ns/op %d B/op %d allocs/op: the metrics cost %d ns (%.1f%%), %d B and %d allocations per request\n",
		rounds, n.NsPerOp(), n.AllocedBytesPerOp(), n.AllocsPerOp(),
		g.NsPerOp()-n.NsPerOp(), (float64(g.NsPerOp())/float64(n.NsPerOp())-1)*100, g.AllocedBytesPerOp()-n.AllocedBytesPerOp(), g.AllocsPerOp()-n.AllocsPerOp())
	return nil
}

// cpuPerRequest loads each target in turn, rounds times (every other
// round in reverse order), and returns for each the median over rounds of
// the CPU time this process spent per request served.
func cpuPerRequest(targets []wrk.Target, rounds int, dur time.Duration, conns int) (map[string]time.Duration, error) {
	per := map[string][]time.Duration{}
	for r := 1; r <= rounds; r++ {
		order := slices.Clone(targets)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, t := range order {
			before := selfCPU()
			res, err := wrk.Run(t, dur, conns)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.Name, err)
			}
			n := res.RPS * dur.Seconds()
			if n == 0 {
				return nil, fmt.Errorf("%s: no requests", t.Name)
			}
			d := time.Duration(float64(selfCPU()-before) / n)
			per[t.Name] = append(per[t.Name], d)
			fmt.Printf("  round %d %-9s %9.0f req/s  CPU %v per request\n", r, t.Name, res.RPS, d.Round(time.Microsecond/10))
		}
	}
	out := map[string]time.Duration{}
	for name, ds := range per {
		slices.Sort(ds)
		out[name] = ds[len(ds)/2].Round(time.Microsecond / 10)
	}
	return out, nil
}

// selfCPU is the CPU time this process has used (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
