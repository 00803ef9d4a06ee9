package admin

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/errpage"
)

// Limits of the API.
const (
	// MaxAPIBody is the largest request body, in bytes: every write is a
	// few short fields.
	MaxAPIBody = 16 << 10
	// DefaultList and MaxList bound the users and sessions one answer
	// lists ("limit").
	DefaultList = 1000
	MaxList     = 10000
)

// API is the JSON API under /api/v1/, for scripts and for the CLI's
// incident commands: the console's reads and every one of its actions.
// The admin listener mounts it behind its login, which puts the operator
// in the request's context (WithOperator); without one every request is
// answered 401. Each endpoint needs a role (403 otherwise); every write is
// a POST with a JSON body (Content-Type application/json, at most
// MaxAPIBody bytes), which a cross-site form cannot send. Answers are JSON;
// errors are {"error": CODE, "message": TEXT} with the status Status
// gives (see the README's "Admin API" for every endpoint).
//
// The handler takes paths with or without the /api/v1 prefix (mounted
// with or without http.StripPrefix).
type API struct {
	Actions *Actions // its Store is where reads come from
	// AuditKey is the public key the trail's checkpoints are signed
	// with; nil checks the hash chain alone (and says so).
	AuditKey ed25519.PublicKey
	// Connected, if set, gives what is open now in the running gateway,
	// by app name, for the overview.
	Connected func() map[string]Connected
	Log       *slog.Logger // nil means slog.Default()

	once sync.Once
	mux  *http.ServeMux
	// reading is held while the whole trail is read (export, verify):
	// one at a time, so a few requests cannot take the store's and the
	// CPU's whole time.
	reading sync.Mutex
}

// errReading answers a second export or verify while one runs.
var errReading = sluis.Errorf(sluis.ECONFLICT, "the audit trail is being read already (an export or a check); try again when it has finished")

// Connected is what is open through the gateway to one app now.
type Connected struct {
	Tunnels int `json:"tunnels"`
	Streams int `json:"streams"` // open WebSockets and streamed responses
}

const apiPrefix = "/api/v1"

type apiHandler func(w http.ResponseWriter, r *http.Request, op Operator) (any, error)

// routes lists every endpoint with the role it needs.
func (api *API) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, min Role, h apiHandler) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+apiPrefix+path, api.endpoint(min, h))
	}
	handle("GET /overview", RoleViewer, api.overview)
	handle("GET /users", RoleViewer, api.users)
	handle("GET /users/{name}", RoleViewer, api.user)
	handle("POST /users/{name}/disable", RoleHelpdesk, api.disableUser)
	handle("POST /users/{name}/enable", RoleHelpdesk, api.enableUser)
	handle("POST /users/{name}/mfa-reset", RoleHelpdesk, api.resetMFA)
	handle("GET /sessions", RoleViewer, api.sessions)
	handle("POST /sessions/revoke", RoleHelpdesk, api.revokeSessions)
	handle("POST /sessions/{id}/revoke", RoleHelpdesk, api.revokeSession)
	handle("GET /emergency", RoleViewer, api.emergency)
	handle("GET /emergency/preview", RoleViewer, api.preview)
	handle("POST /emergency", RoleOperator, api.setLevel)
	handle("POST /emergency/clear", RoleOperator, api.clearLevel)
	handle("GET /blocks", RoleViewer, api.blocks)
	handle("POST /blocks", RoleOperator, api.addBlock)
	handle("POST /blocks/remove", RoleOperator, api.removeBlock)
	handle("GET /apps", RoleViewer, api.apps)
	handle("POST /apps/{name}/disable", RoleOperator, api.disableApp)
	handle("POST /apps/{name}/enable", RoleOperator, api.enableApp)
	handle("GET /audit", RoleViewer, api.audit)
	handle("GET /audit/export", RoleViewer, api.export)
	handle("GET /audit/verify", RoleViewer, api.verify)
	return mux
}

func (api *API) log() *slog.Logger {
	if api.Log != nil {
		return api.Log
	}
	return slog.Default()
}

func (api *API) store() sluis.Store { return api.Actions.Store }

func (api *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Built on first use, so an API literal with Actions set works.
	api.once.Do(func() { api.mux = api.routes() })
	if !strings.HasPrefix(r.URL.Path, apiPrefix+"/") {
		r = r.Clone(r.Context())
		r.URL.Path = apiPrefix + r.URL.Path
		r.URL.RawPath = ""
	}
	if _, pattern := api.mux.Handler(r); pattern == "" {
		// Answered here, in JSON: the mux would answer in text.
		other := r.Clone(r.Context())
		other.Method = map[string]string{http.MethodGet: http.MethodPost}[r.Method]
		if other.Method == "" {
			other.Method = http.MethodGet
		}
		if _, p := api.mux.Handler(other); p != "" {
			w.Header().Set("Allow", other.Method)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "this endpoint takes "+other.Method)
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	api.mux.ServeHTTP(w, r)
}

// endpoint checks the operator and the role, runs h and writes its answer
// or its error.
func (api *API) endpoint(min Role, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, ok := OperatorFrom(r.Context())
		if !ok || op.Name == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "log in on the admin listener first")
			return
		}
		if err := op.Need(min); err != nil {
			writeError(w, http.StatusForbidden, "forbidden", err.Error())
			return
		}
		if r.Method == http.MethodPost {
			// A JSON body only: a cross-site form or a simple request
			// cannot send one without the browser asking first.
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxAPIBody)
		}
		v, err := h(w, r, op)
		if err != nil {
			api.writeErr(w, r, op, err)
			return
		}
		if v != nil {
			writeJSON(w, http.StatusOK, v)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiError is the body of every error answer.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: code, Message: msg})
}

// badRequest is an error in the request itself (a body that does not
// decode, a parameter that does not parse).
type badRequest struct {
	status int
	code   string
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &badRequest{http.StatusBadRequest, sluis.EINVALID, fmt.Sprintf(format, args...)}
}

// writeErr answers err: the words of an error a person can act on, or
// "internal error" with an ID that the log has with the cause.
func (api *API) writeErr(w http.ResponseWriter, r *http.Request, op Operator, err error) {
	var br *badRequest
	var se *sluis.Error
	var wide *WideRangeError
	status := Status(err)
	switch {
	case errors.As(err, &br):
		writeError(w, br.status, br.code, br.msg)
	case status == http.StatusForbidden:
		writeError(w, status, "forbidden", err.Error())
	case errors.As(err, &wide):
		writeError(w, status, "needs_force", wide.Error()+` ("force": true)`)
	case status != http.StatusInternalServerError && errors.As(err, &se):
		writeError(w, status, se.Code, se.Message)
	case sluis.StorageFull(err):
		id := errpage.NewID()
		api.log().Error("admin api: storage full", "id", id, "operator", op.Name, "source", op.Source, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage_full", "the store's disk is full: nothing changed (error ID "+id+")")
	default:
		// A change that failed part-way says what was done (the level
		// set, its revocations not), in the log with the ID.
		id := errpage.NewID()
		api.log().Error("admin api", "id", id, "operator", op.Name, "source", op.Source, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, sluis.EINTERNAL, "internal error (error ID "+id+")")
	}
}

// decode reads the JSON body into v, refusing unknown fields and trailing
// data.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &badRequest{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body has more than %d bytes", MaxAPIBody)}
		}
		if errors.Is(err, io.EOF) {
			return invalid("send a JSON object (at least {})")
		}
		return invalid("the body is not the JSON object this endpoint takes: %v", err)
	}
	if dec.More() {
		return invalid("the body has more than one JSON value")
	}
	return nil
}

// Duration is a duration in JSON as Go writes it ("90m", "2h"); "" or
// absent means none.
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1h30m\"")
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"1h30m\"", s)
	}
	*d = Duration(v)
	return nil
}

// JSON shapes of the answers. Times are RFC 3339 in UTC; a zero time is
// left out.

type eventJSON struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	User    string    `json:"user"`
	Source  string    `json:"source"`
	App     string    `json:"app"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail"`
}

func eventsJSON(es []sluis.Event) []eventJSON {
	out := make([]eventJSON, 0, len(es))
	for _, e := range es {
		out = append(out, eventJSON{e.ID, e.Time.UTC(), e.Type, e.User, e.Source, e.App, e.Outcome, e.Detail})
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

type userJSON struct {
	Name        string     `json:"name"`
	Groups      []string   `json:"groups"`
	Source      string     `json:"source"` // "local", "ldap" or "oidc:NAME"
	Disabled    bool       `json:"disabled"`
	TOTP        bool       `json:"totp"`
	Email       string     `json:"email,omitempty"`
	DisplayName string     `json:"display_name,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
}

func toUser(u sluis.User) userJSON {
	src := u.Source
	if src == "" {
		src = "local"
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return userJSON{u.Name, groups, src, u.Disabled, u.HasTOTP(), u.Email, u.DisplayName, timeOrNil(u.CreatedAt)}
}

type sessionJSON struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Stage     string     `json:"stage"`
	Source    string     `json:"source"`
	UserAgent string     `json:"user_agent,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	MFAAt     *time.Time `json:"mfa_at,omitempty"`
	MFAMethod string     `json:"mfa_method,omitempty"`
	ParentID  string     `json:"parent_id,omitempty"`
	Hosts     []string   `json:"hosts,omitempty"`
}

func toSession(x sluis.Session) sessionJSON {
	return sessionJSON{ID: x.ID, User: x.User, Stage: x.Stage, Source: x.Source, UserAgent: x.UserAgent, CreatedAt: timeOrNil(x.CreatedAt),
		LastSeen: timeOrNil(x.LastSeen), ExpiresAt: timeOrNil(x.ExpiresAt), MFAAt: timeOrNil(x.MFAAt), MFAMethod: x.MFAMethod, ParentID: x.ParentID}
}

type emergencyJSON struct {
	Level    string     `json:"level"` // in force now
	Reason   string     `json:"reason,omitempty"`
	Notice   string     `json:"notice,omitempty"` // what users read
	Until    *time.Time `json:"until,omitempty"`
	Previous string     `json:"previous,omitempty"` // the level after Until
	SetBy    string     `json:"set_by,omitempty"`
	SetAt    *time.Time `json:"set_at,omitempty"`
}

func toEmergency(em sluis.Emergency, now time.Time) emergencyJSON {
	level, why := em.Effective(now)
	out := emergencyJSON{Level: level, Reason: why, Notice: notice(level, why), SetBy: em.SetBy, SetAt: timeOrNil(em.SetAt)}
	if level == em.Level && !em.Until.IsZero() {
		out.Until, out.Previous = timeOrNil(em.Until), em.Previous
	}
	return out
}

// notice is what users read about level (the portal's words).
func notice(level, why string) string {
	switch level {
	case sluis.LevelStrict:
		return "Security is tightened: " + why
	case sluis.LevelEssential:
		return "Only essential applications are open: " + why
	case sluis.LevelLockdown:
		return "Access is limited to emergency staff: " + why
	case sluis.LevelClosed:
		return "Access through the gateway is closed: " + why
	}
	return ""
}

type blockJSON struct {
	CIDR      string     `json:"cidr"`
	Reason    string     `json:"reason"`
	Until     *time.Time `json:"until,omitempty"` // absent: until removed
	Auto      bool       `json:"auto"`            // set by the front door after probes
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

func toBlock(b sluis.Block) blockJSON {
	return blockJSON{b.CIDR, b.Reason, timeOrNil(b.Until), b.Auto, timeOrNil(b.CreatedAt)}
}

// live reports whether x counts at now: not revoked, not expired.
func live(x sluis.Session, now time.Time) bool { return !x.Revoked() && now.Before(x.ExpiresAt) }

// limit reads the "limit" parameter: 1 to max, def when absent.
func limit(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, invalid("limit is a number from 1 to %d", max)
	}
	return n, nil
}

// Overview is the console's first page: the level, what is connected,
// logins and failures of the last hour, probes and blocks per hour over
// 24 hours, and the state of the audit trail.
type Overview struct {
	Emergency emergencyJSON `json:"emergency"`
	// Sessions counts the live sessions (complete, not revoked, not
	// expired, used within the idle timeout); SessionsByApp those of them
	// used on each app, by name; Connected what is open per app (absent
	// when the gateway does not say).
	Sessions      int                  `json:"sessions"`
	SessionsByApp map[string]int       `json:"sessions_by_app"`
	Connected     map[string]Connected `json:"connected,omitempty"`
	// LastHour counts events of the last hour by type: login.success,
	// login.failure, mfa.success, mfa.failure.
	LastHour map[string]int64 `json:"last_hour"`
	// Hourly are the 24 hours up to now, oldest first, with the probes
	// and the requests refused by a block in each.
	Hourly []HourCount `json:"hourly"`
	// Blocks counts the blocks in force; AppsOff the apps switched off.
	Blocks  int `json:"blocks"`
	AppsOff int `json:"apps_off"`
	// Audit is the newest event and the newest signed checkpoint.
	Audit AuditState `json:"audit"`
}

// HourCount is one hour of the overview's chart.
type HourCount struct {
	Start   time.Time `json:"start"`
	Probes  int64     `json:"probes"`
	Blocked int64     `json:"blocked"`
}

// AuditState is where the trail ends and how much of it is signed.
type AuditState struct {
	LastEvent      int64      `json:"last_event"`
	LastCheckpoint int64      `json:"last_checkpoint"` // the event it covers; 0: none
	CheckpointAt   *time.Time `json:"checkpoint_at,omitempty"`
	Unsigned       int64      `json:"unsigned"` // events after it
}

// Event types the overview counts (the front door's, audit's and ours).
const (
	eventProbe   = "security.probe"
	eventBlocked = "security.blocked"
)

// Overview gathers the overview at now.
func (api *API) Overview(ctx context.Context, now time.Time) (Overview, error) {
	st := api.store()
	var o Overview
	em, err := st.Emergency(ctx)
	if err != nil {
		return o, err
	}
	o.Emergency = toEmergency(em, now)
	// Sessions unused for longer than the idle timeout have ended.
	var seenSince time.Time
	c := api.Actions.config()
	if idle := c.Session.IdleTimeout.D(); idle > 0 {
		seenSince = now.Add(-idle)
	}
	total, byHost, err := st.CountSessions(ctx, now, seenSince)
	if err != nil {
		return o, err
	}
	o.Sessions, o.SessionsByApp = total, map[string]int{}
	for _, a := range c.Apps {
		if n := byHost[a.Host]; a.Host != "" && n > 0 {
			o.SessionsByApp[a.Name] = n
		}
	}
	if api.Connected != nil {
		o.Connected = api.Connected()
	}
	hourTypes := []string{sluis.EventLoginSuccess, sluis.EventLoginFailure, sluis.EventMFASuccess, sluis.EventMFAFailure}
	// One bucket, longer than the period, from an hour ago to now.
	counts, err := st.CountEvents(ctx, hourTypes, now.Add(-time.Hour), now.Add(time.Second), 2*time.Hour)
	if err != nil {
		return o, err
	}
	o.LastHour = map[string]int64{}
	for _, t := range hourTypes {
		o.LastHour[t] = 0
	}
	for _, c := range counts {
		o.LastHour[c.Type] += c.N
	}
	// 24 whole hours, the last one ending with the current hour.
	end := now.Truncate(time.Hour).Add(time.Hour)
	start := end.Add(-24 * time.Hour)
	counts, err = st.CountEvents(ctx, []string{eventProbe, eventBlocked}, start, end, time.Hour)
	if err != nil {
		return o, err
	}
	o.Hourly = make([]HourCount, 24)
	for i := range o.Hourly {
		o.Hourly[i].Start = start.Add(time.Duration(i) * time.Hour).UTC()
	}
	for _, c := range counts {
		i := int(c.Start.Sub(start) / time.Hour)
		if i < 0 || i >= len(o.Hourly) {
			continue
		}
		if c.Type == eventProbe {
			o.Hourly[i].Probes += c.N
		} else {
			o.Hourly[i].Blocked += c.N
		}
	}
	blocks, err := st.Blocks(ctx)
	if err != nil {
		return o, err
	}
	for _, b := range blocks {
		if b.Until.IsZero() || now.Before(b.Until) {
			o.Blocks++
		}
	}
	off, err := st.DisabledApps(ctx)
	if err != nil {
		return o, err
	}
	o.AppsOff = len(off)
	if o.Audit.LastEvent, _, err = st.LastEvent(ctx); err != nil {
		return o, err
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return o, err
	}
	if n := len(cps); n > 0 {
		o.Audit.LastCheckpoint, o.Audit.CheckpointAt = cps[n-1].EventID, timeOrNil(cps[n-1].Time)
	}
	o.Audit.Unsigned = o.Audit.LastEvent - o.Audit.LastCheckpoint
	return o, nil
}

func (api *API) now() time.Time { return api.Actions.now() }

func (api *API) overview(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	return api.Overview(r.Context(), api.now())
}

func (api *API) users(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	n, err := limit(r, DefaultList, MaxList)
	if err != nil {
		return nil, err
	}
	raw := strings.TrimSpace(r.URL.Query().Get("q"))
	q := strings.ToLower(raw)
	if len(q) > 256 {
		return nil, invalid("q has more than 256 bytes")
	}
	all, err := api.store().Users(r.Context())
	if err != nil {
		return nil, err
	}
	out := struct {
		Users []userJSON `json:"users"`
		More  bool       `json:"more"` // more users match than limit
	}{Users: []userJSON{}}
	for _, u := range all {
		if q != "" && !strings.Contains(strings.ToLower(u.Name), q) && !strings.Contains(strings.ToLower(u.Email), q) &&
			!strings.Contains(strings.ToLower(u.DisplayName), q) && !slices.Contains(u.Groups, raw) {
			continue
		}
		if len(out.Users) == n {
			out.More = true
			break
		}
		out.Users = append(out.Users, toUser(u))
	}
	return out, nil
}

func (api *API) user(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	ctx, st := r.Context(), api.store()
	name, err := FindUser(ctx, st, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	u, err := st.User(ctx, name)
	if err != nil {
		return nil, err
	}
	keys, err := st.Passkeys(ctx, name)
	if err != nil {
		return nil, err
	}
	codes, err := st.RecoveryCodesLeft(ctx, name)
	if err != nil {
		return nil, err
	}
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return nil, err
	}
	logins, err := st.SearchEvents(ctx, sluis.AuditQuery{User: name, Type: sluis.EventLoginSuccess, Limit: 10})
	if err != nil {
		return nil, err
	}
	type passkeyJSON struct {
		Name      string     `json:"name"`
		CreatedAt *time.Time `json:"created_at,omitempty"`
		LastUsed  *time.Time `json:"last_used,omitempty"`
	}
	out := struct {
		userJSON
		Passkeys      []passkeyJSON `json:"passkeys"`
		RecoveryCodes int           `json:"recovery_codes"` // unused ones left
		Sessions      []sessionJSON `json:"sessions"`       // live ones
		LastLogins    []eventJSON   `json:"last_logins"`    // newest first, at most 10
	}{userJSON: toUser(u), Passkeys: []passkeyJSON{}, RecoveryCodes: codes, Sessions: []sessionJSON{}, LastLogins: eventsJSON(logins.Events)}
	for _, k := range keys {
		out.Passkeys = append(out.Passkeys, passkeyJSON{k.Name, timeOrNil(k.CreatedAt), timeOrNil(k.LastUsed)})
	}
	now := api.now()
	for _, x := range sessions {
		if x.User == name && live(x, now) {
			s := toSession(x)
			if s.Hosts, err = st.SessionHosts(ctx, x.ID); err != nil {
				return nil, err
			}
			out.Sessions = append(out.Sessions, s)
		}
	}
	return out, nil
}

type userChangeJSON struct {
	User    string   `json:"user"`
	Revoked []string `json:"revoked"` // the sessions it ended
}

func userChange(c UserChange, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if c.Revoked == nil {
		c.Revoked = []string{}
	}
	return userChangeJSON{c.User, c.Revoked}, nil
}

// noBody reads a write's body, which must be a JSON object without
// fields ({}).
func noBody(r *http.Request) error {
	var v struct{}
	return decode(r, &v)
}

func (api *API) disableUser(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	if err := noBody(r); err != nil {
		return nil, err
	}
	return userChange(api.Actions.DisableUser(r.Context(), op, r.PathValue("name")))
}

func (api *API) enableUser(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	if err := noBody(r); err != nil {
		return nil, err
	}
	return userChange(api.Actions.EnableUser(r.Context(), op, r.PathValue("name")))
}

func (api *API) resetMFA(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	if err := noBody(r); err != nil {
		return nil, err
	}
	return userChange(api.Actions.ResetMFA(r.Context(), op, r.PathValue("name")))
}

func (api *API) sessions(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	ctx, st, q := r.Context(), api.store(), r.URL.Query()
	n, err := limit(r, DefaultList, MaxList)
	if err != nil {
		return nil, err
	}
	var user, host string
	if v := q.Get("user"); v != "" {
		if user, err = FindUser(ctx, st, v); err != nil {
			return nil, err
		}
	}
	group := q.Get("group")
	if v := q.Get("app"); v != "" {
		if host, err = api.Actions.AppHost(v); err != nil {
			return nil, err
		}
	}
	var members map[string]bool
	if group != "" {
		users, err := st.Users(ctx)
		if err != nil {
			return nil, err
		}
		members = map[string]bool{}
		for _, u := range users {
			if slices.Contains(u.Groups, group) {
				members[u.Name] = true
			}
		}
	}
	all, err := st.Sessions(ctx)
	if err != nil {
		return nil, err
	}
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
		More     bool          `json:"more"`
	}{Sessions: []sessionJSON{}}
	now := api.now()
	for _, x := range all {
		if !live(x, now) || user != "" && x.User != user || members != nil && !members[x.User] {
			continue
		}
		var hosts []string
		if host != "" {
			// Only with an app asked for: one read per live session.
			if hosts, err = st.SessionHosts(ctx, x.ID); err != nil {
				return nil, err
			}
			if !slices.Contains(hosts, host) {
				continue
			}
		}
		if len(out.Sessions) == n {
			out.More = true
			break
		}
		s := toSession(x)
		s.Hosts = hosts
		out.Sessions = append(out.Sessions, s)
	}
	return out, nil
}

func (api *API) revokeSession(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	if err := noBody(r); err != nil {
		return nil, err
	}
	x, err := api.Actions.RevokeSession(r.Context(), op, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return struct {
		User    string   `json:"user"`
		Revoked []string `json:"revoked"`
	}{x.User, []string{x.ID}}, nil
}

func (api *API) revokeSessions(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	var req struct {
		User  string `json:"user"`
		Group string `json:"group"`
		App   string `json:"app"`
		All   bool   `json:"all"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	f := sluis.SessionFilter{User: req.User, Group: req.Group, All: req.All}
	if req.App != "" {
		host, err := api.Actions.AppHost(req.App)
		if err != nil {
			return nil, err
		}
		f.Host = host
	}
	res, err := api.Actions.RevokeSessions(r.Context(), op, f)
	if err != nil {
		return nil, err
	}
	if res.IDs == nil {
		res.IDs = []string{}
	}
	return struct {
		What    string   `json:"what"`
		Revoked []string `json:"revoked"`
	}{res.What, res.IDs}, nil
}

func (api *API) emergency(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	em, err := api.store().Emergency(r.Context())
	if err != nil {
		return nil, err
	}
	return toEmergency(em, api.now()), nil
}

func (api *API) preview(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	q := r.URL.Query()
	p, err := api.Actions.Preview(r.Context(), op, q.Get("level"), q.Get("reason"))
	if err != nil {
		return nil, err
	}
	if p.Open == nil {
		p.Open = []string{}
	}
	return struct {
		Level    string   `json:"level"`
		Notice   string   `json:"notice"`
		Refusal  string   `json:"refusal"`
		Effect   string   `json:"effect"`
		Live     int      `json:"live"`
		Affected int      `json:"affected"`
		Revoked  int      `json:"revoked"`
		Open     []string `json:"open"`
	}{p.Level, p.Notice, p.Refusal, p.Effect, p.Live, p.Affected, p.Revoked, p.Open}, nil
}

func (api *API) setLevel(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	var req struct {
		Level  string   `json:"level"`
		Reason string   `json:"reason"`
		For    Duration `json:"for"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	res, err := api.Actions.SetLevel(r.Context(), op, LevelChange{Level: req.Level, Reason: req.Reason, For: time.Duration(req.For)})
	if err != nil {
		return nil, err
	}
	return struct {
		Emergency emergencyJSON `json:"emergency"`
		Until     string        `json:"until"`
		Revoked   int           `json:"revoked"`
	}{toEmergency(res.Emergency, api.now()), res.Until, res.Revoked}, nil
}

func (api *API) clearLevel(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	if err := noBody(r); err != nil {
		return nil, err
	}
	em, err := api.Actions.ClearLevel(r.Context(), op)
	if err != nil {
		return nil, err
	}
	return struct {
		Emergency emergencyJSON `json:"emergency"`
	}{toEmergency(em, api.now())}, nil
}

func (api *API) blocks(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	all, err := api.store().Blocks(r.Context())
	if err != nil {
		return nil, err
	}
	now := api.now()
	out := struct {
		Blocks []blockJSON `json:"blocks"`
	}{Blocks: []blockJSON{}}
	for _, b := range all {
		if b.Until.IsZero() || now.Before(b.Until) { // lifted ones are not listed
			out.Blocks = append(out.Blocks, toBlock(b))
		}
	}
	return out, nil
}

func (api *API) addBlock(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	var req struct {
		CIDR   string   `json:"cidr"`
		Reason string   `json:"reason"`
		For    Duration `json:"for"`
		Force  bool     `json:"force"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	res, err := api.Actions.AddBlock(r.Context(), op, BlockRequest{CIDR: req.CIDR, Reason: req.Reason, For: time.Duration(req.For), Force: req.Force})
	if err != nil {
		return nil, err
	}
	return struct {
		Block blockJSON `json:"block"`
		Until string    `json:"until"`
	}{toBlock(res.Block), res.Until}, nil
}

func (api *API) removeBlock(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	var req struct {
		CIDR string `json:"cidr"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	cidr, err := api.Actions.RemoveBlock(r.Context(), op, req.CIDR)
	if err != nil {
		return nil, err
	}
	return struct {
		Removed string `json:"removed"`
	}{cidr}, nil
}

type appJSON struct {
	Name      string `json:"name"`
	Host      string `json:"host,omitempty"`
	TCP       string `json:"tcp,omitempty"`
	Essential bool   `json:"essential"`
	Disabled  bool   `json:"disabled"`
	Reason    string `json:"reason,omitempty"`
	// UsersSee is what a refused user reads while it is off.
	UsersSee string `json:"users_see,omitempty"`
}

func (api *API) apps(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	off, err := api.store().DisabledApps(r.Context())
	if err != nil {
		return nil, err
	}
	out := struct {
		Apps []appJSON `json:"apps"`
	}{Apps: []appJSON{}}
	for _, a := range api.Actions.config().Apps {
		j := appJSON{Name: a.Name, Host: a.Host, TCP: a.TCP, Essential: a.Essential}
		if why, ok := off[a.Name]; ok {
			j.Disabled, j.Reason, j.UsersSee = true, why, "This application is switched off: "+why
		}
		out.Apps = append(out.Apps, j)
	}
	return out, nil
}

func (api *API) switchApp(r *http.Request, op Operator, disable bool) (any, error) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	var err error
	if disable {
		err = api.Actions.DisableApp(r.Context(), op, name, req.Reason)
	} else if req.Reason != "" {
		return nil, invalid("switching an app on takes no reason")
	} else {
		err = api.Actions.EnableApp(r.Context(), op, name)
	}
	if err != nil {
		return nil, err
	}
	return appJSON{Name: name, Disabled: disable, Reason: strings.TrimSpace(req.Reason)}, nil
}

func (api *API) disableApp(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	return api.switchApp(r, op, true)
}

func (api *API) enableApp(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	return api.switchApp(r, op, false)
}

// when reads a time parameter: RFC 3339, or a duration back from now
// ("24h").
func when(q string, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, invalid("%s is a time (RFC 3339, such as 2026-11-30T09:00:00Z) or a positive duration back from now (such as 24h)", q)
}

func (api *API) audit(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	q, now := r.URL.Query(), api.now()
	var aq sluis.AuditQuery
	var err error
	if aq.Since, err = when("since", q.Get("since"), now); err != nil {
		return nil, err
	}
	if aq.Until, err = when("until", q.Get("until"), now); err != nil {
		return nil, err
	}
	aq.Type, aq.User, aq.Source, aq.App, aq.ErrorID = q.Get("type"), q.Get("user"), q.Get("source"), q.Get("app"), q.Get("error_id")
	if v := q.Get("before"); v != "" {
		if aq.Before, err = strconv.ParseInt(v, 10, 64); err != nil || aq.Before < 1 {
			return nil, invalid("before is the next cursor of an earlier page (an event ID)")
		}
	}
	if aq.Limit, err = limit(r, sluis.DefaultAuditPage, sluis.MaxAuditPage); err != nil {
		return nil, err
	}
	page, err := api.store().SearchEvents(r.Context(), aq)
	if err != nil {
		return nil, err
	}
	out := struct {
		Events []eventJSON `json:"events"`
		Next   int64       `json:"next,omitempty"` // the before of the next page; absent on the last
	}{eventsJSON(page.Events), page.Next}
	return out, nil
}

// export writes the trail (or its part since "since") and every
// checkpoint as JSON lines, in the format of `sluis audit export`, which
// `sluis audit verify --file` checks.
func (api *API) export(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	since, err := when("since", r.URL.Query().Get("since"), api.now())
	if err != nil {
		return nil, err
	}
	if !api.reading.TryLock() {
		return nil, errReading
	}
	defer api.reading.Unlock()
	// The trail is read in batches as it is written (audit.ExportStore),
	// so a long trail costs the gateway no more memory than a short one;
	// the status is sent before the store is read. A long trail takes
	// longer than the listener's write timeout.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Minute))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="sluis-audit.jsonl"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := audit.ExportStore(r.Context(), w, api.store(), since); err != nil {
		// The status is sent; the cut shows as a line that does not
		// parse or a chain that does not verify.
		api.log().Error("admin api: audit export", "operator", op.Name, "err", err)
	}
	return nil, nil
}

// verify checks the whole trail's hash chain and its signed checkpoints,
// as `sluis audit verify` does, reading the trail in batches
// (audit.VerifyStore).
func (api *API) verify(w http.ResponseWriter, r *http.Request, op Operator) (any, error) {
	if !api.reading.TryLock() {
		return nil, errReading
	}
	defer api.reading.Unlock()
	type brokenJSON struct {
		Event  int64  `json:"event"`
		Reason string `json:"reason"`
	}
	out := struct {
		Intact          bool        `json:"intact"`
		Events          int         `json:"events"`
		Checkpoints     bool        `json:"checkpoints_checked"` // false: no key given, the chain alone
		LastCheckpoint  int64       `json:"last_checkpoint,omitempty"`
		CheckpointAt    *time.Time  `json:"checkpoint_at,omitempty"`
		AfterCheckpoint int         `json:"after_checkpoint"`
		Gaps            []eventJSON `json:"gaps"` // audit.lost events: when events could not be stored
		Broken          *brokenJSON `json:"broken,omitempty"`
	}{Gaps: []eventJSON{}, Checkpoints: api.AuditKey != nil}
	rep, err := audit.VerifyStore(r.Context(), api.store(), api.AuditKey)
	out.Events = rep.Events
	var broken *audit.Broken
	switch {
	case errors.As(err, &broken):
		out.Broken = &brokenJSON{broken.ID, broken.Reason}
		return out, nil
	case err != nil:
		return nil, err
	}
	out.Intact, out.AfterCheckpoint, out.Gaps = true, rep.AfterCheckpoint, eventsJSON(rep.Gaps)
	if rep.LastCheckpoint != nil {
		out.LastCheckpoint, out.CheckpointAt = rep.LastCheckpoint.EventID, timeOrNil(rep.LastCheckpoint.Time)
	}
	return out, nil
}
