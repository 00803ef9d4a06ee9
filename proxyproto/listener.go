package proxyproto

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Listener takes the PROXY protocol on the connections of the listener it
// wraps. The header is read by the connection's first RemoteAddr or Read,
// in the server's goroutine for that connection, never in Accept: a peer
// that sends nothing holds up only itself, and for at most Timeout.
type Listener struct {
	net.Listener
	// Trusted reports whether a peer is a trusted proxy: its connections
	// must begin with a header, and the header's source becomes their
	// remote address. A connection from any other peer that begins with
	// a header is closed. Required.
	Trusted func(netip.Addr) bool
	// Timeout bounds the reading of the header (and, from an untrusted
	// peer, of the first byte that shows there is none). Zero means 10s.
	Timeout time.Duration
	// Log is told of refused connections, at most one line a minute
	// with the count of those it stands for; nil means slog.Default.
	Log *slog.Logger

	refused  atomic.Int64
	logMu    sync.Mutex // guards lastLog
	lastLog  time.Time
	suppress int
}

// Accept returns the next connection, wrapped: its header is read later.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, l: l}, nil
}

// Refused is how many connections were closed for a missing, malformed
// or untrusted header.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Conn is a connection whose remote address is the client's, as a
// trusted proxy's header names it.
type Conn struct {
	net.Conn
	l *Listener

	once    sync.Once
	err     error    // why the connection was refused; nil if it was not
	remote  net.Addr // the client's address; the peer's when the header named none
	pending []byte   // bytes read past the header (or, untrusted, the first read)

	mu           sync.Mutex // guards readDeadline
	readDeadline time.Time
}

// NetConn returns the connection the header was read from.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// RemoteAddr returns the client's address: from a trusted proxy, the
// header's source (the proxy's own for a LOCAL or UNKNOWN header); from
// anyone else, the peer. It reads the header first if that has not
// happened yet.
func (c *Conn) RemoteAddr() net.Addr {
	c.once.Do(c.handshake)
	return c.remote
}

// Read reads past the header, reading it first if that has not happened
// yet; on a refused connection it returns why.
func (c *Conn) Read(b []byte) (int, error) {
	c.once.Do(c.handshake)
	if c.err != nil {
		return 0, c.err
	}
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// SetDeadline and SetReadDeadline are remembered, so that the header's own
// deadline gives way to them once the header is read.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// Sourcer is what the connection wrapped may be (connlimit.Conn is): told
// that a trusted proxy named addr as the client, it counts the connection
// under addr from then on, or refuses it.
type Sourcer interface {
	SetSource(addr netip.Addr) error
}

var errUntrusted = errors.New("proxyproto: a PROXY header from a peer that is not a trusted proxy")

func (c *Conn) handshake() {
	peer := c.Conn.RemoteAddr()
	c.remote = peer
	var peerIP netip.Addr
	if ta, ok := peer.(*net.TCPAddr); ok {
		peerIP = ta.AddrPort().Addr().Unmap()
	}
	timeout := c.l.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	user := c.readDeadline
	c.mu.Unlock()
	if !user.IsZero() && user.Before(deadline) {
		deadline = user
	}
	c.Conn.SetReadDeadline(deadline)
	h, err := c.readHeader(c.l.Trusted(peerIP))
	if err == nil {
		err = c.Conn.SetReadDeadline(user)
	}
	if err == nil && !h.Local && h.Source.IsValid() {
		if s, ok := c.Conn.(Sourcer); ok {
			err = s.SetSource(h.Source.Addr())
		}
		if err == nil {
			c.remote = net.TCPAddrFromAddrPort(h.Source)
		}
	}
	if err != nil {
		c.err = err
		c.pending = nil
		c.Conn.Close()
		c.l.logRefusal(peerIP, err)
	}
}

// readHeader reads the header of a trusted peer's connection, or from an
// untrusted peer just enough to see that it sends none (a TLS handshake
// begins with 0x16; a header with 'P' or '\r'). Bytes read past the
// header are kept for Read.
func (c *Conn) readHeader(trusted bool) (Header, error) {
	buf := make([]byte, 0, 256)
	for {
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !trusted && len(buf) > 0 {
			if _, _, perr := Parse(buf[:1]); perr != ErrNoHeader {
				return Header{}, errUntrusted
			}
			c.pending = buf
			return Header{}, nil
		}
		if trusted && len(buf) > 0 {
			h, hn, perr := Parse(buf)
			switch {
			case perr == nil:
				c.pending = buf[hn:]
				return h, nil
			case perr == ErrNoHeader:
				return Header{}, fmt.Errorf("%w from a trusted proxy (proxy_protocol is on)", ErrNoHeader)
			case perr != ErrIncomplete:
				return Header{}, perr
			}
		}
		if err != nil {
			return Header{}, fmt.Errorf("proxyproto: reading the header: %w", err)
		}
		if len(buf) == cap(buf) {
			if cap(buf) >= MaxV2 {
				return Header{}, errV2
			}
			buf = append(make([]byte, 0, MaxV2), buf...)
		}
	}
}

func (l *Listener) logRefusal(peer netip.Addr, err error) {
	l.refused.Add(1)
	log := l.Log
	if log == nil {
		log = slog.Default()
	}
	now := time.Now()
	l.logMu.Lock()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < time.Minute {
		l.suppress++
		l.logMu.Unlock()
		return
	}
	more := l.suppress
	l.lastLog, l.suppress = now, 0
	l.logMu.Unlock()
	log.Warn("proxyproto: connection refused", "peer", peer.String(), "err", err, "more_refused", more)
}
