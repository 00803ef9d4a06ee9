package sluis

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// MaxNameBytes is the longest user or group name, in bytes.
const MaxNameBytes = 128

// CanonicalName returns the one form of a user name that sluis stores,
// compares and shows: two typed names are the same person exactly when
// their canonical forms are equal. It returns EINVALID for a name that
// cannot be a user's.
//
// The form is RFC 8265's UsernameCaseMapped profile (section 3.3: width
// mapping, so a full-width "ＡＬＩＣＥ" is "alice"; lower case; Unicode
// NFC; the IdentifierClass of RFC 8264), restricted further to a documented
// subset: ASCII letters and digits, '.', '_', '-' and '@', starting with a
// letter or digit, at most MaxNameBytes bytes. Why the subset:
//   - Letters of other scripts that look like Latin ones (Cyrillic "а" in
//     "аlice", RFC 8265 section 7.2, UTS #39 confusables) would be two
//     people with one face in the launcher, the audit trail and an app's
//     user list; ASCII has no such pairs once case is folded.
//   - The name travels in HTTP headers to apps (X-Sluis-User, an app's own
//     identity header), where only ASCII is read the same by every stack.
//   - No commas (the X-Sluis-Groups separator), spaces, quotes or controls,
//     so a name can never forge a list entry or a log line where it is
//     shown.
//   - Directory logon names (uid, sAMAccountName) and e-mail addresses used
//     as names are ASCII in practice.
//
// Letters that the profile maps into ASCII (full-width forms, the Kelvin
// sign) are accepted as the ASCII name they map to.
func CanonicalName(s string) (string, error) {
	if s == "" || len(s) > 4*MaxNameBytes {
		return "", Errorf(EINVALID, "use 1 to %d characters", MaxNameBytes)
	}
	c, err := precis.UsernameCaseMapped.String(s)
	if err != nil || !asciiName(c) {
		return "", Errorf(EINVALID, "use letters a-z, digits and . _ - @, starting with a letter or digit, at most %d characters (case does not count)", MaxNameBytes)
	}
	return c, nil
}

// SourceName is CanonicalName for a name that a directory or an identity
// provider asserts (not one a person typed): it must already be in the
// ASCII subset, in any case. Width mapping is for typing; a source that
// holds "ＡＤＭＩＮ" (or the Kelvin sign) holds an account that is not
// "admin", and must not take over that name.
func SourceName(s string) (string, error) {
	c, err := CanonicalName(s)
	if err != nil {
		return "", err
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return "", Errorf(EINVALID, "the name is not in ASCII (letters a-z, digits and . _ - @)")
		}
	}
	return c, nil
}

// asciiName reports whether s is in the allowed subset, in lower case.
func asciiName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-' && c != '@') {
			return false
		}
	}
	return true
}

// SameName reports whether a and b name one person. Names in the store
// and the configuration are ASCII (canonical names, and older names that
// ValidName allowed), and for them ASCII case folding is the comparison of
// canonical forms; no other letters fold here (strings.EqualFold would
// take the Kelvin sign for k).
func SameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Twins returns, for each user whose name another user has in other case
// (possible only in a store from before names were compared without regard
// to case), the names of those others.
func Twins(users []User) map[string][]string {
	byKey := map[string][]string{}
	for _, u := range users {
		k := strings.ToLower(u.Name)
		byKey[k] = append(byKey[k], u.Name)
	}
	out := map[string][]string{}
	for _, names := range byKey {
		if len(names) < 2 {
			continue
		}
		for _, n := range names {
			for _, o := range names {
				if o != n {
					out[n] = append(out[n], o)
				}
			}
		}
	}
	return out
}

// HasEnabledTwin reports whether others (the users named like u, from
// UsersNamed) hold an enabled user other than u: then u's name names two
// people, and u may not log in or use a session until an operator keeps
// one of them.
func HasEnabledTwin(u User, others []User) bool {
	for _, o := range others {
		if o.Name != u.Name && !o.Disabled {
			return true
		}
	}
	return false
}

// MaxProfileValue is the longest email address or display name kept for a
// user (and sent to apps that ask for it in a header).
const MaxProfileValue = 256

// ProfileValueSafe reports whether v may be kept as a user's email address
// or display name and sent in an HTTP header: not empty, at most
// MaxProfileValue bytes, valid UTF-8, no control characters (C0, DEL, C1,
// the line and paragraph separators), no space at either end.
func ProfileValueSafe(v string) bool {
	if v == "" || len(v) > MaxProfileValue || !utf8.ValidString(v) || v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c >= 0x7f && c <= 0x9f || c == 0x2028 || c == 0x2029 {
			return false
		}
	}
	return true
}

// ValidEmail reports whether v can be a user's email address here.
func ValidEmail(v string) bool {
	return ProfileValueSafe(v) && strings.Contains(v, "@") && !strings.ContainsAny(v, " ,;<>\"")
}

// SourceProfile is the email address and display name that a directory or
// an identity provider gives, each kept only when it is safe (else "").
func SourceProfile(email, displayName string) (string, string) {
	if !ValidEmail(email) {
		email = ""
	}
	if !ProfileValueSafe(displayName) {
		displayName = ""
	}
	return email, displayName
}
