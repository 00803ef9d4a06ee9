package gateway

import (
	"context"
	"sync"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/policy"
	"github.com/sluis-gateway/sluis/session"
)

// liveConns are the open upgraded connections.
type liveConns struct {
	sessions  *session.Service
	situation func(ctx context.Context, app string) (policy.Situation, error)
	blocked   func(ctx context.Context, src string) bool
	mu        sync.Mutex // guards conns
	conns     map[*liveConn]struct{}
}

type liveConn struct {
	token  string
	app    sluis.App
	source string             // the client's address: a block of it ends the connection
	req    policy.Request     // what the request was decided on
	cancel context.CancelFunc // closes the connection (ReverseProxy ends the tunnel when the request context ends)
}

func (l *liveConns) add(c *liveConn) {
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
}

func (l *liveConns) remove(c *liveConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// cutAll ends every upgraded connection: the gateway is shutting down.
func (l *liveConns) cutAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.cancel()
	}
}

// recheck ends every upgraded connection whose session is gone or whose
// user may no longer use the app.
func (l *liveConns) recheck() {
	l.mu.Lock()
	conns := make([]*liveConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		if !l.allowed(c) {
			c.cancel()
		}
	}
}

// allowed decides c again, as it was decided when it was opened: its
// session, the policy, the level and the app's switch now, and the block
// list.
func (l *liveConns) allowed(c *liveConn) bool {
	ctx := context.Background()
	a, err := l.sessions.Lookup(ctx, c.token, c.app.Host)
	if err != nil || a.Session.Stage != sluis.StageComplete {
		return false
	}
	sit, err := l.situation(ctx, c.app.Name)
	if err != nil || policy.Decide(a.Identity(), c.app, c.req, sit).Outcome != policy.Allow {
		return false
	}
	return l.blocked == nil || !l.blocked(ctx, c.source)
}
