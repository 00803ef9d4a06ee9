// Package testenv starts a whole sluis gateway for tests: the real program
// (cli.Run, as `sluis serve` runs it) on a real TLS listener on a loopback
// port, with a fresh data folder, and gives tests an HTTPS client that
// trusts its CA, the CLI, and helpers to log in like a person.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/storefault"
	"github.com/sluis-gateway/sluis/metrics"
	"github.com/sluis-gateway/sluis/mfa"
)

// App is an app to put behind the gateway.
type App struct {
	Name, Host, Upstream string
	TCP                  string // a TCP app: host:port to dial (no Host, no Upstream)
	Users, Groups        []string
	MFA                  bool
	Key                  bool // mfa: phishing_resistant (a passkey)
	NoAllow              bool // leave out the allow rule
	Essential            bool
	// Extra is more of the app's YAML, each line indented by four spaces
	// (identity_headers, request_headers).
	Extra string
	// EncodedSlashes, PathParams and CORSPreflight write "pass" for the
	// app's encoded_slashes, path_params and cors_preflight; Cache, if
	// set, is its cache setting.
	EncodedSlashes, PathParams, CORSPreflight bool
	Cache                                     string
}

// Gateway is a running gateway.
type Gateway struct {
	t          testing.TB
	Dir        string
	ConfigPath string
	Portal     string // portal host
	Port       int
	CA         *x509.CertPool
	// Front, when set, is where clients connect instead of the gateway
	// (a load balancer in front of it), FrontCA the CA they trust there
	// (nil: the gateway's), and PublicPort the port in the URLs users see
	// (the gateway's public_url; zero: Port).
	Front      string
	FrontCA    *x509.CertPool
	PublicPort int

	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan struct{} // closed when the program has returned
	err            error         // what it returned; read after done
	store          atomic.Pointer[storefault.Store]
	metrics        atomic.Pointer[metrics.Metrics]

	mu       sync.Mutex
	lastStep map[string]int64 // per user, the last TOTP step the tests used
}

// Start runs a gateway with the given apps and stops it when the test ends.
func Start(t testing.TB, apps ...App) *Gateway {
	t.Helper()
	return StartWith(t, "", apps...)
}

// StartWith is Start with more top-level configuration (YAML) added.
func StartWith(t testing.TB, extra string, apps ...App) *Gateway {
	t.Helper()
	return StartIn(t, t.TempDir(), extra, apps...)
}

// StartIn is StartWith with the configuration and the data directory in
// dir (for example a small filesystem the test mounted).
func StartIn(t testing.TB, dir, extra string, apps ...App) *Gateway {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nportal: login.sluis.test\ndata_dir: %s\ntls:\n  self_signed: true\nsession:\n  idle_timeout: 30m\n  lifetime: 12h\n%sapps:\n", filepath.Join(dir, "data"), extra)
	for _, a := range apps {
		if a.TCP != "" {
			fmt.Fprintf(&b, "  - name: %s\n    tcp: %s\n    essential: %v\n", a.Name, a.TCP, a.Essential)
		} else {
			fmt.Fprintf(&b, "  - name: %s\n    host: %s\n    upstream: %s\n    essential: %v\n", a.Name, a.Host, a.Upstream, a.Essential)
			for _, o := range []struct {
				key string
				on  bool
			}{{"encoded_slashes", a.EncodedSlashes}, {"path_params", a.PathParams}, {"cors_preflight", a.CORSPreflight}} {
				if o.on {
					fmt.Fprintf(&b, "    %s: pass\n", o.key)
				}
			}
			if a.Cache != "" {
				fmt.Fprintf(&b, "    cache: %s\n", a.Cache)
			}
		}
		b.WriteString(a.Extra)
		if !a.NoAllow {
			mfa := fmt.Sprint(a.MFA)
			if a.Key {
				mfa = "phishing_resistant"
			}
			fmt.Fprintf(&b, "    allow:\n      users: [%s]\n      groups: [%s]\n      mfa: %s\n", strings.Join(a.Users, ", "), strings.Join(a.Groups, ", "), mfa)
		}
	}
	cfg := filepath.Join(dir, "sluis.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	g := Run(t, filepath.Join(dir, "data"), "sluis", "serve", "--config", cfg)
	g.Dir, g.ConfigPath, g.Portal = dir, cfg, "login.sluis.test"
	return g
}

// Run runs the program with args (as `sluis serve` or `sluis demo`), waits
// until it listens, and stops it when the test ends. dataDir is where it
// keeps its CA.
func Run(t testing.TB, dataDir string, args ...string) *Gateway {
	t.Helper()
	g := &Gateway{t: t, stdout: newSyncBuffer("sluis: listening on "), stderr: newSyncBuffer(""), done: make(chan struct{}), lastStep: map[string]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	// The store is behind a switch that tests can turn off (StoreDown).
	ctx = cli.WithStoreWrapper(ctx, func(st sluis.Store) sluis.Store {
		f := storefault.Wrap(st)
		g.store.Store(f)
		return f
	})
	ctx = cli.WithMetrics(ctx, func(m *metrics.Metrics) { g.metrics.Store(m) })
	go func() {
		g.err = cli.Run(ctx, args, getenv, strings.NewReader(""), g.stdout, g.stderr)
		close(g.done)
	}()
	select {
	case <-g.stdout.seen:
	case <-g.done:
		t.Fatalf("gateway did not start: %v\nstdout:\n%s\nstderr:\n%s", g.err, g.stdout, g.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway not listening after 30s\nstdout:\n%s\nstderr:\n%s", g.stdout, g.stderr)
	}
	m := regexp.MustCompile(`sluis: listening on 127\.0\.0\.1:(\d+)`).FindStringSubmatch(g.stdout.String())
	if m == nil {
		t.Fatalf("no listening line in:\n%s", g.stdout)
	}
	fmt.Sscan(m[1], &g.Port)
	pem, err := os.ReadFile(filepath.Join(dataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	g.CA = x509.NewCertPool()
	g.CA.AppendCertsFromPEM(pem)
	t.Cleanup(g.Stop)
	return g
}

// Metrics returns the metrics of the running program (nil for a command
// that makes none), for a test to serve on a listener of its own.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics.Load() }

// Stdout returns what the program printed so far.
func (g *Gateway) Stdout() string { return g.stdout.String() }

// getenv sets USER as an operator's shell might; the audit trail must not
// take it for the operator (that is the real user id).
func getenv(k string) string {
	if k == "USER" {
		return "test-operator"
	}
	return ""
}

// Restart stops the gateway and starts it again on the same configuration,
// data and address (port), as an operator's restart would; the tests'
// record of used one-time codes carries over. Use the returned Gateway from
// then on.
func (g *Gateway) Restart() *Gateway {
	g.t.Helper()
	g.Stop()
	cfg, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		g.t.Fatal(err)
	}
	// Clients that hold the address (sluis connect --connect) find the
	// gateway where it was.
	cfg = bytes.Replace(cfg, []byte("listen: 127.0.0.1:0\n"), fmt.Appendf(nil, "listen: %s\n", g.Addr()), 1)
	if err := os.WriteFile(g.ConfigPath, cfg, 0o600); err != nil {
		g.t.Fatal(err)
	}
	n := Run(g.t, filepath.Join(filepath.Dir(g.ConfigPath), "data"), "sluis", "serve", "--config", g.ConfigPath)
	n.Dir, n.ConfigPath, n.Portal = g.Dir, g.ConfigPath, g.Portal
	g.mu.Lock()
	for k, v := range g.lastStep {
		n.lastStep[k] = v
	}
	g.mu.Unlock()
	return n
}

// Stop stops the gateway and waits for it (for up to 40 s: the default
// shutdown grace is 30 s, and an open tunnel takes all of it).
func (g *Gateway) Stop() {
	g.Terminate()
	if err := g.Exited(40 * time.Second); err != nil {
		g.t.Errorf("gateway exited with %v", err)
	}
}

// StoreDown makes every call of the gateway to its store fail, as calls
// to a database that cannot be reached do; the CLI's commands still reach
// the store.
func (g *Gateway) StoreDown() {
	g.t.Helper()
	if f := g.store.Load(); f != nil {
		f.Down()
		return
	}
	g.t.Fatal("the gateway has opened no store")
}

// StoreUp lets the gateway reach its store again.
func (g *Gateway) StoreUp() {
	if f := g.store.Load(); f != nil {
		f.Up()
	}
}

// Terminate does to the program what SIGTERM does (cmd/sluis's main
// cancels the context it runs the program with), and returns at once.
func (g *Gateway) Terminate() {
	if g.cancel != nil {
		g.cancel()
		g.cancel = nil
	}
}

// Exited waits for the program to return, for up to within (failing the
// test then), and returns what it returned.
func (g *Gateway) Exited(within time.Duration) error {
	g.t.Helper()
	select {
	case <-g.done:
		return g.err
	case <-time.After(within):
		g.t.Fatalf("gateway did not exit within %s\n%s", within, g.Logs())
		return nil
	}
}

// Logs returns what the gateway logged so far.
func (g *Gateway) Logs() string { return g.stderr.String() + g.stdout.String() }

// URL returns the public URL of path on host.
func (g *Gateway) URL(host, path string) string {
	port := g.Port
	if g.PublicPort != 0 {
		port = g.PublicPort
	}
	if port == 443 {
		return fmt.Sprintf("https://%s%s", host, path)
	}
	return fmt.Sprintf("https://%s:%d%s", host, port, path)
}

// Addr is the listener's address.
func (g *Gateway) Addr() string { return fmt.Sprintf("127.0.0.1:%d", g.Port) }

// TLSConfig trusts the gateway's CA, for raw connections to host.
func (g *Gateway) TLSConfig(host string, protos ...string) *tls.Config {
	if len(protos) == 0 {
		protos = []string{"http/1.1"}
	}
	return &tls.Config{RootCAs: g.CA, ServerName: host, NextProtos: protos}
}

// Client returns a new browser-like client: it trusts the gateway's CA,
// reaches every host name at the gateway's address, keeps cookies, and does
// not follow redirects (tests follow them explicitly with Follow).
func (g *Gateway) Client() *http.Client {
	return g.ClientFrom("")
}

// ClientFrom is Client with connections from the local address src (any
// of 127.0.0.0/8), so that tests can play several sources; "" lets the
// system choose. With a Front, the client connects there.
func (g *Gateway) ClientFrom(src string) *http.Client {
	if g.Front != "" {
		ca := g.FrontCA
		if ca == nil {
			ca = g.CA
		}
		return g.ClientTo(g.Front, ca, src)
	}
	return g.ClientTo(g.Addr(), g.CA, src)
}

// ClientTo is ClientFrom connecting to the address to (the gateway itself past a
// Front, say) and trusting ca there.
func (g *Gateway) ClientTo(to string, ca *x509.CertPool, src string) *http.Client {
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialer.DialContext(ctx, "tcp", to)
			},
			TLSClientConfig:   &tls.Config{RootCAs: ca},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// HTTP1 returns a client with c's cookies that speaks only HTTP/1.1.
func (g *Gateway) HTTP1(c *http.Client) *http.Client {
	n := g.Client()
	n.Jar = c.Jar
	tr := n.Transport.(*http.Transport)
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return n
}

// CLI runs a sluis command against this gateway's configuration, as an
// operator would while it runs.
func (g *Gateway) CLI(stdin string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	full := append([]string{"sluis", "--config", g.ConfigPath}, args...)
	err := cli.Run(context.Background(), full, getenv, strings.NewReader(stdin), &out, &errb)
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("sluis %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// MustCLI is CLI failing the test on error.
func (g *Gateway) MustCLI(stdin string, args ...string) string {
	g.t.Helper()
	out, err := g.CLI(stdin, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// AddUser creates a user with a password and an enrolled TOTP secret, and
// returns the secret.
func (g *Gateway) AddUser(name, password string, groups ...string) string {
	g.t.Helper()
	g.MustCLI(password+"\n", "user", "add", name, "--groups", strings.Join(groups, ","), "--password-stdin")
	uri := strings.TrimSpace(g.MustCLI("", "user", "totp", name))
	u, err := url.Parse(uri)
	if err != nil || u.Query().Get("secret") == "" {
		g.t.Fatalf("user totp printed %q", uri)
	}
	return u.Query().Get("secret")
}

// Code returns a TOTP code for user that the tests have not used yet,
// waiting for the next time step if every acceptable one is used.
func (g *Gateway) Code(user, secret string) string {
	g.t.Helper()
	for {
		g.mu.Lock()
		now := time.Now()
		step := max(g.lastStep[user]+1, mfa.Step(now)-1)
		// A code stays valid until two steps after its own begin; one
		// that would expire within seconds (a slow login may still be
		// on its way) is not handed out.
		period := int64(mfa.Period / time.Second)
		if expires := time.Unix((step+2)*period, 0); expires.Sub(now) < 10*time.Second {
			step++
		}
		if step <= mfa.Step(now)+1 {
			g.lastStep[user] = step
			g.mu.Unlock()
			code, err := mfa.Code(secret, time.Unix(step*int64(mfa.Period/time.Second), 0))
			if err != nil {
				g.t.Fatal(err)
			}
			return code
		}
		g.mu.Unlock()
		next := time.Unix((mfa.Step(now)+1)*int64(mfa.Period/time.Second), 0)
		time.Sleep(time.Until(next) + 10*time.Millisecond) // waiting for the clock itself
	}
}

// UseCode records that a code for step was used outside Code (for example
// read from a page), so Code does not hand it out again.
func (g *Gateway) UseCode(user string, step int64) {
	g.mu.Lock()
	g.lastStep[user] = max(g.lastStep[user], step)
	g.mu.Unlock()
}

// syncBuffer is a goroutine-safe buffer that closes seen when a line
// starting with its marker is written.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	seen   chan struct{}
	once   sync.Once
}

func newSyncBuffer(marker string) *syncBuffer {
	return &syncBuffer{marker: marker, seen: make(chan struct{})}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.marker != "" && strings.Contains(b.buf.String(), "\n"+b.marker) || strings.HasPrefix(b.buf.String(), b.marker) && b.marker != "" {
		b.once.Do(func() { close(b.seen) })
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// WaitOutput waits until the program has printed s, for up to 10 seconds.
func (g *Gateway) WaitOutput(s string) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.stdout.String(), s) {
		if time.Now().After(deadline) {
			g.t.Fatalf("program did not print %q:\n%s", s, g.stdout)
		}
		time.Sleep(10 * time.Millisecond) // the output comes from another goroutine
	}
}
