// Package metrics is what a sluis node tells Prometheus: requests, latency,
// logins, probes, blocks, what is open now, the audit trail's writes and
// reloads, in the Prometheus text format on a handler of its own (Handler),
// which the admin listener mounts at /metrics. Nothing is registered with
// the client library's global registry: a Metrics is one node's, and tests
// can have several.
//
// Labels have bounded cardinality: app names come from the configuration,
// methods, outcomes, kinds and status classes from fixed sets, probe rules
// from the front door's own list (capped, see MaxRules). No user names,
// paths or source addresses are ever labels.
//
// Every method works on a nil *Metrics (and a nil *App) and then does
// nothing, so parts built without metrics (tests, benchmarks) need no
// checks of their own.
package metrics

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Methods of a login or second factor: the values of the method label.
// Anything else counts as MethodOther.
const (
	MethodPassword = "password" // a local user's password
	MethodLDAP     = "ldap"     // a directory password
	MethodOIDC     = "oidc"     // an identity provider
	MethodPasskey  = "passkey"
	MethodTOTP     = "totp"
	MethodRecovery = "recovery" // a recovery code
	MethodDevice   = "device"   // a `sluis connect` device approval
	MethodOther    = "other"
)

// Outcomes of a login or second factor: the values of the outcome label.
const (
	OutcomeSuccess   = "success"
	OutcomeFailure   = "failure"   // a wrong secret, an unknown user
	OutcomeDenied    = "denied"    // right secret, but not allowed (disabled, lockdown, frozen enrolment)
	OutcomeThrottled = "throttled" // refused unchecked: too many attempts
)

var (
	methods  = []string{MethodPassword, MethodLDAP, MethodOIDC, MethodPasskey, MethodTOTP, MethodRecovery, MethodDevice, MethodOther}
	outcomes = []string{OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeThrottled}
)

// MaxRules bounds the distinct values of the probe rule label; probes of
// rules beyond it count under "other". The front door's rules are a fixed
// list well below it.
const MaxRules = 200

// Metrics are one node's metrics.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	overhead       *prometheus.HistogramVec
	upstream       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	logins         [][]prometheus.Counter // [method][outcome]
	factors        [][]prometheus.Counter
	throttled      *prometheus.CounterVec
	probes         *prometheus.CounterVec
	blocksAdded    prometheus.Counter
	auditWrite     prometheus.Histogram
	auditErrors    prometheus.Counter
	reloads        *prometheus.CounterVec
	lastReload     prometheus.Gauge

	live atomic.Pointer[Live]

	mu     sync.Mutex // guards apps, rules and syslog
	apps   map[string]*App
	rules  map[string]prometheus.Counter
	syslog bool
}

// New returns the metrics of a node, with the Go runtime's and the
// process's own (go_*, process_*) and sluis_build_info.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), apps: map[string]*App{}, rules: map[string]prometheus.Counter{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_requests_total",
		Help: "Requests to app hosts answered, by app and status class (1xx..5xx; aborted: the response was cut before its head)."},
		[]string{"app", "code"})
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluis_gateway_overhead_seconds",
		Help:    "Time from a request reaching its app host's handler to its response head, less the upstream's time to its response head: what the gateway adds.",
		Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}},
		[]string{"app"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluis_upstream_response_seconds",
		Help:    "Time from sending a request to the app's upstream to its response head.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}},
		[]string{"app"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_upstream_errors_total",
		Help: "Requests to an app's upstream that got no response head, by app and kind (timeout, refused, reset, dns, tls, canceled, other)."},
		[]string{"app", "kind"})
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_logins_total",
		Help: "First steps of logins (a password, a directory password, an identity provider, a passwordless passkey, a device approval), by method and outcome."},
		[]string{"method", "outcome"})
	factors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_second_factors_total",
		Help: "Second factors (at login, step-up or enrolment), by method and outcome."},
		[]string{"method", "outcome"})
	m.logins, m.factors = resolve(logins), resolve(factors)
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_throttled_total",
		Help: "Attempts at a secret refused unchecked because their user, source or browser had too many, by kind (login, second_factor)."},
		[]string{"kind"})
	m.probes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_probes_total",
		Help: "Requests and connections counted as probes toward their source's block, by the rule that matched."},
		[]string{"rule"})
	m.blocksAdded = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluis_blocks_added_total",
		Help: "Automatic blocks stored: sources that probed too often."})
	m.auditWrite = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluis_audit_write_seconds",
		Help:    "Time to store one batch of audit events (one transaction), successful or not.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}})
	m.auditErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluis_audit_write_errors_total",
		Help: "Batches of audit events the store did not take."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluis_config_reloads_total",
		Help: "Configuration reloads, by result (success: the new configuration is in force; failure: it was refused and the old one stays)."},
		[]string{"result"})
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluis_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in force was loaded (at start or by the last successful reload), in seconds since 1970."})
	m.lastReload.SetToCurrentTime()
	version, goversion := "(unknown)", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluis_build_info",
		Help:        "Always 1; its labels say which sluis (the module version, (devel) for a build from a work tree) and which Go built it.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goversion}})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.overhead, m.upstream, m.upstreamErrors, logins, factors, m.throttled, m.probes,
		m.blocksAdded, m.auditWrite, m.auditErrors, m.reloads, m.lastReload, build, liveCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// resolve returns the children of v for every method and outcome, so that
// counting one needs no lookup.
func resolve(v *prometheus.CounterVec) [][]prometheus.Counter {
	out := make([][]prometheus.Counter, len(methods))
	for i, me := range methods {
		out[i] = make([]prometheus.Counter, len(outcomes))
		for j, o := range outcomes {
			out[i][j] = v.WithLabelValues(me, o)
		}
	}
	return out
}

func index(list []string, v string) int {
	for i, s := range list {
		if s == v {
			return i
		}
	}
	return -1
}

// Registry returns the registry the metrics are in (for tests, and to add
// a collector of a part built elsewhere).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Login counts the first step of a login by method (Method*) and outcome
// (Outcome*); a method or outcome outside those sets counts as "other"
// and "failure".
func (m *Metrics) Login(method, outcome string) {
	if m == nil {
		return
	}
	count(m.logins, method, outcome)
	if outcome == OutcomeThrottled {
		m.throttled.WithLabelValues("login").Inc()
	}
}

// SecondFactor counts a second factor by method and outcome, as Login.
func (m *Metrics) SecondFactor(method, outcome string) {
	if m == nil {
		return
	}
	count(m.factors, method, outcome)
	if outcome == OutcomeThrottled {
		m.throttled.WithLabelValues("second_factor").Inc()
	}
}

func count(c [][]prometheus.Counter, method, outcome string) {
	i, j := index(methods, method), index(outcomes, outcome)
	if i < 0 {
		i = index(methods, MethodOther)
	}
	if j < 0 {
		j = index(outcomes, OutcomeFailure)
	}
	c[i][j].Inc()
}

// Probe counts a probe that matched rule (one of the front door's fixed
// rule names; past MaxRules distinct ones, "other").
func (m *Metrics) Probe(rule string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	c, ok := m.rules[rule]
	if !ok {
		if len(m.rules) >= MaxRules {
			rule = "other"
		}
		c = m.probes.WithLabelValues(rule)
		if len(m.rules) < MaxRules {
			m.rules[rule] = c
		}
	}
	m.mu.Unlock()
	c.Inc()
}

// BlockAdded counts an automatic block that was stored.
func (m *Metrics) BlockAdded() {
	if m == nil {
		return
	}
	m.blocksAdded.Inc()
}

// AuditWrite observes the time one batch of audit events took to store,
// and whether the store took it.
func (m *Metrics) AuditWrite(d time.Duration, ok bool) {
	if m == nil {
		return
	}
	m.auditWrite.Observe(d.Seconds())
	if !ok {
		m.auditErrors.Inc()
	}
}

// Reloaded counts a configuration reload: ok means the new configuration
// is in force (and sets the last-success time to now), !ok that it was
// refused.
func (m *Metrics) Reloaded(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReload.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
}

// Syslog adds the gauges of the syslog forwarder: queued returns how many
// events wait for the receiver now, dropped how many overflowed the queue
// since the start. Only the first call counts (one forwarder per node).
func (m *Metrics) Syslog(queued func() int, dropped func() uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.syslog {
		return
	}
	m.syslog = true
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluis_syslog_queue_events",
			Help: "Audit events waiting to be forwarded to the syslog receiver."}, func() float64 { return float64(queued()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sluis_syslog_dropped_total",
			Help: "Audit events not forwarded to the syslog receiver because its queue was full (they are in the trail)."}, func() float64 { return float64(dropped()) }),
	)
}

// Live is what is open now, read when Prometheus scrapes. Each function
// may be nil (its series are then left out); each must be safe to call
// from any goroutine.
type Live struct {
	// Sessions counts the live sessions in the store (with a completed
	// login, neither revoked nor expired): of all nodes that share it.
	Sessions func(ctx context.Context) (int, error)
	// Tunnels counts this node's open tunnels by app.
	Tunnels func() map[string]int
	// Requests counts this node's proxied requests in flight by app:
	// streams (any response still under way) and WebSockets (upgraded
	// connections) apart.
	Requests func() (streams, websockets map[string]int)
	// Blocks counts the blocks in force now: automatic ones and an
	// operator's.
	Blocks func(ctx context.Context) (automatic, operator int, err error)
}

// SetLive sets where the gauges of what is open are read; a gateway built
// again (a reload) sets its own, which replace the old ones.
func (m *Metrics) SetLive(l Live) {
	if m == nil {
		return
	}
	m.live.Store(&l)
}

// scrapeTimeout bounds the store queries of one scrape.
const scrapeTimeout = 2 * time.Second

var (
	descSessions = prometheus.NewDesc("sluis_sessions_active", "Live sessions with a completed login (in the store: of every node that shares it).", nil, nil)
	descTunnels  = prometheus.NewDesc("sluis_tunnels_open", "Tunnels open on this node, by app.", []string{"app"}, nil)
	descRequests = prometheus.NewDesc("sluis_requests_open", "Proxied requests in flight on this node, by app and kind (stream: a response under way; websocket: an upgraded connection).", []string{"app", "kind"}, nil)
	descBlocks   = prometheus.NewDesc("sluis_blocks_in_force", "Blocks of sources in force now, by kind (automatic, operator).", []string{"kind"}, nil)
)

// liveCollector reads Live at each scrape.
type liveCollector struct{ m *Metrics }

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessions
	ch <- descTunnels
	ch <- descRequests
	ch <- descBlocks
}

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.m.live.Load()
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	// A store that cannot answer leaves its series out of this scrape
	// (Prometheus marks them stale) rather than reporting a made-up zero.
	if l.Sessions != nil {
		if n, err := l.Sessions(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(n))
		}
	}
	if l.Blocks != nil {
		if auto, op, err := l.Blocks(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(auto), "automatic")
			ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(op), "operator")
		}
	}
	// Every configured app has its series, zero when nothing is open, so
	// that a dashboard's sum does not jump when the first one opens.
	apps := c.m.appNames()
	if l.Tunnels != nil {
		n := l.Tunnels()
		for _, app := range c.m.tcpAppNames(apps, n) {
			ch <- prometheus.MustNewConstMetric(descTunnels, prometheus.GaugeValue, float64(n[app]), app)
		}
	}
	if l.Requests != nil {
		streams, ws := l.Requests()
		for _, app := range apps {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.GaugeValue, float64(streams[app]), app, "stream")
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.GaugeValue, float64(ws[app]), app, "websocket")
		}
	}
}

// appNames returns the web apps that have series (App was called for them).
func (m *Metrics) appNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.apps))
	for name := range m.apps {
		out = append(out, name)
	}
	return out
}

// tcpAppNames returns the apps of the tunnel counts that are not web apps
// (TCP apps come from the configuration too, through the tunnel server's
// own list): a count under a web app's name would be a bug, and is left
// out so that it cannot collide with that app's series.
func (m *Metrics) tcpAppNames(web []string, n map[string]int) []string {
	out := make([]string, 0, len(n))
	for app := range n {
		if index(web, app) < 0 {
			out = append(out, app)
		}
	}
	return out
}
