package audit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Refusals bounds the events of refused attempts (wrong passwords, wrong
// codes, throttled tries), so that a flood of them cannot fill the disk or
// bury the trail:
//   - per key (an event type and a user), at most one event per Every,
//     carrying how many attempts from how many sources it stands for;
//   - over all keys, at most PerMinute events a minute; past that, one
//     summary event counts the rest by type.
//
// A flood from a new address per attempt, at one user or at many, writes
// a bounded number of rows: at most PerMinute plus one a minute.
type Refusals struct {
	Every     time.Duration // zero means 1m
	PerMinute int           // zero means 600
	MaxKeys   int           // keys remembered; zero means 100000
	Now       func() time.Time

	mu       sync.Mutex // guards everything below
	keys     map[string]*refusalKey
	minute   int64          // the minute inMinute and over count
	inMinute int            // events let through this minute
	over     map[string]int // by type: events not let through this minute (the cap)
	overFrom time.Time
}

type refusalKey struct {
	typ, user string
	last      time.Time // the last event written for the key
	attempts  int       // folded since
	sources   map[string]bool
	reasons   map[string]int // the folded attempts by reason
}

// maxSourcesCounted bounds the distinct sources remembered per key, and
// maxReasons the distinct reasons.
const (
	maxSourcesCounted = 1000
	maxReasons        = 8
)

func (f *Refusals) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Let reports whether a refusal event of typ for user from src, for reason,
// is to be written now; when it is, detail says how many folded attempts
// (from how many sources, for which reasons) it stands for ("" when none).
func (f *Refusals) Let(typ, user, src, reason string) (detail string, ok bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]*refusalKey{}
	}
	key := typ + "\x00" + user
	k := f.keys[key]
	if k == nil {
		if len(f.keys) >= orDefault(f.MaxKeys, 100000) {
			f.sweepLocked(now)
		}
		k = &refusalKey{typ: typ, user: user}
		f.keys[key] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < orDefault(f.Every, time.Minute) {
		k.fold(src, reason)
		return "", false
	}
	if !f.takeLocked(now) {
		f.overLocked(now, typ, 1)
		return "", false
	}
	detail = k.folded()
	k.reset(now)
	return detail, true
}

func (k *refusalKey) reset(now time.Time) {
	k.last, k.attempts, k.sources, k.reasons = now, 0, nil, nil
}

func (k *refusalKey) fold(src, reason string) {
	k.attempts++
	if k.sources == nil {
		k.sources, k.reasons = map[string]bool{}, map[string]int{}
	}
	if len(k.sources) < maxSourcesCounted {
		k.sources[src] = true
	}
	if _, ok := k.reasons[reason]; !ok && len(k.reasons) >= maxReasons {
		reason = "other"
	}
	k.reasons[reason]++
}

func (k *refusalKey) folded() string {
	if k.attempts == 0 {
		return ""
	}
	more := ""
	if len(k.sources) >= maxSourcesCounted {
		more = " or more"
	}
	reasons := slices.Sorted(maps.Keys(k.reasons))
	for i, r := range reasons {
		reasons[i] = fmt.Sprintf("%d %s", k.reasons[r], r)
	}
	return fmt.Sprintf("%d more attempts from %d%s sources since the last event: %s", k.attempts, len(k.sources), more, strings.Join(reasons, ", "))
}

// takeLocked counts one event against the minute's cap; false when the
// cap is reached.
func (f *Refusals) takeLocked(now time.Time) bool {
	if m := now.Unix() / 60; m != f.minute {
		f.minute, f.inMinute = m, 0
	}
	if f.inMinute >= orDefault(f.PerMinute, 600) {
		return false
	}
	f.inMinute++
	return true
}

// overLocked counts n refusals of typ that the cap keeps from being
// written one by one.
func (f *Refusals) overLocked(now time.Time, typ string, n int) {
	if f.over == nil {
		f.over, f.overFrom = map[string]int{}, now
	}
	f.over[typ] += n
}

// sweepLocked forgets keys with nothing folded whose interval has passed;
// if still full, every key (their folded counts go to the summary).
func (f *Refusals) sweepLocked(now time.Time) {
	every := orDefault(f.Every, time.Minute)
	for key, k := range f.keys {
		if k.attempts == 0 && now.Sub(k.last) >= every {
			delete(f.keys, key)
		}
	}
	if len(f.keys) < orDefault(f.MaxKeys, 100000) {
		return
	}
	for _, k := range f.keys {
		if k.attempts > 0 {
			f.overLocked(now, k.typ, k.attempts)
		}
	}
	clear(f.keys)
}

// Flush returns the events that folded counts are owed: for each key whose
// interval has passed with attempts folded, one event; and one summary of
// what the cap held back. Call it periodically.
func (f *Refusals) Flush() []sluis.Event {
	now := f.now()
	every := orDefault(f.Every, time.Minute)
	var out []sluis.Event
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, k := range f.keys {
		if k.attempts > 0 && now.Sub(k.last) >= every {
			if !f.takeLocked(now) {
				// Counted in the summary instead.
				f.overLocked(now, k.typ, k.attempts)
				delete(f.keys, key)
				continue
			}
			out = append(out, sluis.Event{Type: k.typ, User: k.user, Outcome: sluis.OutcomeFailure, Detail: k.folded()})
			k.reset(now)
		} else if k.attempts == 0 && now.Sub(k.last) >= every {
			delete(f.keys, key)
		}
	}
	if len(f.over) > 0 && now.Unix()/60 != f.overFrom.Unix()/60 {
		types := slices.Sorted(maps.Keys(f.over))
		total := 0
		for i, t := range types {
			total += f.over[t]
			types[i] = fmt.Sprintf("%d %s", f.over[t], t)
		}
		out = append(out, sluis.Event{Type: EventRefusalsSummary, Outcome: sluis.OutcomeFailure,
			Detail: fmt.Sprintf("%d refusals since %s beyond %d events a minute, not written one by one: %s", total, f.overFrom.UTC().Format(time.RFC3339), orDefault(f.PerMinute, 600), strings.Join(types, ", "))})
		f.over = nil
	}
	return out
}

// EventRefusalsSummary counts refusals that the cap kept from being
// written one by one.
const EventRefusalsSummary = "audit.refusals"
