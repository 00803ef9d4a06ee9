// Package sluis holds the domain types of the sluis remote-access gateway
// (users, sessions, apps, identities, audit events) and the interfaces of the
// stores that keep them. It imports nothing of the project's own, so every
// other package can depend on it without cycles.
package sluis

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// User is a person who may log in. Groups decide which apps they may open.
type User struct {
	Name         string
	Groups       []string
	PasswordHash string // argon2id, PHC string format; never the password
	Disabled     bool
	// TOTPSecret is the sealed (encrypted) TOTP secret, empty when the user
	// has not enrolled. It is never stored or logged in the clear.
	TOTPSecret []byte
	CreatedAt  time.Time
	// Source is where the user's password lives: "" here (a local user),
	// SourceLDAP (the directory), or "oidc:NAME" (an identity provider);
	// groups come from there too.
	Source string
	// ExternalID is the immutable id of the account at the source (a
	// directory entry's UUID, a provider's issuer and subject).
	ExternalID string
	// Email and DisplayName are for apps that take them from the gateway
	// (an app's identity_headers); empty when unknown. For directory and
	// provider users they are copied from there at each login.
	Email       string
	DisplayName string
}

// SourceLDAP marks a user whose password and groups are in the directory.
const SourceLDAP = "ldap"

// ValidName reports whether s is an acceptable user or group name: letters,
// digits, '.', '_', '-' and '@', starting with a letter or digit, at most
// 128 bytes. No commas (the X-Sluis-Groups separator), spaces or controls,
// so a name can never forge a line or a list entry where it is shown.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-' && c != '@') {
			return false
		}
	}
	return true
}

// HasTOTP reports whether the user has an enrolled one-time-code generator.
func (u User) HasTOTP() bool { return len(u.TOTPSecret) > 0 }

// Session stages. A session becomes usable for apps only when complete.
const (
	StagePassword = "password" // password accepted, second factor pending
	StageComplete = "complete" // fully logged in
)

// ConsoleSessionPrefix begins the ID of every session of the admin
// console (package admin), so that lists and the portal tell them from
// the portal's own.
const ConsoleSessionPrefix = "admin-"

// IsConsoleSession reports whether the session of this ID is one of the
// admin console's.
func IsConsoleSession(id string) bool { return strings.HasPrefix(id, ConsoleSessionPrefix) }

// Session is one login of one user. The token that proves it lives only in
// the user's cookies; the store keeps hashes of those tokens.
type Session struct {
	ID        string // public identifier, safe to show and log
	User      string
	Stage     string
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time // absolute lifetime
	MFAAt     time.Time // when the second factor was last passed; zero if never
	// MFAMethod is the second factor passed last: FactorTOTP or
	// FactorPasskey; "" before the second factor.
	MFAMethod string
	Source    string // client address at login
	UserAgent string
	// EnrollSecret is a sealed TOTP secret offered during first-login
	// enrolment and not yet confirmed.
	EnrollSecret []byte
	RevokedAt    time.Time
	// ParentID is the session this one was made from (a `sluis connect`
	// client's, from the browser login that approved it); revoking the
	// parent revokes it too.
	ParentID string
}

// Revoked reports whether the session has been revoked.
func (s Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// Identity is what the gateway knows about the caller of one request.
type Identity struct {
	User      string
	Groups    []string
	SessionID string
	MFA       bool
	MFAAt     time.Time
	MFAMethod string // FactorTOTP or FactorPasskey
	// Email and DisplayName are the user's, empty when unknown.
	Email       string
	DisplayName string
}

// Second factors.
const (
	FactorTOTP    = "totp"
	FactorPasskey = "passkey" // WebAuthn: bound to the portal's origin, so phishing cannot relay it
	// FactorRecovery is a single-use recovery code, in place of the
	// user's usual second factor.
	FactorRecovery = "recovery"
	// FactorDevice marks a `sluis connect` session approved on the portal:
	// as fresh as the login that approved it, never phishing-resistant.
	FactorDevice = "device"
	// FactorOIDC is an identity provider's own MFA, counted as configured.
	FactorOIDC = "oidc"
)

// PhishingResistant reports whether the identity's second factor cannot
// be relayed by a phishing site.
func (id Identity) PhishingResistant() bool { return id.MFAMethod == FactorPasskey }

// Rule is one of an app's access rules. A request chooses the first rule
// whose Paths and Methods match it (a rule without them matches every
// request); all of that rule's conditions must then hold. A rule without
// users and groups allows nobody: access is denied by default.
type Rule struct {
	// Paths are prefixes of the canonical path, compared segment by
	// segment ("/admin/" covers /admin and everything below it); a
	// segment "*" or one with '*' in it matches any one segment. Empty
	// means every path.
	Paths []string
	// Methods are HTTP methods, upper case. Empty means every method.
	Methods []string
	Users   []string
	Groups  []string
	MFA     bool // the session must have passed a second factor
	// PhishingResistant requires the second factor to be a passkey; a
	// session that passed TOTP is asked for a key (a step-up).
	PhishingResistant bool
	// Networks are the source addresses allowed; empty means any.
	Networks []netip.Prefix
	// Hours are the times the rule allows, in the gateway's time zone;
	// empty means always.
	Hours []Hours
	// Line is the configuration line of the rule, for explanations; 0
	// when unknown.
	Line int
}

// Hours is a span of the week written like "mon-fri 07:00-19:00": the days
// (bit 0 Sunday, as time.Weekday) and the minutes of the day from From
// (inclusive) to To (exclusive). A span with To before From runs past
// midnight into the next day, which counts as the day it started.
type Hours struct {
	Days     uint8
	From, To int    // minutes since midnight, 0..1440
	Text     string // as written in the configuration
}

// App is an application reached through the gateway: a web app (Host and
// Upstream) or a TCP app (TCP).
type App struct {
	Name     string
	Host     string // the host name requests arrive for, lower case, no port
	Upstream string // base URL of the upstream, from configuration only
	TCP      string // host:port a tunnel dials, from configuration only
	// Allow are the app's access rules, tried in order (see Rule); none
	// allows nobody.
	Allow []Rule
	// Essential apps stay open at the emergency level "essential".
	Essential bool
	// KeyAtStrict makes the app require a phishing-resistant factor at the
	// emergency level "strict".
	KeyAtStrict bool
	// RequestHeaders adjusts the default list of client headers the proxy
	// drops (frontdoor.Spoofable) for this app.
	RequestHeaders RequestHeaders
	// IdentityHeaders are headers the proxy sets to the caller's identity,
	// for apps that log users in from a header set by their proxy. A
	// client's copies are always dropped.
	IdentityHeaders []IdentityHeader
	// EncodedSlashes passes %2F and %252F in paths to the upstream, and
	// PathParams ';' parameters, for requests with a session only.
	EncodedSlashes, PathParams bool
	// CORSPreflight relays a CORS preflight without a session (with no
	// identity) to the upstream.
	CORSPreflight bool
	// CrossSitePost makes the app host's session cookie SameSite=None, so
	// that form POSTs from another site (SAML POST binding, OIDC
	// form_post) arrive with it. The cost: every cross-site request to the
	// app carries the session, so the app's own CSRF protection is all
	// that stands between another site and a logged-in user's session.
	CrossSitePost bool
	// PreserveHost sends the public host name (with the port when it is
	// not 443) to the upstream instead of the upstream's own, and leaves
	// its absolute URLs, and the client's Origin, Referer and Destination,
	// as they are.
	PreserveHost bool
	// ResponseHeaderTimeout is how long the app may take to send its
	// response head; zero means 60s.
	ResponseHeaderTimeout time.Duration
	// BodyIdle is the longest pause between two reads of a request body;
	// zero means 60s. MaxBody caps a request body in bytes; zero means no
	// cap.
	BodyIdle time.Duration
	MaxBody  int64
	// NoStore makes every response of the app "Cache-Control: no-store";
	// without it, responses without their own Cache-Control get
	// "Cache-Control: private".
	NoStore bool
}

// RequestHeaders adjusts the client headers an app receives. Names are
// compared without regard to case.
type RequestHeaders struct {
	// Remove are names dropped in addition to the default list.
	Remove []string
	// Keep are names of the default list let through (never one the
	// gateway sets, never one with an underscore).
	Keep []string
}

// IdentityHeader is a header the proxy sets to one part of the caller's
// identity: Value is IdentityUser, IdentityGroups, IdentityEmail or
// IdentityName.
type IdentityHeader struct {
	Name  string
	Value string
}

// What an identity header carries.
const (
	IdentityUser   = "user"   // the user name
	IdentityGroups = "groups" // the groups, comma-separated, bounded as X-Sluis-Groups
	IdentityEmail  = "email"  // the user's email address
	IdentityName   = "name"   // the user's display name
)

// Event types recorded in the audit trail.
const (
	EventLoginSuccess   = "login.success"
	EventLoginFailure   = "login.failure"
	EventMFASuccess     = "mfa.success"
	EventMFAFailure     = "mfa.failure"
	EventMFAEnrolled    = "mfa.enrolled"
	EventMFARemoved     = "mfa.removed"
	EventLogout         = "logout"
	EventSessionRevoked = "session.revoked"
	EventAccessDenied   = "access.denied"
	EventTunnelOpen     = "tunnel.open"
	EventTunnelClose    = "tunnel.close"
)

// Outcomes of an event.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Event is one entry of the audit trail. It never holds a password, a code
// or a token.
type Event struct {
	ID      int64
	Time    time.Time
	Type    string
	User    string
	Source  string
	App     string
	Outcome string
	Detail  string
	// PrevHash and Hash chain the trail: Hash is ChainHash(PrevHash), and
	// PrevHash is the Hash of the event before. The store sets both.
	PrevHash []byte
	Hash     []byte
}

// ChainHash returns the SHA-256 of the event's canonical encoding (every
// field but Hash, each length-prefixed, so no two events encode alike)
// chained to prev, the hash of the event before it.
func (e Event) ChainHash(prev []byte) []byte {
	h := sha256.New()
	put := func(b []byte) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	var id, t [binary.MaxVarintLen64]byte
	put([]byte("sluis-audit-v1"))
	put(prev)
	put(id[:binary.PutVarint(id[:], e.ID)])
	put(t[:binary.PutVarint(t[:], e.Time.UnixNano())])
	for _, f := range []string{e.Type, e.User, e.Source, e.App, e.Outcome, e.Detail} {
		put([]byte(f))
	}
	return h.Sum(nil)
}

// UserStore keeps users.
type UserStore interface {
	// CreateUser adds u. ECONFLICT if a user of that name exists, in any
	// case (one name, one person; see CanonicalName).
	CreateUser(ctx context.Context, u User) error
	// User returns the user stored under exactly this name; ENOTFOUND if
	// none.
	User(ctx context.Context, name string) (User, error)
	// UsersNamed returns the users whose name equals name without regard
	// to ASCII case, ordered by name: one, or none, or more than one only
	// in a store that holds twins from before names were compared so.
	UsersNamed(ctx context.Context, name string) ([]User, error)
	Users(ctx context.Context) ([]User, error)
	SetPassword(ctx context.Context, name, hash string) error
	SetGroups(ctx context.Context, name string, groups []string) error
	SetDisabled(ctx context.Context, name string, disabled bool) error
	// SetExternalID records the immutable id of an external user's account.
	SetExternalID(ctx context.Context, name, id string) error
	// SetProfile replaces the user's email address and display name.
	SetProfile(ctx context.Context, name, email, displayName string) error
	// SetTOTP replaces the user's sealed TOTP secret and forgets used codes.
	SetTOTP(ctx context.Context, name string, sealed []byte) error
	// UseTOTPStep records that the code of the given time step was used. It
	// returns false if that step or a later one was used before, so that
	// every code works at most once.
	UseTOTPStep(ctx context.Context, name string, step int64) (bool, error)
}

// SessionFilter selects sessions to revoke: all of them, or those of a
// user, of the members of a group, or that have been used on an app's host.
// Exactly one field is set.
type SessionFilter struct {
	All   bool
	User  string
	Group string
	Host  string
	// Keep, if set, is the ID of one session not to end: at lockdown, the
	// console session of the operator who sets it, so that they can lift
	// it again.
	Keep string
}

// KnownBrowser is a browser that completed a login (both factors) for a
// user. Its cookie exempts it from the per-user lock that failed attempts
// from anywhere set, so that an attacker cannot keep the user out by
// guessing; it has a guessing budget of its own instead.
type KnownBrowser struct {
	ID        string // random; names the browser in throttles and the audit trail
	User      string
	CreatedAt time.Time
}

// MaxKnownBrowsers is how many known browsers a user keeps; past it the
// oldest is forgotten.
const MaxKnownBrowsers = 20

// BrowserStore keeps known browsers under the hash of their cookie's token.
type BrowserStore interface {
	// AddKnownBrowser stores b under tokenHash (SHA-256 of the cookie's
	// token), forgetting the user's oldest beyond MaxKnownBrowsers.
	AddKnownBrowser(ctx context.Context, b KnownBrowser, tokenHash []byte) error
	// KnownBrowser returns the browser of tokenHash; ENOTFOUND if there is
	// none (never added, forgotten, or revoked with the user's sessions:
	// RevokeSessions by user, group or all forgets their browsers too).
	KnownBrowser(ctx context.Context, tokenHash []byte) (KnownBrowser, error)
}

// SessionStore keeps sessions and the hashes of the tokens that prove them.
type SessionStore interface {
	// CreateSession stores s with the hash of its first token, bound to host.
	CreateSession(ctx context.Context, s Session, tokenHash []byte, host string) error
	// AddToken binds another token (for another host) to a session.
	AddToken(ctx context.Context, sessionID string, tokenHash []byte, host string) error
	// SessionByToken finds the session a token hash proves for host.
	SessionByToken(ctx context.Context, tokenHash []byte, host string) (Session, error)
	// SessionHosts returns the hosts the session has tokens for (the
	// portal and each app host it was used on), sorted; none for an
	// unknown session.
	SessionHosts(ctx context.Context, id string) ([]string, error)
	Session(ctx context.Context, id string) (Session, error)
	Sessions(ctx context.Context) ([]Session, error)
	// CountSessions counts the complete sessions that are live at now
	// (not revoked, not expired) and were last seen at or after
	// seenSince (zero: ever), in all and by each host they hold a token
	// for (the portal's, each app host's), without reading them: for the
	// console's overview.
	CountSessions(ctx context.Context, now, seenSince time.Time) (total int, byHost map[string]int, err error)
	// CompleteSession marks the second factor passed, sets the session's
	// absolute expiry, replaces its tokens with the one given (so a token
	// from before the second factor is worth nothing after it) and clears
	// any enrolment secret.
	CompleteSession(ctx context.Context, id string, mfaAt time.Time, method string, expiresAt time.Time, tokenHash []byte, host string) error
	SetEnrollSecret(ctx context.Context, id string, sealed []byte) error
	// RefreshMFA records that a complete session passed its second factor
	// (method) again, at at: a step-up.
	RefreshMFA(ctx context.Context, id string, at time.Time, method string) error
	TouchSession(ctx context.Context, id string, at time.Time) error
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeSessions revokes every live session that f selects and returns
	// their IDs.
	RevokeSessions(ctx context.Context, f SessionFilter, at time.Time) ([]string, error)
	// CreateGrant stores a single-use code that carries a session to an app
	// host, with the path to land on and the hash of the state cookie of
	// the browser it is meant for.
	CreateGrant(ctx context.Context, codeHash []byte, sessionID, host, path string, state []byte, expires time.Time) error
	// RedeemGrant consumes a grant; it works once, only before expiry and
	// only on its host (a try on another host burns it).
	RedeemGrant(ctx context.Context, codeHash []byte, host string, now time.Time) (sessionID, path string, state []byte, err error)
}

// Passkey is a user's WebAuthn credential. Nothing in it is secret: the
// private key never leaves the user's authenticator.
type Passkey struct {
	ID        []byte // the credential ID
	User      string
	Name      string // the user's name for it
	Data      []byte // the credential as the WebAuthn library keeps it: public key, flags, counter
	CreatedAt time.Time
	LastUsed  time.Time // zero: never used to log in
}

// PasskeyStore keeps passkeys.
type PasskeyStore interface {
	// PasskeyHandle returns the user's WebAuthn user handle (random, so it
	// says nothing about the user), making one when create is set.
	// ENOTFOUND when the user has none and create is not set.
	PasskeyHandle(ctx context.Context, user string, create bool) ([]byte, error)
	// UserByPasskeyHandle returns the name of the user with this handle.
	UserByPasskeyHandle(ctx context.Context, handle []byte) (string, error)
	// AddPasskey stores a new passkey; ECONFLICT if its ID or its name
	// for this user is taken.
	AddPasskey(ctx context.Context, k Passkey) error
	Passkeys(ctx context.Context, user string) ([]Passkey, error)
	// UsePasskey stores the credential's data after a login with it (its
	// counter moves) and when it was used.
	UsePasskey(ctx context.Context, id, data []byte, at time.Time) error
	// RemovePasskey removes the user's passkey with this ID; ENOTFOUND if
	// there is none.
	RemovePasskey(ctx context.Context, user string, id []byte) error
	// UseChallenge records a WebAuthn challenge (by hash) as spent; it
	// returns false if it was spent before, so no ceremony is replayed.
	// Records past their expiry may be forgotten.
	UseChallenge(ctx context.Context, hash []byte, expires time.Time) (bool, error)
}

// RecoveryStore keeps single-use recovery codes, as hashes.
type RecoveryStore interface {
	// SetRecoveryCodes replaces the user's codes.
	SetRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error
	// UseRecoveryCode spends the user's unused code with this hash; it
	// reports whether there was one, and how many unused codes are left.
	UseRecoveryCode(ctx context.Context, user string, hash []byte, at time.Time) (ok bool, left int, err error)
	// RecoveryCodesLeft counts the user's unused codes.
	RecoveryCodesLeft(ctx context.Context, user string) (int, error)
	// ResetMFA removes every second factor of the user (TOTP secret,
	// passkeys, recovery codes): the help desk's reset. The user enrols
	// again at the next login.
	ResetMFA(ctx context.Context, user string) error
}

// DeviceGrant is a login of the `sluis connect` client in progress: the
// client polls with its device code while the user approves the user code
// on the portal.
type DeviceGrant struct {
	DeviceHash []byte // SHA-256 of the device code; the code itself is never stored
	UserCode   string // short, shown to the user, typed or followed as a link
	Source     string // the client's address when it started
	CreatedAt  time.Time
	ExpiresAt  time.Time
	State      string // DevicePending, DeviceApproved, DeviceDenied or DeviceTaken
	User       string // who approved or denied
	SessionID  string // the client's session, once approved
	// SealedToken is the client's session token, sealed, from approval
	// until the client takes it.
	SealedToken []byte
}

// States of a device grant.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
	DeviceTaken    = "taken"
)

// DeviceStore keeps device grants.
type DeviceStore interface {
	CreateDeviceGrant(ctx context.Context, g DeviceGrant) error
	// PendingDeviceGrants counts the grants still waiting at now.
	PendingDeviceGrants(ctx context.Context, now time.Time) (int, error)
	// DeviceGrantByUserCode finds a grant that is still pending.
	DeviceGrantByUserCode(ctx context.Context, userCode string, now time.Time) (DeviceGrant, error)
	// DecideDeviceGrant approves (with the client's session and its sealed
	// token) or denies a pending grant; ENOTFOUND if it is no longer
	// pending or has expired.
	DecideDeviceGrant(ctx context.Context, userCode string, approve bool, user, sessionID string, sealedToken []byte, now time.Time) error
	// TakeDeviceGrant returns the grant of a device code for the client's
	// poll. An approved grant is handed out once: its token is erased and
	// its state becomes taken. Expired grants are ENOTFOUND.
	TakeDeviceGrant(ctx context.Context, deviceHash []byte, now time.Time) (DeviceGrant, error)
}

// Checkpoint is a signed statement that the audit trail up to EventID
// ended in Hash at Time. A copy of the trail that still verifies against a
// checkpoint cannot have been rewritten up to there without the signing
// key, and an event removed from the end shows as a checkpoint naming an
// event that is gone.
type Checkpoint struct {
	ID        int64
	EventID   int64
	Hash      []byte
	Time      time.Time
	Signature []byte // Ed25519 over CheckpointMessage
}

// Message returns the bytes the checkpoint's signature covers.
func (c Checkpoint) Message() []byte {
	b := []byte("sluis-audit-checkpoint-v1\n")
	b = binary.AppendVarint(b, c.EventID)
	b = binary.AppendVarint(b, c.Time.UnixNano())
	return append(b, c.Hash...)
}

// AuditStore keeps the audit trail.
type AuditStore interface {
	// AppendEvent adds e to the trail and returns it as stored (numbered
	// and chained).
	AppendEvent(ctx context.Context, e Event) (Event, error)
	// AppendEvents adds events, in order, in one transaction (one disk
	// flush for all of them), and returns them as stored.
	AppendEvents(ctx context.Context, es []Event) ([]Event, error)
	// Events returns every event at or after since (zero: the whole
	// trail), in ID order, all at once: for small parts of the trail.
	// Whole-trail readers (verify, export) page with EventsByID.
	Events(ctx context.Context, since time.Time) ([]Event, error)
	// EventsByID returns one batch of the events at or after since (zero:
	// from the first) whose ID is above after, in ID order: at most limit
	// (1 to MaxEventsBatch) events. Paging on from the last one's ID until
	// a batch comes back empty reads what Events(since) returns, with the
	// memory of one batch. EINVALID for a limit out of range or a
	// negative after.
	EventsByID(ctx context.Context, since time.Time, after int64, limit int) ([]Event, error)
	// LastEvent returns the ID and hash of the newest event (0 and nil in
	// an empty trail).
	LastEvent(ctx context.Context) (int64, []byte, error)
	AppendCheckpoint(ctx context.Context, c Checkpoint) error
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
	// SearchEvents returns one page of the events q selects, newest
	// first (by time, then ID). EINVALID when q does not pass Check.
	SearchEvents(ctx context.Context, q AuditQuery) (AuditPage, error)
	// CountEvents counts the events of each of types from since up to
	// until, per bucket of width bucket (the first starts at since), for
	// charts such as "probes per hour over 24 hours", ordered by type and
	// time. Buckets without events are left out. EINVALID (CheckCount)
	// for no types or more than MaxCountTypes, until not after since, a
	// bucket shorter than a second, or more than MaxCountBuckets buckets.
	CountEvents(ctx context.Context, types []string, since, until time.Time, bucket time.Duration) ([]EventCount, error)
}

// Limits of audit searches.
const (
	MaxEventsBatch   = 10000 // events in one EventsByID
	DefaultAuditPage = 100   // events on a page when AuditQuery.Limit is 0
	MaxAuditPage     = 1000  // the most events on one page
	MaxCountTypes    = 16    // types in one CountEvents
	MaxCountBuckets  = 1000  // buckets in one CountEvents
	maxQueryField    = 256   // bytes of one text field of a query
	maxErrorID       = 32    // hex digits of an error ID
)

// CheckEventsBatch returns an EINVALID error for arguments of
// EventsByID that are out of range.
func CheckEventsBatch(after int64, limit int) error {
	if limit < 1 || limit > MaxEventsBatch {
		return Errorf(EINVALID, "a batch of events is 1 to %d, not %d", MaxEventsBatch, limit)
	}
	if after < 0 {
		return Errorf(EINVALID, "the cursor must be an event ID")
	}
	return nil
}

// AuditQuery selects events of the audit trail for a search. Zero fields
// select everything; fields that are set must all hold.
type AuditQuery struct {
	Since time.Time // events at or after it
	Until time.Time // events before it
	// Type, User, Source and App are compared exactly.
	Type, User, Source, App string
	// ErrorID selects the events that name this error ID (of an error
	// page): hex digits, any case. An ID of the gateway's 12 digits is
	// looked for where the gateway puts it, ending the detail ("...;
	// error ID 0a1b2c3d4e5f"), by an index, so text a client chose
	// earlier in the detail cannot be found for it; an ID of another
	// length anywhere (NamesErrorID), which reads the whole trail.
	ErrorID string
	// Before is the cursor of the page: only events after the event of
	// this ID in the order (older ones). 0 starts with the newest;
	// AuditPage.Next gives the next page's.
	Before int64
	// Limit is the most events on the page: 1 to MaxAuditPage; 0 means
	// DefaultAuditPage.
	Limit int
}

// Check returns the page size q asks for, or an EINVALID error saying
// what is wrong with q.
func (q AuditQuery) Check() (int, error) {
	for _, f := range []string{q.Type, q.User, q.Source, q.App} {
		if len(f) > maxQueryField {
			return 0, Errorf(EINVALID, "a search field has more than %d bytes", maxQueryField)
		}
	}
	if len(q.ErrorID) > maxErrorID || strings.Trim(q.ErrorID, "0123456789abcdefABCDEF") != "" {
		return 0, Errorf(EINVALID, "an error ID is hex digits (at most %d), as the error page shows it", maxErrorID)
	}
	if q.Before < 0 {
		return 0, Errorf(EINVALID, "the cursor must be an event ID")
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return 0, Errorf(EINVALID, "the start of the period must be before its end")
	}
	switch {
	case q.Limit == 0:
		return DefaultAuditPage, nil
	case q.Limit < 0 || q.Limit > MaxAuditPage:
		return 0, Errorf(EINVALID, "a page has 1 to %d events", MaxAuditPage)
	}
	return q.Limit, nil
}

// AuditPage is one page of a search.
type AuditPage struct {
	Events []Event
	// Next is the cursor of the next page (AuditQuery.Before); 0 when
	// this page is the last.
	Next int64
}

// EventCount is how many events of one type fell in one bucket of time.
type EventCount struct {
	Type  string
	Start time.Time // the bucket's start
	N     int64
}

// CheckCount checks the arguments of CountEvents (see there).
func CheckCount(types []string, since, until time.Time, bucket time.Duration) error {
	switch {
	case len(types) == 0 || len(types) > MaxCountTypes:
		return Errorf(EINVALID, "count 1 to %d types of events", MaxCountTypes)
	case bucket < time.Second:
		return Errorf(EINVALID, "a bucket is a second or longer")
	case !since.Before(until):
		return Errorf(EINVALID, "the start of the period must be before its end")
	case (until.Sub(since)+bucket-1)/bucket > MaxCountBuckets:
		return Errorf(EINVALID, "at most %d buckets", MaxCountBuckets)
	}
	return nil
}

// NamesErrorID reports whether detail names the error ID id (of the page
// a refused request got) where the gateway puts it: "error ID " and the
// ID, ending the detail or followed by a character that is not a hex
// digit. The comparison ignores case; an empty id names nothing. (The
// stores' searches and audit.NamesErrorID follow this rule.)
func NamesErrorID(detail, id string) bool {
	if id == "" {
		return false
	}
	d := strings.ToLower(detail)
	want := "error id " + strings.ToLower(id)
	for {
		i := strings.Index(d, want)
		if i < 0 {
			return false
		}
		d = d[i+len(want):]
		if d == "" || !strings.ContainsRune("0123456789abcdef", rune(d[0])) {
			return true
		}
	}
}

// AppStore keeps the operator's switches on apps.
type AppStore interface {
	// SetAppDisabled switches an app off (with a reason shown to users) or
	// on again.
	SetAppDisabled(ctx context.Context, name string, disabled bool, reason string, at time.Time) error
	// DisabledApps returns the reason of every app that is switched off,
	// by app name.
	DisabledApps(ctx context.Context) (map[string]string, error)
}

// Emergency levels, from open to shut.
const (
	LevelNormal    = "normal"
	LevelStrict    = "strict"
	LevelEssential = "essential"
	LevelLockdown  = "lockdown"
	LevelClosed    = "closed"
)

// Emergency is the emergency level the operator set.
type Emergency struct {
	Level    string
	Reason   string
	Previous string    // the level to return to at Until
	Until    time.Time // zero: until changed
	SetBy    string
	SetAt    time.Time
}

// Effective returns the level in force at now: a timed level that ran out
// gives way to the one before it.
func (e Emergency) Effective(now time.Time) (level, reason string) {
	if e.Level == "" {
		return LevelNormal, ""
	}
	if !e.Until.IsZero() && !now.Before(e.Until) {
		if e.Previous == "" {
			return LevelNormal, ""
		}
		return e.Previous, ""
	}
	return e.Level, e.Reason
}

// EmergencyStore keeps the emergency level.
type EmergencyStore interface {
	SetEmergency(ctx context.Context, e Emergency) error
	// Emergency returns the level set; the zero Emergency if none.
	Emergency(ctx context.Context) (Emergency, error)
}

// Block refuses a range of source addresses at the front door.
type Block struct {
	CIDR      string // canonical prefix, such as 198.51.100.0/24 or 2001:db8::1/128
	Reason    string
	Until     time.Time // zero: until removed
	Auto      bool      // set by the front door after repeated probes
	CreatedAt time.Time
}

// BlockStore keeps blocks.
type BlockStore interface {
	// AddBlock adds or replaces the block of b.CIDR. An automatic block
	// never replaces an operator's; adding one also deletes the automatic
	// blocks that ended before b.CreatedAt, so they do not pile up.
	AddBlock(ctx context.Context, b Block) error
	// RemoveBlock removes the block of cidr; ENOTFOUND if there is none.
	RemoveBlock(ctx context.Context, cidr string) error
	Blocks(ctx context.Context) ([]Block, error)
}

// Counter is one count that every node sharing a store sees: a throttle's
// failures and lock, the probes of a source within a window.
type Counter struct {
	N     int       // the count
	Until time.Time // a lock or the end of a window; zero: none
	Last  time.Time // when N last grew
	// Expires is when the counter means nothing any more: the store
	// reads an expired counter as the zero Counter and may delete it.
	Expires time.Time
}

// CounterStore keeps counters shared by every node of a store, so that
// a budget (guesses, probes) holds for the cluster and not per node.
// Keys name what is counted ("login:alice@198.51.100.7"); they are
// canonical names and addresses, never secrets.
type CounterStore interface {
	// UpdateCounter reads key's counter (the zero Counter when there is
	// none or it expired at now), lets fn change it, and stores the
	// result when fn returns true; it returns the counter as it then
	// stands. Updates of one key, from any node, run one after the
	// other, so fn sees every earlier update. fn does no I/O and may
	// run more than once.
	UpdateCounter(ctx context.Context, key string, now time.Time, fn func(c *Counter) bool) (Counter, error)
	// ReadCounter returns key's counter at now (the zero Counter when
	// there is none or it expired).
	ReadCounter(ctx context.Context, key string, now time.Time) (Counter, error)
	// DeleteCounter forgets key.
	DeleteCounter(ctx context.Context, key string) error
	// PurgeCounters deletes the counters and shares expired at now, and
	// then, if more than max counters are left, those past max that
	// changed least recently, unlocked ones first; it returns how many
	// counters it deleted.
	PurgeCounters(ctx context.Context, now time.Time, max int) (int64, error)
	// AddShare changes holder's share of key (such as one node's open
	// tunnels of a user) by delta, if delta is not positive or the
	// shares of every holder that have not expired at now add up to at
	// most limit after it, and reports whether it did. A share expires
	// at expires unless renewed, so that a node that died stops
	// counting. Changes of one key, from any node, run one after the
	// other.
	AddShare(ctx context.Context, key, holder string, delta, limit int, now, expires time.Time) (bool, error)
	// RenewShares moves the expiry of every share of holder to expires
	// and deletes its shares of zero.
	RenewShares(ctx context.Context, holder string, expires time.Time) error
}

// LeaseStore hands out leases for work that one node of several does at
// a time (signing audit checkpoints, the directory re-check, clean-ups):
// whoever holds the lease named for it does it.
type LeaseStore interface {
	// TryLease takes name for holder for ttl if nobody else holds it
	// (or renews it if holder already does), and reports whether holder
	// holds it. Time is the store's own (the database server's clock for
	// PostgreSQL), so that nodes whose clocks differ still agree on who
	// holds a lease.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives name up if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

type eventsKey struct{}

// WithEvents returns a context that makes the store commit es, appended to
// the audit chain, in the same transaction as the change it is passed to:
// the change and its record are stored together or not at all. Pass it to
// exactly one method that changes something (each such method commits the
// events once). Events without a Time get the time of the commit.
func WithEvents(ctx context.Context, es ...Event) context.Context {
	return context.WithValue(ctx, eventsKey{}, es)
}

// EventsOf returns the events that ctx carries (WithEvents), for stores.
func EventsOf(ctx context.Context) []Event {
	es, _ := ctx.Value(eventsKey{}).([]Event)
	return es
}

// Store is everything the gateway keeps. Every change that can take access
// away (a revoked session, a user disabled or moved out of a group) advances
// the revision, so a running gateway knows its caches are stale.
type Store interface {
	UserStore
	PasskeyStore
	RecoveryStore
	DeviceStore
	BrowserStore
	SessionStore
	AuditStore
	AppStore
	BlockStore
	EmergencyStore
	CounterStore
	LeaseStore
	// Revision returns a number that changes whenever access-relevant data
	// changes, in this process or another one sharing the store. It is
	// called on every request and must be cheap.
	Revision(ctx context.Context) (int64, error)
	Close() error
}

// Error codes.
const (
	ENOTFOUND = "not_found"
	ECONFLICT = "conflict"
	EINVALID  = "invalid"
	EINTERNAL = "internal"
)

// Error is an error meant for the user: Message is safe to show. Any error
// that is not an *Error is shown as "internal error" and only logged.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// StorageFull reports whether err says that storage is full: ENOSPC,
// SQLite's SQLITE_FULL ("database or disk is full"), or PostgreSQL's
// disk_full (SQLSTATE 53100), which the stores' drivers report as text.
func StorageFull(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "(SQLSTATE 53100)")
}

// ErrorCode returns the code of an *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}
