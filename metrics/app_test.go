package metrics

import (
	"context"
	"errors"
	"fmt"
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

func TestCountersOfTheParts(t *testing.T) {
	m := New()
	m.Reloaded(true)
	m.Reloaded(false)
	m.Reloaded(false)
	m.AuditWrite(3*time.Millisecond, true)
	m.AuditWrite(time.Second, false)
	m.Login("nonsense", "nonsense") // other, failure
	m.SecondFactor(MethodTOTP, OutcomeThrottled)
	for i := range MaxRules + 5 {
		m.Probe(fmt.Sprintf("rule %d", i))
	}
	queued, dropped := 7, uint64(3)
	m.Syslog(func() int { return queued }, func() uint64 { return dropped })
	m.Syslog(func() int { return 0 }, func() uint64 { return 0 }) // only the first counts
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluis_config_reloads_total", []string{"result", "success"}, 1},
		{"sluis_config_reloads_total", []string{"result", "failure"}, 2},
		{"sluis_audit_write_errors_total", nil, 1},
		{"sluis_logins_total", []string{"method", "other", "outcome", "failure"}, 1},
		{"sluis_second_factors_total", []string{"method", "totp", "outcome", "throttled"}, 1},
		{"sluis_throttled_total", []string{"kind", "second_factor"}, 1},
		{"sluis_probes_total", []string{"rule", "rule 0"}, 1},
		{"sluis_probes_total", []string{"rule", "other"}, 5},
		{"sluis_syslog_queue_events", nil, 7},
		{"sluis_syslog_dropped_total", nil, 3},
	} {
		if got := gather(t, m, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	families, _ := m.Registry().Gather()
	for _, f := range families {
		if f.GetName() == "sluis_probes_total" && len(f.GetMetric()) != MaxRules+1 {
			t.Errorf("%d probe rules, want at most %d and other", len(f.GetMetric()), MaxRules)
		}
	}
}

// gather returns the value of the series of name with the given label
// pairs, as a scrape would read it.
func gather(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// A Live whose store cannot answer leaves those series out of the scrape;
// apps without anything open have zeros.
func TestLiveSeries(t *testing.T) {
	m := New()
	m.App("wiki")
	m.SetLive(Live{
		Sessions: func(context.Context) (int, error) { return 0, errors.New("store down") },
		Tunnels:  func() map[string]int { return map[string]int{"ssh": 2} },
		Requests: func() (map[string]int, map[string]int) { return map[string]int{}, map[string]int{"wiki": 1} },
		Blocks:   func(context.Context) (int, int, error) { return 3, 1, nil },
	})
	if got := gather(t, m, "sluis_tunnels_open", "app", "ssh"); got != 2 {
		t.Errorf("tunnels %v", got)
	}
	if got := gather(t, m, "sluis_requests_open", "app", "wiki", "kind", "stream"); got != 0 {
		t.Errorf("streams %v", got)
	}
	if got := gather(t, m, "sluis_requests_open", "app", "wiki", "kind", "websocket"); got != 1 {
		t.Errorf("websockets %v", got)
	}
	if got := gather(t, m, "sluis_blocks_in_force", "kind", "operator"); got != 1 {
		t.Errorf("blocks %v", got)
	}
	families, _ := m.Registry().Gather()
	for _, f := range families {
		if f.GetName() == "sluis_sessions_active" {
			t.Errorf("sessions reported while the store is down: %v", f)
		}
	}
}

// Every method works on a nil *Metrics.
func TestNilMetricsCountNothing(t *testing.T) {
	var m *Metrics
	m.Login(MethodPassword, OutcomeSuccess)
	m.SecondFactor(MethodTOTP, OutcomeFailure)
	m.Probe("x")
	m.BlockAdded()
	m.AuditWrite(time.Second, true)
	m.Reloaded(true)
	m.Syslog(nil, nil)
	m.SetLive(Live{})
	next := http.NotFoundHandler()
	if h := m.App("wiki").Handler(next); h == nil {
		t.Fatal("nil handler")
	}
}
