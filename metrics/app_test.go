package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// discard is a ResponseWriter that keeps nothing, so that a benchmark
// measures the instrumentation alone.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// upstreamObserver is how package proxy reaches the recorder.
type upstreamObserver interface {
	ObserveUpstream(time.Duration, error)
}

func TestAppHandlerCounts(t *testing.T) {
	m := New()
	a := m.App("wiki")
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		code  string
	}{
		{"proxied 200", func(w http.ResponseWriter) {
			w.(upstreamObserver).ObserveUpstream(3*time.Millisecond, nil)
			w.WriteHeader(200)
		}, "2xx"},
		{"body without a head", func(w http.ResponseWriter) { w.Write([]byte("x")) }, "2xx"},
		{"nothing written", func(w http.ResponseWriter) {}, "2xx"},
		{"redirect to login", func(w http.ResponseWriter) { w.WriteHeader(303) }, "3xx"},
		{"early hints, then 404", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(404) }, "4xx"},
		{"upstream refused", func(w http.ResponseWriter) {
			w.(upstreamObserver).ObserveUpstream(0, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED})
			w.WriteHeader(502)
		}, "5xx"},
		{"cut", func(w http.ResponseWriter) { panic(http.ErrAbortHandler) }, "aborted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(m.requests.WithLabelValues("wiki", tc.code))
			func() {
				defer func() { recover() }()
				a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.serve(w) })).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}()
			if got := testutil.ToFloat64(m.requests.WithLabelValues("wiki", tc.code)) - before; got != 1 {
				t.Fatalf("sluis_requests_total{code=%q} grew by %v, want 1", tc.code, got)
			}
		})
	}
	if got := testutil.ToFloat64(m.upstreamErrors.WithLabelValues("wiki", "refused")); got != 1 {
		t.Fatalf("refused upstream errors %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.upstream, "sluis_upstream_response_seconds"); n != 1 {
		t.Fatalf("%d upstream histograms, want 1 (wiki's)", n)
	}
}

func TestUpstreamKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "refused"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "reset"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{&net.DNSError{Err: "no such host", Name: "x"}, "dns"},
		{errors.New("something else"), "other"},
	} {
		if got := upstreamKinds[UpstreamKind(tc.err)]; got != tc.kind {
			t.Errorf("%v: kind %s, want %s", tc.err, got, tc.kind)
		}
	}
}

// The proxy path is measured against nginx: counting a request must not
// allocate.
func TestAppHandlerAllocatesNothing(t *testing.T) {
	h, w, r := benchSetup()
	if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) }); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}

func BenchmarkAppHandler(b *testing.B) {
	h, w, r := benchSetup()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

func benchSetup() (http.Handler, http.ResponseWriter, *http.Request) {
	a := New().App("wiki")
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(upstreamObserver).ObserveUpstream(time.Millisecond, nil)
		w.WriteHeader(http.StatusOK)
	}))
	return h, &discard{h: http.Header{}}, httptest.NewRequest("GET", "/", nil)
}
