package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/netip"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/session"
)

// The console's sessions: store sessions (so `sluis session list` shows
// them and `sluis session revoke --user` ends them), bound to the admin
// host alone, with lifetimes of their own.
const (
	// SessionIdle ends a console session unused for this long.
	SessionIdle = 15 * time.Minute
	// SessionLifetime ends a console session this long after its login,
	// used or not.
	SessionLifetime = 8 * time.Hour
	// PendingLifetime bounds the time between the password and the
	// passkey.
	PendingLifetime = 5 * time.Minute
	// SessionPrefix begins the ID of every console session, so lists tell
	// them from the portal's.
	SessionPrefix = sluis.ConsoleSessionPrefix

	// sessionCookie proves a console session; loginCookie binds the login
	// form's CSRF token before there is a session; passkeyCookie carries a
	// passkey ceremony's sealed state. All __Host-: Secure, host-only,
	// Path=/, so no other host (the portal, an app) can set or read them.
	sessionCookie = "__Host-sluis-admin"
	loginCookie   = "__Host-sluis-admin-login"
	passkeyCookie = "__Host-sluis-admin-passkey"
)

// IsConsoleSession reports whether a session is a console session.
func IsConsoleSession(id string) bool { return sluis.IsConsoleSession(id) }

// mac returns base64url(HMAC-SHA256(key, purpose)).
func consoleMAC(key, purpose string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("sluis-admin-" + purpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func macEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// csrfFor is the CSRF token of the console session whose cookie holds
// token: an HMAC keyed with the token, which only the session's browser
// holds (the cookie is HttpOnly), so any node answers it and no other
// page can make it.
func csrfFor(token string) string { return consoleMAC(token, "csrf") }

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second)})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// loginCSRF returns the login form's CSRF token, setting the cookie it is
// bound to when the browser has none.
func loginCSRF(w http.ResponseWriter, r *http.Request) string {
	v := cookieValue(r, loginCookie)
	if len(v) != 43 {
		b := make([]byte, 32)
		rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		setCookie(w, loginCookie, v, 0)
	}
	return consoleMAC(v, "login")
}

func loginCSRFOK(r *http.Request) bool {
	v := cookieValue(r, loginCookie)
	return len(v) == 43 && macEqual(r.PostFormValue("csrf"), consoleMAC(v, "login"))
}

// sameOrigin refuses a request that changes something (any method but
// GET and HEAD) sent by a page of another origin: the browser says so in
// Sec-Fetch-Site, or, when it sends no Sec-Fetch-Site, in Origin. The
// portal and the apps are the same site (a SameSite=Strict cookie goes
// with their requests), but never the same origin. A client that sends
// neither (a script, the CLI) is no browser that another page could
// drive; it still needs the session and, for a form, its CSRF token.
func (s *Server) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")
			if site != "" && site != "same-origin" || site == "" && origin != "" && origin != s.origin {
				errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: http.StatusForbidden, Cause: "admin: cross-origin request refused",
					Attrs: []any{"sec_fetch_site", site, "origin", origin}})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bodyIsJSON reports whether r says its body is JSON (a form of another site
// cannot send that without a preflight, which the console never allows).
func bodyIsJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// console is a logged-in operator's request: who, and the session.
type console struct {
	op    Operator
	user  sluis.User
	sess  sluis.Session
	token string
	csrf  string
}

type consoleKey struct{}

// current returns the console session of r if it is a complete login, as
// the console accepts it: a passkey (or a code with allow_totp), a user
// not disabled (the session lookup checks), and a role now. role is
// RoleNone for a login whose user's groups name no role any more.
func (s *Server) current(r *http.Request) (*console, error) {
	tok := cookieValue(r, sessionCookie)
	if tok == "" {
		return nil, nil
	}
	a, err := s.sessions.Lookup(r.Context(), tok, s.o.Host)
	if errors.Is(err, session.ErrNoSession) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !IsConsoleSession(a.Session.ID) || a.Session.Stage != sluis.StageComplete || !s.factorOK(a.Session.MFAMethod) {
		return nil, nil
	}
	return &console{op: Operator{Name: a.User.Name, Role: s.o.Roles(a.User.Groups), Source: peerAddr(r), SessionID: a.Session.ID},
		user: a.User, sess: a.Session, token: tok, csrf: csrfFor(tok)}, nil
}

// factorOK reports whether a session's second factor is one the console
// takes.
func (s *Server) factorOK(method string) bool {
	return method == sluis.FactorPasskey || method == sluis.FactorTOTP && s.o.AllowTOTP
}

// pending returns the console session of r that passed its password and
// waits for its second factor.
func (s *Server) pending(r *http.Request) (*session.Active, string, error) {
	tok := cookieValue(r, sessionCookie)
	if tok == "" {
		return nil, "", nil
	}
	a, err := s.sessions.Lookup(r.Context(), tok, s.o.Host)
	if errors.Is(err, session.ErrNoSession) {
		return nil, "", nil
	}
	if err != nil || !IsConsoleSession(a.Session.ID) || a.Session.Stage != sluis.StagePassword {
		return nil, "", err
	}
	return a, tok, nil
}

// authed lets through the requests of a logged-in operator with a role,
// with the operator in the context (OperatorFrom); api says the answers
// are JSON. Without a login a page is sent to /login and the API answers
// 401. An operator whose groups name no role any more is logged out: the
// session is revoked and the answer is 403.
func (s *Server) authed(api bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.current(r)
		if err != nil {
			s.fail(w, r, "", err)
			return
		}
		if c == nil {
			if api {
				sendJSON(w, http.StatusUnauthorized, map[string]string{"error": "log in on the console first"})
				return
			}
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			s.fail(w, r, "", errStatus(http.StatusUnauthorized))
			return
		}
		if c.op.Role == RoleNone {
			// The role was taken away: the login ends now.
			if err := s.o.Store.RevokeSession(r.Context(), c.sess.ID, s.o.Now()); err != nil {
				s.fail(w, r, c.user.Name, err)
				return
			}
			s.event(r, EventLogin, c.user.Name, sluis.OutcomeDenied, "session "+c.sess.ID+" ended: the user's groups name no role in admin.roles any more")
			clearCookie(w, sessionCookie)
			if api {
				sendJSON(w, http.StatusForbidden, map[string]string{"error": "your account has no role on the console"})
				return
			}
			s.message(w, r, http.StatusForbidden, "No role", noRole)
			return
		}
		ctx := context.WithValue(WithOperator(r.Context(), c.op), consoleKey{}, c)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// consoleOf returns the console request the context carries (authed).
func consoleOf(r *http.Request) *console {
	c, _ := r.Context().Value(consoleKey{}).(*console)
	return c
}

// sourceKey is the key of a source in throttles: an IPv4 address, or
// the /64 of an IPv6 address (one subscriber has all of it).
func sourceKey(src string) string {
	ip, err := netip.ParseAddr(src)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return src
	}
	p, _ := ip.Prefix(64)
	return p.String()
}
