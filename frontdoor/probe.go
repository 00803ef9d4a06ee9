package frontdoor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/metrics"
)

// Audit event types of the front door.
const (
	EventProbe   = "security.probe"
	EventBlocked = "security.blocked"
)

// Detector records probes and blocks sources that keep probing. It holds no
// block of its own: a block is written to the store (Persist) and the front
// door reads only the stored list (BlockList), so `sluis block remove`
// lifts an automatic block exactly as it lifts an operator's.
type Detector struct {
	// BlockAfter probes from one source within BlockWindow block it for
	// BlockFor. Zero values mean 10, 1m and 15m.
	BlockAfter  int
	BlockWindow time.Duration
	BlockFor    time.Duration
	// EventEvery bounds the audit events of one source and rule: at most
	// one per this interval, carrying the count. Zero means 1m.
	EventEvery time.Duration
	// MaxSources bounds memory; zero means 100000.
	MaxSources int
	Record     func(ctx context.Context, e sluis.Event) error
	// Persist stores each automatic block; the block is in force once it
	// is stored, and operators see it in `sluis block list` and can lift
	// it. It returns an error when the block could not be stored. Nil
	// means probes are recorded but never block.
	Persist func(ctx context.Context, b sluis.Block) error
	// Counters, if set, counts each source's probes in the store, so
	// that nodes sharing it block a source after BlockAfter probes in
	// all, however they were spread. Its window then starts at a
	// source's first probe and is not sliding: BlockAfter probes within
	// BlockWindow of the first block, and the count starts again after
	// it. When the store cannot answer, this node's own count decides
	// (and the error is logged): probes then block per node, as without
	// Counters, rather than not at all. So does a probe that arrives
	// while MaxSharedInFlight others are being counted: a flood of
	// probes, which needs no login, cannot take the store's connections
	// from logins and sessions. Nil counts in memory (one node).
	Counters sluis.CounterStore
	// Log reports a store that cannot count.
	Log *slog.Logger
	Now func() time.Time
	// Metrics, if set, counts probes by rule and the blocks stored.
	Metrics *metrics.Metrics

	// tab holds what is remembered of each source. It is its own object
	// so that a detector replacing this one at a reload shares it (see
	// Inherit): a probe counted by either is counted once, in one place.
	tab atomic.Pointer[sourceTable]

	sharedOnce  sync.Once
	sharedSlots chan struct{} // probes being counted in the store
}

// sourceTable is what a detector (and those that replace it at reloads)
// remembers of the sources that probed.
type sourceTable struct {
	mu      sync.RWMutex // guards sources
	sources map[string]*sourceState
}

// table returns d's source table, made at first use.
func (d *Detector) table() *sourceTable {
	if t := d.tab.Load(); t != nil {
		return t
	}
	d.tab.CompareAndSwap(nil, &sourceTable{sources: map[string]*sourceState{}})
	return d.tab.Load()
}

// MaxSharedInFlight is how many probes a node counts in the store at once
// (see Detector.Counters).
const MaxSharedInFlight = 2

type sourceState struct {
	addr  string      // the address last seen (the key may be its /64)
	hits  []time.Time // probe times within the window
	rules map[string]*ruleState
	last  time.Time
}

type ruleState struct {
	lastEvent  time.Time
	suppressed int
}

func (d *Detector) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Probe records that r from its source matched rule (a signature, or a
// front-door refusal). It writes a security.probe event (at most one per
// source and rule per EventEvery, with the count of those it stood for) and
// a security.blocked event when the source crosses the threshold.
func (d *Detector) Probe(r *http.Request, rule string) {
	d.probe(r.Context(), ClientIP(r), r.Host, rule, "target "+quoteTarget(r.RequestURI))
}

// ProbeWithID is Probe for a refusal whose page shows the error ID id: the
// event names it, so the ID on a user's page finds the event.
func (d *Detector) ProbeWithID(r *http.Request, rule, id string) {
	d.probe(r.Context(), ClientIP(r), r.Host, rule, "target "+quoteTarget(r.RequestURI)+"; error ID "+id)
}

// ProbeConn records that a connection from the address src was refused or
// closed for misuse no correct client commits (an HTTP/2 protocol error, a
// rapid reset): rule names what, detail says more. It counts toward the
// source's block exactly as a probe does.
func (d *Detector) ProbeConn(ctx context.Context, src, rule, detail string) {
	d.probe(ctx, src, "", rule, detail)
}

func (d *Detector) probe(ctx context.Context, src, app, rule, what string) {
	// Counted and blocked by its range (an IPv6 /64), so that a client
	// cannot get round the count or the block by changing its address.
	key := src
	if p, err := SourcePrefix(src); err == nil {
		key = p.String()
	}
	d.Metrics.Probe(rule)
	now := d.now()
	every := orDefault(d.EventEvery, time.Minute)
	window := orDefault(d.BlockWindow, time.Minute)
	var events []sluis.Event
	var block *sluis.Block
	t := d.table()
	t.mu.Lock()
	s := t.sources[key]
	if s == nil {
		if len(t.sources) >= orDefault(d.MaxSources, 100000) {
			d.sweepLocked(t, now)
		}
		s = &sourceState{rules: map[string]*ruleState{}}
		t.sources[key] = s
	}
	s.last, s.addr = now, src
	rs := s.rules[rule]
	if rs == nil {
		rs = &ruleState{}
		s.rules[rule] = rs
	}
	if now.Sub(rs.lastEvent) >= every {
		detail := fmt.Sprintf("rule %s; %s", rule, what)
		if rs.suppressed > 0 {
			detail += fmt.Sprintf("; %d more from this source and rule since the last event", rs.suppressed)
		}
		events = append(events, sluis.Event{Type: EventProbe, Source: src, App: app, Outcome: sluis.OutcomeDenied, Detail: detail})
		rs.lastEvent, rs.suppressed = now, 0
	} else {
		rs.suppressed++
	}
	// Sliding window of hits.
	keep := s.hits[:0]
	for _, t := range s.hits {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	s.hits = append(keep, now)
	crossed := false
	if d.Persist != nil && len(s.hits) >= orDefault(d.BlockAfter, 10) {
		// The window starts again: once the block is stored this source
		// is refused before it reaches the detector, and if an operator
		// lifts the block it takes ten new probes to block it again.
		s.hits = s.hits[:0]
		crossed = true
	}
	t.mu.Unlock()
	if d.Persist != nil && d.Counters != nil && d.takeSlot() {
		shared, err := d.countShared(ctx, key, now, window)
		<-d.sharedSlots
		if err != nil {
			if d.Log != nil {
				d.Log.Error("frontdoor: counting a probe in the store; this node's own count decides", "source", src, "err", err)
			}
		} else {
			crossed = shared
		}
	}
	if crossed {
		if p, err := SourcePrefix(src); err == nil {
			until := now.Add(orDefault(d.BlockFor, 15*time.Minute))
			block = &sluis.Block{CIDR: p.String(), Reason: fmt.Sprintf("automatic: %d probes within %s", orDefault(d.BlockAfter, 10), window),
				Until: until, Auto: true, CreatedAt: now}
		}
	}
	if block != nil {
		// Stored before the events are written, so the next request from
		// this source is refused even while the audit write is under way.
		if err := d.Persist(context.WithoutCancel(ctx), *block); err != nil {
			events = append(events, sluis.Event{Type: EventBlocked, Source: src, Outcome: sluis.OutcomeFailure,
				Detail: fmt.Sprintf("%d probes within %s; the block could not be stored: %v", orDefault(d.BlockAfter, 10), window, err)})
		} else {
			d.Metrics.BlockAdded()
			events = append(events, sluis.Event{Type: EventBlocked, Source: src, Outcome: sluis.OutcomeDenied,
				Detail: fmt.Sprintf("%d probes within %s; blocked until %s", orDefault(d.BlockAfter, 10), window, block.Until.UTC().Format(time.RFC3339))})
		}
	}
	if d.Record != nil {
		for _, e := range events {
			d.Record(ctx, e)
		}
	}
}

// takeSlot reports whether a probe may be counted in the store now.
func (d *Detector) takeSlot() bool {
	d.sharedOnce.Do(func() { d.sharedSlots = make(chan struct{}, MaxSharedInFlight) })
	select {
	case d.sharedSlots <- struct{}{}:
		return true
	default:
		return false
	}
}

// countShared counts a probe by the source key in the store and reports
// whether it is the one that reaches BlockAfter; the count then starts
// again.
func (d *Detector) countShared(ctx context.Context, key string, now time.Time, window time.Duration) (bool, error) {
	crossed := false
	_, err := d.Counters.UpdateCounter(context.WithoutCancel(ctx), "probes/"+key, now, func(c *sluis.Counter) bool {
		crossed = false
		if !now.Before(c.Until) {
			*c = sluis.Counter{Until: now.Add(window), Expires: now.Add(window)}
		}
		c.N++
		c.Last = now
		if c.N >= orDefault(d.BlockAfter, 10) {
			crossed = true
			*c = sluis.Counter{}
		}
		return true
	})
	return crossed, err
}

// sweepLocked drops sources with nothing pending, then, if still full, the
// least recently seen of a random sample.
func (d *Detector) sweepLocked(t *sourceTable, now time.Time) {
	window := orDefault(d.BlockWindow, time.Minute)
	for k, s := range t.sources {
		if now.Sub(s.last) > max(window, orDefault(d.EventEvery, time.Minute)) {
			delete(t.sources, k)
		}
	}
	if len(t.sources) < orDefault(d.MaxSources, 100000) {
		return
	}
	victim, n := "", 0
	var at time.Time
	for k, s := range t.sources {
		if victim == "" || s.last.Before(at) {
			victim, at = k, s.last
		}
		if n++; n == 16 {
			break
		}
	}
	delete(t.sources, victim)
}

// quoteTarget returns the request target escaped for the audit trail and
// cut to a bounded length.
func quoteTarget(t string) string {
	if len(t) > 256 {
		t = t[:256] + "…"
	}
	return strconv.QuoteToASCII(t)
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// Flush writes the counts of probes that were folded into an earlier event
// and have waited at least EventEvery, so a source that stops probing still
// has its count recorded. Run calls it periodically.
func (d *Detector) Flush(ctx context.Context) {
	now := d.now()
	every := orDefault(d.EventEvery, time.Minute)
	var events []sluis.Event
	t := d.table()
	t.mu.Lock()
	for _, s := range t.sources {
		src := s.addr
		for rule, rs := range s.rules {
			if rs.suppressed > 0 && now.Sub(rs.lastEvent) >= every {
				events = append(events, sluis.Event{Type: EventProbe, Source: src, Outcome: sluis.OutcomeDenied,
					Detail: fmt.Sprintf("rule %s; %d more from this source and rule since the last event", rule, rs.suppressed)})
				rs.lastEvent, rs.suppressed = now, 0
			}
		}
	}
	t.mu.Unlock()
	if d.Record != nil {
		for _, e := range events {
			d.Record(ctx, e)
		}
	}
}

// Run flushes folded counts every EventEvery until ctx ends.
func (d *Detector) Run(ctx context.Context) {
	t := time.NewTicker(orDefault(d.EventEvery, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.Flush(ctx)
		}
	}
}
