package mfa

import (
	"strings"
	"testing"
	"time"
)

// RFC 6238 appendix B, SHA-1 secret "12345678901234567890", 6-digit codes.
func TestRFC6238Vectors(t *testing.T) {
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		got, err := Code(secret, time.Unix(v.unix, 0))
		if err != nil || got != v.code {
			t.Errorf("t=%d: got %s %v, want %s", v.unix, got, err, v.code)
		}
	}
}

func TestVerify(t *testing.T) {
	k, err := NewKey("sluis", "anna")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Secret) != 32 || !strings.HasPrefix(k.URI, "otpauth://totp/") {
		t.Fatalf("key %q %q", k.Secret, k.URI)
	}
	now := time.Unix(1_700_000_000, 0)
	code := func(d time.Duration) string { c, _ := Code(k.Secret, now.Add(d)); return c }
	tests := []struct {
		name string
		code string
		ok   bool
		step int64
	}{
		{"current", code(0), true, Step(now)},
		{"previous step", code(-30 * time.Second), true, Step(now) - 1},
		{"next step", code(30 * time.Second), true, Step(now) + 1},
		{"two steps old", code(-60 * time.Second), false, 0},
		{"too short", "12345", false, 0},
		{"letters", "12a456", false, 0},
		{"empty", "", false, 0},
	}
	for _, tt := range tests {
		step, ok := Verify(k.Secret, tt.code, now)
		if ok != tt.ok || (ok && step != tt.step) {
			t.Errorf("%s: got step %d ok %v, want %d %v", tt.name, step, ok, tt.step, tt.ok)
		}
	}
	qr, err := k.QRDataURI()
	if err != nil || !strings.HasPrefix(qr, "data:image/png;base64,") {
		t.Fatalf("qr: %.40s %v", qr, err)
	}
	k2, err := KeyFor("sluis", "anna", k.Secret)
	if err != nil || k2.Secret != k.Secret || !strings.Contains(k2.URI, "secret="+k.Secret) {
		t.Fatalf("KeyFor: %+v %v", k2, err)
	}
}
