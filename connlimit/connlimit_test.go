package connlimit

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeListener hands out the connections and errors queued on it.
type fakeListener struct {
	mu     sync.Mutex
	queue  []any // net.Conn or error
	closed chan struct{}
}

func newFake() *fakeListener { return &fakeListener{closed: make(chan struct{})} }

func (f *fakeListener) push(v any) { f.mu.Lock(); f.queue = append(f.queue, v); f.mu.Unlock() }

func (f *fakeListener) Accept() (net.Conn, error) {
	for {
		f.mu.Lock()
		if len(f.queue) > 0 {
			v := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			if err, ok := v.(error); ok {
				return nil, err
			}
			return v.(net.Conn), nil
		}
		f.mu.Unlock()
		select {
		case <-f.closed:
			return nil, net.ErrClosed
		case <-time.After(time.Millisecond): // a fake: polls its queue
		}
	}
}
func (f *fakeListener) Close() error   { close(f.closed); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// fakeConn is a connection from addr that records its closing.
type fakeConn struct {
	net.Conn
	addr   *net.TCPAddr
	closed atomic.Bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }
func (c *fakeConn) Close() error         { c.closed.Store(true); return nil }

func from(ip string) *fakeConn { return &fakeConn{addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}} }

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestCapsPerSourceAndTotalFoldedLog(t *testing.T) {
	f := newFake()
	var logs logBuf
	l := &Listener{Listener: f, Max: 5, MaxPerSource: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	defer l.Close()
	// Three from one IPv6 /64 (different addresses), then others.
	in := []*fakeConn{from("2001:db8::1"), from("2001:db8::2"), from("2001:db8::3"), from("2001:db8::4"),
		from("192.0.2.1"), from("192.0.2.2"), from("192.0.2.3"), from("192.0.2.4")}
	for _, c := range in {
		f.push(c)
	}
	var got []net.Conn
	for range 5 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	// Admitted: two of the /64, then three IPv4 to the total of 5; the
	// /64's third and fourth and the last IPv4 are refused.
	for i, want := range []bool{false, false, true, true, false, false, false, true} {
		if i == 7 {
			// Refused only when Accept looks at it: one more Accept.
			go l.Accept()
			deadline := time.Now().Add(5 * time.Second)
			for l.Stats().Refused < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // Accept runs in another goroutine
			}
		}
		if in[i].closed.Load() != want {
			t.Errorf("conn %d (%s): closed %v, want %v", i, in[i].addr, in[i].closed.Load(), want)
		}
	}
	if s := l.Stats(); s.Open != 5 || s.Refused != 3 {
		t.Fatalf("stats %+v", s)
	}
	out := logs.String()
	if n := strings.Count(out, "its source holds"); n != 1 {
		t.Errorf("per-source refusal logged %d times, want 1 (folded):\n%s", n, out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "connections.max)") {
		t.Errorf("log:\n%s", out)
	}
	// Closing frees the place, once however often it is closed.
	got[0].Close()
	got[0].Close()
	if s := l.Stats(); s.Open != 4 {
		t.Fatalf("after close: %+v", s)
	}
}

func TestAcceptErrorsBackOffAndAreLogged(t *testing.T) {
	f := newFake()
	var logs logBuf
	l := &Listener{Listener: f, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	for range 4 {
		f.push(&net.OpError{Op: "accept", Err: syscall.EMFILE})
	}
	f.push(from("192.0.2.1"))
	start := time.Now()
	c, err := l.Accept()
	if err != nil || c == nil {
		t.Fatalf("Accept: %v", err)
	}
	// 5+10+20+40 ms of back-off: the loop waited, it did not spin.
	if d := time.Since(start); d < 70*time.Millisecond {
		t.Errorf("four failures took %v; want the back-off", d)
	}
	if s := l.Stats(); s.AcceptErrors != 4 {
		t.Errorf("stats %+v", s)
	}
	if out := logs.String(); strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "too many open files") {
		t.Errorf("want one folded ERROR line:\n%s", out)
	}
	// Close ends a back-off under way.
	f.push(&net.OpError{Op: "accept", Err: syscall.EMFILE})
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(20 * time.Millisecond) // let Accept reach its back-off
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Accept after Close: no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestHeaderTimeoutClosesAConnectionWithoutARequest(t *testing.T) {
	f := newFake()
	l := &Listener{Listener: f, HeaderTimeout: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	defer l.Close()
	idle, busy := from("192.0.2.1"), from("192.0.2.2")
	f.push(idle)
	f.push(busy)
	l.Accept()
	b, _ := l.Accept()
	b.(*Conn).begin()
	time.Sleep(100 * time.Millisecond) // past the timeout
	if !idle.closed.Load() || busy.closed.Load() {
		t.Fatalf("idle closed %v (want true), busy closed %v (want false)", idle.closed.Load(), busy.closed.Load())
	}
	if s := l.Stats(); s.TimedOut != 1 || s.Open != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestErrorLogReportsHTTP2ConnectionErrors(t *testing.T) {
	var got []string
	l := &Listener{Log: slog.New(slog.DiscardHandler), Abuse: func(src, rule, detail string) { got = append(got, src+" "+rule) }}
	lg := l.ErrorLog(slog.New(slog.DiscardHandler))
	lg.Printf("http2: server connection error from %v: %v", "[2001:db8::1]:4431", "connection error: ENHANCE_YOUR_CALM")
	lg.Printf("timeout waiting for SETTINGS frames from %v", "192.0.2.9:5555")
	lg.Printf("http: TLS handshake error from %v: EOF", "192.0.2.8:1") // not misuse
	want := []string{"2001:db8::1 " + RuleHTTP2Error, "192.0.2.9 " + RuleHTTP2Error}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDefaultMax(t *testing.T) {
	for _, c := range []struct {
		limit uint64
		want  int
	}{{0, 4096}, {256, 64}, {1024, 384}, {20000, 9000}, {1 << 20, 32768}} {
		if got := DefaultMax(c.limit); got != c.want {
			t.Errorf("DefaultMax(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
}

// Behind a balancer: its connections are not capped as one source (each
// stands for a client), and misuse on them blocks nobody; a connection
// whose client the balancer names (PROXY protocol) counts, and is capped,
// under that client.
func TestBalancerConnectionsCountUnderTheirClient(t *testing.T) {
	f := newFake()
	var reported []string
	l := &Listener{Listener: f, Max: 10, MaxPerSource: 2, Log: slog.New(slog.DiscardHandler),
		Exempt: func(a netip.Addr) bool { return a.Is4() && a.As4()[0] == 10 },
		Abuse:  func(src, rule, detail string) { reported = append(reported, src) }}
	defer l.Close()
	var conns []*Conn
	for range 5 {
		f.push(from("10.0.0.1"))
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c.(*Conn))
	}
	if s := l.Stats(); s.Open != 5 || s.Refused != 0 {
		t.Fatalf("five connections of the balancer: %+v", s)
	}
	// The balancer names the clients: two of one client, then its third
	// is refused; another client is counted on its own.
	for i, client := range []string{"192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.8"} {
		err := conns[i].SetSource(netip.MustParseAddr(client))
		if (err != nil) != (i == 2) {
			t.Fatalf("connection %d from %s: %v", i, client, err)
		}
	}
	conns[2].Close()
	conns[0].Close()
	if err := conns[4].SetSource(netip.MustParseAddr("192.0.2.7")); err != nil {
		t.Fatalf("the client's place was not freed: %v", err)
	}
	if err := conns[0].SetSource(netip.MustParseAddr("192.0.2.9")); err == nil {
		t.Fatal("a closed connection was counted again")
	}
	if s := l.Stats(); s.Open != 3 || s.Refused != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A balancer behind the balancer (a chain) is not capped either.
	for range 3 {
		f.push(from("10.0.0.1"))
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.(*Conn).SetSource(netip.MustParseAddr("10.0.0.2")); err != nil {
			t.Fatalf("a connection of the inner balancer: %v", err)
		}
	}
	// Misuse on the balancer's own connection is not reported; on a
	// client's it is, under the client.
	lg := l.ErrorLog(slog.New(slog.DiscardHandler))
	lg.Printf("http2: server connection error from %v: %v", "10.0.0.1:4431", "connection error: PROTOCOL_ERROR")
	lg.Printf("http2: server connection error from %v: %v", "192.0.2.8:4431", "connection error: PROTOCOL_ERROR")
	if strings.Join(reported, ",") != "192.0.2.8" {
		t.Fatalf("reported %q, want only the client", reported)
	}
}
