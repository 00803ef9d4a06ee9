package frontdoor

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// Two detectors (two nodes) on one store count a source's probes
// together: BlockAfter in all blocks it, however they were spread. When
// the store cannot count, each node's own count still blocks.
func TestDetectorsShareCounts(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mu sync.Mutex
	var blocks []sluis.Block
	persist := func(_ context.Context, b sluis.Block) error {
		mu.Lock()
		defer mu.Unlock()
		blocks = append(blocks, b)
		return nil
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	nodes := []*Detector{
		{BlockAfter: 4, Persist: persist, Counters: db, Now: clock},
		{BlockAfter: 4, Persist: persist, Counters: db, Now: clock},
	}
	for i := range 3 {
		nodes[i%2].ProbeConn(ctx, "198.51.100.7", "test", "")
		now = now.Add(time.Second)
	}
	if len(blocks) != 0 {
		t.Fatalf("blocked after 3 probes: %+v", blocks)
	}
	nodes[1].ProbeConn(ctx, "198.51.100.7", "test", "")
	if len(blocks) != 1 || blocks[0].CIDR != "198.51.100.7/32" {
		t.Fatalf("after 4 probes over two nodes: %+v", blocks)
	}
	// The count starts again; a window that ran out starts it too.
	for range 3 {
		nodes[0].ProbeConn(ctx, "198.51.100.7", "test", "")
	}
	now = now.Add(2 * time.Minute)
	nodes[1].ProbeConn(ctx, "198.51.100.7", "test", "")
	if len(blocks) != 1 {
		t.Fatalf("blocked across an expired window: %+v", blocks)
	}

	// A store that cannot count: each node's own count decides.
	blocks = nil
	broken := &Detector{BlockAfter: 4, Persist: persist, Counters: failingCounters{}, Now: clock}
	for range 4 {
		broken.ProbeConn(ctx, "203.0.113.9", "test", "")
	}
	if len(blocks) != 1 || blocks[0].CIDR != "203.0.113.9/32" {
		t.Fatalf("with the store down, after 4 probes on one node: %+v", blocks)
	}
}

type failingCounters struct{ sluis.CounterStore }

func (failingCounters) UpdateCounter(context.Context, string, time.Time, func(*sluis.Counter) bool) (sluis.Counter, error) {
	return sluis.Counter{}, errors.New("connection refused")
}
