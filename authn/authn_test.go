package authn

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestHashAndVerify(t *testing.T) {
	h, err := Hash("correct horse", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash format: %s", h)
	}
	h2, _ := Hash("correct horse", DefaultParams)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	tests := []struct {
		pw, hash string
		want     bool
	}{
		{"correct horse", h, true},
		{"correct horsE", h, false},
		{"", h, false},
		{"correct horse", "", false},
		{"correct horse", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", false},
		{"correct horse", strings.Replace(h, "t=2", "t=99", 1), false},
		{strings.Repeat("x", MaxPasswordLen+1), h, false},
	}
	for _, tt := range tests {
		if got, err := Verify(tt.pw, tt.hash); got != tt.want || err != nil {
			t.Errorf("Verify(%.20q, %.30q) = %v, want %v", tt.pw, tt.hash, got, tt.want)
		}
	}
}

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 3, Base: time.Second, Max: 8 * time.Second, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if w := th.Check("anna"); w != 0 {
			t.Fatalf("attempt %d throttled by %v", i, w)
		}
		th.Fail("anna")
	}
	if w := th.Check("anna"); w != 0 {
		t.Fatalf("free attempts used, but locked already: %v", w)
	}
	wants := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i, want := range wants {
		th.Fail("anna")
		if w := th.Check("anna"); w != want {
			t.Fatalf("failure %d: lock %v, want %v", i+4, w, want)
		}
		now = now.Add(want) // wait it out
		if w := th.Check("anna"); w != 0 {
			t.Fatalf("still locked after waiting: %v", w)
		}
	}
	if th.Check("bert") != 0 {
		t.Fatal("another key is affected")
	}
	th.Reset("anna")
	th.Fail("anna")
	if th.Check("anna") != 0 {
		t.Fatal("reset did not forget failures")
	}
	// Old failures are forgotten.
	th2 := &Throttle{Free: 1, Forget: time.Minute, Now: func() time.Time { return now }}
	th2.Fail("x")
	now = now.Add(2 * time.Minute)
	th2.Fail("x")
	if th2.Check("x") != 0 {
		t.Fatal("failure from long ago still counted")
	}
}

func TestThrottleBoundsMemory(t *testing.T) {
	th := &Throttle{MaxKeys: 10}
	for i := 0; i < 100; i++ {
		th.Fail(strings.Repeat("k", i+1))
	}
	if len(th.keys) > 10 {
		t.Fatalf("%d keys tracked, limit 10", len(th.keys))
	}
}

func BenchmarkVerify(b *testing.B) {
	h, _ := Hash("correct horse", DefaultParams)
	for b.Loop() {
		if ok, _ := Verify("correct horse", h); !ok {
			b.Fatal("no match")
		}
	}
}

func TestBeginCountsBeforeTheCheck(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 2, Base: time.Second, Max: time.Minute, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if w := th.Begin("k"); w != 0 {
			t.Fatalf("attempt %d refused: %v", i, w)
		}
	}
	if w := th.Begin("k"); w != time.Second {
		t.Fatalf("fourth attempt: wait %v, want 1s", w)
	}
	// The third attempt turned out right: taking it back lifts the lock.
	th.Forgive("k")
	if w := th.Begin("k"); w != 0 {
		t.Fatalf("after Forgive: wait %v", w)
	}
}

// Filling the table with junk keys does not free a key under attack.
func TestFullTableKeepsTheKeyUnderAttack(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{Free: 1, Base: time.Minute, Max: time.Hour, MaxKeys: 100, Now: func() time.Time { return now }}
	for i := 0; i < 5000; i++ {
		now = now.Add(time.Millisecond)
		th.Begin("target")
		th.Fail(fmt.Sprintf("junk%d", i))
		if i > 2 && th.Check("target") == 0 {
			t.Fatalf("target unlocked after %d junk keys", i)
		}
	}
	if len(th.keys) > 100 {
		t.Fatalf("%d keys, limit 100", len(th.keys))
	}
}

func TestVerifyGivesUpWhenEverySlotIsTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("waits SlotWait")
	}
	h, _ := Hash("correct horse", DefaultParams)
	for i := 0; i < cap(hashSlots); i++ {
		hashSlots <- struct{}{}
	}
	defer func() {
		for i := 0; i < cap(hashSlots); i++ {
			<-hashSlots
		}
	}()
	start := time.Now()
	ok, err := Verify("correct horse", h)
	if ok || err != ErrBusy || time.Since(start) < SlotWait {
		t.Fatalf("ok %v err %v after %v", ok, err, time.Since(start))
	}
}
