package frontdoor

import (
	"context"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

func TestParseCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":     "198.51.100.7/32",
		"198.51.100.7/24":  "198.51.100.0/24",
		"::ffff:192.0.2.1": "192.0.2.1/32",
		"2001:db8::1":      "2001:db8::1/128",
		"2001:db8::1/32":   "2001:db8::/32",
		"0.0.0.0/0":        "0.0.0.0/0",
	} {
		p, err := ParseCIDR(in)
		if err != nil || p.String() != want {
			t.Errorf("%s: %v %v, want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "198.51.100", "198.51.100.7/33", "host.example", "1.2.3.4/-1"} {
		if _, err := ParseCIDR(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBlockList(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rev := int64(1)
	loads := 0
	blocks := []sluis.Block{
		{CIDR: "198.51.100.0/24"},
		{CIDR: "203.0.113.9/32", Until: now.Add(time.Hour)},
		{CIDR: "2001:db8::/32"},
		{CIDR: "2001:db9:0:1::/64", Until: now.Add(time.Hour), Auto: true},
		{CIDR: "2001:db9:0:2::7/128"},
		{CIDR: "192.0.2.1/32", Until: now.Add(time.Hour), Auto: true},
		{CIDR: "192.0.2.1/32"}, // an operator's block of the same address outlasts the automatic one
	}
	bl := &BlockList{
		Load:     func(context.Context) ([]sluis.Block, error) { loads++; return blocks, nil },
		Revision: func(context.Context) (int64, error) { return rev, nil },
		Now:      func() time.Time { return now },
	}
	ctx := context.Background()
	for ip, want := range map[string]bool{
		"198.51.100.77": true, "198.51.101.1": false, "203.0.113.9": true, "203.0.113.10": false,
		"2001:db8::5": true, "2001:db9::5": false, "::ffff:198.51.100.1": true, "garbage": false,
		"2001:db9:0:1::1234": true, "2001:db9:0:1:ffff::": true, "2001:db9:0:3::1": false,
		"2001:db9:0:2::7": true, "2001:db9:0:2::8": false, "192.0.2.1": true, "192.0.2.2": false,
	} {
		if got, err := bl.Blocked(ctx, ip); got != want || err != nil {
			t.Errorf("%s: %v %v, want %v", ip, got, err, want)
		}
	}
	if loads != 1 {
		t.Fatalf("%d loads for one revision, want 1", loads)
	}
	// The timed block ends by itself; a change to the store is seen once
	// the revision moves.
	now = now.Add(2 * time.Hour)
	if got, _ := bl.Blocked(ctx, "203.0.113.9"); got {
		t.Fatal("expired block still in force")
	}
	if got, _ := bl.Blocked(ctx, "192.0.2.1"); !got {
		t.Fatal("the operator's block ended with the automatic one")
	}
	blocks = nil
	if got, _ := bl.Blocked(ctx, "198.51.100.77"); !got {
		t.Fatal("reloaded without a revision change")
	}
	rev++
	if got, _ := bl.Blocked(ctx, "198.51.100.77"); got {
		t.Fatal("removed block still in force after the revision moved")
	}
}
