package portal

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/directory"
)

// directoryLogin checks a password with the directory. A user it accepts
// is recorded (or updated) as a directory user with the groups the
// directory gives; the second factor is sluis's, as for local users.
func (p *Portal) directoryLogin(w http.ResponseWriter, r *http.Request, d pageData, f flow, name, password, src string) error {
	// Directories match names without regard to case; sluis keeps one
	// user per directory account.
	name = strings.ToLower(name)
	var groups []string
	err := directory.ErrInvalid
	if name != "(invalid name)" {
		groups, err = p.Directory.Authenticate(r.Context(), name, password)
	}
	reason := ""
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		// Not a guess: it is not counted.
		p.retract("login", name, src)
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, "directory unreachable")
		d.Error = "The directory cannot be reached, so directory accounts cannot log in right now. Try again in a few minutes."
		return p.render(w, http.StatusServiceUnavailable, "login", d)
	case errors.Is(err, directory.ErrDisabled):
		reason = "disabled in the directory"
	case err != nil:
		reason = "unknown user or bad password (directory)"
	}
	var u sluis.User
	if reason == "" {
		var gerr error
		u, gerr = p.syncExternalUser(r, name, sluis.SourceLDAP, groups)
		switch {
		case errors.Is(gerr, errLocalName):
			reason = "a local user has this name; the directory does not speak for it"
		case gerr != nil:
			return gerr
		default:
			if reason, gerr = p.refusal(r, u); gerr != nil {
				return gerr
			}
		}
	}
	if reason != "" {
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, reason)
		d.Error = "Wrong user name or password."
		return p.render(w, http.StatusUnauthorized, "login", d)
	}
	p.succeeded("login", name, src)
	return p.passwordAccepted(w, r, u, f, "directory password accepted; second factor next")
}

var errLocalName = errors.New("a local user has the name of a directory user")

// syncExternalUser records a user of the directory or an identity provider
// (source) on first login and keeps their groups as the source has them (a
// change of groups counts at once, as any change of groups does).
func (p *Portal) syncExternalUser(r *http.Request, name, source string, groups []string) (sluis.User, error) {
	ctx := r.Context()
	u, err := p.Store.User(ctx, name)
	switch {
	case sluis.ErrorCode(err) == sluis.ENOTFOUND:
		u = sluis.User{Name: name, Groups: groups, Source: source, CreatedAt: p.Now()}
		if err := p.Store.CreateUser(ctx, u); err != nil && sluis.ErrorCode(err) != sluis.ECONFLICT {
			return u, err
		}
		return p.Store.User(ctx, name)
	case err != nil:
		return u, err
	case u.Source != source:
		// A user of that name from elsewhere (local, or another source)
		// exists: this source never speaks for it.
		return u, errLocalName
	}
	if !slices.Equal(u.Groups, groups) {
		if err := p.Store.SetGroups(ctx, name, groups); err != nil {
			return u, err
		}
		u.Groups = groups
	}
	return u, nil
}
