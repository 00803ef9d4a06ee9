package tunnel_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/session"
	"github.com/sluis-gateway/sluis/store/sqlite"
	"github.com/sluis-gateway/sluis/tunnel"
)

// heldOpen holds the write of each tunnel.open event until the test lets
// it through, and says whether one has been stored.
type heldOpen struct {
	sluis.AuditStore
	writing chan struct{} // a tunnel.open event is being written
	gate    chan struct{} // it may be stored
	stored  atomic.Bool
}

func (h *heldOpen) AppendEvents(ctx context.Context, es []sluis.Event) ([]sluis.Event, error) {
	open := false
	for _, e := range es {
		open = open || e.Type == sluis.EventTunnelOpen
	}
	if !open {
		return h.AuditStore.AppendEvents(ctx, es)
	}
	h.writing <- struct{}{}
	<-h.gate
	out, err := h.AuditStore.AppendEvents(ctx, es)
	if err == nil {
		h.stored.Store(true)
	}
	return out, err
}

// earlyServer is a tunnel server with one TCP app, db, that anna may use,
// whose target is ln, and whose audit trail is held by h.
func earlyServer(t *testing.T, ln net.Listener, h *heldOpen) (*httptest.Server, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.AuditStore = st
	now := time.Now()
	tok := map[string]string{}
	for _, u := range []string{"anna", "ben"} {
		st.CreateUser(ctx, sluis.User{Name: u, CreatedAt: now})
		tk, hash := session.NewToken()
		if err := st.CreateSession(ctx, sluis.Session{ID: session.NewID(), User: u, Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
			ExpiresAt: now.Add(time.Hour), MFAAt: now, MFAMethod: sluis.FactorTOTP}, hash[:], tunnel.Host); err != nil {
			t.Fatal(err)
		}
		tok[u] = tk
	}
	log := slog.New(slog.DiscardHandler)
	s := &tunnel.Server{
		Apps:      map[string]sluis.App{"db": {Name: "db", TCP: ln.Addr().String(), Allow: []sluis.Rule{{Users: []string{"anna"}, MFA: true}}}},
		Sessions:  &session.Service{Store: st},
		Audit:     &audit.Recorder{Store: h, Log: log},
		Situation: func(context.Context, string) (policy.Situation, error) { return policy.Situation{Now: time.Now()}, nil },
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		Log: log,
	}
	srv := httptest.NewUnstartedServer(s)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, tok["anna"] + " " + tok["ben"]
}

// The client's first bytes, sent with the stream's open before any
// answer (early data), wait at the gateway while the tunnel.open event
// is written, and reach the target only once it is stored; the target's
// answer then comes back.
func TestEarlyDataWaitsForTheStoredOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{})
	var storedAtFirstByte atomic.Bool
	h := &heldOpen{writing: make(chan struct{}, 1), gate: make(chan struct{})}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		close(accepted)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		storedAtFirstByte.Store(h.stored.Load())
		c.Write(buf)
	}()
	srv, toks := earlyServer(t, ln, h)
	anna := toks[:len(toks)/2]

	pr, pw := io.Pipe()
	sent := make(chan struct{})
	go func() {
		pw.Write([]byte("hello")) // taken by the client before any answer
		close(sent)
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+tunnel.PathPrefix+"db", pr)
	req.Header.Set("Authorization", "Bearer "+anna)
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		answered <- answer{resp, err}
	}()
	// The open is being written, the app dialled, the early data sent.
	<-h.writing
	<-accepted
	<-sent
	close(h.gate)
	a := <-answered
	if a.err != nil || a.resp.StatusCode != http.StatusOK {
		t.Fatalf("the tunnel was not opened: %v %v", a.resp, a.err)
	}
	defer a.resp.Body.Close()
	got := make([]byte, 5)
	if _, err := io.ReadFull(a.resp.Body, got); err != nil || string(got) != "hello" {
		t.Fatalf("the app answered %q (%v)", got, err)
	}
	if !storedAtFirstByte.Load() {
		t.Error("the early data reached the app before the tunnel.open event was stored")
	}
	pw.Close()
}

// A tunnel the policy refuses dials nothing, and its early data goes
// nowhere.
func TestRefusedTunnelDeliversNoEarlyData(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	h := &heldOpen{writing: make(chan struct{}, 1), gate: make(chan struct{})}
	close(h.gate)
	srv, toks := earlyServer(t, ln, h)
	ben := toks[len(toks)/2+1:]
	pr, pw := io.Pipe()
	go pw.Write([]byte("DROP TABLE users;"))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+tunnel.PathPrefix+"db", pr)
	req.Header.Set("Authorization", "Bearer "+ben)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pw.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	ln.Close()
	<-acceptDone
	if n := conns.Load(); n != 0 || h.stored.Load() {
		t.Errorf("a refused tunnel dialled the app %d times (open stored: %v)", n, h.stored.Load())
	}
}
