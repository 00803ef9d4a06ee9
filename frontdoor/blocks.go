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
	rev    int64
	blocks []blockEntry
}

type blockEntry struct {
	prefix netip.Prefix
	until  time.Time
}

// Blocked reports whether ip falls in a block in force.
func (b *BlockList) Blocked(ctx context.Context, ip string) (bool, error) {
	rev, err := b.Revision(ctx)
	if err != nil {
		return false, err
	}
	st := b.state.Load()
	if st == nil || st.rev != rev {
		b.mu.Lock()
		if st = b.state.Load(); st == nil || st.rev != rev {
			blocks, err := b.Load(ctx)
			if err != nil {
				b.mu.Unlock()
				return false, err
			}
			st = &blockState{rev: rev}
			for _, bl := range blocks {
				if p, err := ParseCIDR(bl.CIDR); err == nil {
					st.blocks = append(st.blocks, blockEntry{p, bl.Until})
				}
			}
			b.state.Store(st)
		}
		b.mu.Unlock()
	}
	if len(st.blocks) == 0 {
		return false, nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false, nil
	}
	addr = addr.Unmap()
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	for _, e := range st.blocks {
		if e.prefix.Contains(addr) && (e.until.IsZero() || now.Before(e.until)) {
			return true, nil
		}
	}
	return false, nil
}
