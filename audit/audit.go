// Package audit is the only place audit events are built and written. Every
// event goes to the store (the trail `sluis audit` reads) and to the log.
// Events describe what happened and to whom; they never carry a password, a
// one-time code or a token, and the types here have no field for one.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/metrics"
)

// Recorder writes audit events. Events recorded at the same time from
// many goroutines are written together, in one transaction and one disk
// flush (group commit); each Record still returns only once its event is
// stored.
type Recorder struct {
	Store sluis.AuditStore
	Log   *slog.Logger // nil means slog.Default()
	Now   func() time.Time
	// Forward, if set, also hands each event to a forwarder (Syslog) after
	// it is stored. It must not block.
	Forward func(sluis.Event)
	// Metrics, if set, times each batch's write.
	Metrics *metrics.Metrics
	// SoonWithin bounds how long an event of RecordSoon waits for a
	// batch to ride with; zero means SoonWithin.
	SoonWithin time.Duration

	mu         sync.Mutex // guards queue, committing and soonTimer
	queue      []*pendingEvent
	committing bool        // a batch is being written (by a Record, a flush, or the goroutine that took over from them)
	soonTimer  *time.Timer // armed while events of RecordSoon wait alone
	soon       sync.WaitGroup

	// lost counts, by type, the events that could not be stored since the
	// last batch that was; guarded by the committing Record (only the
	// goroutine with committing set touches it).
	lost      map[string]int
	lostSince time.Time
}

// ErrNotStored is in the chain of Record's error: the event was not
// stored, so an action that needs it must not happen.
var ErrNotStored = errors.New("the audit trail cannot be written")

// EventLost is the event that records, once the store takes events again,
// how many events of which types could not be stored before.
const EventLost = "audit.lost"

type pendingEvent struct {
	e        sluis.Event
	required bool // the caller does not act without it: not counted as lost
	soon     bool // of RecordSoon: nobody waits for it
	err      error
	done     chan struct{}
}

// Record stamps e with the time and writes it, and returns nil once it is
// stored. When it cannot be stored it returns the cause, and the event is
// counted: the next batch that is stored starts with an audit.lost event
// saying how many events of which types were lost, so the trail shows the
// gap. Callers for which the event is part of the action (a login that
// succeeds, an operator's change) must not go ahead without it; callers
// recording a refusal may ignore the error.
func (r *Recorder) Record(ctx context.Context, e sluis.Event) error {
	return r.record(ctx, e, false)
}

// Require is Record for an event without which its caller does not act
// (a login step that succeeded, an operator's change): when it cannot be
// stored, the caller gives up, so nothing happened that the trail lacks,
// and the event is not counted as lost.
func (r *Recorder) Require(ctx context.Context, e sluis.Event) error {
	return r.record(ctx, e, true)
}

func (r *Recorder) record(ctx context.Context, e sluis.Event, required bool) error {
	p := &pendingEvent{required: required, done: make(chan struct{})}
	r.mu.Lock()
	// The time is taken under the lock, so times follow the chain's order.
	p.e = e
	p.e.Time = r.now().UTC()
	r.queue = append(r.queue, p)
	if r.committing {
		// Another Record is writing: it takes this event with the next
		// batch.
		r.mu.Unlock()
		<-p.done
	} else {
		r.commitLocked(ctx)
		r.mu.Unlock()
	}
	return r.finish(p)
}

// SoonWithin bounds how long an event of RecordSoon waits for a batch to
// ride with before it is written in its own.
const SoonWithin = 50 * time.Millisecond

// RecordSoon is Record for an event that records what has already
// happened and that nobody waits for (a tunnel's end, with its byte
// counts): it returns at once, and the event is stored with the next
// batch that another Record writes, or on its own within SoonWithin. So a
// Record that must be stored before its caller acts (a new tunnel's open)
// never waits behind a disk flush of such events, and carries them in its
// own. Its order in the chain is the order of the calls, as for Record.
// An event that cannot be stored is counted and logged as Record does.
// Flush stores what is waiting; the gateway calls it before it exits.
func (r *Recorder) RecordSoon(ctx context.Context, e sluis.Event) {
	p := &pendingEvent{soon: true, done: make(chan struct{})}
	r.mu.Lock()
	p.e = e
	p.e.Time = r.now().UTC()
	r.queue = append(r.queue, p)
	if !r.committing && r.soonTimer == nil {
		r.soonTimer = time.AfterFunc(r.soonWithin(), func() { r.flush(context.WithoutCancel(ctx)) })
	}
	r.soon.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.soon.Done()
		<-p.done
		r.finish(p)
	}()
}

// Flush stores the events of RecordSoon that are still waiting, and
// returns once they are stored (or counted as lost).
func (r *Recorder) Flush(ctx context.Context) {
	r.flush(ctx)
	r.soon.Wait()
}

func (r *Recorder) flush(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.soonTimer != nil {
		r.soonTimer.Stop()
		r.soonTimer = nil
	}
	if !r.committing {
		// A Record that is writing takes what waits with its next batch.
		r.commitLocked(ctx)
	}
}

// commitLocked writes the queue as one batch; r.mu is held, and is
// released while the batch is written. Events queued meanwhile that a
// caller waits for are written by a goroutine of their own, which takes
// over committing: the caller's event is stored, and it goes on without
// waiting for a flush of events that came after it. Events of RecordSoon
// alone are not written at once: a flush of their own would be one that
// the next Record (a tunnel's open) waits behind, so they wait for that
// Record, or SoonWithin.
func (r *Recorder) commitLocked(ctx context.Context) {
	r.committing = true
	if len(r.queue) == 0 {
		r.committing = false
		return
	}
	batch := r.queue
	r.queue = nil
	if r.soonTimer != nil {
		// The events of RecordSoon ride with this batch.
		r.soonTimer.Stop()
		r.soonTimer = nil
	}
	r.mu.Unlock()
	r.write(context.WithoutCancel(ctx), batch)
	r.mu.Lock()
	if len(r.queue) > 0 && !r.onlySoonLocked() {
		go func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.commitLocked(ctx)
		}()
		return
	}
	r.committing = false
	if len(r.queue) > 0 && r.soonTimer == nil {
		r.soonTimer = time.AfterFunc(r.soonWithin(), func() { r.flush(context.WithoutCancel(ctx)) })
	}
}

// onlySoonLocked reports whether every queued event is of RecordSoon.
func (r *Recorder) onlySoonLocked() bool {
	for _, p := range r.queue {
		if !p.soon {
			return false
		}
	}
	return true
}

// finish logs and forwards a stored event, or logs why it was not.
func (r *Recorder) finish(p *pendingEvent) error {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	stored := p.e
	if p.err != nil {
		if p.required {
			log.Error("audit: event not stored; its step is not taken", "type", stored.Type, "user", stored.User, "source", stored.Source, "err", p.err)
		} else {
			log.Error("audit: event not stored; counted, and recorded as audit.lost once the store takes events again",
				"type", stored.Type, "user", stored.User, "source", stored.Source, "err", p.err)
		}
		return fmt.Errorf("%w: %w", ErrNotStored, p.err)
	}
	if r.Forward != nil {
		r.Forward(stored)
	}
	log.Info("audit", "type", stored.Type, "user", stored.User, "source", stored.Source, "app", stored.App, "outcome", stored.Outcome, "detail", stored.Detail)
	return nil
}

func (r *Recorder) soonWithin() time.Duration {
	if r.SoonWithin > 0 {
		return r.SoonWithin
	}
	return SoonWithin
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// write stores one batch and wakes its callers. A batch that follows lost
// events starts with the audit.lost event that counts them.
func (r *Recorder) write(ctx context.Context, batch []*pendingEvent) {
	es := make([]sluis.Event, 0, len(batch)+1)
	if len(r.lost) > 0 {
		es = append(es, r.lostEvent(batch[0].e.Time))
	}
	for _, p := range batch {
		es = append(es, p.e)
	}
	start := time.Now()
	stored, err := r.Store.AppendEvents(ctx, es)
	r.Metrics.AuditWrite(time.Since(start), err == nil)
	if err == nil {
		stored = stored[len(es)-len(batch):]
		if len(r.lost) > 0 && r.Forward != nil {
			r.Forward(es[0])
		}
		r.lost = nil
	} else {
		for _, p := range batch {
			if p.required {
				continue
			}
			if r.lost == nil {
				r.lost, r.lostSince = map[string]int{}, p.e.Time
			}
			r.lost[p.e.Type]++
		}
	}
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.e = stored[i]
		}
		close(p.done)
	}
}

// lostEvent is the audit.lost event for the events counted in r.lost.
func (r *Recorder) lostEvent(at time.Time) sluis.Event {
	types := slices.Sorted(maps.Keys(r.lost))
	total := 0
	for i, t := range types {
		total += r.lost[t]
		types[i] = fmt.Sprintf("%d %s", r.lost[t], t)
	}
	return sluis.Event{Time: at, Type: EventLost, Outcome: sluis.OutcomeFailure,
		Detail: fmt.Sprintf("%d events could not be stored from %s to %s: %s", total, r.lostSince.Format(time.RFC3339), at.Format(time.RFC3339), strings.Join(types, ", "))}
}

// Broken describes the first event where the chain does not hold.
type Broken struct {
	ID     int64
	Reason string
}

func (b *Broken) Error() string { return fmt.Sprintf("event %d: %s", b.ID, b.Reason) }

// Verify checks the hash chain of events, which must be the whole trail in
// order. It returns nil if every event's hash matches its fields and links
// to the one before; otherwise a *Broken naming the first event where it
// does not (an altered, removed, inserted or reordered event breaks the
// chain there).
func Verify(events []sluis.Event) error {
	var prev []byte
	var prevID int64
	for i, e := range events {
		if i == 0 && e.ID != 1 {
			// A part of the trail (an export --since) starts from the
			// hash its first event names; only the rest can be checked.
			prev = e.PrevHash
		}
		switch {
		case i > 0 && e.ID != prevID+1:
			return &Broken{e.ID, fmt.Sprintf("follows event %d: events are missing or out of order", prevID)}
		case !bytes.Equal(e.PrevHash, prev):
			return &Broken{e.ID, "does not link to the event before it"}
		case !bytes.Equal(e.Hash, e.ChainHash(e.PrevHash)):
			return &Broken{e.ID, "its contents do not match its hash"}
		}
		prev, prevID = e.Hash, e.ID
	}
	return nil
}

// Checkpointer signs checkpoints of the trail with an Ed25519 key.
type Checkpointer struct {
	Store sluis.AuditStore
	Key   ed25519.PrivateKey
	Now   func() time.Time
	// Held, if set, says whether this node signs checkpoints now (it
	// holds the lease for it, see package lease): of several nodes on
	// one store, one signs. Run writes none while it returns false. Nil
	// means always (one node).
	Held func() bool
}

func (c *Checkpointer) held() bool { return c.Held == nil || c.Held() }

// Checkpoint signs the current end of the trail, unless the newest
// checkpoint covers it already.
func (c *Checkpointer) Checkpoint(ctx context.Context) error {
	id, hash, err := c.Store.LastEvent(ctx)
	if err != nil || id == 0 {
		return err
	}
	cps, err := c.Store.Checkpoints(ctx)
	if err != nil {
		return err
	}
	if n := len(cps); n > 0 && cps[n-1].EventID >= id {
		return nil
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	cp := sluis.Checkpoint{EventID: id, Hash: hash, Time: now().UTC().Truncate(time.Microsecond)}
	cp.Signature = ed25519.Sign(c.Key, cp.Message())
	return c.Store.AppendCheckpoint(ctx, cp)
}

// Run writes a checkpoint every interval while events flow, and a last one
// when ctx ends, whenever Held allows.
func (c *Checkpointer) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if !c.held() {
				return
			}
			if err := c.Checkpoint(context.WithoutCancel(ctx)); err != nil {
				log.Error("audit: checkpoint", "err", err)
			}
			return
		case <-t.C:
			if !c.held() {
				continue
			}
			if err := c.Checkpoint(ctx); err != nil {
				log.Error("audit: checkpoint", "err", err)
			}
		}
	}
}

// Report is what VerifyTrail found in an intact trail.
type Report struct {
	Events          int
	LastCheckpoint  *sluis.Checkpoint // nil if none
	AfterCheckpoint int               // events newer than the last checkpoint
	// Gaps are the audit.lost events: times when events could not be
	// stored, each saying how many of which types were lost.
	Gaps []sluis.Event
}

// VerifyTrail checks the chain of events and every checkpoint against it
// and the public key: each checkpoint's signature, and that the event it
// names still exists with the hash it signed. A trail cut off at the end
// fails against the checkpoints that named the removed events.
func VerifyTrail(events []sluis.Event, cps []sluis.Checkpoint, pub ed25519.PublicKey) (Report, error) {
	v := NewTrailVerifier(cps, pub)
	if err := v.Add(events); err != nil {
		return Report{}, err
	}
	return v.Finish()
}

// TrailVerifier checks a trail handed to it in batches, in ID order (as
// sluis.AuditStore.EventsByID pages it), as VerifyTrail checks it whole.
// It keeps the checkpoints, one hash per checkpoint and the audit.lost
// events, never the trail: its memory does not grow with the number of
// events.
type TrailVerifier struct {
	pub   ed25519.PublicKey
	cps   []sluis.Checkpoint
	named map[int64]namedHash // by event ID: the events checkpoints name

	r       Report
	broken  error
	started bool
	first   int64 // the first event's ID
	lastCP  int64 // the event ID of the checkpoint that ends up last; -1 for none
	prev    []byte
	prevID  int64
}

type namedHash struct {
	seen bool
	hash []byte
}

// NewTrailVerifier returns a verifier of a trail against cps, signed by
// pub. A nil pub checks the chain alone (no checkpoint is looked at).
func NewTrailVerifier(cps []sluis.Checkpoint, pub ed25519.PublicKey) *TrailVerifier {
	v := &TrailVerifier{pub: pub, lastCP: -1, named: map[int64]namedHash{}}
	if pub != nil {
		v.cps = cps
		for _, cp := range cps {
			v.named[cp.EventID] = namedHash{}
		}
	}
	return v
}

// start takes the first event's ID: a part of the trail (an export
// --since) is checked against the checkpoints from it on.
func (v *TrailVerifier) start(first int64) {
	v.started, v.first = true, first
	for i := len(v.cps) - 1; i >= 0; i-- {
		if v.cps[i].EventID >= first {
			v.lastCP = v.cps[i].EventID
			break
		}
	}
}

// Add checks the next events of the trail. It returns a *Broken at the
// first event where the chain does not hold; after that every call (and
// Finish) returns the same.
func (v *TrailVerifier) Add(events []sluis.Event) error {
	if v.broken != nil {
		return v.broken
	}
	for _, e := range events {
		if !v.started {
			v.start(e.ID)
			if e.ID != 1 {
				// A part of the trail starts from the hash its first
				// event names; only the rest can be checked.
				v.prev = e.PrevHash
			}
		} else if e.ID != v.prevID+1 {
			v.broken = &Broken{e.ID, fmt.Sprintf("follows event %d: events are missing or out of order", v.prevID)}
			return v.broken
		}
		switch {
		case !bytes.Equal(e.PrevHash, v.prev):
			v.broken = &Broken{e.ID, "does not link to the event before it"}
		case !bytes.Equal(e.Hash, e.ChainHash(e.PrevHash)):
			v.broken = &Broken{e.ID, "its contents do not match its hash"}
		}
		if v.broken != nil {
			return v.broken
		}
		v.prev, v.prevID = e.Hash, e.ID
		v.r.Events++
		if e.Type == EventLost {
			v.r.Gaps = append(v.r.Gaps, e)
		}
		if _, ok := v.named[e.ID]; ok {
			v.named[e.ID] = namedHash{true, e.Hash}
		}
		if v.lastCP < 0 || e.ID > v.lastCP {
			v.r.AfterCheckpoint++
		}
	}
	return nil
}

// Finish checks the checkpoints against what Add saw and returns the
// report, or a *Broken naming the first fault with the report so far
// (Events: the events before a break in the chain).
func (v *TrailVerifier) Finish() (Report, error) {
	if v.broken != nil {
		return v.r, v.broken
	}
	if !v.started {
		v.start(1)
	}
	r := v.r
	for i := range v.cps {
		cp := v.cps[i]
		if !ed25519.Verify(v.pub, cp.Message(), cp.Signature) {
			return r, &Broken{cp.EventID, fmt.Sprintf("checkpoint %d has no valid signature", cp.ID)}
		}
		if cp.EventID < v.first {
			continue // covers events before this part of the trail
		}
		h := v.named[cp.EventID]
		if !h.seen {
			return r, &Broken{cp.EventID, fmt.Sprintf("signed by checkpoint %d, but the event is gone", cp.ID)}
		}
		if !bytes.Equal(h.hash, cp.Hash) {
			return r, &Broken{cp.EventID, fmt.Sprintf("does not match checkpoint %d", cp.ID)}
		}
		r.LastCheckpoint = &v.cps[i]
	}
	return r, nil
}

// TrailBatch is how many events the readers of the whole trail (verify,
// export) hold at once.
const TrailBatch = 1000

// ReadTrail hands fn the events of st at or after since (zero: all) in ID
// order, TrailBatch at a time, up to the event upTo (events appended
// while it reads are left for the next reader, so it ends). fn must not
// keep the slice.
func ReadTrail(ctx context.Context, st sluis.AuditStore, since time.Time, upTo int64, fn func([]sluis.Event) error) error {
	for after := int64(0); after < upTo; {
		evs, err := st.EventsByID(ctx, since, after, TrailBatch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		after = evs[len(evs)-1].ID
		if after > upTo {
			evs = slices.DeleteFunc(evs, func(e sluis.Event) bool { return e.ID > upTo })
		}
		if err := fn(evs); err != nil {
			return err
		}
	}
	return nil
}

// VerifyStore verifies the trail in st as VerifyTrail does, reading it
// in batches (ReadTrail), so memory stays flat however long the trail is.
// The checkpoints are read first and the trail up to its newest event
// then, so a checkpoint written meanwhile never names an event not read.
// A nil pub checks the chain alone. A fault of the trail is a *Broken;
// any other error is the store's.
func VerifyStore(ctx context.Context, st sluis.AuditStore, pub ed25519.PublicKey) (Report, error) {
	var cps []sluis.Checkpoint
	if pub != nil {
		var err error
		if cps, err = st.Checkpoints(ctx); err != nil {
			return Report{}, err
		}
	}
	last, _, err := st.LastEvent(ctx)
	if err != nil {
		return Report{}, err
	}
	v := NewTrailVerifier(cps, pub)
	var broken error
	err = ReadTrail(ctx, st, time.Time{}, last, func(evs []sluis.Event) error {
		broken = v.Add(evs)
		return broken
	})
	if err != nil && err != broken {
		return Report{}, err
	}
	return v.Finish()
}

// ExportStore writes the events of st at or after since (zero: all) and
// every checkpoint as WriteExport does, reading the trail in batches
// (ReadTrail). As VerifyStore, it reads the checkpoints before the
// events, so the export verifies even while the gateway appends.
func ExportStore(ctx context.Context, w io.Writer, st sluis.AuditStore, since time.Time) error {
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return err
	}
	last, _, err := st.LastEvent(ctx)
	if err != nil {
		return err
	}
	// One write per 64 KiB, not per line: a million lines to a terminal
	// or a pipe would otherwise be a million system calls.
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := ReadTrail(ctx, st, since, last, func(evs []sluis.Event) error { return writeEvents(enc, evs) }); err != nil {
		return err
	}
	if err := writeCheckpoints(enc, cps); err != nil {
		return err
	}
	return bw.Flush()
}

// exportLine is one line of an export: an event or a checkpoint, with the
// chain fields, so a copy kept elsewhere can be verified later.
type exportLine struct {
	Kind      string    `json:"kind"` // "event" or "checkpoint"
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type,omitempty"`
	User      string    `json:"user,omitempty"`
	Source    string    `json:"source,omitempty"`
	App       string    `json:"app,omitempty"`
	Outcome   string    `json:"outcome,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	PrevHash  string    `json:"prev_hash,omitempty"`
	Hash      string    `json:"hash"`
	EventID   int64     `json:"event_id,omitempty"`
	Signature string    `json:"signature,omitempty"`
}

// WriteExport writes events and checkpoints as JSON lines.
func WriteExport(w io.Writer, events []sluis.Event, cps []sluis.Checkpoint) error {
	enc := json.NewEncoder(w)
	if err := writeEvents(enc, events); err != nil {
		return err
	}
	return writeCheckpoints(enc, cps)
}

func writeEvents(enc *json.Encoder, events []sluis.Event) error {
	for _, e := range events {
		if err := enc.Encode(exportLine{Kind: "event", ID: e.ID, Time: e.Time.UTC(), Type: e.Type, User: e.User, Source: e.Source,
			App: e.App, Outcome: e.Outcome, Detail: e.Detail, PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}); err != nil {
			return err
		}
	}
	return nil
}

func writeCheckpoints(enc *json.Encoder, cps []sluis.Checkpoint) error {
	for _, c := range cps {
		if err := enc.Encode(exportLine{Kind: "checkpoint", ID: c.ID, Time: c.Time.UTC(), EventID: c.EventID,
			Hash: hex.EncodeToString(c.Hash), Signature: hex.EncodeToString(c.Signature)}); err != nil {
			return err
		}
	}
	return nil
}

// ReadExport reads what WriteExport wrote.
func ReadExport(r io.Reader) ([]sluis.Event, []sluis.Checkpoint, error) {
	var events []sluis.Event
	var cps []sluis.Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		prev, err1 := hex.DecodeString(l.PrevHash)
		hash, err2 := hex.DecodeString(l.Hash)
		sig, err3 := hex.DecodeString(l.Signature)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		switch l.Kind {
		case "event":
			events = append(events, sluis.Event{ID: l.ID, Time: l.Time, Type: l.Type, User: l.User, Source: l.Source, App: l.App,
				Outcome: l.Outcome, Detail: l.Detail, PrevHash: prev, Hash: hash})
		case "checkpoint":
			cps = append(cps, sluis.Checkpoint{ID: l.ID, EventID: l.EventID, Time: l.Time, Hash: hash, Signature: sig})
		default:
			return nil, nil, fmt.Errorf("line %d: unknown kind %q", n, l.Kind)
		}
	}
	return events, cps, sc.Err()
}

// Folder folds repeated events: per key, at most one event per Every is let
// through, carrying how many it stands for, so a flood of the same event
// cannot fill the disk or bury the rest of the trail.
type Folder struct {
	Every time.Duration // zero means 1m
	Max   int           // keys kept at most; zero means 100000
	Now   func() time.Time

	mu   sync.Mutex
	keys map[string]*folded
}

type folded struct {
	last       time.Time
	suppressed int
	id         string
}

// Let reports whether an event for key should be written now, and how many
// earlier ones for key it folds in.
func (f *Folder) Let(key string) (folds int, ok bool) {
	_, folds, ok = f.LetID(key, nil)
	return folds, ok
}

// LetID is Let for events that name an error ID: when the event is to be
// written it gets a new ID from newID, and until the next one is written
// every refusal folded in gets that same ID, so the ID on any refused
// user's page finds the event that stands for it. newID may be nil (no
// IDs).
func (f *Folder) LetID(key string, newID func() string) (id string, folds int, ok bool) {
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	every := f.Every
	if every == 0 {
		every = time.Minute
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]*folded{}
	}
	k := f.keys[key]
	if k == nil {
		max := f.Max
		if max == 0 {
			max = 100000
		}
		if len(f.keys) >= max {
			for kk, v := range f.keys {
				if now.Sub(v.last) >= every {
					delete(f.keys, kk)
				}
			}
			if len(f.keys) >= max {
				f.keys = map[string]*folded{} // a flood of distinct keys: start over
			}
		}
		k = &folded{}
		f.keys[key] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < every {
		k.suppressed++
		return k.id, 0, false
	}
	folds = k.suppressed
	k.last, k.suppressed = now, 0
	if newID != nil {
		k.id = newID()
	}
	return k.id, folds, true
}

// NamesErrorID reports whether e names the error ID id (of the page a
// refused request got) in its detail, where the gateway puts it: "error
// ID " and the ID, ending the detail or followed by a non-hex character.
// The comparison ignores case; an empty id names nothing.
func NamesErrorID(e sluis.Event, id string) bool {
	if id == "" {
		return false
	}
	d := strings.ToLower(e.Detail)
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
