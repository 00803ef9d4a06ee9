// Package connlimit bounds what the public listener holds open, so that
// nobody can use up the gateway's connections (and with them its file
// descriptors): a cap on open connections in total and per source (an
// IPv4 address, an IPv6 /64), a deadline by which a new connection must
// begin a request (an HTTP/2 connection: open a stream), and the
// attribution of HTTP/2 misuse (protocol errors, rapid reset) to its
// source, so that the front door's detector can block it.
//
// A refusal closes the connection at once, before any TLS handshake, and
// is logged at ERROR, folded: at most one line per source (and one for
// the total cap) per LogEvery, carrying the count of those it stands for.
package connlimit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluis-gateway/sluis/frontdoor"
)

// Listener wraps the public listener. Set its fields before the first
// Accept; Abuse may be set until the server starts serving.
type Listener struct {
	net.Listener
	// Max caps the connections open at once; past it new ones are closed
	// at once. Zero means no cap (DefaultLimits gives the right one).
	Max int
	// MaxPerSource caps the connections open at once from one source (an
	// IPv4 address, an IPv6 /64). Zero means no cap.
	MaxPerSource int
	// Exempt, if set, names the peers that stand for many clients: the
	// trusted load balancers. Their connections count toward Max but not
	// toward a per-source cap of their own, and misuse on them is logged
	// but not reported to Abuse (which would block the balancer, and
	// every user behind it, for one client's doing). A connection whose
	// client a balancer names (PROXY protocol, Conn.SetSource) is counted
	// under that client, and capped and reported as any other.
	Exempt func(netip.Addr) bool
	// HeaderTimeout closes a connection that has not begun a request this
	// long after it was accepted: for HTTP/1.1 it matches the server's
	// ReadHeaderTimeout, for HTTP/2 (where net/http keeps a connection
	// without a stream until its IdleTimeout) it is the only bound. Zero
	// means none. It takes effect only for servers whose ConnContext and
	// Handler come from this Listener.
	HeaderTimeout time.Duration
	// LogEvery is the most often a refusal is logged per source (and for
	// the total cap); zero means 1m.
	LogEvery time.Duration
	Log      *slog.Logger
	// Abuse, if set, is told of each connection closed for misuse, with
	// the source's address and a rule name (RuleHTTP2Error,
	// RuleRapidReset). The gateway makes it count toward the source's
	// block like a probe.
	Abuse func(src, rule, detail string)

	refused, acceptErrors, timedOut, abused atomic.Int64

	mu        sync.Mutex // guards open, perSource and logs
	open      int
	perSource map[netip.Prefix]int
	logs      map[string]*folded

	closeOnce sync.Once
	done      chan struct{} // closed by Close; ends an accept back-off
	initOnce  sync.Once
}

// Rule names of connection misuse, as the audit trail shows them.
const (
	RuleHTTP2Error = "http2-protocol-error"
	RuleRapidReset = "http2-rapid-reset"
)

// folded is the log state of one key (a source, or the total cap).
type folded struct {
	last       time.Time
	suppressed int
}

// maxLogKeys bounds the per-source log state; past it refusals from new
// sources fold into one line for all of them.
const maxLogKeys = 10000

// Stats are the listener's counts since it started, for metrics.
type Stats struct {
	Open         int   // connections open now
	Refused      int64 // closed at once at a cap
	AcceptErrors int64 // failed accepts (such as too many open files)
	TimedOut     int64 // closed for beginning no request within HeaderTimeout
	Abused       int64 // closed or reported for HTTP/2 misuse
}

// Stats returns the counts so far.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{Open: open, Refused: l.refused.Load(), AcceptErrors: l.acceptErrors.Load(),
		TimedOut: l.timedOut.Load(), Abused: l.abused.Load()}
}

func (l *Listener) init() {
	l.initOnce.Do(func() {
		l.done = make(chan struct{})
		l.perSource = map[netip.Prefix]int{}
		l.logs = map[string]*folded{}
		if l.Log == nil {
			l.Log = slog.Default()
		}
	})
}

// Close closes the listener and ends an accept back-off under way.
func (l *Listener) Close() error {
	l.init()
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Accept returns the next connection within the caps. Connections past a
// cap are closed here and never reach the server. A failed accept that
// may pass (too many open files, above all) is logged at ERROR and tried
// again after a back-off, as net/http would, so the loop never spins; any
// other error is returned.
func (l *Listener) Accept() (net.Conn, error) {
	l.init()
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !temporary(err) {
				return nil, err
			}
			l.acceptErrors.Add(1)
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else {
				delay = min(2*delay, time.Second)
			}
			l.logFolded("accept", func(more int) {
				l.Log.Error("connlimit: accepting a connection failed; retrying", "err", err, "retry_in", delay, "more_failures", more)
			})
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		if ac := l.admit(c); ac != nil {
			return ac, nil
		}
	}
}

// temporary reports whether a failed accept may pass: the process or the
// system is out of descriptors or buffers, or the error says so itself.
func temporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary()
}

// admit counts c in or refuses it (closes it and returns nil).
func (l *Listener) admit(c net.Conn) *Conn {
	addr := hostOf(c.RemoteAddr())
	src, err := frontdoor.SourcePrefix(addr)
	if err != nil || l.exempt(addr) {
		// Not an IP connection (a test's pipe), or a balancer's: counted
		// in the total only.
		src = netip.Prefix{}
	}
	l.mu.Lock()
	why := ""
	switch {
	case l.Max > 0 && l.open >= l.Max:
		why = "total"
	case l.MaxPerSource > 0 && src.IsValid() && l.perSource[src] >= l.MaxPerSource:
		why = "source"
	default:
		l.open++
		if src.IsValid() {
			l.perSource[src]++
		}
	}
	open, fromSource := l.open, l.perSource[src]
	l.mu.Unlock()
	if why != "" {
		c.Close()
		l.refused.Add(1)
		// The total cap folds into one line for all sources: a flood
		// from many addresses must not flood the log either.
		key := "total"
		if why == "source" {
			key = "source " + src.String()
		}
		l.logFolded(key, func(more int) {
			if why == "total" {
				l.Log.Error("connlimit: refused a connection: the gateway holds the most connections it may (connections.max)",
					"source", addr, "open", open, "max", l.Max, "more_refused", more)
			} else {
				l.Log.Error("connlimit: refused a connection: its source holds the most connections one source may (connections.max_per_source)",
					"source", addr, "prefix", src.String(), "open_from_source", fromSource, "max_per_source", l.MaxPerSource, "more_refused", more)
			}
		})
		return nil
	}
	ac := &Conn{Conn: c, l: l, src: src, addr: addr}
	if l.HeaderTimeout > 0 {
		ac.timer.Store(time.AfterFunc(l.HeaderTimeout, ac.headerTimeout))
	}
	return ac
}

// exempt reports whether addr is one of the peers named by Exempt.
func (l *Listener) exempt(addr string) bool {
	if l.Exempt == nil {
		return false
	}
	a, err := netip.ParseAddr(addr)
	return err == nil && l.Exempt(a.Unmap())
}

// logFolded calls log at once for the first event of key in a LogEvery,
// and for later ones only once LogEvery has passed, with the count of
// those left out.
func (l *Listener) logFolded(key string, log func(more int)) {
	now := time.Now()
	every := l.LogEvery
	if every == 0 {
		every = time.Minute
	}
	l.mu.Lock()
	f := l.logs[key]
	if f == nil {
		if len(l.logs) >= maxLogKeys {
			for k, o := range l.logs {
				if now.Sub(o.last) >= every {
					delete(l.logs, k)
				}
			}
		}
		if len(l.logs) >= maxLogKeys {
			key = "many sources"
			f = l.logs[key]
		}
		if f == nil {
			f = &folded{}
			l.logs[key] = f
		}
	}
	if !f.last.IsZero() && now.Sub(f.last) < every {
		f.suppressed++
		l.mu.Unlock()
		return
	}
	more := f.suppressed
	f.last, f.suppressed = now, 0
	l.mu.Unlock()
	log(more)
}

func (l *Listener) release(c *Conn) {
	l.mu.Lock()
	l.open--
	c.released = true
	if c.src.IsValid() {
		if l.perSource[c.src]--; l.perSource[c.src] <= 0 {
			delete(l.perSource, c.src)
		}
	}
	l.mu.Unlock()
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Conn is an admitted connection; it leaves the counts when closed.
type Conn struct {
	net.Conn
	l *Listener
	// src and addr are the source the connection counts under (its
	// peer's, or the client's its balancer named), guarded by l.mu;
	// released says it no longer counts under src.
	src      netip.Prefix
	addr     string
	released bool
	timer    atomic.Pointer[time.Timer] // HeaderTimeout; nil if none

	closeOnce sync.Once
	begun     atomic.Bool
	// Streams whose handler ended, and of those the ones the client had
	// reset (their context ended before the handler did).
	streams, resets atomic.Int64
	reported        atomic.Bool
}

// Close closes the connection and releases its place.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if t := c.timer.Load(); t != nil {
			t.Stop()
		}
		c.l.release(c)
	})
	return c.Conn.Close()
}

// SetSource counts c under the client addr from now on, in place of its
// peer: a trusted balancer named addr in a PROXY protocol header. Past
// MaxPerSource for addr's source it returns an error, logged as a refusal
// at the cap is; the caller closes c.
func (c *Conn) SetSource(addr netip.Addr) error {
	l := c.l
	addr = addr.Unmap()
	src, err := frontdoor.SourcePrefix(addr.String())
	if err != nil {
		return err
	}
	if l.Exempt != nil && l.Exempt(addr) {
		// Another balancer in a chain of them: it too stands for many
		// clients.
		src = netip.Prefix{}
	}
	l.mu.Lock()
	if c.released {
		l.mu.Unlock()
		return net.ErrClosed
	}
	if src.IsValid() && l.MaxPerSource > 0 && l.perSource[src] >= l.MaxPerSource {
		n := l.perSource[src]
		l.mu.Unlock()
		l.refused.Add(1)
		l.logFolded("source "+src.String(), func(more int) {
			l.Log.Error("connlimit: refused a connection: its source holds the most connections one source may (connections.max_per_source)",
				"source", addr.String(), "prefix", src.String(), "open_from_source", n, "max_per_source", l.MaxPerSource, "via", c.addr, "more_refused", more)
		})
		return errors.New("connlimit: the client's source holds the most connections one source may")
	}
	if c.src.IsValid() {
		if l.perSource[c.src]--; l.perSource[c.src] <= 0 {
			delete(l.perSource, c.src)
		}
	}
	if src.IsValid() {
		l.perSource[src]++
	}
	c.src, c.addr = src, addr.String()
	l.mu.Unlock()
	return nil
}

func (c *Conn) headerTimeout() {
	if !c.begun.Load() {
		c.l.timedOut.Add(1)
		c.Close()
	}
}

// begin notes that a request began on c.
func (c *Conn) begin() {
	if c.begun.CompareAndSwap(false, true) {
		if t := c.timer.Load(); t != nil {
			t.Stop()
		}
	}
}

type connKey struct{}

// ConnContext is the server's ConnContext: it lets Handler find the
// connection a request came on.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	// Through the TLS connection, and the PROXY protocol's, if any.
	for range 4 {
		if ac, ok := c.(*Conn); ok {
			return context.WithValue(ctx, connKey{}, ac)
		}
		tc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = tc.NetConn()
	}
	return ctx
}

// Rapid reset: a connection on which at least rapidResetMin streams, and
// more than half of all its streams, were reset by the client before
// their handler was done is closed and reported. A browser resets a
// stream now and then (a page left before it loaded); a client that
// resets most of what it opens only makes the gateway work for nothing.
const rapidResetMin = 50

// Handler marks the connection of each request as having begun one (so
// HeaderTimeout spares it), and closes and reports an HTTP/2 connection
// whose client resets most of its streams.
func (l *Listener) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*Conn)
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		c.begin()
		next.ServeHTTP(w, r)
		if r.ProtoMajor != 2 {
			return
		}
		n := c.streams.Add(1)
		if r.Context().Err() == nil {
			return
		}
		if resets := c.resets.Add(1); resets >= rapidResetMin && 2*resets > n && c.reported.CompareAndSwap(false, true) {
			l.mu.Lock()
			addr := c.addr
			l.mu.Unlock()
			l.abuse(addr, RuleRapidReset, "the client reset most of the streams it opened on one connection; closed")
			c.Close()
		}
	})
}

// abuse counts and reports a connection closed for misuse.
func (l *Listener) abuse(src, rule, detail string) {
	l.init()
	l.abused.Add(1)
	exempt := l.exempt(src)
	l.logFolded("abuse "+src, func(more int) {
		l.Log.Warn("connlimit: connection closed for misuse", "source", src, "rule", rule, "detail", detail, "more", more, "balancer", exempt)
	})
	if l.Abuse != nil && !exempt {
		l.Abuse(src, rule, detail)
	}
}
