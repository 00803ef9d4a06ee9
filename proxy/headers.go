package proxy

import (
	"net/http"
	"strings"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/frontdoor"
)

// headerRules are one app's client-header rules: the default list
// (frontdoor.Spoofable) less keep, plus remove and the app's identity
// headers, whose client copies are always dropped.
type headerRules struct {
	keep, remove []string // lower case, no '_'
	identity     []identityHeader
}

type identityHeader struct {
	name  string // canonical, as set for the upstream
	lower string
	value string // sluis.IdentityUser, ...
}

func newHeaderRules(app sluis.App) headerRules {
	var r headerRules
	for _, ih := range app.IdentityHeaders {
		r.identity = append(r.identity, identityHeader{http.CanonicalHeaderKey(ih.Name), strings.ToLower(ih.Name), ih.Value})
	}
	for _, n := range app.RequestHeaders.Remove {
		r.remove = append(r.remove, strings.ToLower(n))
	}
	for _, n := range app.RequestHeaders.Keep {
		// Configuration refuses these; a second guard costs nothing here.
		if strings.IndexByte(n, '_') >= 0 || frontdoor.Pinned(n) || r.isIdentity(n) {
			continue
		}
		r.keep = append(r.keep, strings.ToLower(n))
	}
	return r
}

func (r *headerRules) isIdentity(name string) bool {
	for _, ih := range r.identity {
		if frontdoor.HeaderNameIs(name, ih.lower) {
			return true
		}
	}
	return false
}

func listed(name string, lower []string) bool {
	for _, l := range lower {
		if frontdoor.HeaderNameIs(name, l) {
			return true
		}
	}
	return false
}

// strip removes every client header the app must not receive. Names with
// '_' are always removed (frontdoor.Spoofable), so an underscore twin of a
// kept or identity header never passes.
func (r *headerRules) strip(h http.Header) {
	for name := range h {
		if frontdoor.Spoofable(name) {
			if len(r.keep) == 0 || strings.IndexByte(name, '_') >= 0 || !listed(name, r.keep) {
				delete(h, name)
			}
			continue
		}
		if len(r.remove) > 0 && listed(name, r.remove) || len(r.identity) > 0 && r.isIdentity(name) {
			delete(h, name)
		}
	}
}

// StripClientHeaders removes every header on the default list
// (frontdoor.Spoofable): those a client could use to forge identity,
// origin, or the URL or method an app sees.
func StripClientHeaders(h http.Header) {
	for name := range h {
		if frontdoor.Spoofable(name) {
			delete(h, name)
		}
	}
}

// MaxIdentityValue is the longest email address or display name sent in
// an identity header (sluis.MaxProfileValue).
const MaxIdentityValue = sluis.MaxProfileValue

// identityValue is what the identity header of kind carries for id, and
// false when there is nothing to send: the header is then left out rather
// than sent empty or cut (a cut email address may be someone else's).
// Email and display name are sent as UTF-8 (as Authelia and oauth2-proxy
// do, and as Grafana and Gitea read them) if they are valid UTF-8 with no
// control characters (C0, DEL, C1) and at most MaxIdentityValue bytes;
// otherwise the header is left out.
func identityValue(id sluis.Identity, groups []string, kind string) (string, bool) {
	var v string
	switch kind {
	case sluis.IdentityUser:
		v = id.User
	case sluis.IdentityGroups:
		return sluis.JoinGroups(groups), true
	case sluis.IdentityEmail:
		v = id.Email
	case sluis.IdentityName:
		v = id.DisplayName
	}
	return v, HeaderSafe(v)
}

// HeaderSafe reports whether v may be sent as an identity header's value
// (sluis.ProfileValueSafe).
func HeaderSafe(v string) bool { return sluis.ProfileValueSafe(v) }
