package e2e

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// setupWith is setup with more configuration.
func setupWith(t *testing.T, extra string) *world {
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	w.g = testenv.StartWith(t, extra,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true},
	)
	return w
}

// HTTP/2 bytes, written by hand: the client preface, an empty SETTINGS
// frame, and HEADERS / RST_STREAM frames.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	b := make([]byte, 9, 9+len(payload))
	b[0], b[1], b[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	b[3], b[4] = typ, flags
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

// h2Get is a HEADERS frame (END_HEADERS|END_STREAM) for GET https://host/
// in HPACK: indexed :method GET, :scheme https, :path /, and :authority
// as a literal without indexing.
func h2Get(stream uint32, host string) []byte {
	hp := append([]byte{0x82, 0x87, 0x84, 0x01, byte(len(host))}, host...)
	return h2Frame(0x1, 0x5, stream, hp)
}

func h2Reset(stream uint32) []byte { return h2Frame(0x3, 0, stream, []byte{0, 0, 0, 0x8}) } // CANCEL

// dialH2 opens a TLS connection from src that negotiates h2 and sends the
// preface and SETTINGS; it fails if the gateway refused the connection.
func dialH2(g *testenv.Gateway, src string) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", g.Addr(), g.TLSConfig(g.Portal, "h2"))
	if err != nil {
		return nil, err
	}
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		c.Close()
		return nil, fmt.Errorf("negotiated %q", c.ConnectionState().NegotiatedProtocol)
	}
	if _, err := c.Write(append([]byte(h2Preface), h2Frame(0x4, 0, 0, nil)...)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// waitClosed reads from c until the gateway closes it, for at most limit,
// and returns how long that took.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// latencies runs n requests for the wiki with c and returns their
// successes and sorted durations.
func latencies(g *testenv.Gateway, c *http.Client, n int) (ok int, ds []time.Duration) {
	for i := range n {
		start := time.Now()
		resp, err := c.Get(g.URL(wikiHost, fmt.Sprintf("/work/%d", i)))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok++
			}
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ok, ds
}

func pct(ds []time.Duration, p int) time.Duration { return ds[(len(ds)-1)*p/100] }

// One address that opens connections by the thousand and keeps them idle
// (HTTP/2, preface and SETTINGS, then nothing) holds no more than its
// share; the rest are refused at once and logged once, and a user from
// another address logs in and works as before.
func TestIdleConnectionFloodFromOneSourceLeavesRoomForUsers(t *testing.T) {
	// SLUIS_CONN_ATTEMPTS raises the count for a measurement (the issue's
	// 20,000); the suite uses 2,000 to stay quick under the race detector.
	const perSource = 64
	attempts := int64(envInt("SLUIS_CONN_ATTEMPTS", 2000))
	w := setupWith(t, fmt.Sprintf("connections:\n  max_per_source: %d\n", perSource))
	g := w.g
	secret := g.AddUser("anna", pw, "staff")
	c := g.ClientFrom("127.0.0.3")
	if p := g.Login(c, g.URL(wikiHost, "/start"), "anna", pw, secret); p.StatusCode != 200 {
		t.Fatalf("login: %d", p.StatusCode)
	}
	okBefore, before := latencies(g, c, 200)

	// The flood: bounded in count, and every connection is closed at the
	// end of the test.
	var (
		mu             sync.Mutex
		held           []net.Conn
		refused, tried atomic.Int64
		wg             sync.WaitGroup
		stop           = make(chan struct{})
	)
	defer func() {
		mu.Lock()
		for _, h := range held {
			h.Close()
		}
		mu.Unlock()
	}()
	for range 8 {
		wg.Go(func() {
			for tried.Add(1) <= attempts {
				select {
				case <-stop:
					return
				default:
				}
				h, err := dialH2(g, "127.0.0.2")
				if err != nil {
					refused.Add(1)
					continue
				}
				mu.Lock()
				held = append(held, h)
				mu.Unlock()
			}
		})
	}
	// Meanwhile a user logs in anew; then works while the flood's
	// connections are held open and idle.
	c2 := g.ClientFrom("127.0.0.3")
	if p := g.Login(c2, g.URL(wikiHost, "/start"), "anna", pw, secret); p.StatusCode != 200 {
		t.Fatalf("login during the flood: %d", p.StatusCode)
	}
	wg.Wait()
	close(stop)
	okDuring, during := latencies(g, c2, 200)

	mu.Lock()
	n := len(held)
	mu.Unlock()
	t.Logf("flood: %d connection attempts, %d held, %d refused", attempts, n, refused.Load())
	t.Logf("user without flood: %d/%d ok, p50 %v, p99 %v", okBefore, len(before), pct(before, 50), pct(before, 99))
	t.Logf("user with the flood's connections held: %d/%d ok, p50 %v, p99 %v", okDuring, len(during), pct(during, 50), pct(during, 99))
	if n > perSource {
		t.Errorf("one source holds %d connections; the cap is %d", n, perSource)
	}
	if okDuring != len(during) || okBefore != len(before) {
		t.Errorf("user requests failed: %d/%d before, %d/%d during", okBefore, len(before), okDuring, len(during))
	}
	if p99 := pct(during, 99); p99 > 100*time.Millisecond {
		t.Errorf("user p99 during the flood %v, want under 100ms", p99)
	}
	logs := g.Logs()
	if k := strings.Count(logs, "its source holds the most connections"); k != 1 || !strings.Contains(logs, "level=ERROR msg=\"connlimit: refused") {
		t.Errorf("refusals logged %d times, want 1 line at ERROR (folded):\n%s", k, logs)
	}
}

// An HTTP/2 connection that opens no stream is closed within the header
// timeout (net/http alone keeps it until its idle timeout), and a
// kept-alive connection of either protocol once it is idle for the idle
// timeout.
func TestConnectionsWithoutRequestsAreClosed(t *testing.T) {
	w := setupWith(t, "connections:\n  header_timeout: 1s\n  idle_timeout: 2s\n")
	g := w.g
	h, err := dialH2(g, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if d := waitClosed(t, h, 5*time.Second); d > 2*time.Second {
		t.Errorf("HTTP/2 connection without a stream closed after %v, want about 1s", d)
	}

	// HTTP/2 with one request, then idle.
	h, err = dialH2(g, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Write(h2Get(1, g.Portal))
	if d := waitClosed(t, h, 6*time.Second); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("idle HTTP/2 connection closed after %v, want about 2s", d)
	}

	// HTTP/1.1 keep-alive, then idle.
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", g.Addr(), g.TLSConfig(g.Portal))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /login HTTP/1.1\r\nHost: %s\r\n\r\n", g.Portal)
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("HTTP/1.1 request: %v %q", err, buf[:min(n, 40)])
	}
	if d := waitClosed(t, c, 6*time.Second); d > 4*time.Second {
		t.Errorf("idle HTTP/1.1 connection closed after %v, want about 2s", d)
	}
}

// A source that opens streams and resets them at once, connection after
// connection (CVE-2023-44487), is blocked within seconds, while another
// source is served throughout.
func TestRapidResetSourceIsBlocked(t *testing.T) {
	w := setupWith(t, "")
	g := w.g
	blocked := func() bool { return strings.Contains(g.MustCLI("", "block", "list"), "127.0.0.4") }
	var (
		stop           = make(chan struct{})
		wg             sync.WaitGroup
		served, failed atomic.Int64
	)
	c := g.ClientFrom("127.0.0.5")
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get(g.URL(g.Portal, "/login"))
			if err == nil && resp.StatusCode == 200 {
				served.Add(1)
			} else {
				failed.Add(1)
			}
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond) // a person's pace, not a flood
		}
	})
	start := time.Now()
	conns := 0
	// Within 10 s on a quiet machine (0.15-5.2 s measured); the bound is
	// wider for a loaded CI machine under the race detector.
	for time.Since(start) < 30*time.Second && !blocked() {
		h, err := dialH2(g, "127.0.0.4")
		if err != nil {
			t.Fatal(err)
		}
		conns++
		var burst []byte
		for i := range uint32(1000) {
			id := 2*i + 1
			burst = append(burst, h2Get(id, g.Portal)...)
			burst = append(burst, h2Reset(id)...)
		}
		h.SetDeadline(time.Now().Add(2 * time.Second))
		h.Write(burst)
		io.Copy(io.Discard, h) // until the gateway closes it, or 2s
		h.Close()
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	t.Logf("rapid reset: blocked after %v and %d connections; the other source: %d served, %d failed", took, conns, served.Load(), failed.Load())
	logs := g.Logs()
	t.Logf("reported (folded log lines): rapid reset %v, HTTP/2 protocol error %v",
		strings.Contains(logs, "rule=http2-rapid-reset"), strings.Contains(logs, "rule=http2-protocol-error"))
	if !blocked() {
		t.Fatalf("rapid-reset source not blocked after %v (%d connections)", took, conns)
	}
	if failed.Load() != 0 || served.Load() == 0 {
		t.Errorf("the other source: %d served, %d failed", served.Load(), failed.Load())
	}
}
