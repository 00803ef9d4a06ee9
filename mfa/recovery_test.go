package mfa

import (
	"bytes"
	"strings"
	"testing"
)

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes("anna")
	if len(codes) != RecoveryCodeCount || len(hashes) != RecoveryCodeCount {
		t.Fatalf("%d codes, %d hashes", len(codes), len(hashes))
	}
	for i, c := range codes {
		h, ok := HashRecoveryCode("anna", strings.ToLower(strings.ReplaceAll(c, "-", " ")))
		if !ok || !bytes.Equal(h, hashes[i]) {
			t.Fatalf("code %q typed another way does not match", c)
		}
		if other, _ := HashRecoveryCode("bert", c); bytes.Equal(other, hashes[i]) {
			t.Fatal("a code's hash is not bound to its user")
		}
	}
}

// What a person types as a recovery code.
func FuzzHashRecoveryCode(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH-JKMN-PQRS", "abcd efgh jkmn pqrs", "", "0000-0000-0000-0000", strings.Repeat("A", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := HashRecoveryCode("anna", s)
		if !ok {
			return
		}
		// Whatever is accepted is exactly 16 code letters, and reads the
		// same again in canonical form.
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if r != '-' && r != ' ' {
				b.WriteRune(r)
			}
		}
		if b.Len() != 16 {
			t.Fatalf("%q accepted with %d letters", s, b.Len())
		}
		h2, ok2 := HashRecoveryCode("anna", b.String())
		if !ok2 || !bytes.Equal(h, h2) {
			t.Fatalf("%q and its canonical form %q differ", s, b.String())
		}
	})
}
