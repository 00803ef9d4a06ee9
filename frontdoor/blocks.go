package frontdoor

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
)

// ParseCIDR reads an address range, or a single address, in canonical form
// (198.51.100.7 becomes 198.51.100.7/32; 198.51.100.7/24 becomes
// 198.51.100.0/24).
func ParseCIDR(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
}

// SourcePrefix is the range a source is counted and blocked by: its
// address for IPv4, its /64 for IPv6 (one client usually has a whole /64,
// and would otherwise get round a block by changing its address).
func SourcePrefix(ip string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32), nil
	}
	return a.Prefix(64)
}

// MaxAutoBlocks bounds the automatic blocks in force, and with them the
// store and the list every request is checked against: past it, probes
// are still recorded and refused, but block nobody more (and the trail
// says so), until blocks expire.
const MaxAutoBlocks = 10000

// BlockList holds the stored blocks (the operator's and the automatic
// ones), read again from the store only when its revision changes.
type BlockList struct {
	Load     func(ctx context.Context) ([]sluis.Block, error)
	Revision func(ctx context.Context) (int64, error)
	Now      func() time.Time

	mu    sync.Mutex // serialises reloads
	state atomic.Pointer[blockState]
}

type blockState struct {
	rev int64
	// Single addresses (IPv4 /32) and IPv6 /64s, the automatic blocks'
	// sizes, are found by key; other ranges are few and checked in turn.
	exact  map[netip.Prefix]time.Time
	ranges []blockEntry
	auto   []time.Time // the ends of the automatic blocks
}

type blockEntry struct {
	prefix netip.Prefix
	until  time.Time
}

func (st *blockState) add(b sluis.Block) {
	p, err := ParseCIDR(b.CIDR)
	if err != nil {
		return
	}
	if b.Auto {
		st.auto = append(st.auto, b.Until)
	}
	if p.Addr().Is4() && p.Bits() == 32 || p.Addr().Is6() && p.Bits() == 64 {
		if old, ok := st.exact[p]; !ok || inForceLonger(b.Until, old) {
			st.exact[p] = b.Until
		}
		return
	}
	st.ranges = append(st.ranges, blockEntry{p, b.Until})
}

// inForceLonger reports whether a block until a outlasts one until b
// (zero: until removed).
func inForceLonger(a, b time.Time) bool {
	return a.IsZero() || !b.IsZero() && a.After(b)
}

func (b *BlockList) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// load returns the list for the store's current revision.
func (b *BlockList) load(ctx context.Context) (*blockState, error) {
	rev, err := b.Revision(ctx)
	if err != nil {
		// A store that cannot be read keeps the blocks last read in
		// force: a stale list refuses more than none would.
		if st := b.state.Load(); st != nil {
			return st, nil
		}
		return nil, err
	}
	st := b.state.Load()
	if st != nil && st.rev == rev {
		return st, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if st = b.state.Load(); st != nil && st.rev == rev {
		return st, nil
	}
	blocks, err := b.Load(ctx)
	if err != nil {
		return nil, err
	}
	st = &blockState{rev: rev, exact: map[netip.Prefix]time.Time{}}
	for _, bl := range blocks {
		st.add(bl)
	}
	b.state.Store(st)
	return st, nil
}

// AutoInForce returns how many automatic blocks are in force.
func (b *BlockList) AutoInForce(ctx context.Context) (int, error) {
	st, err := b.load(ctx)
	if err != nil {
		return 0, err
	}
	now, n := b.now(), 0
	for _, until := range st.auto {
		if until.IsZero() || now.Before(until) {
			n++
		}
	}
	return n, nil
}

// Blocked reports whether ip falls in a block in force.
func (b *BlockList) Blocked(ctx context.Context, ip string) (bool, error) {
	st, err := b.load(ctx)
	if err != nil {
		return false, err
	}
	if len(st.exact) == 0 && len(st.ranges) == 0 {
		return false, nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false, nil
	}
	addr = addr.Unmap()
	now := b.now()
	inForce := func(until time.Time) bool { return until.IsZero() || now.Before(until) }
	key := netip.PrefixFrom(addr, 32)
	if addr.Is6() {
		key, _ = addr.Prefix(64)
	}
	if until, ok := st.exact[key]; ok && inForce(until) {
		return true, nil
	}
	for _, e := range st.ranges {
		if e.prefix.Contains(addr) && inForce(e.until) {
			return true, nil
		}
	}
	return false, nil
}
