package portal

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/sso"
)

// ssoCookie carries a single sign-on login from its start to the
// provider's callback, sealed: state, nonce, PKCE verifier and the flow.
const (
	ssoCookie   = "__Host-sluis-sso"
	ssoLifetime = 10 * time.Minute
)

type ssoState struct {
	Provider string    `json:"p"`
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	RD       string    `json:"rd,omitempty"`
	Flow     string    `json:"f,omitempty"`
	Expires  time.Time `json:"e"`
}

type ssoLink struct{ Name, Title, URL string }

func (p *Portal) provider(name string) *sso.Provider {
	for _, pr := range p.SSO {
		if pr.Name() == name {
			return pr
		}
	}
	return nil
}

// ssoLinks are the login page's buttons, carrying the flow.
func (p *Portal) ssoLinks(f flow) []ssoLink {
	var out []ssoLink
	for _, pr := range p.SSO {
		out = append(out, ssoLink{Name: pr.Name(), Title: pr.Title(), URL: "/login/oidc/" + pr.Name() + f.query()})
	}
	return out
}

// ssoStart sends the browser to the provider.
func (p *Portal) ssoStart(w http.ResponseWriter, r *http.Request) error {
	pr := p.provider(r.PathValue("provider"))
	if pr == nil {
		return statusError(http.StatusNotFound)
	}
	_, f := p.flowParams(r)
	d := pageData{Title: p.t(r, "login.title"), CSRF: p.csrfToken(w, r), RD: f.RD, State: f.State, Passkeys: p.Passkeys != nil, Query: f.query(), SSO: p.ssoLinks(f)}
	if level, reason, err := p.level(r); err != nil {
		return err
	} else if level == sluis.LevelClosed {
		d.Error = p.levelNotice(r, level, reason)
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	}
	st, err := pr.Begin(r.Context())
	if err != nil {
		p.Log.Warn("portal: single sign-on unavailable", "provider", pr.Name(), "err", err)
		d.Error = p.t(r, "login.sso_down")
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	}
	raw, _ := json.Marshal(ssoState{Provider: pr.Name(), State: st.State, Nonce: st.Nonce, Verifier: st.Verifier, RD: f.RD, Flow: f.State, Expires: p.Now().Add(ssoLifetime)})
	// Lax: the provider sends the browser back with a top-level GET.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: base64.RawURLEncoding.EncodeToString(p.Sealer.Seal(raw, "sso")), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(ssoLifetime / time.Second)})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, st.URL, http.StatusSeeOther)
	return nil
}

// ssoCallback takes the provider's answer.
func (p *Portal) ssoCallback(w http.ResponseWriter, r *http.Request) error {
	pr := p.provider(r.PathValue("provider"))
	if pr == nil {
		return statusError(http.StatusNotFound)
	}
	d := pageData{Title: p.t(r, "login.title"), CSRF: p.csrfToken(w, r), Passkeys: p.Passkeys != nil, SSO: p.ssoLinks(flow{})}
	// Every callback counts against its source before anything is
	// written or asked of the provider; a completed login is forgiven.
	src := frontdoor.ClientIP(r)
	if wait, err := p.SourceThrottle.Begin(r.Context(), "sso:"+throttleKey(src)); err != nil {
		return err
	} else if wait > 0 {
		d.Error = p.waitMessage(r, wait)
		return p.render(w, r, http.StatusTooManyRequests, "login", d)
	}
	fail := func(status int, msg, reason string) error {
		p.event(r, sluis.EventLoginFailure, "(sso "+pr.Name()+")", sluis.OutcomeFailure, reason)
		d.Error = msg
		return p.render(w, r, status, "login", d)
	}
	var st ssoState
	c, err := r.Cookie(ssoCookie)
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if err == nil {
		if sealed, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			if raw, err := p.Sealer.Open(sealed, "sso"); err == nil {
				json.Unmarshal(raw, &st)
			}
		}
	}
	q := r.URL.Query()
	if st.Provider != pr.Name() || st.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 || !p.Now().Before(st.Expires) {
		return fail(http.StatusBadRequest, p.t(r, "sso.not_started"), "sso: state missing, wrong or expired")
	}
	d.RD, d.State = st.RD, st.Flow
	if e := q.Get("error"); e != "" {
		return fail(http.StatusUnauthorized, p.t(r, "sso.not_logged_in"), "sso: the provider answered "+truncate(e, 64))
	}
	if level, reason, err := p.level(r); err != nil {
		return err
	} else if level == sluis.LevelClosed {
		return fail(http.StatusServiceUnavailable, p.levelNotice(r, level, reason), "sso: closed")
	}
	id, err := pr.Finish(r.Context(), q.Get("code"), st.Verifier, st.Nonce)
	switch {
	case errors.Is(err, sso.ErrUnavailable):
		p.Log.Warn("portal: single sign-on", "provider", pr.Name(), "err", err)
		return fail(http.StatusServiceUnavailable, p.t(r, "login.sso_down"), "sso: provider unreachable")
	case err != nil:
		p.Log.Info("portal: single sign-on refused", "provider", pr.Name(), "err", err)
		return fail(http.StatusUnauthorized, p.t(r, "sso.not_accepted"), "sso: answer not accepted")
	}
	p.SourceThrottle.Forgive(context.WithoutCancel(r.Context()), "sso:"+throttleKey(src))
	name, nerr := sluis.SourceName(id.Username)
	if nerr != nil {
		return fail(http.StatusUnauthorized, p.t(r, "sso.bad_name"), "sso: unusable user name")
	}
	u, err := p.syncExternalUser(r, name, "oidc:"+pr.Name(), "oidc:"+id.Issuer+"|"+id.Subject, id.Groups, id.Email, id.DisplayName)
	reason := ""
	switch {
	case errors.Is(err, errLocalName), errors.Is(err, errAccountChanged):
		reason = err.Error()
	case err != nil:
		return err
	default:
		if reason, err = p.refusal(r, u); err != nil {
			return err
		}
	}
	if reason != "" {
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, reason+" (sso "+pr.Name()+")")
		d.Error = p.t(r, "login.sso_refused")
		return p.render(w, r, http.StatusForbidden, "login", d)
	}
	f := flow{RD: st.RD, State: st.Flow}
	t, _ := p.checkReturn(st.RD)
	if !id.MFA {
		// The provider checked the password: sluis asks for its own second
		// factor, as after a password.
		return p.passwordAccepted(w, r, u, f, "single sign-on with "+pr.Name()+"; second factor next")
	}
	// The provider's MFA counts, as configured: the login is complete.
	sid, err := p.loginAtOnce(w, r, u, sluis.FactorOIDC, "single sign-on with "+pr.Name(), "the provider's MFA ("+pr.Name()+")")
	if err != nil {
		return err
	}
	return p.continueTo(w, r, sid, t, f)
}
