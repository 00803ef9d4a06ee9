package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
)

// ErrThrottleUnavailable is in the chain of Begin's and Check's error when
// a shared throttle's store cannot answer. The attempt must then be
// refused (fail closed): a guess that is not counted is a free guess.
var ErrThrottleUnavailable = errors.New("the throttle's counts cannot be read or written")

// Throttle slows down guessing. Each key (a user name, a source address)
// gets Free failed attempts; after that every further failure locks the key
// for twice as long as the last, from Base up to Max. A success resets the
// key. Because the lock is capped at Max, an attacker who guesses a real
// user's password wrongly can delay that user by at most Max.
//
// The counts live in memory, for one process; with Store set they live
// in the store, so that every node sharing it sees every guess: an
// attacker who spreads guesses over several nodes gets no more.
type Throttle struct {
	Free int           // failures allowed before any lock; 0 means 5
	Base time.Duration // first lock; 0 means 1s
	Max  time.Duration // longest lock; 0 means 1m
	// Forget drops a key this long after its last failure; 0 means 15m.
	Forget time.Duration
	// MaxKeys bounds memory; when full, expired keys are swept and, if
	// still full, a key that failed least recently is dropped. 0 means
	// 100000. With Store, the store's own clean-up bounds its table
	// (see sluis.CounterStore.PurgeCounters).
	MaxKeys int
	Now     func() time.Time

	// Store, if set, keeps the counts instead of memory, under keys
	// that begin with Name and "/" (each throttle sharing a store needs
	// a Name of its own). Each Begin, Check, Forgive, Fail and Reset is
	// then a round trip to the store; Begin and Check return
	// ErrThrottleUnavailable when it fails.
	Store sluis.CounterStore
	Name  string
	// Log, if set, reports a Forgive, Fail or Reset that the store did
	// not take (the count then stays higher than it should: stricter,
	// never looser).
	Log *slog.Logger

	mu   sync.Mutex
	keys map[string]*sluis.Counter
}

func (t *Throttle) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// begin is Begin on one counter: it reports whether c changed and how
// long to wait.
func (t *Throttle) begin(c *sluis.Counter, now time.Time) (changed bool, wait time.Duration) {
	if now.Before(c.Until) {
		return false, c.Until.Sub(now)
	}
	t.fail(c, now)
	return true, 0
}

// fail counts a failure on c at now.
func (t *Throttle) fail(c *sluis.Counter, now time.Time) {
	forget := orDefault(t.Forget, 15*time.Minute)
	if !c.Last.IsZero() && now.Sub(c.Last) > forget {
		*c = sluis.Counter{}
	}
	c.N++
	c.Last = now
	if over := c.N - orDefault(t.Free, 5); over > 0 {
		lock, max := orDefault(t.Base, time.Second), orDefault(t.Max, time.Minute)
		for i := 1; i < over && lock < max; i++ {
			lock *= 2
		}
		c.Until = now.Add(min(lock, max))
	}
	c.Expires = now.Add(forget)
	if c.Until.After(c.Expires) {
		c.Expires = c.Until
	}
}

// forgive takes one failure back from c.
func (t *Throttle) forgive(c *sluis.Counter) bool {
	if c.N == 0 && c.Until.IsZero() {
		return false
	}
	if c.N > 0 {
		c.N--
	}
	if c.N <= orDefault(t.Free, 5) {
		c.Until = time.Time{}
	}
	return true
}

func (t *Throttle) storeKey(key string) string { return t.Name + "/" + key }

func (t *Throttle) logError(op, key string, err error) {
	if t.Log != nil {
		t.Log.Error("authn: throttle: the store did not take "+op, "throttle", t.Name, "key", key, "err", err)
	}
}

// Begin reserves an attempt by key: if key is locked it returns how long to
// wait and counts nothing; otherwise it counts the attempt as a failure
// right away (locking the key for later attempts once it is over its
// allowance) and returns zero. Counting before the attempt is checked is
// what keeps a burst of parallel guesses from slipping through while the
// first ones are still being verified. After a success, call Forgive or
// Reset. An error (a shared store that cannot answer) means the attempt
// must be refused.
func (t *Throttle) Begin(ctx context.Context, key string) (time.Duration, error) {
	now := t.now()
	if t.Store != nil {
		var wait time.Duration
		_, err := t.Store.UpdateCounter(ctx, t.storeKey(key), now, func(c *sluis.Counter) bool {
			changed, w := t.begin(c, now)
			wait = w
			return changed
		})
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrThrottleUnavailable, err)
		}
		return wait, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.keys[key]; e != nil && now.Before(e.Until) {
		return e.Until.Sub(now), nil
	}
	t.fail(t.entryLocked(key, now), now)
	return 0, nil
}

// Forgive takes back one attempt counted by Begin (one that turned out
// right, or was never checked), lifting a lock that attempt caused.
func (t *Throttle) Forgive(ctx context.Context, key string) {
	if t.Store != nil {
		if _, err := t.Store.UpdateCounter(ctx, t.storeKey(key), t.now(), t.forgive); err != nil {
			t.logError("a forgiven attempt", key, err)
		}
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.keys[key]; e != nil {
		t.forgive(e)
	}
}

// Check returns how long key must wait before its next attempt; zero means
// it may try now. An error (a shared store that cannot answer) means the
// attempt must be refused.
func (t *Throttle) Check(ctx context.Context, key string) (time.Duration, error) {
	now := t.now()
	var until time.Time
	if t.Store != nil {
		c, err := t.Store.ReadCounter(ctx, t.storeKey(key), now)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrThrottleUnavailable, err)
		}
		until = c.Until
	} else {
		t.mu.Lock()
		if e := t.keys[key]; e != nil {
			until = e.Until
		}
		t.mu.Unlock()
	}
	if now.Before(until) {
		return until.Sub(now), nil
	}
	return 0, nil
}

// Fail records a failed attempt by key.
func (t *Throttle) Fail(ctx context.Context, key string) {
	now := t.now()
	if t.Store != nil {
		if _, err := t.Store.UpdateCounter(ctx, t.storeKey(key), now, func(c *sluis.Counter) bool { t.fail(c, now); return true }); err != nil {
			t.logError("a failure", key, err)
		}
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fail(t.entryLocked(key, now), now)
}

// entryLocked returns key's entry, making room for a new one if need be.
func (t *Throttle) entryLocked(key string, now time.Time) *sluis.Counter {
	if t.keys == nil {
		t.keys = map[string]*sluis.Counter{}
	}
	e := t.keys[key]
	if e == nil {
		if len(t.keys) >= orDefault(t.MaxKeys, 100000) {
			t.sweepLocked(now)
			t.evictLocked(now)
		}
		e = &sluis.Counter{}
		t.keys[key] = e
	}
	return e
}

// Reset forgets key's failures (after a successful attempt).
func (t *Throttle) Reset(ctx context.Context, key string) {
	if t.Store != nil {
		if err := t.Store.DeleteCounter(ctx, t.storeKey(key)); err != nil {
			t.logError("a reset", key, err)
		}
		return
	}
	t.mu.Lock()
	delete(t.keys, key)
	t.mu.Unlock()
}

// evictLocked makes room when the table is full of live keys: of a few
// keys picked at random (map order), an unlocked one that failed least
// recently goes; a locked key goes only if every pick is locked. A key
// under attack stays; filling the table costs an attacker one verified
// guess per key.
func (t *Throttle) evictLocked(now time.Time) {
	if len(t.keys) < orDefault(t.MaxKeys, 100000) {
		return
	}
	var victim string
	var victimLocked bool
	var victimAt time.Time
	n := 0
	for k, e := range t.keys {
		locked := now.Before(e.Until)
		if n == 0 || (victimLocked && !locked) || (locked == victimLocked && e.Last.Before(victimAt)) {
			victim, victimLocked, victimAt = k, locked, e.Last
		}
		if n++; n == 16 {
			break
		}
	}
	delete(t.keys, victim)
}

func (t *Throttle) sweepLocked(now time.Time) {
	for k, e := range t.keys {
		if !now.Before(e.Expires) {
			delete(t.keys, k)
		}
	}
}
