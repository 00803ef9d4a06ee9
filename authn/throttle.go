package authn

import (
	"sync"
	"time"
)

// Throttle slows down guessing. Each key (a user name, a source address)
// gets Free failed attempts; after that every further failure locks the key
// for twice as long as the last, from Base up to Max. A success resets the
// key. Because the lock is capped at Max, an attacker who guesses a real
// user's password wrongly can delay that user by at most Max.
type Throttle struct {
	Free int           // failures allowed before any lock; 0 means 5
	Base time.Duration // first lock; 0 means 1s
	Max  time.Duration // longest lock; 0 means 1m
	// Forget drops a key this long after its last failure; 0 means 15m.
	Forget time.Duration
	// MaxKeys bounds memory; when full, expired keys are swept and, if
	// still full, a key that failed least recently is dropped. 0 means
	// 100000.
	MaxKeys int
	Now     func() time.Time

	mu   sync.Mutex
	keys map[string]*throttleEntry
}

type throttleEntry struct {
	failures int
	until    time.Time
	last     time.Time
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

// Begin reserves an attempt by key: if key is locked it returns how long to
// wait and counts nothing; otherwise it counts the attempt as a failure
// right away (locking the key for later attempts once it is over its
// allowance) and returns zero. Counting before the attempt is checked is
// what keeps a burst of parallel guesses from slipping through while the
// first ones are still being verified. After a success, call Forgive or
// Reset.
func (t *Throttle) Begin(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if e := t.keys[key]; e != nil && now.Before(e.until) {
		return e.until.Sub(now)
	}
	t.failLocked(key, now)
	return 0
}

// Forgive takes back one attempt counted by Begin (one that turned out
// right), lifting a lock that attempt caused.
func (t *Throttle) Forgive(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.keys[key]
	if e == nil {
		return
	}
	if e.failures > 0 {
		e.failures--
	}
	if e.failures <= orDefault(t.Free, 5) {
		e.until = time.Time{}
	}
}

// Check returns how long key must wait before its next attempt; zero means
// it may try now.
func (t *Throttle) Check(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.keys[key]
	if e == nil {
		return 0
	}
	now := t.now()
	if now.Before(e.until) {
		return e.until.Sub(now)
	}
	return 0
}

// Fail records a failed attempt by key.
func (t *Throttle) Fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failLocked(key, t.now())
}

func (t *Throttle) failLocked(key string, now time.Time) {
	if t.keys == nil {
		t.keys = map[string]*throttleEntry{}
	}
	forget := orDefault(t.Forget, 15*time.Minute)
	e := t.keys[key]
	if e != nil && now.Sub(e.last) > forget {
		e = nil
	}
	if e == nil {
		if len(t.keys) >= orDefault(t.MaxKeys, 100000) {
			t.sweepLocked(now, forget)
			t.evictLocked(now)
		}
		e = &throttleEntry{}
		t.keys[key] = e
	}
	e.failures++
	e.last = now
	over := e.failures - orDefault(t.Free, 5)
	if over <= 0 {
		return
	}
	lock, max := orDefault(t.Base, time.Second), orDefault(t.Max, time.Minute)
	for i := 1; i < over && lock < max; i++ {
		lock *= 2
	}
	e.until = now.Add(min(lock, max))
}

// Reset forgets key's failures (after a successful attempt).
func (t *Throttle) Reset(key string) {
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
		locked := now.Before(e.until)
		if n == 0 || (victimLocked && !locked) || (locked == victimLocked && e.last.Before(victimAt)) {
			victim, victimLocked, victimAt = k, locked, e.last
		}
		if n++; n == 16 {
			break
		}
	}
	delete(t.keys, victim)
}

func (t *Throttle) sweepLocked(now time.Time, forget time.Duration) {
	for k, e := range t.keys {
		if now.Sub(e.last) > forget && !now.Before(e.until) {
			delete(t.keys, k)
		}
	}
}
