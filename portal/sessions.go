package portal

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
)

// sessionRow is one of the user's sessions as the sessions page shows it.
type sessionRow struct {
	ID, Device, Source, Started, LastSeen string
	Current                               bool
}

// maxUserAgentShown bounds the device description taken from a session's
// User-Agent.
const maxUserAgentShown = 80

// ownSessions returns user's live sessions, oldest first. The store lists
// every session; this is a page a user opens now and then, not a request
// path.
func (p *Portal) ownSessions(r *http.Request, user string) ([]sluis.Session, error) {
	all, err := p.Store.Sessions(r.Context())
	if err != nil {
		return nil, err
	}
	now := p.Now()
	var out []sluis.Session
	for _, s := range all {
		// The console's sessions are not the portal's to show or end: a
		// portal session (passed with a code, or stolen) must not reach
		// an operator's console.
		if s.User == user && !s.Revoked() && s.Stage == sluis.StageComplete && now.Before(s.ExpiresAt) && !sluis.IsConsoleSession(s.ID) {
			out = append(out, s)
		}
	}
	return out, nil
}

// device says in a few words what a session's client is.
func device(r *http.Request, p *Portal, s sluis.Session) string {
	if s.ParentID != "" {
		return p.t(r, "sessions.connect")
	}
	ua := s.UserAgent
	for _, b := range []struct{ in, name string }{
		{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.in) {
			for _, o := range []struct{ in, name string }{
				{"Windows", "Windows"}, {"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"},
			} {
				if strings.Contains(ua, o.in) {
					return p.t(r, "sessions.browser_on", b.name, o.name)
				}
			}
			return b.name
		}
	}
	if ua == "" {
		return p.t(r, "sessions.unknown")
	}
	if len(ua) > maxUserAgentShown {
		ua = ua[:maxUserAgentShown] + "…"
	}
	return strings.ToValidUTF8(ua, "")
}

// sessionsPage shows the user's own sessions: which device, from where,
// since when; when this one ends; and a button to end each other one.
func (p *Portal) sessionsPage(w http.ResponseWriter, r *http.Request) error {
	return p.renderSessions(w, r, http.StatusOK, "")
}

func (p *Portal) renderSessions(w http.ResponseWriter, r *http.Request, status int, notice string) error {
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	own, err := p.ownSessions(r, a.User.Name)
	if err != nil {
		return err
	}
	l := p.Locale.For(r)
	d := pageData{Title: p.t(r, "sessions.title"), CSRF: p.csrfToken(w, r), User: a.User.Name, Notice: notice}
	for _, s := range own {
		row := sessionRow{ID: s.ID, Device: device(r, p, s), Source: s.Source, Started: l.Date(s.CreatedAt), LastSeen: l.Date(s.LastSeen),
			Current: s.ID == a.Session.ID}
		if row.Current {
			d.Expires = l.Date(a.Session.ExpiresAt)
			if idle := p.Sessions.IdleTimeout; idle > 0 {
				d.IdleMinutes = int(idle / time.Minute)
			}
		} else {
			d.Others = true
		}
		d.SessionRows = append(d.SessionRows, row)
	}
	return p.render(w, r, status, "sessions", d)
}

// endSessions ends one other session of the user ("id"), or all others
// ("others"). A session that is not the user's own is not found.
func (p *Portal) endSessions(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	if !csrfOK {
		return statusError(http.StatusForbidden)
	}
	own, err := p.ownSessions(r, a.User.Name)
	if err != nil {
		return err
	}
	id, all := r.PostFormValue("id"), r.PostFormValue("others") == "1"
	var end []string
	for _, s := range own {
		if s.ID != a.Session.ID && (all || s.ID == id) {
			end = append(end, s.ID)
		}
	}
	if len(end) == 0 {
		return p.renderSessions(w, r, http.StatusNotFound, p.t(r, "sessions.none_ended"))
	}
	for _, sid := range end {
		if err := p.Store.RevokeSession(r.Context(), sid, p.Now()); err != nil {
			return err
		}
		if err := p.record(r, sluis.EventSessionRevoked, a.User.Name, sluis.OutcomeSuccess, "session "+sid+": ended by the user from session "+a.Session.ID); err != nil {
			return err
		}
	}
	slices.Sort(end)
	return p.renderSessions(w, r, http.StatusOK, p.t(r, "sessions.ended", len(end)))
}
