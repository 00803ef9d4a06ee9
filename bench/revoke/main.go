// Command revoke measures how soon a revocation ends a response that is
// still streaming: the time from `sluis session revoke ID` returning to the
// client seeing its server-sent event stream fail. It runs the real
// gateway (`sluis serve`, in process) in front of an app that sends an
// event every 100 ms forever, and for each trial gives a user a new
// session, opens the stream over HTTP/1.1 or HTTP/2 (in turn), reads the
// first event, revokes the session with the CLI as an operator would, and
// times the end. It prints p50, p99 and the worst of the trials, and fails
// if any stream ended cleanly (a client would take it for whole) or
// outlived the revocation by more than a second.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/revoke [-n 50]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/bench/internal/wrk"
	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

const (
	portalHost = "login.bench.test"
	appHost    = "wiki.bench.test"
)

func main() {
	n := flag.Int("n", 50, "trials")
	flag.Parse()
	if err := run(*n); err != nil {
		log.Fatal(err)
	}
}

func run(n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "sluis-bench-revoke-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The app: an event every 100 ms, until the gateway goes away.
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(upLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: tick %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))

	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "sluis.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
portal: %s
data_dir: %s
tls: {self_signed: true}
apps:
  - name: wiki
    host: %s
    upstream: http://%s
    allow: {groups: [staff], mfa: true}
`, portalHost, data, appHost, upLn.Addr())), 0o600); err != nil {
		return err
	}
	sluisCLI := func(stdin string, args ...string) error {
		var out bytes.Buffer
		err := cli.Run(ctx, append([]string{"sluis", "--config", cfg}, args...), func(string) string { return "" }, strings.NewReader(stdin), &out, &out)
		if err != nil {
			return fmt.Errorf("sluis %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return nil
	}

	// The gateway, as `sluis serve` runs it.
	stdout := &listening{seen: make(chan struct{})}
	served := make(chan error, 1)
	go func() {
		served <- cli.Run(ctx, []string{"sluis", "serve", "--config", cfg}, func(string) string { return "" }, strings.NewReader(""), stdout, io.Discard)
	}()
	select {
	case <-stdout.seen:
	case err := <-served:
		return fmt.Errorf("sluis serve: %v", err)
	case <-time.After(30 * time.Second):
		return errors.New("sluis serve: not listening after 30s")
	}
	addr := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`).FindStringSubmatch(stdout.String())[1]
	pem, err := os.ReadFile(filepath.Join(data, "ca.pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	if err := sluisCLI("bench password 1\n", "user", "add", "bench", "--groups", "staff", "--password-stdin"); err != nil {
		return err
	}
	// Sessions are made in the store directly: a login per trial would
	// need a TOTP code per trial.
	st, err := sqlite.Open(ctx, filepath.Join(data, "sluis.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	clients := map[string]*http.Client{}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		next := []string{"http/1.1"}
		if proto == "HTTP/2" {
			next = []string{"h2"}
		}
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		clients[proto] = &http.Client{Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) },
			TLSClientConfig:   &tls.Config{RootCAs: roots, NextProtos: next},
			ForceAttemptHTTP2: proto == "HTTP/2",
		}}
	}

	fmt.Printf("bench/revoke: %d trials, HTTP/1.1 and HTTP/2 in turn, %d cores\n", n, runtime.NumCPU())
	var afterReturn, afterStart []time.Duration
	for i := range n {
		proto := "HTTP/1.1"
		if i%2 == 1 {
			proto = "HTTP/2"
		}
		now := time.Now()
		tok, hash := session.NewToken()
		x := sluis.Session{ID: session.NewID(), User: "bench", Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
			ExpiresAt: now.Add(time.Hour), MFAAt: now}
		if err := st.CreateSession(ctx, x, hash[:], appHost); err != nil {
			return err
		}
		req, _ := http.NewRequest("GET", "https://"+appHost+"/events", nil)
		req.AddCookie(&http.Cookie{Name: session.CookieName, Value: tok})
		resp, err := clients[proto].Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || (resp.ProtoMajor == 2) != (proto == "HTTP/2") {
			resp.Body.Close()
			return fmt.Errorf("trial %d: %s %d, want %s 200", i, resp.Proto, resp.StatusCode, proto)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			return fmt.Errorf("trial %d: first event: %w", i, err)
		}
		ended := make(chan error, 1)
		var endAt time.Time
		go func() {
			_, err := io.Copy(io.Discard, br)
			endAt = time.Now()
			if err == nil {
				err = io.EOF // io.Copy takes a clean end for no error
			}
			ended <- err
		}()
		start := time.Now()
		if err := sluisCLI("", "session", "revoke", x.ID); err != nil {
			return err
		}
		returned := time.Now()
		select {
		case err = <-ended:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("trial %d (%s): the stream still flows 5s after the revocation", i, proto)
		}
		resp.Body.Close()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("trial %d (%s): the stream ended cleanly", i, proto)
		}
		afterReturn = append(afterReturn, endAt.Sub(returned))
		afterStart = append(afterStart, endAt.Sub(start))
	}
	fmt.Printf("from `session revoke` returning to the stream failing: p50 %v  p99 %v  worst %v  (negative: before it returned)\n",
		wrk.Pct(afterReturn, 50), wrk.Pct(afterReturn, 99), wrk.Pct(afterReturn, 100))
	fmt.Printf("from `session revoke` starting to the stream failing:  p50 %v  p99 %v  worst %v\n",
		wrk.Pct(afterStart, 50), wrk.Pct(afterStart, 99), wrk.Pct(afterStart, 100))
	if worst := wrk.Pct(afterReturn, 100); worst > time.Second {
		return fmt.Errorf("a stream outlived its revocation by %v (goal: within 1s)", worst)
	}
	cancel()
	if err := <-served; err != nil {
		return fmt.Errorf("sluis serve: %w", err)
	}
	return nil
}

// listening is the gateway's stdout; seen closes once it says it listens.
type listening struct {
	mu   sync.Mutex
	b    strings.Builder
	seen chan struct{}
	once sync.Once
}

func (l *listening) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	if strings.Contains(l.b.String(), "sluis: listening on ") && strings.Contains(l.b.String()[strings.Index(l.b.String(), "sluis: listening on "):], "\n") {
		l.once.Do(func() { close(l.seen) })
	}
	return len(p), nil
}

func (l *listening) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
