package e2e

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/changes"
	"github.com/sluis-gateway/sluis/internal/haproxytest"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// healthCheck asks path on the portal host, as a balancer's health check
// does, and returns the status and the body.
func healthCheck(t *testing.T, g *testenv.Gateway, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(g.URL(g.Portal, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, b.String()
}

// /healthz and /readyz answer on the portal's host without a login, with
// their status and nothing else: no version, no store, no reason.
func TestReadyAndLiveSayOnlyTheirStatus(t *testing.T) {
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	c := g.Client()
	for _, tc := range []struct{ path, body string }{
		{"/healthz", "ok\n"},
		{"/readyz", "ready\n"},
	} {
		status, body := healthCheck(t, g, c, tc.path)
		if status != http.StatusOK || body != tc.body {
			t.Errorf("%s: %d %q, want 200 %q", tc.path, status, body, tc.body)
		}
	}
}

// slowUpstream answers /slow?for=DURATION after that long, with "done";
// started counts the slow requests that reached it.
func slowUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var started atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("for"))
		started.Add(1)
		select {
		case <-time.After(d):
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &started
}

// SIGTERM drains the node: /readyz answers 503 at once, and for
// drain_delay everything else is still served (a balancer's health check
// takes the node out meanwhile); then the listener closes and new
// connections are refused; a request under way finishes if it can within
// shutdown_grace, and is cut at the grace if not; the program exits
// within drain_delay + shutdown_grace and a little.
func TestDrainOnSIGTERM(t *testing.T) {
	for _, tc := range []struct {
		name              string
		drainDelay, grace time.Duration
		slow              time.Duration // the request under way when SIGTERM comes
		finishes          bool
	}{
		{"request within the grace", time.Second, 3 * time.Second, 2 * time.Second, true},
		{"request longer than the grace", 0, time.Second, time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, started := slowUpstream(t)
			g := testenv.StartWith(t, fmt.Sprintf("connections:\n  drain_delay: %s\n  shutdown_grace: %s\n", tc.drainDelay, tc.grace),
				testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
			secret := g.AddUser("anna", pw, "staff")
			c := g.Client()
			if p := g.Login(c, g.URL(wikiHost, "/slow?for=0s"), "anna", pw, secret); p.StatusCode != http.StatusOK {
				t.Fatalf("login: %d", p.StatusCode)
			}
			// A balancer's health check on a connection it keeps.
			probe := g.Client()
			if status, _ := healthCheck(t, g, probe, "/readyz"); status != http.StatusOK {
				t.Fatalf("/readyz before SIGTERM: %d", status)
			}
			type result struct {
				status int
				body   string
				err    error
			}
			slow := make(chan result, 1)
			go func() {
				resp, err := c.Get(g.URL(wikiHost, "/slow?for="+tc.slow.String()))
				if err != nil {
					slow <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				slow <- result{resp.StatusCode, string(b), err}
			}()
			await(t, 5*time.Second, "the slow request to reach the app", func() bool { return started.Load() == 2 })

			sigterm := time.Now()
			g.Terminate()
			if tc.drainDelay > 0 {
				var notReady time.Duration
				for {
					status, body := healthCheck(t, g, probe, "/readyz")
					if status == http.StatusServiceUnavailable {
						notReady = time.Since(sigterm)
						if body != "not ready\n" {
							t.Errorf("/readyz while draining says %q", body)
						}
						break
					}
					if time.Since(sigterm) > tc.drainDelay/2 {
						t.Fatalf("/readyz still %d %s after SIGTERM", status, time.Since(sigterm))
					}
				}
				t.Logf("/readyz answered 503 %s after SIGTERM", notReady)
				// Within the drain delay a new connection is still
				// served, except for /readyz.
				fresh := g.Client()
				if status, _ := healthCheck(t, g, fresh, "/readyz"); status != http.StatusServiceUnavailable {
					t.Errorf("/readyz on a new connection while draining: %d", status)
				}
				if p := g.Get(fresh, g.URL(g.Portal, "/login")); p.StatusCode != http.StatusOK {
					t.Errorf("the login page within the drain delay: %d", p.StatusCode)
				}
			}
			// Then new connections are refused.
			var refused time.Duration
			await(t, tc.drainDelay+2*time.Second, "new connections to be refused", func() bool {
				conn, err := net.DialTimeout("tcp", g.Addr(), time.Second)
				if err != nil {
					refused = time.Since(sigterm)
					return true
				}
				conn.Close()
				return false
			})
			t.Logf("new connections refused %s after SIGTERM", refused)
			if refused < tc.drainDelay {
				t.Errorf("new connections refused %s after SIGTERM, before the drain delay of %s", refused, tc.drainDelay)
			}

			r := <-slow
			ended := time.Since(sigterm)
			if tc.finishes && (r.err != nil || r.status != http.StatusOK || r.body != "done") {
				t.Errorf("the request under way: %d %q %v", r.status, r.body, r.err)
			}
			if !tc.finishes {
				if r.err == nil && r.body == "done" {
					t.Errorf("a request longer than the grace was answered: %d %q", r.status, r.body)
				}
				if ended < tc.drainDelay+tc.grace || ended > tc.drainDelay+tc.grace+2*time.Second {
					t.Errorf("the request longer than the grace ended %s after SIGTERM (drain delay %s, grace %s)", ended, tc.drainDelay, tc.grace)
				}
			}
			if err := g.Exited(tc.drainDelay + tc.grace + 5*time.Second); err != nil {
				t.Fatalf("exit: %v", err)
			}
			exited := time.Since(sigterm)
			t.Logf("exited %s after SIGTERM (drain delay %s, grace %s, request %s)", exited, tc.drainDelay, tc.grace, tc.slow)
			if limit := tc.drainDelay + min(tc.grace, tc.slow) + time.Second; exited > limit {
				t.Errorf("exited %s after SIGTERM, later than %s", exited, limit)
			}
		})
	}
}

// When the gateway cannot reach its store, /readyz answers 503 and
// /healthz still 200; the portal and app hosts answer a 503 page that
// says the database cannot be reached, with an error ID that is also in
// the log; a session that the gateway has cached is not honoured once the
// store's revision has gone unread for changes.StaleAfter. When the store
// is back, the node recovers by itself: ready again, pages served, logins
// taken, without a restart. Twice: a real PostgreSQL stopped (a fast
// shutdown, which ends every connection) and started again on its port,
// and SQLite with every call of the gateway to it failing (the CLI still
// reaches it).
func TestStoreUnreachable(t *testing.T) {
	app := func(t *testing.T) testenv.App {
		return testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true}
	}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (g *testenv.Gateway, down, up func())
	}{
		{"PostgreSQL stopped and started", func(t *testing.T) (*testenv.Gateway, func(), func()) {
			srv := pgtest.Start(t)
			urlFile := filepath.Join(t.TempDir(), "db-url")
			if err := os.WriteFile(urlFile, []byte(srv.NewDatabase(t)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			g := testenv.StartWith(t, fmt.Sprintf("store:\n  postgres:\n    url_file: %s\n", urlFile), app(t))
			return g, func() {
					if err := srv.Stop(); err != nil {
						t.Fatal(err)
					}
				}, func() {
					if err := srv.Start(); err != nil {
						t.Fatal(err)
					}
				}
		}},
		{"SQLite cut off", func(t *testing.T) (*testenv.Gateway, func(), func()) {
			g := testenv.Start(t, app(t))
			return g, g.StoreDown, g.StoreUp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, down, up := tc.start(t)
			storeOutage(t, g, down, up)
		})
	}
}

func storeOutage(t *testing.T, g *testenv.Gateway, storeDown, storeUp func()) {
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/start"), "anna", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", p.StatusCode)
	}
	probe := g.Client()

	storeDown()
	down := time.Now()
	await(t, 5*time.Second, "/readyz to answer 503", func() bool {
		status, body := healthCheck(t, g, probe, "/readyz")
		return status == http.StatusServiceUnavailable && body == "not ready\n"
	})
	t.Logf("/readyz answered 503 %s after the store went away", time.Since(down).Round(time.Millisecond))
	if status, body := healthCheck(t, g, probe, "/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz with the store away: %d %q", status, body)
	}
	for _, tc := range []struct {
		name    string
		request func() testenv.Page
	}{
		{"portal: a password", func() testenv.Page { return g.SubmitPassword(g.ClientFrom("127.0.0.5"), "", "anna", pw) }},
		{"portal: the launcher", func() testenv.Page { return g.Get(c, g.URL(g.Portal, "/")) }},
		{"app host: a page of a logged-in user", func() testenv.Page { return g.Get(c, g.URL(wikiHost, "/page")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p testenv.Page
			// A cached session counts until the revision is stale.
			await(t, 3*changes.StaleAfter, "a 503", func() bool {
				p = tc.request()
				return p.StatusCode == http.StatusServiceUnavailable
			})
			m := errorIDRE.FindStringSubmatch(p.Body)
			if !strings.Contains(p.Body, "cannot reach its database") || m == nil {
				t.Fatalf("the 503 page:\n%s", p.Body)
			}
			if !strings.Contains(g.Logs(), "error_id="+m[1]) {
				t.Errorf("error ID %s is not in the log", m[1])
			}
			t.Logf("503 %s after the store went away", time.Since(down).Round(time.Millisecond))
		})
	}

	storeUp()
	up := time.Now()
	await(t, 10*time.Second, "/readyz to answer 200 again", func() bool {
		status, body := healthCheck(t, g, probe, "/readyz")
		return status == http.StatusOK && body == "ready\n"
	})
	t.Logf("/readyz answered 200 %s after the store came back", time.Since(up).Round(time.Millisecond))
	await(t, 10*time.Second, "the app to be served again", func() bool {
		return g.Get(c, g.URL(wikiHost, "/page")).StatusCode == http.StatusOK
	})
	t.Logf("the app was served again %s after the store came back", time.Since(up).Round(time.Millisecond))
	if p := g.Login(g.Client(), g.URL(wikiHost, "/start"), "anna", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("a login after the store came back: %d", p.StatusCode)
	}
}

// Behind a real HAProxy that checks /readyz, a node drained on SIGTERM
// with a drain_delay longer than the balancer needs to notice is taken
// out before its listener closes: a client that opens a new connection
// through the balancer for every request meanwhile sees not one failure,
// and the other node answers all of them from then on.
func TestDrainBehindHAProxy(t *testing.T) {
	const drainDelay = time.Second
	extra := fmt.Sprintf("connections:\n  drain_delay: %s\n  shutdown_grace: 2s\n", drainDelay)
	leaving, staying := testenv.StartWith(t, extra), testenv.StartWith(t, extra)
	h := haproxytest.Start(t, haproxytest.Config{Mode: "tcp", Backends: []string{leaving.Addr(), staying.Addr()},
		Check: "/readyz", CheckHost: leaving.Portal, CheckEvery: 100 * time.Millisecond})
	cas := x509.NewCertPool()
	for _, g := range []*testenv.Gateway{leaving, staying} {
		pem, err := os.ReadFile(filepath.Join(g.Dir, "data", "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cas.AppendCertsFromPEM(pem)
	}
	c := leaving.ClientTo(h.Addr, cas, "")
	c.Transport.(*http.Transport).DisableKeepAlives = true // a new connection, so a new choice of node, every time
	url := fmt.Sprintf("https://%s:%d/healthz", leaving.Portal, h.Port)
	var requests, failures atomic.Int64
	var failed atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			requests.Add(1)
			resp, err := c.Get(url)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failures.Add(1)
				failed.Store(err.Error())
			}
		}
	}()
	await(t, 10*time.Second, "traffic through the balancer", func() bool { return requests.Load() > 20 })

	sigterm := time.Now()
	leaving.Terminate()
	await(t, drainDelay, "HAProxy to take the draining node out", func() bool { return strings.Contains(h.Logs(), "sluis/s1 is DOWN") })
	t.Logf("HAProxy took the node out %s after SIGTERM", time.Since(sigterm).Round(time.Millisecond))
	if err := leaving.Exited(drainDelay + 5*time.Second); err != nil {
		t.Fatal(err)
	}
	before := requests.Load()
	await(t, 5*time.Second, "more traffic after the node exited", func() bool { return requests.Load() > before+20 })
	close(stop)
	<-done
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests through the balancer failed during the drain; the last: %v", n, requests.Load(), failed.Load())
	}
	t.Logf("%d requests through the balancer during the drain, %d failed", requests.Load(), failures.Load())
}
