package frontdoor

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// A detector that replaces another (a reload with new probe limits) goes
// on from its counts: a source halfway to its block is blocked by the new
// limit; a probe the old detector still counts after the reload (a request
// that began before it) is not lost; and the probes folded into the last
// event are written once, whichever detector flushes.
func TestDetectorInherit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	rec, store := &recorder{}, &memBlocks{}
	old := &Detector{BlockAfter: 10, Record: rec.record, Persist: store.add, Now: clock}
	probe := func(d *Detector) {
		r := httptest.NewRequest("GET", "https://login.test/vpns/x", nil)
		r.RemoteAddr = "198.51.100.9:1234"
		d.Probe(r, "citrix-cve-2019-19781")
	}
	for range 4 {
		probe(old)
	}
	d := &Detector{BlockAfter: 7, Record: rec.record, Persist: store.add, Now: clock}
	d.Inherit(old)
	probe(d)
	probe(old) // a request that began before the reload
	if _, ok := store.blocks["198.51.100.9/32"]; ok {
		t.Fatal("blocked after 6 probes with a limit of 7")
	}
	probe(d)
	if _, ok := store.blocks["198.51.100.9/32"]; !ok {
		t.Fatal("not blocked after 5 probes before the reload (one of them counted late) and 2 after, with a limit of 7")
	}
	now = now.Add(time.Minute)
	before := rec.count(EventProbe)
	d.Flush(context.Background())
	old.Flush(context.Background())
	d.Flush(context.Background())
	if n := rec.count(EventProbe); n != before+1 {
		t.Fatalf("%d probe events after both detectors' flushes, want %d (the folded count, once)", n, before+1)
	}
}
