package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

// benchEnd is the end of the benchmark's trail.
var benchEnd = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// fillTrail appends n events over the 30 days before benchEnd to st: the
// mix of a busy gateway (logins, failures, denials with error IDs, probes,
// blocks) by 1,000 users from 5,000 addresses on 20 apps.
func fillTrail(b *testing.B, st sluis.Store, n int) {
	types := []string{sluis.EventLoginSuccess, sluis.EventLoginSuccess, sluis.EventLoginFailure, sluis.EventMFASuccess, sluis.EventMFASuccess,
		sluis.EventAccessDenied, "security.probe", "security.probe", "security.blocked", sluis.EventTunnelOpen}
	start, step := benchEnd.Add(-30*24*time.Hour), 30*24*time.Hour/time.Duration(n)
	const batch = 10000
	for i := 0; i < n; i += batch {
		es := make([]sluis.Event, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			e := sluis.Event{Time: start.Add(time.Duration(j) * step), Type: types[j%len(types)], User: fmt.Sprintf("user%d", j%1000),
				Source: fmt.Sprintf("198.51.%d.%d", j%5000/250, j%250), App: fmt.Sprintf("app%d", j%20), Outcome: sluis.OutcomeSuccess}
			if e.Type == sluis.EventAccessDenied {
				e.Detail = fmt.Sprintf("rule 1: needs a passkey; error ID %012x", j)
			}
			es = append(es, e)
		}
		if _, err := st.AppendEvents(context.Background(), es); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchAudit measures the console's audit queries (a page of a search by
// each filter, from a cursor, by error ID; the overview's counts) on st,
// an empty store it fills first with SLUIS_BENCH_EVENTS events (default
// 1,000,000), which takes minutes. Each must stay well under the time of
// a page render.
func BenchAudit(b *testing.B, st sluis.Store) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SLUIS_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	fillTrail(b, st, n)
	ctx := context.Background()
	deep := benchEnd.Add(-20 * 24 * time.Hour)
	p, err := st.SearchEvents(ctx, sluis.AuditQuery{Until: deep, Limit: 1})
	if err != nil || len(p.Events) == 0 {
		b.Fatal(p, err)
	}
	mid := p.Events[0].ID
	// An ID the trail has (event j = 999675 when n is 1,000,000), and one
	// it has not.
	id := fmt.Sprintf("%012x", (n-325)/10*10+5)
	for _, bb := range []struct {
		name string
		q    sluis.AuditQuery
	}{
		{"newest", sluis.AuditQuery{}},
		{"page-from-cursor", sluis.AuditQuery{Before: mid}},
		{"user", sluis.AuditQuery{User: "user7"}},
		{"type", sluis.AuditQuery{Type: sluis.EventLoginFailure}},
		{"app-and-period", sluis.AuditQuery{App: "app3", Since: deep.Add(-time.Hour), Until: deep}},
		{"source", sluis.AuditQuery{Source: "198.51.3.7"}},
		{"error-id", sluis.AuditQuery{ErrorID: id}},
		{"error-id-absent", sluis.AuditQuery{ErrorID: "ffffffffffff"}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := st.SearchEvents(ctx, bb.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("count-logins-last-hour", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.CountEvents(ctx, []string{sluis.EventLoginSuccess, sluis.EventLoginFailure}, benchEnd.Add(-time.Hour), benchEnd, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("count-probes-per-hour-24h", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.CountEvents(ctx, []string{"security.probe", "security.blocked"}, benchEnd.Add(-24*time.Hour), benchEnd, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}
