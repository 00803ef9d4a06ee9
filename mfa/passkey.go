package mfa

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/sluis-gateway/sluis"
)

// ErrPasskey is returned when a passkey ceremony fails: a bad signature,
// the wrong origin, an unknown or cloned key, an expired challenge. The
// details are for the log, not for the user.
var ErrPasskey = errors.New("passkey not accepted")

// CeremonyTimeout bounds the time between the options and the answer.
const CeremonyTimeout = 5 * time.Minute

// Passkeys runs WebAuthn ceremonies for the portal at one origin. The
// state between a ceremony's two steps is returned to the caller (who
// keeps it sealed in a cookie) so that any node can finish what another
// began.
type Passkeys struct {
	wa *webauthn.WebAuthn
}

// NewPasskeys returns ceremonies for relying party rpID (the portal's host)
// at origin (the portal's https URL, with the port when not 443).
func NewPasskeys(rpID, origin, displayName string) (*Passkeys, error) {
	timeouts := webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          rpID,
		RPDisplayName: displayName,
		RPOrigins:     []string{origin},
		// Attestation would say which make of key it is; sluis does not
		// restrict makes, so it does not ask (and learns nothing that
		// identifies the user's device).
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return &Passkeys{wa: wa}, nil
}

// Account is a user as a passkey ceremony sees them.
type Account struct {
	Handle []byte // the random WebAuthn user handle
	Name   string
	Keys   []sluis.Passkey
}

// account adapts Account to the library.
type account struct {
	a     Account
	creds []webauthn.Credential
}

func newAccount(a Account) (*account, error) {
	out := &account{a: a}
	for _, k := range a.Keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Data, &c); err != nil {
			return nil, fmt.Errorf("passkey %q of %s: %w", k.Name, a.Name, err)
		}
		out.creds = append(out.creds, c)
	}
	return out, nil
}

func (u *account) WebAuthnID() []byte                         { return u.a.Handle }
func (u *account) WebAuthnName() string                       { return u.a.Name }
func (u *account) WebAuthnDisplayName() string                { return u.a.Name }
func (u *account) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// Ceremony is what a ceremony's first step gives: Options for the browser
// (JSON for navigator.credentials) and State for the second step.
type Ceremony struct {
	Options []byte
	State   []byte
}

// Challenge returns a hash of the ceremony's challenge, for recording it
// as spent, and its expiry.
func Challenge(state []byte) ([]byte, time.Time, error) {
	var sd webauthn.SessionData
	if err := json.Unmarshal(state, &sd); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: bad ceremony state", ErrPasskey)
	}
	h := sha256.Sum256([]byte("sluis-passkey-challenge\x00" + sd.Challenge))
	return h[:], sd.Expires, nil
}

func ceremony(options any, sd *webauthn.SessionData) (Ceremony, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return Ceremony{}, err
	}
	s, err := json.Marshal(sd)
	return Ceremony{Options: o, State: s}, err
}

func sessionData(state []byte) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if err := json.Unmarshal(state, &sd); err != nil {
		return sd, fmt.Errorf("%w: bad ceremony state", ErrPasskey)
	}
	return sd, nil
}

// prepare reads the account and the ceremony state for a second step.
func prepare(a Account, state []byte) (*account, webauthn.SessionData, error) {
	u, err := newAccount(a)
	if err != nil {
		return nil, webauthn.SessionData{}, err
	}
	sd, err := sessionData(state)
	return u, sd, err
}

// BeginRegistration starts adding a passkey to a; the keys a has are
// excluded, so one authenticator is not registered twice.
func (p *Passkeys) BeginRegistration(a Account) (Ceremony, error) {
	u, err := newAccount(a)
	if err != nil {
		return Ceremony{}, err
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, sd, err := p.wa.BeginRegistration(u, webauthn.WithExclusions(exclude))
	if err != nil {
		return Ceremony{}, err
	}
	return ceremony(opts, sd)
}

// FinishRegistration checks the browser's answer (body) and returns the new
// passkey's ID and data, to be stored.
func (p *Passkeys) FinishRegistration(a Account, state, body []byte) (id, data []byte, err error) {
	u, sd, err := prepare(a, state)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrPasskey, detail(err))
	}
	c, err := p.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrPasskey, detail(err))
	}
	data, err = json.Marshal(c)
	return c.ID, data, err
}

// BeginLogin starts a second-factor check with one of a's passkeys.
func (p *Passkeys) BeginLogin(a Account) (Ceremony, error) {
	u, err := newAccount(a)
	if err != nil {
		return Ceremony{}, err
	}
	if len(u.creds) == 0 {
		return Ceremony{}, fmt.Errorf("%w: %s has no passkey", ErrPasskey, a.Name)
	}
	opts, sd, err := p.wa.BeginLogin(u)
	if err != nil {
		return Ceremony{}, err
	}
	return ceremony(opts, sd)
}

// FinishLogin checks a second-factor answer and returns the ID of the key
// used and its data after the login (its counter moves).
func (p *Passkeys) FinishLogin(a Account, state, body []byte) (id, data []byte, err error) {
	u, sd, err := prepare(a, state)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrPasskey, detail(err))
	}
	c, err := p.wa.ValidateLogin(u, sd, parsed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrPasskey, detail(err))
	}
	return used(c)
}

// BeginPasswordless starts a login with a passkey alone: the browser
// offers the keys it holds for the portal, and the key must verify its
// user (PIN or biometrics), which makes it two factors in one.
func (p *Passkeys) BeginPasswordless() (Ceremony, error) {
	opts, sd, err := p.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return Ceremony{}, err
	}
	return ceremony(opts, sd)
}

// FinishPasswordless checks a passwordless answer. lookup finds the
// account by the user handle the key returned. It returns the account and
// the key's ID and data after the login.
func (p *Passkeys) FinishPasswordless(state, body []byte, lookup func(handle []byte) (Account, error)) (Account, []byte, []byte, error) {
	sd, err := sessionData(state)
	if err != nil {
		return Account{}, nil, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return Account{}, nil, nil, fmt.Errorf("%w: %v", ErrPasskey, detail(err))
	}
	var found Account
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		a, err := lookup(userHandle)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(a.Handle, userHandle) {
			return nil, fmt.Errorf("handle mismatch")
		}
		found = a
		return newAccount(a)
	}
	c, err := p.wa.ValidateDiscoverableLogin(handler, sd, parsed)
	if err != nil {
		return Account{}, nil, nil, fmt.Errorf("%w: %v", ErrPasskey, detail(err))
	}
	if !c.Flags.UserVerified {
		return Account{}, nil, nil, fmt.Errorf("%w: the key did not verify its user", ErrPasskey)
	}
	id, data, err := used(c)
	return found, id, data, err
}

// used refuses a key whose counter went backwards (a cloned key) and
// returns its ID and data.
func used(c *webauthn.Credential) ([]byte, []byte, error) {
	if c.Authenticator.CloneWarning {
		return nil, nil, fmt.Errorf("%w: the key's signature counter went backwards (a cloned key?)", ErrPasskey)
	}
	data, err := json.Marshal(c)
	return c.ID, data, err
}

// detail is the library's explanation of a failure, for the log.
func detail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return pe.Details + ": " + pe.DevInfo
	}
	return err.Error()
}
