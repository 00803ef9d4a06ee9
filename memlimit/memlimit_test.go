package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestLimit(t *testing.T) {
	for _, c := range []struct{ live, other, headroom, want int64 }{
		{60 << 20, 10 << 20, 128 << 20, 198 << 20},  // small heap: the headroom
		{400 << 20, 20 << 20, 128 << 20, 820 << 20}, // large heap: as GOGC=100
		{0, 0, 128 << 20, 128 << 20},
	} {
		if got := Limit(c.live, c.other, c.headroom); got != c.want {
			t.Errorf("Limit(%d, %d, %d) = %d, want %d", c.live, c.other, c.headroom, got, c.want)
		}
	}
}

// The limit follows the live heap from one collection to the next, and
// stop restores the limit from before.
func TestFollowTracksLiveHeap(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	const headroom = 64 << 20
	stop := Follow(headroom)
	runtime.GC()
	small := waitLimit(t, func(l int64) bool { return l >= headroom && l < math.MaxInt64 })
	// 96 MiB more held live: the next collections raise the limit by
	// at least that and the live heap's growth of the headroom
	// (max(headroom, live)).
	keep := make([][]byte, 96)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
		keep[i][0] = 1
	}
	waitLimit(t, func(l int64) bool { return l >= small+96<<20 })
	runtime.KeepAlive(keep)
	keep = nil
	stop()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("after stop the limit is %d, want %d as before", got, before)
	}
	// And it stays so: a finalizer armed before stop does not set it again.
	runtime.GC()
	runtime.GC()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("after stop and a collection the limit is %d, want %d", got, before)
	}
}

// waitLimit collects until the soft limit satisfies ok (the follower sets
// it from a finalizer, after a collection), and returns it.
func waitLimit(t *testing.T, ok func(int64) bool) int64 {
	t.Helper()
	var l int64
	for range 1000 {
		runtime.GC()
		runtime.Gosched()
		if l = debug.SetMemoryLimit(-1); ok(l) {
			return l
		}
	}
	t.Fatalf("the limit stayed %d", l)
	return 0
}

// Several Follows at once, stopped in the order they began (not the
// reverse): the limit from before the first comes back when the last
// stops, not one that a follower had set.
func TestFollowsStoppedInAnyOrder(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	a := Follow(64 << 20)
	b := Follow(64 << 20)
	a()
	if l := debug.SetMemoryLimit(-1); l == before {
		t.Fatal("the limit was restored while a Follow is still in force")
	}
	b()
	if l := debug.SetMemoryLimit(-1); l != before {
		t.Fatalf("limit %d after both stopped, want %d from before", l, before)
	}
	b() // stopping twice changes nothing
	if l := debug.SetMemoryLimit(-1); l != before {
		t.Fatalf("limit %d after a second stop, want %d", l, before)
	}
}
