// Package connect is the client side of tunnels: `sluis connect` logs its
// user in once (a device login approved on the portal, or a password and
// code for scripts) and then carries TCP connections accepted on a local
// port, or standard input and output, through the gateway to a TCP app.
// Each connection is one HTTP/2 stream; all of them share one TLS
// connection.
//
// It is a client: the server never imports it.
package connect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The gateway's API for this client (the tunnel package's PathPrefix,
// LogoutPath and UserHeader).
const (
	tunnelPrefix = "/.sluis/tunnel/"
	logoutPath   = "/.sluis/connect/logout"
	userHeader   = "Sluis-User"
)

// ErrLogin means the gateway does not (or no longer) accept the token: the
// user must log in again.
var ErrLogin = errors.New("not logged in to the gateway (or the session ended)")

// Options say how to reach the gateway.
type Options struct {
	Gateway *url.URL       // the portal's https URL
	RootCAs *x509.CertPool // nil: the system's
	// ConnectTo, if set, is dialled instead of the gateway's host.
	ConnectTo string
}

// NewHTTP returns the client that talks to the gateway: HTTP/2 only, so
// that every tunnel is a stream of one TLS connection.
func NewHTTP(o Options) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	conf := &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	tr := &http.Transport{
		TLSClientConfig:     conf,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		// The TLS connection batches its records (see batchConn).
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return dialTLS(ctx, d, o, conf, addr)
		},
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	// Pings find a connection that died without a word (a laptop that
	// slept, a NAT that forgot it): it is given up, and the next tunnel
	// dials anew.
	//
	// Frames up to 256 KiB; a stream may have 4 MiB in flight towards the
	// client (it is the client's memory, for the client's own streams),
	// so that a bulk transfer is not held up by window updates on a busy
	// machine.
	tr.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: 256 << 10, MaxReceiveBufferPerStream: 4 << 20, MaxReceiveBufferPerConnection: 16 << 20,
		SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	// No redirects: a token must not follow one anywhere.
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Reconnecting: how long a new connection waits for the gateway, and how
// often it is asked.
const (
	// DefaultRetryFor is how long a new connection waits for a gateway
	// that cannot be reached (restarting, or its node draining while the
	// balancer moves to another) before it is given up.
	DefaultRetryFor = time.Minute
	firstRetry      = 100 * time.Millisecond
	maxRetry        = 2 * time.Second
)

// Client carries connections to one TCP app.
//
// When the gateway goes away (it restarts, or its node drains and tells
// the client so with an HTTP/2 GOAWAY), the client reconnects by itself
// with the login it holds: a new connection waits for the gateway (up to
// RetryFor), asking again with a growing pause (at most 2 s); no new login
// is needed while the session is valid (a gateway that no longer knows the
// token answers 401, and the client stops and says to log in again). A
// connection that was open when the gateway went away cannot be resumed:
// it is closed (an SSH session ends), and the next one goes through.
type Client struct {
	Gateway *url.URL
	App     string
	Token   string
	HTTP    *http.Client
	// Log receives one line per connection opened or refused, and a line
	// when the gateway is lost and found again; nil means nothing is
	// said.
	Log func(format string, args ...any)
	// RetryFor is how long a new connection waits for a gateway that
	// cannot be reached; zero means DefaultRetryFor.
	RetryFor time.Duration

	bg           sync.WaitGroup // the background reconnect
	mu           sync.Mutex     // guards the fields below
	lostAt       time.Time      // when the gateway was lost; zero while it answers
	reconnecting bool           // a background reconnect runs (Serve)
}

func (c *Client) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

func (c *Client) tunnelURL() string {
	return strings.TrimSuffix(c.Gateway.String(), "/") + tunnelPrefix + url.PathEscape(c.App)
}

// RefusedError is the gateway's refusal, with its reason.
type RefusedError struct {
	Status  int
	Message string
}

func (e *RefusedError) Error() string { return "the gateway refused: " + e.Message }

// answerError turns a refusal into an error carrying the gateway's reason.
func answerError(resp *http.Response) error {
	if resp.StatusCode == http.StatusUnauthorized {
		return ErrLogin
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	msg := strings.TrimSpace(printable(string(b)))
	if msg == "" {
		msg = resp.Status
	}
	return &RefusedError{Status: resp.StatusCode, Message: msg}
}

// transient reports whether err means that the gateway cannot be reached
// now, and asking again later may succeed: no answer at all (refused,
// reset, a GOAWAY), or a balancer's or the gateway's own 502, 503 or 504
// (its store cannot be reached). A refusal of the login or of the app is
// not transient.
func transient(err error) bool {
	if err == nil || errors.Is(err, ErrLogin) || errors.Is(err, context.Canceled) {
		return false
	}
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Status == http.StatusBadGateway || re.Status == http.StatusServiceUnavailable || re.Status == http.StatusGatewayTimeout
	}
	return true
}

// lost notes that the gateway cannot be reached, saying so once.
func (c *Client) lost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lostAt.IsZero() {
		c.lostAt = time.Now()
		c.logf("the gateway is not available (%v); reconnecting with the saved login", err)
	}
}

// found notes that the gateway answers (again).
func (c *Client) found() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lostAt.IsZero() {
		c.logf("reconnected to the gateway after %s, with the saved login", time.Since(c.lostAt).Round(time.Millisecond))
		c.lostAt = time.Time{}
	}
}

// pause waits for a growing, jittered pause after a failed attempt (so
// that the clients of a restarted gateway do not all come back at the
// same moment), and returns the next pause; false means ctx ended.
func pause(ctx context.Context, d time.Duration) (time.Duration, bool) {
	jittered := d/2 + time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(jittered)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return d, false
	case <-t.C:
	}
	return min(2*d, maxRetry), true
}

// open opens a tunnel stream whose body is what u reads from the local
// side, waiting for a gateway that cannot be reached now for up to
// RetryFor. What was read before the answer is kept (see upload), so an
// attempt that failed is made again as it was.
func (c *Client) open(ctx context.Context, u *upload) (*http.Response, *attempt, error) {
	retryFor := c.RetryFor
	if retryFor == 0 {
		retryFor = DefaultRetryFor
	}
	give := time.Now().Add(retryFor)
	wait := firstRetry
	for {
		body := u.attempt()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tunnelURL(), body)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := c.HTTP.Do(req)
		if err == nil && resp.StatusCode == http.StatusOK {
			u.answer(body)
			c.found()
			return resp, body, nil
		}
		body.Close()
		if err == nil {
			err = answerError(resp)
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if !transient(err) {
			if !errors.Is(err, ErrLogin) {
				c.found() // it answered
			}
			return nil, nil, err
		}
		c.lost(err)
		if time.Now().After(give) {
			return nil, nil, fmt.Errorf("the gateway could not be reached for %s: %w", retryFor, err)
		}
		var ok bool
		if wait, ok = pause(ctx, wait); !ok {
			return nil, nil, ctx.Err()
		}
	}
}

// reconnect asks the gateway until it answers again, with the saved login,
// and returns nil then, or ErrLogin when the login is no longer accepted.
// Serve runs it in the background after a tunnel was cut, so that the
// client says at once when the gateway is back.
func (c *Client) reconnect(ctx context.Context) error {
	wait := firstRetry
	for {
		_, err := c.Check(ctx)
		switch {
		case errors.Is(err, ErrLogin):
			return err
		case !transient(err):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.found()
			return nil
		}
		c.lost(err)
		var ok bool
		if wait, ok = pause(ctx, wait); !ok {
			return ctx.Err()
		}
	}
}

// Check asks whether the app may be used now, without opening a tunnel,
// and returns whose the token is: the gateway names the user in every
// answer to a valid token, refusals included. An empty user means the
// gateway did not say (the token is not valid, or the gateway was not
// reached).
func (c *Client) Check(ctx context.Context) (user string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.tunnelURL(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		user = printable(resp.Header.Get(userHeader))
	}
	if resp.StatusCode != http.StatusNoContent {
		return user, answerError(resp)
	}
	return user, nil
}

// Logout ends the token's session on the gateway (and with it the tunnels
// it carries) and returns whose it was. ErrLogin means that the gateway
// did not know the token: the session had already ended.
func Logout(ctx context.Context, hc *http.Client, gateway *url.URL, token string) (user string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(gateway.String(), "/")+logoutPath, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return "", answerError(resp)
	}
	return printable(resp.Header.Get(userHeader)), nil
}

// Pipe carries one connection: what is read from in goes to the app, what
// the app sends is written to out. When in ends, the app is told (a
// half-close); Pipe returns when the app's side has ended too, or ctx
// ends.
func (c *Client) Pipe(ctx context.Context, in io.Reader, out io.Writer) (up, down int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The local side is read at once, and its first bytes go out with the
	// stream's headers (see upload).
	u := newUpload(in)
	resp, body, err := c.open(ctx, u)
	if err != nil {
		// Its reader ends when the caller closes in.
		u.stop()
		return 0, 0, err
	}
	defer resp.Body.Close()
	lw := &localWriter{w: out}
	down, err = copyAdaptive(lw, resp.Body)
	if err != nil && err == lw.err && localClosed(err) {
		// The local side went away while the app was still sending: its
		// own close, not a failure of the tunnel.
		err = nil
	}
	if err != nil && err != lw.err {
		// The gateway's side failed: the stream was cut (the gateway shut
		// down, or the connection to it broke).
		err = &CutError{Err: err}
	}
	if cw, ok := out.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	// The app's side ended: stop reading the local side too.
	if cl, ok := in.(io.Closer); ok {
		cl.Close()
	}
	body.Close()
	u.stop()
	<-u.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return u.n, down, err
}

// CutError means that an open tunnel was cut on the gateway's side: the
// gateway shut down (its grace ran out), its store could not be reached,
// the session was revoked or the app withdrawn, the tunnel idled out, or
// the connection to the gateway broke. The connection cannot be resumed;
// Serve asks the gateway at once whether the login still holds.
type CutError struct{ Err error }

func (e *CutError) Error() string {
	return "cut on the gateway's side (" + e.Err.Error() + "); it cannot be resumed"
}

func (e *CutError) Unwrap() error { return e.Err }

// localWriter remembers why a write to the local side failed, so Pipe can
// tell the local side's close from the gateway's failure.
type localWriter struct {
	w   io.Writer
	err error
}

func (l *localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		l.err = err
	}
	return n, err
}

// localClosed reports whether an error of the local connection means that
// the local side closed it: a broken pipe, or a reset (a socket closed
// with data unread is reset).
func localClosed(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// Serve accepts connections on ln and carries each through the gateway
// until ctx ends. A refusal of the gateway ends Serve when it means the
// login is gone (ErrLogin); other refusals close only that connection.
func (c *Client) Serve(ctx context.Context, ln net.Listener) error {
	defer c.bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); ln.Close() }()
	var mu sync.Mutex
	var loginErr error
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			if loginErr != nil {
				return loginErr
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			start := time.Now()
			up, down, err := c.Pipe(ctx, conn, conn)
			switch {
			case errors.Is(err, ErrLogin):
				c.logf("connection from %s refused: %v; run sluis connect again to log in", conn.RemoteAddr(), err)
				mu.Lock()
				loginErr = err
				mu.Unlock()
				ln.Close()
			case err != nil:
				c.logf("connection from %s: %v", conn.RemoteAddr(), err)
				if _, cut := errors.AsType[*CutError](err); cut && ctx.Err() == nil {
					c.reconnectInBackground(ctx, func(err error) {
						c.logf("the gateway no longer accepts the login: %v; run sluis connect again to log in", err)
						mu.Lock()
						loginErr = err
						mu.Unlock()
						ln.Close()
					})
				}
			default:
				c.logf("connection from %s closed after %s: %d bytes sent, %d received", conn.RemoteAddr(), time.Since(start).Round(time.Millisecond), up, down)
			}
		}()
	}
}

// reconnectInBackground runs reconnect unless it runs already; loginGone
// is called if the gateway no longer accepts the login.
func (c *Client) reconnectInBackground(ctx context.Context, loginGone func(error)) {
	c.mu.Lock()
	if c.reconnecting {
		c.mu.Unlock()
		return
	}
	c.reconnecting = true
	c.mu.Unlock()
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		err := c.reconnect(ctx)
		c.mu.Lock()
		c.reconnecting = false
		c.mu.Unlock()
		if errors.Is(err, ErrLogin) {
			loginGone(err)
		}
	}()
}

// ---- logging in ----

// DeviceStart is what the gateway answers to a device login's start.
type DeviceStart struct {
	DeviceCode string `json:"device_code"`
	UserCode   string `json:"user_code"`
	Interval   int    `json:"interval"`
	ExpiresIn  int    `json:"expires_in"`
}

var userCodeRE = regexp.MustCompile(`^[A-Z]{4}-[A-Z]{4}$`)

// ApproveURL is where the user types the code: built from the gateway's
// address as given to the client, never taken from the gateway's answer.
func ApproveURL(gateway *url.URL) string {
	return strings.TrimSuffix(gateway.String(), "/") + "/device"
}

func postJSON(ctx context.Context, hc *http.Client, u string, in, out any) (int, error) {
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("the gateway answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// StartDevice starts a device login.
func StartDevice(ctx context.Context, hc *http.Client, gateway *url.URL) (DeviceStart, error) {
	var s DeviceStart
	status, err := postJSON(ctx, hc, strings.TrimSuffix(gateway.String(), "/")+"/device/start", struct{}{}, &s)
	if err != nil {
		return s, err
	}
	if status != http.StatusOK || s.DeviceCode == "" {
		return s, fmt.Errorf("the gateway refused to start a login (%d)", status)
	}
	if !userCodeRE.MatchString(s.UserCode) {
		return s, errors.New("the gateway answered a login code that is not one")
	}
	return s, nil
}

// WaitDevice polls until the device login is approved (and returns the
// token and the user), denied or expired.
func WaitDevice(ctx context.Context, hc *http.Client, gateway *url.URL, s DeviceStart) (token, user string, err error) {
	every := time.Duration(max(s.Interval, 1)) * time.Second
	for {
		var p struct {
			Status, Token, User string
		}
		if status, err := postJSON(ctx, hc, strings.TrimSuffix(gateway.String(), "/")+"/device/poll", map[string]string{"device_code": s.DeviceCode}, &p); err != nil && status != http.StatusTooManyRequests {
			return "", "", err
		}
		switch p.Status {
		case "approved":
			return p.Token, p.User, nil
		case "denied":
			return "", "", errors.New("the login was denied on the portal")
		case "expired":
			return "", "", errors.New("the login expired before it was approved")
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(every):
		}
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// PasswordLogin logs in with a password and a one-time code, for scripts
// and servers without a browser: it fills in the portal's own forms (so
// the same checks, throttles and audit apply) and approves a device login
// as the user would. It returns the token and the user as the gateway
// names them.
func PasswordLogin(ctx context.Context, o Options, user, password string, code func() (string, error)) (token, who string, err error) {
	hc := NewHTTP(o)
	jar, _ := cookiejar.New(nil)
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s, err := StartDevice(ctx, hc, o.Gateway)
	if err != nil {
		return "", "", err
	}
	base := strings.TrimSuffix(o.Gateway.String(), "/")
	get := func(path string) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
		return resp, string(b), nil
	}
	post := func(path string, form url.Values) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
		return resp, string(b), nil
	}
	csrf := func(page string) string {
		if m := csrfRE.FindStringSubmatch(page); m != nil {
			return m[1]
		}
		return ""
	}
	rd := base + "/device"
	_, page, err := get("/login?rd=" + url.QueryEscape(rd))
	if err != nil {
		return "", "", err
	}
	resp, _, err := post("/login", url.Values{"csrf": {csrf(page)}, "rd": {rd}, "username": {user}, "password": {password}})
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/mfa") {
		return "", "", errors.New("wrong user name or password (or the login is refused now)")
	}
	_, page, err = get(resp.Header.Get("Location"))
	if err != nil {
		return "", "", err
	}
	if !strings.Contains(page, `name="code"`) {
		return "", "", errors.New("the portal wants a second factor this client cannot give (a passkey, or enrolment): log in without --user")
	}
	otp, err := code()
	if err != nil {
		return "", "", err
	}
	resp, _, err = post("/mfa", url.Values{"csrf": {csrf(page)}, "rd": {rd}, "code": {strings.TrimSpace(otp)}})
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return "", "", errors.New("that one-time code was not accepted")
	}
	_, page, err = get("/device")
	if err != nil {
		return "", "", err
	}
	if resp, page, err = post("/device", url.Values{"csrf": {csrf(page)}, "code": {s.UserCode}, "decision": {"approve"}}); err != nil {
		return "", "", err
	} else if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Approved") {
		return "", "", fmt.Errorf("approving the login: %s", resp.Status)
	}
	// The portal session this made is the client's session's parent: it
	// is left to idle out (logging it out would end the client's too).
	return WaitDevice(ctx, hc, o.Gateway, s)
}

// printable keeps a gateway's text from steering the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return -1
		}
		return r
	}, s)
}
