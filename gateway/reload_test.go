package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// reloadConfig is a configuration with the wiki and, when docs, the docs
// app; tunnels and session settings take the given values.
func reloadConfig(t *testing.T, dir string, docs bool, maxTunnels int, idle string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(`listen: 127.0.0.1:0
portal: login.corp.test
data_dir: %s
tls:
  self_signed: true
session:
  idle_timeout: %s
tunnels:
  max_per_user: %d
probes:
  block_after: 10000 # the test's unknown hosts are no scanner's
apps:
  - name: wiki
    host: wiki.corp.test
    upstream: http://127.0.0.1:9
    allow:
      groups: [staff]
  - name: ssh
    tcp: 127.0.0.1:22
    allow:
      groups: [staff]
`, filepath.Join(dir, "data"), idle, maxTunnels)
	if docs {
		text = strings.Replace(text, "apps:\n", "time_zone: UTC\nemergency:\n  break_glass:\n    users: [root]\nstrict:\n  reauth_after: 5m\napps:\n", 1)
		text += "  - name: docs\n    host: docs.corp.test\n    upstream: http://127.0.0.1:9\n    allow:\n      groups: [staff]\n"
	}
	c, err := config.Parse(filepath.Join(dir, "sluis.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestGateway(t *testing.T, c *config.Config) *Gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := t.TempDir()
	sealer, err := keys.LoadSealer(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.LoadSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewSigner("https://login.corp.test", key, keys.KeyID(&key.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(ctx, Options{Config: c, Store: st, Sealer: sealer, Signer: signer, PublicPort: 443, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// sources spreads the test's requests over many addresses: refusals of
// unknown hosts count toward a block per source.
var sources atomic.Int64

// status is what g answers a request without a session for host.
func status(g http.Handler, host string) int {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/page", nil) // origin form, as a client sends it
	r.Host, r.RemoteAddr = host, fmt.Sprintf("10.0.%d.%d:1234", sources.Add(1)%200, 1+sources.Load()%250)
	g.ServeHTTP(w, r)
	return w.Code
}

// Reload swaps the whole state at once: a new app answers, the tunnels'
// apps and limit follow, and requests served while
// reloads run see one configuration or the other, never a mix or a gap.
func TestReloadSwapsState(t *testing.T) {
	dir := t.TempDir()
	without, with := reloadConfig(t, dir, false, 4, "30m"), reloadConfig(t, dir, true, 7, "5m")
	g := newTestGateway(t, without)
	// A request without a session needs a login on a known host (401:
	// it is no browser's); an unknown host is misdirected.
	const known, unknown = http.StatusUnauthorized, http.StatusMisdirectedRequest
	if got := status(g, "docs.corp.test"); got != unknown {
		t.Fatalf("docs before the reload: %d", got)
	}
	if got := status(g, "wiki.corp.test"); got != known {
		t.Fatalf("wiki: %d", got)
	}
	if err := g.Reload(with, Providers{}); err != nil {
		t.Fatal(err)
	}
	if got := status(g, "docs.corp.test"); got != known {
		t.Fatalf("docs after the reload: %d", got)
	}
	if st := g.state.Load(); g.Config() != with || st.tunnels.MaxPerUser != 7 || st.tunnels.Apps["ssh"].TCP != "127.0.0.1:22" {
		t.Fatalf("after the reload: config %p (want %p), tunnels %+v", g.Config(), with, st.tunnels)
	}
	if _, ok := g.webApp("docs"); !ok {
		t.Fatal("the open requests' recheck does not know the new app")
	}
	// The situation of what stays open (requests in flight, tunnels) is
	// the new configuration's.
	sit, err := g.situation(context.Background(), "wiki")
	if err != nil || sit.Zone.String() != "UTC" || sit.ReauthAfter != 5*time.Minute || !slices.Equal(sit.BreakGlass.Users, []string{"root"}) {
		t.Fatalf("situation after the reload: %+v %v", sit, err)
	}
	if err := g.Reload(without, Providers{}); err != nil {
		t.Fatal(err)
	}
	if got := status(g, "docs.corp.test"); got != unknown {
		t.Fatalf("docs after it was removed: %d", got)
	}
	if _, ok := g.webApp("docs"); ok {
		t.Fatal("a removed app is still known to the recheck")
	}

	// Under reloads: the wiki is in both and always answers as known;
	// docs comes and goes, and is never anything but known or unknown.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := status(g, "wiki.corp.test"); got != known {
					errs <- fmt.Sprintf("wiki during reloads: %d", got)
					return
				}
				if got := status(g, "docs.corp.test"); got != known && got != unknown {
					errs <- fmt.Sprintf("docs during reloads: %d", got)
					return
				}
			}
		})
	}
	for i := range 50 {
		c := without
		if i%2 == 0 {
			c = with
		}
		if err := g.Reload(c, Providers{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
