// Package proxy is the authenticating reverse proxy in front of each web
// app. It receives requests that already passed the session and policy
// checks, removes everything a client could use to impersonate the gateway,
// adds the caller's identity (plain headers plus a signed assertion), and
// relays the request with net/http/httputil's ReverseProxy.
//
// It uses ReverseProxy.Rewrite, never Director: Rewrite runs after the
// hop-by-hop headers (including those a client names in Connection) have
// been removed, so a client cannot make the proxy delete the identity
// headers added here.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/session"
)

// Identity headers set for the upstream.
const (
	HeaderUser      = "X-Sluis-User"
	HeaderGroups    = "X-Sluis-Groups"
	HeaderAssertion = "X-Sluis-Assertion"
)

// Proxy relays requests for one app.
type Proxy struct {
	app      sluis.App
	addr     addresses // public and upstream origins
	headers  headerRules
	audience string // the app's public URL
	signer   *assertion.Signer
	now      func() time.Time
	log      *slog.Logger
	rp       *httputil.ReverseProxy
}

// New returns the proxy for app, reachable publicly at appURL.
func New(app sluis.App, appURL string, signer *assertion.Signer, transport http.RoundTripper, now func() time.Time, log *slog.Logger) (*Proxy, error) {
	target, err := url.Parse(app.Upstream)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	addr, err := newAddresses(appURL, app.Upstream)
	if err != nil {
		return nil, err
	}
	if transport == nil {
		transport = http.DefaultTransport // as ReverseProxy does
	}
	p := &Proxy{app: app, addr: addr, headers: newHeaderRules(app), audience: appURL, signer: signer, now: now, log: log}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			p.rewrite(pr)
		},
		Transport:  timed{transport},
		BufferPool: buffers,
		ModifyResponse: func(resp *http.Response) error {
			if err := checkBody(resp); err != nil {
				return err
			}
			cacheControl(resp, app.NoStore)
			p.rewriteResponse(resp)
			return modifyResponse(resp)
		},
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// buffers lends the 32 KiB copy buffers of response bodies, which
// ReverseProxy would otherwise allocate (and zero) for every response.
var buffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

// Put keeps buf for reuse. The proxy only ever writes out what it read into
// a buffer in the same call, so stale bytes in a reused buffer are never sent.
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// request is what the proxy keeps of a request while it relays it, in
// the request's context: the session and the ResponseWriter it answers on.
// It is the context itself (one allocation, as the context.WithValue it
// replaces), so the round trip finds the writer without allocating.
type request struct {
	context.Context
	a *session.Active
	w http.ResponseWriter
}

type requestKey struct{}

func (c *request) Value(key any) any {
	if key == (requestKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// requestOf returns what the proxy keeps of r (in or out), nil for a
// request it is not relaying.
func requestOf(r *http.Request) *request {
	c, _ := r.Context().Value(requestKey{}).(*request)
	return c
}

// UpstreamObserver is implemented by a ResponseWriter that wants to know
// each round trip to the upstream: d from sending the request to its
// response head, or the error that came instead (the metrics'; see
// metrics.App.Handler).
type UpstreamObserver interface {
	ObserveUpstream(d time.Duration, err error)
}

// timed is the app's transport, timed for the UpstreamObserver of the
// request's writer. It adds no allocation.
type timed struct{ rt http.RoundTripper }

func (t timed) RoundTrip(req *http.Request) (*http.Response, error) {
	c := requestOf(req)
	o, ok := UpstreamObserver(nil), false
	if c != nil {
		o, ok = c.w.(UpstreamObserver)
	}
	if !ok {
		return t.rt.RoundTrip(req)
	}
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	o.ObserveUpstream(time.Since(start), err)
	return resp, err
}

// Unwrap returns the writer under every wrapper of w (those with an
// Unwrap method, as http.ResponseController knows them): net/http's own.
// What may run after the handler has returned (the transport's goroutine
// that writes a request body) must hold that one, never a wrapper that is
// reused for another request once the handler returns.
func Unwrap(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// ErrEnded is the cause a caller gives when it cancels a request's context
// (context.WithCancelCause) because the gateway ended the request, not the
// client: a revocation, a policy change. The client then sees the response
// fail (the connection closed without a response or mid-body, or the
// HTTP/2 stream reset), never a complete answer, whether the app had
// answered yet or not.
var ErrEnded = errors.New("the gateway ended the request")

// Serve relays r for the session a. The caller has decided a may use the
// app.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, a *session.Active) {
	p.ServeIn(r.Context(), w, r, a)
}

// ServeIn is Serve in ctx, a context derived from r's, which the request
// gets instead of r's own: a caller that must be able to end the request
// (see ErrEnded) hands its context here rather than copying r for it, as
// every request is copied here anyway.
func (p *Proxy) ServeIn(ctx context.Context, w http.ResponseWriter, r *http.Request, a *session.Active) {
	ctx, ok := p.wrapBody(ctx, w, r)
	if !ok {
		return
	}
	// The app's Content-Type, or none: without this, net/http sniffs one
	// for a response that has none (and declares text/html for an untyped
	// file that starts like HTML). A nil value is sent as no header;
	// ReverseProxy adds the app's to it, and error pages set their own.
	w.Header()["Content-Type"] = nil
	p.rp.ServeHTTP(w, r.WithContext(&request{Context: ctx, a: a, w: w}))
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	var a *session.Active
	if c := requestOf(pr.In); c != nil {
		a = c.a
	}
	h := pr.Out.Header
	p.headers.strip(h)
	StripSessionCookie(h)
	if a == nil {
		// No session: only a CORS preflight of an app with
		// cors_preflight: pass gets here. It carries nothing of the
		// client's identity or address.
		return
	}
	id := a.Identity()
	// Bounded whatever a store holds (groups from before the limits):
	// every request carries them, in the header and the assertion.
	groups, _ := sluis.CapGroups(id.Groups)
	tok, err := a.Memo(p.app.Name, p.now(), func() (string, time.Time, error) {
		tok, exp, err := p.signer.Sign(id.User, groups, p.app.Name, p.audience, p.now())
		// Reuse for the first half of its life, so an upstream always gets
		// an assertion with at least half its lifetime left.
		return tok, exp.Add(-assertion.Lifetime / 2), err
	})
	if err != nil {
		p.log.Error("proxy: signing assertion", "app", p.app.Name, "err", err)
	}
	h[HeaderUser] = []string{id.User}
	h[HeaderGroups] = []string{sluis.JoinGroups(groups)}
	h[HeaderAssertion] = []string{tok}
	for _, ih := range p.headers.identity {
		if v, ok := identityValue(id, groups, ih.value); ok {
			h[ih.name] = []string{v}
		}
	}
	pr.SetXForwarded()
	p.rewriteHost(pr)
}

// StripSessionCookie removes the gateway's own cookies (the session cookie
// and its helpers, see session.GatewayCookie) from the Cookie headers,
// leaving the app's own cookies as they were.
func StripSessionCookie(h http.Header) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	var b strings.Builder
	for _, v := range vals {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ";")
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if name, _, _ := strings.Cut(part, "="); session.GatewayCookie(strings.TrimSpace(name)) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	vals[0] = b.String()
	h["Cookie"] = vals[:1]
}

// cacheControl keeps an app's responses out of shared caches: a response
// without the app's own Cache-Control gets "private", and every response of
// an app with NoStore gets "no-store" (nothing of it stays in the browser
// either).
func cacheControl(resp *http.Response, noStore bool) {
	switch {
	case noStore:
		resp.Header["Cache-Control"] = []string{"no-store"}
	case len(resp.Header["Cache-Control"]) == 0:
		resp.Header["Cache-Control"] = []string{"private"}
	}
}

// modifyResponse drops any attempt by an upstream to set or clear the
// gateway's own cookies.
func modifyResponse(resp *http.Response) error {
	sc := resp.Header["Set-Cookie"]
	if len(sc) == 0 {
		return nil
	}
	kept := sc[:0:0]
	for _, c := range sc {
		name, _, _ := strings.Cut(c, "=")
		if !session.GatewayCookie(strings.TrimSpace(name)) {
			kept = append(kept, c)
		}
	}
	resp.Header["Set-Cookie"] = kept
	return nil
}

// refuseBody answers a request whose body was refused or cut, and logs it
// with the error ID.
func (p *Proxy) refuseBody(w http.ResponseWriter, r *http.Request, status int, err error) {
	errpage.Refuse(w, r, p.log, errpage.Refusal{Status: status, Cause: "request body cut or refused; the app's answer is not relayed",
		User: p.user(r), App: p.app.Name, Err: err})
}

// user is the name of the user r is from, if it has a session.
func (p *Proxy) user(r *http.Request) string {
	if c := requestOf(r); c != nil && c.a != nil {
		return c.a.User.Name
	}
	return ""
}

// upstreamError answers 502 with the gateway's own page; the cause goes to
// the log only.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(context.Cause(r.Context()), ErrEnded) {
		// Not a 502, and not the empty 200 that a handler writing
		// nothing would give: the request failed. (Once the response
		// has begun, ReverseProxy aborts the same way.)
		panic(http.ErrAbortHandler)
	}
	if status, berr, failed := bodyStatus(r); failed {
		// The upload was cut: never a success, and said so in the log.
		p.refuseBody(w, r, status, berr)
		return
	}
	if r.Context().Err() != nil {
		return // the client went away; nobody to answer
	}
	errpage.Refuse(w, r, p.log, errpage.Refusal{Status: http.StatusBadGateway, Cause: "upstream failed", User: p.user(r), App: p.app.Name, Err: err})
}
