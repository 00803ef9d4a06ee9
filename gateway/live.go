package gateway

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/proxy"
	"github.com/sluis-gateway/sluis/session"
)

// liveConns are the proxied requests of sessions that are in flight: every
// one of them, not only upgraded connections (WebSocket), because any
// response may stream for as long as the app likes (server-sent events, a
// long download, a slow upload). Each is decided again whenever anything
// it depends on changes (recheck) and ended when the new decision refuses
// it.
//
// Every request registers, so registering must cost little: the set is
// split into shards, each a list under its own mutex, and an entry is a
// node of its shard's list, so neither adding nor removing allocates or
// hashes. A request picks its shard at random (math/rand/v2 draws from a
// per-thread source), so concurrent requests rarely share a mutex.
type liveConns struct {
	sessions  *session.Service
	situation func(ctx context.Context, app string) (policy.Situation, error)
	switches  *appSwitches // for when a timed emergency level runs out
	blocked   func(ctx context.Context, src string) bool
	// current, if set, returns the app of that name in the configuration
	// in force: a request is decided again with the app as it is now
	// (a reload may have changed its rules or removed it). Nil decides
	// with the app the request was opened with.
	current func(name string) (sluis.App, bool)
	log     *slog.Logger // nil: slog.Default
	// onlyUpgrades registers upgraded connections only, as sluis did
	// before: for bench/frontdoor, to measure what tracking costs.
	onlyUpgrades bool

	shards [liveShards]liveShard

	rechecks serial // see queueRecheck

	// levelMu guards levelEnd, the end of the timed emergency level a
	// recheck is armed for.
	levelMu  sync.Mutex
	levelEnd time.Time
}

const liveShards = 32

type liveShard struct {
	mu   sync.Mutex // guards head and every entry's prev and next
	head *liveConn
	_    [48]byte // a cache line per shard: shards do not share one
}

// A liveConn is one proxied request in flight, with what deciding it again
// needs.
type liveConn struct {
	token  string
	app    *sluis.App
	source string // the client's address: a block of it ends the request
	method string
	path   string // the canonical path (r.URL.Path)
	// upgrade: an upgraded connection (WebSocket), as Open counts it.
	upgrade bool

	cancel context.CancelCauseFunc // ends the request (see end)
	w      http.ResponseWriter

	shard      uint8
	prev, next *liveConn // in the shard's list; guarded by the shard's mu

	mu   sync.Mutex // guards over and serialises end with remove
	over bool       // the handler has returned or is returning: w is not to be touched
}

// track registers the request r (served on w) of the session with token
// for app, until untrack. It returns the context to serve r in (see
// proxy.ServeIn), which ending the request cancels. With l.onlyUpgrades
// it registers only requests with Upgrade, and returns r's context and
// nil for the others.
func (l *liveConns) track(w http.ResponseWriter, r *http.Request, token string, app *sluis.App, source string) (context.Context, *liveConn) {
	if l.onlyUpgrades && r.Header.Get("Upgrade") == "" {
		return r.Context(), nil
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	c := &liveConn{token: token, app: app, source: source, method: r.Method, path: r.URL.Path, cancel: cancel, w: w, upgrade: r.Header.Get("Upgrade") != "",
		shard: uint8(rand.Uint32() % liveShards)}
	l.add(c)
	return ctx, c
}

// untrack ends the registration of c (nil: none), which the handler must
// do before it returns.
func (l *liveConns) untrack(c *liveConn) {
	if c == nil {
		return
	}
	l.remove(c)
	c.cancel(context.Canceled)
}

func (l *liveConns) add(c *liveConn) {
	s := &l.shards[c.shard]
	s.mu.Lock()
	c.next = s.head
	if s.head != nil {
		s.head.prev = c
	}
	s.head = c
	s.mu.Unlock()
}

func (l *liveConns) remove(c *liveConn) {
	s := &l.shards[c.shard]
	s.mu.Lock()
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		s.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	s.mu.Unlock()
	// Once this returns, no end touches c.w: the handler may return.
	c.mu.Lock()
	c.over = true
	c.mu.Unlock()
}

// cutAll ends every request still in flight (WebSockets among them,
// which net/http's Shutdown does not track): the gateway is shutting down
// and its grace has run out.
func (l *liveConns) cutAll() {
	for _, c := range l.all() {
		l.end(c)
	}
}

// count returns how many requests are registered.
func (l *liveConns) count() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for c := s.head; c != nil; c = c.next {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// all returns the requests registered now.
func (l *liveConns) all() []*liveConn {
	var out []*liveConn
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for c := s.head; c != nil; c = c.next {
			out = append(out, c)
		}
		s.mu.Unlock()
	}
	return out
}

// end ends c, so that its client sees a failure at once, never a
// complete response. Cancelling the request's context stops the proxy
// (its upstream request, or its copy of the response, which then aborts
// the handler: the HTTP/1.1 connection closes without the body's end, an
// HTTP/2 stream is reset). Deadlines in the past stop what the context
// does not: a write blocked on a client that does not read, and the
// server reading what is left of an upload before it closes the
// connection (up to 256 KiB, which on a slow line takes long); an HTTP/2
// stream is reset at once. It reports whether c was still open.
func (l *liveConns) end(c *liveConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return false
	}
	c.cancel(proxy.ErrEnded)
	rc := http.NewResponseController(c.w)
	rc.SetWriteDeadline(time.Now())
	rc.SetReadDeadline(time.Now())
	l.logger().Debug("gateway: ended an open request that is no longer allowed", "app", c.app.Name, "method", c.method, "path", c.path, "source", c.source)
	return true
}

func (l *liveConns) logger() *slog.Logger {
	if l.log == nil {
		return slog.Default()
	}
	return l.log
}

// queueRecheck runs recheck now, or, if one runs, once more after it,
// however many ask meanwhile. Every request in flight is a lot more than
// the WebSockets that were tracked once, and every login changes the
// store's revision: rechecks must not pile up. Each change is still
// followed by a whole recheck that begins after it.
func (l *liveConns) queueRecheck() { l.rechecks.do(l.recheck) }

// serial runs a function one call at a time, folding the calls that come
// while it runs into one more run.
type serial struct {
	mu      sync.Mutex // guards running and again
	running bool
	again   bool
}

func (s *serial) do(fn func()) {
	s.mu.Lock()
	if s.running {
		s.again = true
		s.mu.Unlock()
		return
	}
	s.running = true
	for {
		s.again = false
		s.mu.Unlock()
		fn()
		s.mu.Lock()
		if !s.again {
			s.running = false
			s.mu.Unlock()
			return
		}
	}
}

// recheck ends every open request whose session is gone or whose
// user may no longer use the app.
func (l *liveConns) recheck() {
	defer l.armLevelEnd()
	// One line for all that one change ended (a level can end thousands).
	ended := map[string]int{}
	end := func(c *liveConn) {
		if l.end(c) {
			ended[c.app.Name]++
		}
	}
	for _, c := range l.all() {
		if !l.allowed(c) {
			end(c)
		}
	}
}

// allowed decides c again, as it was decided when it was opened: its
// session, the policy, the level and the app's switch now, and the block
// list.
func (l *liveConns) allowed(c *liveConn) bool {
	ctx := context.Background()
	app := *c.app
	if l.current != nil {
		var ok bool
		if app, ok = l.current(c.app.Name); !ok {
			return false // the app is no longer configured
		}
	}
	a, err := l.sessions.Lookup(ctx, c.token, app.Host)
	if err != nil || a.Session.Stage != sluis.StageComplete {
		return false
	}
	sit, err := l.situation(ctx, app.Name)
	if err != nil {
		return false
	}
	src, _ := netip.ParseAddr(c.source)
	if policy.Decide(a.Identity(), app, policy.Request{Method: c.method, Path: c.path, Source: src}, sit).Outcome != policy.Allow {
		return false
	}
	return l.blocked == nil || !l.blocked(ctx, c.source)
}

// armLevelEnd makes sure a recheck runs when a timed emergency level runs
// out: the level in force changes then (back to the one before, which may
// be stricter) with no change in the store to announce it.
func (l *liveConns) armLevelEnd() {
	if _, _, err := l.switches.level(context.Background()); err != nil {
		return // the periodic recheck comes
	}
	until := l.switches.state.Load().emergency.Until
	d := until.Sub(l.switches.now())
	if until.IsZero() || d <= 0 {
		return
	}
	l.levelMu.Lock()
	defer l.levelMu.Unlock()
	if until.Equal(l.levelEnd) {
		return // armed already
	}
	l.levelEnd = until
	time.AfterFunc(d, l.queueRecheck)
}
