package gateway

import (
	"context"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/metrics"
)

// setLive points the metrics' gauges of what is open at this gateway's
// parts, which outlive reloads: they are read when Prometheus scrapes,
// never counted on the request path.
func (g *Gateway) setLive() {
	st, now, live, tunnels := g.o.Store, g.o.Now, g.live, g.tunnels
	g.o.Metrics.SetLive(metrics.Live{
		Sessions: func(ctx context.Context) (int, error) {
			all, err := st.Sessions(ctx)
			if err != nil {
				return 0, err
			}
			// The idle timeout in force (a reload may change it).
			idle := g.state.Load().config.Session.IdleTimeout.D()
			t, n := now(), 0
			for _, x := range all {
				if x.Stage == sluis.StageComplete && !x.Revoked() && t.Before(x.ExpiresAt) && (idle <= 0 || t.Sub(x.LastSeen) < idle) {
					n++
				}
			}
			return n, nil
		},
		Tunnels:  tunnels.OpenByApp,
		Requests: live.countByApp,
		Blocks: func(ctx context.Context) (auto, op int, err error) {
			all, err := st.Blocks(ctx)
			if err != nil {
				return 0, 0, err
			}
			t := now()
			for _, b := range all {
				if !b.Until.IsZero() && !t.Before(b.Until) {
					continue // ended
				}
				if b.Auto {
					auto++
				} else {
					op++
				}
			}
			return auto, op, nil
		},
	})
}

// countByApp returns how many registered requests each app has: streams
// (any response under way) and WebSockets (upgraded connections) apart.
func (l *liveConns) countByApp() (streams, websockets map[string]int) {
	streams, websockets = map[string]int{}, map[string]int{}
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for c := s.head; c != nil; c = c.next {
			if c.upgrade {
				websockets[c.app.Name]++
			} else {
				streams[c.app.Name]++
			}
		}
		s.mu.Unlock()
	}
	return streams, websockets
}
