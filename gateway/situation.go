package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/policy"
)

// Situations returns the function that answers the situation an app
// ("" for the gateway as a whole) is decided in now: the operator's
// controls from st (read again only when revision changes), break-glass
// staff, the age a second factor may have at "strict" and the time zone
// from c, and now. The gateway and `sluis policy explain` both use it.
func Situations(c *config.Config, st sluis.Store, revision func(ctx context.Context) (int64, error), now func() time.Time) func(ctx context.Context, app string) (policy.Situation, error) {
	return newSituations(c, st, revision, now).get
}

func newSituations(c *config.Config, st sluis.Store, revision func(ctx context.Context) (int64, error), now func() time.Time) *situations {
	return &situations{switches: &appSwitches{store: st, revision: revision, clock: now}, now: now, zone: c.Zone(), reauthAfter: c.Strict.ReauthAfter.D(),
		breakGlass: c.BreakGlass()}
}

// situations answers the situation an app's requests are decided in now:
// the operator's controls from the store (read again only when its
// revision changed), break-glass staff and the time zone from the
// configuration, and the clock.
type situations struct {
	switches    *appSwitches
	breakGlass  policy.BreakGlass
	reauthAfter time.Duration
	zone        *time.Location
	now         func() time.Time
}

// get returns the situation of app ("" for the gateway as a whole).
func (s *situations) get(ctx context.Context, app string) (policy.Situation, error) {
	reason, off, err := s.switches.disabled(ctx, app)
	if err != nil {
		return policy.Situation{}, err
	}
	now := s.now()
	level, levelReason := s.switches.state.Load().emergency.Effective(now)
	return policy.Situation{Level: level, LevelReason: levelReason, AppOff: off, AppOffReason: reason,
		BreakGlass: s.breakGlass, ReauthAfter: s.reauthAfter, Now: now, Zone: s.zone}, nil
}

// appSwitches knows which apps the operator switched off. It reads them
// from the store again only when the store's revision changed.
type appSwitches struct {
	store    sluis.Store
	revision func(ctx context.Context) (int64, error)
	clock    func() time.Time
	mu       sync.Mutex // serialises reloads
	state    atomic.Pointer[switchState]
}

type switchState struct {
	rev       int64
	disabled  map[string]string
	emergency sluis.Emergency
}

// level returns the emergency level in force and the operator's reason.
func (s *appSwitches) level(ctx context.Context) (string, string, error) {
	if _, _, err := s.disabled(ctx, ""); err != nil {
		return "", "", err
	}
	level, reason := s.state.Load().emergency.Effective(s.now())
	return level, reason, nil
}

func (s *appSwitches) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// disabled reports whether app is switched off, and why.
func (s *appSwitches) disabled(ctx context.Context, app string) (string, bool, error) {
	rev, err := s.revision(ctx)
	if err != nil {
		return "", false, err
	}
	st := s.state.Load()
	if st == nil || st.rev != rev {
		s.mu.Lock()
		if st = s.state.Load(); st == nil || st.rev != rev {
			m, err := s.store.DisabledApps(ctx)
			if err != nil {
				s.mu.Unlock()
				return "", false, err
			}
			em, err := s.store.Emergency(ctx)
			if err != nil {
				s.mu.Unlock()
				return "", false, err
			}
			st = &switchState{rev: rev, disabled: m, emergency: em}
			s.state.Store(st)
		}
		s.mu.Unlock()
	}
	reason, off := st.disabled[app]
	return reason, off, nil
}
