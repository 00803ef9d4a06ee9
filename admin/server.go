package admin

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"html/template"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/session"
)

// Limits of the admin listener. They are its own, smaller than the public
// listener's: a few operators use it.
const (
	// MaxConns caps the admin listener's open connections, and
	// MaxConnsPerSource those from one address.
	MaxConns          = 256
	MaxConnsPerSource = 64
	// HeaderTimeout bounds the time a connection has to send a request's
	// headers (and to finish the TLS handshake).
	HeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, WriteTimeout writing a
	// response (an audit export extends its own), IdleTimeout a kept-alive
	// connection without a request.
	ReadTimeout  = 30 * time.Second
	WriteTimeout = 60 * time.Second
	IdleTimeout  = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 16 << 10
	// MaxBody bounds a form or JSON body.
	MaxBody = 64 << 10
)

// Options are what the admin listener's handler is built from.
type Options struct {
	// Host is admin.host: the only host name the listener answers to.
	Host string
	// Port is the admin listener's port; the console's origin is
	// https://Host, with :Port unless it is 443.
	Port int
	// Portal is the portal's host name: the passkeys' relying party ID
	// (Host is it or a name under it). PortalURL is the portal's public
	// URL, where operators add a passkey.
	Portal, PortalURL string
	// Roles returns the role a user's groups give (config's admin.roles;
	// the highest counts). Nil gives nobody a role.
	Roles func(groups []string) Role
	// AllowTOTP lets a one-time code pass the second factor
	// (admin.allow_totp); otherwise only a passkey does.
	AllowTOTP bool

	Store sluis.Store
	Audit *audit.Recorder
	// Sealer opens TOTP secrets and seals passkey ceremonies.
	Sealer *keys.Sealer
	// Directory, if set, checks the passwords of directory users.
	Directory Directory
	// Revision answers the store's revision for the session cache (a
	// changes.Watcher's); nil asks the store on every request.
	Revision func(ctx context.Context) (int64, error)
	// Counters, if set, keeps the login throttles' counts in the store,
	// shared by every node (several nodes on PostgreSQL).
	Counters sluis.CounterStore

	// Actions make the console's and the API's changes; nil leaves the
	// console without them (and without the API). SetActions replaces
	// them (a reloaded configuration).
	Actions *Actions
	// AuditKey is the public key the trail's checkpoints are signed with,
	// for checking the trail; nil checks the hash chain alone.
	AuditKey ed25519.PublicKey
	// Open, if set, says what the running gateway has open now (attached
	// to it: gateway.Options.Open).
	Open *gateway.Open
	// Zone is where the console shows and reads times; nil means the
	// system's.
	Zone *time.Location

	// Metrics, if set, answers /metrics to the clients metrics.Access
	// lets through; nil (or neither a token nor networks) makes /metrics
	// a 404.
	Metrics http.Handler
	// MetricsToken is the bearer token of admin.metrics.token_file; ""
	// means none.
	MetricsToken string
	// MetricsNetworks are the addresses that need no token.
	MetricsNetworks []netip.Prefix

	Log *slog.Logger
	Now func() time.Time
}

// Server is the admin listener's handler.
type Server struct {
	o       Options
	origin  string   // https://Host[:Port]
	hosts   []string // the Host header values accepted
	handler http.Handler

	sessions *session.Service
	passkeys *mfa.Passkeys
	pages    map[string]*template.Template
	// The login's throttles (see newThrottles).
	userSource, user, source *authn.Throttle
	refusals                 *audit.Refusals

	act atomic.Pointer[Actions] // see SetActions
	dir atomic.Pointer[dirBox]  // see SetDirectory
	api atomic.Pointer[API]

	verifying sync.Mutex    // held while the trail is checked
	exporting sync.Mutex    // held while the trail is exported
	verifyMu  sync.Mutex    // guards verified
	verified  *verification // the last check of the trail
}

// New returns the admin listener's handler. Its background work ends with
// ctx.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Host == "" || o.Port <= 0 || o.Port > 65535 {
		return nil, fmt.Errorf("admin: a host and a port are needed (got %q, %d)", o.Host, o.Port)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Roles == nil {
		o.Roles = func([]string) Role { return RoleNone }
	}
	if o.Portal == "" {
		o.Portal = o.Host
	}
	s := &Server{o: o}
	s.origin = "https://" + net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	s.hosts = []string{net.JoinHostPort(o.Host, strconv.Itoa(o.Port))}
	if o.Port == 443 {
		s.origin = "https://" + o.Host
		s.hosts = append(s.hosts, o.Host)
	}
	var err error
	if s.pages, err = parsePages(s.zone()); err != nil {
		return nil, err
	}
	// Passkeys are the portal's (its name is their relying party ID),
	// answered here for the console's origin alone: an answer made on the
	// portal's pages, or on a look-alike's, is refused.
	if s.passkeys, err = mfa.NewPasskeys(o.Portal, s.origin, "sluis console"); err != nil {
		return nil, err
	}
	s.sessions = &session.Service{Store: o.Store, Now: o.Now, IdleTimeout: SessionIdle, Revision: o.Revision}
	s.userSource, s.user, s.source = newThrottles(o.Now)
	for name, th := range map[string]*authn.Throttle{"admin-user-source": s.userSource, "admin-user": s.user, "admin-source": s.source} {
		if o.Counters != nil {
			th.Store, th.Name, th.Log = o.Counters, name, o.Log
		}
	}
	s.SetActions(o.Actions)
	s.refusals = &audit.Refusals{Now: o.Now}
	if o.Audit != nil {
		go func() {
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				for _, e := range s.refusals.Flush() {
					o.Audit.Record(ctx, e)
				}
			}
		}()
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.Handler
		switch rt.Access {
		case "none", "metrics":
		case "api":
			h = s.authed(true, h)
		default:
			h = s.authed(false, h)
		}
		mux.Handle(rt.Pattern, h)
	}
	mux.Handle("/", http.HandlerFunc(s.notFound))
	s.handler = s.hostCheck(s.secureHeaders(s.sameOrigin(mux)))
	return s, nil
}

// Origin is the console's origin, https://Host[:Port].
func (s *Server) Origin() string { return s.origin }

// Handler returns the handler of the admin listener.
func (s *Server) Handler() http.Handler { return s.handler }

// Route is one route of the admin listener.
type Route struct {
	Pattern string // net/http ServeMux pattern
	// Access is what a request needs: "none" (the login pages, assets),
	// "metrics" (a bearer token or an address in admin.metrics.networks),
	// "api" (a logged-in operator; the API checks each endpoint's role)
	// or a role name (a logged-in operator; the role is what the page
	// needs, checked by the page and by Actions).
	Access  string
	Handler http.Handler
}

func (s *Server) routes() []Route {
	h := s.wrap
	routes := []Route{
		{"GET /login", "none", h(s.loginForm)},
		{"POST /login", "none", h(s.login)},
		{"GET /login/key", "none", h(s.keyForm)},
		{"POST /login/key/begin", "none", h(s.keyBegin)},
		{"POST /login/key/finish", "none", h(s.keyFinish)},
		{"POST /login/code", "none", h(s.codeLogin)},
		{"POST /logout", "viewer", h(s.logout)},
		{"/metrics", "metrics", s.metricsGuard(s.o.Metrics)},
	}
	for name := range assets {
		routes = append(routes, Route{"GET " + name, "none", http.HandlerFunc(s.asset)})
	}
	return append(routes, s.consoleRoutes()...)
}

// Routes lists the admin listener's routes, for tests and the README.
func (s *Server) Routes() []Route { return s.routes() }

// HTTPServer returns the admin listener's own server with its limits:
// nothing of the public listener's server is shared.
func (s *Server) HTTPServer(tlsConf *tls.Config, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           s.handler,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 100, MaxReadFrameSize: 64 << 10, MaxReceiveBufferPerStream: 256 << 10, MaxReceiveBufferPerConnection: 1 << 20},
		// "OPTIONS *" goes to the host check like everything else.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     errorLog,
	}
}

// hostCheck answers 421 to a request for any host but admin.host (with
// the listener's port): a page of another site that a DNS rebinding
// points at the listener's address names its own host. The TLS server
// name, when the client sent one, must be admin.host too.
func (s *Server) hostCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		ok := false
		for _, h := range s.hosts {
			ok = ok || host == h
		}
		// A scraper (Prometheus) names the address it connects to; the
		// address literal is safe from DNS rebinding, whose requests carry
		// the other site's name. For /metrics only, which takes no cookie.
		ok = ok || (r.URL.Path == "/metrics" && isOwnAddress(r, host))
		if r.TLS != nil && r.TLS.ServerName != "" && !strings.EqualFold(r.TLS.ServerName, s.o.Host) {
			ok = false
		}
		if !ok {
			s.headers(w)
			errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: http.StatusMisdirectedRequest, Cause: "admin: not the admin host"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isOwnAddress reports whether host is the IP address and port the
// request's connection was accepted on.
func isOwnAddress(r *http.Request, host string) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	want, err := netip.ParseAddrPort(local.String())
	if err != nil {
		return false
	}
	got, err := netip.ParseAddrPort(host)
	return err == nil && got.Addr().Unmap() == want.Addr().Unmap() && got.Port() == want.Port()
}

// csp is the console's Content-Security-Policy: its own script and style
// only (no inline script or style), no frames, forms only to itself.
const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets the headers every answer of the admin listener carries.
func (s *Server) headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (s *Server) secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.headers(w)
		next.ServeHTTP(w, r)
	})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: http.StatusNotFound, Cause: "admin: no such page"})
}

// errStatus is an error that answers with its status.
type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }
