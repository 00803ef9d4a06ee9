// Package selfcheck checks a running gateway from outside, the way an
// attacker on the internet sees it: which TLS versions and cipher suites it
// offers, which security headers its login page carries, whether it gives
// away its version, whether its login redirects anywhere it is told to,
// whether admin endpoints answer without a login, how it answers the known
// exploit probes against gateways and the request-parsing attacks of
// THREATS.md (sent byte for byte), and whether those probes get the source
// blocked. It works against any product, not only sluis.
//
// It is a client: the server never imports it.
package selfcheck

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status string

const (
	Pass Status = "pass"
	Warn Status = "warn" // weaker than it should be, or could not be decided
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is one check.
type Result struct {
	Group    string `json:"group"` // tls, headers, disclosure, redirect, admin, parsing, probe, blocking
	Name     string `json:"name"`
	Status   Status `json:"status"`
	Evidence string `json:"evidence"` // what was sent and what came back, printable ASCII
}

// Report is a whole run.
type Report struct {
	Target   string    `json:"target"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Insecure bool      `json:"insecure"` // certificate checks were skipped
	Notes    []string  `json:"notes,omitempty"`
	Checks   []Result  `json:"checks"`
	Passed   int       `json:"passed"`
	Warnings int       `json:"warnings"`
	Failed   int       `json:"failed"`
	Skipped  int       `json:"skipped"`
	// Interrupted says the run was stopped before its end: it proves
	// nothing about the checks it did not reach.
	Interrupted bool `json:"interrupted,omitempty"`
	// Down names the request after which the gateway stopped answering.
	Down string `json:"down,omitempty"`
}

// OK says whether the run ended and nothing failed.
func (r *Report) OK() bool { return r.Failed == 0 && !r.Interrupted }

// Options say what to check and how.
type Options struct {
	// URL is the gateway's public address, https only; its path is where
	// the check looks for the login page.
	URL string
	// RootCAs are the certificate authorities to trust; nil means the
	// system's.
	RootCAs *x509.CertPool
	// Insecure skips certificate verification; the report says so.
	Insecure bool
	// ConnectTo, if set, is the host:port dialled instead of the URL's
	// host (TLS server name and Host header still come from the URL), to
	// check a gateway before its DNS name points at it.
	ConnectTo string
	// Timeout bounds each request; zero means 5 seconds.
	Timeout time.Duration
	// BlockProbes is how many more exploit probes the blocking check sends
	// when the source is not blocked yet; zero means 30.
	BlockProbes int
	// Progress, if set, is called with each check as it finishes.
	Progress func(Result)
}

// maxBody is how much of each answer is read.
const maxBody = 64 << 10

// Run checks the gateway at o.URL. It returns an error only when the
// options are unusable; an unreachable gateway is a failed check.
func Run(ctx context.Context, o Options) (*Report, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("selfcheck: %q is not an https URL of a gateway", o.URL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.BlockProbes <= 0 {
		o.BlockProbes = 30
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	if o.ConnectTo != "" {
		addr = o.ConnectTo
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	c := &checker{
		o:      o,
		base:   u,
		host:   u.Host,
		server: u.Hostname(),
		addr:   addr,
		start:  path,
		canary: "selfcheck" + randomHex(8),
		report: &Report{Target: u.String(), Started: time.Now().UTC(), Insecure: o.Insecure},
	}
	if o.Insecure {
		c.report.Notes = append(c.report.Notes, "certificate checks were skipped (--insecure): this run does not show whether clients can trust the gateway")
	}
	c.ctx = ctx
	c.run(ctx)
	if ctx.Err() != nil {
		c.report.Interrupted = true
		c.report.Notes = append(c.report.Notes, "the run was interrupted; the checks it did not reach prove nothing")
	}
	if c.skippedBlocked > 0 {
		c.report.Notes = append(c.report.Notes, fmt.Sprintf("%d checks did not run because the gateway blocked this source: run again from an address it does not block, or with its blocking turned up, to see them", c.skippedBlocked))
	}
	c.report.Seconds = time.Since(c.report.Started).Seconds()
	return c.report, nil
}

// checker holds one run's state. Checks run one after another.
type checker struct {
	o      Options
	base   *url.URL
	host   string // Host header: the URL's host[:port]
	server string // TLS server name
	addr   string // dialled
	start  string // the URL's path
	canary string // a random marker sent where a reflection would show
	report *Report

	login     string // path of the login page, once found
	landing   answer // the login page's answer
	unknown   answer // the answer for a path that cannot exist
	sent      int    // requests sent so far
	probes    int    // exploit probes sent so far
	blockedAt string // the check after which the source was first refused
	blockedN  int    // requests sent by then

	ctx            context.Context // the run's; a cancelled run records nothing more
	skippedBlocked int             // checks not run because the source was blocked
	down           bool            // the gateway stopped answering
}

func (c *checker) run(ctx context.Context) {
	if !c.checkTLS(ctx) {
		c.report.Notes = append(c.report.Notes, "no TLS connection could be made; the other checks did not run")
		return
	}
	if !c.findLogin(ctx) {
		return
	}
	steps := []struct {
		group string
		run   func(context.Context)
	}{
		{"headers", c.checkHeaders},
		{"disclosure", c.checkDisclosure},
		{"redirect", c.checkRedirects},
		{"admin", c.checkAdmin},
		{"parsing", func(ctx context.Context) { c.checkAttacks(ctx, "parsing", parsingAttacks(c)) }},
		{"probe", func(ctx context.Context) { c.checkAttacks(ctx, "probe", exploitProbes) }},
	}
	for _, s := range steps {
		if ctx.Err() != nil || c.down {
			return
		}
		s.run(ctx)
	}
	if !c.down {
		c.checkBlocking(ctx)
	}
}

// skipBlocked records a check that is not run because the source is
// blocked: a block's refusal says nothing about the attack. It reports
// whether it did.
func (c *checker) skipBlocked(group, name string) bool {
	if c.blockedAt == "" {
		return false
	}
	c.skippedBlocked++
	c.add(group, name, Skip, "not run: this source is blocked since "+strconv.Quote(c.blockedAt))
	return true
}

// stillUp checks, after an answer that was no HTTP answer, that the
// gateway still answers at all; if not, the run ends there.
func (c *checker) stillUp(ctx context.Context, after string) bool {
	a := c.get(ctx, c.login)
	if a.err == nil && !a.closed && !a.timeout && !a.garbled {
		return true
	}
	if ctx.Err() != nil {
		return true // interrupted, not down
	}
	c.down = true
	c.report.Down = after
	c.report.Notes = append(c.report.Notes, fmt.Sprintf("the gateway stopped answering after %q (%s); the checks after it did not run", after, a))
	return false
}

// watchBlock notices when the gateway starts refusing this source: after
// an answer that could be a block, it asks for the login page again.
func (c *checker) watchBlock(ctx context.Context, check string, a answer) {
	if c.blockedAt != "" || ctx.Err() != nil || !(a.status == 403 || a.status == 429 || a.closed) {
		return
	}
	n := c.sent
	if c.refusedNow(ctx) {
		c.blockedAt, c.blockedN = check, n
		c.report.Notes = append(c.report.Notes, fmt.Sprintf("the gateway refused this source from the check %q on (after %d requests)", check, n))
	}
}

// add records a result and reports progress. Nothing is recorded once
// the run is cancelled: a cut-off request proves nothing.
func (c *checker) add(group, name string, st Status, evidence string) {
	if c.ctx != nil && c.ctx.Err() != nil {
		return
	}
	r := Result{Group: group, Name: name, Status: st, Evidence: printable(evidence, 300)}
	c.report.Checks = append(c.report.Checks, r)
	switch st {
	case Pass:
		c.report.Passed++
	case Warn:
		c.report.Warnings++
	case Fail:
		c.report.Failed++
	case Skip:
		c.report.Skipped++
	}
	if c.o.Progress != nil {
		c.o.Progress(r)
	}
}

// ---- the wire ----

// tlsConfig is the configuration for checks that care about the
// certificate (verify) or only about what the server offers (!verify).
func (c *checker) tlsConfig(verify bool) *tls.Config {
	return &tls.Config{
		ServerName:         c.server,
		RootCAs:            c.o.RootCAs,
		InsecureSkipVerify: c.o.Insecure || !verify,
		NextProtos:         []string{"http/1.1"},
	}
}

func (c *checker) dial(ctx context.Context, conf *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: conf}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	return conn.(*tls.Conn), nil
}

// answer is what came back for one raw request.
type answer struct {
	sent    string // the request line, for evidence
	status  int
	reason  string
	header  http.Header
	body    []byte
	closed  bool   // the connection ended before a byte of an answer
	garbled bool   // bytes came back, but not an HTTP answer
	raw     []byte // the start of what came back, when garbled
	timeout bool   // no answer in time
	err     error  // could not send at all
}

func (a answer) String() string {
	switch {
	case a.err != nil:
		return "could not send: " + a.err.Error()
	case a.timeout:
		return "no answer in time"
	case a.closed:
		return "connection closed without an answer"
	case a.garbled:
		return fmt.Sprintf("not an HTTP answer: %q", snippet(a.raw))
	}
	s := a.reason
	if loc := a.header.Get("Location"); loc != "" {
		s += ", Location: " + loc
	}
	if len(a.body) > 0 {
		s += fmt.Sprintf(", %d bytes %q", len(a.body), snippet(a.body))
	}
	return s
}

// served says whether the answer is content (2xx or a protocol switch).
func (a answer) served() bool { return a.status == 101 || a.status >= 200 && a.status < 300 }

// refusal says whether the gateway turned the request away.
func (a answer) refusal() bool {
	return a.closed || a.status >= 400 && a.status < 500 || a.status == 501 || a.status == 505
}

// body returns everything that came back, for leak checks.
func (a answer) all() []byte {
	if a.garbled {
		return a.raw
	}
	return a.body
}

// request builds a raw HTTP/1.1 request. Header lines are sent as given;
// a body gets a Content-Length unless a framing header is among them.
func (c *checker) request(method, target string, header []string, body string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	hasHost, framed := false, false
	for _, h := range header {
		name, _, _ := strings.Cut(h, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "host":
			hasHost = true
		case "content-length", "transfer-encoding":
			framed = true
		}
	}
	if !hasHost {
		b.WriteString("Host: " + c.host + "\r\n")
	}
	// An attack's own User-Agent or Connection is sent alone, as the
	// exploit sends it.
	if !has(header, "user-agent") {
		b.WriteString("User-Agent: sluis-selfcheck\r\n")
	}
	b.WriteString("Accept: */*\r\n")
	if !has(header, "connection") {
		b.WriteString("Connection: close\r\n")
	}
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	if body != "" && !framed {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

func has(header []string, name string) bool {
	for _, h := range header {
		n, _, _ := strings.Cut(h, ":")
		if strings.EqualFold(strings.TrimSpace(n), name) {
			return true
		}
	}
	return false
}

// maxAnswer bounds what is read of one answer, headers included: a
// hostile gateway cannot make the check buffer without end.
const maxAnswer = 1 << 20

// send writes raw on a new TLS connection and reads one answer.
func (c *checker) send(ctx context.Context, raw string) answer {
	line, _, _ := strings.Cut(raw, "\r\n")
	a := answer{sent: line}
	c.sent++
	conn, err := c.dial(ctx, c.tlsConfig(false))
	if err != nil {
		a.err = err
		return a
	}
	// Closing the connection (not draining the body) ends each exchange,
	// so an endless body costs nothing.
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(c.o.Timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// A gateway may answer and close before the whole request is written
	// (a 413 for a body it will not read); the answer is what counts.
	_, _ = io.WriteString(conn, raw)
	seen := &prefix{max: 4 << 10}
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(conn, maxAnswer), seen), 16<<10)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, nil)
		// 1xx answers (103 Early Hints) come before the real one.
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == 101 {
			break
		}
	}
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			a.timeout = true
		case len(seen.b) == 0:
			a.closed = true
		default:
			a.garbled, a.raw = true, seen.b
		}
		return a
	}
	a.status, a.reason, a.header = resp.StatusCode, resp.Status, resp.Header
	a.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return a
}

// prefix keeps the first max bytes written to it.
type prefix struct {
	b   []byte
	max int
}

func (p *prefix) Write(b []byte) (int, error) {
	if room := p.max - len(p.b); room > 0 {
		p.b = append(p.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

// get sends a plain GET for target.
func (c *checker) get(ctx context.Context, target string, header ...string) answer {
	return c.send(ctx, c.request("GET", target, header, ""))
}

// findLogin follows redirects from the URL on the same host (at most 5)
// to the login page, and fetches a path that cannot exist.
func (c *checker) findLogin(ctx context.Context) bool {
	target := c.start
	var a answer
	for hop := 0; ; hop++ {
		a = c.get(ctx, target)
		loc := a.header.Get("Location")
		if a.status < 300 || a.status > 399 || loc == "" || hop == 5 {
			break
		}
		next, err := c.base.Parse(loc)
		if err != nil || next.Scheme != "https" || !sameHost(next.Host, c.host) {
			break // the login lives elsewhere (an identity provider); check what is here
		}
		target = next.EscapedPath()
		if next.RawQuery != "" {
			target += "?" + next.RawQuery
		}
	}
	if a.err != nil || a.closed || a.timeout {
		c.add("headers", "login page reachable", Fail, fmt.Sprintf("GET %s: %s", target, a))
		c.report.Notes = append(c.report.Notes, "the login page could not be fetched; the other checks did not run")
		return false
	}
	// oauth2-proxy serves its sign-in page as a 403, Basic-auth gateways
	// answer 401: a login is a login.
	isLogin := isLoginForm(a.body) || a.status == 401 && a.header.Get("WWW-Authenticate") != ""
	if a.status >= 400 && !isLogin {
		c.add("headers", "login page reachable", Fail, fmt.Sprintf("GET %s: %s", target, a))
		if a.status == 403 || a.status == 429 {
			c.report.Notes = append(c.report.Notes, "the login page is refused: this address may still be blocked by an earlier run (lift the block or check from another address); the other checks did not run")
		} else {
			c.report.Notes = append(c.report.Notes, "the login page is refused; the other checks did not run")
		}
		return false
	}
	c.login, _, _ = strings.Cut(target, "?")
	c.landing = a
	st := Pass
	ev := fmt.Sprintf("GET %s: %s", target, a.reason)
	if !isLoginForm(a.body) {
		st = Warn
		ev += "; no password field found on it"
	}
	c.add("headers", "login page reachable", st, ev)
	c.unknown = c.get(ctx, "/"+c.canary)
	return true
}

// refusedNow says whether the login page, which answered at the start,
// is now refused: the source is blocked.
func (c *checker) refusedNow(ctx context.Context) bool {
	a := c.get(ctx, c.login)
	return (a.status == 403 || a.status == 429 || a.closed) && a.status != c.landing.status
}

// ---- helpers ----

// sameHost compares two host[:port] values, 443 being https's own port.
func sameHost(a, b string) bool {
	norm := func(h string) string { return strings.TrimSuffix(strings.ToLower(h), ":443") }
	return norm(a) == norm(b)
}

func isLoginForm(body []byte) bool {
	s := strings.ToLower(string(body))
	return strings.Contains(s, `type="password"`) || strings.Contains(s, `type=password`) || strings.Contains(s, `type='password'`)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// snippet is the start of a body, for evidence.
func snippet(b []byte) string {
	const n = 80
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// printable keeps what a gateway sent from steering the operator's
// terminal: anything but printable ASCII is escaped, and long text is cut.
func printable(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
	}
	return b.String()
}
