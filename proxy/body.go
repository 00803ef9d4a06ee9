package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// An upload is bounded by the time between its reads (the app's BodyIdle)
// and, if the app sets one, by its size; never by its total time, so a
// large file on a slow line arrives whole. A body that is cut (stalled,
// too large, the client gone) never ends in a 2xx: the proxy waits for the
// body to end before it relays a successful response, and answers with an
// error instead when it did not arrive whole.

// DefaultBodyIdle is the longest pause between two reads of a request
// body when the app sets none.
const DefaultBodyIdle = 60 * time.Second

var (
	errBodyTooLarge = errors.New("the request body is larger than the app allows")
	errBodyStalled  = errors.New("the request body stalled (no bytes within the idle time)")
)

type bodyKey struct{}

// body relays a request body, extending the connection's read deadline
// before every read and recording how the body ended.
type body struct {
	r    io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	max  int64 // 0: no cap
	n    int64 // read so far; only the reader touches it

	once sync.Once
	done chan struct{} // closed when the body ended
	err  error         // how: io.EOF when whole; set before done closes
}

func newBody(w http.ResponseWriter, r io.ReadCloser, idle time.Duration, max int64) *body {
	if idle <= 0 {
		idle = DefaultBodyIdle
	}
	return &body{r: r, rc: http.NewResponseController(w), idle: idle, max: max, done: make(chan struct{})}
}

func (b *body) Read(p []byte) (int, error) {
	// The server's own ReadTimeout counts from the request's start; this
	// replaces it for the body with a deadline between reads.
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		n, err = 0, errBodyTooLarge
	}
	if err != nil && isTimeout(err) {
		err = errBodyStalled
	}
	if err != nil {
		b.end(err)
	}
	return n, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func (b *body) Close() error {
	b.end(errors.New("the request body was closed before its end"))
	return b.r.Close()
}

func (b *body) end(err error) {
	b.once.Do(func() {
		b.err = err
		close(b.done)
	})
}

// whole waits, at most the idle time after the last read would allow,
// until the body ended, and returns nil if it arrived whole.
func (b *body) whole() error {
	select {
	case <-b.done:
	case <-time.After(b.idle + time.Second):
		return errBodyStalled
	}
	if errors.Is(b.err, io.EOF) {
		return nil
	}
	return b.err
}

// wrapBody puts the app's bounds on r's body (r.Body is replaced) and
// returns ctx with the bounded body. It returns false when the body is
// refused outright (a Content-Length over the app's cap: 413 written).
func (p *Proxy) wrapBody(ctx context.Context, w http.ResponseWriter, r *http.Request) (context.Context, bool) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return ctx, true
	}
	if p.app.MaxBody > 0 && r.ContentLength > p.app.MaxBody {
		p.refuseBody(w, r, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return ctx, false
	}
	// The transport may read the body after the handler has returned:
	// the body holds net/http's own writer (see Unwrap).
	b := newBody(Unwrap(w), r.Body, p.app.BodyIdle, p.app.MaxBody)
	r.Body = b
	return context.WithValue(ctx, bodyKey{}, b), true
}

// bodyOf returns the bounded body of a request (in or out), if it has one.
func bodyOf(r *http.Request) *body {
	b, _ := r.Context().Value(bodyKey{}).(*body)
	return b
}

// checkBody refuses a successful response to a request whose body did
// not arrive whole: the app may have taken a truncated upload for a whole
// one, and the client must not be told it succeeded.
func checkBody(resp *http.Response) error {
	b := bodyOf(resp.Request)
	if b == nil || resp.StatusCode >= 300 {
		return nil
	}
	return b.whole()
}

// bodyStatus is the status for a request whose body failed, and whether
// it did.
func bodyStatus(r *http.Request) (int, error, bool) {
	b := bodyOf(r)
	if b == nil {
		return 0, nil, false
	}
	select {
	case <-b.done:
	default:
		return 0, nil, false
	}
	switch {
	case errors.Is(b.err, io.EOF):
		return 0, nil, false
	case errors.Is(b.err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, b.err, true
	case errors.Is(b.err, errBodyStalled):
		return http.StatusRequestTimeout, b.err, true
	}
	return http.StatusBadRequest, b.err, true
}
