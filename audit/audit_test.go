package audit_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func trail(t *testing.T, n int) []sluis.Event {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)
	rec := &audit.Recorder{Store: db, Now: func() time.Time { now = now.Add(time.Second); return now }}
	for i := 0; i < n; i++ {
		rec.Record(context.Background(), sluis.Event{Type: sluis.EventLoginSuccess, User: "anna", Source: "192.0.2.1", Outcome: "success", Detail: "x"})
	}
	evs, err := db.Events(context.Background(), time.Time{})
	if err != nil || len(evs) != n {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	return evs
}

func TestVerify(t *testing.T) {
	if err := audit.Verify(trail(t, 5)); err != nil {
		t.Fatalf("intact trail: %v", err)
	}
	tests := []struct {
		name   string
		tamper func([]sluis.Event) []sluis.Event
		want   int64
	}{
		{"detail altered", func(e []sluis.Event) []sluis.Event { e[2].Detail = "nothing to see"; return e }, 3},
		{"user altered", func(e []sluis.Event) []sluis.Event { e[0].User = "mallory"; return e }, 1},
		{"time altered", func(e []sluis.Event) []sluis.Event { e[4].Time = e[4].Time.Add(-time.Hour); return e }, 5},
		{"event removed", func(e []sluis.Event) []sluis.Event { return append(e[:1], e[2:]...) }, 3},
		{"events swapped", func(e []sluis.Event) []sluis.Event { e[1], e[2] = e[2], e[1]; return e }, 3},
		{"hash recomputed after an edit", func(e []sluis.Event) []sluis.Event {
			e[1].Detail = "edited"
			e[1].Hash = e[1].ChainHash(e[1].PrevHash)
			return e
		}, 3},
		{"last event removed and renumbered", func(e []sluis.Event) []sluis.Event { e[3].ID = 9; return e }, 9},
	}
	for _, tt := range tests {
		err := audit.Verify(tt.tamper(trail(t, 5)))
		var b *audit.Broken
		if !errors.As(err, &b) || b.ID != tt.want {
			t.Errorf("%s: %v, want broken at event %d", tt.name, err, tt.want)
		}
	}
}

func TestVerifyTrailChecksCheckpoints(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pub, key, _ := ed25519.GenerateKey(nil)
	cp := &audit.Checkpointer{Store: db, Key: key}
	rec := &audit.Recorder{Store: db}
	for i := 0; i < 3; i++ {
		rec.Record(ctx, sluis.Event{Type: "x", Detail: "d"})
	}
	if err := cp.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.Checkpoint(ctx); err != nil { // nothing new: no second checkpoint
		t.Fatal(err)
	}
	rec.Record(ctx, sluis.Event{Type: "y"})
	evs, _ := db.Events(ctx, time.Time{})
	cps, _ := db.Checkpoints(ctx)
	if len(cps) != 1 {
		t.Fatalf("%d checkpoints, want 1", len(cps))
	}
	rep, err := audit.VerifyTrail(evs, cps, pub)
	if err != nil || rep.Events != 4 || rep.LastCheckpoint.EventID != 3 || rep.AfterCheckpoint != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := audit.VerifyTrail(evs, cps, otherPub); err == nil {
		t.Fatal("checkpoint accepted with another key")
	}
	forged := append([]sluis.Checkpoint(nil), cps...)
	forged[0].EventID = 2
	if _, err := audit.VerifyTrail(evs, forged, pub); err == nil {
		t.Fatal("checkpoint with altered event number accepted")
	}
	// The whole trail rewritten consistently (a valid chain of other
	// events) fails against the signed checkpoint.
	rewritten := append([]sluis.Event(nil), evs...)
	var prev []byte
	for i := range rewritten {
		rewritten[i].Detail = "rewritten"
		rewritten[i].PrevHash = prev
		rewritten[i].Hash = rewritten[i].ChainHash(prev)
		prev = rewritten[i].Hash
	}
	if err := audit.Verify(rewritten); err != nil {
		t.Fatalf("the rewritten chain should be self-consistent: %v", err)
	}
	if _, err := audit.VerifyTrail(rewritten, cps, pub); err == nil {
		t.Fatal("a rewritten trail passed against the signed checkpoint")
	}
}

func TestFolder(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := &audit.Folder{Every: time.Minute, Now: func() time.Time { return now }}
	if n, ok := f.Let("anna/hr"); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := 0; i < 99; i++ {
		now = now.Add(100 * time.Millisecond)
		if _, ok := f.Let("anna/hr"); ok {
			t.Fatalf("event %d let through within the minute", i+2)
		}
	}
	if _, ok := f.Let("bert/hr"); !ok {
		t.Fatal("another key folded")
	}
	now = now.Add(time.Minute)
	if n, ok := f.Let("anna/hr"); !ok || n != 99 {
		t.Fatalf("after the minute: %d %v, want 99 folded", n, ok)
	}
}

// Many goroutines recording at once: every event is stored once, in one
// unbroken chain, and each Record returns only after its event is stored
// (group commit writes them in fewer transactions).
func TestRecorderGroupCommit(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var forwarded sync.Map
	r := &audit.Recorder{Store: db, Log: slog.New(slog.DiscardHandler), Forward: func(e sluis.Event) { forwarded.Store(e.Detail, e.ID) }}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			detail := fmt.Sprint("event ", i)
			r.Record(ctx, sluis.Event{Type: "test", Detail: detail})
			// Stored by the time Record returns, with its number.
			if id, ok := forwarded.Load(detail); !ok || id.(int64) == 0 {
				t.Errorf("%s: forwarded as %v", detail, id)
			}
		}()
	}
	wg.Wait()
	events, err := db.Events(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 200 {
		t.Fatalf("%d events stored", len(events))
	}
	if err := audit.Verify(events); err != nil {
		t.Fatalf("the chain: %v", err)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Time.Before(events[i-1].Time) {
			t.Fatalf("event %d is older than the one before it", events[i].ID)
		}
	}
}

// failingStore fails every write while full is set, as a full disk does.
type failingStore struct {
	sluis.AuditStore
	mu   sync.Mutex
	full bool
}

func (f *failingStore) AppendEvents(ctx context.Context, es []sluis.Event) ([]sluis.Event, error) {
	f.mu.Lock()
	full := f.full
	f.mu.Unlock()
	if full {
		return nil, errors.New("database or disk is full")
	}
	return f.AuditStore.AppendEvents(ctx, es)
}

// Events that cannot be stored are refused to the caller, counted, and
// recorded as one audit.lost event once the store takes events again; the
// chain stays intact and the gap is in it.
func TestLostEventsAreCountedAndRecorded(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := &failingStore{AuditStore: db}
	rec := &audit.Recorder{Store: st, Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	if err := rec.Record(ctx, sluis.Event{Type: sluis.EventLoginSuccess, User: "anna"}); err != nil {
		t.Fatal(err)
	}
	st.full = true
	for _, typ := range []string{sluis.EventLoginFailure, sluis.EventLoginFailure, "security.probe"} {
		if err := rec.Record(ctx, sluis.Event{Type: typ, User: "anna"}); err == nil || !strings.Contains(err.Error(), "disk is full") {
			t.Fatalf("a write to a full store: %v", err)
		}
	}
	// An event its caller requires is refused too, but not counted: the
	// caller does not act without it.
	if err := rec.Require(ctx, sluis.Event{Type: sluis.EventMFASuccess, User: "anna"}); !errors.Is(err, audit.ErrNotStored) {
		t.Fatalf("a required event on a full store: %v", err)
	}
	st.full = false
	if err := rec.Record(ctx, sluis.Event{Type: sluis.EventLogout, User: "anna"}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[1].Type != audit.EventLost || evs[2].Type != sluis.EventLogout ||
		!strings.Contains(evs[1].Detail, "3 events could not be stored") || !strings.Contains(evs[1].Detail, "2 login.failure, 1 security.probe") {
		t.Fatalf("trail after the store came back: %+v", evs)
	}
	if err := audit.Verify(evs); err != nil {
		t.Fatal(err)
	}
	// The count starts again.
	if err := rec.Record(ctx, sluis.Event{Type: sluis.EventLogout, User: "anna"}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := db.Events(ctx, time.Time{}); len(evs) != 4 {
		t.Fatalf("%d events after one more, want 4", len(evs))
	}
}

// Of several nodes, only the one that holds the lease signs: a
// checkpointer whose Held says no writes none, neither on its ticks nor
// at shutdown; once Held says yes, it signs.
func TestCheckpointerSignsOnlyWhileHeld(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	if _, err := db.AppendEvent(ctx, sluis.Event{Type: "x", Detail: "d"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	held := false
	cp := &audit.Checkpointer{Store: db, Key: key, Held: func() bool { mu.Lock(); defer mu.Unlock(); return held }}
	runFor := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		cp.Run(ctx, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	}
	runFor(100 * time.Millisecond)
	if cps, err := db.Checkpoints(ctx); err != nil || len(cps) != 0 {
		t.Fatalf("checkpoints without the lease: %d, %v", len(cps), err)
	}
	mu.Lock()
	held = true
	mu.Unlock()
	runFor(100 * time.Millisecond)
	if cps, err := db.Checkpoints(ctx); err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints with the lease: %d, %v", len(cps), err)
	}
}

func TestNamesErrorID(t *testing.T) {
	for _, tc := range []struct {
		detail, id string
		want       bool
	}{
		{"rule 1: not in group staff; error ID 0a1b2c3d4e5f", "0a1b2c3d4e5f", true},
		{"rule 1; error ID 0A1B2C3D4E5F", "0a1b2c3d4e5f", true},
		{"rule 1; error ID 0a1b2c3d4e5f; 3 more", "0a1b2c3d4e5f", true},
		{"rule 1; error ID 0a1b2c3d4e5f", "0a1b2c", false}, // a prefix is not the ID
		{"rule 1; error ID 0a1b2c3d4e5f", "", false},
		{"target \"/x\"", "0a1b2c3d4e5f", false},
	} {
		if got := audit.NamesErrorID(sluis.Event{Detail: tc.detail}, tc.id); got != tc.want {
			t.Errorf("NamesErrorID(%q, %q) = %v", tc.detail, tc.id, got)
		}
	}
}

// countingStore counts the batches written (each one transaction and one
// disk flush).
type countingStore struct {
	sluis.AuditStore
	mu      sync.Mutex
	batches [][]string // the details of each batch
}

func (c *countingStore) AppendEvents(ctx context.Context, es []sluis.Event) ([]sluis.Event, error) {
	c.mu.Lock()
	var b []string
	for _, e := range es {
		b = append(b, e.Detail)
	}
	c.batches = append(c.batches, b)
	c.mu.Unlock()
	return c.AuditStore.AppendEvents(ctx, es)
}

func (c *countingStore) written() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.batches...)
}

// An event of RecordSoon rides with the next Record's batch (one flush
// for both, in the order of the calls), is stored on its own when nothing
// comes along, and is stored by Flush; it is forwarded once stored.
func TestRecordSoon(t *testing.T) {
	for _, tc := range []struct {
		name string
		then func(ctx context.Context, r *audit.Recorder)
		want [][]string // batches
	}{
		{"a Record takes it along", func(ctx context.Context, r *audit.Recorder) {
			r.Record(ctx, sluis.Event{Type: "test", Detail: "open"})
		}, [][]string{{"close", "open"}}},
		{"Flush stores it", func(ctx context.Context, r *audit.Recorder) { r.Flush(ctx) }, [][]string{{"close"}}},
		{"stored on its own", func(ctx context.Context, r *audit.Recorder) {}, [][]string{{"close"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st := &countingStore{AuditStore: db}
			var forwarded sync.Map
			r := &audit.Recorder{Store: st, Log: slog.New(slog.DiscardHandler), Forward: func(e sluis.Event) { forwarded.Store(e.Detail, e.ID) }}
			r.RecordSoon(ctx, sluis.Event{Type: "test", Detail: "close"})
			tc.then(ctx, r)
			// Stored without anything else happening, within SoonWithin:
			// awaited, not timed.
			for deadline := time.Now().Add(5 * time.Second); len(st.written()) < len(tc.want) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			r.Flush(ctx)
			if got := st.written(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("batches %q, want %q", got, tc.want)
			}
			if id, ok := forwarded.Load("close"); !ok || id.(int64) == 0 {
				t.Errorf("the event of RecordSoon forwarded as %v", id)
			}
			events, err := db.Events(ctx, time.Time{})
			if err != nil || audit.Verify(events) != nil {
				t.Fatalf("the chain: %v %v", err, audit.Verify(events))
			}
		})
	}
}

// gatedStore names each batch as its write begins, and holds the write
// until the test lets it through.
type gatedStore struct {
	sluis.AuditStore
	entered chan []string // the details of a batch whose write began
	gate    chan struct{} // a write may go on
}

func (g *gatedStore) AppendEvents(ctx context.Context, es []sluis.Event) ([]sluis.Event, error) {
	var b []string
	for _, e := range es {
		b = append(b, e.Detail)
	}
	g.entered <- b
	<-g.gate
	return g.AuditStore.AppendEvents(ctx, es)
}

// An event of RecordSoon that comes while a batch is being written is
// not written in a flush of its own as soon as that batch is done (the
// next Record, a tunnel's open, would wait behind that flush): it rides
// with the next Record's batch. A Record that comes during a write is
// still written as soon as that write is done.
func TestRecordSoonDuringAWriteWaitsForTheNextRecord(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := &gatedStore{AuditStore: db, entered: make(chan []string, 8), gate: make(chan struct{}, 8)}
	// Long enough that only the next Record can take the event along.
	r := &audit.Recorder{Store: st, Log: slog.New(slog.DiscardHandler), SoonWithin: time.Hour}
	done := make(chan error, 2)
	batch := func(want ...string) {
		t.Helper()
		if got := <-st.entered; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("batch %q, want %q", got, want)
		}
		st.gate <- struct{}{}
	}
	go func() { done <- r.Require(ctx, sluis.Event{Type: "test", Detail: "open 1"}) }()
	got := <-st.entered // "open 1" is being written
	r.RecordSoon(ctx, sluis.Event{Type: "test", Detail: "close 1"})
	if fmt.Sprint(got) != "[open 1]" {
		t.Fatalf("batch %q", got)
	}
	st.gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- r.Require(ctx, sluis.Event{Type: "test", Detail: "open 2"}) }()
	batch("close 1", "open 2")
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	go func() { done <- r.Record(ctx, sluis.Event{Type: "test", Detail: "a"}) }()
	if got = <-st.entered; fmt.Sprint(got) != "[a]" {
		t.Fatalf("batch %q", got)
	}
	go func() { done <- r.Record(ctx, sluis.Event{Type: "test", Detail: "b"}) }()
	st.gate <- struct{}{}
	batch("b")
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	events, err := db.Events(ctx, time.Time{})
	if err != nil || audit.Verify(events) != nil || len(events) != 5 {
		t.Fatalf("the chain: %d events, %v %v", len(events), err, audit.Verify(events))
	}
}

// A trail handed over in batches is judged as the whole: the same
// event named for each kind of tampering, whatever the batch size.
func TestTrailVerifierInBatches(t *testing.T) {
	tamper := []struct {
		name   string
		tamper func([]sluis.Event) []sluis.Event
		want   int64 // 0: intact
	}{
		{"intact", func(e []sluis.Event) []sluis.Event { return e }, 0},
		{"detail altered", func(e []sluis.Event) []sluis.Event { e[2].Detail = "nothing to see"; return e }, 3},
		{"event removed", func(e []sluis.Event) []sluis.Event { return append(e[:1], e[2:]...) }, 3},
		{"events swapped", func(e []sluis.Event) []sluis.Event { e[1], e[2] = e[2], e[1]; return e }, 3},
		{"last event renumbered", func(e []sluis.Event) []sluis.Event { e[4].ID = 9; return e }, 9},
		{"a part from event 3", func(e []sluis.Event) []sluis.Event { return e[2:] }, 0},
	}
	for _, tt := range tamper {
		for _, batch := range []int{1, 2, 3, 100} {
			evs := tt.tamper(trail(t, 5))
			v := audit.NewTrailVerifier(nil, nil)
			var err error
			for i := 0; i < len(evs) && err == nil; i += batch {
				err = v.Add(evs[i:min(i+batch, len(evs))])
			}
			rep, ferr := v.Finish()
			var b *audit.Broken
			switch {
			case tt.want == 0 && (err != nil || ferr != nil || rep.Events != len(evs) || rep.AfterCheckpoint != len(evs)):
				t.Errorf("%s, batches of %d: %+v, %v, %v", tt.name, batch, rep, err, ferr)
			case tt.want != 0 && (!errors.As(err, &b) || b.ID != tt.want || !errors.Is(ferr, err)):
				t.Errorf("%s, batches of %d: %v (finish %v), want broken at event %d", tt.name, batch, err, ferr, tt.want)
			}
		}
	}
}

// sluis audit verify and export read the store in batches: verify gives
// the report VerifyTrail gives for the whole trail read at once, names
// an event altered in the database, and export writes what WriteExport
// writes, which verifies.
func TestVerifyAndExportStoreInBatches(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluis.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pub, key, _ := ed25519.GenerateKey(nil)
	cp := &audit.Checkpointer{Store: db, Key: key}
	t1 := time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)
	n := 2*audit.TrailBatch + 500 // three batches, the last part full
	for i := 0; i < n; i += 500 {
		var es []sluis.Event
		for j := i; j < i+500; j++ {
			typ := sluis.EventLoginSuccess
			if j == 1234 {
				typ = audit.EventLost
			}
			es = append(es, sluis.Event{Time: t1.Add(time.Duration(j) * time.Second), Type: typ, User: fmt.Sprint("u", j), Outcome: "success"})
		}
		if _, err := db.AppendEvents(ctx, es); err != nil {
			t.Fatal(err)
		}
		if i < 1500 { // checkpoints after 500, 1000 and 1500 events
			if err := cp.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	evs, _ := db.Events(ctx, time.Time{})
	cps, _ := db.Checkpoints(ctx)
	want, err := audit.VerifyTrail(evs, cps, pub)
	if err != nil || want.LastCheckpoint.EventID != 1500 || want.AfterCheckpoint != n-1500 || len(want.Gaps) != 1 {
		t.Fatalf("whole trail: %+v, %v", want, err)
	}
	got, err := audit.VerifyStore(ctx, db, pub)
	if err != nil || got.Events != n || got.LastCheckpoint.EventID != 1500 || got.AfterCheckpoint != want.AfterCheckpoint || len(got.Gaps) != 1 || got.Gaps[0].ID != 1235 {
		t.Fatalf("in batches: %+v, %v; want %+v", got, err, want)
	}
	if chain, err := audit.VerifyStore(ctx, db, nil); err != nil || chain.Events != n || chain.LastCheckpoint != nil || chain.AfterCheckpoint != n {
		t.Fatalf("chain alone: %+v, %v", chain, err)
	}

	for _, since := range []time.Time{{}, t1.Add(2200 * time.Second)} {
		var batched, whole strings.Builder
		if err := audit.ExportStore(ctx, &batched, db, since); err != nil {
			t.Fatal(err)
		}
		part, _ := db.Events(ctx, since)
		if err := audit.WriteExport(&whole, part, cps); err != nil {
			t.Fatal(err)
		}
		if batched.String() != whole.String() {
			t.Fatalf("since %v: the export in batches differs from the whole (%d and %d bytes)", since, batched.Len(), whole.Len())
		}
		revs, rcps, err := audit.ReadExport(strings.NewReader(batched.String()))
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := audit.VerifyTrail(revs, rcps, pub); err != nil || rep.Events != len(part) {
			t.Fatalf("since %v: export does not verify: %+v, %v", since, rep, err)
		}
	}

	// An event in the second batch altered in the database.
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE audit_events SET user = 'mallory' WHERE id = 1300`); err != nil {
		t.Fatal(err)
	}
	_, err = audit.VerifyStore(ctx, db, pub)
	var b *audit.Broken
	if !errors.As(err, &b) || b.ID != 1300 {
		t.Fatalf("altered event 1300: %v", err)
	}
}
