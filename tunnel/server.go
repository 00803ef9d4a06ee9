package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/session"
)

// PathPrefix is where tunnel streams are opened, on the portal's host.
const PathPrefix = "/.sluis/tunnel/"

// LogoutPath is where `sluis connect --logout` ends the session of its
// token: a POST with the token in Authorization, on the portal's host.
const LogoutPath = "/.sluis/connect/logout"

// UserHeader names, in every answer to a request with a valid token, the
// user the token's session belongs to, so that the client can tell whose
// login it holds (a login saved for one user must never be used as
// another's).
const UserHeader = "Sluis-User"

// Host is the pseudo host that the tokens of `sluis connect` sessions are
// bound to: such a token opens tunnels and nothing else, and a browser's
// cookie opens no tunnel. The colon keeps it from ever being a host name
// of the portal or an app.
const Host = "tunnel:sluis-connect"

// Defaults.
const (
	DefaultIdleTimeout = 15 * time.Minute
	DefaultMaxPerUser  = 32
)

// Server answers tunnel streams.
type Server struct {
	Apps     map[string]sluis.App // the TCP apps, by name
	Sessions *session.Service
	Audit    *audit.Recorder
	// Situation returns the situation an app is decided in now (the
	// emergency level, the app's switch, break-glass staff, the clock):
	// tunnels are decided by policy.Decide like every request.
	Situation func(ctx context.Context, app string) (policy.Situation, error)
	// Denied folds refusals into at most one audit event per user, app and
	// minute; nil records each.
	Denied *audit.Folder
	// Blocked says whether a source is blocked at the front door now (a
	// block added while a tunnel runs ends it).
	Blocked func(ctx context.Context, src string) bool
	Dial    func(ctx context.Context, target string) (net.Conn, error)
	// IdleTimeout closes a tunnel with no bytes either way for this long;
	// zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxPerUser caps a user's open tunnels; zero means DefaultMaxPerUser.
	MaxPerUser int
	// Counters, if set, holds every node's count of each user's open
	// tunnels (its share, under Holder), so that MaxPerUser holds for
	// all nodes sharing the store. A node renews its shares every
	// ShareRenew (RenewShares); those of a node that died stop counting
	// after ShareTTL. When the store cannot answer, this node's own
	// count decides (MaxPerUser per node) and the error is logged: a
	// tunnel is a user's, behind a session, not an attacker's budget.
	// Nil counts on this node alone.
	Counters sluis.CounterStore
	Holder   string
	Now      func() time.Time
	Log      *slog.Logger

	// settings, once set (Configure), replaces Apps, IdleTimeout and
	// MaxPerUser: a reload changes them while tunnels run.
	settings atomic.Pointer[Settings]

	mu      sync.Mutex // guards live and perUser
	live    map[*stream]struct{}
	perUser map[string]int
}

// stream is one open tunnel.
type stream struct {
	token, user, app, source string
	cancel                   context.CancelCauseFunc
	start                    time.Time // for Streams
}

var (
	errRevoked  = errors.New("session ended or access withdrawn")
	errIdle     = errors.New("idle")
	errShutdown = errors.New("the gateway shut down")
)

// Token returns the `sluis connect` token of a request, from its
// Authorization header (never from a query string or a cookie).
func Token(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// allowed decides whether user a may use app now, from src; "" means
// yes, else the reason, fit for the user.
func (s *Server) allowed(ctx context.Context, a *session.Active, app sluis.App, src string) string {
	var who sluis.Identity
	if a.Session.Stage == sluis.StageComplete {
		who = a.Identity()
	}
	sit, err := s.Situation(ctx, app.Name)
	if err != nil {
		return "the gateway cannot tell its emergency level or whether the app is on"
	}
	addr, _ := netip.ParseAddr(src)
	d := policy.Decide(who, app, policy.Request{Source: addr}, sit)
	switch d.Outcome {
	case policy.Login:
		return "log in again with sluis connect --login"
	case policy.StepUp:
		return "this app needs a passkey: log in again with sluis connect and use your passkey"
	case policy.Deny:
		if d.Message != "" {
			return d.Message
		}
		return "you may not use this app"
	}
	if s.Blocked != nil && s.Blocked(ctx, src) {
		return "your address is blocked"
	}
	return ""
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

// refuse answers r with status and msg for the client, followed by a new
// error ID that is also logged with the cause, the user and the app
// ("" when not known), so that a help desk finds what sluis connect
// printed.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, msg, cause, user, app string) {
	id := errpage.NewID()
	errpage.Log(r.Context(), s.Log, r, id, errpage.Refusal{Status: status, Cause: "tunnel: " + cause, User: user, App: app})
	plain(w, status, msg+" (error ID "+id+")")
}

// authenticate returns the session of the request's token, or answers
// the request (401, or 503 when the store fails) and returns nil. A found
// session is named in the answer's UserHeader.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *session.Active {
	tok := Token(r)
	var a *session.Active
	if tok != "" {
		var err error
		a, err = s.Sessions.Lookup(r.Context(), tok, Host)
		if err != nil && !errors.Is(err, session.ErrNoSession) {
			id := errpage.NewID()
			s.Log.Error("tunnel: session lookup", "error_id", id, "err", err)
			plain(w, http.StatusServiceUnavailable, "the gateway cannot check your login now (error "+id+")")
			return nil
		}
	}
	if a == nil {
		// Nothing is dialled, and nothing is said about the app.
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluis connect"`)
		s.refuse(w, r, http.StatusUnauthorized, "log in with sluis connect first", "no valid tunnel token", "", "")
		return nil
	}
	w.Header().Set(UserHeader, a.User.Name)
	return a
}

// Logout answers LogoutPath: it ends the session of the request's token
// (and with it every tunnel it carries) and records a logout event. Without
// a valid token it does nothing but answer 401.
func (s *Server) Logout(w http.ResponseWriter, r *http.Request) {
	a := s.authenticate(w, r)
	if a == nil {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuse(w, r, http.StatusMethodNotAllowed, "log out with a POST", "logout not a POST", a.User.Name, "")
		return
	}
	if err := s.Sessions.Revoke(r.Context(), a.Session.ID); err != nil {
		id := errpage.NewID()
		s.Log.Error("tunnel: logout", "error_id", id, "err", err)
		plain(w, http.StatusServiceUnavailable, "the gateway cannot end your session now (error "+id+")")
		return
	}
	s.Audit.Record(r.Context(), sluis.Event{Type: sluis.EventLogout, User: a.User.Name, Source: frontdoor.ClientIP(r),
		Outcome: sluis.OutcomeSuccess, Detail: "sluis connect: session " + a.Session.ID})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, PathPrefix)
	src := frontdoor.ClientIP(r)
	tok := Token(r)
	a := s.authenticate(w, r)
	if a == nil {
		return
	}
	app, ok := s.app(name)
	if !ok {
		s.refuse(w, r, http.StatusNotFound, "no such app", "no TCP app of that name", a.User.Name, "")
		return
	}
	if r.Method != http.MethodGet && (r.Method != http.MethodPost || r.ProtoMajor != 2) {
		s.refuse(w, r, http.StatusMethodNotAllowed, "tunnels are HTTP/2 POST streams", "not an HTTP/2 POST stream", a.User.Name, app.Name)
		return
	}
	if why := s.allowed(r.Context(), a, app, src); why != "" {
		detail, record, id := "tunnel: "+why, true, errpage.NewID()
		if s.Denied != nil {
			// Refusals folded into one event show its error ID.
			var folds int
			id, folds, record = s.Denied.LetID(a.User.Name+"\x00"+app.Name+"\x00tunnel", errpage.NewID)
			if folds > 0 {
				detail += fmt.Sprintf("; %d more refusals since the last event", folds)
			}
		}
		if record {
			s.Audit.Record(r.Context(), sluis.Event{Type: sluis.EventAccessDenied, User: a.User.Name, Source: src, App: app.Name,
				Outcome: sluis.OutcomeDenied, Detail: detail + "; error ID " + id})
		}
		errpage.Log(r.Context(), s.Log, r, id, errpage.Refusal{Status: http.StatusForbidden, Cause: "tunnel: " + why, User: a.User.Name, App: app.Name})
		plain(w, http.StatusForbidden, why+" (error ID "+id+")")
		return
	}
	if r.Method == http.MethodGet {
		// A check before the client listens: allowed, nothing dialled.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	st := &stream{token: tok, user: a.User.Name, app: app.Name, source: src, cancel: cancel, start: s.now()}
	if !s.add(st) {
		s.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("you have %d tunnels open, the most allowed", s.maxPerUser()), "the user's tunnel limit on this node", st.user, app.Name)
		return
	}
	defer s.remove(st)
	if s.Counters != nil {
		ok, err := s.Counters.AddShare(ctx, tunnelKey(st.user), s.Holder, 1, s.maxPerUser(), s.now(), s.now().Add(ShareTTL))
		switch {
		case err != nil:
			s.Log.Error("tunnel: counting the user's tunnels in the store; this node's own count decides", "user", st.user, "err", err)
		case !ok:
			s.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("you have %d tunnels open, the most allowed", s.maxPerUser()), "the user's tunnel limit over all nodes", st.user, app.Name)
			return
		default:
			defer func() {
				if _, err := s.Counters.AddShare(context.WithoutCancel(ctx), tunnelKey(st.user), s.Holder, -1, 0, s.now(), s.now().Add(ShareTTL)); err != nil {
					s.Log.Error("tunnel: uncounting a closed tunnel in the store; it counts until this node's shares are renewed", "user", st.user, "err", err)
				}
			}()
		}
	}
	// Setup, and why it is ordered so. The tunnel.open event must be
	// durable (a disk flush, most of a tunnel's setup) before any byte
	// flows either way. Two things overlap that flush: the dial, and, once
	// the dial succeeded, the answer's headers to the client. The client
	// does not wait for them: it sends what it reads from its side at once
	// (early data), and that waits in the stream's window here. Bytes are
	// copied only once the event is stored and the dial is done. The
	// handler writes the event itself, the longest step, so that it waits
	// for no goroutine to be scheduled; a goroutine dials and sends the
	// headers, and the handler touches w again only once that goroutine
	// is done. The target may see the connection (its TCP handshake) up
	// to one flush before the event is durable; nothing is sent on it
	// before. An event that cannot be stored refuses the tunnel (503), or,
	// once the headers are out, resets the stream before any byte was
	// copied: the client's early data never reaches the target. When the
	// app cannot be reached, the tunnel.close that follows says so.
	rc := http.NewResponseController(w)
	type dialled struct {
		target        net.Conn
		err, flushErr error
	}
	dialc := make(chan dialled, 1)
	go func() {
		target, err := s.Dial(ctx, app.TCP)
		var flushErr error
		if err == nil {
			// The stream lives as long as the tunnel: the server's read and
			// write time limits, meant for requests, do not apply; the idle
			// timeout does.
			rc.SetReadDeadline(time.Time{})
			rc.SetWriteDeadline(time.Time{})
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			flushErr = rc.Flush()
		}
		dialc <- dialled{target, err, flushErr}
	}()
	openErr := s.Audit.Require(r.Context(), sluis.Event{Type: sluis.EventTunnelOpen, User: a.User.Name, Source: src, App: app.Name,
		Outcome: sluis.OutcomeSuccess, Detail: "to " + app.TCP})
	if openErr != nil {
		cancel(openErr) // a dial still under way gives up
	}
	d := <-dialc
	notStored := func() string {
		id := errpage.NewID()
		s.Log.Error("tunnel: the tunnel.open event was not stored; refused", "app", app.Name, "error_id", id, "err", openErr)
		return id
	}
	if d.err != nil {
		if openErr != nil {
			plain(w, http.StatusServiceUnavailable, "the gateway cannot record the tunnel now (error "+notStored()+")")
			return
		}
		id := errpage.NewID()
		s.Log.Error("tunnel: dial", "app", app.Name, "target", app.TCP, "error_id", id, "err", d.err)
		s.Audit.RecordSoon(r.Context(), sluis.Event{Type: sluis.EventTunnelClose, User: a.User.Name, Source: src, App: app.Name,
			Outcome: sluis.OutcomeFailure, Detail: "to " + app.TCP + ": cannot connect (error " + id + ")"})
		plain(w, http.StatusBadGateway, "the app cannot be reached (error "+id+")")
		return
	}
	target := d.target
	defer target.Close()
	if openErr != nil {
		notStored()
		// Reset the stream: the client sees the tunnel cut, and not one
		// byte went through it.
		panic(http.ErrAbortHandler)
	}
	if d.flushErr != nil {
		return
	}
	start := s.now()
	up, down, why := s.pump(ctx, cancel, r.Body, w, rc, target)
	// The end is recorded with the next tunnel's open (or within
	// audit.SoonWithin): a new tunnel never waits for its flush.
	s.Audit.RecordSoon(context.WithoutCancel(r.Context()), sluis.Event{Type: sluis.EventTunnelClose, User: a.User.Name, Source: src, App: app.Name,
		Outcome: sluis.OutcomeSuccess, Detail: fmt.Sprintf("to %s; %d bytes up, %d bytes down; %s; %s", app.TCP, up, down, s.now().Sub(start).Round(time.Millisecond), why)})
}

// pump copies both ways until one side ends, the tunnel idles out or ctx
// is cancelled (a revocation), and returns the bytes each way and why it
// ended.
func (s *Server) pump(ctx context.Context, cancel context.CancelCauseFunc, body io.Reader, w io.Writer, rc *http.ResponseController, target net.Conn) (up, down int64, why string) {
	idle := s.current().IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	// The counts are kept apart from the results: returning while the
	// client's reader still adds would be a race on a named result.
	var upN, downN atomic.Int64
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	upDone, downDone := make(chan struct{}), make(chan struct{})
	// Client to target. The client can send no faster than the target
	// takes: HTTP/2 flow control stops it.
	go func() {
		defer close(upDone)
		var cb copyBuf
		defer cb.release()
		full := false
		for {
			buf := cb.next(full)
			n, err := body.Read(buf)
			full = n == len(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := target.Write(buf[:n]); werr != nil {
					cancel(werr)
					return
				}
				upN.Add(int64(n))
			}
			if err != nil {
				// The client closed its side: half-close towards the target
				// and let the target end the tunnel.
				if errors.Is(err, io.EOF) {
					if tc, ok := target.(interface{ CloseWrite() error }); ok {
						tc.CloseWrite()
						return
					}
				}
				cancel(err)
				return
			}
		}
	}()
	// Target to client, flushed as it comes. The target's end is the
	// tunnel's normal end: it closes downDone and cancels nothing, because
	// a cancellation resets the stream (the write deadline below makes the
	// HTTP/2 server send RST_STREAM INTERNAL_ERROR), and the client would
	// see a failure where the app simply closed.
	var targetErr error // how the target's side ended, if not by closing; read after downDone
	go func() {
		defer close(downDone)
		var cb copyBuf
		defer cb.release()
		full := false
		for {
			buf := cb.next(full)
			n, err := target.Read(buf)
			full = n == len(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				// A client that reads nothing for the idle timeout is as
				// good as gone: its writes stop waiting then.
				rc.SetWriteDeadline(time.Now().Add(idle))
				if _, werr := w.Write(buf[:n]); werr != nil {
					cancel(werr)
					return
				}
				if ferr := rc.Flush(); ferr != nil {
					cancel(ferr)
					return
				}
				downN.Add(int64(n))
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					targetErr = err
				}
				return
			}
		}
	}()
	tick := time.NewTicker(min(idle/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-downDone:
			// The target ended, and the stream ends cleanly when the
			// handler returns (END_STREAM; the client's side, if still
			// sending, is told to stop with NO_ERROR). A target that
			// failed (a reset) is said so in the audit trail.
			why := "closed"
			if targetErr != nil {
				why = "closed by the target with an error: " + targetErr.Error()
			}
			return upN.Load(), downN.Load(), why
		case <-ctx.Done():
			// Closing the target unblocks its reader, and the deadlines
			// unblock a write to a client that stopped reading; the
			// client's reader ends when the handler returns and the
			// stream is reset.
			target.Close()
			rc.SetWriteDeadline(time.Now())
			rc.SetReadDeadline(time.Now())
			<-downDone
			why := "closed"
			if c := context.Cause(ctx); errors.Is(c, errRevoked) || errors.Is(c, errShutdown) {
				why = "cut: " + c.Error()
			} else if errors.Is(c, errIdle) {
				why = "idle timeout"
			}
			return upN.Load(), downN.Load(), why
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > idle {
				cancel(errIdle)
			}
		}
	}
}

// Shares of the count of open tunnels (see Counters).
const (
	ShareTTL   = 30 * time.Second
	ShareRenew = 10 * time.Second
)

func tunnelKey(user string) string { return "tunnels/" + user }

// RenewShares keeps this node's shares of the users' tunnel counts alive
// (see Counters); the gateway calls it every ShareRenew.
func (s *Server) RenewShares(ctx context.Context) {
	if s.Counters == nil {
		return
	}
	if err := s.Counters.RenewShares(ctx, s.Holder, s.now().Add(ShareTTL)); err != nil {
		s.Log.Warn("tunnel: renewing this node's tunnel counts", "err", err)
	}
}

func (s *Server) maxPerUser() int {
	if m := s.current().MaxPerUser; m > 0 {
		return m
	}
	return DefaultMaxPerUser
}

func (s *Server) add(st *stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live, s.perUser = map[*stream]struct{}{}, map[string]int{}
	}
	if s.perUser[st.user] >= s.maxPerUser() {
		return false
	}
	s.live[st] = struct{}{}
	s.perUser[st.user]++
	return true
}

func (s *Server) remove(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, st)
	if s.perUser[st.user]--; s.perUser[st.user] <= 0 {
		delete(s.perUser, st.user)
	}
}

// Open returns the number of open tunnels.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// OpenByApp returns the number of open tunnels of each TCP app, zero
// for those with none.
func (s *Server) OpenByApp() map[string]int {
	apps := s.current().Apps
	out := make(map[string]int, len(apps))
	for name := range apps {
		out[name] = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.live {
		out[st.app]++
	}
	return out
}

// CutAll ends every open tunnel: the gateway is shutting down and the
// grace it gave them has run out. Each is audited as cut by the shutdown;
// the client sees its stream reset, and opens new ones elsewhere (the
// shutdown's GOAWAY told it not to use this connection for new streams).
func (s *Server) CutAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.live {
		st.cancel(errShutdown)
	}
}

// Recheck ends every tunnel whose session is gone or whose user may no
// longer use the app (policy, emergency level, a block). The gateway calls
// it whenever the store changes, and every second (which also keeps the
// sessions of open tunnels from idling out).
func (s *Server) Recheck() {
	s.mu.Lock()
	streams := make([]*stream, 0, len(s.live))
	for st := range s.live {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	ctx := context.Background()
	for _, st := range streams {
		a, err := s.Sessions.Lookup(ctx, st.token, Host)
		app, _ := s.app(st.app) // an app no longer configured allows nobody
		if err != nil || s.allowed(ctx, a, app, st.source) != "" {
			st.cancel(errRevoked)
		}
	}
}
