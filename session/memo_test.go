package session

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemo(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var a Active
	made := 0
	mk := func(v string, life time.Duration, at time.Time) func() (string, time.Time, error) {
		return func() (string, time.Time, error) { made++; return v, at.Add(life), nil }
	}
	steps := []struct {
		name      string
		key, make string
		at        time.Time
		want      string
		wantMade  int
	}{
		{"first use makes", "wiki", "w1", t0, "w1", 1},
		{"in force: kept", "wiki", "w2", t0.Add(59 * time.Second), "w1", 1},
		{"another key makes its own", "jupyter", "j1", t0, "j1", 2},
		{"the first key is still kept", "wiki", "w3", t0.Add(30 * time.Second), "w1", 2},
		{"at expiry: made again", "wiki", "w4", t0.Add(time.Minute), "w4", 3},
		{"the other key is kept across", "jupyter", "j2", t0.Add(30 * time.Second), "j1", 3},
	}
	for _, s := range steps {
		got, err := a.Memo(s.key, s.at, mk(s.make, time.Minute, s.at))
		if err != nil || got != s.want || made != s.wantMade {
			t.Fatalf("%s: got %q, %v, made %d; want %q, made %d", s.name, got, err, made, s.want, s.wantMade)
		}
	}
	boom := errors.New("cannot sign")
	if _, err := a.Memo("rdp", t0, func() (string, time.Time, error) { return "", time.Time{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("a failed make: %v, want its error", err)
	}
	if got, _ := a.Memo("rdp", t0, mk("r1", time.Minute, t0)); got != "r1" {
		t.Fatalf("after a failed make: %q, want a new value", got)
	}
}

// TestMemoConcurrent: many requests of one session at once get one value,
// made once.
func TestMemoConcurrent(t *testing.T) {
	var a Active
	var made atomic.Int32
	now := time.Now()
	var wg sync.WaitGroup
	got := make([]string, 64)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = a.Memo("wiki", now, func() (string, time.Time, error) {
				made.Add(1)
				return "tok", now.Add(time.Minute), nil
			})
		}()
	}
	wg.Wait()
	if made.Load() != 1 {
		t.Fatalf("made %d times, want once", made.Load())
	}
	for i, g := range got {
		if g != "tok" {
			t.Fatalf("request %d got %q", i, g)
		}
	}
}
