package admin

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/tunnel"
)

// The console's pages: server-rendered HTML, a form for every action.
// Every action is a POST with the session's CSRF token, made through
// Actions (which checks the operator's role: a role that lacks it gets
// 403, whatever the page showed); the destructive ones (revoking
// sessions, disabling a user, resetting their factors, a level, an app
// switched off, a block) show a confirmation page first, and the result
// shows at once on the page the action was made from.

// consoleList bounds the rows of the users and sessions lists.
const consoleList = 1000

// consoleRoutes are the console's pages and actions, and the API.
func (s *Server) consoleRoutes() []Route {
	h := s.wrap
	return []Route{
		{"GET /{$}", "viewer", h(s.overview)},
		{"GET /users", "viewer", h(s.get(s.usersPage))},
		{"GET /users/{name}", "viewer", h(s.get(s.userPage))},
		{"POST /users/{name}/disable", "helpdesk", h(s.userDisable)},
		{"POST /users/{name}/enable", "helpdesk", h(s.userEnable)},
		{"POST /users/{name}/mfa-reset", "helpdesk", h(s.userResetMFA)},
		{"POST /users/{name}/revoke", "helpdesk", h(s.userRevoke)},
		{"GET /sessions", "viewer", h(s.get(s.sessionsPage))},
		{"POST /sessions/{id}/revoke", "helpdesk", h(s.sessionRevoke)},
		{"POST /sessions/revoke", "helpdesk", h(s.sessionsRevoke)},
		{"GET /apps", "viewer", h(s.get(s.appsPage))},
		{"POST /apps/{name}/disable", "operator", h(s.appDisable)},
		{"POST /apps/{name}/enable", "operator", h(s.appEnable)},
		{"GET /emergency", "viewer", h(s.get(s.emergencyPage))},
		{"POST /emergency", "operator", h(s.emergencySet)},
		{"POST /emergency/clear", "operator", h(s.emergencyClear)},
		{"GET /blocks", "viewer", h(s.get(s.blocksPage))},
		{"POST /blocks/add", "operator", h(s.blockAdd)},
		{"POST /blocks/remove", "operator", h(s.blockRemove)},
		{"GET /audit", "viewer", h(s.get(s.auditPage))},
		{"GET /audit/export", "viewer", h(s.auditExport)},
		{"POST /audit/verify", "viewer", h(s.auditVerify)},
		{"/api/v1/", "api", s.apiHandler()},
	}
}

// apiHandler is the JSON API (see API), behind the console's login, with
// the Actions in force (SetActions): without them it answers 404.
func (s *Server) apiHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := s.api.Load()
		if api == nil {
			s.notFound(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// actions are the Actions in force; nil without them.
func (s *Server) actions() *Actions { return s.act.Load() }

// SetActions puts a in force for the console and the API: a reloaded
// configuration's apps and break-glass staff count from the next request.
func (s *Server) SetActions(a *Actions) {
	s.act.Store(a)
	if a == nil {
		s.api.Store(nil)
		return
	}
	api := &API{Actions: a, AuditKey: s.o.AuditKey, Log: s.o.Log}
	if s.o.Open != nil {
		api.Connected = func() map[string]Connected {
			out := map[string]Connected{}
			for _, x := range s.o.Open.Apps() {
				out[x.App] = Connected{Tunnels: x.Tunnels, Streams: x.WebSockets + x.Streams}
			}
			return out
		}
	}
	s.api.Store(api)
}

// flash is what an action says on the page it returns to: its result, or
// why it was refused (with the status the page is answered with).
type flash struct {
	Result string
	Error  string
	Status int
}

// get adapts a page handler to a GET.
func (s *Server) get(page func(w http.ResponseWriter, r *http.Request, f flash) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error { return page(w, r, flash{}) }
}

// show renders page with f's result or error.
func (s *Server) show(w http.ResponseWriter, page string, d pageData, f flash) error {
	d.Notice, d.Error = f.Result, f.Error
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	return s.render(w, status, page, d)
}

// refused turns an action's error into what its page says: the words of
// an error an operator can act on (a role that does not allow it, a bad
// value, a missing user), or the error itself (a failing store), which
// fail answers.
func refused(err error) (flash, error) {
	status := Status(err)
	var se *sluis.Error
	switch {
	case status == http.StatusForbidden:
		return flash{Error: err.Error(), Status: status}, nil
	case status != http.StatusInternalServerError && errors.As(err, &se):
		return flash{Error: se.Message, Status: status}, nil
	case status != http.StatusInternalServerError:
		return flash{Error: err.Error(), Status: status}, nil
	}
	return flash{}, err
}

// action reads an action's form (its CSRF token checked) and reports
// whether it is confirmed. Without Actions every action is refused.
func (s *Server) action(w http.ResponseWriter, r *http.Request) (c *console, confirmed bool, err error) {
	if err := s.readForm(w, r); err != nil {
		return nil, false, err
	}
	c = consoleOf(r)
	if !macEqual(r.PostFormValue("csrf"), c.csrf) {
		return nil, false, errStatus(http.StatusForbidden)
	}
	if s.actions() == nil {
		return nil, false, errStatus(http.StatusNotFound)
	}
	return c, r.PostFormValue("confirm") == "1", nil
}

// confirmData is the confirmation page of a destructive action.
type confirmData struct {
	Action string   // where the confirmed form goes
	Lines  []string // what will happen, in words
	// Preview is a level's: what users will see, how many sessions.
	Preview *LevelPreview
	Fields  []formField // the action's own fields, carried over
	Button  string
	Back    string
	// Allowed: the operator's role allows the action (otherwise the
	// page says so, and the button is off).
	Allowed bool
	Needs   string
}

type formField struct{ Name, Value string }

// confirm answers an unconfirmed destructive action with its
// confirmation page: nothing changes until its form comes back.
func (s *Server) confirm(w http.ResponseWriter, r *http.Request, title string, min Role, cd confirmData) error {
	c := consoleOf(r)
	cd.Allowed = c.op.Role >= min
	cd.Needs = min.String()
	d := s.pageFor(r, title)
	d.Body = cd
	return s.render(w, http.StatusOK, "confirm", d)
}

func (s *Server) now() time.Time { return s.o.Now() }

// zone is where the console shows and reads times.
func (s *Server) zone() *time.Location {
	if s.o.Zone != nil {
		return s.o.Zone
	}
	return time.Local
}

// ---- overview ----

type overviewData struct {
	Overview
	Level     string
	Apps      []appNow // each app: its sessions and what is open through it
	OpenKnown bool
	Tunnels   int
	Streams   int
	Chart     chart
	Verified  *verification
}

// appNow is who is connected to one app now.
type appNow struct {
	gateway.OpenApp
	Sessions int // live sessions used on it (web apps)
	TCP      bool
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) error {
	d := s.pageFor(r, "Overview")
	d.Nav = "overview"
	api := s.api.Load()
	if api == nil {
		return s.render(w, http.StatusOK, "overview", d)
	}
	now := s.now()
	o, err := api.Overview(r.Context(), now)
	if err != nil {
		return err
	}
	od := overviewData{Overview: o, Level: o.Emergency.Level, Chart: hourlyChart(o.Hourly, s.zone()), Verified: s.lastVerification()}
	open := map[string]gateway.OpenApp{}
	if s.o.Open != nil {
		od.OpenKnown = true
		for _, a := range s.o.Open.Apps() {
			open[a.App] = a
			od.Tunnels += a.Tunnels
			od.Streams += a.WebSockets + a.Streams
		}
	}
	if act := s.actions(); act != nil {
		for _, a := range act.Config.Apps {
			row := appNow{OpenApp: open[a.Name], Sessions: o.SessionsByApp[a.Name], TCP: a.TCP != ""}
			row.App = a.Name
			od.Apps = append(od.Apps, row)
		}
	}
	d.Body = od
	return s.render(w, http.StatusOK, "overview", d)
}

// ---- users ----

type userRow struct {
	sluis.User
	SourceName string
}

type usersData struct {
	Q     string
	Users []userRow
	More  bool
}

func sourceName(u sluis.User) string {
	if u.Source == "" {
		return "local"
	}
	return u.Source
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, f flash) error {
	d := s.pageFor(r, "Users")
	d.Nav = "users"
	raw := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(raw) > 256 {
		raw = raw[:256]
	}
	q := strings.ToLower(raw)
	all, err := s.o.Store.Users(r.Context())
	if err != nil {
		return err
	}
	ud := usersData{Q: raw}
	for _, u := range all {
		if q != "" && !strings.Contains(strings.ToLower(u.Name), q) && !strings.Contains(strings.ToLower(u.Email), q) &&
			!strings.Contains(strings.ToLower(u.DisplayName), q) && !slices.Contains(u.Groups, raw) {
			continue
		}
		if len(ud.Users) == consoleList {
			ud.More = true
			break
		}
		ud.Users = append(ud.Users, userRow{u, sourceName(u)})
	}
	d.Body = ud
	return s.show(w, "users", d, f)
}

type sessionRow struct {
	sluis.Session
	Kind  string
	Hosts []string
	Apps  []string // the apps of Hosts, by name
}

// hostNames names the hosts a session can have tokens for: each web app's
// by the app's name, the portal's "portal", the console's "console".
func (s *Server) hostNames() map[string]string {
	names := map[string]string{s.o.Host: "console"}
	if a := s.actions(); a != nil {
		names[a.Config.Portal] = "portal"
		for _, app := range a.Config.Apps {
			if app.Host != "" {
				names[app.Host] = app.Name
			}
		}
	}
	return names
}

// sessionKind says what made a session: the console, `sluis connect`
// (approved from a browser session) or a browser on the portal.
func sessionKind(x sluis.Session) string {
	switch {
	case IsConsoleSession(x.ID):
		return "console"
	case x.ParentID != "":
		return "sluis connect"
	}
	return "browser"
}

type userData struct {
	User       userRow
	Keys       []sluis.Passkey
	Recovery   int
	Sessions   []sessionRow
	LastLogins []sluis.Event
	Helpdesk   bool // the operator may act on users
}

func (s *Server) userPage(w http.ResponseWriter, r *http.Request, f flash) error {
	ctx, st := r.Context(), s.o.Store
	name, err := FindUser(ctx, st, r.PathValue("name"))
	if err != nil {
		return err
	}
	u, err := st.User(ctx, name)
	if err != nil {
		return err
	}
	ud := userData{User: userRow{u, sourceName(u)}, Helpdesk: consoleOf(r).op.Role >= RoleHelpdesk}
	if ud.Keys, err = st.Passkeys(ctx, name); err != nil {
		return err
	}
	if ud.Recovery, err = st.RecoveryCodesLeft(ctx, name); err != nil {
		return err
	}
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return err
	}
	now, names := s.now(), s.hostNames()
	for _, x := range sessions {
		if x.User == name && live(x, now) {
			hosts, err := st.SessionHosts(ctx, x.ID)
			if err != nil {
				return err
			}
			row := sessionRow{Session: x, Kind: sessionKind(x), Hosts: hosts}
			for _, h := range hosts {
				if n, ok := names[h]; ok {
					row.Apps = append(row.Apps, n)
				}
			}
			ud.Sessions = append(ud.Sessions, row)
		}
	}
	for _, typ := range []string{sluis.EventLoginSuccess, sluis.EventLoginFailure, EventLogin} {
		page, err := st.SearchEvents(ctx, sluis.AuditQuery{User: name, Type: typ, Limit: 10})
		if err != nil {
			return err
		}
		ud.LastLogins = append(ud.LastLogins, page.Events...)
	}
	slices.SortFunc(ud.LastLogins, func(a, b sluis.Event) int { return b.Time.Compare(a.Time) })
	if len(ud.LastLogins) > 15 {
		ud.LastLogins = ud.LastLogins[:15]
	}
	d := s.pageFor(r, "User "+name)
	d.Nav = "users"
	d.Body = ud
	return s.show(w, "user", d, f)
}

// userAction runs one of the help desk's actions on a user, after its
// confirmation, and shows the user's page with the result.
func (s *Server) userAction(w http.ResponseWriter, r *http.Request, kind string) error {
	c, confirmed, err := s.action(w, r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	path := "/users/" + url.PathEscape(name)
	ctx := r.Context()
	destructive := map[string]string{
		"disable":   "Disable " + name + "? They cannot log in, and every session of theirs ends now.",
		"mfa-reset": "Reset the second factors of " + name + "? Their TOTP secret, passkeys and recovery codes are removed, every session of theirs ends, and they enrol again at their next login.",
		"revoke":    "End every session of " + name + "? Their open requests and tunnels end with them.",
	}
	if q, ok := destructive[kind]; ok && !confirmed {
		button := map[string]string{"disable": "Disable " + name, "mfa-reset": "Reset the second factors", "revoke": "End the sessions"}[kind]
		return s.confirm(w, r, "Confirm", RoleHelpdesk, confirmData{Action: path + "/" + kind, Lines: []string{q}, Button: button, Back: path})
	}
	var result string
	switch kind {
	case "disable", "enable", "mfa-reset":
		var ch UserChange
		switch kind {
		case "disable":
			ch, err = s.actions().DisableUser(ctx, c.op, name)
			result = "disabled"
		case "enable":
			ch, err = s.actions().EnableUser(ctx, c.op, name)
			result = "enabled"
		default:
			ch, err = s.actions().ResetMFA(ctx, c.op, name)
			result = "has no second factor now, and enrols again at the next login"
		}
		result = ch.User + " " + result
		if len(ch.Revoked) > 0 {
			result += fmt.Sprintf("; %d session(s) ended", len(ch.Revoked))
		}
		if err != nil && ch.Changed {
			// The change is made; what followed it failed.
			return fmt.Errorf("%s, but: %w", result, err)
		}
	case "revoke":
		var rv Revoked
		rv, err = s.actions().RevokeSessions(ctx, c.op, sluis.SessionFilter{User: name})
		result = fmt.Sprintf("%d session(s) %s ended", len(rv.IDs), rv.What)
	}
	if err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.userPage(w, r, f)
	}
	return s.userPage(w, r, flash{Result: result + "."})
}

func (s *Server) userDisable(w http.ResponseWriter, r *http.Request) error {
	return s.userAction(w, r, "disable")
}
func (s *Server) userEnable(w http.ResponseWriter, r *http.Request) error {
	return s.userAction(w, r, "enable")
}
func (s *Server) userResetMFA(w http.ResponseWriter, r *http.Request) error {
	return s.userAction(w, r, "mfa-reset")
}
func (s *Server) userRevoke(w http.ResponseWriter, r *http.Request) error {
	return s.userAction(w, r, "revoke")
}

// ---- sessions and tunnels ----

type sessionsData struct {
	User, Group, App string
	Sessions         []sessionRow
	More             bool
	Live             int // live sessions in all
	Tunnels          []tunnel.Stream
	Open             []gateway.OpenApp
	OpenKnown        bool
	Apps             []string // web apps, for revoking by app
	Helpdesk         bool
	Operator         bool
}

func (s *Server) sessionsPage(w http.ResponseWriter, r *http.Request, f flash) error {
	ctx, st, q := r.Context(), s.o.Store, r.URL.Query()
	sd := sessionsData{User: strings.TrimSpace(q.Get("user")), Group: strings.TrimSpace(q.Get("group")), App: strings.TrimSpace(q.Get("app")),
		Helpdesk: consoleOf(r).op.Role >= RoleHelpdesk, Operator: consoleOf(r).op.Role >= RoleOperator}
	d := s.pageFor(r, "Sessions and tunnels")
	d.Nav = "sessions"
	if s.actions() != nil {
		for _, a := range s.actions().Config.Apps {
			if a.Host != "" {
				sd.Apps = append(sd.Apps, a.Name)
			}
		}
	}
	var user, host string
	var err error
	if sd.User != "" {
		if user, err = FindUser(ctx, st, sd.User); err != nil {
			if f, err = refused(err); err != nil {
				return err
			}
			user = "\x00" // matches nobody
		}
	}
	if sd.App != "" && s.actions() != nil {
		if host, err = s.actions().AppHost(sd.App); err != nil {
			if f, err = refused(err); err != nil {
				return err
			}
			host = "\x00"
		}
	}
	var members map[string]bool
	if sd.Group != "" {
		users, err := st.Users(ctx)
		if err != nil {
			return err
		}
		members = map[string]bool{}
		for _, u := range users {
			if slices.Contains(u.Groups, sd.Group) {
				members[u.Name] = true
			}
		}
	}
	all, err := st.Sessions(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for _, x := range all {
		if !live(x, now) {
			continue
		}
		sd.Live++
		if user != "" && x.User != user || members != nil && !members[x.User] {
			continue
		}
		row := sessionRow{Session: x, Kind: sessionKind(x)}
		if host != "" {
			// Only with an app asked for: one read per live session.
			if row.Hosts, err = st.SessionHosts(ctx, x.ID); err != nil {
				return err
			}
			if !slices.Contains(row.Hosts, host) {
				continue
			}
		}
		if len(sd.Sessions) == consoleList {
			sd.More = true
			continue
		}
		sd.Sessions = append(sd.Sessions, row)
	}
	// Newest first, each with the apps it has been used on (one read per
	// row shown).
	slices.SortFunc(sd.Sessions, func(a, b sessionRow) int { return b.CreatedAt.Compare(a.CreatedAt) })
	names := s.hostNames()
	for i := range sd.Sessions {
		row := &sd.Sessions[i]
		if row.Hosts == nil {
			if row.Hosts, err = st.SessionHosts(ctx, row.ID); err != nil {
				return err
			}
		}
		for _, h := range row.Hosts {
			if n, ok := names[h]; ok {
				row.Apps = append(row.Apps, n)
			}
		}
	}
	if s.o.Open != nil {
		sd.OpenKnown, sd.Tunnels, sd.Open = true, s.o.Open.Tunnels(), s.o.Open.Apps()
	}
	d.Body = sd
	return s.show(w, "sessions", d, f)
}

func (s *Server) sessionRevoke(w http.ResponseWriter, r *http.Request) error {
	c, confirmed, err := s.action(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !confirmed {
		what := "session " + id
		if x, err := s.o.Store.Session(r.Context(), id); err == nil {
			what = fmt.Sprintf("session %s of %s (from %s, since %s)", x.ID, x.User, x.Source, x.CreatedAt.In(s.zone()).Format(time.DateTime))
		}
		return s.confirm(w, r, "Confirm", RoleHelpdesk, confirmData{Action: "/sessions/" + url.PathEscape(id) + "/revoke",
			Lines: []string{"End " + what + "? Its open requests and tunnels end with it, and the sessions made from it."}, Button: "End the session", Back: "/sessions"})
	}
	x, err := s.actions().RevokeSession(r.Context(), c.op, id)
	if err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.sessionsPage(w, r, f)
	}
	return s.sessionsPage(w, r, flash{Result: "Session " + x.ID + " of " + x.User + " ended."})
}

// sessionsRevoke revokes the sessions of a user, a group, an app or
// everyone ("by" and "value").
func (s *Server) sessionsRevoke(w http.ResponseWriter, r *http.Request) error {
	c, confirmed, err := s.action(w, r)
	if err != nil {
		return err
	}
	by, value := r.PostFormValue("by"), strings.TrimSpace(r.PostFormValue("value"))
	var f sluis.SessionFilter
	var what string
	min := RoleHelpdesk
	switch by {
	case "user":
		f.User, what = value, "every session of user "+value
	case "group":
		f.Group, what = value, "every session of the members of group "+value
	case "app":
		host, err := s.actions().AppHost(value)
		if err != nil {
			fl, err := refused(err)
			if err != nil {
				return err
			}
			return s.sessionsPage(w, r, fl)
		}
		f.Host, what = host, "every session that has been used on app "+value
	case "all":
		f.All, what, min = true, "every session of everyone (the console's too, yours included)", RoleOperator
	default:
		return s.sessionsPage(w, r, flash{Error: "Choose whose sessions: a user, a group, an app or everyone.", Status: http.StatusBadRequest})
	}
	if value == "" && by != "all" {
		return s.sessionsPage(w, r, flash{Error: "Give the " + by + " whose sessions end.", Status: http.StatusBadRequest})
	}
	if !confirmed {
		return s.confirm(w, r, "Confirm", min, confirmData{Action: "/sessions/revoke", Lines: []string{"End " + what + "? Their open requests and tunnels end with them."},
			Fields: []formField{{"by", by}, {"value", value}}, Button: "End the sessions", Back: "/sessions"})
	}
	rv, err := s.actions().RevokeSessions(r.Context(), c.op, f)
	if err != nil {
		fl, err := refused(err)
		if err != nil {
			return err
		}
		return s.sessionsPage(w, r, fl)
	}
	return s.sessionsPage(w, r, flash{Result: fmt.Sprintf("%d session(s) %s ended.", len(rv.IDs), rv.What)})
}

// ---- apps ----

type appRow struct {
	Name, Host, TCP string
	Essential, Off  bool
	Reason          string
	UsersSee        string
	Open            gateway.OpenApp
}

type appsData struct {
	Apps     []appRow
	Operator bool
}

func (s *Server) appsPage(w http.ResponseWriter, r *http.Request, f flash) error {
	d := s.pageFor(r, "Apps")
	d.Nav = "apps"
	ad := appsData{Operator: consoleOf(r).op.Role >= RoleOperator}
	if s.actions() != nil {
		off, err := s.o.Store.DisabledApps(r.Context())
		if err != nil {
			return err
		}
		open := map[string]gateway.OpenApp{}
		if s.o.Open != nil {
			for _, a := range s.o.Open.Apps() {
				open[a.App] = a
			}
		}
		for _, a := range s.actions().Config.Apps {
			row := appRow{Name: a.Name, Host: a.Host, TCP: a.TCP, Essential: a.Essential, Open: open[a.Name]}
			if why, ok := off[a.Name]; ok {
				row.Off, row.Reason, row.UsersSee = true, why, appOffNotice(why)
			}
			ad.Apps = append(ad.Apps, row)
		}
	}
	d.Body = ad
	return s.show(w, "apps", d, f)
}

// appOffNotice is what a user reads when an app is switched off (the
// access decision's words).
func appOffNotice(why string) string { return "This application is switched off: " + why }

func (s *Server) appDisable(w http.ResponseWriter, r *http.Request) error {
	c, confirmed, err := s.action(w, r)
	if err != nil {
		return err
	}
	name, why := r.PathValue("name"), strings.TrimSpace(r.PostFormValue("reason"))
	if why == "" {
		return s.appsPage(w, r, flash{Error: "Give a reason: users see it.", Status: http.StatusBadRequest})
	}
	if !confirmed {
		return s.confirm(w, r, "Confirm", RoleOperator, confirmData{Action: "/apps/" + url.PathEscape(name) + "/disable",
			Lines:  []string{"Switch " + name + " off for everyone? Its open requests, WebSockets and tunnels end, and until it is switched on again users read:", appOffNotice(why)},
			Fields: []formField{{"reason", why}}, Button: "Switch " + name + " off", Back: "/apps"})
	}
	if err := s.actions().DisableApp(r.Context(), c.op, name, why); err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.appsPage(w, r, f)
	}
	return s.appsPage(w, r, flash{Result: "App " + name + " is switched off. Users read: " + appOffNotice(why)})
}

func (s *Server) appEnable(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.action(w, r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := s.actions().EnableApp(r.Context(), c.op, name); err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.appsPage(w, r, f)
	}
	return s.appsPage(w, r, flash{Result: "App " + name + " is switched on."})
}

// ---- emergency ----

type emergencyData struct {
	Current  emergencyJSON
	Levels   []string
	Operator bool
	// The form as it was sent, after a refusal.
	Level, Reason, For string
}

func (s *Server) emergencyPage(w http.ResponseWriter, r *http.Request, f flash) error {
	d := s.pageFor(r, "Emergency level")
	d.Nav = "emergency"
	em, err := s.o.Store.Emergency(r.Context())
	if err != nil {
		return err
	}
	ed := emergencyData{Current: toEmergency(em, s.now()), Levels: Levels, Operator: consoleOf(r).op.Role >= RoleOperator}
	if r.Method == http.MethodPost && f.Error != "" {
		ed.Level, ed.Reason, ed.For = r.PostFormValue("level"), r.PostFormValue("reason"), r.PostFormValue("for")
	}
	d.Body = ed
	return s.show(w, "emergency", d, f)
}

// parseFor reads a duration field: empty is none; "4h", "90m", "2h30m".
func parseFor(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, sluis.Errorf(sluis.EINVALID, "%s is not a duration such as 4h or 90m (leave it empty for \"until changed\")", strconv.Quote(v))
	}
	return d, nil
}

func (s *Server) emergencySet(w http.ResponseWriter, r *http.Request) error {
	c, confirmed, err := s.action(w, r)
	if err != nil {
		return err
	}
	level, why, forText := r.PostFormValue("level"), strings.TrimSpace(r.PostFormValue("reason")), strings.TrimSpace(r.PostFormValue("for"))
	dur, err := parseFor(forText)
	if err == nil && level != sluis.LevelNormal && why == "" {
		err = sluis.Errorf(sluis.EINVALID, "a reason is required: users see it")
	}
	if err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.emergencyPage(w, r, f)
	}
	if !confirmed {
		p, err := s.actions().Preview(r.Context(), c.op, level, why)
		if err != nil {
			f, err := refused(err)
			if err != nil {
				return err
			}
			return s.emergencyPage(w, r, f)
		}
		until := "until it is changed"
		if dur > 0 {
			until = "for " + dur.String() + ", then back to the level in force now"
		}
		return s.confirm(w, r, "Confirm the level "+level, RoleOperator, confirmData{Action: "/emergency",
			Lines: []string{"Set the emergency level " + level + " " + until + "?"}, Preview: &p,
			Fields: []formField{{"level", level}, {"reason", why}, {"for", forText}}, Button: "Set the level " + level, Back: "/emergency"})
	}
	res, err := s.actions().SetLevel(r.Context(), c.op, LevelChange{Level: level, Reason: why, For: dur})
	if err != nil {
		if res.Emergency.Level != "" {
			// The level is set; what followed it failed.
			return fmt.Errorf("the level %s is set, but: %w", level, err)
		}
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.emergencyPage(w, r, f)
	}
	result := "The level " + level + " is in force " + res.Until + "."
	if res.Revoked > 0 {
		result += fmt.Sprintf(" %d session(s) of users outside break_glass ended.", res.Revoked)
	}
	return s.emergencyPage(w, r, flash{Result: result})
}

func (s *Server) emergencyClear(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.action(w, r)
	if err != nil {
		return err
	}
	if _, err := s.actions().ClearLevel(r.Context(), c.op); err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.emergencyPage(w, r, f)
	}
	return s.emergencyPage(w, r, flash{Result: "The level normal is in force."})
}

// ---- blocks ----

type blocksData struct {
	Blocks   []sluis.Block
	Operator bool
	// The form as it was sent, after a refusal.
	CIDR, Reason, For string
}

func (s *Server) blocksPage(w http.ResponseWriter, r *http.Request, f flash) error {
	d := s.pageFor(r, "Blocks")
	d.Nav = "blocks"
	all, err := s.o.Store.Blocks(r.Context())
	if err != nil {
		return err
	}
	bd := blocksData{Operator: consoleOf(r).op.Role >= RoleOperator}
	now := s.now()
	for _, b := range all {
		if b.Until.IsZero() || now.Before(b.Until) {
			bd.Blocks = append(bd.Blocks, b)
		}
	}
	if r.Method == http.MethodPost && f.Error != "" {
		bd.CIDR, bd.Reason, bd.For = r.PostFormValue("cidr"), r.PostFormValue("reason"), r.PostFormValue("for")
	}
	d.Body = bd
	return s.show(w, "blocks", d, f)
}

func (s *Server) blockAdd(w http.ResponseWriter, r *http.Request) error {
	c, confirmed, err := s.action(w, r)
	if err != nil {
		return err
	}
	cidr, why, forText, force := strings.TrimSpace(r.PostFormValue("cidr")), strings.TrimSpace(r.PostFormValue("reason")), strings.TrimSpace(r.PostFormValue("for")), r.PostFormValue("force") == "1"
	dur, err := parseFor(forText)
	pf, perr := ParseCIDR(cidr)
	if err == nil {
		err = perr
	}
	if err == nil && why == "" {
		err = sluis.Errorf(sluis.EINVALID, "a reason is required: it is kept with the block")
	}
	if err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.blocksPage(w, r, f)
	}
	covers, wide := WideRange(pf)
	if !confirmed || wide && !force {
		lines := []string{fmt.Sprintf("Block %s (%s) at the front door, %s? Its requests are refused, and its open requests and tunnels end.", pf, covers, map[bool]string{true: "for " + dur.String(), false: "until removed"}[dur > 0])}
		fields := []formField{{"cidr", cidr}, {"reason", why}, {"for", forText}}
		if wide {
			lines = append(lines, "This range is wider than one network: it would lock out your own staff too, and everyone the gateway serves. Confirm only if that is meant.")
			fields = append(fields, formField{"force", "1"})
		}
		return s.confirm(w, r, "Confirm the block", RoleOperator, confirmData{Action: "/blocks/add", Lines: lines, Fields: fields, Button: "Block " + pf.String(), Back: "/blocks"})
	}
	res, err := s.actions().AddBlock(r.Context(), c.op, BlockRequest{CIDR: cidr, Reason: why, For: dur, Force: force})
	if err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.blocksPage(w, r, f)
	}
	return s.blocksPage(w, r, flash{Result: res.Block.CIDR + " is blocked " + res.Until + "."})
}

func (s *Server) blockRemove(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.action(w, r)
	if err != nil {
		return err
	}
	cidr, err := s.actions().RemoveBlock(r.Context(), c.op, r.PostFormValue("cidr"))
	if err != nil {
		f, err := refused(err)
		if err != nil {
			return err
		}
		return s.blocksPage(w, r, f)
	}
	return s.blocksPage(w, r, flash{Result: cidr + " is no longer blocked."})
}

// ---- audit ----

type auditData struct {
	Q      auditForm
	Events []sluis.Event
	// Next is the URL of the next page ("" on the last), Export that of
	// the export of this period: built here from url.Values.
	Next     template.URL
	Export   template.URL
	Verified *verification
	Types    []string
}

type auditForm struct {
	Since, Until, Type, User, Source, App, ErrorID string
}

func (f auditForm) values() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"since": f.Since, "until": f.Until, "type": f.Type, "user": f.User, "source": f.Source, "app": f.App, "error_id": f.ErrorID} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// auditTypes are the event types the search offers to choose from.
var auditTypes = []string{sluis.EventLoginSuccess, sluis.EventLoginFailure, sluis.EventMFASuccess, sluis.EventMFAFailure, sluis.EventMFAEnrolled,
	sluis.EventMFARemoved, sluis.EventLogout, sluis.EventSessionRevoked, sluis.EventAccessDenied, sluis.EventTunnelOpen, sluis.EventTunnelClose,
	"security.probe", "security.blocked", EventLogin, EventLogout, EventSessionsRevoke, EventUserDisable, EventUserEnable, EventUserMFAReset,
	EventEmergencySet, EventBlockAdd, EventBlockRemove, EventAppDisable, EventAppEnable, audit.EventLost}

// parseWhen reads a time of the audit search: empty is none; a duration
// back from now ("24h"); a date and time in the console's zone
// ("2026-11-30 09:00", as a datetime-local field sends it with a T), or
// RFC 3339.
func (s *Server) parseWhen(what, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return s.now().Add(-d), nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, s.zone()); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, sluis.Errorf(sluis.EINVALID, "%s: %s is not a time such as 2026-11-30 09:00 or a period back from now such as 24h", what, strconv.Quote(v))
}

func (s *Server) auditQuery(r *http.Request) (auditForm, sluis.AuditQuery, error) {
	q := r.URL.Query()
	f := auditForm{Since: q.Get("since"), Until: q.Get("until"), Type: strings.TrimSpace(q.Get("type")), User: strings.TrimSpace(q.Get("user")),
		Source: strings.TrimSpace(q.Get("source")), App: strings.TrimSpace(q.Get("app")), ErrorID: strings.TrimSpace(q.Get("error_id"))}
	aq := sluis.AuditQuery{Type: f.Type, User: f.User, Source: f.Source, App: f.App, ErrorID: f.ErrorID, Limit: 100}
	var err error
	if aq.Since, err = s.parseWhen("from", f.Since); err != nil {
		return f, aq, err
	}
	if aq.Until, err = s.parseWhen("until", f.Until); err != nil {
		return f, aq, err
	}
	if v := q.Get("before"); v != "" {
		if aq.Before, err = strconv.ParseInt(v, 10, 64); err != nil || aq.Before < 1 {
			return f, aq, sluis.Errorf(sluis.EINVALID, "the page's cursor is not an event ID")
		}
	}
	_, err = aq.Check()
	return f, aq, err
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, f flash) error {
	d := s.pageFor(r, "Audit trail")
	d.Nav = "audit"
	form, aq, err := s.auditQuery(r)
	ad := auditData{Q: form, Verified: s.lastVerification(), Types: auditTypes, Export: template.URL("/audit/export?" + form.values().Encode())}
	if err == nil {
		var page sluis.AuditPage
		page, err = s.o.Store.SearchEvents(r.Context(), aq)
		if err == nil {
			ad.Events = page.Events
			if page.Next != 0 {
				v := form.values()
				v.Set("before", strconv.FormatInt(page.Next, 10))
				ad.Next = template.URL("/audit?" + v.Encode())
			}
		}
	}
	if err != nil {
		if f, err = refused(err); err != nil {
			return err
		}
	}
	d.Body = ad
	return s.show(w, "audit", d, f)
}

// auditExport writes the events since the search's start (its other
// fields, until included, do not narrow an export: a trail with holes
// would not verify)
// and every checkpoint, as JSON lines in the format of `sluis audit
// export`, which `sluis audit verify --file` checks.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) error {
	_, aq, err := s.auditQuery(r)
	if err != nil {
		return err
	}
	// Read and written in batches (audit.ExportStore): memory stays flat
	// however long the trail, and only one export runs at a time.
	if !s.exporting.TryLock() {
		return errStatus(http.StatusConflict)
	}
	defer s.exporting.Unlock()
	// A long trail takes longer than the listener's write timeout.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="sluis-audit-`+s.now().In(s.zone()).Format("20060102-150405")+`.jsonl"`)
	c := consoleOf(r)
	s.o.Log.Info("admin: audit export", "operator", c.op.Name, "source", c.op.Source, "since", aq.Since)
	if err := audit.ExportStore(r.Context(), w, s.o.Store, aq.Since); err != nil {
		s.o.Log.Error("admin: audit export cut", "operator", c.op.Name, "err", err)
	}
	return nil
}

// verification is the result of the last check of the whole trail.
type verification struct {
	At       time.Time
	By       string
	Intact   bool
	Events   int
	Broken   string
	Report   audit.Report
	Checked  bool // the checkpoints' signatures were checked too
	Duration time.Duration
}

func (s *Server) lastVerification() *verification {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	return s.verified
}

// auditVerify checks the whole trail's hash chain and its signed
// checkpoints, as `sluis audit verify` does. It changes nothing; any
// operator may ask.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) error {
	if err := s.readForm(w, r); err != nil {
		return err
	}
	c := consoleOf(r)
	if !macEqual(r.PostFormValue("csrf"), c.csrf) {
		return errStatus(http.StatusForbidden)
	}
	// One check at a time: it reads the whole trail.
	if !s.verifying.TryLock() {
		return s.auditPage(w, r, flash{Error: "A check of the trail is under way; wait for it and look again.", Status: http.StatusConflict})
	}
	defer s.verifying.Unlock()
	v, err := s.verifyTrail(r.Context(), c.op.Name)
	if err != nil {
		return err
	}
	s.verifyMu.Lock()
	s.verified = v
	s.verifyMu.Unlock()
	res := flash{Result: fmt.Sprintf("The trail is intact: %d events.", v.Events)}
	if !v.Intact {
		res = flash{Error: "The trail has been altered: " + v.Broken, Status: http.StatusOK}
	}
	return s.auditPage(w, r, res)
}

func (s *Server) verifyTrail(ctx context.Context, by string) (*verification, error) {
	start := time.Now()
	// In batches (audit.VerifyStore): memory stays flat however long
	// the trail is.
	rep, err := audit.VerifyStore(ctx, s.o.Store, s.o.AuditKey)
	v := &verification{At: s.now(), By: by, Events: rep.Events, Checked: s.o.AuditKey != nil, Report: rep}
	var broken *audit.Broken
	switch {
	case errors.As(err, &broken):
		v.Broken = broken.Error()
	case err != nil:
		return nil, err
	default:
		v.Intact = true
	}
	v.Duration = time.Since(start).Round(time.Millisecond)
	s.o.Log.Info("admin: audit trail checked", "operator", by, "intact", v.Intact, "events", v.Events, "took", v.Duration)
	return v, nil
}
