// Command emergency measures how soon an emergency level is in force: the
// time from `sluis emergency set` returning to the first request refused
// under the new level, over many trials, against a running gateway (the
// real program, in this process) with a logged-in user. As a baseline in
// the same run it times a plain request through the gateway, so the figure
// reads as "so many requests' worth".
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/emergency [-n 100]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"github.com/sluis-gateway/sluis/bench/internal/wrk"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

const appHost = "wiki.bench.test"

func main() {
	n := flag.Int("n", 100, "trials")
	flag.Parse()
	if err := run(*n); err != nil {
		log.Fatal(err)
	}
}

func run(n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "sluis-bench-emergency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cfg := filepath.Join(dir, "sluis.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
portal: login.bench.test
data_dir: %s
tls: {self_signed: true}
apps:
  - name: wiki
    host: %s
    upstream: http://%s
    allow: {groups: [staff], mfa: true}
`, filepath.Join(dir, "data"), appHost, up.Addr())), 0o600)

	// A user with a session on the app host, written before the gateway starts.
	st, err := sqlite.Open(ctx, filepath.Join(dir, "data", "sluis.db"))
	if err != nil {
		os.MkdirAll(filepath.Join(dir, "data"), 0o700)
		if st, err = sqlite.Open(ctx, filepath.Join(dir, "data", "sluis.db")); err != nil {
			return err
		}
	}
	now := time.Now()
	st.CreateUser(ctx, sluis.User{Name: "bench", Groups: []string{"staff"}, CreatedAt: now})
	tok, hash := session.NewToken()
	x := sluis.Session{ID: session.NewID(), User: "bench", Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour), MFAAt: now}
	if err := st.CreateSession(ctx, x, hash[:], appHost); err != nil {
		return err
	}
	st.Close()

	out := &lineWaiter{want: "sluis: listening on ", seen: make(chan struct{})}
	go cli.Run(ctx, []string{"sluis", "serve", "--config", cfg}, os.Getenv, strings.NewReader(""), out, io.Discard)
	select {
	case <-out.seen:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("gateway did not start")
	}
	addr := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(out.String())[1]
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the benchmark's own gateway
	}}
	request := func() (int, error) {
		req, _ := http.NewRequest("GET", "https://"+appHost+"/x", nil)
		req.Header.Set("Cookie", session.CookieName+"="+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	sluisCLI := func(args ...string) error {
		return cli.Run(ctx, append([]string{"sluis", "--config", cfg}, args...), os.Getenv, strings.NewReader(""), io.Discard, io.Discard)
	}
	if s, err := request(); err != nil || s != 200 {
		return fmt.Errorf("request before: %d %v", s, err)
	}

	var effect, plain, command []time.Duration
	worst := 0 // the most requests any trial needed until one was refused
	for i := 0; i < n; i++ {
		t0 := time.Now()
		request()
		plain = append(plain, time.Since(t0))

		t0 = time.Now()
		if err := sluisCLI("emergency", "set", "closed", "--reason", "bench"); err != nil {
			return err
		}
		returned := time.Now()
		command = append(command, returned.Sub(t0))
		for tries := 1; ; tries++ {
			worst = max(worst, tries)
			s, err := request()
			if err != nil {
				return err
			}
			if s == http.StatusServiceUnavailable {
				break
			}
			if time.Since(returned) > 5*time.Second {
				return fmt.Errorf("trial %d: not refused after 5 s", i)
			}
		}
		effect = append(effect, time.Since(returned))
		if err := sluisCLI("emergency", "clear"); err != nil {
			return err
		}
		for s, _ := request(); s != 200; s, _ = request() {
		}
	}
	fmt.Printf("bench/emergency: %d trials against a running gateway, %d cores\n", n, runtime.NumCPU())
	fmt.Printf("  `emergency set` command itself   p50 %8s  p99 %8s\n", wrk.Pct(command, 50), wrk.Pct(command, 99))
	fmt.Printf("  set returned -> first refusal    p50 %8s  p99 %8s  (goal: p99 under 1 s, better under 100 ms)\n", wrk.Pct(effect, 50), wrk.Pct(effect, 99))
	fmt.Printf("  baseline: one plain request      p50 %8s  p99 %8s\n", wrk.Pct(plain, 50), wrk.Pct(plain, 99))
	fmt.Printf("  requests until the first refusal: at most %d (1 means the very next request)\n", worst)
	fmt.Printf("ratio: time to effect / one request (p99) %.2f\n", float64(wrk.Pct(effect, 99))/float64(wrk.Pct(plain, 99)))
	return nil
}

// lineWaiter collects output and closes seen once want appears.
type lineWaiter struct {
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func (l *lineWaiter) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if !l.done && strings.Contains(l.buf.String(), l.want) && strings.Contains(l.buf.String()[strings.Index(l.buf.String(), l.want):], "\n") {
		l.done = true
		close(l.seen)
	}
	return len(p), nil
}

func (l *lineWaiter) String() string { return l.buf.String() }
