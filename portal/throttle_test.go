package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/authn"
)

// Guessing from one address locks that address out quickly, while the real
// user, from their own address, waits at most a few seconds however long
// the attack goes on.
func TestGuessingCannotLockTheRealUserOut(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := newReturnPortal(t)
	p.Now = func() time.Time { return now }
	p.UserSourceThrottle, p.UserThrottle, p.SourceThrottle = nil, nil, nil
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	const attacker, user = "198.51.100.9", "192.0.2.1"
	attacks := 0
	for i := 0; i < 2000; i++ {
		// The attacker tries whenever they are allowed to.
		if tryGuess(p, guess{kind: "login", user: "anna", src: attacker}) == 0 {
			attacks++
		}
		now = now.Add(time.Second)
		// The real user's try: refused for at most 10 s, then through.
		if w := tryGuess(p, guess{kind: "login", user: "anna", src: user}); w > 10*time.Second {
			t.Fatalf("after %d guesses the real user must wait %v", attacks, w)
		} else if w == 0 {
			p.succeeded(context.Background(), guess{kind: "login", user: "anna", src: user})
		}
	}
	// 2000 seconds of attack got few guesses through.
	if attacks > 40 {
		t.Fatalf("attacker made %d guesses in 2000 s", attacks)
	}
	// The real user's success clears their own record, not the attacker's.
	if checkWait(p.UserSourceThrottle, "login:anna@"+attacker) == 0 {
		t.Fatal("the attacker is not locked at the end of the attack")
	}
	p.succeeded(context.Background(), guess{kind: "login", user: "anna", src: user})
	if checkWait(p.UserSourceThrottle, "login:anna@"+attacker) == 0 {
		t.Fatal("the user's success cleared the attacker's record")
	}
	// A spray over many users from one address is slowed as well.
	sprayed := 0
	for i := 0; i < 500; i++ {
		u := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if tryGuess(p, guess{kind: "login", user: u, src: "203.0.113.5"}) == 0 {
			sprayed++
		}
		now = now.Add(time.Second)
	}
	if sprayed > 40 {
		t.Fatalf("spraying made %d guesses in 500 s", sprayed)
	}
}

// A burst of parallel guesses gets no more tries than guesses one by one:
// each is counted before it is checked.
func TestParallelGuessesAreCountedBeforeTheyAreChecked(t *testing.T) {
	p := newReturnPortal(t)
	var wg sync.WaitGroup
	var through atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tryGuess(p, guess{kind: "login", user: "anna", src: "198.51.100.9"}) == 0 {
				through.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := through.Load(); n > 6 {
		t.Fatalf("%d of 200 parallel guesses were let through", n)
	}
}

// A flood from one address, over as many user names, puts few checks in
// the password queue at once: the source's budget is counted before a
// check waits there, so the flood delays the logins of others by a few
// checks (about 21 x 48 ms / 2 slots = 0.5 s on 2 cores), however long
// the queue lets each wait.
func TestOneSourceFloodsThePasswordQueueLittle(t *testing.T) {
	p := newReturnPortal(t)
	var wg sync.WaitGroup
	var through atomic.Int64
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tryGuess(p, guess{kind: "login", user: fmt.Sprintf("user%d", i), src: "198.51.100.9"}) == 0 {
				through.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := through.Load(); n > 21 {
		t.Fatalf("%d of 500 parallel logins from one address reached the password check", n)
	}
}

// Guesses from many addresses lock the user from anywhere, but not from a
// known browser, which has a budget of its own: as strict as a source's.
func TestKnownBrowserIsExemptFromThePerUserLock(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := newReturnPortal(t)
	p.Now = func() time.Time { return now }
	p.UserSourceThrottle, p.UserThrottle, p.SourceThrottle = nil, nil, nil
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	// A trickle from a new address each time, one a second.
	for i := 0; i < 60; i++ {
		tryGuess(p, guess{kind: "login", user: "anna", src: fmt.Sprintf("198.51.100.%d", i+1)})
		now = now.Add(time.Second)
	}
	if tryGuess(p, guess{kind: "login", user: "anna", src: "192.0.2.1"}) == 0 {
		t.Fatal("a new browser is not under the per-user lock")
	}
	for i := 0; i < 3; i++ {
		g := guess{kind: "login", user: "anna", src: "192.0.2.1", browser: "known-1"}
		if w := tryGuess(p, g); w != 0 {
			t.Fatalf("the known browser must wait %v", w)
		}
		p.succeeded(context.Background(), g)
	}
	// Its own budget: a stolen cookie gets five guesses, then waits.
	stolen := guess{kind: "login", user: "anna", src: "203.0.113.7", browser: "known-1"}
	n := 0
	for i := 0; i < 100; i++ {
		if tryGuess(p, stolen) == 0 {
			n++
		}
	}
	if n > 6 {
		t.Fatalf("a stolen browser cookie made %d guesses at once", n)
	}
}

func tryGuess(p *Portal, g guess) time.Duration {
	w, err := p.attempt(context.Background(), g)
	if err != nil {
		panic(err)
	}
	return w
}

func checkWait(th *authn.Throttle, key string) time.Duration {
	w, err := th.Check(context.Background(), key)
	if err != nil {
		panic(err)
	}
	return w
}

// countersDownAfter is a counter store that answers n updates, then fails.
type countersDownAfter struct {
	sluis.CounterStore
	mu sync.Mutex
	n  int
}

func (c *countersDownAfter) UpdateCounter(ctx context.Context, key string, now time.Time, fn func(*sluis.Counter) bool) (sluis.Counter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return sluis.Counter{}, errors.New("connection refused")
	}
	c.n--
	var x sluis.Counter
	fn(&x)
	return x, nil
}

// Shared throttles whose store cannot answer refuse the guess (it would
// not be counted), and the user gets a 503 page with an error ID, as for
// other store failures; never a check of the password.
func TestGuessesFailClosedWhenTheCountsCannotBeKept(t *testing.T) {
	p := &Portal{Host: "login.test", BaseURL: func(h string) string { return "https://" + h }, Log: slog.New(slog.DiscardHandler),
		Counters: &countersDownAfter{n: 1}}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	// The first throttle answers, the second does not.
	wait, err := p.attempt(context.Background(), guess{kind: "login", user: "anna", src: "198.51.100.7"})
	if !errors.Is(err, authn.ErrThrottleUnavailable) || wait != 0 {
		t.Fatalf("attempt with the counts down: wait %v, %v", wait, err)
	}
	w := httptest.NewRecorder()
	p.wrap(func(http.ResponseWriter, *http.Request) error { return err }).ServeHTTP(w, httptest.NewRequest("POST", "https://login.test/login", nil))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "cannot check logins right now") {
		t.Fatalf("the page: %d\n%s", w.Code, w.Body)
	}
}
