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
	sessions   *session.Service
	switches   *appSwitches
	breakGlass func(user string, groups []string) bool
	stale      func(ctx context.Context, a *session.Active) bool
	blocked    func(ctx context.Context, src string) bool
	mu         sync.Mutex // guards conns
	conns      map[*liveConn]struct{}
}

type liveConn struct {
	token  string
	app    sluis.App
	source string             // the client's address: a block of it ends the connection
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
		level, _, err := l.switches.level(context.Background())
		if err != nil {
			c.cancel()
			continue
		}
		a, err := l.sessions.Lookup(context.Background(), c.token, c.app.Host)
		if err != nil || a.Session.Stage != sluis.StageComplete || !policy.Decide(a.Identity(), c.app.AtLevel(level)).Allowed {
			c.cancel()
			continue
		}
		if _, off, err := l.switches.disabled(context.Background(), c.app.Name); err != nil || off {
			c.cancel()
			continue
		}
		if l.stale != nil && l.stale(context.Background(), a) {
			c.cancel()
			continue
		}
		if l.blocked != nil && l.blocked(context.Background(), c.source) {
			c.cancel()
			continue
		}
		if level == sluis.LevelClosed ||
			level == sluis.LevelEssential && !c.app.Essential || level == sluis.LevelLockdown && !l.breakGlass(a.User.Name, a.User.Groups) {
			c.cancel()
		}
	}
}
