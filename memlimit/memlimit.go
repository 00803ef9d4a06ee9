// Package memlimit sets the Go runtime's soft memory limit of the gateway,
// so that its GOGC=400 (collect less often: a proxy allocates much and
// keeps little) does not multiply the memory of a login burst. A burst
// allocates argon2id's memory (19 MiB a password check) several times a
// second; with GOGC=400 the heap was let grow to five times what it held
// live before a collection (bench/gateway, 1,000 logins: 40-100 MiB live,
// heap goals up to 510 MB, 420-510 MiB resident; 250 MiB with Follow).
//
// Two ways: a fixed limit (the configuration's memory_limit), or, by
// default, a limit that follows what the process holds live: after each
// collection it is set to the live heap plus the runtime's other memory
// plus a headroom of max(Headroom, live heap). The heap then grows to at
// most min(5 × live, live + max(Headroom, live)) between collections: as
// GOGC=400 for a small heap, as GOGC=100 at most for a large one, and
// never more than Headroom above what is live for one in between.
//
// A soft limit never fails an allocation: past it the runtime collects
// more often (at most half the CPU goes to it); GOMEMLIMIT, when set,
// wins over both (the operator's word), as GOGC does over 400.
package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// DefaultHeadroom is Follow's headroom when given 0: room for a few
// argon2id checks (19 MiB each) between collections, on top of what a
// gateway with 10,000 connections holds live.
const DefaultHeadroom = 128 << 20

// Fixed sets the soft memory limit to bytes and returns the limit before.
func Fixed(bytes int64) int64 { return debug.SetMemoryLimit(bytes) }

// Follow keeps the soft memory limit at what the process holds live (heap
// and the runtime's other memory) plus max(headroom, live heap), set anew
// after each collection. headroom 0 means DefaultHeadroom. stop ends it
// and restores the limit from before.
//
// The limit is the process's: with several Follows at once (tests that run
// several gateways in one process), the limit from before the first is
// restored when the last stops, whatever the order they stop in.
func Follow(headroom int64) (stop func()) {
	if headroom <= 0 {
		headroom = DefaultHeadroom
	}
	following.Lock()
	if following.n == 0 {
		following.before = debug.SetMemoryLimit(-1)
	}
	following.n++
	following.Unlock()
	f := &follower{headroom: headroom}
	f.samples = make([]metrics.Sample, len(sampleNames))
	for i, n := range sampleNames {
		f.samples[i].Name = n
	}
	f.adjust()
	f.arm()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.stopped.CompareAndSwap(false, true) {
			return
		}
		following.Lock()
		defer following.Unlock()
		if following.n--; following.n == 0 {
			debug.SetMemoryLimit(following.before)
		}
	}
}

// following counts the Follows in force, and keeps the limit from before
// the first.
var following struct {
	sync.Mutex
	n      int
	before int64
}

var sampleNames = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/unused:bytes",
}

type follower struct {
	headroom int64
	mu       sync.Mutex // held while the limit is set, so that stop's restoring is last
	stopped  atomic.Bool
	samples  []metrics.Sample // used by adjust only (the finalizer goroutine, or Follow before arm)
}

// sentinel is garbage from birth: its finalizer runs after the next
// collection. It holds a pointer so that it is not a tiny allocation
// (whose finalizer may never run).
type sentinel struct{ f *follower }

func (f *follower) arm() {
	runtime.SetFinalizer(&sentinel{f}, func(s *sentinel) {
		if s.f.stopped.Load() {
			return
		}
		s.f.adjust()
		s.f.arm()
	})
}

func (f *follower) adjust() {
	metrics.Read(f.samples)
	v := func(i int) int64 {
		if f.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(min(f.samples[i].Value.Uint64(), math.MaxInt64/4))
	}
	live := v(0)
	// The runtime's memory that is not heap objects: stacks, metadata,
	// buffers. The limit counts it too.
	other := max(0, v(1)-v(2)-v(3)-v(4)-v(5))
	limit := Limit(live, other, f.headroom)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped.Load() {
		debug.SetMemoryLimit(limit)
	}
}

// Limit is the soft limit Follow sets for a live heap of live bytes, the
// runtime's other memory other, and headroom.
func Limit(live, other, headroom int64) int64 {
	return live + other + max(headroom, live)
}
