package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/session"
)

// Event types of the console's login.
const (
	// EventLogin records each step of a login on the console, with its
	// outcome: a password accepted or refused, a passkey, a refusal for
	// want of a role, a login ended because the role was taken away.
	EventLogin = "admin.login"
	// EventLogout records a logout from the console.
	EventLogout = "admin.logout"
)

// Throttles of the console's login, apart from the portal's and stricter:
// a guess counts against the user from its source, the user from
// anywhere (a short lock, so nobody can keep an operator out for long),
// and the source. Each allows Free failures, then locks for Base,
// doubling up to Max.
func newThrottles(now func() time.Time) (userSource, user, source *authn.Throttle) {
	return &authn.Throttle{Free: 5, Base: time.Second, Max: 5 * time.Minute, Now: now},
		&authn.Throttle{Free: 10, Base: time.Second, Max: time.Minute, Now: now},
		&authn.Throttle{Free: 20, Base: time.Second, Max: 15 * time.Minute, Now: now}
}

// Directory authenticates directory users (LDAP, Active Directory), as
// the portal's does.
type Directory interface {
	Authenticate(ctx context.Context, user, password string) (directory.Account, error)
	// Resolve returns the name of the account a typed name denotes.
	Resolve(ctx context.Context, user string) (string, error)
}

const noRole = "Your account has no role on the console: none of your groups is named in admin.roles. Ask the gateway's administrators for one."

const (
	wrongPassword = "Wrong user name or password."
	formExpired   = "The form expired. Please try again."
	busy          = "The service is busy. Try again in a few seconds."
	directoryDown = "The directory cannot be reached, so directory accounts cannot log in right now. Try again in a few minutes."
)

// loginData is what the login pages show.
type loginData struct {
	User          string // the user whose second factor is asked for
	HasPasskey    bool
	TOTP          bool   // allow_totp is on and the user has a code generator
	PortalPasskey string // where to add a passkey
	LoggedOut     bool
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) error {
	c, err := s.current(r)
	if err != nil {
		return err
	}
	if c != nil && c.op.Role != RoleNone {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	d := s.pageFor(r, "Log in to the console")
	d.CSRF = loginCSRF(w, r)
	d.Body = loginData{LoggedOut: r.URL.Query().Get("logged_out") == "1"}
	if d.Body.(loginData).LoggedOut {
		d.Notice = "You are logged out."
	}
	return s.render(w, http.StatusOK, "login", d)
}

// readForm reads a small urlencoded form.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > MaxBody {
		return errStatus(http.StatusRequestEntityTooLarge)
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errStatus(http.StatusBadRequest)
	}
	return nil
}

// guess is one attempt at a secret (kind "login" or "key") for account
// from src.
type guess struct{ kind, account, src string }

// attempt reserves a guess on the three throttles before it is checked;
// it returns how long to wait when one refuses it.
func (s *Server) attempt(ctx context.Context, g guess) (time.Duration, error) {
	keys := s.guessKeys(g)
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

// retract takes back an attempt that was never checked (a busy or
// unreachable directory).
func (s *Server) retract(ctx context.Context, g guess) {
	for _, k := range s.guessKeys(g) {
		k.th.Forgive(context.WithoutCancel(ctx), k.key)
	}
}

// succeeded forgets the user's failures and the source's count for this
// attempt (not its earlier failures).
func (s *Server) succeeded(ctx context.Context, g guess) {
	ctx = context.WithoutCancel(ctx)
	keys := s.guessKeys(g)
	keys[0].th.Reset(ctx, keys[0].key)
	keys[1].th.Reset(ctx, keys[1].key)
	keys[2].th.Forgive(ctx, keys[2].key)
}

type throttleKeyed struct {
	th  *authn.Throttle
	key string
}

func (s *Server) guessKeys(g guess) [3]throttleKeyed {
	return [3]throttleKeyed{
		{s.userSource, g.kind + ":" + g.account + "@" + sourceKey(g.src)},
		{s.user, g.kind + ":" + g.account},
		{s.source, g.kind + ":" + sourceKey(g.src)},
	}
}

func waitMessage(d time.Duration) string {
	return fmt.Sprintf("Too many attempts. Try again in %d seconds.", int(d.Round(time.Second)/time.Second)+1)
}

// login checks a user name and password. The user must be a local user
// or a directory user (the directory checks the password), not disabled,
// with a role; the second factor comes next.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	if err := s.readForm(w, r); err != nil {
		return err
	}
	d := s.pageFor(r, "Log in to the console")
	d.CSRF = loginCSRF(w, r)
	d.Body = loginData{}
	if !loginCSRFOK(r) {
		return s.refuse(w, r, http.StatusForbidden, "login", d, "", "", "the login form's CSRF token is missing or wrong", formExpired)
	}
	src := peerAddr(r)
	// A locked source is answered before the name is looked up.
	if wait, err := s.source.Check(r.Context(), "login:"+sourceKey(src)); err != nil {
		return err
	} else if wait > 0 {
		return s.refuse(w, r, http.StatusTooManyRequests, "login", d, "", sluis.OutcomeFailure, "throttled (source)", waitMessage(wait))
	}
	password := r.PostFormValue("password")
	u, account, err := s.resolve(r.Context(), r.PostFormValue("username"))
	if errors.Is(err, directory.ErrUnavailable) {
		return s.refuse(w, r, http.StatusServiceUnavailable, "login", d, account, sluis.OutcomeFailure, "directory unreachable", directoryDown)
	} else if err != nil {
		return err
	}
	g := guess{kind: "login", account: account, src: src}
	if wait, err := s.attempt(r.Context(), g); err != nil {
		return err
	} else if wait > 0 {
		return s.refuse(w, r, http.StatusTooManyRequests, "login", d, account, sluis.OutcomeFailure, "throttled", waitMessage(wait))
	}
	u, reason, err := s.checkPassword(r, u, account, password)
	switch {
	case errors.Is(err, authn.ErrBusy):
		s.retract(r.Context(), g)
		return s.refuse(w, r, http.StatusServiceUnavailable, "login", d, account, "", "busy", busy)
	case errors.Is(err, directory.ErrUnavailable):
		s.retract(r.Context(), g)
		return s.refuse(w, r, http.StatusServiceUnavailable, "login", d, account, sluis.OutcomeFailure, "directory unreachable", directoryDown)
	case err != nil:
		return err
	case reason != "":
		return s.refuse(w, r, http.StatusUnauthorized, "login", d, account, sluis.OutcomeFailure, reason, wrongPassword)
	}
	s.succeeded(r.Context(), g)
	role := s.o.Roles(u.Groups)
	if role == RoleNone {
		return s.refuseMessage(w, r, http.StatusForbidden, "No role", u.Name, "no role: the user's groups ("+strings.Join(u.Groups, ",")+") name none in admin.roles", noRole)
	}
	now := s.o.Now()
	tok, hash := session.NewToken()
	x := sluis.Session{ID: SessionPrefix + session.NewID(), User: u.Name, Stage: sluis.StagePassword, CreatedAt: now, LastSeen: now,
		ExpiresAt: now.Add(PendingLifetime), Source: src, UserAgent: truncate(r.UserAgent(), 256)}
	// The event first: a step the trail cannot record is not taken.
	if err := s.o.Audit.Require(r.Context(), sluis.Event{Type: EventLogin, User: u.Name, Source: src, Outcome: sluis.OutcomeSuccess,
		Detail: "password accepted (role " + role.String() + "); second factor next; session " + x.ID}); err != nil {
		return err
	}
	if err := s.o.Store.CreateSession(r.Context(), x, hash[:], s.o.Host); err != nil {
		return err
	}
	setCookie(w, sessionCookie, tok, PendingLifetime)
	http.Redirect(w, r, "/login/key", http.StatusSeeOther)
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// resolve finds the stored user a typed name denotes, asking the
// directory which account it names when no stored user has it; account
// is the name throttles and events use.
func (s *Server) resolve(ctx context.Context, typed string) (sluis.User, string, error) {
	key, err := sluis.CanonicalName(strings.TrimSpace(typed))
	if err != nil {
		return sluis.User{}, "(invalid name)", nil
	}
	users, err := s.o.Store.UsersNamed(ctx, key)
	if err != nil {
		return sluis.User{}, key, err
	}
	if dir := s.directory(); len(users) == 0 && dir != nil {
		acct, err := dir.Resolve(ctx, key)
		switch {
		case errors.Is(err, directory.ErrUnavailable):
			return sluis.User{}, key, err
		case err == nil && acct != "":
			key = acct
			if users, err = s.o.Store.UsersNamed(ctx, acct); err != nil {
				return sluis.User{}, key, err
			}
		}
	}
	var enabled []sluis.User
	for _, u := range users {
		if !u.Disabled {
			enabled = append(enabled, u)
		}
	}
	switch {
	case len(users) == 1:
		return users[0], users[0].Name, nil
	case len(users) > 1 && len(enabled) == 1:
		return enabled[0], enabled[0].Name, nil
	case len(users) > 1:
		// Twins that cannot be told apart: nobody.
		return sluis.User{}, key, nil
	}
	return sluis.User{}, key, nil
}

// checkPassword checks password for u (the zero User when the name is
// nobody's): with its hash for a local user, with the directory for a
// directory user (whose groups are brought up to date). It returns the
// user as they are now, or the reason the login is refused.
func (s *Server) checkPassword(r *http.Request, u sluis.User, account, password string) (sluis.User, string, error) {
	ctx := r.Context()
	switch {
	case u.Name == "":
		// As long as a real check, so the time tells nothing.
		_, err := authn.Verify(password, "")
		return u, "unknown user", err
	case u.Source == sluis.SourceLDAP && s.directory() != nil:
		// As long as a local check, whatever the directory takes.
		if _, err := authn.Verify(password, ""); err != nil {
			return u, "", err
		}
		acct, err := s.directory().Authenticate(ctx, u.Name, password)
		switch {
		case errors.Is(err, directory.ErrUnavailable):
			return u, "", err
		case errors.Is(err, directory.ErrDisabled):
			return u, "disabled in the directory", nil
		case err != nil:
			return u, "bad password (directory)", nil
		case acct.Name != u.Name || u.ExternalID != "" && u.ExternalID != "ldap:"+acct.ID:
			return u, "a different directory account now has this name", nil
		}
		if groups, gerr := sluis.NormalGroups(acct.Groups); gerr == nil && !slices.Equal(groups, u.Groups) {
			if err := s.o.Store.SetGroups(ctx, u.Name, groups); err != nil {
				return u, "", err
			}
			s.o.Audit.Record(ctx, sluis.Event{Type: "user.groups", User: u.Name, Source: peerAddr(r), Outcome: sluis.OutcomeSuccess,
				Detail: "from ldap (console login): " + strings.Join(u.Groups, ",") + " -> " + strings.Join(groups, ",")})
			u.Groups = groups
		}
	case u.Source != "":
		_, err := authn.Verify(password, "")
		return u, "a user of " + u.Source + ", whose password is not sluis's: the console takes local and directory users", err
	default:
		good, err := authn.Verify(password, u.PasswordHash)
		if err != nil {
			return u, "", err
		}
		if !good {
			return u, "bad password", nil
		}
	}
	if u.Disabled {
		return u, "disabled", nil
	}
	return u, "", nil
}

// account returns the user as a passkey ceremony sees them.
func (s *Server) account(ctx context.Context, user string) (mfa.Account, error) {
	a := mfa.Account{Name: user}
	h, err := s.o.Store.PasskeyHandle(ctx, user, false)
	if err != nil && sluis.ErrorCode(err) != sluis.ENOTFOUND {
		return a, err
	}
	a.Handle = h
	a.Keys, err = s.o.Store.Passkeys(ctx, user)
	if len(a.Handle) == 0 {
		a.Keys = nil // keys without a handle cannot answer
	}
	return a, err
}

// keyForm asks for the second factor: the user's passkey, or, with
// allow_totp, a one-time code.
func (s *Server) keyForm(w http.ResponseWriter, r *http.Request) error {
	a, tok, err := s.pending(r)
	if err != nil {
		return err
	}
	if a == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	return s.renderKey(w, r, a, tok, http.StatusOK, "")
}

func (s *Server) renderKey(w http.ResponseWriter, r *http.Request, a *session.Active, tok string, status int, msg string) error {
	acct, err := s.account(r.Context(), a.User.Name)
	if err != nil {
		return err
	}
	d := s.pageFor(r, "Your passkey")
	d.CSRF, d.Script, d.Error = csrfFor(tok), true, msg
	ld := loginData{User: a.User.Name, HasPasskey: len(acct.Keys) > 0, TOTP: s.o.AllowTOTP && a.User.HasTOTP(), PortalPasskey: s.o.PortalURL + "/passkeys"}
	d.Body = ld
	if !ld.HasPasskey && !ld.TOTP {
		d.Title = "A passkey is needed"
		if d.Error == "" {
			s.event(r, EventLogin, a.User.Name, sluis.OutcomeDenied, "no passkey (and no one-time code taken: admin.allow_totp is off)")
		}
	}
	return s.render(w, status, "key", d)
}

// ceremony is a passkey ceremony's state, sealed in a cookie between its
// two steps, bound to the console session.
type ceremony struct {
	State []byte `json:"s"`
}

func (s *Server) keyBegin(w http.ResponseWriter, r *http.Request) error {
	a, _, ok, err := s.keyRequest(w, r)
	if !ok {
		return err
	}
	acct, err := s.account(r.Context(), a.User.Name)
	if err != nil {
		return err
	}
	if len(acct.Keys) == 0 {
		return sendJSON(w, http.StatusBadRequest, keyAnswer{Error: "You have no passkey yet. Add one on the portal first."})
	}
	c, err := s.passkeys.BeginLogin(acct)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(ceremony{State: c.State})
	if err != nil {
		return err
	}
	sealed := s.o.Sealer.Seal(raw, "admin-passkey:"+a.Session.ID)
	setCookie(w, passkeyCookie, base64.RawURLEncoding.EncodeToString(sealed), mfa.CeremonyTimeout)
	return sendJSON(w, http.StatusOK, json.RawMessage(c.Options))
}

// keyAnswer is what the passkey endpoints answer.
type keyAnswer struct {
	Redirect string `json:"redirect,omitempty"`
	Error    string `json:"error,omitempty"`
}

// keyRequest checks a passkey step's request: JSON, with the CSRF token of
// the pending login in X-CSRF-Token. When it is not acceptable it has
// answered it, and ok is false.
func (s *Server) keyRequest(w http.ResponseWriter, r *http.Request) (a *session.Active, tok string, ok bool, err error) {
	if !bodyIsJSON(r) {
		return nil, "", false, errStatus(http.StatusUnsupportedMediaType)
	}
	a, tok, err = s.pending(r)
	if err != nil {
		return nil, "", false, err
	}
	if a == nil {
		return nil, "", false, sendJSON(w, http.StatusUnauthorized, keyAnswer{Error: "Log in first.", Redirect: "/login"})
	}
	if !macEqual(r.Header.Get("X-CSRF-Token"), csrfFor(tok)) {
		return nil, "", false, sendJSON(w, http.StatusForbidden, keyAnswer{Error: "The page expired. Reload it and try again."})
	}
	return a, tok, true, nil
}

func (s *Server) keyFinish(w http.ResponseWriter, r *http.Request) error {
	a, _, ok, err := s.keyRequest(w, r)
	if !ok {
		return err
	}
	if r.ContentLength > MaxBody {
		return errStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return err
	}
	user, src := a.User.Name, peerAddr(r)
	st, err := s.openCeremony(w, r, a.Session.ID)
	if err != nil {
		return s.keyFailed(w, r, user, err)
	}
	g := guess{kind: "key", account: user, src: src}
	if wait, err := s.attempt(r.Context(), g); err != nil {
		return err
	} else if wait > 0 {
		id := s.eventID(r, EventLogin, user, sluis.OutcomeFailure, "passkey: throttled")
		return sendJSON(w, http.StatusTooManyRequests, keyAnswer{Error: waitMessage(wait) + " (error ID " + id + ")"})
	}
	acct, err := s.account(r.Context(), user)
	if err != nil {
		return err
	}
	id, data, err := s.passkeys.FinishLogin(acct, st.State, body)
	if err == nil {
		err = s.spend(r.Context(), st)
	}
	if err != nil {
		return s.keyFailed(w, r, user, err)
	}
	s.succeeded(r.Context(), g)
	if err := s.o.Store.UsePasskey(r.Context(), id, data, s.o.Now()); err != nil {
		return err
	}
	redirect, err := s.complete(w, r, a, sluis.FactorPasskey, "passkey")
	if err != nil {
		return err
	}
	if redirect == "" {
		return sendJSON(w, http.StatusForbidden, keyAnswer{Error: noRole, Redirect: "/login"})
	}
	return sendJSON(w, http.StatusOK, keyAnswer{Redirect: redirect})
}

// complete finishes a console login whose second factor (method) passed:
// the session gets a new token (the one from before stops working) and
// its lifetime. It returns where to go next, or "" when the user has no
// role now (the login is refused and recorded).
func (s *Server) complete(w http.ResponseWriter, r *http.Request, a *session.Active, method, detail string) (string, error) {
	// The groups as they are now: the user may have lost a role since
	// the password.
	u, err := s.o.Store.User(r.Context(), a.User.Name)
	if err != nil {
		return "", err
	}
	role := s.o.Roles(u.Groups)
	if role == RoleNone || u.Disabled {
		s.eventID(r, EventLogin, u.Name, sluis.OutcomeDenied, detail+" accepted, but the user has no role in admin.roles now")
		if err := s.o.Store.RevokeSession(r.Context(), a.Session.ID, s.o.Now()); err != nil {
			return "", err
		}
		clearCookie(w, sessionCookie)
		return "", nil
	}
	now := s.o.Now()
	tok, hash := session.NewToken()
	if err := s.o.Audit.Require(r.Context(), sluis.Event{Type: EventLogin, User: u.Name, Source: peerAddr(r), Outcome: sluis.OutcomeSuccess,
		Detail: detail + "; logged in as " + role.String() + "; session " + a.Session.ID}); err != nil {
		return "", err
	}
	if err := s.o.Store.CompleteSession(r.Context(), a.Session.ID, now, method, now.Add(SessionLifetime), hash[:], s.o.Host); err != nil {
		return "", err
	}
	setCookie(w, sessionCookie, tok, SessionLifetime)
	clearCookie(w, loginCookie)
	return "/", nil
}

// openCeremony takes the ceremony's state from its cookie (and clears
// it): sealed for this session, not expired.
func (s *Server) openCeremony(w http.ResponseWriter, r *http.Request, sessionID string) (ceremony, error) {
	var st ceremony
	v := cookieValue(r, passkeyCookie)
	clearCookie(w, passkeyCookie)
	if v == "" {
		return st, fmt.Errorf("%w: no ceremony under way", mfa.ErrPasskey)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return st, fmt.Errorf("%w: bad ceremony cookie", mfa.ErrPasskey)
	}
	raw, err := s.o.Sealer.Open(sealed, "admin-passkey:"+sessionID)
	if err != nil {
		return st, fmt.Errorf("%w: ceremony cookie of another session", mfa.ErrPasskey)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("%w: bad ceremony state", mfa.ErrPasskey)
	}
	if _, expires, err := mfa.Challenge(st.State); err != nil {
		return st, err
	} else if !time.Now().Before(expires) {
		// The WebAuthn library stamps the expiry by the system clock.
		return st, fmt.Errorf("%w: the ceremony expired", mfa.ErrPasskey)
	}
	return st, nil
}

// spend records a verified ceremony's challenge as used, so its answer
// counts once.
func (s *Server) spend(ctx context.Context, st ceremony) error {
	hash, expires, err := mfa.Challenge(st.State)
	if err != nil {
		return err
	}
	fresh, err := s.o.Store.UseChallenge(ctx, hash, expires)
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: the challenge was used before", mfa.ErrPasskey)
	}
	return nil
}

// keyFailed records a failed passkey step and answers it.
func (s *Server) keyFailed(w http.ResponseWriter, r *http.Request, user string, err error) error {
	if !errors.Is(err, mfa.ErrPasskey) {
		return err
	}
	id := s.eventID(r, EventLogin, user, sluis.OutcomeFailure, "passkey not accepted")
	s.o.Log.Info("admin: passkey refused", "user", user, "source", peerAddr(r), "reason", err.Error(), "error_id", id)
	return sendJSON(w, http.StatusUnauthorized, keyAnswer{Error: "The passkey was not accepted. Try again. (Error ID " + id + ")"})
}

// codeLogin takes a one-time code as the second factor, only with
// admin.allow_totp. Recovery codes are never taken.
func (s *Server) codeLogin(w http.ResponseWriter, r *http.Request) error {
	if err := s.readForm(w, r); err != nil {
		return err
	}
	a, tok, err := s.pending(r)
	if err != nil {
		return err
	}
	if a == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	if !macEqual(r.PostFormValue("csrf"), csrfFor(tok)) {
		return s.renderKey(w, r, a, tok, http.StatusForbidden, formExpired)
	}
	user, src := a.User.Name, peerAddr(r)
	if !s.o.AllowTOTP || !a.User.HasTOTP() {
		id := s.eventID(r, EventLogin, user, sluis.OutcomeDenied, "a one-time code, which the console does not take (admin.allow_totp is off)")
		return s.renderKey(w, r, a, tok, http.StatusForbidden, "The console takes a passkey only. (Error ID "+id+")")
	}
	g := guess{kind: "key", account: user, src: src}
	if wait, err := s.attempt(r.Context(), g); err != nil {
		return err
	} else if wait > 0 {
		id := s.eventID(r, EventLogin, user, sluis.OutcomeFailure, "one-time code: throttled")
		return s.renderKey(w, r, a, tok, http.StatusTooManyRequests, waitMessage(wait)+" (Error ID "+id+")")
	}
	secret, err := s.o.Sealer.Open(a.User.TOTPSecret, "totp:"+user)
	if err != nil {
		return fmt.Errorf("open TOTP secret of %s: %w", user, err)
	}
	step, ok := mfa.Verify(string(secret), strings.TrimSpace(r.PostFormValue("code")), s.o.Now())
	if ok {
		if ok, err = s.o.Store.UseTOTPStep(r.Context(), user, step); err != nil {
			return err
		}
	}
	if !ok {
		id := s.eventID(r, EventLogin, user, sluis.OutcomeFailure, "wrong or used one-time code")
		return s.renderKey(w, r, a, tok, http.StatusUnauthorized, "That code is not valid. Wait for the next code and try again. (Error ID "+id+")")
	}
	s.succeeded(r.Context(), g)
	next, err := s.complete(w, r, a, sluis.FactorTOTP, "one-time code (admin.allow_totp)")
	if err != nil {
		return err
	}
	if next == "" {
		return s.refuseMessage(w, r, http.StatusForbidden, "No role", user, "", noRole)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// logout ends the console session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	c := consoleOf(r)
	if err := s.readForm(w, r); err != nil {
		return err
	}
	if !macEqual(r.PostFormValue("csrf"), c.csrf) {
		return errStatus(http.StatusForbidden)
	}
	if err := s.o.Store.RevokeSession(r.Context(), c.sess.ID, s.o.Now()); err != nil {
		return err
	}
	s.o.Audit.Record(r.Context(), sluis.Event{Type: EventLogout, User: c.user.Name, Source: peerAddr(r), Outcome: sluis.OutcomeSuccess, Detail: "session " + c.sess.ID})
	clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/login?logged_out=1", http.StatusSeeOther)
	return nil
}

// eventID records a refusal of a login step with a new error ID, which it
// returns (the page shows it, the log has it): folded with others of the
// user when they come fast (audit.Refusals), so a flood stays bounded.
func (s *Server) eventID(r *http.Request, typ, user, outcome, detail string) string {
	id := errpage.NewID()
	errpage.Log(r.Context(), s.o.Log, r, id, errpage.Refusal{Status: http.StatusUnauthorized, Cause: "admin: " + detail, User: user})
	s.event(r, typ, user, outcome, detail+"; error ID "+id)
	return id
}

// event records a login event; refusals are folded (see eventID).
func (s *Server) event(r *http.Request, typ, user, outcome, detail string) {
	src := peerAddr(r)
	if outcome == sluis.OutcomeFailure {
		folded, ok := s.refusals.Let(typ, user, sourceKey(src), detail)
		if !ok {
			return
		}
		if folded != "" {
			detail += "; " + folded
		}
	}
	s.o.Audit.Record(r.Context(), sluis.Event{Type: typ, User: user, Source: src, Outcome: outcome, Detail: detail})
}

// dirBox holds the directory in force (nil: none), for an atomic swap.
type dirBox struct{ d Directory }

// SetDirectory puts the directory of a reloaded configuration in force
// for the console's logins (nil: the configuration has none), as the
// portal's: a console that kept the old server, bind account or group
// mapping after a reload would let the directory the operator just
// replaced decide who logs in, and with which role.
func (s *Server) SetDirectory(d Directory) {
	s.dir.Store(&dirBox{d})
}

// directory returns the directory in force: the last SetDirectory's, or
// Options.Directory.
func (s *Server) directory() Directory {
	if b := s.dir.Load(); b != nil {
		return b.d
	}
	return s.o.Directory
}
