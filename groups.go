package sluis

import (
	"fmt"
	"strings"
)

// Limits of a user's groups. Every request to an app carries them (the
// X-Sluis-Groups header and the signed assertion), so they are bounded:
// 10,001 groups once made every request carry 237 KB of headers.
const (
	// MaxGroups is how many groups a user may have.
	MaxGroups = 256
	// MaxGroupsBytes bounds the groups written as one comma-separated
	// list, as the X-Sluis-Groups header carries them.
	MaxGroupsBytes = 8 << 10
)

// NormalGroups returns groups with exact duplicates folded, in the order
// first given, or an error when a name is not a valid group name or the
// list is beyond MaxGroups or MaxGroupsBytes. Group names are compared as
// written: policy matches them exactly, so "Staff" and "staff" are two
// groups.
func NormalGroups(groups []string) ([]string, error) {
	out := make([]string, 0, len(groups))
	seen := make(map[string]bool, len(groups))
	size := 0
	for _, g := range groups {
		if !ValidName(g) {
			return nil, fmt.Errorf("%q is not a valid group name (letters, digits, '.', '_', '-', '@'; at most 128)", g)
		}
		if seen[g] {
			continue
		}
		seen[g] = true
		out = append(out, g)
		size += len(g) + 1
	}
	if len(out) > MaxGroups {
		return nil, fmt.Errorf("%d groups: at most %d (every request to an app carries them)", len(out), MaxGroups)
	}
	if size-1 > MaxGroupsBytes {
		return nil, fmt.Errorf("the groups take %d bytes written out: at most %d (every request to an app carries them)", size-1, MaxGroupsBytes)
	}
	return out, nil
}

// CapGroups returns the first of groups that fit within MaxGroups and
// MaxGroupsBytes, and whether any were left out. It is for what goes out
// to apps, whatever an older store holds.
func CapGroups(groups []string) ([]string, bool) {
	size := 0
	for i, g := range groups {
		if i == MaxGroups || size+len(g) > MaxGroupsBytes {
			return groups[:i:i], true
		}
		size += len(g) + 1
	}
	return groups, false
}

// JoinGroups is groups as the X-Sluis-Groups header carries them.
func JoinGroups(groups []string) string { return strings.Join(groups, ",") }
