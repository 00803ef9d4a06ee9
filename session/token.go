// Package session mints, finds, expires and revokes sessions, and encodes
// the tokens that prove them in cookies. Lookups are cached in memory and
// the cache is checked against the store's revision on every request, so a
// revocation made by the CLI in another process counts on the next request.
package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// CookieName is the session cookie on the portal and on every app host. The
// __Host- prefix makes browsers refuse it unless it is Secure, host-only and
// Path=/, so a sibling host cannot plant or widen it.
const CookieName = "__Host-sluis"

// GatewayCookie reports whether a cookie of this name is the gateway's own
// (the session cookie, or one of its helpers such as the CSRF and login
// state cookies, all named CookieName + "-..."): never passed to an app,
// never set by one.
func GatewayCookie(name string) bool {
	return name == CookieName || strings.HasPrefix(name, CookieName+"-")
}

// tokenLen is the encoded length of a token: 32 random bytes (256 bits) in
// unpadded base64url.
const tokenLen = 43

// NewToken returns a fresh random token and the hash under which it is
// stored. Only the hash is ever kept.
func NewToken() (token string, hash [32]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, sha256.Sum256([]byte(token))
}

// ParseToken checks that s has the exact token format and returns its hash.
// Anything else (empty, short, long, other characters, padding) is refused
// before it comes near the store.
func ParseToken(s string) (hash [32]byte, ok bool) {
	if len(s) != tokenLen {
		return hash, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return hash, false
		}
	}
	// The last character carries 2 bits of padding that must be zero, so
	// each token has exactly one spelling.
	var buf [33]byte
	if n, err := strictB64.Decode(buf[:], []byte(s)); err != nil || n != 32 {
		return hash, false
	}
	return sha256.Sum256([]byte(s)), true
}

var strictB64 = base64.RawURLEncoding.Strict()

// NewID returns a random public session identifier (64 bits, hex).
func NewID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// FromRequest returns the value of the session cookie in r, or "". It looks
// only for this one cookie, without parsing the others, because it runs on
// every request.
func FromRequest(r *http.Request) string {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), CookieName+"="); ok {
				return v
			}
		}
	}
	return ""
}
