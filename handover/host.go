package handover

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/session"
)

// The gateway's own paths on an app host.
const (
	// CallbackPath is where the portal hands a login over to an app host
	// (see Host.Callback).
	CallbackPath = "/.sluis/callback"
	// LogoutPath on an app host clears what the browser keeps for the
	// host, on the way back from logout (see Host.Logout).
	LogoutPath = "/.sluis/logout"
)

// ClearSiteData is the Clear-Site-Data header of logout: the browser drops
// what it cached of the host and its cookies (the app's own too), so no
// page of the app is shown again from the cache after logout.
const ClearSiteData = `"cache", "cookies"`

// LogoutNext is where logout sends the browser on: through LogoutPath of
// each app host in hosts, one after the other, then to the portal's login
// page. base builds a host's public URL.
func LogoutNext(base func(host string) string, portal string, hosts []string) string {
	if len(hosts) == 0 {
		return base(portal) + "/login?logged_out=1"
	}
	u := base(hosts[0]) + LogoutPath
	if len(hosts) > 1 {
		u += "?next=" + strings.Join(hosts[1:], ",")
	}
	return u
}

// Host is an app host's side of the hand-over: the callback that turns
// the portal's code into the host's own session cookie, and the stop of
// logout that clears what the browser keeps for the host.
type Host struct {
	App sluis.App
	// Store redeems codes and keeps the host's session tokens.
	Store sluis.Store
	// AppHosts are the hosts of all configured web apps: logout passes
	// through no other.
	AppHosts []string
	BaseURL  func(host string) string // a host's public URL, without trailing slash
	Portal   string                   // the portal's host
	Now      func() time.Time
	Log      *slog.Logger
}

// errStatus is an answer with a status and the plain error page, and why
// for the log.
type errStatus struct {
	status int
	why    string
}

func (e errStatus) Error() string { return e.why }

func refused(status int, why string) error { return errStatus{status, why} }

// serve answers h's error: the plain page with an error ID, logged with
// its cause unless it is the client's mistake.
func (h *Host) serve(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var st errStatus
		rf := errpage.Refusal{App: h.App.Name, Err: err}
		switch {
		case errors.As(err, &st):
			rf.Status, rf.Cause, rf.Err = st.status, "handover: "+st.why, nil
		case sluis.StorageFull(err):
			rf.Status, rf.Cause = http.StatusServiceUnavailable, "handover: storage cannot be written"
			rf.Notice = "The gateway cannot record this step right now. Try again in a few minutes; if it goes on, give your help desk the error ID below."
		default:
			rf.Status, rf.Cause = http.StatusInternalServerError, "handover: internal error"
		}
		errpage.Refuse(w, r, h.Log, rf)
	})
}

// Callback returns the handler for CallbackPath: it redeems the code the
// portal minted for this host (once, before it expires), checks that the
// browser holds the state cookie Start set, and sets the host's own
// session cookie.
func (h *Host) Callback() http.Handler {
	return h.serve(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet {
			return refused(http.StatusMethodNotAllowed, "callback: method other than GET")
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		hash, ok := session.ParseToken(r.URL.Query().Get("code"))
		if !ok {
			return refused(http.StatusBadRequest, "callback: malformed code")
		}
		now := h.Now()
		sid, path, state, err := h.Store.RedeemGrant(r.Context(), hash[:], h.App.Host, now)
		if sluis.ErrorCode(err) == sluis.ENOTFOUND {
			return refused(http.StatusBadRequest, "callback: code unknown, used or expired")
		}
		if err != nil {
			return err
		}
		// Only the browser that started this hand-over holds the cookie.
		if len(state) != sha256.Size {
			return refused(http.StatusBadRequest, "callback: grant without state")
		}
		name := StateCookieName(state)
		c, err := r.Cookie(name)
		if err != nil {
			return refused(http.StatusBadRequest, "callback: no state cookie (another browser?)")
		}
		sum := sha256.Sum256([]byte(c.Value))
		if subtle.ConstantTimeCompare(sum[:], state) != 1 {
			return refused(http.StatusBadRequest, "callback: state cookie does not match")
		}
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteLaxMode, MaxAge: -1})
		x, err := h.Store.Session(r.Context(), sid)
		if err != nil {
			return err
		}
		if x.Stage != sluis.StageComplete || x.Revoked() || !now.Before(x.ExpiresAt) {
			return refused(http.StatusUnauthorized, "callback: session not complete, revoked or expired")
		}
		tok, th := session.NewToken()
		if err := h.Store.AddToken(r.Context(), sid, th[:], h.App.Host); err != nil {
			return err
		}
		sameSite := http.SameSiteLaxMode
		if h.App.CrossSitePost {
			// The app receives form POSTs from another site (SAML POST
			// binding, OIDC form_post), on which a Lax cookie is not
			// sent: this host's cookie is SameSite=None, still __Host-,
			// Secure and HttpOnly (see sluis.App.CrossSitePost).
			sameSite = http.SameSiteNoneMode
		}
		http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: tok, Path: "/", Secure: true, HttpOnly: true,
			SameSite: sameSite, MaxAge: int(x.ExpiresAt.Sub(now) / time.Second)})
		http.Redirect(w, r, path, http.StatusSeeOther)
		return nil
	})
}

// Logout returns the handler for LogoutPath: it clears the browser's
// cache and cookies of the host and sends it on to the next app host of
// the logout, or to the portal. It needs no session (the session is
// already revoked); at worst a link from another site logs a browser out
// of the app host, and the portal's session brings it back.
func (h *Host) Logout() http.Handler {
	return h.serve(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet {
			return refused(http.StatusMethodNotAllowed, "logout: method other than GET")
		}
		var next []string
		if v := r.URL.Query().Get("next"); v != "" {
			next = strings.Split(v, ",")
		}
		if len(next) > len(h.AppHosts) {
			return refused(http.StatusBadRequest, "logout: too many hosts in next")
		}
		for _, host := range next {
			// Only configured app hosts: logout is no open redirect.
			if host == h.App.Host || !slices.Contains(h.AppHosts, host) {
				return refused(http.StatusBadRequest, "logout: next names a host that is not another app's")
			}
		}
		w.Header().Set("Clear-Site-Data", ClearSiteData)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.Redirect(w, r, LogoutNext(h.BaseURL, h.Portal, next), http.StatusSeeOther)
		return nil
	})
}
