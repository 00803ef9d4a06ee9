package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// The per-user lock cannot be turned on a user: wrong passwords for the
// victim from a new address each time lock the user from anywhere, but the
// browser the victim logged in with before is exempt and logs in every
// time, while a new browser stays under the lock.
func TestLockTrickleSparesTheKnownBrowser(t *testing.T) {
	w := setup(t)
	g := w.g
	secret := g.AddUser("victim", pw, "staff")
	const home = "127.0.0.50"
	first := g.ClientFrom(home)
	if p := g.Login(first, g.URL(wikiHost, "/start"), "victim", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("the victim's first login: %d", p.StatusCode)
	}
	// The same browser after its session ended: only its known-browser
	// cookie is left.
	portal, _ := url.Parse(g.URL(g.Portal, "/"))
	known := g.ClientFrom(home)
	n := 0
	for _, c := range first.Jar.Cookies(portal) {
		if c.Name == "__Host-sluis-browser" {
			known.Jar.SetCookies(portal, []*http.Cookie{c})
			n++
		}
	}
	if n != 1 {
		t.Fatal("no known-browser cookie after a completed login")
	}
	attacker := 0
	guess := func() int {
		attacker++
		src := fmt.Sprintf("127.0.%d.%d", 1+attacker/250, 1+attacker%250)
		return g.SubmitPassword(g.ClientFrom(src), "", "victim", fmt.Sprintf("guess %d", attacker)).StatusCode
	}
	// The attack: wrong passwords, each from a new address, until the user
	// is locked from anywhere; and again whenever the lock runs out.
	lock := func() {
		for i := 0; i < 30; i++ {
			if guess() == http.StatusTooManyRequests {
				return
			}
		}
		t.Fatal("30 wrong passwords from 30 addresses do not lock the user")
	}
	knownOK, newOK := 0, 0
	for i := 0; i < 30; i++ {
		lock()
		if p := g.SubmitPassword(g.ClientFrom("127.0.0.60"), "", "victim", pw); p.StatusCode == http.StatusSeeOther {
			newOK++
		}
		if p := g.SubmitPassword(known, "", "victim", pw); p.StatusCode == http.StatusSeeOther {
			knownOK++
		}
	}
	t.Logf("during the trickle: the known browser logged in %d/30 times, a new browser %d/30", knownOK, newOK)
	// A new browser's try can land just as a lock runs out on a loaded
	// machine (each lock lasts 1 to 10 s); it must still be throttled
	// nearly always, and the known browser always gets in.
	if knownOK != 30 || newOK > 5 {
		t.Fatalf("known browser %d/30, new browser %d/30; want 30 and at most 5", knownOK, newOK)
	}
	// Revoking the user's sessions forgets the browser too.
	g.MustCLI("", "session", "revoke", "--user", "victim")
	lock()
	if p := g.SubmitPassword(known, "", "victim", pw); p.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the browser after the user's sessions were revoked: %d, want 429", p.StatusCode)
	}
}
