package sluis

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCanonicalName(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"alice", "alice"},
		{"ALICE", "alice"},
		{"Alice", "alice"},
		{"ａｌｉｃｅ", "alice"},    // full-width letters: width mapping
		{"ＡＬＩＣＥ", "alice"},    // full-width capitals
		{"\u212Aees", "kees"}, // KELVIN SIGN: NFC gives K, lower case k
		{"carol@corp.test", "carol@corp.test"},
		{"Carol@Corp.TEST", "carol@corp.test"},
		{"j.de_vries-2", "j.de_vries-2"},
		{"0day", "0day"},
		{strings.Repeat("a", 128), strings.Repeat("a", 128)},
		{strings.Repeat("a", 129), ""},
		{"", ""},
		{"a b", ""},           // space
		{"a,b", ""},           // the groups separator
		{"a\nb", ""},          // a forged log line
		{"a\x00", ""},         // NUL
		{".alice", ""},        // must start with a letter or digit
		{"-alice", ""},        //
		{"@alice", ""},        //
		{"аlice", ""},         // Cyrillic а: a look-alike, not a
		{"alicé", ""},         // outside the ASCII subset
		{"ali\u0301ce", ""},   // a combining accent
		{"ali\u200bce", ""},   // a zero-width space
		{"ß", ""},             //
		{"\u0130stanbul", ""}, // dotted capital I lower-cases to i + dot
		{"a\"b", ""},          // quotes
		{"a;b", ""},           //
		{"a/b", ""},           //
		{"\xff", ""},          // not UTF-8
	}
	for _, tt := range tests {
		got, err := CanonicalName(tt.in)
		if tt.want == "" {
			if err == nil || ErrorCode(err) != EINVALID {
				t.Errorf("CanonicalName(%q) = %q, %v; want EINVALID", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSourceName(t *testing.T) {
	for in, want := range map[string]string{
		"carol": "carol", "Carol": "carol", "CAROL@CORP.TEST": "carol@corp.test",
		"ＡＤＭＩＮ": "", "\u212Aevin": "", "аdmin": "", "a b": "",
	} {
		got, err := SourceName(in)
		if want == "" && err == nil || want != "" && (err != nil || got != want) {
			t.Errorf("SourceName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestSameName(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"alice", "alice", true}, {"alice", "ALICE", true}, {"Alice", "aLICE", true},
		{"alice", "alicf", false}, {"alice", "alic", false}, {"kevin", "\u212Aevin", false}, {"", "", true},
	} {
		if got := SameName(tt.a, tt.b); got != tt.want {
			t.Errorf("SameName(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestTwins(t *testing.T) {
	if !HasEnabledTwin(User{Name: "alice"}, []User{{Name: "alice"}, {Name: "Alice"}}) ||
		HasEnabledTwin(User{Name: "alice"}, []User{{Name: "alice"}, {Name: "Alice", Disabled: true}}) ||
		HasEnabledTwin(User{Name: "alice"}, []User{{Name: "alice"}}) {
		t.Fatal("HasEnabledTwin")
	}
	got := Twins([]User{{Name: "alice"}, {Name: "Alice"}, {Name: "bob"}, {Name: "ALICE"}})
	if len(got) != 3 || len(got["alice"]) != 2 || len(got["Alice"]) != 2 || got["bob"] != nil {
		t.Fatalf("Twins = %v", got)
	}
	if got := Twins([]User{{Name: "alice"}, {Name: "bob"}}); len(got) != 0 {
		t.Fatalf("no twins: %v", got)
	}
}

// FuzzCanonicalName: the canonical form is itself canonical, in the
// allowed subset, and names one person with what was typed.
func FuzzCanonicalName(f *testing.F) {
	for _, s := range []string{"alice", "ALICE", "ａｌｉｃｅ", "\u212Aees", "аlice", "a,b", "Carol@Corp.test", "ß", "\u0130"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalName(s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if !asciiName(c) || !utf8.ValidString(c) {
			t.Fatalf("CanonicalName(%q) = %q, outside the subset", s, c)
		}
		if c2, err := CanonicalName(c); err != nil || c2 != c {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, c, c2, err)
		}
		if strings.ToUpper(c) != c {
			if c3, err := CanonicalName(strings.ToUpper(c)); err != nil || c3 != c {
				t.Fatalf("upper case of %q gives %q, %v", c, c3, err)
			}
		}
		if isASCII(s) && !SameName(s, c) {
			t.Fatalf("ASCII %q and its canonical form %q are not the same name", s, c)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
