package authn

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func TestHashAndVerify(t *testing.T) {
	h, err := Hash("correct horse", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash format: %s", h)
	}
	h2, _ := Hash("correct horse", DefaultParams)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	tests := []struct {
		pw, hash string
		want     bool
	}{
		{"correct horse", h, true},
		{"correct horsE", h, false},
		{"", h, false},
		{"correct horse", "", false},
		{"correct horse", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", false},
		{"correct horse", strings.Replace(h, "t=2", "t=99", 1), false},
		{strings.Repeat("x", MaxPasswordLen+1), h, false},
	}
	for _, tt := range tests {
		if got, err := Verify(tt.pw, tt.hash); got != tt.want || err != nil {
			t.Errorf("Verify(%.20q, %.30q) = %v, want %v", tt.pw, tt.hash, got, tt.want)
		}
	}
}

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 3, Base: time.Second, Max: 8 * time.Second, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if w := check(th, "anna"); w != 0 {
			t.Fatalf("attempt %d throttled by %v", i, w)
		}
		th.Fail(bg, "anna")
	}
	if w := check(th, "anna"); w != 0 {
		t.Fatalf("free attempts used, but locked already: %v", w)
	}
	wants := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i, want := range wants {
		th.Fail(bg, "anna")
		if w := check(th, "anna"); w != want {
			t.Fatalf("failure %d: lock %v, want %v", i+4, w, want)
		}
		now = now.Add(want) // wait it out
		if w := check(th, "anna"); w != 0 {
			t.Fatalf("still locked after waiting: %v", w)
		}
	}
	if check(th, "bert") != 0 {
		t.Fatal("another key is affected")
	}
	th.Reset(bg, "anna")
	th.Fail(bg, "anna")
	if check(th, "anna") != 0 {
		t.Fatal("reset did not forget failures")
	}
	// Old failures are forgotten.
	th2 := &Throttle{Free: 1, Forget: time.Minute, Now: func() time.Time { return now }}
	th2.Fail(bg, "x")
	now = now.Add(2 * time.Minute)
	th2.Fail(bg, "x")
	if check(th2, "x") != 0 {
		t.Fatal("failure from long ago still counted")
	}
}

func TestThrottleBoundsMemory(t *testing.T) {
	th := &Throttle{MaxKeys: 10}
	for i := 0; i < 100; i++ {
		th.Fail(bg, strings.Repeat("k", i+1))
	}
	if len(th.keys) > 10 {
		t.Fatalf("%d keys tracked, limit 10", len(th.keys))
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := Hash("correct horse", DefaultParams)
	for b.Loop() {
		if ok, _ := Verify("correct horse", h); !ok {
			b.Fatal("no match")
		}
	}
}

func TestBeginCountsBeforeTheCheck(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 2, Base: time.Second, Max: time.Minute, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if w := begin(th, "k"); w != 0 {
			t.Fatalf("attempt %d refused: %v", i, w)
		}
	}
	if w := begin(th, "k"); w != time.Second {
		t.Fatalf("fourth attempt: wait %v, want 1s", w)
	}
	// The third attempt turned out right: taking it back lifts the lock.
	th.Forgive(bg, "k")
	if w := begin(th, "k"); w != 0 {
		t.Fatalf("after Forgive: wait %v", w)
	}
}

// Filling the table with junk keys does not free a key under attack.
func TestFullTableKeepsTheKeyUnderAttack(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 1, Base: time.Minute, Max: time.Hour, MaxKeys: 100, Now: func() time.Time { return now }}
	for i := 0; i < 5000; i++ {
		now = now.Add(time.Millisecond)
		begin(th, "target")
		th.Fail(bg, fmt.Sprintf("junk%d", i))
		if i > 2 && check(th, "target") == 0 {
			t.Fatalf("target unlocked after %d junk keys", i)
		}
	}
	if len(th.keys) > 100 {
		t.Fatalf("%d keys, limit 100", len(th.keys))
	}
}

// A check whose client goes away leaves the queue: ErrBusy, with the
// context's error, and no place kept.
func TestVerifyGivesUpWhenTheClientGoes(t *testing.T) {
	h, _ := Hash("correct horse", DefaultParams)
	n := slots.slots
	for range n {
		slots.acquire(bg, LaneNew, time.Time{}, 0)
	}
	defer func() {
		for range n {
			slots.release(0)
		}
	}()
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error)
	go func() {
		_, err := VerifyContext(ctx, LaneKnown, "correct horse", h)
		done <- err
	}()
	for {
		slots.mu.Lock()
		w := len(slots.waiting[LaneKnown])
		slots.mu.Unlock()
		if w == 1 {
			break
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want ErrBusy and context.Canceled", err)
	}
	slots.mu.Lock()
	defer slots.mu.Unlock()
	if w := len(slots.waiting[LaneKnown]); w != 0 {
		t.Fatalf("%d still waiting", w)
	}
}

// A check that would wait longer than it may, by the queue's pace, is
// told busy at once; the pace follows the checks' times; a known browser
// counts only the known browsers ahead of it.
func TestSlotQueueRefusesWhatItCannotServeInTime(t *testing.T) {
	q := newSlotQueue(2)
	q.acquire(bg, LaneNew, time.Time{}, 0)
	q.acquire(bg, LaneNew, time.Time{}, 0)
	q.release(10 * time.Minute) // pace 10 min
	q.acquire(bg, LaneNew, time.Time{}, 0)
	const wait = 30 * time.Minute
	// With 2 slots at 10 min a check, the checks waiting at 0..3 ahead
	// expect 10, 10, 20, 20 min; 4 and 5 ahead 30 min (still in); 6
	// ahead, 40 min: refused. Each that is let in waits (a refusal
	// would return at once: the test would see it in served).
	served := make(chan bool, 16)
	for i := range 6 {
		go func() { served <- q.acquire(bg, LaneNew, time.Time{}, wait) }()
		for {
			q.mu.Lock()
			w := len(q.waiting[LaneNew])
			q.mu.Unlock()
			if w == i+1 {
				break
			}
			select {
			case ok := <-served:
				t.Fatalf("check %d answered %v at once", i, ok)
			default:
			}
			runtime.Gosched()
		}
	}
	if q.acquire(bg, LaneNew, time.Time{}, wait) {
		t.Fatal("a check 40 min away by the pace got a slot")
	}
	// A known browser has nobody ahead of it in its lane.
	go func() { served <- q.acquire(bg, LaneKnown, time.Time{}, wait) }()
	for {
		q.mu.Lock()
		w := len(q.waiting[LaneKnown])
		q.mu.Unlock()
		if w == 1 {
			break
		}
		select {
		case <-served:
			t.Fatal("a known browser was answered at once")
		default:
		}
		runtime.Gosched()
	}
	// The pace follows: checks of 1 min bring it down (1/8 each).
	for range 2 {
		q.release(time.Minute)
		if !<-served {
			t.Fatal("a waiter was refused")
		}
	}
	q.mu.Lock()
	pace := q.pace
	q.mu.Unlock()
	// 10 min, then 10 - 9/8 = 8.875, then 8.875 - 7.875/8 = 7.89.
	if pace < 7*time.Minute || pace > 9*time.Minute {
		t.Fatalf("pace %v after two 1-min checks, want about 7.9 min", pace)
	}
	for range 5 {
		q.release(0)
		<-served
	}
}

// Password checks that wait for a slot are served in order of arrival,
// a known browser's before the rest; a lane that is full answers busy at
// once; a waiter that gives up leaves the queue.
func TestSlotQueueIsFairAndBounded(t *testing.T) {
	q := newSlotQueue(1)
	if !q.acquire(bg, LaneNew, time.Time{}, time.Second) {
		t.Fatal("a free slot was not taken")
	}
	waiting := func(lane Lane, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; {
			q.mu.Lock()
			got := len(q.waiting[lane])
			q.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lane %d: %d waiting, want %d", lane, got, n)
			}
			runtime.Gosched()
		}
	}
	served := make(chan string, 8)
	enqueue := func(name string, lane Lane) {
		go func() {
			if q.acquire(bg, lane, time.Time{}, time.Minute) {
				served <- name
			} else {
				served <- name + " busy"
			}
		}()
	}
	// Arrival order: new1, new2, known1, new3, known2.
	enqueue("new1", LaneNew)
	waiting(LaneNew, 1)
	enqueue("new2", LaneNew)
	waiting(LaneNew, 2)
	enqueue("known1", LaneKnown)
	waiting(LaneKnown, 1)
	enqueue("new3", LaneNew)
	waiting(LaneNew, 3)
	enqueue("known2", LaneKnown)
	waiting(LaneKnown, 2)
	var order []string
	for range 5 {
		q.release(0)
		order = append(order, <-served)
	}
	if want := "[known1 known2 new1 new2 new3]"; fmt.Sprint(order) != want {
		t.Fatalf("served %v, want %v", order, want)
	}

	// A full lane: the next check is refused at once; the other lane
	// still queues.
	for range MaxWaiting {
		go q.acquire(bg, LaneNew, time.Time{}, time.Minute)
	}
	waiting(LaneNew, MaxWaiting)
	start := time.Now()
	if q.acquire(bg, LaneNew, time.Time{}, time.Minute) {
		t.Fatal("a check past MaxWaiting got a slot")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refused only after %v", d)
	}
	enqueue("known3", LaneKnown)
	waiting(LaneKnown, 1)
	q.release(0)
	if got := <-served; got != "known3" {
		t.Fatalf("served %s, want known3", got)
	}
	for range MaxWaiting {
		q.release(0)
	}
	waiting(LaneNew, 0)

	// A waiter that gives up leaves its place; the slot goes to the next.
	if q.acquire(bg, LaneNew, time.Time{}, 10*time.Millisecond) {
		t.Fatal("got a slot none was free for")
	}
	waiting(LaneNew, 0)
	q.release(0)
	if !q.acquire(bg, LaneNew, time.Time{}, time.Second) {
		t.Fatal("the freed slot was not taken")
	}
}

var bg = context.Background()

func check(th *Throttle, key string) time.Duration {
	w, err := th.Check(bg, key)
	if err != nil {
		panic(err)
	}
	return w
}

func begin(th *Throttle, key string) time.Duration {
	w, err := th.Begin(bg, key)
	if err != nil {
		panic(err)
	}
	return w
}

// A throttle on a store counts exactly as one in memory: the same script
// of attempts, failures, forgiveness and resets gives the same waits.
func TestStoredThrottleMatchesMemory(t *testing.T) {
	db, err := sqlite.Open(bg, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	mem := &Throttle{Free: 3, Base: time.Second, Max: 8 * time.Second, Forget: time.Minute, Now: clock}
	stored := &Throttle{Free: 3, Base: time.Second, Max: 8 * time.Second, Forget: time.Minute, Now: clock, Store: db, Name: "user"}
	script := []struct {
		op, key string
		step    time.Duration
	}{}
	for i := 0; i < 8; i++ {
		script = append(script, struct {
			op, key string
			step    time.Duration
		}{"begin", "anna", 300 * time.Millisecond})
	}
	for _, s := range []struct {
		op, key string
		step    time.Duration
	}{
		{"forgive", "anna", 0}, {"check", "anna", 0}, {"begin", "anna", 10 * time.Second}, {"begin", "anna", 0},
		{"fail", "bert", 0}, {"fail", "bert", 0}, {"fail", "bert", 0}, {"fail", "bert", 0}, {"check", "bert", 0},
		{"reset", "bert", 0}, {"check", "bert", 0}, {"begin", "anna", 2 * time.Minute}, {"check", "anna", 0},
	} {
		script = append(script, s)
	}
	for i, s := range script {
		now = now.Add(s.step)
		var waits [2]time.Duration
		for j, th := range []*Throttle{mem, stored} {
			var err error
			switch s.op {
			case "begin":
				waits[j], err = th.Begin(bg, s.key)
			case "check":
				waits[j], err = th.Check(bg, s.key)
			case "fail":
				th.Fail(bg, s.key)
			case "forgive":
				th.Forgive(bg, s.key)
			case "reset":
				th.Reset(bg, s.key)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if waits[0] != waits[1] {
			t.Fatalf("step %d (%s %s): memory says wait %v, the store %v", i, s.op, s.key, waits[0], waits[1])
		}
	}
	if w, _ := mem.Check(bg, "anna"); w != 0 {
		t.Fatalf("anna still locked after the forget time: %v", w)
	}
}

type brokenCounters struct{ sluis.CounterStore }

var errDown = errors.New("connection refused")

func (brokenCounters) UpdateCounter(context.Context, string, time.Time, func(*sluis.Counter) bool) (sluis.Counter, error) {
	return sluis.Counter{}, errDown
}

func (brokenCounters) ReadCounter(context.Context, string, time.Time) (sluis.Counter, error) {
	return sluis.Counter{}, errDown
}

// A throttle whose store cannot answer refuses: its error says so.
func TestStoredThrottleFailsClosed(t *testing.T) {
	th := &Throttle{Store: brokenCounters{}, Name: "user"}
	if _, err := th.Begin(bg, "anna"); !errors.Is(err, ErrThrottleUnavailable) || !errors.Is(err, errDown) {
		t.Fatalf("Begin: %v", err)
	}
	if _, err := th.Check(bg, "anna"); !errors.Is(err, ErrThrottleUnavailable) {
		t.Fatalf("Check: %v", err)
	}
}

// A login told busy that asks again waits behind only those that arrived
// before its first try, and is not refused by the pace, which refuses a
// newcomer.
func TestSlotQueueKeepsTheFirstArrivalsPlace(t *testing.T) {
	q := newSlotQueue(1)
	q.acquire(bg, LaneNew, time.Time{}, 0)
	q.release(time.Minute) // pace 1 min
	q.acquire(bg, LaneNew, time.Time{}, 0)
	t0 := time.Now()
	served := make(chan string, 8)
	enqueue := func(name string, arrived time.Time) {
		go func() {
			if q.acquire(bg, LaneNew, arrived, 3*time.Minute) {
				served <- name
			} else {
				served <- name + " busy"
			}
		}()
	}
	waiting := func(n int) {
		t.Helper()
		for {
			q.mu.Lock()
			w := len(q.waiting[LaneNew])
			q.mu.Unlock()
			if w == n {
				return
			}
			select {
			case s := <-served:
				t.Fatalf("%s answered at once", s)
			default:
			}
			runtime.Gosched()
		}
	}
	enqueue("a", t0.Add(-10*time.Second))
	waiting(1)
	enqueue("b", t0.Add(-9*time.Second))
	waiting(2)
	enqueue("c", t0.Add(-8*time.Second))
	waiting(3)
	// 3 ahead at 1 min: a newcomer is refused at once.
	if q.acquire(bg, LaneNew, time.Time{}, 3*time.Minute) {
		t.Fatal("a newcomer 4 min away got a slot")
	}
	// One that first came before b keeps its place; one that came after
	// c, 4 ahead, waits too: it holds a place.
	enqueue("early", t0.Add(-9500*time.Millisecond))
	waiting(4)
	enqueue("late", t0.Add(-time.Second))
	waiting(5)
	var order []string
	for range 5 {
		q.release(0)
		order = append(order, <-served)
	}
	if want := "[a early b c late]"; fmt.Sprint(order) != want {
		t.Fatalf("served %v, want %v", order, want)
	}
}

func TestPlaces(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := &Places{After: time.Minute, Max: 2, Now: func() time.Time { return now }}
	if got := p.Arrived("anna@192.0.2.1"); !got.IsZero() {
		t.Fatalf("no place: %v, want none", got)
	}
	first := now
	p.Busy("anna@192.0.2.1", first)
	now = now.Add(10 * time.Second)
	p.Busy("anna@192.0.2.1", now) // told busy again: the first place stays
	if got := p.Arrived("anna@192.0.2.1"); !got.Equal(first) {
		t.Fatalf("place %v, want the first arrival %v", got, first)
	}
	if got := p.Arrived("anna@198.51.100.9"); !got.IsZero() {
		t.Fatal("another source took anna's place")
	}
	// Full (Max 2): a third is not remembered until one lapses.
	p.Busy("bob@192.0.2.2", now)
	p.Busy("carol@192.0.2.3", now)
	if got := p.Arrived("carol@192.0.2.3"); !got.IsZero() || len(p.places) != 2 {
		t.Fatalf("a full table took a place (%d)", len(p.places))
	}
	now = first.Add(time.Minute)
	if got := p.Arrived("anna@192.0.2.1"); !got.IsZero() {
		t.Fatal("a lapsed place was kept")
	}
	p.Busy("carol@192.0.2.3", now.Add(-time.Second))
	if got := p.Arrived("carol@192.0.2.3"); !got.Equal(now.Add(-time.Second)) {
		t.Fatal("the lapsed place was not swept for a new one")
	}
	p.Done("carol@192.0.2.3")
	if got := p.Arrived("carol@192.0.2.3"); !got.IsZero() {
		t.Fatal("Done kept the place")
	}
}
