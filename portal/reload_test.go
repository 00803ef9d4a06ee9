package portal

import (
	"testing"
)

// A portal built from a reloaded configuration keeps what its forms and
// throttles hold: a form loaded before the reload is accepted after it,
// and guesses counted before it still count.
func TestInherit(t *testing.T) {
	build := func() *Portal {
		p := &Portal{Host: "login.test", BaseURL: func(h string) string { return "https://" + h }}
		if err := p.Init(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old, next := build(), build()
	if old.csrfFor("c") == next.csrfFor("c") {
		t.Fatal("two portals share a CSRF key without Inherit")
	}
	next.Inherit(old)
	if old.csrfFor("c") != next.csrfFor("c") {
		t.Fatal("a form of the replaced portal is refused by the new one")
	}
	if next.UserSourceThrottle != old.UserSourceThrottle || next.UserThrottle != old.UserThrottle || next.SourceThrottle != old.SourceThrottle ||
		next.browserThrottle != old.browserThrottle || next.deviceThrottle != old.deviceThrottle || next.directorySlots != old.directorySlots {
		t.Fatal("the throttles or directory slots were not taken over")
	}
}
