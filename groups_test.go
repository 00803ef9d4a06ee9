package sluis

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func manyGroups(n int, prefix string) []string {
	var gs []string
	for i := range n {
		gs = append(gs, fmt.Sprintf("%s%d", prefix, i))
	}
	return gs
}

func TestNormalGroups(t *testing.T) {
	long := strings.Repeat("g", 128)
	var big []string
	for i := range 64 {
		big = append(big, fmt.Sprintf("%s%03d", long[:125], i))
	}
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{"empty", nil, []string{}, ""},
		{"duplicates folded, order kept", []string{"staff", "ops", "staff", "ops", "admin"}, []string{"staff", "ops", "admin"}, ""},
		{"case differs: two groups", []string{"Staff", "staff"}, []string{"Staff", "staff"}, ""},
		{"invalid name", []string{"staff", "a,b"}, nil, `"a,b" is not a valid group name`},
		{"at the count limit", manyGroups(MaxGroups, "g"), manyGroups(MaxGroups, "g"), ""},
		{"duplicates do not count", append(manyGroups(MaxGroups, "g"), manyGroups(MaxGroups, "g")...), manyGroups(MaxGroups, "g"), ""},
		{"beyond the count", manyGroups(MaxGroups+1, "g"), nil, "257 groups: at most 256"},
		{"10001 groups", manyGroups(10001, "group-"), nil, "10001 groups: at most 256"},
		{"beyond the size", big, nil, "the groups take 8255 bytes written out: at most 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalGroups(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v %v, want %v", got, err, tt.want)
			}
		})
	}
}

// Whatever a store holds, what goes to an app stays within the limits.
func TestCapGroups(t *testing.T) {
	for _, gs := range [][]string{nil, {"staff"}, manyGroups(MaxGroups, "g"), manyGroups(10001, "group-"), manyGroups(300, strings.Repeat("x", 120))} {
		got, cut := CapGroups(gs)
		if len(got) > MaxGroups || len(JoinGroups(got)) > MaxGroupsBytes {
			t.Fatalf("%d groups, %d bytes", len(got), len(JoinGroups(got)))
		}
		if cut != (len(got) < len(gs)) || !slices.Equal(got, gs[:len(got)]) {
			t.Fatalf("cut %v: %d of %d", cut, len(got), len(gs))
		}
	}
}
