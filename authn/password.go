// Package authn checks who someone is: passwords hashed with argon2id, and
// throttling of guesses per user and per source address.
package authn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams follow OWASP's recommendation for argon2id (19 MiB, two
// passes, one lane): slow enough to make offline guessing expensive, cheap
// enough that a burst of logins does not exhaust the gateway's memory.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MaxPasswordLen bounds the work a single attempt can cause.
	MaxPasswordLen = 1024
)

// SlotWait bounds how long a password check waits for a free slot. A
// check that would wait longer by the queue's pace (the checks ahead of
// it, shared among the slots, at the average time a check takes) is told
// ErrBusy at once instead: it is not worth keeping someone waiting who
// will be turned away, and those let in are served in order of arrival.
// 45 s holds a burst of about 1,800 logins on 2 cores (48 ms a check),
// so a Monday morning of real staff waits in order rather than being
// told busy and retrying (a lottery: bench/gateway measured 7,516 busy
// answers for 999 logins with 5 s); it stays below the 60 s a balancer
// in front commonly allows for a response (HAProxy's timeout server,
// nginx's proxy_read_timeout).
const SlotWait = 45 * time.Second

// MaxWaiting bounds the password checks waiting in each lane; one more is
// told ErrBusy at once. A waiting check holds a goroutine and its request
// (argon2id's memory is taken only in a slot), on a connection that the
// listener's caps count anyway; the throttle per source (a guess is
// counted before it waits) keeps one source from filling a lane.
const MaxWaiting = 1024

// ErrBusy means too many password checks are running; try again shortly.
var ErrBusy = errors.New("too many password checks at once; try again shortly")

// Lane is the queue a password check waits in while every slot is busy.
type Lane int

const (
	// LaneNew is for a browser the user has not completed a login from.
	LaneNew Lane = iota
	// LaneKnown is for a known browser of the user (one that completed a
	// login with both factors before, by its cookie, checked against the
	// store): its checks are served before LaneNew's, so a burst of
	// logins from elsewhere (a flood of guesses, or everyone at nine on
	// Monday from new browsers) does not keep a returning user out.
	LaneKnown
)

// slots bounds how many argon2id computations run at once, so a flood of
// login attempts costs bounded memory (slots × Params.Memory) and each
// check takes one core's time, not a share of an oversubscribed machine:
// argon2id with one lane is bound by one core, so more computations than
// cores add memory and latency, not throughput. Waiting checks are served
// in order of arrival, LaneKnown's first (a channel used as a semaphore
// lets a newcomer take a slot that frees before a waiter wakes, and has no
// lanes); a login told busy that asks again keeps the place of its first
// arrival (see Places).
var slots = newSlotQueue(min(4, max(1, runtime.GOMAXPROCS(0))))

type slotQueue struct {
	mu      sync.Mutex // guards the fields below
	slots   int
	free    int
	waiting [2][]waiter // by Lane, by arrival (oldest first)
	// pace is the time a check takes in a slot, a moving average (each
	// new one weighs 1/8); zero until the first.
	pace time.Duration
}

// waiter is a check waiting for a slot.
type waiter struct {
	arrived time.Time     // its place: when its login first asked
	ready   chan struct{} // a slot is handed over by closing it
}

func newSlotQueue(n int) *slotQueue { return &slotQueue{slots: n, free: n} }

// acquire takes a slot, waiting in lane up to wait (forever when wait is
// 0) or until ctx ends; false when none came. It waits behind those of
// its lane that arrived before arrived (zero: now). A full lane is
// refused at once, and so is a newcomer (arrived zero) whose wait by the
// queue's pace would last longer than wait; a login that holds a place
// (told busy before) waits in it: refused again by a pace that changes
// from moment to moment, it would be let in only if it asked at a
// moment that suits, which is the lottery the place is there to end.
func (q *slotQueue) acquire(ctx context.Context, lane Lane, arrived time.Time, wait time.Duration) bool {
	placed := !arrived.IsZero()
	if !placed {
		arrived = time.Now()
	}
	q.mu.Lock()
	if q.free > 0 && len(q.waiting[LaneNew])+len(q.waiting[LaneKnown]) == 0 {
		q.free--
		q.mu.Unlock()
		return true
	}
	at := len(q.waiting[lane])
	for at > 0 && q.waiting[lane][at-1].arrived.After(arrived) {
		at--
	}
	if wait > 0 && (len(q.waiting[lane]) >= MaxWaiting || !placed && q.expectedLocked(lane, at) > wait) {
		q.mu.Unlock()
		return false
	}
	ready := make(chan struct{})
	q.waiting[lane] = slices.Insert(q.waiting[lane], at, waiter{arrived, ready})
	q.mu.Unlock()
	if wait == 0 {
		<-ready
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ready:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := slices.IndexFunc(q.waiting[lane], func(w waiter) bool { return w.ready == ready }); i >= 0 {
		q.waiting[lane] = slices.Delete(q.waiting[lane], i, i+1)
		return false
	}
	return true // handed over while the timer fired: the slot is ours
}

// expectedLocked is how long a check joining lane at index at would
// wait: the checks served before it (those ahead in its lane, and in
// LaneNew every one in LaneKnown too), shared among the slots, at the
// queue's pace.
func (q *slotQueue) expectedLocked(lane Lane, at int) time.Duration {
	ahead := at
	if lane == LaneNew {
		ahead += len(q.waiting[LaneKnown])
	}
	return time.Duration(ahead/q.slots+1) * q.pace
}

// release hands the slot to the oldest waiter of the first lane that has
// one, or frees it; took is how long the check in it took (0: not known).
func (q *slotQueue) release(took time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if took > 0 {
		if q.pace == 0 {
			q.pace = took
		} else {
			q.pace += (took - q.pace) / 8
		}
	}
	for _, lane := range []Lane{LaneKnown, LaneNew} {
		if w := q.waiting[lane]; len(w) > 0 {
			close(w[0].ready)
			w[0] = waiter{}
			q.waiting[lane] = w[1:]
			return
		}
	}
	q.free++
}

// Hash returns the PHC-format argon2id hash of password.
func Hash(password string, p Params) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", MaxPasswordLen)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	slots.acquire(context.Background(), LaneNew, time.Time{}, 0)
	start := time.Now()
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	slots.release(time.Since(start))
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("not an argon2id hash")

func parse(hash string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	// Refuse absurd costs from a tampered database row.
	if p.Memory < 1024 || p.Memory > 1<<20 || p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 {
		return p, nil, nil, errBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// dummyHash is verified against when a user does not exist, so that an
// unknown user name takes as long as a wrong password.
var dummyHash, _ = Hash("sluis-dummy-password", DefaultParams)

// Verify reports whether password matches hash. An empty or malformed hash
// never matches, but costs the same time as a real one. It fails with
// ErrBusy when no slot frees up within SlotWait, and at once when by the
// queue's pace none would.
func Verify(password, hash string) (bool, error) {
	return VerifyIn(LaneNew, password, hash)
}

// VerifyIn is Verify waiting in lane for a slot. It fails with ErrBusy
// at once when MaxWaiting checks wait in lane already.
func VerifyIn(lane Lane, password, hash string) (bool, error) {
	return VerifyContext(context.Background(), lane, password, hash)
}

// VerifyContext is VerifyIn that stops waiting when ctx ends (the
// client went away: its place goes to the next); the error is then
// ErrBusy too, with ctx's error.
func VerifyContext(ctx context.Context, lane Lane, password, hash string) (bool, error) {
	return VerifyPlace(ctx, lane, time.Time{}, password, hash)
}

// VerifyPlace is VerifyContext for a login that first asked at arrived,
// told busy since: it waits behind only those of its lane that arrived
// before it, and is not refused by the queue's pace (only by a full
// lane, or after SlotWait). Zero arrived is a newcomer, as VerifyContext.
// Places remembers arrivals.
func VerifyPlace(ctx context.Context, lane Lane, arrived time.Time, password, hash string) (bool, error) {
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	p, salt, key, err := parse(hash)
	valid := err == nil
	if !valid {
		p, salt, key, _ = parse(dummyHash)
	}
	if !slots.acquire(ctx, lane, arrived, SlotWait) {
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("%w: %w", ErrBusy, err)
		}
		return false, ErrBusy
	}
	start := time.Now()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	slots.release(time.Since(start))
	return subtle.ConstantTimeCompare(got, key) == 1 && valid, nil
}

// Places remembers when a login told ErrBusy first asked, so that asking
// again (the busy page says: in a few seconds) it keeps its place in the
// queue instead of joining at the end: who gets in is who came first, not
// who retried at the right moment. A place is a login's by a key the
// caller picks (the account and the source address: nobody else's retry
// can take it) and lapses After its arrival. The table holds at most Max
// places; when full, a new one is not remembered (that login joins at the
// end when it asks again, as without Places), so filling it costs an
// attacker what being told busy costs, and wins nothing but its own
// logins' places.
type Places struct {
	// After is how long a place is kept; 0 means 2 × SlotWait.
	After time.Duration
	// Max bounds the table; 0 means 4 × MaxWaiting.
	Max int
	Now func() time.Time

	mu     sync.Mutex
	places map[string]time.Time // key -> first arrival
}

func (p *Places) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Arrived returns key's first arrival if it holds a place, else zero.
func (p *Places) Arrived(key string) time.Time {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.places[key]; ok && now.Sub(t) < orDefault(p.After, 2*SlotWait) {
		return t
	}
	return time.Time{}
}

// Busy keeps arrived as key's place (its login was told busy), unless it
// holds one already.
func (p *Places) Busy(key string, arrived time.Time) {
	now := p.now()
	after := orDefault(p.After, 2*SlotWait)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.places[key]; ok && now.Sub(t) < after {
		return
	}
	if p.places == nil {
		p.places = map[string]time.Time{}
	}
	if len(p.places) >= orDefault(p.Max, 4*MaxWaiting) {
		for k, t := range p.places {
			if now.Sub(t) >= after {
				delete(p.places, k)
			}
		}
		if len(p.places) >= orDefault(p.Max, 4*MaxWaiting) {
			return
		}
	}
	p.places[key] = arrived
}

// Done forgets key's place: its check ran.
func (p *Places) Done(key string) {
	p.mu.Lock()
	delete(p.places, key)
	p.mu.Unlock()
}
