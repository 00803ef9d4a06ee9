// Package assertion signs the short-lived JWT (ES256) that tells an upstream
// who is calling (X-Sluis-Assertion), and publishes the public keys to check
// it (JWKS). An upstream that verifies the assertion does not have to trust
// the network between it and the gateway.
package assertion

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Lifetime is how long an assertion is valid. Short, because an upstream
// may log it.
const Lifetime = 60 * time.Second

// Claims are the claims of an assertion.
type Claims struct {
	jwt.Claims
	Groups []string `json:"groups"`
	App    string   `json:"app"`
}

// Signer signs assertions with one key.
type Signer struct {
	Issuer string // the portal's URL
	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
	jwks   []byte
}

// NewSigner returns a signer for key, identified as kid in the JWKS.
func NewSigner(issuer string, key *ecdsa.PrivateKey, kid string) (*Signer, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("assertion signer: %w", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	return &Signer{Issuer: issuer, key: key, kid: kid, signer: sig, jwks: jwks}, nil
}

// Sign returns an assertion that user (in groups) calls app, whose URL is
// the audience, valid from now for Lifetime.
func (s *Signer) Sign(user string, groups []string, app, audience string, now time.Time) (string, time.Time, error) {
	if groups == nil {
		groups = []string{}
	}
	exp := now.Add(Lifetime)
	c := Claims{
		Claims: jwt.Claims{
			Issuer:    s.Issuer,
			Subject:   user,
			Audience:  jwt.Audience{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			Expiry:    jwt.NewNumericDate(exp),
		},
		Groups: groups,
		App:    app,
	}
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
	return tok, exp, err
}

// JWKS returns the JSON Web Key Set with the public key.
func (s *Signer) JWKS() []byte { return s.jwks }

// Verify checks an assertion against a JWKS document, for an upstream (and
// the tests) with the expected issuer and audience, at time now.
func Verify(token string, jwks []byte, issuer, audience string, now time.Time) (Claims, error) {
	var c Claims
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return c, fmt.Errorf("jwks: %w", err)
	}
	t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return c, err
	}
	if len(t.Headers) != 1 {
		return c, fmt.Errorf("want one signature")
	}
	keys := set.Key(t.Headers[0].KeyID)
	if len(keys) != 1 {
		return c, fmt.Errorf("unknown key %q", t.Headers[0].KeyID)
	}
	if err := t.Claims(keys[0].Key, &c); err != nil {
		return c, err
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{audience}, Time: now}, 0)
	return c, err
}
