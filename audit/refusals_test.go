package audit_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/audit"
)

func TestRefusalsAreFoldedAndBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).Truncate(time.Minute)
	f := &audit.Refusals{PerMinute: 100, Now: func() time.Time { return now }}
	let := 0
	// One user, 1000 attempts in a minute, each from a new address.
	for i := 0; i < 1000; i++ {
		if _, ok := f.Let("login.failure", "victim", fmt.Sprintf("198.51.%d.%d", i/250, i%250), "bad password"); ok {
			let++
		}
		now = now.Add(50 * time.Millisecond)
	}
	if let != 1 {
		t.Fatalf("%d events for one user in 50 s, want 1", let)
	}
	now = now.Add(15 * time.Second)
	evs := f.Flush()
	if len(evs) != 1 || evs[0].User != "victim" || !strings.Contains(evs[0].Detail, "999 more attempts from 999 sources since the last event: 999 bad password") {
		t.Fatalf("flushed %+v", evs)
	}
	// A spray at many users: at most PerMinute events a minute, and one
	// summary of the rest.
	now = now.Add(time.Minute).Truncate(time.Minute)
	let = 0
	for i := 0; i < 5000; i++ {
		if _, ok := f.Let("login.failure", fmt.Sprintf("user%d", i), "203.0.113.9", "unknown user"); ok {
			let++
		}
	}
	if let != 100 {
		t.Fatalf("%d events for a spray within one minute, want the cap of 100", let)
	}
	now = now.Add(time.Minute)
	evs = f.Flush()
	summaries := 0
	for _, e := range evs {
		if e.Type == audit.EventRefusalsSummary {
			summaries++
			if !strings.Contains(e.Detail, "4900 refusals") {
				t.Errorf("summary %q", e.Detail)
			}
		}
	}
	if summaries != 1 || len(evs) > 101 {
		t.Fatalf("%d events after the spray (%d summaries), want at most 101 with one summary", len(evs), summaries)
	}
	// Memory is bounded too.
	g := &audit.Refusals{MaxKeys: 1000, Now: func() time.Time { return now }}
	for i := 0; i < 100000; i++ {
		g.Let("login.failure", fmt.Sprint("u", i), "192.0.2.1", "unknown user")
	}
	if evs := g.Flush(); len(evs) > 2000 {
		t.Fatalf("%d events owed by a table of 1000 keys", len(evs))
	}
}
