// Package storefault puts a switch in front of a store, for tests: while
// it is down every call fails, as calls to a database that cannot be
// reached do (PostgreSQL stopped, its network gone), and once it is up
// again every call reaches the store as before. The tests of a node whose
// store goes away and comes back use it with the SQLite store; they stand
// in for stopping and starting a real PostgreSQL until that store exists.
//
// Wrapper methods are written out (not embedded), so that a method added
// to sluis.Store fails the build here until it is switched too.
package storefault

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
)

// ErrUnreachable is what every call returns while the switch is down:
// the words of a refused connection, as a database driver reports them.
var ErrUnreachable = errors.New("storefault: dial tcp 127.0.0.1:5432: connect: connection refused")

// Store is a store behind a switch. Its zero value is not usable; use
// Wrap.
type Store struct {
	store sluis.Store
	down  atomic.Bool
}

var _ sluis.Store = (*Store)(nil)

// Wrap puts st behind a switch that is up.
func Wrap(st sluis.Store) *Store { return &Store{store: st} }

// Down makes every call fail with ErrUnreachable from now on.
func (s *Store) Down() { s.down.Store(true) }

// Up lets calls reach the store again.
func (s *Store) Up() { s.down.Store(false) }

func (s *Store) err() error {
	if s.down.Load() {
		return ErrUnreachable
	}
	return nil
}

func zero[T any]() T {
	var z T
	return z
}

// Ready is the wrapped store's Ready (see store/sqlite), or its Revision
// for a store without one.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.err(); err != nil {
		return err
	}
	if r, ok := s.store.(interface{ Ready(context.Context) error }); ok {
		return r.Ready(ctx)
	}
	_, err := s.store.Revision(ctx)
	return err
}

// The methods of sluis.Store (Close always reaches the store).

func (s *Store) CreateUser(a0 context.Context, a1 sluis.User) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.CreateUser(a0, a1)
}

func (s *Store) User(a0 context.Context, a1 string) (sluis.User, error) {
	if err := s.err(); err != nil {
		return zero[sluis.User](), err
	}
	return s.store.User(a0, a1)
}

func (s *Store) UsersNamed(a0 context.Context, a1 string) ([]sluis.User, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.User](), err
	}
	return s.store.UsersNamed(a0, a1)
}

func (s *Store) Users(a0 context.Context) ([]sluis.User, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.User](), err
	}
	return s.store.Users(a0)
}

func (s *Store) SetPassword(a0 context.Context, a1 string, a2 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetPassword(a0, a1, a2)
}

func (s *Store) SetGroups(a0 context.Context, a1 string, a2 []string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetGroups(a0, a1, a2)
}

func (s *Store) SetDisabled(a0 context.Context, a1 string, a2 bool) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetDisabled(a0, a1, a2)
}

func (s *Store) SetExternalID(a0 context.Context, a1 string, a2 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetExternalID(a0, a1, a2)
}

func (s *Store) SetProfile(a0 context.Context, a1 string, a2 string, a3 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetProfile(a0, a1, a2, a3)
}

func (s *Store) SetTOTP(a0 context.Context, a1 string, a2 []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetTOTP(a0, a1, a2)
}

func (s *Store) UseTOTPStep(a0 context.Context, a1 string, a2 int64) (bool, error) {
	if err := s.err(); err != nil {
		return zero[bool](), err
	}
	return s.store.UseTOTPStep(a0, a1, a2)
}

func (s *Store) PasskeyHandle(a0 context.Context, a1 string, a2 bool) ([]byte, error) {
	if err := s.err(); err != nil {
		return zero[[]byte](), err
	}
	return s.store.PasskeyHandle(a0, a1, a2)
}

func (s *Store) UserByPasskeyHandle(a0 context.Context, a1 []byte) (string, error) {
	if err := s.err(); err != nil {
		return zero[string](), err
	}
	return s.store.UserByPasskeyHandle(a0, a1)
}

func (s *Store) AddPasskey(a0 context.Context, a1 sluis.Passkey) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.AddPasskey(a0, a1)
}

func (s *Store) Passkeys(a0 context.Context, a1 string) ([]sluis.Passkey, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.Passkey](), err
	}
	return s.store.Passkeys(a0, a1)
}

func (s *Store) UsePasskey(a0 context.Context, a1 []byte, a2 []byte, a3 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.UsePasskey(a0, a1, a2, a3)
}

func (s *Store) RemovePasskey(a0 context.Context, a1 string, a2 []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.RemovePasskey(a0, a1, a2)
}

func (s *Store) UseChallenge(a0 context.Context, a1 []byte, a2 time.Time) (bool, error) {
	if err := s.err(); err != nil {
		return zero[bool](), err
	}
	return s.store.UseChallenge(a0, a1, a2)
}

func (s *Store) SetRecoveryCodes(a0 context.Context, a1 string, a2 [][]byte) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetRecoveryCodes(a0, a1, a2)
}

func (s *Store) UseRecoveryCode(a0 context.Context, a1 string, a2 []byte, a3 time.Time) (bool, int, error) {
	if err := s.err(); err != nil {
		return zero[bool](), zero[int](), err
	}
	return s.store.UseRecoveryCode(a0, a1, a2, a3)
}

func (s *Store) RecoveryCodesLeft(a0 context.Context, a1 string) (int, error) {
	if err := s.err(); err != nil {
		return zero[int](), err
	}
	return s.store.RecoveryCodesLeft(a0, a1)
}

func (s *Store) ResetMFA(a0 context.Context, a1 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.ResetMFA(a0, a1)
}

func (s *Store) CreateDeviceGrant(a0 context.Context, a1 sluis.DeviceGrant) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.CreateDeviceGrant(a0, a1)
}

func (s *Store) PendingDeviceGrants(a0 context.Context, a1 time.Time) (int, error) {
	if err := s.err(); err != nil {
		return zero[int](), err
	}
	return s.store.PendingDeviceGrants(a0, a1)
}

func (s *Store) DeviceGrantByUserCode(a0 context.Context, a1 string, a2 time.Time) (sluis.DeviceGrant, error) {
	if err := s.err(); err != nil {
		return zero[sluis.DeviceGrant](), err
	}
	return s.store.DeviceGrantByUserCode(a0, a1, a2)
}

func (s *Store) DecideDeviceGrant(a0 context.Context, a1 string, a2 bool, a3 string, a4 string, a5 []byte, a6 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.DecideDeviceGrant(a0, a1, a2, a3, a4, a5, a6)
}

func (s *Store) TakeDeviceGrant(a0 context.Context, a1 []byte, a2 time.Time) (sluis.DeviceGrant, error) {
	if err := s.err(); err != nil {
		return zero[sluis.DeviceGrant](), err
	}
	return s.store.TakeDeviceGrant(a0, a1, a2)
}

func (s *Store) AddKnownBrowser(a0 context.Context, a1 sluis.KnownBrowser, a2 []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.AddKnownBrowser(a0, a1, a2)
}

func (s *Store) KnownBrowser(a0 context.Context, a1 []byte) (sluis.KnownBrowser, error) {
	if err := s.err(); err != nil {
		return zero[sluis.KnownBrowser](), err
	}
	return s.store.KnownBrowser(a0, a1)
}

func (s *Store) CreateSession(a0 context.Context, a1 sluis.Session, a2 []byte, a3 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.CreateSession(a0, a1, a2, a3)
}

func (s *Store) AddToken(a0 context.Context, a1 string, a2 []byte, a3 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.AddToken(a0, a1, a2, a3)
}

func (s *Store) SessionByToken(a0 context.Context, a1 []byte, a2 string) (sluis.Session, error) {
	if err := s.err(); err != nil {
		return zero[sluis.Session](), err
	}
	return s.store.SessionByToken(a0, a1, a2)
}

func (s *Store) SessionHosts(a0 context.Context, a1 string) ([]string, error) {
	if err := s.err(); err != nil {
		return zero[[]string](), err
	}
	return s.store.SessionHosts(a0, a1)
}

func (s *Store) Session(a0 context.Context, a1 string) (sluis.Session, error) {
	if err := s.err(); err != nil {
		return zero[sluis.Session](), err
	}
	return s.store.Session(a0, a1)
}

func (s *Store) Sessions(a0 context.Context) ([]sluis.Session, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.Session](), err
	}
	return s.store.Sessions(a0)
}

func (s *Store) CompleteSession(a0 context.Context, a1 string, a2 time.Time, a3 string, a4 time.Time, a5 []byte, a6 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.CompleteSession(a0, a1, a2, a3, a4, a5, a6)
}

func (s *Store) SetEnrollSecret(a0 context.Context, a1 string, a2 []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetEnrollSecret(a0, a1, a2)
}

func (s *Store) RefreshMFA(a0 context.Context, a1 string, a2 time.Time, a3 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.RefreshMFA(a0, a1, a2, a3)
}

func (s *Store) TouchSession(a0 context.Context, a1 string, a2 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.TouchSession(a0, a1, a2)
}

func (s *Store) RevokeSession(a0 context.Context, a1 string, a2 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.RevokeSession(a0, a1, a2)
}

func (s *Store) RevokeSessions(a0 context.Context, a1 sluis.SessionFilter, a2 time.Time) ([]string, error) {
	if err := s.err(); err != nil {
		return zero[[]string](), err
	}
	return s.store.RevokeSessions(a0, a1, a2)
}

func (s *Store) CreateGrant(a0 context.Context, a1 []byte, a2 string, a3 string, a4 string, a5 []byte, a6 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.CreateGrant(a0, a1, a2, a3, a4, a5, a6)
}

func (s *Store) RedeemGrant(a0 context.Context, a1 []byte, a2 string, a3 time.Time) (string, string, []byte, error) {
	if err := s.err(); err != nil {
		return zero[string](), zero[string](), zero[[]byte](), err
	}
	return s.store.RedeemGrant(a0, a1, a2, a3)
}

func (s *Store) AppendEvent(a0 context.Context, a1 sluis.Event) (sluis.Event, error) {
	if err := s.err(); err != nil {
		return zero[sluis.Event](), err
	}
	return s.store.AppendEvent(a0, a1)
}

func (s *Store) AppendEvents(a0 context.Context, a1 []sluis.Event) ([]sluis.Event, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.Event](), err
	}
	return s.store.AppendEvents(a0, a1)
}

func (s *Store) Events(a0 context.Context, a1 time.Time) ([]sluis.Event, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.Event](), err
	}
	return s.store.Events(a0, a1)
}

func (s *Store) CountSessions(a0 context.Context, a1 time.Time, a2 time.Time) (int, map[string]int, error) {
	if err := s.err(); err != nil {
		return 0, nil, err
	}
	return s.store.CountSessions(a0, a1, a2)
}

func (s *Store) SearchEvents(a0 context.Context, a1 sluis.AuditQuery) (sluis.AuditPage, error) {
	if err := s.err(); err != nil {
		return zero[sluis.AuditPage](), err
	}
	return s.store.SearchEvents(a0, a1)
}

func (s *Store) CountEvents(a0 context.Context, a1 []string, a2 time.Time, a3 time.Time, a4 time.Duration) ([]sluis.EventCount, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.EventCount](), err
	}
	return s.store.CountEvents(a0, a1, a2, a3, a4)
}

func (s *Store) LastEvent(a0 context.Context) (int64, []byte, error) {
	if err := s.err(); err != nil {
		return zero[int64](), zero[[]byte](), err
	}
	return s.store.LastEvent(a0)
}

func (s *Store) AppendCheckpoint(a0 context.Context, a1 sluis.Checkpoint) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.AppendCheckpoint(a0, a1)
}

func (s *Store) Checkpoints(a0 context.Context) ([]sluis.Checkpoint, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.Checkpoint](), err
	}
	return s.store.Checkpoints(a0)
}

func (s *Store) SetAppDisabled(a0 context.Context, a1 string, a2 bool, a3 string, a4 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetAppDisabled(a0, a1, a2, a3, a4)
}

func (s *Store) DisabledApps(a0 context.Context) (map[string]string, error) {
	if err := s.err(); err != nil {
		return zero[map[string]string](), err
	}
	return s.store.DisabledApps(a0)
}

func (s *Store) AddBlock(a0 context.Context, a1 sluis.Block) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.AddBlock(a0, a1)
}

func (s *Store) RemoveBlock(a0 context.Context, a1 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.RemoveBlock(a0, a1)
}

func (s *Store) Blocks(a0 context.Context) ([]sluis.Block, error) {
	if err := s.err(); err != nil {
		return zero[[]sluis.Block](), err
	}
	return s.store.Blocks(a0)
}

func (s *Store) SetEmergency(a0 context.Context, a1 sluis.Emergency) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.SetEmergency(a0, a1)
}

func (s *Store) Emergency(a0 context.Context) (sluis.Emergency, error) {
	if err := s.err(); err != nil {
		return zero[sluis.Emergency](), err
	}
	return s.store.Emergency(a0)
}

func (s *Store) Revision(a0 context.Context) (int64, error) {
	if err := s.err(); err != nil {
		return zero[int64](), err
	}
	return s.store.Revision(a0)
}

func (s *Store) Close() error {
	return s.store.Close()
}

func (s *Store) UpdateCounter(a0 context.Context, a1 string, a2 time.Time, a3 func(c *sluis.Counter) bool) (sluis.Counter, error) {
	if err := s.err(); err != nil {
		return zero[sluis.Counter](), err
	}
	return s.store.UpdateCounter(a0, a1, a2, a3)
}

func (s *Store) ReadCounter(a0 context.Context, a1 string, a2 time.Time) (sluis.Counter, error) {
	if err := s.err(); err != nil {
		return zero[sluis.Counter](), err
	}
	return s.store.ReadCounter(a0, a1, a2)
}

func (s *Store) DeleteCounter(a0 context.Context, a1 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.DeleteCounter(a0, a1)
}

func (s *Store) PurgeCounters(a0 context.Context, a1 time.Time, a2 int) (int64, error) {
	if err := s.err(); err != nil {
		return 0, err
	}
	return s.store.PurgeCounters(a0, a1, a2)
}

func (s *Store) AddShare(a0 context.Context, a1, a2 string, a3, a4 int, a5, a6 time.Time) (bool, error) {
	if err := s.err(); err != nil {
		return false, err
	}
	return s.store.AddShare(a0, a1, a2, a3, a4, a5, a6)
}

func (s *Store) RenewShares(a0 context.Context, a1 string, a2 time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.RenewShares(a0, a1, a2)
}

func (s *Store) TryLease(a0 context.Context, a1, a2 string, a3 time.Duration) (bool, error) {
	if err := s.err(); err != nil {
		return false, err
	}
	return s.store.TryLease(a0, a1, a2, a3)
}

func (s *Store) ReleaseLease(a0 context.Context, a1, a2 string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.store.ReleaseLease(a0, a1, a2)
}
