package portal

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/directory"
)

// directoryLogin checks a password with the directory. A user it accepts
// is recorded (or updated) as a directory user under the account's own
// name, bound to the account's immutable id, with the groups the directory
// gives; the second factor is sluis's, as for local users.
func (p *Portal) directoryLogin(w http.ResponseWriter, r *http.Request, d pageData, f flow, id typedName, password string, g guess) error {
	name := id.account
	busy := func() error {
		p.retract(r.Context(), g)
		d.Error = p.t(r, "busy")
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	}
	// At most a few directory logins at once: a burst cannot pile binds
	// onto the directory.
	select {
	case p.directorySlots <- struct{}{}:
		defer func() { <-p.directorySlots }()
	case <-time.After(3 * time.Second):
		return busy()
	case <-r.Context().Done():
		return busy()
	}
	// A local login costs an argon2id check; so does this one, so the
	// time of the answer does not tell local users from directory users
	// or unknown names.
	if _, err := authn.Verify(password, ""); errors.Is(err, authn.ErrBusy) {
		return busy()
	}
	var acct directory.Account
	err := directory.ErrInvalid
	if id.key != "(invalid name)" {
		acct, err = p.Directory.Authenticate(r.Context(), id.key, password)
	}
	if err == nil && acct.Name != name {
		// The directory changed between the look-up and the bind: the
		// throttles counted another account. Refused; the next try counts
		// the right one.
		err = directory.ErrInvalid
	}
	reason := ""
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		// Not a guess: it is not counted.
		p.retract(r.Context(), g)
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, id.detail("directory unreachable"))
		d.Error = p.t(r, "login.directory_down")
		return p.render(w, r, http.StatusServiceUnavailable, "login", d)
	case errors.Is(err, directory.ErrUnreadable):
		reason = "password verified, but the directory could not be read"
	case errors.Is(err, directory.ErrDisabled):
		reason = "disabled in the directory"
	case err != nil:
		reason = "unknown user or bad password (directory)"
	}
	var u sluis.User
	if reason == "" {
		var gerr error
		u, gerr = p.syncExternalUser(r, acct.Name, sluis.SourceLDAP, "ldap:"+acct.ID, acct.Groups, acct.Email, acct.DisplayName)
		switch {
		case errors.Is(gerr, errLocalName), errors.Is(gerr, errAccountChanged):
			reason = gerr.Error()
		case gerr != nil:
			return gerr
		default:
			if reason, gerr = p.refusal(r, u); gerr != nil {
				return gerr
			}
		}
	}
	if reason != "" {
		p.event(r, sluis.EventLoginFailure, name, sluis.OutcomeFailure, id.detail(reason))
		d.Error = p.t(r, "login.wrong")
		return p.render(w, r, http.StatusUnauthorized, "login", d)
	}
	p.succeeded(r.Context(), g)
	return p.passwordAccepted(w, r, u, f, id.detail("directory password accepted; second factor next"))
}

var (
	errLocalName      = errors.New("another user has this name (or the same name in other case)")
	errAccountChanged = errors.New("a different account now has this name at its source")
)

// syncExternalUser records a user of the directory or an identity provider
// (source) on first login, bound to the account's immutable id, and keeps
// their groups as the source has them (a change of groups counts at once,
// as any change of groups does). Both are audited.
//
// The source's email address and display name (already checked by
// sluis.SourceProfile) are kept too, for apps that take them in a header.
func (p *Portal) syncExternalUser(r *http.Request, name, source, externalID string, groups []string, profile ...string) (sluis.User, error) {
	var email, displayName string
	if len(profile) == 2 {
		email, displayName = profile[0], profile[1]
	}
	ctx := r.Context()
	// The configuration's mapping bounds these (config checks that all
	// the groups it maps to are within a user's limits), so an error here
	// is a mapping that changed under us: refuse rather than guess.
	groups, gerr := sluis.NormalGroups(groups)
	if gerr != nil {
		return sluis.User{}, fmt.Errorf("groups from %s: %w", source, gerr)
	}
	u, err := p.Store.User(ctx, name)
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		// A name that differs only in case from another user's would be
		// one person to most apps (the store refuses it too).
		twins, lerr := p.Store.UsersNamed(ctx, name)
		if lerr != nil {
			return u, lerr
		}
		if len(twins) > 0 {
			return u, errLocalName
		}
		u = sluis.User{Name: name, Groups: groups, Source: source, ExternalID: externalID, CreatedAt: p.Now(), Email: email, DisplayName: displayName}
		if cerr := p.Store.CreateUser(ctx, u); cerr == nil {
			p.event(r, "user.created", name, sluis.OutcomeSuccess, "from "+source+"; groups "+strings.Join(groups, ","))
			return u, nil
		} else if sluis.ErrorCode(cerr) != sluis.ECONFLICT {
			return u, cerr
		}
		// Created meanwhile: checked like any existing user below.
		u, err = p.Store.User(ctx, name)
	}
	if err != nil {
		return u, err
	}
	switch {
	case u.Source != source:
		// A user of that name from elsewhere (local, or another source)
		// exists: this source never speaks for it.
		return u, errLocalName
	case u.ExternalID != "" && u.ExternalID != externalID:
		return u, errAccountChanged
	case u.ExternalID == "":
		if err := p.Store.SetExternalID(ctx, name, externalID); err != nil {
			return u, err
		}
		u.ExternalID = externalID
	}
	if !slices.Equal(u.Groups, groups) {
		if err := p.Store.SetGroups(ctx, name, groups); err != nil {
			return u, err
		}
		p.event(r, "user.groups", name, sluis.OutcomeSuccess, "from "+source+": "+strings.Join(u.Groups, ",")+" -> "+strings.Join(groups, ","))
		u.Groups = groups
	}
	if len(profile) == 2 && (u.Email != email || u.DisplayName != displayName) {
		if err := p.Store.SetProfile(ctx, name, email, displayName); err != nil {
			return u, err
		}
		p.event(r, "user.profile", name, sluis.OutcomeSuccess, "from "+source)
		u.Email, u.DisplayName = email, displayName
	}
	return u, nil
}
