package metrics

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of upstream errors: the values of sluis_upstream_errors_total's kind
// label.
var upstreamKinds = []string{"timeout", "refused", "reset", "dns", "tls", "canceled", "other"}

// App is one web app's series, resolved once when the gateway is built:
// counting a request looks nothing up and allocates nothing.
type App struct {
	requests [7]prometheus.Counter // by status/100 (1..5); 0: aborted; 6: other
	overhead prometheus.Observer
	upstream prometheus.Observer
	errors   [7]prometheus.Counter // by upstreamKinds
}

// App returns the series of the web app named name (from the
// configuration: names are bounded), made on the first call and the same
// on every later one (a reload keeps counting in them).
func (m *Metrics) App(name string) *App {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.apps[name]; a != nil {
		return a
	}
	a := &App{overhead: m.overhead.WithLabelValues(name), upstream: m.upstream.WithLabelValues(name)}
	for i, code := range []string{"aborted", "1xx", "2xx", "3xx", "4xx", "5xx", "other"} {
		a.requests[i] = m.requests.WithLabelValues(name, code)
	}
	for i, kind := range upstreamKinds {
		a.errors[i] = m.upstreamErrors.WithLabelValues(name, kind)
	}
	m.apps[name] = a
	return a
}

// Handler returns next instrumented: each request is counted by the status
// class of its answer, and the time to its response head, less the
// upstream's (see ObserveUpstream), is observed as the gateway's overhead.
// A nil a returns next as it is.
//
// next gets a ResponseWriter of this package that passes everything on
// (Unwrap for http.ResponseController, Flush, Hijack) and that is reused
// for another request once next has returned: nothing may keep it past
// that. In particular, a body reader that outlives the handler (the
// transport's writing goroutine) must hold the writer under it (see
// Unwrap in package proxy), never this one.
func (a *App) Handler(next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorders.Get().(*Recorder)
		rec.ResponseWriter, rec.start, rec.app = w, time.Now(), a
		done := false
		defer func() {
			a.finish(rec, done)
			*rec = Recorder{}
			recorders.Put(rec)
		}()
		next.ServeHTTP(rec, r)
		done = true
	})
}

var recorders = sync.Pool{New: func() any { return new(Recorder) }}

// finish counts the request rec recorded; done is false when the handler
// panicked (http.ErrAbortHandler: the response was cut).
func (a *App) finish(rec *Recorder, done bool) {
	status := rec.status
	if status == 0 && done {
		status = http.StatusOK // net/http sends 200 for a handler that wrote nothing
	}
	i := status / 100
	switch {
	case status == 0 || (!done && rec.head == 0):
		i = 0
	case i < 1 || i > 5:
		i = 6
	}
	a.requests[i].Inc()
	if rec.head > 0 {
		d := rec.head - rec.up
		if d < 0 {
			d = 0
		}
		a.overhead.Observe(d.Seconds())
	}
}

// Recorder is the ResponseWriter of Handler; package proxy reports the
// upstream's time to it (ObserveUpstream).
type Recorder struct {
	http.ResponseWriter
	start  time.Time
	status int           // the first final status written (or 101 on a hijack)
	head   time.Duration // from start to the response head
	up     time.Duration // the upstream's time to its response head
	app    *App
}

// WriteHeader records the first final status (or 101) and when it was
// written.
func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status, r.head = code, time.Since(r.start)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status, r.head = http.StatusOK, time.Since(r.start)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap is for http.ResponseController.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush flushes the response (writing a 200 head first if none was).
func (r *Recorder) Flush() {
	if r.status == 0 {
		r.status, r.head = http.StatusOK, time.Since(r.start)
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack takes over the connection, which answers an upgrade (WebSocket):
// its response head is written on the connection, not through
// WriteHeader, so it counts as 101 from here.
func (r *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.status == 0 {
		r.status, r.head = http.StatusSwitchingProtocols, time.Since(r.start)
	}
	return c, brw, err
}

// ObserveUpstream records one round trip to the app's upstream: d from
// sending the request to its response head, or the error that came
// instead. The proxy calls it on the ResponseWriter it was given, through
// an interface of its own.
func (r *Recorder) ObserveUpstream(d time.Duration, err error) {
	if err != nil {
		r.app.errors[UpstreamKind(err)].Inc()
		return
	}
	r.up += d
	r.app.upstream.Observe(d.Seconds())
}

// UpstreamKind returns the index in upstreamKinds of err's kind.
func UpstreamKind(err error) int {
	var ne net.Error
	var dns *net.DNSError
	var rec tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var ae tls.AlertError
	switch {
	case errors.Is(err, context.Canceled):
		return 5 // the client went away, or the gateway ended the request
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return 0
	case errors.As(err, &dns):
		return 3
	case errors.Is(err, syscall.ECONNREFUSED):
		return 1
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return 2
	case errors.As(err, &rec), errors.As(err, &cv), errors.As(err, &ae):
		return 4
	}
	return 6
}
