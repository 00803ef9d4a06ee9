package tunnel_test

import (
	"bytes"
	"context"
	"errors"
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

// brokenAudit refuses every event, as a full disk does.
type brokenAudit struct{ sluis.AuditStore }

func (brokenAudit) AppendEvents(context.Context, []sluis.Event) ([]sluis.Event, error) {
	return nil, errors.New("database or disk is full")
}

// No byte goes through a tunnel whose tunnel.open event was not stored:
// the client's bytes never reach the target, and the stream fails. With
// the event stored, they do.
func TestNoByteFlowsBeforeTheOpenIsStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broken bool
	}{
		{"stored", false},
		{"not stored", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sluis.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			now := time.Now()
			st.CreateUser(ctx, sluis.User{Name: "anna", CreatedAt: now})
			tok, hash := session.NewToken()
			if err := st.CreateSession(ctx, sluis.Session{ID: session.NewID(), User: "anna", Stage: sluis.StageComplete, CreatedAt: now, LastSeen: now,
				ExpiresAt: now.Add(time.Hour), MFAAt: now, MFAMethod: sluis.FactorTOTP}, hash[:], tunnel.Host); err != nil {
				t.Fatal(err)
			}
			var auditStore sluis.AuditStore = st
			if tc.broken {
				auditStore = brokenAudit{st}
			}
			// The target counts what reaches it.
			var got atomic.Int64
			closed := make(chan struct{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				defer close(closed)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				n, _ := io.Copy(io.Discard, c)
				got.Store(n)
				c.Close()
			}()
			log := slog.New(slog.DiscardHandler)
			s := &tunnel.Server{
				Apps:      map[string]sluis.App{"db": {Name: "db", TCP: ln.Addr().String(), Allow: []sluis.Rule{{Users: []string{"anna"}, MFA: true}}}},
				Sessions:  &session.Service{Store: st},
				Audit:     &audit.Recorder{Store: auditStore, Log: log},
				Situation: func(context.Context, string) (policy.Situation, error) { return policy.Situation{Now: time.Now()}, nil },
				Dial: func(ctx context.Context, addr string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				},
				Log: log,
			}
			srv := httptest.NewUnstartedServer(s)
			srv.EnableHTTP2 = true
			srv.StartTLS()
			defer srv.Close()
			payload := bytes.Repeat([]byte("x"), 64<<10)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tunnel.PathPrefix+"db", bytes.NewReader(payload))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := srv.Client().Do(req)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				ok = ok && err == nil
				resp.Body.Close()
			}
			if tc.broken {
				// The handler has returned: the app was dialled and closed
				// by now, or not dialled at all (the dial was given up when
				// the event could not be stored).
				ln.Close()
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the target's connection was not closed")
			}
			switch {
			case tc.broken && (ok || got.Load() != 0):
				t.Errorf("event not stored: the tunnel answered ok=%v and %d bytes reached the target", ok, got.Load())
			case !tc.broken && got.Load() != int64(len(payload)):
				t.Errorf("event stored: %d of %d bytes reached the target (%v)", got.Load(), len(payload), err)
			}
		})
	}
}
