package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Service finds sessions by token, with an in-memory cache that is only
// trusted while the store's revision is unchanged.
type Service struct {
	Store sluis.Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// IdleTimeout ends a session not used for this long.
	IdleTimeout time.Duration
	// TouchEvery bounds how often use of a session is written to the store;
	// zero means one minute. Idle expiry is exact in memory regardless.
	TouchEvery time.Duration
	// MaxCached bounds the cache; zero means 100000 entries.
	MaxCached int
	// Revision returns the store's current revision; cached entries of
	// another revision are reloaded. Nil means asking the store on every
	// lookup (exact, and as cheap as the store makes it); a gateway passes
	// a changes.Watcher, which answers from memory.
	Revision func(ctx context.Context) (int64, error)

	rev revisionGate
	// idle, once set (SetIdleTimeout), replaces IdleTimeout: a reload
	// changes it while lookups run.
	idle atomic.Pointer[time.Duration]

	// mu guards cache and clocks.
	mu     sync.RWMutex
	cache  map[cacheKey]*Active
	clocks map[string]*idleClock // by session ID
}

// idleClock tracks the use of one session across all its hosts: working
// only in one app keeps the whole session alive, portal included.
type idleClock struct {
	lastSeen  atomic.Int64 // unix nanos, in memory
	touchedAt atomic.Int64 // unix nanos, last written to the store
}

type cacheKey struct {
	hash [32]byte
	host string
}

// Active is a live session as found for one request. It is shared between
// requests and must not be modified, except through its methods.
type Active struct {
	Session  sluis.Session
	User     sluis.User
	Revision int64

	clock *idleClock // shared by every token (host) of the session

	// memo is read without a lock on every proxied request (all of a
	// session's parallel requests read it at once); it is replaced whole,
	// under memoMu, when an entry is made.
	memoMu sync.Mutex
	memo   atomic.Pointer[[]memoEntry]
}

type memoEntry struct {
	key   string
	value string
	until time.Time
}

// Identity returns who this session belongs to.
func (a *Active) Identity() sluis.Identity {
	return sluis.Identity{
		User:        a.User.Name,
		Groups:      a.User.Groups,
		SessionID:   a.Session.ID,
		MFA:         !a.Session.MFAAt.IsZero(),
		MFAAt:       a.Session.MFAAt,
		MFAMethod:   a.Session.MFAMethod,
		Email:       a.User.Email,
		DisplayName: a.User.DisplayName,
	}
}

// Memo returns a value cached on this session under key until its expiry,
// or makes a new one. The proxy keeps signed assertions here, so they are
// dropped with the session's cache entry when anything changes.
//
// A value in force is found without taking a lock (a session's parallel
// requests used to queue on one); make runs at most once at a time per
// session.
func (a *Active) Memo(key string, now time.Time, make func() (string, time.Time, error)) (string, error) {
	if v, ok := a.memoFind(key, now); ok {
		return v, nil
	}
	a.memoMu.Lock()
	defer a.memoMu.Unlock()
	if v, ok := a.memoFind(key, now); ok {
		return v, nil // made while this request waited
	}
	v, until, err := make()
	if err != nil {
		return "", err
	}
	// A new table: the old one may be being read. A session holds one
	// entry per app it is used for, so a copy costs little.
	var table []memoEntry
	if old := a.memo.Load(); old != nil {
		for _, e := range *old {
			if e.key != key {
				table = append(table, e)
			}
		}
	}
	table = append(table, memoEntry{key, v, until})
	a.memo.Store(&table)
	return v, nil
}

// memoFind returns the value under key if it is still in force at now.
func (a *Active) memoFind(key string, now time.Time) (string, bool) {
	if t := a.memo.Load(); t != nil {
		for _, e := range *t {
			if e.key == key && now.Before(e.until) {
				return e.value, true
			}
		}
	}
	return "", false
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// ErrNoSession is returned for a missing, malformed, expired or revoked
// session; callers treat all of them alike.
var ErrNoSession = sluis.Errorf(sluis.ENOTFOUND, "no valid session")

// Lookup returns the session that token proves on host. Disabled users,
// revoked, expired and idle sessions are not found.
func (s *Service) Lookup(ctx context.Context, token, host string) (*Active, error) {
	hash, ok := ParseToken(token)
	if !ok {
		return nil, ErrNoSession
	}
	now := s.now()
	var rev int64
	var err error
	if s.Revision != nil {
		rev, err = s.Revision(ctx)
	} else {
		rev, err = s.rev.get(ctx, s.Store)
	}
	if err != nil {
		return nil, err
	}
	key := cacheKey{hash, host}
	s.mu.RLock()
	a := s.cache[key]
	s.mu.RUnlock()
	if a == nil || a.Revision != rev {
		a, err = s.load(ctx, key, rev)
		if err != nil {
			return nil, err
		}
	}
	if !s.valid(a, now) {
		return nil, ErrNoSession
	}
	s.touch(ctx, a, now)
	return a, nil
}

// Revoke ends session id now, on every host it has a token for. The
// store's revision changes with it, so no cache (this one included) finds
// the session again.
func (s *Service) Revoke(ctx context.Context, id string) error {
	return s.Store.RevokeSession(ctx, id, s.now())
}

func (s *Service) load(ctx context.Context, key cacheKey, rev int64) (*Active, error) {
	x, err := s.Store.SessionByToken(ctx, key.hash[:], key.host)
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	u, err := s.Store.User(ctx, x.User)
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	// Twins from an older store (Alice and alice, both enabled) are one
	// name for two people: neither's session counts until an operator
	// keeps one.
	twins, err := s.Store.UsersNamed(ctx, x.User)
	if err != nil {
		return nil, err
	}
	if sluis.HasEnabledTwin(u, twins) {
		return nil, ErrNoSession
	}
	s.mu.Lock()
	if s.cache == nil || len(s.cache) >= orDefault(s.MaxCached, 100000) {
		s.cache = map[cacheKey]*Active{}
		s.clocks = map[string]*idleClock{}
	}
	// The clock outlives cache entries (a revision change reloads them), so
	// a reload never makes an idle session look fresh or a busy one stale.
	clock := s.clocks[x.ID]
	if clock == nil {
		clock = &idleClock{}
		clock.lastSeen.Store(x.LastSeen.UnixNano())
		clock.touchedAt.Store(x.LastSeen.UnixNano())
		s.clocks[x.ID] = clock
	} else if stored := x.LastSeen.UnixNano(); stored > clock.lastSeen.Load() {
		clock.lastSeen.Store(stored) // used through another gateway process
	}
	a := &Active{Session: x, User: u, Revision: rev, clock: clock}
	s.cache[key] = a
	s.mu.Unlock()
	return a, nil
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func (s *Service) valid(a *Active, now time.Time) bool {
	switch {
	case a.Session.Revoked(), a.User.Disabled:
		return false
	case !now.Before(a.Session.ExpiresAt):
		return false
	case s.idleTimeout() > 0 && now.Sub(time.Unix(0, a.clock.lastSeen.Load())) >= s.idleTimeout():
		return false
	}
	return true
}

// touch records use of the session: in memory always, in the store at most
// every TouchEvery, so other processes see roughly when it was last used.
func (s *Service) touch(ctx context.Context, a *Active, now time.Time) {
	n := now.UnixNano()
	for {
		old := a.clock.lastSeen.Load()
		if n <= old || a.clock.lastSeen.CompareAndSwap(old, n) {
			break
		}
	}
	every := orDefault(s.TouchEvery, time.Minute)
	last := a.clock.touchedAt.Load()
	if n-last < int64(every) || !a.clock.touchedAt.CompareAndSwap(last, n) {
		return
	}
	// A failed touch only makes the stored idle time less precise; the
	// in-memory clock still enforces the timeout.
	_ = s.Store.TouchSession(ctx, a.Session.ID, now)
}

// revisionGate reads the store's revision for every request, but lets
// concurrent requests share one read: a request may use a read that began
// after the request arrived, never one that began before. So a change
// committed before a request arrives is always seen by it, and under load
// one read serves many requests.
type revisionGate struct {
	mu       sync.Mutex
	cond     *sync.Cond
	seq      uint64 // reads begun
	doneSeq  uint64 // the last finished read
	doneRev  int64
	doneErr  error
	inflight bool
}

func (g *revisionGate) get(ctx context.Context, st sluis.Store) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	// Any read that begins after this point is fresh enough for us.
	need := g.seq + 1
	for {
		if g.doneSeq >= need {
			return g.doneRev, g.doneErr
		}
		if !g.inflight {
			g.inflight = true
			g.seq++
			mine := g.seq
			g.mu.Unlock()
			// The read is shared: one caller going away must not fail the rest.
			rev, err := st.Revision(context.WithoutCancel(ctx))
			g.mu.Lock()
			g.inflight = false
			g.doneSeq, g.doneRev, g.doneErr = mine, rev, err
			g.cond.Broadcast()
			return rev, err
		}
		g.cond.Wait()
	}
}
