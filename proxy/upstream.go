package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Transport sends requests to upstreams. Plain bodiless GET and HEAD
// requests to http:// upstreams, the bulk of a gateway's traffic, are sent
// on the caller's goroutine over a pool of kept-alive connections; Go's
// http.Transport hands every request to two goroutines of its own, which on
// a small machine costs a good share of the gateway's CPU. Everything else
// (request bodies, upgrades, https upstreams) goes to the fallback
// http.Transport. Both use Go's own parser (http.ReadResponse), so framing
// is never improvised here; the fast path writes the head of a bodiless
// request itself (writeHead, which leaves anything unusual to
// Request.Write): sorting the fields for Request.Write cost 7% of the
// gateway's CPU.
type Transport struct {
	Fallback *http.Transport
	// ResponseHeaderTimeout bounds the wait for the response head.
	ResponseHeaderTimeout time.Duration
	// MaxIdlePerHost bounds the idle connections kept per upstream.
	MaxIdlePerHost int
	Dial           func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex
	idle map[string][]*upConn
}

// NewTransport returns the transport shared by all apps. It keeps upstream
// connections alive (Go's default keeps only 2 idle per host, which makes a
// busy proxy reconnect on most requests) and bounds every wait.
func NewTransport() *Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &Transport{
		Fallback: &http.Transport{
			Proxy:                  nil, // upstreams come from configuration; no environment proxy
			DialContext:            dialer.DialContext,
			MaxIdleConns:           1024,
			MaxIdleConnsPerHost:    256,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    10 * time.Second,
			ResponseHeaderTimeout:  60 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: maxResponseHeaderBytes,
			// Relay bodies as the upstream sent them; never ask for gzip on
			// the client's behalf and decompress behind its back.
			DisableCompression: true,
		},
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdlePerHost:        256,
		Dial:                  dialer.DialContext,
	}
}

const maxResponseHeaderBytes = 64 << 10

type upConn struct {
	c    net.Conn
	lr   *headerLimit
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time
}

// idleTimeout drops pooled connections unused this long; upstreams close
// idle connections too, and a fresh dial beats a failed write.
const idleTimeout = 30 * time.Second

func (t *Transport) fast(req *http.Request) bool {
	return req.URL.Scheme == "http" && (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		len(req.TransferEncoding) == 0 && req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == ""
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.fast(req) {
		return t.Fallback.RoundTrip(req)
	}
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "80")
	}
	// A reused connection may have been closed by the upstream just as it
	// was taken from the pool; then the request, having no body and an
	// idempotent method, is sent once more on a fresh connection. Only
	// then: never after a timeout or once any byte of an answer arrived,
	// so a slow request never runs twice.
	for attempt := 0; ; attempt++ {
		uc, reused, err := t.get(req.Context(), addr)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(req, addr, uc)
		if err == nil {
			return resp, nil
		}
		uc.c.Close()
		if !reused || attempt > 0 || req.Context().Err() != nil || uc.lr.read > 0 || !connectionLost(err) {
			return nil, err
		}
	}
}

// connectionLost reports whether err means the peer closed or reset the
// connection (as opposed to a timeout or a malformed answer).
func connectionLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// idleClean reports whether an idle pooled connection is still usable:
// nothing has arrived on it since its last response (an upstream that sends
// more than it framed would otherwise hand those bytes to the next request,
// another user's) and the upstream has not closed it. It reads the socket
// without waiting.
func idleClean(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	clean := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, err := syscall.Read(int(fd), buf[:])
		clean = n < 0 && errors.Is(err, syscall.EAGAIN)
		return true // never wait
	})
	return err == nil && clean
}

func (t *Transport) get(ctx context.Context, addr string) (*upConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for list := t.idle[addr]; len(list) > 0; list = t.idle[addr] {
		uc := list[len(list)-1]
		t.idle[addr] = list[:len(list)-1]
		if now.Sub(uc.used) >= idleTimeout {
			uc.c.Close()
			continue
		}
		t.mu.Unlock()
		if idleClean(uc.c) {
			return uc, true, nil
		}
		uc.c.Close()
		t.mu.Lock()
	}
	t.mu.Unlock()
	c, err := t.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	lr := &headerLimit{r: c, budget: -1}
	return &upConn{c: c, lr: lr, br: bufio.NewReaderSize(lr, 4096), bw: bufio.NewWriterSize(c, 4096)}, false, nil
}

func (t *Transport) put(addr string, uc *upConn) {
	uc.used = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[string][]*upConn{}
	}
	if len(t.idle[addr]) >= t.MaxIdlePerHost {
		uc.c.Close()
		return
	}
	t.idle[addr] = append(t.idle[addr], uc)
}

var errHeaderTimeout = errors.New("upstream: timeout awaiting response headers")

// exchange writes req on uc and reads the response head.
func (t *Transport) exchange(req *http.Request, addr string, uc *upConn) (*http.Response, error) {
	ctx := req.Context()
	// Closing the connection is the one way to stop a blocked read or write
	// when the client goes away.
	stop := context.AfterFunc(ctx, func() { uc.c.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil, errHeaderTimeout
		}
		return nil, err
	}
	uc.lr.read = 0
	uc.c.SetDeadline(time.Now().Add(t.ResponseHeaderTimeout))
	if ok, err := writeHead(uc.bw, req); err != nil {
		return fail(err)
	} else if !ok {
		if err := req.Write(uc.bw); err != nil {
			return fail(err)
		}
	}
	if err := uc.bw.Flush(); err != nil {
		return fail(err)
	}
	var resp *http.Response
	for {
		uc.lr.budget = maxResponseHeaderBytes
		var err error
		resp, err = http.ReadResponse(uc.br, req)
		uc.lr.budget = -1
		if err != nil {
			return fail(err)
		}
		// Informational answers (103 Early Hints) precede the real one.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	uc.c.SetDeadline(time.Time{})
	resp.Body = &upBody{ReadCloser: resp.Body, t: t, addr: addr, uc: uc, stop: stop,
		// After HEAD, a faulty upstream may still send a body: no reuse.
		reusable: !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols && req.Method != http.MethodHead,
		empty:    resp.Body == http.NoBody}
	return resp, nil
}

// upBody returns its connection to the pool only when the body was read to
// its end, so a connection never carries leftovers of one response into the
// next.
type upBody struct {
	io.ReadCloser
	t        *Transport
	addr     string
	uc       *upConn
	stop     func() bool
	reusable bool
	empty    bool
	eof      bool
	closed   bool
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *upBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if !(b.reusable && (b.eof || b.empty)) {
		// Close the connection first: closing a client-side body drains
		// it, which must not wait for the rest of a long response.
		err := b.uc.c.Close()
		b.ReadCloser.Close()
		b.stop()
		return err
	}
	b.ReadCloser.Close()
	// stop reports false if the client's going away already closed the
	// connection; bytes beyond the response mean the upstream does not
	// frame as it says.
	if b.stop() && b.uc.br.Buffered() == 0 {
		b.t.put(b.addr, b.uc)
		return nil
	}
	return b.uc.c.Close()
}

// headerLimit counts bytes read from the connection while a response head
// is parsed, and fails past its budget (-1: no limit).
type headerLimit struct {
	r      io.Reader
	budget int
	read   int64 // bytes read since the exchange began
}

var errHeaderTooLarge = errors.New("upstream: response headers too large")

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.budget == 0 {
		return 0, errHeaderTooLarge
	}
	if l.budget > 0 && len(p) > l.budget {
		p = p[:l.budget]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.budget > 0 {
		l.budget -= n
	}
	return n, err
}
