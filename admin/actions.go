package admin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/frontdoor"
)

// Event types of the operators' actions, as the CLI has always recorded
// them. A revocation of several sessions is recorded as
// EventSessionsRevoke with the change, then a session.revoked event for
// each session it ended.
const (
	EventSessionsRevoke = "admin.session.revoke"
	EventUserDisable    = "admin.user.disable"
	EventUserEnable     = "admin.user.enable"
	EventUserMFAReset   = "admin.user.mfa-reset"
	EventEmergencySet   = "emergency.set"
	EventBlockAdd       = "admin.block.add"
	EventBlockRemove    = "admin.block.remove"
	EventAppDisable     = "admin.app.disable"
	EventAppEnable      = "admin.app.enable"
)

// Limits of what an operator types.
const (
	// MaxReason is the longest reason, in bytes: users read it on pages.
	MaxReason = 500
	// MaxFor is the longest duration of a timed level or block; longer
	// is "until changed" (give no duration).
	MaxFor = 366 * 24 * time.Hour
)

// Actions are the operators' changes: the console, the JSON API and the
// CLI all make them here, so each is checked, recorded and applied alike.
//
// Every method takes the operator who acts; it returns an error wrapping
// ErrForbidden when their role does not allow the action (403). Other
// errors a person can act on are *sluis.Error: EINVALID (400: bad input,
// the message says what to give), ENOTFOUND (404: no such user, session,
// app or block), ECONFLICT (409), or *WideRangeError (409: repeat with
// force). Anything else is the store's failure (500; "database or disk is
// full" included), and then nothing changed: each change commits in one
// transaction with its audit event, which names the operator ("by NAME")
// and has the operator's Source as its source.
//
// Actions keeps no state of its own: one value serves every request at
// once.
type Actions struct {
	Store sluis.Store
	// Config gives the apps (by name) and the break-glass staff of the
	// level lockdown. Required unless Current is set.
	Config *config.Config
	// Current, if set, returns the configuration in force (a reload
	// swaps it); it is asked once per action and takes precedence over
	// Config.
	Current func() *config.Config
	// Recorder records the events known only after a change (each session
	// a revocation ended); nil appends them to Store directly.
	Recorder *audit.Recorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// config is the configuration in force.
func (a *Actions) config() *config.Config {
	if a.Current != nil {
		return a.Current()
	}
	return a.Config
}

func (a *Actions) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// event is the record of op's change: "by NAME; detail".
func (a *Actions) event(op Operator, typ, user, detail string) sluis.Event {
	return sluis.Event{Time: a.now().UTC(), Type: typ, User: user, Source: op.Source, Outcome: sluis.OutcomeSuccess,
		Detail: strings.TrimSpace("by " + op.Name + "; " + detail)}
}

// with is the context to make one change with: the store commits the
// change and its event together, or neither.
func (a *Actions) with(ctx context.Context, op Operator, typ, user, detail string) context.Context {
	return sluis.WithEvents(ctx, a.event(op, typ, user, detail))
}

// record records an event after the fact, for the parts of a change known
// only once it is made.
func (a *Actions) record(ctx context.Context, op Operator, typ, user, detail string) error {
	e := a.event(op, typ, user, detail)
	if a.Recorder != nil {
		return a.Recorder.Record(ctx, e)
	}
	_, err := a.Store.AppendEvent(ctx, e)
	return err
}

// recordSessions records a session.revoked event for each of ids (owner
// names each one's user), after the revocation that was recorded with it.
func (a *Actions) recordSessions(ctx context.Context, op Operator, what string, ids []string, owner func(id string) string, suffix string) error {
	for _, id := range ids {
		if err := a.record(ctx, op, sluis.EventSessionRevoked, owner(id), "session "+id+suffix); err != nil {
			return fmt.Errorf("the sessions of %s were revoked (and recorded as such), but not each one's own event: %w", what, err)
		}
	}
	return nil
}

// FindUser returns the stored name of the user an operator named: the one
// user whose name is the same in any case, or, among twins from an older
// store, the one named exactly. ENOTFOUND if none; EINVALID when the name
// is ambiguous.
func FindUser(ctx context.Context, st sluis.UserStore, typed string) (string, error) {
	users, err := st.UsersNamed(ctx, typed)
	if err != nil {
		return "", err
	}
	switch {
	case len(users) == 1:
		return users[0].Name, nil
	case len(users) == 0:
		return "", sluis.Errorf(sluis.ENOTFOUND, "no user %s", shown(typed))
	}
	var names []string
	for _, u := range users {
		if u.Name == typed {
			return u.Name, nil
		}
		names = append(names, u.Name)
	}
	return "", sluis.Errorf(sluis.EINVALID, "%s names several users (%s, twins from before names were compared without regard to case): give one exactly as listed", shown(typed), strings.Join(names, ", "))
}

// shown returns s as it is when every character is printable, quoted with
// escapes otherwise, so no stored or typed text can forge a line where a
// message is shown.
func shown(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.Quote(s)
		}
	}
	return s
}

// reason checks an operator's reason: trimmed, at most MaxReason bytes,
// one line of printable text. required says an empty one is refused.
func reason(r string, required bool, what string) (string, error) {
	r = strings.TrimSpace(r)
	switch {
	case r == "" && required:
		return "", sluis.Errorf(sluis.EINVALID, "a reason is required: %s", what)
	case len(r) > MaxReason:
		return "", sluis.Errorf(sluis.EINVALID, "the reason has %d bytes; at most %d", len(r), MaxReason)
	case strings.IndexFunc(r, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return "", sluis.Errorf(sluis.EINVALID, "the reason must be one line of printable text")
	}
	return r, nil
}

func checkFor(d time.Duration) error {
	if d < 0 || d > MaxFor {
		return sluis.Errorf(sluis.EINVALID, "the duration must be positive and at most %s (give none for \"until changed\")", MaxFor)
	}
	return nil
}

// Revoked is what a revocation ended.
type Revoked struct {
	// What names the sessions in words: "of user anna", "of group staff",
	// "used on app wiki", "of everyone".
	What string
	// IDs are the sessions it revoked, oldest first.
	IDs []string
}

// RevokeSession revokes one session (and the sessions made from it) by
// its ID, and returns it as it was. It needs the role helpdesk.
// ENOTFOUND if there is no such session; revoking a revoked one again
// changes nothing but is recorded.
func (a *Actions) RevokeSession(ctx context.Context, op Operator, id string) (sluis.Session, error) {
	if err := op.Need(RoleHelpdesk); err != nil {
		return sluis.Session{}, err
	}
	if id == "" || len(id) > 128 {
		return sluis.Session{}, sluis.Errorf(sluis.EINVALID, "give a session ID")
	}
	x, err := a.Store.Session(ctx, id)
	if err != nil {
		return sluis.Session{}, err
	}
	err = a.Store.RevokeSession(a.with(ctx, op, sluis.EventSessionRevoked, x.User, "session "+x.ID), x.ID, a.now())
	return x, err
}

// RevokeSessions revokes every live session f selects: exactly one of
// User (any case, as FindUser), Group, Host (an app's host; see AppHost)
// or All. The role helpdesk may revoke by user, group or app; revoking
// everyone's sessions is an incident measure and needs the role operator.
// EINVALID when not exactly one is set; ENOTFOUND for an unknown user or
// app host.
func (a *Actions) RevokeSessions(ctx context.Context, op Operator, f sluis.SessionFilter) (Revoked, error) {
	min := RoleHelpdesk
	if f.All {
		min = RoleOperator
	}
	if err := op.Need(min); err != nil {
		return Revoked{}, err
	}
	var what string
	set := 0
	if f.User != "" {
		name, err := FindUser(ctx, a.Store, f.User)
		if err != nil {
			return Revoked{}, err
		}
		f.User, what, set = name, "of user "+name, set+1
	}
	if f.Group != "" {
		if !sluis.ValidName(f.Group) {
			return Revoked{}, sluis.Errorf(sluis.EINVALID, "%s is not a group name", shown(f.Group))
		}
		what, set = "of group "+f.Group, set+1
	}
	if f.Host != "" {
		apps := a.config().Apps
		i := slices.IndexFunc(apps, func(x config.App) bool { return x.Host != "" && x.Host == f.Host })
		if i < 0 {
			return Revoked{}, sluis.Errorf(sluis.ENOTFOUND, "no app has the host %s", shown(f.Host))
		}
		what, set = "used on app "+apps[i].Name, set+1
	}
	if f.All {
		what, set = "of everyone", set+1
	}
	if set != 1 {
		return Revoked{}, sluis.Errorf(sluis.EINVALID, "select sessions by exactly one of: user, group, app, all")
	}
	// Ask the store which sessions go, then record each.
	all, err := a.Store.Sessions(ctx)
	if err != nil {
		return Revoked{}, err
	}
	owner := map[string]string{}
	for _, x := range all {
		owner[x.ID] = x.User
	}
	ids, err := a.Store.RevokeSessions(a.with(ctx, op, EventSessionsRevoke, f.User, "sessions "+what), f, a.now())
	if err != nil {
		return Revoked{What: what}, err
	}
	r := Revoked{What: what, IDs: ids}
	return r, a.recordSessions(ctx, op, what, ids, func(id string) string { return owner[id] }, "; sessions "+what)
}

// AppHost returns the host of the app named name, for RevokeSessions by
// app. ENOTFOUND if there is no such app; EINVALID for a TCP app, whose
// sessions are not bound to a host.
func (a *Actions) AppHost(name string) (string, error) {
	c := a.config()
	app, ok := c.AppByName(name)
	if !ok {
		return "", sluis.Errorf(sluis.ENOTFOUND, "no app %s in %s", strconv.Quote(name), c.File)
	}
	if app.Host == "" {
		return "", sluis.Errorf(sluis.EINVALID, "app %s is a TCP app: revoke its users' sessions by user or group", app.Name)
	}
	return app.Host, nil
}

// revokeAll ends every session of user after a change of credentials or
// a disable, as an operator resetting a compromised account expects.
func (a *Actions) revokeAll(ctx context.Context, op Operator, user string) ([]string, error) {
	ids, err := a.Store.RevokeSessions(a.with(ctx, op, EventSessionsRevoke, user, "every session of "+user+", after a change of credentials or a disable"), sluis.SessionFilter{User: user}, a.now())
	if err != nil {
		return nil, fmt.Errorf("revoking the sessions of %s: %w", user, err)
	}
	return ids, a.recordSessions(ctx, op, user, ids, func(string) string { return user }, "")
}

// UserChange is what a change of a user did.
type UserChange struct {
	User string // the stored name
	// Changed says the change itself committed (with its event), also
	// when ending the sessions after it then failed.
	Changed bool
	Revoked []string // the sessions it ended
}

// DisableUser disables a user (any case of the name, as FindUser) and
// ends their sessions. It needs the role helpdesk.
func (a *Actions) DisableUser(ctx context.Context, op Operator, name string) (UserChange, error) {
	return a.setDisabled(ctx, op, name, true)
}

// EnableUser enables a disabled user again. It needs the role helpdesk.
func (a *Actions) EnableUser(ctx context.Context, op Operator, name string) (UserChange, error) {
	return a.setDisabled(ctx, op, name, false)
}

func (a *Actions) setDisabled(ctx context.Context, op Operator, typed string, disabled bool) (UserChange, error) {
	if err := op.Need(RoleHelpdesk); err != nil {
		return UserChange{}, err
	}
	name, err := FindUser(ctx, a.Store, typed)
	if err != nil {
		return UserChange{}, err
	}
	if err := a.outranked(ctx, op, name); err != nil {
		return UserChange{}, err
	}
	typ := EventUserEnable
	if disabled {
		typ = EventUserDisable
	}
	if err := a.Store.SetDisabled(a.with(ctx, op, typ, name, ""), name, disabled); err != nil {
		return UserChange{User: name}, err
	}
	c := UserChange{User: name, Changed: true}
	if disabled {
		c.Revoked, err = a.revokeAll(ctx, op, name)
	}
	return c, err
}

// ResetMFA removes every second factor of a user (TOTP secret, passkeys,
// recovery codes) and ends their sessions: the help desk's reset after a
// lost phone or key. They enrol again at their next login. It needs the
// role helpdesk.
func (a *Actions) ResetMFA(ctx context.Context, op Operator, typed string) (UserChange, error) {
	if err := op.Need(RoleHelpdesk); err != nil {
		return UserChange{}, err
	}
	name, err := FindUser(ctx, a.Store, typed)
	if err != nil {
		return UserChange{}, err
	}
	if err := a.outranked(ctx, op, name); err != nil {
		return UserChange{}, err
	}
	if err := a.Store.ResetMFA(a.with(ctx, op, EventUserMFAReset, name, "TOTP secret, passkeys and recovery codes removed"), name); err != nil {
		return UserChange{User: name}, err
	}
	c := UserChange{User: name, Changed: true}
	c.Revoked, err = a.revokeAll(ctx, op, name)
	return c, err
}

// outranked refuses (ErrForbidden) a change to the account of a user
// whose console role is above op's: a help desk that could reset an
// operator's second factors (or enable an account an operator disabled)
// would hand whoever holds the operator's password a new passkey, and
// with it the operator's console.
func (a *Actions) outranked(ctx context.Context, op Operator, name string) error {
	c := a.config()
	if c == nil || c.Admin == nil {
		return nil
	}
	u, err := a.Store.User(ctx, name)
	if err != nil {
		return err
	}
	if role := Roles[c.Admin.RoleOf(u.Groups)]; role > op.Role {
		return fmt.Errorf("%w: %s has the console role %s, above yours (%s)", ErrForbidden, name, role, op.Role)
	}
	return nil
}

// Levels are the emergency levels, from open to shut.
var Levels = []string{sluis.LevelNormal, sluis.LevelStrict, sluis.LevelEssential, sluis.LevelLockdown, sluis.LevelClosed}

// LevelChange is a level to set: Reason is required except for normal
// (users see it); For, if not zero, returns to the level in force now
// after that long (at most MaxFor).
type LevelChange struct {
	Level  string
	Reason string
	For    time.Duration
}

// LevelResult is what setting a level did.
type LevelResult struct {
	Emergency sluis.Emergency // as stored
	// Until says how long it holds in words: "until changed", or "until
	// 2026-11-30 09:00:00, then normal" (local time).
	Until string
	// Revoked counts the sessions ended at lockdown (of everyone outside
	// break_glass).
	Revoked int
}

func checkLevel(level string) error {
	if !slices.Contains(Levels, level) {
		return sluis.Errorf(sluis.EINVALID, "unknown level %s: normal, strict, essential, lockdown or closed", strconv.Quote(level))
	}
	return nil
}

// SetLevel sets the emergency level; the running gateway applies it within
// a second. At lockdown, the sessions of everyone outside break_glass end
// at once, not only at their next request. It needs the role operator.
// When a revocation fails the level is set all the same (the result's
// Emergency is then not zero) and the error names the user.
func (a *Actions) SetLevel(ctx context.Context, op Operator, ch LevelChange) (LevelResult, error) {
	if err := op.Need(RoleOperator); err != nil {
		return LevelResult{}, err
	}
	if err := checkLevel(ch.Level); err != nil {
		return LevelResult{}, err
	}
	why, err := reason(ch.Reason, ch.Level != sluis.LevelNormal, "users see it")
	if err != nil {
		return LevelResult{}, err
	}
	if err := checkFor(ch.For); err != nil {
		return LevelResult{}, err
	}
	now := a.now()
	cur, err := a.Store.Emergency(ctx)
	if err != nil {
		return LevelResult{}, err
	}
	curLevel, _ := cur.Effective(now)
	em := sluis.Emergency{Level: ch.Level, Reason: why, Previous: curLevel, SetBy: op.Name, SetAt: now}
	if ch.For > 0 {
		em.Until = now.Add(ch.For)
	}
	r := LevelResult{Emergency: em, Until: "until changed"}
	if !em.Until.IsZero() {
		r.Until = "until " + em.Until.Local().Format(time.DateTime) + ", then " + curLevel
	}
	if err := a.Store.SetEmergency(a.with(ctx, op, EventEmergencySet, "", fmt.Sprintf("level %s %s; %s", ch.Level, r.Until, why)), em); err != nil {
		return LevelResult{}, err
	}
	if ch.Level != sluis.LevelLockdown {
		return r, nil
	}
	// Everyone but the break-glass users and groups loses their session,
	// not only their next request.
	users, live, err := a.liveUsers(ctx, now, op.SessionID)
	if err != nil {
		return r, fmt.Errorf("level %s is set, but its sessions could not be read: %w", ch.Level, err)
	}
	bg := a.config().BreakGlass()
	for _, u := range users {
		if live[u.Name] == 0 || bg.Allows(sluis.Identity{User: u.Name, Groups: u.Groups}) {
			continue
		}
		// All their sessions, console sessions too (lockdown is for when
		// accounts may be in the wrong hands), but the one the operator
		// acts in: they must be able to lift it again.
		ids, err := a.Store.RevokeSessions(a.with(ctx, op, EventSessionsRevoke, u.Name, "every session of "+u.Name+"; lockdown"),
			sluis.SessionFilter{User: u.Name, Keep: op.SessionID}, now)
		if err != nil {
			return r, fmt.Errorf("level %s is set, but revoking the sessions of %s failed: %w", ch.Level, u.Name, err)
		}
		name := u.Name
		if err := a.recordSessions(ctx, op, name, ids, func(string) string { return name }, "; lockdown"); err != nil {
			return r, err
		}
		r.Revoked += len(ids)
	}
	return r, nil
}

// liveUsers returns the users and, by name, how many sessions each has
// that still count (not revoked, not expired at now), but for the session
// keep.
func (a *Actions) liveUsers(ctx context.Context, now time.Time, keep string) ([]sluis.User, map[string]int, error) {
	users, err := a.Store.Users(ctx)
	if err != nil {
		return nil, nil, err
	}
	sessions, err := a.Store.Sessions(ctx)
	if err != nil {
		return nil, nil, err
	}
	live := map[string]int{}
	for _, x := range sessions {
		// keep is the acting operator's console session, which a
		// lockdown does not end (see sluis.SessionFilter.Keep).
		if !x.Revoked() && now.Before(x.ExpiresAt) && x.ID != keep {
			live[x.User]++
		}
	}
	return users, live, nil
}

// ClearLevel returns to the level normal. It needs the role operator.
func (a *Actions) ClearLevel(ctx context.Context, op Operator) (sluis.Emergency, error) {
	if err := op.Need(RoleOperator); err != nil {
		return sluis.Emergency{}, err
	}
	now := a.now()
	cur, err := a.Store.Emergency(ctx)
	if err != nil {
		return sluis.Emergency{}, err
	}
	curLevel, _ := cur.Effective(now)
	em := sluis.Emergency{Level: sluis.LevelNormal, SetBy: op.Name, SetAt: now}
	err = a.Store.SetEmergency(a.with(ctx, op, EventEmergencySet, "", "level normal (cleared; was "+curLevel+")"), em)
	return em, err
}

// LevelPreview is what a level would do, for the page that asks the
// operator to confirm it.
type LevelPreview struct {
	Level string
	// Notice is what users read on the login page and the launcher
	// ("Only essential applications are open: REASON"); empty at normal.
	Notice string
	// Refusal is what the page of a refused request says; empty when
	// nothing is refused for the level's sake.
	Refusal string
	// Effect says in words who is affected and how.
	Effect string
	// Live counts the sessions that count now (not revoked, not
	// expired); Affected those the level touches (see Effect); Revoked
	// those it ends at once (lockdown only).
	Live, Affected, Revoked int
	// Open names the apps still open to everyone their rules allow
	// (essential: the essential apps); nil when that is every app or
	// none.
	Open []string
}

// Preview says what setting level with reason would do now: what users
// will see and how many sessions it affects. It changes nothing; any
// operator may ask (the role viewer). EINVALID for an unknown level.
func (a *Actions) Preview(ctx context.Context, op Operator, level, why string) (LevelPreview, error) {
	if err := op.Need(RoleViewer); err != nil {
		return LevelPreview{}, err
	}
	if err := checkLevel(level); err != nil {
		return LevelPreview{}, err
	}
	why = strings.TrimSpace(why)
	now := a.now()
	users, live, err := a.liveUsers(ctx, now, op.SessionID)
	if err != nil {
		return LevelPreview{}, err
	}
	c := a.config()
	p := LevelPreview{Level: level}
	for _, n := range live {
		p.Live += n
	}
	// The words are the portal's and the access decision's (portal's
	// levelNotice, policy.Decide), so the operator confirms what users
	// will read.
	switch level {
	case sluis.LevelNormal:
		p.Effect = "Every app is open as its rules say."
	case sluis.LevelStrict:
		p.Notice = "Security is tightened: " + why
		reauth := max(c.Strict.ReauthAfter.D(), time.Minute)
		sessions, err := a.Store.Sessions(ctx)
		if err != nil {
			return LevelPreview{}, err
		}
		for _, x := range sessions {
			if !x.Revoked() && now.Before(x.ExpiresAt) && x.Stage == sluis.StageComplete && now.Sub(x.MFAAt) >= reauth {
				p.Affected++
			}
		}
		p.Effect = fmt.Sprintf("%d of %d live sessions passed their second factor more than %s ago and must pass it again; enrolment of new factors is frozen", p.Affected, p.Live, reauth)
		if keys := c.Strict.PhishingResistant; len(keys) > 0 {
			p.Effect += "; these apps want a passkey: " + strings.Join(keys, ", ")
		}
		p.Effect += "."
	case sluis.LevelEssential:
		p.Notice = "Only essential applications are open: " + why
		p.Refusal = p.Notice
		p.Affected = p.Live
		for _, app := range c.Apps {
			if app.Essential {
				p.Open = append(p.Open, app.Name)
			}
		}
		open := "none"
		if len(p.Open) > 0 {
			open = strings.Join(p.Open, ", ")
		}
		p.Effect = fmt.Sprintf("All %d live sessions lose every app that is not essential; open stay: %s.", p.Live, open)
	case sluis.LevelLockdown:
		p.Notice = "Access is limited to emergency staff: " + why
		p.Refusal = p.Notice
		bg := c.BreakGlass()
		for _, u := range users {
			if !bg.Allows(sluis.Identity{User: u.Name, Groups: u.Groups}) {
				p.Revoked += live[u.Name]
			}
		}
		p.Affected = p.Revoked
		p.Effect = fmt.Sprintf("%d of %d live sessions (everyone outside break_glass) end at once, and only break_glass staff can log in.", p.Revoked, p.Live)
	case sluis.LevelClosed:
		p.Notice = "Access through the gateway is closed: " + why
		p.Refusal = p.Notice
		p.Affected = p.Live
		p.Effect = fmt.Sprintf("All %d live sessions lose every app, and nobody can log in.", p.Live)
	}
	return p, nil
}

// BlockRequest is a block to add: an address or a range (CIDR), a reason
// (required), an optional duration (at most MaxFor), and Force for a
// range wider than one network's worth (see WideRange).
type BlockRequest struct {
	CIDR   string
	Reason string
	For    time.Duration
	Force  bool
}

// WideRangeError refuses a block wider than /8 (IPv4) or /32 (IPv6)
// without force: it would lock out staff too. The API answers it with 409
// and the code "needs_force".
type WideRangeError struct {
	CIDR   string // canonical
	Covers string // how many addresses, in words
}

func (e *WideRangeError) Error() string {
	return fmt.Sprintf("%s covers %s: it would lock out staff too, and everyone the gateway serves; to block it all the same, force it", e.CIDR, e.Covers)
}

// WideRange says how many addresses p covers, and whether that is more
// than a block of one attacker's network should: wider than /8 for IPv4
// or /32 for IPv6 (a whole provider), up to every address (0.0.0.0/0,
// ::/0). Such a block refuses the operator's own staff as well.
func WideRange(p netip.Prefix) (covers string, wide bool) {
	host := p.Addr().BitLen() - p.Bits()
	switch {
	case p.Bits() == 0 && p.Addr().Is4():
		covers = "every IPv4 address (2^32)"
	case p.Bits() == 0:
		covers = "every IPv6 address (2^128)"
	case host < 63:
		covers = strconv.FormatUint(1<<host, 10) + " addresses"
	default:
		covers = "2^" + strconv.Itoa(host) + " addresses"
	}
	if p.Addr().Is4() {
		return covers, p.Bits() < 8
	}
	return covers, p.Bits() < 32
}

// BlockResult is a block as added.
type BlockResult struct {
	Block sluis.Block
	// Until says how long in words: "until removed" or "until
	// 2026-11-30 09:00:00" (local time).
	Until string
}

// ParseCIDR reads an address or a range in canonical form; EINVALID
// otherwise.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := frontdoor.ParseCIDR(s)
	if err != nil || !p.IsValid() {
		return netip.Prefix{}, sluis.Errorf(sluis.EINVALID, "%s is not an address or a range (CIDR)", strconv.Quote(s))
	}
	return p, nil
}

// AddBlock blocks a range of source addresses at the front door (or
// replaces the block of that range). It needs the role operator.
func (a *Actions) AddBlock(ctx context.Context, op Operator, req BlockRequest) (BlockResult, error) {
	if err := op.Need(RoleOperator); err != nil {
		return BlockResult{}, err
	}
	p, err := ParseCIDR(req.CIDR)
	if err != nil {
		return BlockResult{}, err
	}
	why, err := reason(req.Reason, true, "it is kept with the block")
	if err != nil {
		return BlockResult{}, err
	}
	if err := checkFor(req.For); err != nil {
		return BlockResult{}, err
	}
	covers, wide := WideRange(p)
	if wide && !req.Force {
		return BlockResult{}, &WideRangeError{CIDR: p.String(), Covers: covers}
	}
	now := a.now()
	b := sluis.Block{CIDR: p.String(), Reason: why, CreatedAt: now}
	if req.For > 0 {
		b.Until = now.Add(req.For)
	}
	r := BlockResult{Block: b, Until: "until removed"}
	if !b.Until.IsZero() {
		r.Until = "until " + b.Until.Local().Format(time.DateTime)
	}
	forced := ""
	if wide {
		forced = " (forced: covers " + covers + ")"
	}
	err = a.Store.AddBlock(a.with(ctx, op, EventBlockAdd, "", fmt.Sprintf("%s %s%s; %s", b.CIDR, r.Until, forced, b.Reason)), b)
	return r, err
}

// RemoveBlock removes the block of an address or range, an operator's or
// an automatic one, and returns its canonical form. It needs the role
// operator. ENOTFOUND if there is none.
func (a *Actions) RemoveBlock(ctx context.Context, op Operator, cidr string) (string, error) {
	if err := op.Need(RoleOperator); err != nil {
		return "", err
	}
	p, err := ParseCIDR(cidr)
	if err != nil {
		return "", err
	}
	return p.String(), a.Store.RemoveBlock(a.with(ctx, op, EventBlockRemove, "", p.String()), p.String())
}

// DisableApp switches an app off for everyone, with a reason users see
// (required). It needs the role operator. ENOTFOUND for an unknown app.
func (a *Actions) DisableApp(ctx context.Context, op Operator, name, why string) error {
	return a.switchApp(ctx, op, name, why, true)
}

// EnableApp switches an app on again. It needs the role operator.
func (a *Actions) EnableApp(ctx context.Context, op Operator, name string) error {
	return a.switchApp(ctx, op, name, "", false)
}

func (a *Actions) switchApp(ctx context.Context, op Operator, name, why string, disable bool) error {
	if err := op.Need(RoleOperator); err != nil {
		return err
	}
	c := a.config()
	app, ok := c.AppByName(name)
	if !ok {
		return sluis.Errorf(sluis.ENOTFOUND, "no app %s in %s", strconv.Quote(name), c.File)
	}
	why, err := reason(why, disable, "users see it")
	if err != nil {
		return err
	}
	typ := EventAppEnable
	if disable {
		typ = EventAppDisable
	}
	return a.Store.SetAppDisabled(a.with(ctx, op, typ, "", "app "+app.Name+"; "+why), app.Name, disable, why, a.now())
}

// Status is the HTTP status the console and the API answer err with:
// 403 for ErrForbidden, 400, 404 and 409 for a *sluis.Error's EINVALID,
// ENOTFOUND and ECONFLICT, 409 for a *WideRangeError, 500 otherwise.
func Status(err error) int {
	var wide *WideRangeError
	switch {
	case err == nil:
		return 200
	case errors.Is(err, ErrForbidden):
		return 403
	case errors.As(err, &wide):
		return 409
	}
	switch sluis.ErrorCode(err) {
	case sluis.EINVALID:
		return 400
	case sluis.ENOTFOUND:
		return 404
	case sluis.ECONFLICT:
		return 409
	}
	return 500
}
