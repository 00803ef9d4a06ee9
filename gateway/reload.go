package gateway

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/portal"
	"github.com/sluis-gateway/sluis/proxy"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/sso"
	"github.com/sluis-gateway/sluis/tunnel"
)

// Gateway is the public handler of a gateway (New). Its configuration can
// be replaced while it serves (Reload): what a configuration decides is
// one immutable state, swapped in at once, and every request reads it
// once, so a request is decided, routed and proxied under one
// configuration, the old or the new, never a mix (as Pomerium's
// proxy/state.go does).
type Gateway struct {
	ctx  context.Context
	o    Options // as New was given them; o.Config is the first configuration
	base func(host string) string

	// Kept across reloads (see New).
	audit      *audit.Recorder
	sessions   *session.Service
	refusals   *audit.Refusals
	passkeys   *mfa.Passkeys
	blocks     *frontdoor.BlockList
	blockedNow func(ctx context.Context, src string) bool
	switches   *appSwitches
	live       *liveConns
	denied     *audit.Folder
	tunnels    *tunnel.Server
	transport  *proxy.Transport

	mu sync.Mutex // serialises Reload; guards transports
	// transports are the upstream transports of apps with a response
	// header timeout of their own, by that timeout (connections to
	// upstreams are kept across reloads).
	transports map[time.Duration]*proxy.Transport

	state atomic.Pointer[state]
}

// state is what one configuration decides: the apps and their rules, the
// portal with its providers, the situation's break-glass staff, strict
// level and time zone, the probe limits, the tunnels' apps and limits. It
// is never modified once installed.
type state struct {
	config     *config.Config
	apps       map[string]sluis.App // every app, by name
	situations *situations
	portal     *portal.Portal
	detector   *frontdoor.Detector
	tunnels    tunnel.Settings
	door       http.Handler
	// stop ends the state's background work (its detector's flushes, its
	// directory's re-checks) once another state replaced it.
	stop context.CancelFunc
}

// Providers are the identity providers made from a configuration (they
// read files and dial out, so the caller makes them): the directory and
// how often it is asked again about live sessions, and the OpenID Connect
// providers. Zero values mean none.
type Providers struct {
	Directory        portal.Directory
	DirectoryRecheck time.Duration
	SSO              []*sso.Provider
}

// ServeHTTP serves r under the configuration in force when it arrived.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.state.Load().door.ServeHTTP(w, r)
}

// Config returns the configuration in force.
func (g *Gateway) Config() *config.Config { return g.state.Load().config }

// Reload replaces the gateway's configuration with c, which must be valid
// (config.Load) and must agree with the running one on every setting that
// cannot change while running (config.Config.Replaceable says which; the
// caller checks, and keeps the listener's settings and TLS certificate).
// prov are the providers made from c. On an error nothing changed: the
// running configuration stays in force.
//
// Once it returns nil, every new request is decided under c. Sessions,
// requests in flight and tunnels stay open; each is decided again under c
// at once (queued), and those c refuses end, as with any other change
// (an app removed, a rule narrowed, break-glass staff changed).
func (g *Gateway) Reload(c *config.Config, prov Providers) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, err := g.build(c, prov)
	if err != nil {
		return err
	}
	g.install(st, g.state.Load())
	// Decided again with the new apps and rules: each takes one pass
	// over what is open, in the background as after any change.
	go g.live.queueRecheck()
	go g.tunnels.Recheck()
	return nil
}

// install makes st the state in force in place of old (nil: the first),
// taking over what old remembers that outlives a configuration.
func (g *Gateway) install(st, old *state) {
	if old != nil {
		st.portal.Inherit(old.portal)
		st.detector.Inherit(old.detector)
	}
	// The parts kept across reloads take st's settings before st serves:
	// a tunnel opened under st is decided with st's apps.
	g.tunnels.Configure(st.tunnels)
	g.sessions.SetIdleTimeout(st.config.Session.IdleTimeout.D())
	g.state.Store(st)
	if old != nil {
		old.stop()
	}
}

// situation answers the situation of app under the configuration in
// force, for what outlives a configuration (requests in flight, tunnels).
func (g *Gateway) situation(ctx context.Context, app string) (policy.Situation, error) {
	return g.state.Load().situations.get(ctx, app)
}

// webApp returns the app of that name in the configuration in force.
func (g *Gateway) webApp(name string) (sluis.App, bool) {
	a, ok := g.state.Load().apps[name]
	return a, ok
}

// transportFor returns the upstream transport for apps with response
// header timeout d (zero: the shared one). Callers hold g.mu or run
// before the gateway serves.
func (g *Gateway) transportFor(d time.Duration) *proxy.Transport {
	if d <= 0 {
		return g.transport
	}
	// An app that may answer slowly (long polling, reports) has
	// connections of its own with its own wait.
	tr := g.transports[d]
	if tr == nil {
		tr = proxy.NewTransport()
		tr.ResponseHeaderTimeout, tr.Fallback.ResponseHeaderTimeout = d, d
		g.transports[d] = tr
	}
	return tr
}
