package assertion_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sluis-gateway/sluis/assertion"
)

const (
	issuer   = "https://login.test:8443"
	audience = "https://wiki.test:8443"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newSigner(t *testing.T, kid string) *assertion.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := assertion.NewSigner(issuer, key, kid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s := newSigner(t, "k1")
	tok, exp, err := s.Sign("anna", []string{"staff", "ops"}, "wiki", audience, now)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(assertion.Lifetime)) {
		t.Errorf("expiry %v, want %v", exp, now.Add(assertion.Lifetime))
	}
	for _, at := range []time.Time{now, now.Add(assertion.Lifetime - time.Second)} {
		c, err := assertion.Verify(tok, s.JWKS(), issuer, audience, at)
		if err != nil {
			t.Fatalf("at %v: %v", at, err)
		}
		if c.Subject != "anna" || c.Issuer != issuer || !slices.Equal([]string(c.Audience), []string{audience}) ||
			c.App != "wiki" || !slices.Equal(c.Groups, []string{"staff", "ops"}) {
			t.Errorf("claims %+v", c)
		}
	}
	// No groups reads back as an empty list, not a missing claim.
	tok, _, err = s.Sign("bert", nil, "wiki", audience, now)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if !strings.Contains(string(payload), `"groups":[]`) {
		t.Errorf("payload %s", payload)
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := newSigner(t, "k1")
	good, _, err := s.Sign("anna", []string{"staff"}, "wiki", audience, now)
	if err != nil {
		t.Fatal(err)
	}

	// Same kid, another key: the signature does not match the published key.
	impostor, _, err := newSigner(t, "k1").Sign("anna", []string{"staff"}, "wiki", audience, now)
	if err != nil {
		t.Fatal(err)
	}
	// Another key under its own kid, which the JWKS does not list.
	stranger := newSigner(t, "k2")
	strangerTok, _, err := stranger.Sign("anna", nil, "wiki", audience, now)
	if err != nil {
		t.Fatal(err)
	}

	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"anna"`, `"admin"`, 1))) + "." + parts[2]
	if tampered == good {
		t.Fatal("payload not changed")
	}
	b64 := base64.RawURLEncoding.EncodeToString
	algNone := b64([]byte(`{"alg":"none","kid":"k1","typ":"JWT"}`)) + "." + parts[1] + "."
	algNoneSig := b64([]byte(`{"alg":"none","kid":"k1","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]
	// HS256 keyed with the public JWKS: the classic algorithm confusion.
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: s.JWKS(), KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hmacTok, err := jwt.Signed(hs).Claims(jwt.Claims{Issuer: issuer, Subject: "anna", Audience: jwt.Audience{audience},
		Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	flipped := parts[0] + "." + parts[1] + "." + flipChar(parts[2])

	tests := []struct {
		name               string
		token              string
		jwks               []byte
		issuer, audience   string
		at                 time.Time
		wantErrorSubstring string
	}{
		{"expired", good, s.JWKS(), issuer, audience, now.Add(assertion.Lifetime + time.Second), "exp"},
		{"long expired", good, s.JWKS(), issuer, audience, now.Add(24 * time.Hour), "exp"},
		{"not yet valid", good, s.JWKS(), issuer, audience, now.Add(-time.Minute), ""},
		{"wrong audience", good, s.JWKS(), issuer, "https://other.test:8443", now, "aud"},
		{"audience of another port", good, s.JWKS(), issuer, "https://wiki.test", now, "aud"},
		{"wrong issuer", good, s.JWKS(), "https://evil.test", audience, now, "iss"},
		{"signed by another key, same kid", impostor, s.JWKS(), issuer, audience, now, ""},
		{"signed by another key, other kid", strangerTok, s.JWKS(), issuer, audience, now, "unknown key"},
		{"tampered payload", tampered, s.JWKS(), issuer, audience, now, ""},
		{"tampered signature", flipped, s.JWKS(), issuer, audience, now, ""},
		{"alg none", algNone, s.JWKS(), issuer, audience, now, ""},
		{"alg none with signature", algNoneSig, s.JWKS(), issuer, audience, now, ""},
		{"alg HS256 keyed with the JWKS", hmacTok, s.JWKS(), issuer, audience, now, ""},
		{"JWKS without the kid", good, stranger.JWKS(), issuer, audience, now, "unknown key"},
		{"empty JWKS", good, []byte(`{"keys":[]}`), issuer, audience, now, "unknown key"},
		{"malformed JWKS", good, []byte(`{`), issuer, audience, now, "jwks"},
		{"empty token", "", s.JWKS(), issuer, audience, now, ""},
		{"garbage token", "a.b.c", s.JWKS(), issuer, audience, now, ""},
		{"two parts", parts[0] + "." + parts[1], s.JWKS(), issuer, audience, now, ""},
	}
	for _, tt := range tests {
		c, err := assertion.Verify(tt.token, tt.jwks, tt.issuer, tt.audience, tt.at)
		if err == nil {
			t.Errorf("%s: accepted, claims %+v", tt.name, c)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErrorSubstring) {
			t.Errorf("%s: error %q, want it to mention %q", tt.name, err, tt.wantErrorSubstring)
		}
	}
	// The control: the good token passes with the same inputs.
	if _, err := assertion.Verify(good, s.JWKS(), issuer, audience, now); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
}

// flipChar changes the first character of a base64url string.
func flipChar(s string) string {
	c := byte('A')
	if s[0] == 'A' {
		c = 'B'
	}
	return string(c) + s[1:]
}
