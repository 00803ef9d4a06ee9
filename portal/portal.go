// Package portal serves the login portal: the login form, the one-time-code
// step, first-login TOTP enrolment, the launcher of apps, logout, the JWKS
// with the assertion keys, and the hand-over of a login to an app host.
//
// Pages are html/template files compiled into the binary and parsed once at
// start; assets are served from a fixed name-to-bytes table. No request
// ever names a file or a template.
package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/handover"
	"github.com/sluis-gateway/sluis/health"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/locale"
	"github.com/sluis-gateway/sluis/metrics"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/sso"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/sluis.css
var css []byte

//go:embed assets/passkey.js
var passkeyJS []byte

//go:embed assets/copy.js
var copyJS []byte

// assets is the complete list of static files: exact names only.
var assets = map[string]struct {
	body []byte
	typ  string
}{
	"/assets/sluis.css":  {css, "text/css; charset=utf-8"},
	"/assets/passkey.js": {passkeyJS, "text/javascript; charset=utf-8"},
	"/assets/copy.js":    {copyJS, "text/javascript; charset=utf-8"},
}

// Limits and lifetimes of the portal.
const (
	maxFormBytes = 16 << 10
	// pendingLifetime bounds the time between password and second factor.
	pendingLifetime = 10 * time.Minute
	// grantLifetime bounds the hand-over from portal to app host.
	grantLifetime = 60 * time.Second
	csrfCookie    = "__Host-sluis-csrf"
	// knownBrowserCookie marks a browser that completed a login (see
	// knownBrowser).
	knownBrowserCookie = "__Host-sluis-browser"
)

// Portal is the login portal. Fill in the exported fields, then call Init.
type Portal struct {
	Host     string                   // the portal's host name
	BaseURL  func(host string) string // public https URL of a host, without trailing slash
	Apps     []sluis.App
	Store    sluis.Store
	Sessions *session.Service
	Audit    *audit.Recorder
	Sealer   *keys.Sealer
	Signer   *assertion.Signer
	Lifetime time.Duration // absolute session lifetime
	Issuer   string        // shown in authenticator apps; "" means "sluis"
	Now      func() time.Time
	Log      *slog.Logger

	// Situation, if set, returns the situation an app (or, for "", the
	// gateway) is decided in now: the emergency level, which users see
	// and which may stop logins, the app's switch, break-glass staff and
	// the age a second factor may have. Nil means a normal day.
	Situation func(ctx context.Context, app string) (policy.Situation, error)
	// Passkeys runs WebAuthn ceremonies; nil turns passkeys off.
	Passkeys *mfa.Passkeys
	// Refusals, if set, folds and bounds the events of refused attempts
	// (see audit.Refusals); nil writes each one.
	Refusals *audit.Refusals
	// Directory, if set, authenticates users that are not local (LDAP or
	// Active Directory) and gives their groups.
	Directory Directory
	// SSO are the OpenID Connect providers, each a button on the login
	// page.
	SSO []*sso.Provider
	// Locale gives every page's words in the user's language (see
	// face.go); nil means English only, dates in UTC.
	Locale *locale.Set
	// Face is the organisation's name, logo, colour, help desk and the
	// apps' titles, shown on every page (see face.go); the zero value
	// shows "sluis" and the apps' names.
	Face Face
	// Health answers /readyz and tells a store that cannot be reached
	// from other failures (a clear 503 page instead of a 500); nil means
	// a node that is always ready.
	Health *health.Checker

	// Throttles for password and code guessing. A guess counts against
	// the user from that source (strict), the user from anywhere (gentle:
	// its lock is short, so an attacker cannot keep a real user out for
	// long) and the source (strict, for spraying many users). Nil means the
	// defaults set by Init.
	UserSourceThrottle *authn.Throttle
	UserThrottle       *authn.Throttle
	SourceThrottle     *authn.Throttle

	// Counters, if set, keeps every throttle's counts (those above
	// included) in the store, so that nodes sharing it share the budgets
	// (several nodes on PostgreSQL). Nil keeps them in memory: right for
	// one node, and a store write fewer per guess.
	Counters sluis.CounterStore
	// Metrics, if set, counts logins and second factors by method and
	// outcome.
	Metrics *metrics.Metrics

	deviceThrottle  *authn.Throttle // device-login starts and unknown polls, by source
	browserThrottle *authn.Throttle // guesses from a known browser, by browser
	// places are the queue places of logins told busy, by account and
	// source: asking again they wait behind those who came before them,
	// not behind everyone who came since (authn.Places).
	places         *authn.Places
	directorySlots chan struct{} // directory logins in flight

	brandCSS []byte // /assets/brand.css: the accent colour
	pages    map[string]*template.Template
	csrfKey  []byte
	csp      string
	appHosts map[string]sluis.App
	// cop refuses cross-origin form posts; it trusts the portal's public
	// origin (see Init).
	cop *http.CrossOriginProtection
}

// Init parses the templates and prepares the portal. It fails only on a
// broken build.
func (p *Portal) Init() error {
	// A browser that sends Origin without Sec-Fetch-Site (Safari before
	// 16.4, some embedded browsers) is checked by comparing Origin with
	// Host; but the front door has taken the port off Host, so on any port
	// but 443 the portal's own forms would be refused. The portal's public
	// origin, built from configuration, is trusted instead: an exact
	// match, never derived from the request.
	p.cop = http.NewCrossOriginProtection()
	if err := p.cop.AddTrustedOrigin(p.BaseURL(p.Host)); err != nil {
		return fmt.Errorf("portal: the portal's origin %q: %w", p.BaseURL(p.Host), err)
	}
	p.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errpage.Refuse(w, r, p.Log, errpage.Refusal{Status: http.StatusForbidden, Cause: "portal: cross-origin request refused"})
	}))
	p.pages = map[string]*template.Template{}
	for _, name := range []string{"login", "mfa", "enroll", "launcher", "passkeys", "device", "recovery", "recovered", "sessions"} {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("portal template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	if err := p.initFace(); err != nil {
		return err
	}
	p.csrfKey = make([]byte, 32)
	rand.Read(p.csrfKey)
	p.appHosts = map[string]sluis.App{}
	formTargets := []string{"'self'"}
	for _, a := range p.Apps {
		if a.Host == "" {
			continue // a TCP app
		}
		p.appHosts[a.Host] = a
		formTargets = append(formTargets, p.BaseURL(a.Host))
	}
	// form-action also governs where a form's redirects may lead, so the
	// app hosts that a login hands over to are listed.
	p.csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action " + strings.Join(formTargets, " ") +
		"; frame-ancestors 'none'; base-uri 'none'"
	if p.Issuer == "" {
		p.Issuer = "sluis"
	}
	if p.Health == nil {
		p.Health = &health.Checker{}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.UserSourceThrottle == nil {
		p.UserSourceThrottle = &authn.Throttle{Free: 5, Base: time.Second, Max: 5 * time.Minute, Now: p.Now}
	}
	if p.UserThrottle == nil {
		p.UserThrottle = &authn.Throttle{Free: 20, Base: time.Second, Max: 10 * time.Second, Now: p.Now}
	}
	// As strict as per user and source: a stolen known-browser cookie
	// buys no guesses.
	p.browserThrottle = &authn.Throttle{Free: 5, Base: time.Second, Max: 5 * time.Minute, Now: p.Now}
	p.deviceThrottle = &authn.Throttle{Free: 30, Base: time.Second, Max: 15 * time.Minute, Now: p.Now}
	p.directorySlots = make(chan struct{}, 8)
	// Real time, as the password queue's arrivals are.
	p.places = &authn.Places{}
	if p.SourceThrottle == nil {
		p.SourceThrottle = &authn.Throttle{Free: 20, Base: time.Second, Max: 15 * time.Minute, Now: p.Now}
	}
	if p.Counters != nil {
		for name, th := range map[string]*authn.Throttle{"user-source": p.UserSourceThrottle, "user": p.UserThrottle,
			"source": p.SourceThrottle, "browser": p.browserThrottle, "device": p.deviceThrottle} {
			if th.Store == nil {
				th.Store, th.Name, th.Log = p.Counters, name, p.Log
			}
		}
	}
	return nil
}

// Directory authenticates directory users; see package directory.
type Directory interface {
	Authenticate(ctx context.Context, user, password string) (directory.Account, error)
	// Resolve returns the name of the account a typed name denotes,
	// without a password.
	Resolve(ctx context.Context, user string) (string, error)
}

// handlerFunc is a portal handler; a returned error becomes a static page.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one route of the portal host.
type Route struct {
	Pattern string // net/http ServeMux pattern
	// Access says what a request needs to get more than a redirect to the
	// login page: "none" (the pre-login surface), "password" (a session
	// that passed the password step) or "session" (a complete login).
	Access  string
	handler handlerFunc
}

// Routes returns every route of the portal host, in one place: whatever is
// not listed is 404. Those with Access "none" are the whole surface that
// answers before login; a test pins that list.
func (p *Portal) Routes() []Route {
	routes := []Route{
		{"GET /{$}", "session", p.launcher},
		{"POST /logout", "session", p.logout},
		{"GET /mfa", "password", p.mfaForm},
		{"POST /mfa", "password", p.mfa},
		{"GET /enroll", "password", p.enrollForm},
		{"POST /enroll", "password", p.enroll},
		{"POST /mfa/passkey/begin", "password", p.passkeyMFABegin},
		{"POST /mfa/passkey/finish", "password", p.passkeyMFAFinish},
		{"GET /passkeys", "session", p.passkeysPage},
		{"GET /sessions", "session", p.sessionsPage},
		{"POST /sessions/end", "session", p.endSessions},
		{"POST /passkeys/begin", "session", p.passkeyRegisterBegin},
		{"POST /passkeys/finish", "session", p.passkeyRegisterFinish},
		{"POST /passkeys/remove", "session", p.passkeyRemove},
		{"GET /rdp/{app}", "session", p.rdpFile},
		{"GET /device", "session", p.deviceForm},
		{"POST /device", "session", p.deviceDecide},
		{"POST /device/start", "none", p.deviceStart},
		{"POST /device/poll", "none", p.devicePoll},
		{"GET /login", "none", p.loginForm},
		{"POST /login", "none", p.login},
		{"GET /login/oidc/{provider}", "none", p.ssoStart},
		{"GET /login/oidc/{provider}/callback", "none", p.ssoCallback},
		{"POST /login/passkey/begin", "none", p.passwordlessBegin},
		{"POST /login/passkey/finish", "none", p.passwordlessFinish},
		{"GET /.well-known/jwks.json", "none", p.jwks},
		{"GET " + health.LivePath, "none", live},
		{"GET " + health.ReadyPath, "none", p.ready},
	}
	for name := range assets {
		routes = append(routes, Route{"GET " + name, "none", asset})
	}
	routes = append(routes, p.faceRoutes()...)
	return routes
}

// Handler returns the handler for the portal host.
func (p *Portal) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range p.Routes() {
		h := rt.handler
		if rt.Access != "none" {
			h = p.sessionReadable(h)
		}
		mux.Handle(rt.Pattern, p.wrap(h))
	}
	mux.Handle("/", p.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return statusError(http.StatusNotFound)
	}))
	return p.secureHeaders(p.sameOrigin(p.cop.Handler(mux)))
}

// sameOrigin refuses a state-changing request whose Origin is not the
// portal's public origin, when the browser sent no Sec-Fetch-Site (then
// CrossOriginProtection would compare Origin with a Host the front door
// took the port off, and take https://portal for https://portal:8443).
func (p *Portal) sameOrigin(next http.Handler) http.Handler {
	own := p.BaseURL(p.Host)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if o := r.Header.Get("Origin"); o != "" && r.Header.Get("Sec-Fetch-Site") == "" && o != own {
				p.wrap(func(_ http.ResponseWriter, r *http.Request) error {
					noteRefusal(r, "", "cross-origin request refused (Origin is not the portal's)")
					return statusError(http.StatusForbidden)
				}).ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (p *Portal) secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Content-Security-Policy", p.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// sessionReadable answers a route that needs a session with the error of
// the session's lookup, when it failed for another reason than that there
// is no such session (the store cannot be reached): the user then reads
// that (a 503 page, see wrap), instead of being sent to log in again.
func (p *Portal) sessionReadable(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if tok := session.FromRequest(r); tok != "" {
			if _, err := p.Sessions.Lookup(r.Context(), tok, p.Host); err != nil && !errors.Is(err, session.ErrNoSession) {
				return fmt.Errorf("session lookup: %w", err)
			}
		}
		return h(w, r)
	}
}

type statusError int

func (e statusError) Error() string { return http.StatusText(int(e)) }

func (p *Portal) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w, r, n := noted(w, r, p.Log)
		err := h(w, r)
		if err == nil {
			return
		}
		rf := errpage.Refusal{ID: n.id, User: n.user}
		var se statusError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &se):
			rf.Status, rf.Cause = int(se), "portal: "+n.cause
			if n.cause == "" {
				rf.Cause = "portal: " + strings.ToLower(http.StatusText(int(se)))
			}
		case errors.As(err, &mbe):
			rf.Status, rf.Cause = http.StatusRequestEntityTooLarge, "portal: request body too large"
		case p.Health.StoreErr(r.Context(), true) != nil:
			// Not a fault of this request: the store is gone (stopped,
			// cut off), whatever failed first (a throttle, a read). The
			// node recovers by itself when it is back.
			rf.Status, rf.Cause, rf.Notice, rf.Err = http.StatusServiceUnavailable, "portal: the store cannot be reached", errpage.StoreUnreachable, err
		case errors.Is(err, authn.ErrThrottleUnavailable):
			// Failing closed: a guess that cannot be counted where every
			// node sees it is not checked.
			rf.Status, rf.Cause, rf.Notice, rf.Err = http.StatusServiceUnavailable, "portal: the shared throttles cannot be read or written; the attempt was refused", "", err
			rf.Kind = errpage.KindThrottle
		case errors.Is(err, audit.ErrNotStored) || sluis.StorageFull(err):
			// Failing closed: a step whose record cannot be kept is not
			// taken.
			rf.Status, rf.Cause, rf.Notice, rf.Err = http.StatusServiceUnavailable, "portal: storage cannot be written; the step was not taken", "", err
			rf.Kind = errpage.KindStorage
		default:
			rf.Status, rf.Cause, rf.Err = http.StatusInternalServerError, "portal: internal error", err
		}
		errpage.Refuse(w, r, p.Log, rf)
	})
}

func live(w http.ResponseWriter, r *http.Request) error {
	health.Live(w, r)
	return nil
}

func (p *Portal) ready(w http.ResponseWriter, r *http.Request) error {
	p.Health.ServeReady(w, r)
	return nil
}

func asset(w http.ResponseWriter, r *http.Request) error {
	a, ok := assets[r.URL.Path]
	if !ok {
		return statusError(http.StatusNotFound)
	}
	w.Header().Set("Content-Type", a.typ)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err := w.Write(a.body)
	return err
}

func (p *Portal) jwks(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(p.Signer.JWKS())
	return err
}

// ---- pages ----

type pageData struct {
	Title, Error, Notice, CSRF, RD, State, User string
	// Level is the emergency level's notice, shown as a warning.
	Level string
	// Username is the name typed, kept when the login page is shown
	// again.
	Username string
	// The page's language, the organisation's face and the page's own
	// address (for the language switch); set by render.
	L       *locale.Printer
	Face    *Face
	Back    string
	ErrorID string       // set by render on a page with an error status
	QR      template.URL // a data: URI made here, never from input
	Secret  string
	Account string // the account enrolling
	// SecretGroups is Secret in groups of four, for reading.
	SecretGroups []string
	Apps         []appLink
	// Passkeys is set when passkeys are on; HasPasskey when the user has
	// one; KeyOnly when only a passkey completes this step; Query is the
	// flow for the passkey script's requests.
	Passkeys, HasPasskey, KeyOnly, Frozen bool
	// Copy loads the copy button's script (the launcher's commands).
	Copy bool
	// The user's sessions; when this one expires (and after how many
	// idle minutes), and whether there are others to end.
	SessionRows []sessionRow
	Expires     string
	IdleMinutes int
	Others      bool
	Query       string
	Keys        []keyRow
	// The device login being approved.
	DeviceCode, DeviceSource, DeviceAge string
	// Recovery codes shown once, and where to go after reading them.
	Codes []string
	Next  string
	// Download is the codes as a text file (a data: URL made here).
	Download template.URL
	SSO      []ssoLink // single sign-on buttons
}

type appLink struct {
	Name, Host, URL, Off string
	Title, Description   string // shown as written; Title is Name when unset
	Icon                 string // the icon's path on the portal, "" for none
	Hint                 bool   // say that the command prints the address to use
	NeedsKey             bool
	Command              string // for a TCP app: how to reach it
	RDP                  string // for a remote desktop: the .rdp file's path
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, page string, d pageData) error {
	p.dress(r, &d)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	d.ErrorID = p.pageErrorID(w, status, page, d.Error)
	var buf strings.Builder
	if err := p.pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		return err
	}
	w.WriteHeader(status)
	_, err := w.Write([]byte(buf.String()))
	return err
}

// ---- cookies and CSRF ----

func (p *Portal) setSessionCookie(w http.ResponseWriter, token string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// csrfToken returns the token for forms on this page, setting the CSRF
// cookie when the browser has none. The form token is an HMAC of the
// cookie, so a page of another site can neither read nor forge it.
func (p *Portal) csrfToken(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(csrfCookie)
	val := ""
	if err == nil && len(c.Value) == 43 {
		val = c.Value
	} else {
		b := make([]byte, 32)
		rand.Read(b)
		val = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: val, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	return p.csrfFor(val)
}

func (p *Portal) csrfFor(cookie string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Portal) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != 43 {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(p.csrfFor(c.Value)))
}

// parseForm reads a small urlencoded form body and checks its CSRF token.
func (p *Portal) parseForm(w http.ResponseWriter, r *http.Request) (bool, error) {
	// Forms before login come with a Content-Length (the front door
	// refuses chunked ones) and are small: a larger one is refused before
	// a byte of it is read.
	if r.ContentLength > maxFormBytes {
		return false, statusError(http.StatusRequestEntityTooLarge)
	}
	r.Body = http.MaxBytesReader(unwrap(w), r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return false, err
		}
		return false, statusError(http.StatusBadRequest)
	}
	return p.csrfOK(r), nil
}

// current returns the caller's portal session, or nil.
func (p *Portal) current(r *http.Request) *session.Active {
	tok := session.FromRequest(r)
	if tok == "" {
		return nil
	}
	a, err := p.Sessions.Lookup(r.Context(), tok, p.Host)
	if err != nil {
		if !errors.Is(err, session.ErrNoSession) {
			p.Log.Error("portal: session lookup", "err", err)
		}
		return nil
	}
	return a
}

// ---- return URLs ----

// target is a checked place to return to after login.
type target struct {
	host string // the portal or an app host
	path string // path and query, starting with "/"
}

// checkReturn accepts only an absolute https URL whose host and port are
// exactly the portal's or a configured app's, and rebuilds it from
// configuration. Anything else (other hosts, user info, other schemes,
// scheme-relative or backslash tricks, control bytes) is refused.
func (p *Portal) checkReturn(raw string) (target, bool) {
	if raw == "" {
		return target{host: p.Host, path: "/"}, true
	}
	if len(raw) > 2048 {
		return target{}, false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return target{}, false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Opaque != "" || u.Host == "" {
		return target{}, false
	}
	host := u.Hostname()
	if host != p.Host {
		if _, ok := p.appHosts[host]; !ok {
			return target{}, false
		}
	}
	// The port must be the one the gateway's own URLs carry.
	if p.BaseURL(host) != "https://"+u.Host {
		return target{}, false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return target{}, false
	}
	if _, _, err := frontdoor.Canonicalize(path); err != nil {
		return target{}, false
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return target{host: host, path: path}, true
}

func (t target) url(p *Portal) string { return p.BaseURL(t.host) + t.path }

// flow is what a login carries from page to page: where to return to and,
// for an app host, the hash of the state cookie that the app host set on
// the browser that started the login.
type flow struct {
	RD    string // the checked return URL, or ""
	State string // hex SHA-256 of the app host's state cookie, or ""
}

// query returns the flow as a query string for the next page.
func (f flow) query() string {
	v := url.Values{}
	if f.RD != "" {
		v.Set("rd", f.RD)
	}
	if f.State != "" {
		v.Set("state", f.State)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// flowParams returns the checked return target and flow from the request;
// the launcher when the return URL is missing or refused.
func (p *Portal) flowParams(r *http.Request) (target, flow) {
	var f flow
	if st := r.FormValue("state"); len(st) == 64 && isLowerHex(st) {
		f.State = st
	}
	raw := r.FormValue("rd")
	t, ok := p.checkReturn(raw)
	if !ok || raw == "" {
		t, _ = p.checkReturn("")
		return t, f
	}
	f.RD = t.url(p)
	return t, f
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ---- login ----

// level returns the emergency level in force and its reason.
func (p *Portal) level(r *http.Request) (string, string, error) {
	sit, err := p.situation(r.Context(), "")
	return sit.Level, sit.LevelReason, err
}

// situation returns the situation app is decided in now.
func (p *Portal) situation(ctx context.Context, app string) (policy.Situation, error) {
	if p.Situation == nil {
		return policy.Situation{Level: sluis.LevelNormal, Now: p.Now()}, nil
	}
	return p.Situation(ctx, app)
}

// breakGlass reports whether u may log in at lockdown.
func (p *Portal) breakGlass(ctx context.Context, u sluis.User) bool {
	sit, err := p.situation(ctx, "")
	return err == nil && sit.BreakGlass.Allows(sluis.Identity{User: u.Name, Groups: u.Groups})
}

// levelNotice is what users are told about the emergency level in force,
// in r's language; the operator's reason as written.
func (p *Portal) levelNotice(r *http.Request, level, reason string) string {
	switch level {
	case sluis.LevelNormal:
		return ""
	case sluis.LevelClosed, sluis.LevelEssential, sluis.LevelLockdown, sluis.LevelStrict:
		return p.t(r, "level."+level, reason)
	}
	return p.t(r, "level.other", level, reason)
}

func (p *Portal) loginForm(w http.ResponseWriter, r *http.Request) error {
	t, f := p.flowParams(r)
	if r.FormValue("rd") != "" && f.RD == "" {
		p.Log.Info("portal: refused return URL", "source", frontdoor.ClientIP(r))
	}
	if a := p.current(r); a != nil && a.Session.Stage == sluis.StageComplete {
		if p.stale(r.Context(), a) || p.keyWanted(r, a, t) {
			http.Redirect(w, r, "/mfa"+f.query(), http.StatusSeeOther)
			return nil
		}
		return p.continueTo(w, r, a.Session.ID, t, f)
	}
	d := pageData{Title: p.t(r, "login.title"), CSRF: p.csrfToken(w, r), RD: f.RD, State: f.State, Passkeys: p.Passkeys != nil, Query: f.query(), SSO: p.ssoLinks(f)}
	if r.FormValue("logged_out") == "1" {
		d.Notice = p.t(r, "login.logged_out")
	}
	level, reason, err := p.level(r)
	if err != nil {
		return err
	}
	d.Level = p.levelNotice(r, level, reason)
	return p.render(w, r, http.StatusOK, "login", d)
}

// event records what happened where not recording it must not stop the
// request: a refusal, a failure. An event that cannot be stored is counted
// by the recorder and shows as audit.lost later.
func (p *Portal) event(r *http.Request, typ, user, outcome, detail string) {
	p.count(r, typ, outcome, detail) // every attempt, also those the trail folds
	src := frontdoor.ClientIP(r)
	id := ""
	if outcome == sluis.OutcomeFailure || outcome == sluis.OutcomeDenied {
		// The page that answers names the same ID.
		id = noteRefusal(r, user, detail)
	}
	if outcome == sluis.OutcomeFailure && p.Refusals != nil {
		// Refusals are folded and bounded: a flood of wrong passwords
		// cannot fill the disk.
		folded, ok := p.Refusals.Let(typ, user, throttleKey(src), detail)
		if !ok {
			return
		}
		if folded != "" {
			detail += "; " + folded
		}
	}
	if id != "" {
		detail += "; error ID " + id
	}
	p.Audit.Record(r.Context(), sluis.Event{Type: typ, User: user, Source: src, Outcome: outcome, Detail: detail})
}

// record records an event that the step it describes needs: the step is
// not taken when it returns an error (audit.ErrNotStored), and the user
// gets a 503 with an error ID.
func (p *Portal) record(r *http.Request, typ, user, outcome, detail string) error {
	err := p.Audit.Require(r.Context(), sluis.Event{Type: typ, User: user, Source: frontdoor.ClientIP(r), Outcome: outcome, Detail: detail})
	if err == nil {
		p.count(r, typ, outcome, detail) // a step not recorded is not taken
	}
	return err
}

// guess is one attempt at a secret: of kind ("login", "mfa", "device")
// for user from src, and, when the browser is one that completed a login
// for user before (a known browser), that browser's ID.
type guess struct {
	kind, user, src, browser string
}

type throttleKeyed struct {
	th  *authn.Throttle
	key string
}

// keys are the throttles a guess counts against: the user from this
// source, the source, and either the user from anywhere or, for a known
// browser, that browser alone. A known browser is exempt from the per-user
// lock that guesses from anywhere set, so an attacker who guesses from
// many addresses cannot keep the user out; its own budget is as strict as
// a source's, so a stolen browser cookie gains no guesses.
func (p *Portal) keys(g guess) [3]throttleKeyed {
	perUser := throttleKeyed{p.UserThrottle, g.kind + ":" + g.user}
	if g.browser != "" {
		perUser = throttleKeyed{p.browserThrottle, g.kind + ":browser:" + g.browser}
	}
	return [3]throttleKeyed{
		{p.UserSourceThrottle, g.kind + ":" + g.user + "@" + throttleKey(g.src)},
		perUser,
		{p.SourceThrottle, g.kind + ":" + throttleKey(g.src)},
	}
}

// attempt reserves a guess on all its throttles, before it is checked; it
// returns how long to wait when one of them refuses (and then counts
// nothing). An error (shared throttles whose store cannot answer) refuses
// the guess too: uncounted, it would be free.
func (p *Portal) attempt(ctx context.Context, g guess) (time.Duration, error) {
	keys := p.keys(g)
	for i, k := range keys {
		wait, err := k.th.Begin(ctx, k.key)
		if err != nil || wait > 0 {
			for _, prev := range keys[:i] {
				prev.th.Forgive(context.WithoutCancel(ctx), prev.key)
			}
			return wait, err
		}
	}
	return 0, nil
}

// retract takes back an attempt that was never checked.
func (p *Portal) retract(ctx context.Context, g guess) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range p.keys(g) {
		k.th.Forgive(ctx, k.key)
	}
}

// succeeded forgets the user's (or the browser's) failures, and takes back
// the source's count for this attempt (not its earlier failures: an
// attacker with one account must not clear its address's record by
// logging in).
func (p *Portal) succeeded(ctx context.Context, g guess) {
	ctx = context.WithoutCancel(ctx)
	keys := p.keys(g)
	keys[0].th.Reset(ctx, keys[0].key)
	keys[1].th.Reset(ctx, keys[1].key)
	keys[2].th.Forgive(ctx, keys[2].key)
}

// maxShownUsername bounds the typed name shown again: no user name is
// longer.
const maxShownUsername = 256

// typedUsername is the name the login form was sent with, to fill in
// again; "" when it is too long or not text.
func typedUsername(r *http.Request) string {
	u := r.PostFormValue("username")
	if len(u) > maxShownUsername || !utf8.ValidString(u) || strings.ContainsFunc(u, unicode.IsControl) {
		return ""
	}
	return u
}

// waitMessage says how long until the next attempt, rounded up: in
// seconds, or past a minute and a half in minutes.
func (p *Portal) waitMessage(r *http.Request, d time.Duration) string {
	if d > 90*time.Second {
		return p.t(r, "throttle.wait_minutes", locale.Minutes(d))
	}
	return p.t(r, "throttle.wait", int(d.Round(time.Second)/time.Second)+1)
}

func (p *Portal) login(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	_, f := p.flowParams(r)
	// A page shown again keeps the name typed and every way to log in.
	d := pageData{Title: p.t(r, "login.title"), CSRF: p.csrfToken(w, r), RD: f.RD, State: f.State,
		Passkeys: p.Passkeys != nil, Query: f.query(), SSO: p.ssoLinks(f), Username: typedUsername(r)}
	if !csrfOK {
		d.Error = p.t(r, "form.expired")
		return p.render(w, r, http.StatusForbidden, "login", d)
	}
	if level, reason, err := p.level(r); err != nil {
		return err
	} else if level == sluis.LevelClosed {
		d.Error = p.levelNotice(r, level, reason)
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	} else {
		d.Level = p.levelNotice(r, level, reason)
	}
	password := r.PostFormValue("password")
	src := frontdoor.ClientIP(r)
	// A locked source is answered before the name is looked up, so a
	// source that guesses costs the directory nothing more.
	if wait, err := p.SourceThrottle.Check(r.Context(), "login:"+throttleKey(src)); err != nil {
		return err
	} else if wait > 0 {
		p.event(r, sluis.EventLoginFailure, "", sluis.OutcomeFailure, "throttled (source)")
		d.Error = p.waitMessage(r, wait)
		return p.render(w, r, http.StatusTooManyRequests, "login", d)
	}
	id, err := p.resolveName(r.Context(), r.PostFormValue("username"))
	if errors.Is(err, errBusy) {
		d.Error = p.t(r, "busy")
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	} else if errors.Is(err, directory.ErrUnavailable) {
		p.event(r, sluis.EventLoginFailure, id.account, sluis.OutcomeFailure, "directory unreachable")
		d.Error = p.t(r, "login.directory_down")
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	} else if err != nil {
		return err
	}
	// Every spelling of one account counts against that account; a
	// browser that logged in as that account before has its own budget.
	name := id.account
	g := guess{kind: "login", user: name, src: src, browser: p.knownBrowser(r, name)}
	if wait, err := p.attempt(r.Context(), g); err != nil {
		return err
	} else if wait > 0 {
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, id.detail("throttled"))
		d.Error = p.waitMessage(r, wait)
		return p.render(w, r, http.StatusTooManyRequests, "login", d)
	}
	if id.directory {
		return p.directoryLogin(w, r, d, f, id, password, g)
	}
	u, known := id.user, id.user.Name != ""
	// Verify even for unknown users, so the answer takes as long. A
	// known browser of the user waits in the lane served first, so a
	// burst of logins from elsewhere does not keep a returning user out.
	lane := authn.LaneNew
	if g.browser != "" {
		lane = authn.LaneKnown
	}
	// A login told busy before keeps its place when it asks again.
	place := name + "@" + throttleKey(src)
	arrived, start := p.places.Arrived(place), time.Now()
	good, err := authn.VerifyPlace(r.Context(), lane, arrived, password, u.PasswordHash)
	if errors.Is(err, authn.ErrBusy) {
		p.retract(r.Context(), g) // not checked: not counted
		if r.Context().Err() == nil {
			if arrived.IsZero() {
				arrived = start
			}
			p.places.Busy(place, arrived)
		}
		d.Error = p.t(r, "busy")
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	}
	p.places.Done(place)
	good = good && known
	reason := ""
	switch {
	case id.twins:
		reason = twinReason
	case !known:
		reason = "unknown user"
	case !good:
		reason = "bad password"
	case u.Disabled:
		reason = "disabled"
	}
	if reason == "" {
		if level, _, err := p.level(r); err != nil {
			return err
		} else if level == sluis.LevelLockdown && !p.breakGlass(r.Context(), u) {
			reason = "lockdown: not emergency staff"
		}
	}
	if reason != "" {
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, id.detail(reason))
		d.Error = p.t(r, "login.wrong")
		return p.render(w, r, http.StatusUnauthorized, "login", d)
	}
	p.succeeded(r.Context(), g)
	return p.passwordAccepted(w, r, u, f, id.detail("password accepted; second factor next"))
}

var errBusy = errors.New("busy")

// resolveInDirectory asks the directory which account name denotes. The
// look-up takes one of the few directory slots, as a bind does.
func (p *Portal) resolveInDirectory(ctx context.Context, name string) (string, error) {
	select {
	case p.directorySlots <- struct{}{}:
		defer func() { <-p.directorySlots }()
	case <-time.After(3 * time.Second):
		return "", errBusy
	case <-ctx.Done():
		return "", errBusy
	}
	return p.Directory.Resolve(ctx, name)
}

const twinReason = "the name is shared by several users (twins that differ in case); an operator must disable all but one"

// typedName is what a typed user name denotes.
type typedName struct {
	// key is the canonical form of what was typed; "(invalid name)" when
	// it cannot be a user's name.
	key string
	// account is the name of the account it resolves to: the local user,
	// or the directory account; key when it resolves to none. Throttles
	// and audit events use it.
	account string
	user    sluis.User // the local user, if one
	// directory: the directory checks the password (no local user of
	// that name, or a directory user recorded before).
	directory bool
	// twins: several stored users share the name (from before names were
	// compared without regard to case) and none can be told apart.
	twins bool
}

// detail returns an audit detail that also says how the name was typed,
// when that was not the account's own name.
func (t typedName) detail(s string) string {
	if t.key != t.account {
		return s + " (typed as " + t.key + ")"
	}
	return s
}

// resolveName finds the account a typed name denotes: a local user whose
// name is the same in canonical form (see sluis.CanonicalName), or else the
// directory's account that the name matches (its logon name, its mail
// address, ...). It returns directory.ErrUnavailable (with key and account
// set) when the directory had to be asked and could not answer.
func (p *Portal) resolveName(ctx context.Context, typed string) (typedName, error) {
	key, err := sluis.CanonicalName(strings.TrimSpace(typed))
	if err != nil {
		// No user has such a name; this keeps what was typed out of the
		// audit trail and the throttle tables.
		return typedName{key: "(invalid name)", account: "(invalid name)", directory: p.Directory != nil}, nil
	}
	id := typedName{key: key, account: key}
	users, err := p.Store.UsersNamed(ctx, key)
	if err != nil {
		return id, err
	}
	if len(users) > 1 {
		// Twins from an older store: one that is enabled is the person;
		// otherwise none of them can be told apart.
		var enabled []sluis.User
		for _, u := range users {
			if !u.Disabled {
				enabled = append(enabled, u)
			}
		}
		if len(enabled) != 1 {
			id.twins = true
			return id, nil
		}
		users = enabled
	}
	if len(users) == 1 {
		id.user, id.account = users[0], users[0].Name
		id.directory = p.Directory != nil && id.user.Source == sluis.SourceLDAP
		return id, nil
	}
	if p.Directory == nil {
		return id, nil
	}
	id.directory = true
	acct, err := p.resolveInDirectory(ctx, key)
	switch {
	case err == nil:
		id.account = acct
		// The account may be recorded already, under its own name.
		if us, err := p.Store.UsersNamed(ctx, acct); err != nil {
			return id, err
		} else if len(us) == 1 {
			id.user = us[0]
		}
	case errors.Is(err, directory.ErrUnavailable):
		return id, err
	}
	return id, nil
}

// passwordAccepted starts the session of a user whose password was right:
// the second factor (or its enrolment) comes next.
func (p *Portal) passwordAccepted(w http.ResponseWriter, r *http.Request, u sluis.User, f flow, detail string) error {
	src := frontdoor.ClientIP(r)
	now := p.Now()
	tok, hash := session.NewToken()
	x := sluis.Session{
		ID: session.NewID(), User: u.Name, Stage: sluis.StagePassword, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(pendingLifetime), Source: src, UserAgent: truncate(r.UserAgent(), 256),
	}
	// The event first: a step the trail cannot record is not taken.
	if err := p.record(r, sluis.EventLoginSuccess, u.Name, sluis.OutcomeSuccess, detail); err != nil {
		return err
	}
	if err := p.Store.CreateSession(r.Context(), x, hash[:], p.Host); err != nil {
		return err
	}
	p.setSessionCookie(w, tok, pendingLifetime)
	next := "/mfa"
	if !u.HasTOTP() {
		next = "/enroll"
	}
	http.Redirect(w, r, next+f.query(), http.StatusSeeOther)
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// pending returns the caller's session that passed the password step and
// awaits its second factor, with its user.
// The session may also be a complete one whose second factor is too old at
// the level "strict", or that is headed for an app that wants a passkey:
// then this step is a step-up.
func (p *Portal) pending(r *http.Request) (*session.Active, bool) {
	a := p.current(r)
	if a == nil {
		return nil, false
	}
	if a.Session.Stage == sluis.StagePassword || p.stale(r.Context(), a) {
		return a, true
	}
	if t, _ := p.flowParams(r); a.Session.Stage == sluis.StageComplete && p.keyWanted(r, a, t) {
		return a, true // a step-up to a passkey for an app that wants one
	}
	return nil, false
}

// stale reports whether a complete session must pass its second factor
// again: at the level "strict", once it is older than ReauthAfter.
func (p *Portal) stale(ctx context.Context, a *session.Active) bool {
	if a.Session.Stage != sluis.StageComplete {
		return false
	}
	sit, err := p.situation(ctx, "")
	return err == nil && policy.Stale(a.Identity(), sit)
}

// ---- second factor ----

func (p *Portal) mfaForm(w http.ResponseWriter, r *http.Request) error {
	_, f := p.flowParams(r)
	a, ok := p.pending(r)
	if !ok {
		http.Redirect(w, r, "/login"+f.query(), http.StatusSeeOther)
		return nil
	}
	if !a.User.HasTOTP() {
		http.Redirect(w, r, "/enroll"+f.query(), http.StatusSeeOther)
		return nil
	}
	level, reason, err := p.level(r)
	if err != nil {
		return err
	}
	d := pageData{Title: p.t(r, "mfa.title"), CSRF: p.csrfToken(w, r), RD: f.RD, State: f.State, Level: p.levelNotice(r, level, reason)}
	if err := p.keyStep(r, a, &d); err != nil {
		return err
	}
	return p.render(w, r, http.StatusOK, "mfa", d)
}

// keyStep fills in what the second-factor page offers: a passkey button
// when the user has one, and only that when the target wants a passkey.
func (p *Portal) keyStep(r *http.Request, a *session.Active, d *pageData) error {
	t, f := p.flowParams(r)
	has, err := p.hasPasskeys(r.Context(), a.User.Name)
	if err != nil {
		return err
	}
	d.Passkeys, d.HasPasskey, d.Query = p.Passkeys != nil, has, f.query()
	if p.keyWanted(r, a, t) {
		switch {
		case has:
			d.KeyOnly, d.Title = true, p.t(r, "mfa.key_title")
			d.Notice = p.t(r, "mfa.app_needs_key")
		case a.Session.Stage == sluis.StageComplete:
			d.KeyOnly, d.Title = true, p.t(r, "mfa.key_title")
			d.Error = p.t(r, "mfa.app_needs_key_none")
		default:
			d.Notice = p.t(r, "mfa.app_needs_key_later")
		}
	}
	return nil
}

// checkCode verifies a one-time code for user with the given secret and
// makes sure no code is used twice. On failure it returns the status and
// the message for the user; on success 0 and "".
func (p *Portal) checkCode(r *http.Request, user, secret, code string) (int, string, error) {
	src := frontdoor.ClientIP(r)
	if wait, err := p.attempt(r.Context(), guess{kind: "mfa", user: user, src: src}); err != nil {
		return 0, "", err
	} else if wait > 0 {
		p.event(r, sluis.EventMFAFailure, user, sluis.OutcomeFailure, "throttled")
		return http.StatusTooManyRequests, p.waitMessage(r, wait), nil
	}
	step, ok := mfa.Verify(secret, strings.TrimSpace(code), p.Now())
	reason := ""
	if !ok {
		reason = "wrong code"
	} else {
		fresh, err := p.Store.UseTOTPStep(r.Context(), user, step)
		if err != nil {
			return 0, "", err
		}
		if !fresh {
			reason = "code already used"
		}
	}
	if reason != "" {
		p.event(r, sluis.EventMFAFailure, user, sluis.OutcomeFailure, reason)
		return http.StatusUnauthorized, p.t(r, "mfa.bad_code"), nil
	}
	p.succeeded(r.Context(), guess{kind: "mfa", user: user, src: src})
	return 0, "", nil
}

func (p *Portal) mfa(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	t, f := p.flowParams(r)
	a, ok := p.pending(r)
	if !ok {
		http.Redirect(w, r, "/login"+f.query(), http.StatusSeeOther)
		return nil
	}
	d := pageData{Title: p.t(r, "mfa.title"), CSRF: p.csrfToken(w, r), RD: f.RD, State: f.State}
	if err := p.keyStep(r, a, &d); err != nil {
		return err
	}
	if !csrfOK {
		d.Error = p.t(r, "form.expired")
		return p.render(w, r, http.StatusForbidden, "mfa", d)
	}
	if d.KeyOnly {
		p.event(r, sluis.EventMFAFailure, a.User.Name, sluis.OutcomeDenied, "a code offered where a passkey is needed")
		d.Error = p.t(r, "mfa.code_not_enough")
		return p.render(w, r, http.StatusForbidden, "mfa", d)
	}
	if !a.User.HasTOTP() {
		http.Redirect(w, r, "/enroll"+f.query(), http.StatusSeeOther)
		return nil
	}
	if typed := r.PostFormValue("recovery"); typed != "" {
		return p.recoveryCode(w, r, a, typed, d, t, f)
	}
	secret, err := p.Sealer.Open(a.User.TOTPSecret, "totp:"+a.User.Name)
	if err != nil {
		return fmt.Errorf("open TOTP secret of %s: %w", a.User.Name, err)
	}
	status, msg, err := p.checkCode(r, a.User.Name, string(secret), r.PostFormValue("code"))
	if err != nil {
		return err
	}
	if msg != "" {
		d.Error = msg
		return p.render(w, r, status, "mfa", d)
	}
	if a.Session.Stage == sluis.StageComplete {
		// A step-up at the level "strict": the session stays, its second
		// factor is fresh again.
		if err := p.record(r, sluis.EventMFASuccess, a.User.Name, sluis.OutcomeSuccess, "totp step-up"); err != nil {
			return err
		}
		if err := p.Store.RefreshMFA(r.Context(), a.Session.ID, p.Now(), sluis.FactorTOTP); err != nil {
			return err
		}
		return p.continueTo(w, r, a.Session.ID, t, f)
	}
	return p.complete(w, r, a, "totp", t, f)
}

// recoveryCode takes a recovery code in place of the usual second factor.
// It is throttled like a code, and works once.
func (p *Portal) recoveryCode(w http.ResponseWriter, r *http.Request, a *session.Active, typed string, d pageData, t target, f flow) error {
	r = withMethod(r, metrics.MethodRecovery)
	user, src := a.User.Name, frontdoor.ClientIP(r)
	if wait, err := p.attempt(r.Context(), guess{kind: "mfa", user: user, src: src}); err != nil {
		return err
	} else if wait > 0 {
		p.event(r, sluis.EventMFAFailure, user, sluis.OutcomeFailure, "throttled")
		d.Error = p.waitMessage(r, wait)
		return p.render(w, r, http.StatusTooManyRequests, "mfa", d)
	}
	ok, left := false, 0
	if hash, valid := mfa.HashRecoveryCode(user, typed); valid {
		var err error
		if ok, left, err = p.Store.UseRecoveryCode(r.Context(), user, hash, p.Now()); err != nil {
			return err
		}
	}
	if !ok {
		p.event(r, sluis.EventMFAFailure, user, sluis.OutcomeFailure, "wrong or used recovery code")
		d.Error = p.t(r, "mfa.bad_recovery")
		return p.render(w, r, http.StatusUnauthorized, "mfa", d)
	}
	p.succeeded(r.Context(), guess{kind: "mfa", user: user, src: src})
	detail := fmt.Sprintf("recovery code (%d left)", left)
	if a.Session.Stage == sluis.StageComplete {
		if err := p.record(r, sluis.EventMFASuccess, user, sluis.OutcomeSuccess, detail+", step-up"); err != nil {
			return err
		}
		if err := p.Store.RefreshMFA(r.Context(), a.Session.ID, p.Now(), sluis.FactorRecovery); err != nil {
			return err
		}
		return p.recovered(w, r, a, left, t, f)
	}
	if err := p.finishLogin(w, r, a, sluis.FactorRecovery, detail); err != nil {
		return err
	}
	return p.recovered(w, r, a, left, t, f)
}

// recovered tells a user who got in with a recovery code how many are
// left and what to do about the lost authenticator, then goes on where
// the login was headed.
func (p *Portal) recovered(w http.ResponseWriter, r *http.Request, a *session.Active, left int, t target, f flow) error {
	next, err := p.nextURL(r, a.Session.ID, t, f)
	if err != nil {
		return err
	}
	return p.render(w, r, http.StatusOK, "recovered", pageData{Title: p.t(r, "recovered.title"), CSRF: p.csrfToken(w, r), User: a.User.Name,
		Notice: p.t(r, "mfa.recovery_left", left), Next: next, Passkeys: p.Passkeys != nil})
}

// refusal says why u may not log in now ("" if they may): a user disabled
// in sluis, or anybody but emergency staff at lockdown.
func (p *Portal) refusal(r *http.Request, u sluis.User) (string, error) {
	level, _, err := p.level(r)
	if err != nil {
		return "", err
	}
	twins, err := p.Store.UsersNamed(r.Context(), u.Name)
	switch {
	case err != nil:
		return "", err
	case sluis.HasEnabledTwin(u, twins):
		return twinReason, nil
	case u.Disabled:
		return "disabled", nil
	case level == sluis.LevelLockdown && !p.breakGlass(r.Context(), u):
		return "lockdown: not emergency staff", nil
	}
	return "", nil
}

// loginAtOnce logs u in with both factors passed in one step (a passkey
// alone, or an identity provider whose MFA counts): a session is made and
// completed at once, its first token never handed out.
func (p *Portal) loginAtOnce(w http.ResponseWriter, r *http.Request, u sluis.User, method, loginDetail, mfaDetail string) (string, error) {
	now := p.Now()
	x := sluis.Session{ID: session.NewID(), User: u.Name, Stage: sluis.StagePassword, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(pendingLifetime), Source: frontdoor.ClientIP(r), UserAgent: truncate(r.UserAgent(), 256)}
	_, hash := session.NewToken()
	if err := p.record(r, sluis.EventLoginSuccess, u.Name, sluis.OutcomeSuccess, loginDetail); err != nil {
		return "", err
	}
	if err := p.Store.CreateSession(r.Context(), x, hash[:], p.Host); err != nil {
		return "", err
	}
	return x.ID, p.finishLogin(w, r, &session.Active{Session: x, User: u}, method, mfaDetail)
}

// complete finishes a login with a TOTP code and sends the browser on.
func (p *Portal) complete(w http.ResponseWriter, r *http.Request, a *session.Active, detail string, t target, f flow) error {
	if err := p.finishLogin(w, r, a, sluis.FactorTOTP, detail); err != nil {
		return err
	}
	return p.continueTo(w, r, a.Session.ID, t, f)
}

// finishLogin completes a session that passed its second factor (method):
// it gets a new token (the one from before the second factor stops
// working) and its full lifetime.
func (p *Portal) finishLogin(w http.ResponseWriter, r *http.Request, a *session.Active, method, detail string) error {
	now := p.Now()
	tok, hash := session.NewToken()
	// The event first: a login the trail cannot record does not complete.
	if err := p.record(r, sluis.EventMFASuccess, a.User.Name, sluis.OutcomeSuccess, detail); err != nil {
		return err
	}
	if err := p.Store.CompleteSession(r.Context(), a.Session.ID, now, method, now.Add(p.Lifetime), hash[:], p.Host); err != nil {
		return err
	}
	p.setSessionCookie(w, tok, p.Lifetime)
	return p.rememberBrowser(w, r, a.User.Name)
}

// knownBrowserLifetime is how long a browser stays known after the login
// that made it so.
const knownBrowserLifetime = 90 * 24 * time.Hour

// knownBrowser returns the ID of the request's browser if it completed a
// login for user before (its cookie names a known browser of user), or "".
func (p *Portal) knownBrowser(r *http.Request, user string) string {
	c, err := r.Cookie(knownBrowserCookie)
	if err != nil {
		return ""
	}
	hash, ok := session.ParseToken(c.Value)
	if !ok {
		return ""
	}
	b, err := p.Store.KnownBrowser(r.Context(), hash[:])
	if err != nil || b.User != user || p.Now().Sub(b.CreatedAt) > knownBrowserLifetime {
		return ""
	}
	return b.ID
}

// rememberBrowser makes the request's browser a known browser of user,
// after a login with both factors, unless it is one already.
func (p *Portal) rememberBrowser(w http.ResponseWriter, r *http.Request, user string) error {
	if p.knownBrowser(r, user) != "" {
		return nil
	}
	tok, hash := session.NewToken()
	if err := p.Store.AddKnownBrowser(r.Context(), sluis.KnownBrowser{ID: session.NewID(), User: user, CreatedAt: p.Now()}, hash[:]); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: knownBrowserCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(knownBrowserLifetime / time.Second)})
	return nil
}

// enrolmentFrozen answers for the enrolment pages at the level "strict":
// a stolen password must not be enough to enrol the thief's own factor.
func (p *Portal) enrolmentFrozen(w http.ResponseWriter, r *http.Request) (bool, error) {
	level, reason, err := p.level(r)
	if err != nil || level != sluis.LevelStrict {
		return false, err
	}
	user := ""
	if a, ok := p.pending(r); ok {
		user = a.User.Name
		p.event(r, sluis.EventMFAFailure, a.User.Name, sluis.OutcomeDenied, "enrolment frozen at level strict")
	}
	errpage.Refuse(w, r, p.Log, errpage.Refusal{Status: http.StatusForbidden, Cause: "portal: enrolment frozen at level strict", User: user,
		ID: noteRefusal(r, user, "enrolment frozen at level strict"), Kind: errpage.KindFrozen, Detail: reason})
	return true, nil
}

func (p *Portal) enrollForm(w http.ResponseWriter, r *http.Request) error {
	if frozen, err := p.enrolmentFrozen(w, r); frozen || err != nil {
		return err
	}
	_, f := p.flowParams(r)
	a, ok := p.pending(r)
	if !ok {
		http.Redirect(w, r, "/login"+f.query(), http.StatusSeeOther)
		return nil
	}
	if a.User.HasTOTP() {
		http.Redirect(w, r, "/mfa"+f.query(), http.StatusSeeOther)
		return nil
	}
	return p.renderEnroll(w, r, a, http.StatusOK, pageData{RD: f.RD, State: f.State})
}

// enrollKey returns the secret offered to this session for enrolment,
// creating it on first view. It is kept sealed on the session, so reloading
// the page shows the same secret.
func (p *Portal) enrollKey(ctx context.Context, a *session.Active) (mfa.Key, error) {
	label := "enroll:" + a.Session.ID
	if len(a.Session.EnrollSecret) > 0 {
		secret, err := p.Sealer.Open(a.Session.EnrollSecret, label)
		if err != nil {
			return mfa.Key{}, err
		}
		return mfa.KeyFor(p.Issuer, a.User.Name, string(secret))
	}
	// The cached session predates the secret; read it fresh in case
	// another request created one.
	x, err := p.Store.Session(ctx, a.Session.ID)
	if err != nil {
		return mfa.Key{}, err
	}
	if len(x.EnrollSecret) > 0 {
		secret, err := p.Sealer.Open(x.EnrollSecret, label)
		if err != nil {
			return mfa.Key{}, err
		}
		return mfa.KeyFor(p.Issuer, a.User.Name, string(secret))
	}
	k, err := mfa.NewKey(p.Issuer, a.User.Name)
	if err != nil {
		return mfa.Key{}, err
	}
	if err := p.Store.SetEnrollSecret(ctx, a.Session.ID, p.Sealer.Seal([]byte(k.Secret), label)); err != nil {
		return mfa.Key{}, err
	}
	return k, nil
}

func (p *Portal) renderEnroll(w http.ResponseWriter, r *http.Request, a *session.Active, status int, d pageData) error {
	k, err := p.enrollKey(r.Context(), a)
	if err != nil {
		return err
	}
	qr, err := k.QRDataURI()
	if err != nil {
		return err
	}
	d.Title, d.CSRF, d.QR, d.Secret = p.t(r, "enroll.title"), p.csrfToken(w, r), template.URL(qr), k.Secret
	d.Account = a.User.Name
	d.SecretGroups = groupsOfFour(k.Secret)
	return p.render(w, r, status, "enroll", d)
}

func (p *Portal) enroll(w http.ResponseWriter, r *http.Request) error {
	if frozen, err := p.enrolmentFrozen(w, r); frozen || err != nil {
		return err
	}
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	t, f := p.flowParams(r)
	a, ok := p.pending(r)
	if !ok {
		http.Redirect(w, r, "/login"+f.query(), http.StatusSeeOther)
		return nil
	}
	if a.User.HasTOTP() {
		http.Redirect(w, r, "/mfa"+f.query(), http.StatusSeeOther)
		return nil
	}
	if !csrfOK {
		return p.renderEnroll(w, r, a, http.StatusForbidden, pageData{RD: f.RD, State: f.State, Error: p.t(r, "form.expired")})
	}
	k, err := p.enrollKey(r.Context(), a)
	if err != nil {
		return err
	}
	// Read the user fresh: another session may have enrolled meanwhile.
	u, err := p.Store.User(r.Context(), a.User.Name)
	if err != nil {
		return err
	}
	if u.HasTOTP() {
		http.Redirect(w, r, "/mfa"+f.query(), http.StatusSeeOther)
		return nil
	}
	src := frontdoor.ClientIP(r)
	if wait, err := p.attempt(r.Context(), guess{kind: "mfa", user: u.Name, src: src}); err != nil {
		return err
	} else if wait > 0 {
		p.event(r, sluis.EventMFAFailure, u.Name, sluis.OutcomeFailure, "throttled")
		return p.renderEnroll(w, r, a, http.StatusTooManyRequests, pageData{RD: f.RD, State: f.State, Error: p.waitMessage(r, wait)})
	}
	step, ok := mfa.Verify(k.Secret, strings.TrimSpace(r.PostFormValue("code")), p.Now())
	if !ok {
		p.event(r, sluis.EventMFAFailure, u.Name, sluis.OutcomeFailure, "wrong enrolment code")
		return p.renderEnroll(w, r, a, http.StatusUnauthorized, pageData{RD: f.RD, State: f.State,
			Error: p.t(r, "enroll.bad_code")})
	}
	if err := p.Store.SetTOTP(r.Context(), u.Name, p.Sealer.Seal([]byte(k.Secret), "totp:"+u.Name)); err != nil {
		return err
	}
	if _, err := p.Store.UseTOTPStep(r.Context(), u.Name, step); err != nil {
		return err
	}
	p.succeeded(r.Context(), guess{kind: "mfa", user: u.Name, src: src})
	p.event(r, sluis.EventMFAEnrolled, u.Name, sluis.OutcomeSuccess, "totp")
	// Recovery codes, shown once: the way back in when the phone is lost.
	codes, hashes := mfa.NewRecoveryCodes(u.Name)
	if err := p.Store.SetRecoveryCodes(r.Context(), u.Name, hashes); err != nil {
		return err
	}
	if err := p.finishLogin(w, r, a, sluis.FactorTOTP, "totp enrolment"); err != nil {
		return err
	}
	next, err := p.nextURL(r, a.Session.ID, t, f)
	if err != nil {
		return err
	}
	return p.render(w, r, http.StatusOK, "recovery", pageData{Title: p.t(r, "recovery.title"), CSRF: p.csrfToken(w, r), Codes: codes, Next: next,
		Download: p.codesFile(r, u.Name, codes)})
}

// ---- after login ----

// continueTo sends a logged-in browser where it wanted to go. For an app
// host it mints a single-use code that the app host exchanges for a cookie
// of its own (cookies are per host: no cookie is shared across hosts). The
// code is bound to the state cookie the app host set when it sent the
// browser here, so a code cannot be planted in another browser; without a
// state the browser is sent to the app host first, which starts a bound
// hand-over.
func (p *Portal) continueTo(w http.ResponseWriter, r *http.Request, sessionID string, t target, f flow) error {
	next, err := p.nextURL(r, sessionID, t, f)
	if err != nil {
		return err
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// nextURL is where continueTo sends the browser.
func (p *Portal) nextURL(r *http.Request, sessionID string, t target, f flow) (string, error) {
	if t.host == p.Host {
		return t.path, nil
	}
	state, err := hex.DecodeString(f.State)
	if err != nil || len(state) != sha256.Size {
		return t.url(p), nil
	}
	code, hash := session.NewToken()
	if err := p.Store.CreateGrant(r.Context(), hash[:], sessionID, t.host, t.path, state, p.Now().Add(grantLifetime)); err != nil {
		return "", err
	}
	return p.BaseURL(t.host) + handover.CallbackPath + "?code=" + code, nil
}

// launchRequest is the request the launcher's link to app makes: its
// front page, or for a TCP app a tunnel.
func launchRequest(r *http.Request, app sluis.App) policy.Request {
	src, _ := netip.ParseAddr(frontdoor.ClientIP(r))
	if app.TCP != "" {
		return policy.Request{Source: src}
	}
	return policy.Request{Method: http.MethodGet, Path: "/", Source: src}
}

// listable reports whether the launcher shows an app decided on so: the
// user may use it, or could after a passkey, or only the emergency level
// or the app's switch stands in the way (which the page says).
func listable(d policy.Decision) bool {
	return d.Outcome == policy.Allow || d.Outcome == policy.StepUp || d.Outcome == policy.Deny && d.Rule >= 0 && len(d.Unmet) == 0
}

func (p *Portal) launcher(w http.ResponseWriter, r *http.Request) error {
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	id := a.Identity()
	d := pageData{Title: p.t(r, "launcher.title"), CSRF: p.csrfToken(w, r), User: id.User}
	level, reason, err := p.level(r)
	if err != nil {
		return err
	}
	d.Level = p.levelNotice(r, level, reason)
	d.Passkeys = p.Passkeys != nil
	for _, app := range p.Apps {
		sit, err := p.situation(r.Context(), app.Name)
		if err != nil {
			return err
		}
		dec := policy.Decide(id, app, launchRequest(r, app), sit)
		if !listable(dec) {
			continue
		}
		l := appLink{Name: app.Name, Host: app.Host, URL: p.BaseURL(app.Host) + "/", NeedsKey: dec.Outcome == policy.StepUp}
		p.appFace(&l)
		if app.TCP != "" {
			l.Host, l.URL = "", ""
			l.Command, l.RDP = p.connectCommand(app)
			l.Hint, d.Copy = l.RDP == "" && !strings.HasPrefix(l.Command, "ssh "), true
		}
		if sit.AppOff {
			l.Off = sit.AppOffReason
		}
		d.Apps = append(d.Apps, l)
	}
	return p.render(w, r, http.StatusOK, "launcher", d)
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	if !csrfOK {
		return statusError(http.StatusForbidden)
	}
	var used []string
	if a := p.current(r); a != nil {
		hosts, err := p.Store.SessionHosts(r.Context(), a.Session.ID)
		if err != nil {
			return err
		}
		for _, app := range p.Apps {
			if app.Host != "" && app.Host != p.Host && slices.Contains(hosts, app.Host) {
				used = append(used, app.Host)
			}
		}
		if err := p.Store.RevokeSession(r.Context(), a.Session.ID, p.Now()); err != nil {
			return err
		}
		p.Audit.Record(r.Context(), sluis.Event{Type: sluis.EventLogout, User: a.User.Name, Source: frontdoor.ClientIP(r),
			Outcome: sluis.OutcomeSuccess, Detail: "session " + a.Session.ID})
	}
	clearSessionCookie(w)
	w.Header().Set("Clear-Site-Data", handover.ClearSiteData)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, handover.LogoutNext(p.BaseURL, p.Host, used), http.StatusSeeOther)
	return nil
}
