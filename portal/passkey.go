package portal

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/session"
)

const (
	// passkeyCookie carries a ceremony's state, sealed, from its first
	// step to its second; any node can finish it.
	passkeyCookie = "__Host-sluis-passkey"
	// recentMFA is how fresh the second factor must be to add or remove a
	// passkey: a stolen session cookie alone cannot plant a thief's key.
	recentMFA = 15 * time.Minute
	// maxPasskeyName bounds a passkey's name, in characters.
	maxPasskeyName = 64
)

// ceremonyState is what the sealed cookie holds.
type ceremonyState struct {
	Name  string `json:"n,omitempty"` // the new key's name, when registering
	State []byte `json:"s"`
}

// jsonAnswer is what the passkey endpoints answer.
type jsonAnswer struct {
	Redirect string `json:"redirect,omitempty"`
	Message  string `json:"message,omitempty"`
	Error    string `json:"error,omitempty"`
	// ErrorID names a refusal (status 400 and up) in the log, for the
	// help desk: the page shows it with the error.
	ErrorID string `json:"error_id,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	if a, ok := v.(jsonAnswer); ok && status >= 400 && a.Error != "" {
		a.ErrorID = refusalID(w, status, "JSON", a.Error)
		v = a
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) error {
	return writeJSON(w, status, jsonAnswer{Error: msg})
}

// jsonBody reads the small JSON body of a passkey request. The request
// must carry the page's CSRF token in X-CSRF-Token and say it is JSON (a
// form of another site can do neither).
func (p *Portal) jsonBody(w http.ResponseWriter, r *http.Request) ([]byte, bool, error) {
	body, err := readJSON(w, r, maxFormBytes)
	if err != nil {
		return nil, false, err
	}
	c, err := r.Cookie(csrfCookie)
	ok := err == nil && len(c.Value) == 43 && hmac.Equal([]byte(r.Header.Get("X-CSRF-Token")), []byte(p.csrfFor(c.Value)))
	return body, ok, nil
}

// readJSON reads a JSON body of at most limit bytes: the request must say
// it is JSON (a form of another site cannot), and a larger one is refused
// before a byte of it is read.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Header.Get("Content-Type") != "application/json" {
		return nil, statusError(http.StatusUnsupportedMediaType)
	}
	if r.ContentLength > limit {
		return nil, statusError(http.StatusRequestEntityTooLarge)
	}
	return io.ReadAll(http.MaxBytesReader(unwrap(w), r.Body, limit))
}

// jsonRequest reads a passkey request's body; when the request is not
// acceptable it has answered it, and ok is false.
func (p *Portal) jsonRequest(w http.ResponseWriter, r *http.Request) (body []byte, ok bool, err error) {
	body, csrfOK, err := p.jsonBody(w, r)
	if err != nil {
		return nil, false, err
	}
	if !csrfOK {
		return nil, false, jsonError(w, http.StatusForbidden, p.t(r, "passkey.expired"))
	}
	return body, true, nil
}

// beginCeremony keeps a ceremony's state (with the name of a key being
// registered) sealed in a cookie, bound to its kind and to bind (the
// session, or before login the CSRF cookie), so any node can finish it;
// and it sends the browser the ceremony's options.
func (p *Portal) beginCeremony(w http.ResponseWriter, kind, bind, name string, c mfa.Ceremony) error {
	raw, err := json.Marshal(ceremonyState{Name: name, State: c.State})
	if err != nil {
		return err
	}
	sealed := p.Sealer.Seal(raw, "passkey:"+kind+":"+bind)
	http.SetCookie(w, &http.Cookie{Name: passkeyCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(mfa.CeremonyTimeout / time.Second)})
	return writeJSON(w, http.StatusOK, json.RawMessage(c.Options))
}

// openCeremony takes the ceremony's state from its cookie and clears it.
// Once the answer is verified, spend records its challenge as used.
func (p *Portal) openCeremony(w http.ResponseWriter, r *http.Request, kind, bind string) (ceremonyState, error) {
	var st ceremonyState
	c, err := r.Cookie(passkeyCookie)
	if err != nil {
		return st, fmt.Errorf("%w: no ceremony under way", mfa.ErrPasskey)
	}
	http.SetCookie(w, &http.Cookie{Name: passkeyCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return st, fmt.Errorf("%w: bad ceremony cookie", mfa.ErrPasskey)
	}
	raw, err := p.Sealer.Open(sealed, "passkey:"+kind+":"+bind)
	if err != nil {
		return st, fmt.Errorf("%w: ceremony cookie of another kind or session", mfa.ErrPasskey)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("%w: bad ceremony state", mfa.ErrPasskey)
	}
	if _, expires, err := mfa.Challenge(st.State); err != nil {
		return st, err
	} else if !p.Now().Before(expires) {
		return st, fmt.Errorf("%w: the ceremony expired", mfa.ErrPasskey)
	}
	return st, nil
}

// spend records a verified ceremony's challenge as used, so its answer
// counts once even if the cookie was kept and sent again. It is called
// only after the signature checked out, so answers that fail write
// nothing.
func (p *Portal) spend(ctx context.Context, st ceremonyState) error {
	hash, expires, err := mfa.Challenge(st.State)
	if err != nil {
		return err
	}
	fresh, err := p.Store.UseChallenge(ctx, hash, expires)
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: the challenge was used before", mfa.ErrPasskey)
	}
	return nil
}

// account returns the user as the ceremonies see them; create makes the
// user's handle when there is none yet.
func (p *Portal) account(ctx context.Context, user string, create bool) (mfa.Account, error) {
	a := mfa.Account{Name: user}
	h, err := p.Store.PasskeyHandle(ctx, user, create)
	if err != nil && sluis.ErrorCode(err) != sluis.ENOTFOUND {
		return a, err
	}
	a.Handle = h
	a.Keys, err = p.Store.Passkeys(ctx, user)
	return a, err
}

// hasPasskeys says whether user has registered a passkey.
func (p *Portal) hasPasskeys(ctx context.Context, user string) (bool, error) {
	if p.Passkeys == nil {
		return false, nil
	}
	keys, err := p.Store.Passkeys(ctx, user)
	return len(keys) > 0, err
}

// keyWanted reports whether the login is headed for an app that wants a
// passkey this session has not passed: then only a passkey completes it.
func (p *Portal) keyWanted(r *http.Request, a *session.Active, t target) bool {
	app, ok := p.appHosts[t.host]
	if !ok {
		return false
	}
	sit, err := p.situation(r.Context(), app.Name)
	if err != nil {
		return false
	}
	// Only the kind of factor is in question here, not its age.
	id := a.Identity()
	id.MFA, id.MFAAt = true, sit.Now
	src, _ := netip.ParseAddr(frontdoor.ClientIP(r))
	path, _, _ := strings.Cut(t.path, "?")
	return policy.Decide(id, app, policy.Request{Method: http.MethodGet, Path: path, Source: src}, sit).Outcome == policy.StepUp
}

// passkeyFailed records a failed ceremony and answers it.
func (p *Portal) passkeyFailed(w http.ResponseWriter, r *http.Request, typ, user string, err error) error {
	if !errors.Is(err, mfa.ErrPasskey) {
		return err
	}
	p.Log.Info("portal: passkey refused", "user", user, "source", frontdoor.ClientIP(r), "reason", err.Error())
	p.event(r, typ, user, sluis.OutcomeFailure, "passkey not accepted")
	return jsonError(w, http.StatusUnauthorized, p.t(r, "passkey.not_accepted"))
}

// ---- managing passkeys ----

type keyRow struct{ Name, ID, Created, LastUsed string }

func (p *Portal) passkeysPage(w http.ResponseWriter, r *http.Request) error {
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete || p.Passkeys == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	keys, err := p.Store.Passkeys(r.Context(), a.User.Name)
	if err != nil {
		return err
	}
	lang := p.Locale.For(r)
	d := pageData{Title: p.t(r, "passkeys.title"), CSRF: p.csrfToken(w, r), User: a.User.Name, Passkeys: true}
	for _, k := range keys {
		row := keyRow{Name: k.Name, ID: hex.EncodeToString(k.ID), Created: lang.Date(k.CreatedAt), LastUsed: lang.T("passkeys.never")}
		if !k.LastUsed.IsZero() {
			row.LastUsed = lang.Date(k.LastUsed)
		}
		d.Keys = append(d.Keys, row)
	}
	level, reason, err := p.level(r)
	if err != nil {
		return err
	}
	d.Level = p.levelNotice(r, level, reason)
	if level == sluis.LevelStrict {
		d.Frozen = true
	}
	return p.render(w, r, http.StatusOK, "passkeys", d)
}

// mayChangeKeys answers for a change to the caller's passkeys that is not
// allowed: not logged in, enrolment frozen, or a second factor too old.
func (p *Portal) mayChangeKeys(w http.ResponseWriter, r *http.Request, a *session.Active) (bool, error) {
	if a == nil || a.Session.Stage != sluis.StageComplete || p.Passkeys == nil {
		return false, jsonError(w, http.StatusUnauthorized, p.t(r, "passkey.login_first"))
	}
	level, reason, err := p.level(r)
	if err != nil {
		return false, err
	}
	if level == sluis.LevelStrict {
		p.event(r, sluis.EventMFAFailure, a.User.Name, sluis.OutcomeDenied, "passkey enrolment frozen at level strict")
		return false, jsonError(w, http.StatusForbidden, p.t(r, "error.frozen", reason))
	}
	if p.Now().Sub(a.Session.MFAAt) > recentMFA {
		return false, jsonError(w, http.StatusForbidden, p.t(r, "passkey.too_old"))
	}
	return true, nil
}

func (p *Portal) passkeyRegisterBegin(w http.ResponseWriter, r *http.Request) error {
	body, ok, err := p.jsonRequest(w, r)
	if !ok {
		return err
	}
	a := p.current(r)
	if ok, err := p.mayChangeKeys(w, r, a); !ok {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return jsonError(w, http.StatusBadRequest, p.t(r, "passkey.bad_request"))
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > maxPasskeyName || strings.IndexFunc(name, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 || !utf8.ValidString(name) {
		return jsonError(w, http.StatusBadRequest, p.t(r, "passkey.name_length", maxPasskeyName))
	}
	acct, err := p.account(r.Context(), a.User.Name, true)
	if err != nil {
		return err
	}
	for _, k := range acct.Keys {
		if k.Name == name {
			return jsonError(w, http.StatusConflict, p.t(r, "passkey.name_taken"))
		}
	}
	c, err := p.Passkeys.BeginRegistration(acct)
	if err != nil {
		return err
	}
	return p.beginCeremony(w, "register", a.Session.ID, name, c)
}

func (p *Portal) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request) error {
	body, ok, err := p.jsonRequest(w, r)
	if !ok {
		return err
	}
	a := p.current(r)
	if ok, err := p.mayChangeKeys(w, r, a); !ok {
		return err
	}
	st, err := p.openCeremony(w, r, "register", a.Session.ID)
	if err != nil {
		return p.passkeyFailed(w, r, sluis.EventMFAFailure, a.User.Name, err)
	}
	acct, err := p.account(r.Context(), a.User.Name, false)
	if err != nil {
		return err
	}
	id, data, err := p.Passkeys.FinishRegistration(acct, st.State, body)
	if err == nil {
		err = p.spend(r.Context(), st)
	}
	if err != nil {
		return p.passkeyFailed(w, r, sluis.EventMFAFailure, a.User.Name, err)
	}
	err = p.Store.AddPasskey(r.Context(), sluis.Passkey{ID: id, User: a.User.Name, Name: st.Name, Data: data, CreatedAt: p.Now()})
	if sluis.ErrorCode(err) == sluis.ECONFLICT {
		return jsonError(w, http.StatusConflict, p.t(r, "passkey.registered"))
	}
	if err != nil {
		return err
	}
	p.event(r, sluis.EventMFAEnrolled, a.User.Name, sluis.OutcomeSuccess, "passkey "+st.Name)
	return writeJSON(w, http.StatusOK, jsonAnswer{Message: "Passkey added.", Redirect: "/passkeys"})
}

func (p *Portal) passkeyRemove(w http.ResponseWriter, r *http.Request) error {
	csrfOK, err := p.parseForm(w, r)
	if err != nil {
		return err
	}
	a := p.current(r)
	if a == nil || a.Session.Stage != sluis.StageComplete || p.Passkeys == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	if !csrfOK {
		return statusError(http.StatusForbidden)
	}
	if p.Now().Sub(a.Session.MFAAt) > recentMFA {
		return p.renderPasskeysError(w, r, a, p.t(r, "passkey.too_old"))
	}
	id, err := hex.DecodeString(r.PostFormValue("id"))
	if err != nil || len(id) == 0 {
		return statusError(http.StatusBadRequest)
	}
	keys, err := p.Store.Passkeys(r.Context(), a.User.Name)
	if err != nil {
		return err
	}
	name := ""
	for _, k := range keys {
		if hmac.Equal(k.ID, id) {
			name = k.Name
		}
	}
	if err := p.Store.RemovePasskey(r.Context(), a.User.Name, id); err != nil {
		if sluis.ErrorCode(err) == sluis.ENOTFOUND {
			return statusError(http.StatusNotFound)
		}
		return err
	}
	p.event(r, sluis.EventMFARemoved, a.User.Name, sluis.OutcomeSuccess, "passkey "+name)
	http.Redirect(w, r, "/passkeys", http.StatusSeeOther)
	return nil
}

func (p *Portal) renderPasskeysError(w http.ResponseWriter, r *http.Request, a *session.Active, msg string) error {
	d := pageData{Title: p.t(r, "passkeys.title"), CSRF: p.csrfToken(w, r), User: a.User.Name, Error: msg}
	return p.render(w, r, http.StatusForbidden, "passkeys", d)
}

// ---- a passkey as the second factor, or as a step-up ----

func (p *Portal) passkeyMFABegin(w http.ResponseWriter, r *http.Request) error {
	if _, ok, err := p.jsonRequest(w, r); !ok {
		return err
	}
	a, ok := p.pending(r)
	if !ok || p.Passkeys == nil {
		return writeJSON(w, http.StatusUnauthorized, jsonAnswer{Error: p.t(r, "passkey.login_first"), Redirect: "/login"})
	}
	acct, err := p.account(r.Context(), a.User.Name, false)
	if err != nil {
		return err
	}
	if len(acct.Keys) == 0 {
		return jsonError(w, http.StatusBadRequest, p.t(r, "passkey.none_yet"))
	}
	c, err := p.Passkeys.BeginLogin(acct)
	if err != nil {
		return err
	}
	return p.beginCeremony(w, "mfa", a.Session.ID, "", c)
}

func (p *Portal) passkeyMFAFinish(w http.ResponseWriter, r *http.Request) error {
	body, ok, err := p.jsonRequest(w, r)
	if !ok {
		return err
	}
	t, f := p.flowParams(r)
	a, ok := p.pending(r)
	if !ok || p.Passkeys == nil {
		return writeJSON(w, http.StatusUnauthorized, jsonAnswer{Error: p.t(r, "passkey.login_first"), Redirect: "/login"})
	}
	user, src := a.User.Name, frontdoor.ClientIP(r)
	st, err := p.openCeremony(w, r, "mfa", a.Session.ID)
	if err != nil {
		return p.passkeyFailed(w, r, sluis.EventMFAFailure, user, err)
	}
	if wait, err := p.attempt(r.Context(), guess{kind: "mfa", user: user, src: src}); err != nil {
		return err
	} else if wait > 0 {
		p.event(r, sluis.EventMFAFailure, user, sluis.OutcomeFailure, "throttled")
		return jsonError(w, http.StatusTooManyRequests, p.waitMessage(r, wait))
	}
	acct, err := p.account(r.Context(), user, false)
	if err != nil {
		return err
	}
	id, data, err := p.Passkeys.FinishLogin(acct, st.State, body)
	if err == nil {
		err = p.spend(r.Context(), st)
	}
	if err != nil {
		return p.passkeyFailed(w, r, sluis.EventMFAFailure, user, err)
	}
	p.succeeded(r.Context(), guess{kind: "mfa", user: user, src: src})
	if err := p.Store.UsePasskey(r.Context(), id, data, p.Now()); err != nil {
		return err
	}
	if a.Session.Stage == sluis.StageComplete {
		if err := p.record(r, sluis.EventMFASuccess, user, sluis.OutcomeSuccess, "passkey step-up"); err != nil {
			return err
		}
		if err := p.Store.RefreshMFA(r.Context(), a.Session.ID, p.Now(), sluis.FactorPasskey); err != nil {
			return err
		}
	} else if err := p.finishLogin(w, r, a, sluis.FactorPasskey, "passkey"); err != nil {
		return err
	}
	next, err := p.nextURL(r, a.Session.ID, t, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: next})
}

// ---- passwordless ----

func (p *Portal) passwordlessBegin(w http.ResponseWriter, r *http.Request) error {
	if _, ok, err := p.jsonRequest(w, r); !ok {
		return err
	}
	if p.Passkeys == nil {
		return statusError(http.StatusNotFound)
	}
	if level, reason, err := p.level(r); err != nil {
		return err
	} else if level == sluis.LevelClosed {
		return jsonError(w, http.StatusServiceUnavailable, p.levelNotice(r, level, reason))
	}
	c, err := p.Passkeys.BeginPasswordless()
	if err != nil {
		return err
	}
	csrf, _ := r.Cookie(csrfCookie)
	return p.beginCeremony(w, "login", csrf.Value, "", c)
}

func (p *Portal) passwordlessFinish(w http.ResponseWriter, r *http.Request) error {
	body, ok, err := p.jsonRequest(w, r)
	if !ok {
		return err
	}
	if p.Passkeys == nil {
		return statusError(http.StatusNotFound)
	}
	level, _, err := p.level(r)
	if err != nil {
		return err
	}
	if level == sluis.LevelClosed {
		return jsonError(w, http.StatusServiceUnavailable, p.t(r, "passkey.closed"))
	}
	t, f := p.flowParams(r)
	src := frontdoor.ClientIP(r)
	// Answers cost a signature check and an audit event each; a source
	// that keeps sending bad ones is slowed like a password guesser, before
	// anything is written.
	if wait, err := p.SourceThrottle.Begin(r.Context(), "passkey:"+throttleKey(src)); err != nil {
		return err
	} else if wait > 0 {
		return jsonError(w, http.StatusTooManyRequests, p.waitMessage(r, wait))
	}
	csrf, _ := r.Cookie(csrfCookie)
	st, err := p.openCeremony(w, r, "login", csrf.Value)
	if err != nil {
		return p.passkeyFailed(w, r, sluis.EventLoginFailure, "(passkey)", err)
	}
	acct, id, data, err := p.Passkeys.FinishPasswordless(st.State, body, func(handle []byte) (mfa.Account, error) {
		name, err := p.Store.UserByPasskeyHandle(r.Context(), handle)
		if err != nil {
			return mfa.Account{}, err
		}
		return p.account(r.Context(), name, false)
	})
	if err == nil {
		err = p.spend(r.Context(), st)
	}
	if err != nil {
		return p.passkeyFailed(w, r, sluis.EventLoginFailure, "(passkey)", err)
	}
	p.SourceThrottle.Forgive(context.WithoutCancel(r.Context()), "passkey:"+throttleKey(src))
	u, err := p.Store.User(r.Context(), acct.Name)
	if err != nil {
		return err
	}
	reason, err := p.refusal(r, u)
	if err != nil {
		return err
	}
	if reason != "" {
		p.event(r, sluis.EventLoginFailure, u.Name, sluis.OutcomeFailure, reason+" (passkey)")
		return jsonError(w, http.StatusForbidden, p.t(r, "passkey.cannot_login"))
	}
	if err := p.Store.UsePasskey(r.Context(), id, data, p.Now()); err != nil {
		return err
	}
	sid, err := p.loginAtOnce(w, r, u, sluis.FactorPasskey, "passkey with user verification (passwordless)", "passkey (passwordless)")
	if err != nil {
		return err
	}
	next, err := p.nextURL(r, sid, t, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jsonAnswer{Redirect: next})
}
