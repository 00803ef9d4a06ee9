// Package gateway assembles the public handler of a sluis gateway from its
// parts: the front door first, then the portal for the portal host, and for
// each app host the session check, the policy decision and the proxy. It
// does not listen; cmd/sluis does.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/handover"
	"github.com/sluis-gateway/sluis/health"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/lease"
	"github.com/sluis-gateway/sluis/metrics"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/portal"
	"github.com/sluis-gateway/sluis/proxy"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/sso"
	"github.com/sluis-gateway/sluis/tunnel"
)

// Options are what a gateway is built from.
type Options struct {
	Config *config.Config
	Store  sluis.Store
	Sealer *keys.Sealer
	Signer *assertion.Signer
	// PublicPort is the port in every URL the gateway builds (and the
	// origin of its pages, passkeys and return URLs): the one users
	// reach, config.Config.PublicPort; the listener's own only when
	// nothing stands in front of it.
	PublicPort int
	Now        func() time.Time // nil means time.Now
	Log        *slog.Logger
	// Revision answers the store's current revision for the session
	// cache; nil means asking the store on every request.
	Revision func(ctx context.Context) (int64, error)
	// Audit records the gateway's events; nil means a recorder writing to
	// Store only.
	Audit *audit.Recorder
	// Directory, if set, authenticates directory users (LDAP or Active
	// Directory).
	Directory portal.Directory
	// DirectoryRecheck, if set, is how often users of Directory with live
	// sessions are checked again (Directory must then be a Rechecker).
	DirectoryRecheck time.Duration
	// SSO are the OpenID Connect providers (their secrets read).
	SSO []*sso.Provider
	// OnChange registers a function to run whenever the revision changes,
	// to re-check the requests in flight (streaming responses, upgraded
	// connections); nil means they are re-checked only every
	// RecheckInterval.
	OnChange func(func())
	// TrackOnlyUpgrades is for bench/frontdoor alone, which measures
	// what tracking every request costs: it tracks only upgraded
	// connections (WebSocket), so a streaming response outlives its
	// session's revocation. Never set it in a gateway.
	TrackOnlyUpgrades bool
	// ConnAbuse, if set, is handed the function that counts a
	// connection's misuse (an HTTP/2 protocol error, a rapid reset) by
	// its source address toward the source's block, as a probe counts,
	// for the listener, which sees connections before any request.
	ConnAbuse func(report func(ctx context.Context, src, rule, detail string))
	// Health keeps the node's readiness (/readyz) and tells a store that
	// cannot be reached from other failures; nil means a node that is
	// always ready.
	Health *health.Checker
	// Cut, if set, is closed when a shutdown's grace has run out: open
	// tunnels and upgraded connections (WebSocket), which net/http's
	// Shutdown does not end, are cut then.
	Cut <-chan struct{}
	// Counters, if set, keeps the throttles' counts and the probe
	// counts in the store, so that nodes sharing it share every budget
	// (several nodes on PostgreSQL). Nil keeps them in memory: right for
	// one node, and cheaper.
	Counters sluis.CounterStore
	// Holder names this node in the store (its shares of the count of a
	// user's tunnels, with Counters; see package lease).
	Holder string
	// Holds, if set, says whether this node holds the named lease (see
	// package lease): the directory re-check runs only on the node that
	// holds lease.DirectoryRecheck. Nil means always (one node).
	Holds func(name string) bool
	// OnReload, if set, is told the outcome of every reload of the
	// configuration (`sluis reload`, SIGHUP): true when the new one is in
	// force, false when it was rejected and the running one stays (for
	// the metrics).
	OnReload func(ok bool)
	// Metrics, if set, counts what the gateway does (package metrics);
	// nil counts nothing.
	Metrics *metrics.Metrics
	// Open, if set, is attached to this gateway: it then reads the
	// requests and tunnels open now, for the admin console.
	Open *Open
}

// RecheckInterval is how often the requests in flight (streaming
// responses, WebSockets) are checked against their session and policy even
// when nothing changed, so an expired session ends them too.
const RecheckInterval = 30 * time.Second

// BaseURLFunc returns the function that builds a host's public URL: https,
// with the port unless it is 443.
func BaseURLFunc(port int) func(string) string {
	return func(host string) string {
		if port == 443 {
			return "https://" + host
		}
		return fmt.Sprintf("https://%s:%d", host, port)
	}
}

// Apps converts configured apps to domain apps. An app without allow
// rules allows nobody.
func Apps(c *config.Config) []sluis.App {
	var out []sluis.App
	for _, a := range c.Apps {
		app := sluis.App{Name: a.Name, Host: a.Host, Upstream: a.Upstream, TCP: a.TCP, Essential: a.Essential,
			KeyAtStrict:    slices.Contains(c.Strict.PhishingResistant, a.Name),
			EncodedSlashes: a.EncodedSlashes == config.Pass, PathParams: a.PathParams == config.Pass,
			CORSPreflight: a.CORSPreflight == config.Pass, NoStore: a.Cache == config.NoStore,
			PreserveHost: a.PreserveHost, CrossSitePost: a.CrossSitePost == "allow", ResponseHeaderTimeout: a.Timeouts.ResponseHeader.D(), BodyIdle: a.Timeouts.BodyIdle.D(), MaxBody: int64(a.MaxBody)}
		if a.RequestHeaders != nil {
			app.RequestHeaders = sluis.RequestHeaders{Remove: a.RequestHeaders.Remove, Keep: a.RequestHeaders.Keep}
		}
		for _, name := range slices.Sorted(maps.Keys(a.IdentityHeaders)) {
			app.IdentityHeaders = append(app.IdentityHeaders, sluis.IdentityHeader{Name: name, Value: a.IdentityHeaders[name]})
		}
		for _, r := range a.Allow {
			app.Allow = append(app.Allow, r.Domain())
		}
		out = append(out, app)
	}
	return out
}

// New returns the gateway's public handler. Its background work (re-checking
// the requests in flight and the tunnels) ends with ctx. Reload replaces
// its configuration while it serves.
func New(ctx context.Context, o Options) (*Gateway, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	base := BaseURLFunc(o.PublicPort)
	c := o.Config
	rec := o.Audit
	if rec == nil {
		rec = &audit.Recorder{Store: o.Store, Log: o.Log, Now: o.Now, Metrics: o.Metrics}
	}
	g := &Gateway{ctx: ctx, o: o, base: base, audit: rec, transports: map[time.Duration]*proxy.Transport{}}
	// What follows lives as long as the gateway, across reloads: the
	// sessions' idle clocks, the requests in flight and the tunnels (which
	// a reload decides again, and does not cut), the cached block list and
	// operator's switches, the folding of refusals and denials.
	g.sessions = &session.Service{Store: o.Store, Now: o.Now, IdleTimeout: c.Session.IdleTimeout.D(), Revision: o.Revision}
	g.refusals = &audit.Refusals{Every: c.Audit.FoldRefusals.D(), PerMinute: c.Audit.RefusalsPerMinute, Now: o.Now}
	// Folded refusals are written once their interval has passed, even
	// when the attempts stop.
	foldEvery := c.Audit.FoldRefusals.D()
	if foldEvery == 0 {
		foldEvery = time.Minute
	}
	go every(ctx, min(10*time.Second, max(foldEvery/2, 100*time.Millisecond)), func() {
		for _, e := range g.refusals.Flush() {
			rec.Record(ctx, e)
		}
	})
	// Passkeys are bound to the portal's origin: a look-alike site gets
	// nothing from a user's key.
	pk, err := mfa.NewPasskeys(c.Portal, base(c.Portal), "sluis")
	if err != nil {
		return nil, err
	}
	g.passkeys = pk
	revision := o.Revision
	if revision == nil {
		revision = o.Store.Revision
	}
	g.blocks = &frontdoor.BlockList{Load: o.Store.Blocks, Revision: revision, Now: o.Now}
	if o.ConnAbuse != nil {
		// The detector of the configuration in force.
		o.ConnAbuse(func(ctx context.Context, src, rule, detail string) {
			g.state.Load().detector.ProbeConn(ctx, src, rule, detail)
		})
	}
	g.transport = proxy.NewTransport()
	// One answer to "is this source blocked?" for the front door, the
	// requests in flight and tunnels: the stored list. A store that
	// cannot be read counts as blocked for what is already open (it is
	// checked again within a second) and as not blocked at the front door
	// (which logs it), so a broken store does not lock everyone out.
	g.blockedNow = func(ctx context.Context, src string) bool {
		b, err := g.blocks.Blocked(ctx, src)
		return err != nil || b
	}
	// The operator's controls, read from the store; a reload keeps them.
	g.switches = &appSwitches{store: o.Store, revision: revision, clock: o.Now}
	g.live = &liveConns{sessions: g.sessions, blocked: g.blockedNow, log: o.Log, onlyUpgrades: o.TrackOnlyUpgrades,
		situation: g.situation, switches: g.switches, current: g.webApp}
	g.denied = &audit.Folder{Now: o.Now}
	g.tunnels = &tunnel.Server{Sessions: g.sessions, Audit: rec, Situation: g.situation, Denied: &audit.Folder{Now: o.Now},
		Blocked: g.blockedNow, Dial: (&tunnel.Dialer{}).Dial, Now: o.Now, Log: o.Log, Counters: o.Counters, Holder: o.Holder}
	if o.Open != nil {
		o.Open.attach(g.live, g.tunnels)
	}
	st, err := g.build(o.Config, Providers{Directory: o.Directory, DirectoryRecheck: o.DirectoryRecheck, SSO: o.SSO})
	if err != nil {
		return nil, err
	}
	g.install(st, nil)
	if o.OnChange != nil {
		o.OnChange(g.live.queueRecheck)
	}
	go every(ctx, RecheckInterval, g.live.queueRecheck)
	if o.Counters != nil {
		go every(ctx, tunnel.ShareRenew, func() { g.tunnels.RenewShares(ctx) })
	}
	if o.OnChange != nil {
		o.OnChange(g.tunnels.Recheck)
	}
	if o.Cut != nil {
		go func() {
			select {
			case <-o.Cut:
				g.tunnels.CutAll()
				g.live.cutAll()
			case <-ctx.Done():
			}
		}()
	}
	// Tunnels are checked every second too: it also keeps the sessions of
	// open tunnels from idling out, and ends them at their expiry.
	go every(ctx, time.Second, g.tunnels.Recheck)
	g.setLive()
	return g, nil
}

// build makes the part of the gateway that a configuration decides (see
// state) from c and the providers made from it. It starts the state's
// background work, which ends with the state (install).
func (g *Gateway) build(c *config.Config, prov Providers) (*state, error) {
	o, base := g.o, g.base
	apps := Apps(c)
	ctx, stop := context.WithCancel(g.ctx)
	st := &state{config: c, apps: map[string]sluis.App{}, stop: stop}
	ok := false
	defer func() {
		if !ok {
			stop()
		}
	}()
	for _, app := range apps {
		st.apps[app.Name] = app
	}
	rec := g.audit
	st.situations = &situations{switches: g.switches, now: o.Now, zone: c.Zone(), reauthAfter: c.Strict.ReauthAfter.D(), breakGlass: c.BreakGlass()}
	situation := st.situations.get
	p := &portal.Portal{
		Host: c.Portal, BaseURL: base, Apps: apps, Store: o.Store, Sessions: g.sessions, Audit: rec,
		Sealer: o.Sealer, Signer: o.Signer, Lifetime: c.Session.Lifetime.D(), Now: o.Now, Log: o.Log,
		Directory: prov.Directory, SSO: prov.SSO, Health: o.Health, Counters: o.Counters, Refusals: g.refusals, Metrics: o.Metrics,
		Passkeys: g.passkeys, Situation: situation,
	}
	face, err := pageFace(c, base(c.Portal))
	if err != nil {
		return nil, err
	}
	p.Locale, p.Face = face.Locale, portalFace(c, face.Brand, o.PublicPort)
	if err := p.Init(); err != nil {
		return nil, err
	}
	st.portal = p
	hosts := map[string]http.Handler{}
	blocks := g.blocks
	detector := &frontdoor.Detector{
		BlockAfter: c.Probes.BlockAfter, BlockWindow: c.Probes.BlockWindow.D(), BlockFor: c.Probes.BlockFor.D(),
		EventEvery: c.Probes.EventEvery.D(), Record: rec.Record, Now: o.Now, Counters: o.Counters, Log: o.Log, Metrics: o.Metrics,
		Persist: func(ctx context.Context, b sluis.Block) error {
			// Bounded: past MaxAutoBlocks a source is refused probe by
			// probe, but blocks nothing more, and the trail says so.
			if n, err := blocks.AutoInForce(ctx); err == nil && n >= frontdoor.MaxAutoBlocks {
				o.Log.Error("gateway: too many automatic blocks; not blocking", "source", b.CIDR, "in_force", n)
				return fmt.Errorf("%d automatic blocks are in force, the most there may be", n)
			}
			err := o.Store.AddBlock(ctx, b)
			if err != nil {
				o.Log.Error("gateway: storing an automatic block", "source", b.CIDR, "err", err)
			}
			return err
		},
	}
	st.detector = detector
	live, denied := g.live, g.denied
	var appHosts []string
	for _, app := range apps {
		if app.TCP == "" {
			appHosts = append(appHosts, app.Host)
		}
	}
	for _, app := range apps {
		if app.TCP != "" {
			continue // reached through tunnels, not a host of its own
		}
		tr := g.transportFor(app.ResponseHeaderTimeout)
		px, err := proxy.New(app, base(app.Host), o.Signer, tr, o.Now, o.Log)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", app.Name, err)
		}
		hosts[app.Host] = &appHandler{app: app, sessions: g.sessions, audit: rec, proxy: px, situation: situation,
			login: base(c.Portal) + "/login", base: base(app.Host),
			callback: (&handover.Host{App: app, Store: o.Store, AppHosts: appHosts, BaseURL: base, Portal: c.Portal, Now: o.Now, Log: o.Log}).Callback(),
			logout:   (&handover.Host{App: app, Store: o.Store, AppHosts: appHosts, BaseURL: base, Portal: c.Portal, Now: o.Now, Log: o.Log}).Logout(), log: o.Log, live: live, detector: detector, denied: denied}
		hosts[app.Host] = o.Metrics.App(app.Name).Handler(hosts[app.Host])
	}
	go detector.Run(ctx)

	// Tunnels to TCP apps open on the portal's host, with a token of
	// their own (not a browser's cookie).
	st.tunnels = tunnel.Settings{Apps: map[string]sluis.App{}, IdleTimeout: c.Tunnels.IdleTimeout.D(), MaxPerUser: c.Tunnels.MaxPerUser}
	for _, app := range apps {
		if app.TCP != "" {
			st.tunnels.Apps[app.Name] = app
		}
	}
	tunnels := g.tunnels
	if rc, ok := prov.Directory.(Rechecker); ok && prov.DirectoryRecheck > 0 {
		go every(ctx, prov.DirectoryRecheck, func() {
			if o.Holds == nil || o.Holds(lease.DirectoryRecheck) {
				recheckDirectory(ctx, o.Store, rc, rec, o.Log)
			}
		})
	}
	portalHandler := p.Handler()
	// The portal's host: the portal's own routes (portal.Routes) and the
	// two of `sluis connect`, which answer only to a tunnel token.
	hosts[c.Portal] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, tunnel.PathPrefix):
			tunnels.ServeHTTP(w, r)
		case r.URL.Path == tunnel.LogoutPath:
			tunnels.Logout(w, r)
		default:
			portalHandler.ServeHTTP(w, r)
		}
	})
	known := map[string]bool{}
	for h := range hosts {
		known[h] = true
	}
	lenient := map[string]frontdoor.Leniency{}
	for _, app := range apps {
		if app.TCP == "" && (app.EncodedSlashes || app.PathParams) {
			lenient[app.Host] = frontdoor.Leniency{EncodedSlashes: app.EncodedSlashes, PathParams: app.PathParams}
		}
	}
	// Every error page, on any host, is in the user's language with the
	// organisation's face.
	st.door = errpage.WithFace(face, &frontdoor.Door{Hosts: known, Portal: c.Portal, Detector: detector, Blocks: blocks, Log: o.Log, Lenient: lenient, Proxies: c.Proxies(), Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The front door has canonicalised r.Host and refused unknown ones.
		hosts[r.Host].ServeHTTP(w, r)
	})})
	ok = true
	return st, nil
}

type appHandler struct {
	app      sluis.App
	sessions *session.Service
	audit    *audit.Recorder
	proxy    *proxy.Proxy
	// situation is the situation the app is decided in now.
	situation func(ctx context.Context, app string) (policy.Situation, error)
	login     string       // the portal's login page, where log in and step up decisions send browsers
	base      string       // the app's public base URL
	callback  http.Handler // handover.CallbackPath
	logout    http.Handler // handover.LogoutPath
	log       *slog.Logger
	live      *liveConns
	detector  *frontdoor.Detector
	denied    *audit.Folder
}

func (h *appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A path in the app's lenient form (an encoded slash, a path
	// parameter) is never one of the gateway's own, whatever it decodes
	// to, and needs a session (below).
	lenient := frontdoor.NeedsSession(r)
	if r.URL.Path == handover.CallbackPath && !lenient {
		h.callback.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == handover.LogoutPath && !lenient {
		h.logout.ServeHTTP(w, r)
		return
	}
	var a *session.Active
	tok := session.FromRequest(r)
	if tok != "" {
		var err error
		a, err = h.sessions.Lookup(r.Context(), tok, h.app.Host)
		if err != nil && !errors.Is(err, session.ErrNoSession) {
			errpage.Refuse(w, r, h.log, errpage.Refusal{Status: http.StatusServiceUnavailable, Cause: "session lookup failed", Notice: errpage.StoreUnreachable, App: h.app.Name, Err: err})
			return
		}
	}
	var who sluis.Identity
	if a != nil && a.Session.Stage == sluis.StageComplete {
		who = a.Identity()
	}
	sit, err := h.situation(r.Context(), h.app.Name)
	if err != nil {
		errpage.Refuse(w, r, h.log, errpage.Refusal{Status: http.StatusServiceUnavailable, Cause: "reading the emergency level and app switches failed",
			Notice: errpage.StoreUnreachable, User: who.User, App: h.app.Name, Err: err})
		return
	}
	req := Request(r)
	d := policy.Decide(who, h.app, req, sit)
	switch d.Outcome {
	case policy.Allow:
		h.serve(w, r, a, tok)
	case policy.Login, policy.StepUp:
		if who.User == "" && !h.beforeLogin(w, r, lenient) {
			return
		}
		// The portal asks for what is missing: a login, a fresh second
		// factor, a passkey.
		user := who.User
		if a != nil {
			user = a.User.Name // also of a session whose login is not complete
		}
		handover.Start(w, r, h.login, h.base+returnPath(r), h.log, errpage.Refusal{Cause: d.Reason, User: user, App: h.app.Name})
	default:
		h.deny(w, r, who, d)
	}
}

// Request is what the access decision needs of r: the method, the
// canonical path and the client's address.
func Request(r *http.Request) policy.Request {
	src, _ := netip.ParseAddr(frontdoor.ClientIP(r))
	return policy.Request{Method: r.Method, Path: r.URL.Path, Source: src}
}

// returnPath is the path and query to come back to after login.
func returnPath(r *http.Request) string {
	if r.URL.RawQuery != "" {
		return r.URL.EscapedPath() + "?" + r.URL.RawQuery
	}
	return r.URL.EscapedPath()
}

// beforeLogin answers what the front door leaves to an app host without a
// session, and reports whether the request goes on to log in: a lenient
// path is refused (before login the strict form holds on every host),
// known exploit probes and chunked bodies are recorded and refused, and
// an app that lets them through gets its CORS preflights.
func (h *appHandler) beforeLogin(w http.ResponseWriter, r *http.Request, lenient bool) bool {
	if lenient {
		errpage.Refuse(w, r, h.log, errpage.Refusal{Status: http.StatusBadRequest, Cause: "encoded slash or path parameter without a session", App: h.app.Name})
		return false
	}
	// With a session, the app's own paths are the app's business. A
	// product's path list alone is no probe here: the app may have such
	// paths itself.
	if rule := frontdoor.Match(r); rule != "" && !frontdoor.BroadRule(rule) {
		id := errpage.NewID()
		h.detector.ProbeWithID(r, rule, id)
		errpage.Refuse(w, r, h.log, errpage.Refusal{Status: http.StatusForbidden, Cause: "probe: " + rule, App: h.app.Name, ID: id})
		return false
	}
	if len(r.TransferEncoding) > 0 {
		id := errpage.NewID()
		h.detector.ProbeWithID(r, "refused: Transfer-Encoding before login", id)
		errpage.Refuse(w, r, h.log, errpage.Refusal{Status: http.StatusBadRequest, Cause: "refused: Transfer-Encoding before login", App: h.app.Name, ID: id})
		return false
	}
	if h.app.CORSPreflight && corsPreflight(r) {
		// Browsers send a preflight without credentials, so it can
		// never carry a session: the app answers it, knowing nobody
		// (the proxy adds no identity without a session), and gets
		// no cookie or credential the client sent along.
		r.Header.Del("Cookie")
		r.Header.Del("Authorization")
		h.proxy.Serve(w, r, nil)
		return false
	}
	return true
}

// deny answers a refused request: the user sees the decision's message
// (the emergency level, the app's switch, where or when this part of the
// app is open) or a plain refusal, and the audit trail gets at most one
// event per user, app and minute, with a count. The event names the error
// ID of its page, and the denials folded into the next event show the same
// ID, so every denial's ID finds an event (and each its own log line).
func (h *appHandler) deny(w http.ResponseWriter, r *http.Request, who sluis.Identity, d policy.Decision) {
	id, folds, ok := h.denied.LetID(who.User+"\x00"+h.app.Name, errpage.NewID)
	if ok {
		detail := d.Reason
		if folds > 0 {
			detail += fmt.Sprintf("; %d more denials of this user for this app since the last event", folds)
		}
		h.audit.Record(r.Context(), sluis.Event{Type: sluis.EventAccessDenied, User: who.User,
			Source: frontdoor.ClientIP(r), App: h.app.Name, Outcome: sluis.OutcomeDenied, Detail: detail + "; error ID " + id})
	}
	errpage.Refuse(w, r, h.log, errpage.Refusal{Status: d.Status, Cause: "denied: " + d.Reason, Notice: d.Message, Kind: d.Kind, Detail: d.Detail, User: who.User, App: h.app.Name, ID: id,
		Attrs: []any{"audited", ok}})
}

// serve passes an allowed request to the app. A request lives on after
// this decision for as long as its response streams or its connection is
// upgraded: it is registered so that a revocation or a policy change ends
// it.
func (h *appHandler) serve(w http.ResponseWriter, r *http.Request, a *session.Active, tok string) {
	ctx, lc := h.live.track(w, r, tok, &h.app, frontdoor.ClientIP(r))
	defer h.live.untrack(lc)
	h.proxy.ServeIn(ctx, w, r, a)
}

// corsPreflight reports whether r is a CORS preflight and nothing else:
// OPTIONS with Origin and Access-Control-Request-Method, no body and no
// upgrade.
func corsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" &&
		r.ContentLength == 0 && len(r.TransferEncoding) == 0 && r.Header.Get("Upgrade") == ""
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Rechecker asks the directory about an account again, without its
// password (see directory.Directory.Recheck).
type Rechecker interface {
	Recheck(ctx context.Context, name string) (directory.Account, error)
}

// recheckDirectory asks the directory about each directory user
// who has a live session: an account that is gone, disabled or replaced
// loses its sessions at once (its tunnels and requests in flight with them), and
// changed groups count at once. A directory that cannot answer changes
// nothing.
func recheckDirectory(ctx context.Context, st sluis.Store, dir Rechecker, rec *audit.Recorder, log *slog.Logger) {
	sessions, err := st.Sessions(ctx)
	if err != nil {
		log.Error("gateway: directory recheck: sessions", "err", err)
		return
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, x := range sessions {
		if x.Revoked() || !now.Before(x.ExpiresAt) || seen[x.User] {
			continue
		}
		seen[x.User] = true
		u, err := st.User(ctx, x.User)
		if err != nil || u.Source != sluis.SourceLDAP {
			continue
		}
		acct, err := dir.Recheck(ctx, u.Name)
		why := ""
		switch {
		case errors.Is(err, directory.ErrInvalid):
			why = "the directory account is gone"
		case errors.Is(err, directory.ErrDisabled):
			why = "the account is disabled in the directory"
		case err != nil:
			log.Warn("gateway: directory recheck", "user", u.Name, "err", err)
			continue
		case u.ExternalID != "" && "ldap:"+acct.ID != u.ExternalID:
			why = "another directory account now has this name"
		}
		if why != "" {
			ids, err := st.RevokeSessions(ctx, sluis.SessionFilter{User: u.Name}, now)
			if err != nil {
				log.Error("gateway: directory recheck: revoke", "user", u.Name, "err", err)
				continue
			}
			for _, id := range ids {
				rec.Record(ctx, sluis.Event{Type: sluis.EventSessionRevoked, User: u.Name, Outcome: sluis.OutcomeSuccess, Detail: "session " + id + ": " + why})
			}
			continue
		}
		if !slices.Equal(u.Groups, acct.Groups) {
			if err := st.SetGroups(ctx, u.Name, acct.Groups); err != nil {
				log.Error("gateway: directory recheck: groups", "user", u.Name, "err", err)
				continue
			}
			rec.Record(ctx, sluis.Event{Type: "user.groups", User: u.Name, Outcome: sluis.OutcomeSuccess,
				Detail: "from ldap (recheck): " + strings.Join(u.Groups, ",") + " -> " + strings.Join(acct.Groups, ",")})
		}
		if u.Email != acct.Email || u.DisplayName != acct.DisplayName {
			if err := st.SetProfile(ctx, u.Name, acct.Email, acct.DisplayName); err != nil {
				log.Error("gateway: directory recheck: profile", "user", u.Name, "err", err)
				continue
			}
			rec.Record(ctx, sluis.Event{Type: "user.profile", User: u.Name, Outcome: sluis.OutcomeSuccess, Detail: "from ldap (recheck)"})
		}
	}
}
