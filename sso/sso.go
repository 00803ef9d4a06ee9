// Package sso logs users in with OpenID Connect providers (Entra ID,
// Keycloak, Okta and the like): discovery, the authorisation code flow with
// PKCE, state and nonce, ID tokens checked against the provider's keys
// (fetched again when it rotates them), the user's name and groups from
// configurable claims, and, where configured, the provider's MFA counted
// as sluis's second factor.
package sso

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sluis-gateway/sluis"
)

// ErrUnavailable means the provider could not be reached or answered
// nonsense: the user sees that, not a failed login.
var ErrUnavailable = errors.New("the identity provider cannot be reached")

// ErrRefused means the provider's answer does not log anybody in: a bad
// code, a token that does not verify, a wrong nonce, a missing name.
var ErrRefused = errors.New("the identity provider's answer was not accepted")

// Config is one provider.
type Config struct {
	Name         string // in URLs: /login/oidc/NAME
	Title        string // on the login page's button
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string   // the portal's callback for this provider
	Scopes       []string // "openid" is added
	// UsernameClaim names the user; zero means preferred_username.
	UsernameClaim string
	// GroupsClaim holds the user's groups (a list or a single string);
	// zero means groups.
	GroupsClaim string
	// Groups maps the provider's group values to sluis groups; others are
	// ignored.
	Groups map[string]string
	// MFAAMR and MFAACR, if set, are the amr and acr values that count as
	// a second factor passed at the provider; with neither, sluis asks
	// for its own second factor.
	MFAAMR, MFAACR []string
	// Timeout bounds each request to the provider; zero means 10 seconds.
	Timeout time.Duration
}

// Provider logs users in with one OpenID Connect provider.
type Provider struct {
	cfg  Config
	http *http.Client

	mu       sync.Mutex // guards the discovered state and the last failure
	op       *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
	failedAt time.Time // discovery's last failure: not tried again for a while
	failure  error
}

// retryAfter is how long a failed discovery is not tried again: logins
// cannot make the gateway hammer a provider that is down.
const retryAfter = 30 * time.Second

// mfaMaxAge is how old the provider's own authentication may be for its
// MFA to count as fresh: older sign-ins get sluis's second factor.
const mfaMaxAge = 10 * time.Minute

// New checks the configuration; discovery happens on first use (and again
// after a failure), so a provider that is down at start does not stop the
// gateway.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"))) {
		return nil, fmt.Errorf("sso %s: the issuer %q must be an https URL", cfg.Name, cfg.Issuer)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	// The provider is the only place this client talks to, and it never
	// follows a redirect elsewhere.
	hc := &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Provider{cfg: cfg, http: hc}, nil
}

// Name and Title are for the login page.
func (p *Provider) Name() string  { return p.cfg.Name }
func (p *Provider) Title() string { return p.cfg.Title }

func (p *Provider) discovered(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, *oauth2.Config, error) {
	p.mu.Lock()
	if p.op != nil {
		defer p.mu.Unlock()
		return p.op, p.verifier, p.oauth, nil
	}
	if !p.failedAt.IsZero() && time.Since(p.failedAt) < retryAfter {
		defer p.mu.Unlock()
		return nil, nil, nil, p.failure
	}
	p.mu.Unlock()
	// Discovery runs without the lock: a slow provider holds up only the
	// requests that wait for it.
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, p.http), p.cfg.Issuer)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failedAt, p.failure = time.Now(), fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
		return nil, nil, nil, p.failure
	}
	if p.op == nil {
		p.op = op
		// The key set is fetched with the provider's client in a context
		// of its own (it outlives this request), and again when a token
		// names a key it does not have: rotation needs no restart.
		keyCtx := oidc.ClientContext(context.Background(), p.http)
		p.verifier = oidc.NewVerifier(p.cfg.Issuer, oidc.NewRemoteKeySet(keyCtx, jwksURL(op)), &oidc.Config{ClientID: p.cfg.ClientID})
		p.oauth = &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: op.Endpoint(), RedirectURL: p.cfg.RedirectURL, Scopes: p.cfg.Scopes}
	}
	return p.op, p.verifier, p.oauth, nil
}

func jwksURL(op *oidc.Provider) string {
	var c struct {
		JWKS string `json:"jwks_uri"`
	}
	op.Claims(&c)
	return c.JWKS
}

// Start is what a login needs to begin: state, nonce and PKCE verifier
// (kept by the portal, sealed, until the callback) and the provider's
// address to send the browser to.
type Start struct {
	State, Nonce, Verifier string
	URL                    string
}

// Begin starts a login.
func (p *Provider) Begin(ctx context.Context) (Start, error) {
	_, _, oc, err := p.discovered(ctx)
	if err != nil {
		return Start{}, err
	}
	s := Start{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(s.Nonce), oauth2.S256ChallengeOption(s.Verifier)}
	if len(p.cfg.MFAAMR) > 0 || len(p.cfg.MFAACR) > 0 {
		// The provider's MFA counts only when it is fresh: ask for an
		// authentication no older than that.
		opts = append(opts, oauth2.SetAuthURLParam("max_age", fmt.Sprint(int(mfaMaxAge/time.Second))))
	}
	s.URL = oc.AuthCodeURL(s.State, opts...)
	return s, nil
}

// Identity is who the provider says logged in.
type Identity struct {
	Issuer   string
	Subject  string
	Username string
	Groups   []string // sluis groups, mapped
	MFA      bool     // the provider's own MFA counts, as configured
	AMR      []string
	// Email (only when the provider says it verified it) and DisplayName
	// (the name claim), "" when missing or not safe to keep
	// (sluis.SourceProfile).
	Email, DisplayName string
}

// Finish exchanges the code (with the PKCE verifier), verifies the ID
// token and its nonce, and reads the user's name and groups from the ID
// token and the userinfo endpoint.
func (p *Provider) Finish(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	op, v, oc, err := p.discovered(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx = oidc.ClientContext(ctx, p.http)
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Identity{}, fmt.Errorf("%w: token exchange: %s", ErrRefused, re.ErrorCode)
		}
		return Identity{}, fmt.Errorf("%w: token exchange: %v", ErrUnavailable, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return Identity{}, fmt.Errorf("%w: no ID token", ErrRefused)
	}
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: ID token: %v", ErrRefused, err)
	}
	if idt.Nonce == "" || idt.Nonce != nonce {
		return Identity{}, fmt.Errorf("%w: the ID token's nonce is not this login's", ErrRefused)
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: ID token claims: %v", ErrRefused, err)
	}
	// What the provider says about how the user authenticated counts only
	// from the signed ID token, never from userinfo.
	amr := stringsOf(claims["amr"])
	acr, _ := claims["acr"].(string)
	authTime, _ := claims["auth_time"].(float64)
	// Providers put profile claims in the ID token or only in userinfo.
	if op.UserInfoEndpoint() != "" {
		ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Identity{}, fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
		}
		if ui.Subject != idt.Subject {
			return Identity{}, fmt.Errorf("%w: userinfo is about another subject", ErrRefused)
		}
		extra := map[string]any{}
		if err := ui.Claims(&extra); err == nil {
			for k, v := range extra {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	id := Identity{Issuer: idt.Issuer, Subject: idt.Subject}
	id.Username, _ = claims[p.cfg.UsernameClaim].(string)
	if id.Username == "" {
		return Identity{}, fmt.Errorf("%w: no %s claim", ErrRefused, p.cfg.UsernameClaim)
	}
	if p.cfg.UsernameClaim == "email" {
		if v, _ := claims["email_verified"].(bool); !v {
			return Identity{}, fmt.Errorf("%w: the email address is not verified by the provider", ErrRefused)
		}
	}
	for _, g := range stringsOf(claims[p.cfg.GroupsClaim]) {
		if sg, ok := p.cfg.Groups[g]; ok && !slices.Contains(id.Groups, sg) {
			id.Groups = append(id.Groups, sg)
		}
	}
	slices.Sort(id.Groups)
	email, _ := claims["email"].(string)
	if verified, _ := claims["email_verified"].(bool); !verified {
		email = ""
	}
	name, _ := claims["name"].(string)
	id.Email, id.DisplayName = sluis.SourceProfile(email, name)
	id.AMR = amr
	fresh := authTime > 0 && time.Since(time.Unix(int64(authTime), 0)) <= mfaMaxAge+time.Minute
	id.MFA = fresh && CountsAsMFA(amr, acr, p.cfg.MFAAMR, p.cfg.MFAACR)
	return id, nil
}

// CountsAsMFA says whether the provider's amr or acr is one configured as
// a second factor.
func CountsAsMFA(amr []string, acr string, wantAMR, wantACR []string) bool {
	for _, a := range amr {
		if slices.Contains(wantAMR, a) {
			return true
		}
	}
	return acr != "" && slices.Contains(wantACR, acr)
}

// stringsOf reads a claim that is a string or a list of strings.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
