// Command proxy benchmarks sluis as an authenticating reverse proxy: an
// authenticated 1 KB GET through sluis, against the same upstream reached
// directly and through nginx as a plain TLS reverse proxy (no
// authentication), measured with wrk in one run, interleaved, at a fixed
// number of connections for a fixed time. It prints requests/s, p50 and p99
// latency and the ratios, so noise on the machine hits all three alike.
//
// Three modes, each its own interleaved run (-modes): h1, HTTP/1.1 kept
// alive (wrk, -c connections); h2, HTTP/2 with one request at a time on
// each of -c connections (h2load); close, a new TLS connection and
// handshake for every request (wrk with "Connection: close", -close-c
// clients), which is what a flood of new clients costs.
//
// Beside requests/s and latency it gives the CPU time each proxy's
// processes spent per request (from /proc), which a busy machine moves
// much less, and Go's own floors (-floors): go-static, a net/http TLS
// server answering the 1 KB itself; go-raw, the leanest relay on net/http
// (sluis's upstream transport and nothing else); and go-proxy, a stock
// httputil.ReverseProxy; each this program run again in a role of its
// own. They show how much of sluis's cost is Go's HTTP server and TLS,
// and how much is relaying.
//
// It installs nginx, wrk and h2load from Debian's packages when they are
// missing.
//
// With -baseline REV it also builds sluis from the git revision REV and
// measures it beside the working tree's, to give a change's cost in one run.
//
// With -nodes it also runs PostgreSQL, two sluis nodes on it and HAProxy
// in front of them: the two nodes through HAProxy ("2-nodes") and one of
// them alone ("pg-node"), against the node on SQLite.
//
//	GOTOOLCHAIN=go1.27.3 go run ./bench/proxy [-d 10s] [-c 64] [-rounds 3] [-modes h1,h2,close] [-close-c 16]
//	    [-baseline REV] [-variant NAME:KEY=VALUE] [-floors=false] [-nodes] [-hold]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluis-gateway/sluis/bench/internal/wrk"
	"github.com/sluis-gateway/sluis/internal/haproxytest"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/proxy"
)

const (
	portal   = "login.bench.test"
	appHost  = "wiki.bench.test"
	password = "bench password 1"
)

func main() {
	dur := flag.Duration("d", 10*time.Second, "duration of each measurement")
	conns := flag.Int("c", 64, "connections")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	profile := flag.String("cpuprofile", "", "write sluis's CPU profile to this file (for cmd/sluis/default.pgo)")
	memProfile := flag.String("memprofile", "", "write sluis's allocation profile to this file when it stops")
	blockProfile := flag.String("blockprofile", "", "write sluis's blocking profile to this file (and its mutex profile to FILE.mutex) when it stops")
	baseline := flag.String("baseline", "", "also measure sluis built from this git revision, in the same run")
	nodes := flag.Bool("nodes", false, "also measure two nodes on one PostgreSQL behind HAProxy, and one of them alone")
	var variants multiFlag
	flag.Var(&variants, "variant", "also measure the working tree's sluis run with other environment variables, as NAME:KEY=VALUE[,KEY=VALUE] (for example gogc100:GOGC=100); may be repeated")
	floors := flag.Bool("floors", true, "also measure Go's own floors: a net/http TLS server answering the 1 KB itself (go-static) and a stock httputil.ReverseProxy over TLS (go-proxy)")
	modes := flag.String("modes", "h1,h2,close", "what to measure, in this order: h1 (HTTP/1.1 kept alive, wrk), h2 (HTTP/2, h2load), close (a new TLS connection per request, wrk)")
	closeConns := flag.Int("close-c", 16, "connections (clients) in the close mode")
	role := flag.String("role", "", "internal: run as the go-static or go-proxy server (see -floors)")
	flag.BoolVar(&hold, "hold", false, "set everything up, print the targets (wrk command lines and PIDs) and wait for an interrupt instead of measuring: for strace, perf and the like")
	flag.Parse()
	if *role != "" {
		log.Fatal(serveFloor(*role, flag.Args()))
	}
	for env, path := range map[string]string{"SLUIS_MEMPROFILE": *memProfile, "SLUIS_BLOCKPROFILE": *blockProfile} {
		if path != "" {
			abs, _ := filepath.Abs(path)
			profileEnv = append(profileEnv, env+"="+abs)
		}
	}
	if err := run(*dur, *conns, *rounds, *profile, *baseline, *nodes, variants, *floors, *modes, *closeConns); err != nil {
		log.Fatal(err)
	}
}

// withIdentity counts the upstream's requests with the bench user's
// identity.
var withIdentity atomic.Int64

// checkIdentity runs a measurement with run and, for a sluis target (one
// with a session cookie), fails unless the upstream received the bench
// user's identity on at least as many requests as were answered: so every
// answer measured came from the upstream, through authentication, with the
// identity set.
func checkIdentity(run wrk.Runner) wrk.Runner {
	return func(t wrk.Target, dur time.Duration, conns int) (wrk.Result, error) {
		sluis := slices.ContainsFunc(t.Headers, func(h string) bool { return strings.HasPrefix(h, "Cookie: __Host-sluis=") })
		before := withIdentity.Load()
		res, err := run(t, dur, conns)
		if err != nil || !sluis {
			return res, err
		}
		if got := withIdentity.Load() - before; got < int64(res.Requests) || res.Requests == 0 {
			return res, fmt.Errorf("%s answered %d requests but the upstream saw the identity on %d", t.Name, res.Requests, got)
		}
		if res.Non2xx > 0 {
			// A redirect to the login would count as answered.
			return res, fmt.Errorf("%s answered %d requests with something else than 2xx", t.Name, res.Non2xx)
		}
		return res, nil
	}
}

// hold: set up, then wait instead of measuring (-hold).
var hold bool

// profileEnv asks the measured sluis for its allocation and blocking
// profiles (-memprofile, -blockprofile).
var profileEnv []string

func run(dur time.Duration, conns, rounds int, profile, baseline string, nodes bool, variants []string, floors bool, modes string, closeConns int) error {
	if err := wrk.Ensure("wrk", "wrk"); err != nil {
		return err
	}
	if err := wrk.Ensure("nginx", "nginx-light"); err != nil {
		return err
	}
	if err := wrk.Ensure("h2load", "nghttp2-client"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sluis-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The upstream: 1 KB of text, kept alive.
	body := []byte(strings.Repeat("0123456789abcdef", 64))
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// It counts the requests that came with the bench user's identity
	// (the user header and an assertion), which only sluis sets: each
	// measurement of sluis must have sent the upstream at least as many
	// as it answered (see checkIdentity).
	go http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header; len(h["X-Sluis-User"]) == 1 && h["X-Sluis-User"][0] == "bench" && len(h["X-Sluis-Assertion"]) == 1 && h["X-Sluis-Assertion"][0] != "" {
			withIdentity.Add(1)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
	upURL := "http://" + up.Addr().String()

	// sluis, built and run as its own process; with -baseline, a second
	// sluis built from that revision beside it, measured in the same run.
	sl, err := startSluis(dir, sluisSpec{name: "sluis", upstream: upURL, profile: profile, env: profileEnv})
	if err != nil {
		return err
	}
	defer sl.stop()
	var base *sluis
	if baseline != "" {
		if base, err = startSluis(dir, sluisSpec{name: "baseline", rev: baseline, upstream: upURL}); err != nil {
			return fmt.Errorf("baseline %s: %w", baseline, err)
		}
		defer base.stop()
	}
	var more []wrk.Target
	for _, v := range variants {
		name, env, ok := strings.Cut(v, ":")
		if !ok || name == "" {
			return fmt.Errorf("-variant %q: want NAME:KEY=VALUE[,KEY=VALUE]", v)
		}
		if slices.Contains([]string{"direct", "nginx", "sluis", "baseline", "go-static", "go-raw", "go-proxy", "pg-node", "2-nodes"}, name) {
			return fmt.Errorf("-variant %q: %s is the name of another target", v, name)
		}
		vs, err := startSluis(dir, sluisSpec{name: name, upstream: upURL, env: splitEnv(env)})
		if err != nil {
			return fmt.Errorf("variant %s: %w", name, err)
		}
		defer vs.stop()
		more = append(more, vs.target())
	}
	var cluster []wrk.Target
	if nodes {
		stop, targets, err := startCluster(dir, upURL)
		if err != nil {
			return err
		}
		defer stop()
		cluster = targets
	}

	// nginx: a plain TLS reverse proxy to the same upstream, keeping
	// upstream connections alive, no authentication.
	nginxPort, err := freePort()
	if err != nil {
		return err
	}
	if err := writeCert(dir); err != nil {
		return err
	}
	nginxConf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(nginxConf, []byte(fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp; uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  upstream app { server %[2]s; keepalive 128; }
  server {
    listen 127.0.0.1:%[3]d ssl http2;
    ssl_certificate %[1]s/cert.pem;
    ssl_certificate_key %[1]s/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`, dir, up.Addr(), nginxPort)), 0o600)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o700)
	ngx := exec.Command("nginx", "-c", nginxConf, "-p", dir)
	ngxOut, _ := os.Create(filepath.Join(dir, "nginx.out"))
	ngx.Stdout, ngx.Stderr = ngxOut, ngxOut
	if err := ngx.Start(); err != nil {
		return err
	}
	// SIGTERM, not SIGKILL: the master then stops its workers too.
	defer func() { ngx.Process.Signal(syscall.SIGTERM); ngx.Wait() }()
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", nginxPort)); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
		return fmt.Errorf("nginx: %v\n%s", err, b)
	}

	if floors {
		for _, role := range []string{"go-static", "go-raw", "go-proxy"} {
			t, stop, err := startFloor(dir, role, upURL)
			if err != nil {
				return fmt.Errorf("%s: %w", role, err)
			}
			defer stop()
			more = append(more, t)
		}
	}
	targets := []wrk.Target{
		{Name: "direct", URL: upURL + "/"},
		{Name: "nginx", URL: fmt.Sprintf("https://127.0.0.1:%d/", nginxPort), Headers: []string{"Host: " + appHost},
			Procs: func() []int { return wrk.Children(ngx.Process.Pid) }},
		sl.target(),
	}
	if base != nil {
		targets = append(targets, base.target())
	}
	targets = append(targets, more...)
	targets = append(targets, cluster...)
	// What a browser sends besides Host and the cookie, so that the header
	// work is that of a real request.
	for i := range targets {
		targets[i].Headers = append(targets[i].Headers, browserHeaders...)
	}
	// Each target must answer 200 with the 1 KB body before it is timed;
	// for sluis that proves the request was authenticated.
	for _, t := range targets {
		if err := wrk.Check(t, http.StatusOK, len(body)); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	if err := checkUnauthenticated(targets[2]); err != nil {
		return err
	}

	if hold {
		for _, t := range targets {
			var procs []int
			if t.Procs != nil {
				procs = t.Procs()
			}
			fmt.Printf("%s (pids %v): wrk -t2 -c%d -d10s --latency", t.Name, procs, conns)
			for _, h := range t.Headers {
				fmt.Printf(" -H %q", h)
			}
			fmt.Printf(" %s\n", t.URL)
		}
		fmt.Println("holding; interrupt to stop")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return nil
	}
	for _, mode := range strings.Split(modes, ",") {
		var (
			run   wrk.Runner
			ts    = targets
			c     = conns
			about string
		)
		switch mode {
		case "h1":
			run, about = wrk.Run, "HTTP/1.1 kept alive (wrk)"
		case "h2":
			// h2load speaks HTTP/2 over TLS only; the upstream is plain.
			run, about, ts = wrk.RunH2, "HTTP/2, one request at a time per connection (h2load)", targets[1:]
		case "close":
			run, about, c = wrk.Close, "HTTP/1.1, a new TLS connection for every request (wrk, Connection: close)", closeConns
		default:
			return fmt.Errorf("-modes: unknown mode %q (h1, h2, close)", mode)
		}
		fmt.Printf("bench/proxy %s: authenticated 1 KB GET, %s, %d connections, %s per measurement, %d interleaved rounds, %d cores, load %s\n",
			mode, about, c, dur, rounds, runtime.NumCPU(), loadavg())
		runs, err := wrk.InterleaveWith(checkIdentity(run), ts, rounds, dur, c)
		if err != nil {
			return err
		}
		report(mode, runs, variants, floors, base != nil, baseline, nodes)
	}
	return nil
}

// report prints a mode's ratios: requests/s (higher is better for the
// first), p99 and CPU time per request (lower is better for the first).
func report(mode string, runs wrk.Runs, variants []string, floors, base bool, baseline string, nodes bool) {
	p99 := func(a, b string) float64 {
		x, y := runs.Median(a).P99, runs.Median(b).P99
		if y == 0 {
			return 0
		}
		return float64(x) / float64(y)
	}
	fmt.Printf("%s ratios (median of each round's): sluis/nginx %.2f (goal 1.00)", mode, runs.Ratio("sluis", "nginx"))
	if mode != "h2" {
		fmt.Printf("  sluis/direct %.2f  nginx/direct %.2f", runs.Ratio("sluis", "direct"), runs.Ratio("nginx", "direct"))
	}
	fmt.Printf("; p99 sluis/nginx %.2f (goal at most 1.00)\n", p99("sluis", "nginx"))
	fmt.Printf("%s CPU per request (lower is better): sluis/nginx %.2f", mode, runs.CPURatio("sluis", "nginx"))
	if floors {
		fmt.Printf("  go-static/nginx %.2f  go-raw/nginx %.2f  go-proxy/nginx %.2f  sluis/go-raw %.2f  sluis/go-proxy %.2f", runs.CPURatio("go-static", "nginx"),
			runs.CPURatio("go-raw", "nginx"), runs.CPURatio("go-proxy", "nginx"), runs.CPURatio("sluis", "go-raw"), runs.CPURatio("sluis", "go-proxy"))
	}
	fmt.Println()
	if floors {
		fmt.Printf("%s requests/s: go-static/nginx %.2f  go-raw/nginx %.2f  go-proxy/nginx %.2f  sluis/go-raw %.2f  sluis/go-proxy %.2f\n", mode, runs.Ratio("go-static", "nginx"),
			runs.Ratio("go-raw", "nginx"), runs.Ratio("go-proxy", "nginx"), runs.Ratio("sluis", "go-raw"), runs.Ratio("sluis", "go-proxy"))
	}
	for _, v := range variants {
		name, _, _ := strings.Cut(v, ":")
		fmt.Printf("%s variant %s: %s/sluis %.3f requests/s, CPU per request %.3f\n", mode, name, name, runs.Ratio(name, "sluis"), runs.CPURatio(name, "sluis"))
	}
	if base {
		fmt.Printf("%s against the baseline %s: sluis/baseline %.3f requests/s, CPU per request %.3f, baseline/nginx %.2f\n", mode, baseline,
			runs.Ratio("sluis", "baseline"), runs.CPURatio("sluis", "baseline"), runs.Ratio("baseline", "nginx"))
	}
	if nodes {
		fmt.Printf("several nodes: pg-node/sluis %.3f (floor 0.90: a node on PostgreSQL against one on SQLite), 2-nodes/sluis %.2f, 2-nodes/nginx %.2f\n",
			runs.Ratio("pg-node", "sluis"), runs.Ratio("2-nodes", "sluis"), runs.Ratio("2-nodes", "nginx"))
	}
}

// loadavg is the machine's load over the last minute, as /proc says.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// browserHeaders are the headers a current browser sends on a page load,
// besides Host and Cookie.
var browserHeaders = []string{
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
	"Accept-Language: nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7",
	"Accept-Encoding: gzip, deflate, br, zstd",
	"Sec-Fetch-Dest: document",
	"Sec-Fetch-Mode: navigate",
	"Sec-Fetch-Site: same-origin",
	"Upgrade-Insecure-Requests: 1",
}

// sluis is one running sluis with a logged-in session.
type sluis struct {
	name    string
	port    int
	cookie  string
	dataDir string
	secret  string // the bench user's TOTP secret
	pid     int
	stop    func()
}

func (s *sluis) target() wrk.Target {
	return wrk.Target{Name: s.name, URL: fmt.Sprintf("https://127.0.0.1:%d/", s.port), Headers: []string{"Host: " + appHost, "Cookie: " + s.cookie},
		Procs: func() []int { return []int{s.pid} }}
}

// sluisSpec is one sluis to start.
type sluisSpec struct {
	name     string
	rev      string   // a git revision to build, or "" for the working tree
	upstream string   // the app's upstream URL
	profile  string   // a CPU profile to write, or ""
	env      []string // more environment variables (KEY=VALUE)
	extra    string   // more top-level configuration (YAML)
	keysFrom string   // a data_dir to copy the keys from (another node of one store)
	noUser   bool     // the bench user exists already (a shared store)
	secret   string   // its TOTP secret then
}

// startSluis builds sluis (from the working tree, or from the git
// revision sp.rev), starts it in a folder of its own under dir with the one
// app in front of sp.upstream, and logs in.
func startSluis(dir string, sp sluisSpec) (*sluis, error) {
	name, rev, upURL, profile := sp.name, sp.rev, sp.upstream, sp.profile
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	src := "."
	if rev != "" {
		// The revision's tree, exported (not checked out), built like the
		// working tree.
		src = filepath.Join(dir, "src")
		os.MkdirAll(src, 0o700)
		export := exec.Command("sh", "-c", `git archive "$1" | tar -x -C "$2"`, "sh", rev, src)
		if out, err := export.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("git archive %s: %v\n%s", rev, err, out)
		}
	}
	bin := filepath.Join(dir, "sluis")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluis")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build sluis: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "sluis.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
portal: %s
data_dir: %s
tls: {self_signed: true}
%sapps:
  - name: wiki
    host: %s
    upstream: %s
    allow: {groups: [staff], mfa: true}
`, port, portal, filepath.Join(dir, "data"), sp.extra, appHost, upURL)), 0o600)
	if sp.keysFrom != "" {
		if err := copyKeys(sp.keysFrom, filepath.Join(dir, "data")); err != nil {
			return nil, err
		}
	}
	cli := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--config", cfg}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	secret := sp.secret
	if !sp.noUser {
		if out, err := cli(password+"\n", "user", "add", "bench", "--groups", "staff", "--password-stdin"); err != nil {
			return nil, fmt.Errorf("user add: %v\n%s", err, out)
		}
		uri, err := cli("", "user", "totp", "bench")
		if err != nil {
			return nil, fmt.Errorf("user totp: %v\n%s", err, uri)
		}
		u, _ := url.Parse(strings.TrimSpace(uri))
		secret = u.Query().Get("secret")
	}
	srv := exec.Command(bin, "serve", "--config", cfg)
	srv.Stdout, srv.Stderr = io.Discard, io.Discard
	srv.Env = append(os.Environ(), sp.env...)
	if profile != "" {
		abs, _ := filepath.Abs(profile)
		srv.Env = append(srv.Env, "SLUIS_CPUPROFILE="+abs)
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	s := &sluis{name: name, port: port, dataDir: filepath.Join(dir, "data"), secret: secret, pid: srv.Process.Pid, stop: func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitTCP(addr); err != nil {
		s.stop()
		return nil, err
	}
	if sp.noUser {
		return s, nil // another node's login serves (one store; a code is used once)
	}
	if s.cookie, err = login(addr, port, secret); err != nil {
		s.stop()
		return nil, fmt.Errorf("login: %w", err)
	}
	return s, nil
}

func client(addr string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar: jar,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			},
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the benchmark's own local servers
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login goes through the portal like a browser and returns the app host's
// session cookie.
func login(addr string, port int, secret string) (string, error) {
	c := client(addr)
	base := func(h string) string { return fmt.Sprintf("https://%s:%d", h, port) }
	rd := base(appHost) + "/"
	step := func(method, u string, form url.Values) (*http.Response, string, error) {
		var req *http.Request
		if form != nil {
			req, _ = http.NewRequest(method, u, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest(method, u, nil)
		}
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	_, page, err := step("GET", base(portal)+"/login", nil)
	if err != nil {
		return "", err
	}
	csrf := csrfRE.FindStringSubmatch(page)
	if csrf == nil {
		return "", fmt.Errorf("no login form")
	}
	resp, _, err := step("POST", base(portal)+"/login", url.Values{"csrf": {csrf[1]}, "rd": {rd}, "username": {"bench"}, "password": {password}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("password step: %v %v", resp, err)
	}
	code, _ := mfa.Code(secret, time.Now())
	resp, _, err = step("POST", base(portal)+"/mfa", url.Values{"csrf": {csrf[1]}, "rd": {rd}, "code": {code}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("code step: %v %v", resp, err)
	}
	// Follow the hand-over to the app host (through the app host's own
	// redirect that binds it to this client) until the app's cookie is set.
	for hop := 0; hop < 6 && resp.StatusCode == http.StatusSeeOther; hop++ {
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return "", err
		}
		if resp, _, err = step("GET", next.String(), nil); err != nil {
			return "", err
		}
		if resp.Request.URL.Host == fmt.Sprintf("%s:%d", appHost, port) {
			for _, ck := range resp.Cookies() {
				if ck.Name == "__Host-sluis" {
					return ck.Name + "=" + ck.Value, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no app cookie")
}

func checkUnauthenticated(t wrk.Target) error {
	noCookie := wrk.Target{Name: t.Name, URL: t.URL, Headers: []string{t.Headers[0]}}
	if err := wrk.Check(noCookie, http.StatusOK, 1024); err == nil {
		return fmt.Errorf("sluis answered without a session: the benchmark would not measure authentication")
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond) // polling a port that another process opens
	}
	return fmt.Errorf("%s not listening after 30s", addr)
}

func writeCert(dir string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: appHost}, DNSNames: []string{appHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
}

// startCluster starts PostgreSQL (commits flushed to disk, as in
// production), three sluis nodes on it with the same keys, and HAProxy in
// TCP mode in front of two of them. It returns the targets "2-nodes"
// (through HAProxy, taking the two nodes in turn) and "pg-node" (the third
// node alone).
func startCluster(dir, upURL string) (_ func(), _ []wrk.Target, err error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	pgDir := filepath.Join(dir, "pg")
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		return nil, nil, err
	}
	pg, err := pgtest.Run(pgDir, pgtest.Durable...)
	if err != nil {
		return nil, nil, err
	}
	stops = append(stops, func() { pg.Stop() })
	db, err := pg.CreateDatabase(context.Background())
	if err != nil {
		return nil, nil, err
	}
	urlFile := filepath.Join(dir, "db-url")
	if err := os.WriteFile(urlFile, []byte(db+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	extra := "store:\n  postgres:\n    url_file: " + urlFile + "\n"
	n1, err := startSluis(dir, sluisSpec{name: "pg-node-1", upstream: upURL, extra: extra})
	if err != nil {
		return nil, nil, fmt.Errorf("node 1: %w", err)
	}
	stops = append(stops, n1.stop)
	n2, err := startSluis(dir, sluisSpec{name: "pg-node-2", upstream: upURL, extra: extra, keysFrom: n1.dataDir, noUser: true, secret: n1.secret})
	if err != nil {
		return nil, nil, fmt.Errorf("node 2: %w", err)
	}
	stops = append(stops, n2.stop)
	// The node measured alone is one of its own, so that no run through
	// the balancer leaves work (closing connections, collecting garbage)
	// on it.
	n3, err := startSluis(dir, sluisSpec{name: "pg-node-3", upstream: upURL, extra: extra, keysFrom: n1.dataDir, noUser: true, secret: n1.secret})
	if err != nil {
		return nil, nil, fmt.Errorf("node 3: %w", err)
	}
	stops = append(stops, n3.stop)
	alone := wrk.Target{Name: "pg-node", URL: fmt.Sprintf("https://127.0.0.1:%d/", n3.port), Headers: []string{"Host: " + appHost, "Cookie: " + n1.cookie}}
	lbDir := filepath.Join(dir, "haproxy")
	if err := os.MkdirAll(lbDir, 0o700); err != nil {
		return nil, nil, err
	}
	lb, err := haproxytest.Run(lbDir, haproxytest.Config{Mode: "tcp",
		Backends: []string{fmt.Sprintf("127.0.0.1:%d", n1.port), fmt.Sprintf("127.0.0.1:%d", n2.port)}})
	if err != nil {
		return nil, nil, err
	}
	stops = append(stops, lb.Stop)
	// The session of node 1's login, through the balancer: both nodes
	// know it (one store).
	two := wrk.Target{Name: "2-nodes", URL: fmt.Sprintf("https://%s/", lb.Addr), Headers: []string{"Host: " + appHost, "Cookie: " + n1.cookie}}
	return stop, []wrk.Target{alone, two}, nil
}

// copyKeys copies a data_dir's files (the keys and CA, not the lock or the
// reserve) to another node's.
func copyKeys(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "serve.lock" || e.Name() == "reserve" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// multiFlag is a flag that may be given more than once.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// startFloor runs this program again as role (go-static or go-proxy) on a
// free port with the benchmark's certificate (nginx's, written before),
// and returns its target.
func startFloor(dir, role, upURL string) (wrk.Target, func(), error) {
	port, err := freePort()
	if err != nil {
		return wrk.Target{}, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return wrk.Target{}, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(self, "-role", role, addr, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), upURL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return wrk.Target{}, nil, err
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	if err := waitTCP(addr); err != nil {
		stop()
		return wrk.Target{}, nil, err
	}
	return wrk.Target{Name: role, URL: "https://" + addr + "/", Headers: []string{"Host: " + appHost},
		Procs: func() []int { return []int{cmd.Process.Pid} }}, stop, nil
}

// serveFloor serves as one of Go's floors, with what net/http offers and
// nothing of sluis: go-static answers the 1 KB itself (the cost of Go's
// HTTP server and crypto/tls alone), go-proxy relays to the upstream
// with a stock httputil.ReverseProxy (the cost of Go's proxying), go-raw
// relays with sluis's own transport and nothing else (the leanest relay
// net/http allows).
// args: address, certificate, key, upstream URL.
func serveFloor(role string, args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("-role %s: want ADDR CERT KEY UPSTREAM", role)
	}
	var h http.Handler
	switch role {
	case "go-static":
		body := []byte(strings.Repeat("0123456789abcdef", 64))
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		})
	case "go-raw":
		// The leanest relay on net/http: sluis's own upstream transport,
		// the client's header passed on without its hop-by-hop fields, the
		// answer's copied back; no ReverseProxy, no other header rewrite,
		// no authentication.
		tr := proxy.NewTransport()
		up := strings.TrimSuffix(args[3], "/")
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			out, err := http.NewRequestWithContext(r.Context(), r.Method, up+r.URL.RequestURI(), nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			// The client's header less the hop-by-hop fields (RFC 9110
			// section 7.6.1), as every proxy sends it on.
			out.Header = r.Header.Clone()
			for _, f := range r.Header["Connection"] {
				for _, name := range strings.Split(f, ",") {
					out.Header.Del(strings.TrimSpace(name))
				}
			}
			for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
				out.Header.Del(name)
			}
			resp, err := tr.RoundTrip(out)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		})
	case "go-proxy":
		u, err := url.Parse(args[3])
		if err != nil {
			return err
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}
		rp.ErrorLog = log.New(io.Discard, "", 0)
		h = rp
	default:
		return fmt.Errorf("-role %s: want go-static, go-raw or go-proxy", role)
	}
	// wrk cuts connections at the end of a run: the errors that makes
	// are not the benchmark's.
	srv := &http.Server{Addr: args[0], Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	return srv.ListenAndServeTLS(args[1], args[2])
}

// splitEnv splits KEY=VALUE[,KEY=VALUE] at the commas that come before a
// KEY= (an upper-case name), so that a value may hold commas itself
// (GODEBUG=a=1,b=2).
func splitEnv(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		key, _, ok := strings.Cut(part, "=")
		if len(out) > 0 && (!ok || key == "" || strings.ToUpper(key) != key) {
			out[len(out)-1] += "," + part
			continue
		}
		out = append(out, part)
	}
	return out
}
