package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/proxy"
)

// deadlineWriter records the deadlines set on it, and fails the test if
// one is set after its handler returned.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	t        *testing.T
	mu       sync.Mutex
	returned bool
	set      []time.Time
}

func (w *deadlineWriter) SetReadDeadline(d time.Time) error { return w.SetWriteDeadline(d) }

func (w *deadlineWriter) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.returned {
		w.t.Error("write deadline set after the handler returned")
	}
	w.set = append(w.set, d)
	return nil
}

func TestEndingARequestCancelsItsContextAndItsWrites(t *testing.T) {
	l := &liveConns{}
	app := &sluis.App{Name: "wiki", Host: "wiki.test"}
	w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder(), t: t}
	ctx, c := l.track(w, httptest.NewRequest("GET", "https://wiki.test/events", nil), "tok", app, "192.0.2.1")
	if n := l.count(); n != 1 {
		t.Fatalf("%d registered", n)
	}
	if c.method != "GET" || c.path != "/events" || c.source != "192.0.2.1" || c.token != "tok" || c.app != app {
		t.Fatalf("registered %+v", c)
	}
	if !l.end(c) {
		t.Fatal("end reports an open request as over")
	}
	if err := context.Cause(ctx); !errors.Is(err, proxy.ErrEnded) {
		t.Fatalf("cause %v", err)
	}
	if len(w.set) != 2 || w.set[0].After(time.Now()) || w.set[1].After(time.Now()) {
		t.Fatalf("deadlines %v", w.set)
	}
	l.untrack(c)
	if n := l.count(); n != 0 {
		t.Fatalf("%d registered after untrack", n)
	}
}

// A recheck that decided on a request just as its handler returned must
// not touch the finished response (an HTTP/2 writer is gone by then, an
// HTTP/1.1 connection serves the next request).
func TestEndingAfterTheHandlerReturnedDoesNothing(t *testing.T) {
	l := &liveConns{}
	w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder(), t: t}
	ctx, c := l.track(w, httptest.NewRequest("GET", "https://wiki.test/", nil), "tok", &sluis.App{}, "192.0.2.1")
	l.untrack(c)
	w.returned = true
	if l.end(c) {
		t.Fatal("end reports a request ended after untrack")
	}
	if err := context.Cause(ctx); errors.Is(err, proxy.ErrEnded) {
		t.Fatal("ended after untrack")
	}
}

func TestManyRequestsComeAndGo(t *testing.T) {
	l := &liveConns{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var cs []*liveConn
			for range 1000 {
				_, c := l.track(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "t", &sluis.App{}, "")
				cs = append(cs, c)
			}
			for _, c := range cs {
				l.untrack(c)
			}
		})
	}
	wg.Wait()
	if n := l.count(); n != 0 {
		t.Fatalf("%d left", n)
	}
}

func TestOnlyUpgradesTracksOnlyUpgrades(t *testing.T) {
	l := &liveConns{onlyUpgrades: true}
	r := httptest.NewRequest("GET", "/", nil)
	if ctx, c := l.track(httptest.NewRecorder(), r, "t", &sluis.App{}, ""); c != nil || ctx != r.Context() {
		t.Fatal("a plain request was tracked")
	}
	r.Header.Set("Upgrade", "websocket")
	_, c := l.track(httptest.NewRecorder(), r, "t", &sluis.App{}, "")
	if c == nil || l.count() != 1 {
		t.Fatal("an upgrade was not tracked")
	}
	l.untrack(c)
}

// BenchmarkTrack is what tracking adds to every request: the request's
// own cancellable context, its copy of the request, and the registration.
// Each request arrives with a cancellable context of its own, as a
// server's do (a child's registration with it allocates); "untracked" is
// making that request alone, so the cost of tracking is the difference.
func BenchmarkTrack(b *testing.B) {
	for _, track := range []bool{false, true} {
		name := "untracked"
		if track {
			name = "tracked"
		}
		b.Run(name, func(b *testing.B) {
			l := &liveConns{}
			app := &sluis.App{Name: "wiki"}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest("GET", "https://wiki.test/page", nil)
				var w http.ResponseWriter = httptest.NewRecorder()
				for pb.Next() {
					ctx, cancel := context.WithCancel(context.Background())
					r := r.WithContext(ctx)
					if track {
						_, c := l.track(w, r, "tok", app, "192.0.2.1")
						l.untrack(c)
					}
					cancel()
				}
			})
		})
	}
}

// Rechecks asked for while one runs fold into one more, which begins
// after every one of them was asked for.
func TestRechecksRunOneAtATime(t *testing.T) {
	var s serial
	var mu sync.Mutex
	running, runs, most := 0, 0, 0
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	fn := func() {
		mu.Lock()
		running++
		runs++
		most = max(most, running)
		mu.Unlock()
		started <- struct{}{}
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}
	done := make(chan struct{})
	go func() { s.do(fn); close(done) }()
	<-started
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { s.do(fn) }) // return at once: one runs
	}
	wg.Wait()
	release <- struct{}{} // the first run ends; one more begins
	<-started
	release <- struct{}{}
	<-done
	if runs != 2 || most != 1 {
		t.Fatalf("%d runs, at most %d at once; want 2 runs, one at a time", runs, most)
	}
}
