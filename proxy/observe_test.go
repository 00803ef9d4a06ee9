package proxy_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/proxy"
)

// observing is a ResponseWriter that wants to know the upstream's round
// trips, as the metrics' does.
type observing struct {
	http.ResponseWriter
	times []time.Duration
	errs  []error
}

func (o *observing) ObserveUpstream(d time.Duration, err error) {
	o.times, o.errs = append(o.times, d), append(o.errs, err)
}

func (o *observing) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// Each round trip to the upstream is reported to a writer that wants it:
// the time to the response head, or the error instead of it.
func TestUpstreamRoundTripIsObserved(t *testing.T) {
	f := newFixture(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the upstream's own time, which the observer must see
		w.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name     string
		upstream string
		status   int
		refused  bool
	}{
		{"answered", slow.URL, http.StatusNoContent, false},
		{"refused", gone.URL, http.StatusBadGateway, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := f.proxy(t, tc.upstream)
			w := &observing{ResponseWriter: httptest.NewRecorder()}
			p.Serve(w, httptest.NewRequest("GET", "https://wiki.test/x", nil), active())
			if code := w.ResponseWriter.(*httptest.ResponseRecorder).Code; code != tc.status {
				t.Fatalf("status %d, want %d", code, tc.status)
			}
			if len(w.times) != 1 {
				t.Fatalf("%d round trips observed, want 1", len(w.times))
			}
			switch {
			case tc.refused && !errors.Is(w.errs[0], syscall.ECONNREFUSED):
				t.Fatalf("error %v, want connection refused", w.errs[0])
			case !tc.refused && (w.errs[0] != nil || w.times[0] < 20*time.Millisecond):
				t.Fatalf("observed %v, %v; want at least 20ms and no error", w.times[0], w.errs[0])
			}
		})
	}
	// A writer that does not ask is served as before.
	w := httptest.NewRecorder()
	f.proxy(t, slow.URL).Serve(w, httptest.NewRequest("GET", "https://wiki.test/x", nil), active())
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
}

func TestUnwrapFindsNetHTTPsWriter(t *testing.T) {
	inner := httptest.NewRecorder()
	w := &observing{ResponseWriter: &observing{ResponseWriter: inner}}
	if got := proxy.Unwrap(w); got != inner {
		t.Fatalf("Unwrap gave %T", got)
	}
	if got := proxy.Unwrap(inner); got != inner {
		t.Fatalf("Unwrap of an unwrapped writer gave %T", got)
	}
}
