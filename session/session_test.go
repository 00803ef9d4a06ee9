package session_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func TestTokenFormat(t *testing.T) {
	tok, hash := session.NewToken()
	got, ok := session.ParseToken(tok)
	if !ok || got != hash {
		t.Fatalf("fresh token %q does not parse", tok)
	}
	tok2, _ := session.NewToken()
	if tok == tok2 {
		t.Fatal("two tokens are equal")
	}
	bad := []string{
		"", " ", tok[:42], tok + "A", tok[:42] + "=", tok[:42] + "+", tok[:42] + "/",
		strings.Repeat("\x00", 43), tok[:20] + "." + tok[21:],
		strings.Repeat("A", 42) + "B", // non-zero padding bits: a second spelling
	}
	for _, b := range bad {
		if _, ok := session.ParseToken(b); ok {
			t.Errorf("ParseToken(%q) accepted", b)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	tok, _ := session.NewToken()
	f.Add(tok)
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("A", 42) + "B")
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := session.ParseToken(s)
		if !ok {
			return
		}
		if len(s) != 43 {
			t.Fatalf("accepted %d-byte token", len(s))
		}
		// Exactly one spelling per token: decoding and encoding again gives
		// the input back, so no two cookie values prove the same token.
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(raw) != 32 || base64.RawURLEncoding.EncodeToString(raw) != s {
			t.Fatalf("accepted %q, which is not the one spelling of its bytes", s)
		}
		if sum := sha256.Sum256([]byte(s)); sum != h {
			t.Fatal("hash is not SHA-256 of the token")
		}
	})
}

type fixture struct {
	svc   *session.Service
	store *sqlite.DB
	other *sqlite.DB // a second connection, as the CLI has
	now   time.Time
	mu    sync.Mutex
}

func (f *fixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t testing.TB) *fixture {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sluis.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); other.Close() })
	f := &fixture{store: st, other: other, now: time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)}
	f.svc = &session.Service{Store: st, Now: f.clock, IdleTimeout: 30 * time.Minute}
	if err := st.CreateUser(ctx, sluis.User{Name: "anna", Groups: []string{"staff"}, CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) login(t testing.TB, host string) (string, string) {
	tok, hash := session.NewToken()
	id := session.NewID()
	x := sluis.Session{ID: id, User: "anna", Stage: sluis.StageComplete, CreatedAt: f.now, LastSeen: f.now, ExpiresAt: f.now.Add(12 * time.Hour), MFAAt: f.now}
	if err := f.store.CreateSession(context.Background(), x, hash[:], host); err != nil {
		t.Fatal(err)
	}
	return tok, id
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok, id := f.login(t, "wiki.test")
	a, err := f.svc.Lookup(ctx, tok, "wiki.test")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Identity(); got.User != "anna" || got.SessionID != id || !got.MFA || got.Groups[0] != "staff" {
		t.Fatalf("identity %+v", got)
	}
	if _, err := f.svc.Lookup(ctx, tok, "other.test"); err != session.ErrNoSession {
		t.Fatalf("token used on another host: %v", err)
	}
	if _, err := f.svc.Lookup(ctx, "", "wiki.test"); err != session.ErrNoSession {
		t.Fatalf("empty token: %v", err)
	}
	fake, _ := session.NewToken()
	if _, err := f.svc.Lookup(ctx, fake, "wiki.test"); err != session.ErrNoSession {
		t.Fatalf("unknown token: %v", err)
	}
}

// Changes made by another process (the CLI) count on the very next lookup,
// even though the entry is cached.
func TestChangesFromAnotherConnectionCountAtOnce(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(f *fixture, id string) error
		check  func(a *session.Active, err error) bool // true if as expected
	}{
		{"revoke session", func(f *fixture, id string) error { return f.other.RevokeSession(ctx, id, f.now) },
			func(a *session.Active, err error) bool { return err == session.ErrNoSession }},
		{"revoke user", func(f *fixture, id string) error {
			_, err := f.other.RevokeSessions(ctx, sluis.SessionFilter{User: "anna"}, f.now)
			return err
		},
			func(a *session.Active, err error) bool { return err == session.ErrNoSession }},
		{"disable user", func(f *fixture, id string) error { return f.other.SetDisabled(ctx, "anna", true) },
			func(a *session.Active, err error) bool { return err == session.ErrNoSession }},
		{"remove group", func(f *fixture, id string) error { return f.other.SetGroups(ctx, "anna", []string{"guests"}) },
			func(a *session.Active, err error) bool {
				return err == nil && policy.Decide(a.Identity(), sluis.App{Allow: []sluis.Rule{{Groups: []string{"staff"}}}}, policy.Request{Method: "GET", Path: "/"}, policy.Situation{Now: time.Now()}).Outcome != policy.Allow
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tok, id := f.login(t, "wiki.test")
			if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != nil {
				t.Fatal(err)
			}
			if err := tt.change(f, id); err != nil {
				t.Fatal(err)
			}
			a, err := f.svc.Lookup(ctx, tok, "wiki.test")
			if !tt.check(a, err) {
				t.Fatalf("after %s: got %v, %v", tt.name, a, err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok, _ := f.login(t, "wiki.test")
	// Used every 20 minutes, the session stays alive past its idle timeout...
	for range 3 {
		f.advance(20 * time.Minute)
		if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != nil {
			t.Fatalf("active session ended: %v", err)
		}
	}
	// ...but not past 30 idle minutes,
	f.advance(30 * time.Minute)
	if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != session.ErrNoSession {
		t.Fatalf("idle session still valid: %v", err)
	}
	// and not past its lifetime however busy.
	tok2, _ := f.login(t, "wiki.test")
	for range 12*3 + 1 {
		f.advance(20 * time.Minute)
		f.svc.Lookup(ctx, tok2, "wiki.test")
	}
	if _, err := f.svc.Lookup(ctx, tok2, "wiki.test"); err != session.ErrNoSession {
		t.Fatalf("session past its lifetime still valid: %v", err)
	}
}

// The idle clock is written to the store, so a restarted gateway (a new
// Service) does not forget recent use.
func TestTouchIsPersisted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok, id := f.login(t, "wiki.test")
	f.advance(10 * time.Minute)
	f.svc.Lookup(ctx, tok, "wiki.test")
	x, _ := f.store.Session(ctx, id)
	if !x.LastSeen.Equal(f.now) {
		t.Fatalf("last seen %v, want %v", x.LastSeen, f.now)
	}
}

func TestConcurrentLookupsSeeRevocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok, id := f.login(t, "wiki.test")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					f.svc.Lookup(ctx, tok, "wiki.test")
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond) // let the lookups run hot; not a wait for a condition
	if err := f.other.RevokeSession(ctx, id, f.now); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != session.ErrNoSession {
			t.Fatalf("revoked session found under load: %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkLookupAndDecide(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	tok, _ := f.login(b, "wiki.test")
	app := sluis.App{Allow: []sluis.Rule{{Groups: []string{"staff"}, MFA: true}}}
	req, sit := policy.Request{Method: "GET", Path: "/"}, policy.Situation{Now: time.Now()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := f.svc.Lookup(ctx, tok, "wiki.test")
			if err != nil || policy.Decide(a.Identity(), app, req, sit).Outcome != policy.Allow {
				b.Fatal("denied", err)
			}
		}
	})
}

// The gateway's path: the revision comes from memory (changes.Watcher).
func BenchmarkLookupAndDecideWatched(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	tok, _ := f.login(b, "wiki.test")
	rev, _ := f.store.Revision(ctx)
	var cur atomic.Int64
	cur.Store(rev)
	f.svc.Revision = func(context.Context) (int64, error) { return cur.Load(), nil }
	app := sluis.App{Allow: []sluis.Rule{{Groups: []string{"staff"}, MFA: true}}}
	req, sit := policy.Request{Method: "GET", Path: "/"}, policy.Situation{Now: time.Now()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := f.svc.Lookup(ctx, tok, "wiki.test")
			if err != nil || policy.Decide(a.Identity(), app, req, sit).Outcome != policy.Allow {
				b.Fatal("denied", err)
			}
		}
	})
}

func TestFromRequest(t *testing.T) {
	tests := []struct {
		cookies []string
		want    string
	}{
		{nil, ""},
		{[]string{"a=1; __Host-sluis=tok; b=2"}, "tok"},
		{[]string{"a=1", "__Host-sluis=tok"}, "tok"},
		{[]string{"__Host-sluis=first; __Host-sluis=second"}, "first"},
		{[]string{"x__Host-sluis=no; __Host-sluisx=no"}, ""},
		{[]string{"__host-sluis=case"}, ""},
		{[]string{"  __Host-sluis=spaced  ;"}, "spaced"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Cookie"] = tt.cookies
		if got := session.FromRequest(r); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.cookies, got, tt.want)
		}
	}
}

// Working only in one app keeps the session alive on every host.
func TestIdleClockIsSharedByTheSessionsHosts(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	portalTok, id := f.login(t, "login.test")
	appTok, hash := session.NewToken()
	if err := f.store.AddToken(ctx, id, hash[:], "wiki.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Lookup(ctx, portalTok, "login.test"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		f.advance(20 * time.Minute)
		if _, err := f.svc.Lookup(ctx, appTok, "wiki.test"); err != nil {
			t.Fatalf("app: %v", err)
		}
	}
	// 80 minutes after the portal was last used, but the session was busy.
	if _, err := f.svc.Lookup(ctx, portalTok, "login.test"); err != nil {
		t.Fatalf("portal after working in the app: %v", err)
	}
}

// A reloaded idle timeout counts at the next lookup, against the clock
// the session already had: shorter ends a session idle for longer, longer
// keeps one that the old timeout would have ended.
func TestSetIdleTimeout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok, _ := f.login(t, "wiki.test")
	f.advance(10 * time.Minute)
	if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != nil {
		t.Fatalf("under 30m: %v", err)
	}
	f.advance(20 * time.Minute)
	f.svc.SetIdleTimeout(time.Hour)
	if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != nil {
		t.Fatalf("20 idle minutes with the timeout raised to 1h: %v", err)
	}
	f.advance(10 * time.Minute)
	f.svc.SetIdleTimeout(5 * time.Minute)
	if _, err := f.svc.Lookup(ctx, tok, "wiki.test"); err != session.ErrNoSession {
		t.Fatalf("10 idle minutes with the timeout lowered to 5m: %v", err)
	}
}
