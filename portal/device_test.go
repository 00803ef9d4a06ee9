package portal

import (
	"strings"
	"testing"
)

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := newUserCode()
		n, ok := normUserCode(c)
		if !ok || n != c || len(c) != 9 || c[4] != '-' {
			t.Fatalf("a new code %q does not read back (%q %v)", c, n, ok)
		}
		seen[c] = true
	}
	if len(seen) < 990 {
		t.Fatalf("only %d different codes in 1000", len(seen))
	}
	for typed, want := range map[string]string{"bcdf-ghjk": "BCDF-GHJK", " BCDF GHJK ": "BCDF-GHJK", "BCDFGHJK": "BCDF-GHJK"} {
		if got, ok := normUserCode(typed); !ok || got != want {
			t.Errorf("%q: %q %v", typed, got, ok)
		}
	}
	for _, bad := range []string{"", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "BCDF_GHJK"} {
		if got, ok := normUserCode(bad); ok {
			t.Errorf("%q was taken as %q", bad, got)
		}
	}
}

// What a person types (or an attacker posts) as a device code.
func FuzzNormUserCode(f *testing.F) {
	for _, s := range []string{"BCDF-GHJK", "bcdf ghjk", "", "ÄBCD-EFGH", strings.Repeat("B", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := normUserCode(s)
		if !ok {
			return
		}
		again, ok2 := normUserCode(got)
		if !ok2 || again != got || len(got) != 9 || got[4] != '-' {
			t.Fatalf("%q read as %q, which reads as %q %v", s, got, again, ok2)
		}
		for i, r := range got {
			if i != 4 && !strings.ContainsRune(userCodeLetters, r) {
				t.Fatalf("%q read as %q with %q in it", s, got, r)
			}
		}
	})
}
