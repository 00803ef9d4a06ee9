// Package handover is the app host's side of the login hand-over: a
// request for an app host that must log in (or pass a second factor again)
// is sent to the portal with the URL to return to, and a state cookie
// binds the code the portal later hands back to the browser that started
// the login. The portal checks the cookie on the way back (its callback);
// this package only starts the hand-over, so the gateway's app handler
// needs nothing of the portal to do it.
package handover

import (
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/session"
)

const (
	// StateCookie is the prefix of the state cookies an app host sets
	// when it sends a browser to log in: one per login in flight, named
	// after its state's hash, so two tabs that each start a login do not
	// overwrite each other's (see StateCookieName).
	StateCookie = "__Host-sluis-state-"
	// MaxStateCookies bounds the state cookies of one browser and host:
	// a login started with this many in flight drops them all (those
	// logins then end on 400) and keeps only its own.
	MaxStateCookies = 8
	// StateLifetime is how long a state cookie lives: as long as a login
	// may take.
	StateLifetime = 10 * time.Minute
)

// StateCookieName returns the name of the state cookie whose value hashes
// to sum (SHA-256): the name carries a part of the hash, never the value.
func StateCookieName(sum []byte) string {
	return StateCookie + hex.EncodeToString(sum[:8])
}

// Start answers a request for an app host that must log in. A browser
// asking for a page (GET or HEAD accepting text/html) is sent to login,
// the portal's login page URL, with rd, the URL to come back to, and the
// hash of a new state cookie; anything else (an API call, a form post)
// gets 401, as a redirect would lose its body: the 401's page is rf's,
// logged to log with "(API call or form post)" added to rf's cause.
func Start(w http.ResponseWriter, r *http.Request, login, rd string, log *slog.Logger, rf errpage.Refusal) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		rf.Status, rf.Cause = http.StatusUnauthorized, rf.Cause+" (API call or form post: not sent to log in)"
		errpage.Refuse(w, r, log, rf)
		return
	}
	var pending []string
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, StateCookie) {
			pending = append(pending, c.Name)
		}
	}
	if len(pending) >= MaxStateCookies {
		for _, name := range pending {
			http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true,
				SameSite: http.SameSiteLaxMode, MaxAge: -1})
		}
	}
	state, sum := session.NewToken()
	http.SetCookie(w, &http.Cookie{Name: StateCookieName(sum[:]), Value: state, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(StateLifetime / time.Second)})
	w.Header().Set("Cache-Control", "no-store")
	q := url.Values{"rd": {rd}, "state": {hex.EncodeToString(sum[:])}}
	http.Redirect(w, r, login+"?"+q.Encode(), http.StatusSeeOther)
}
