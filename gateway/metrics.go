package gateway

import (
	"context"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/metrics"
	"github.com/sluis-gateway/sluis/tunnel"
)

// setLive points m's gauges of what is open at this gateway's parts: they
// are read when Prometheus scrapes, never counted on the request path.
func setLive(m *metrics.Metrics, st sluis.Store, idle time.Duration, now func() time.Time, live *liveConns, tunnels *tunnel.Server) {
	m.SetLive(metrics.Live{
		Sessions: func(ctx context.Context) (int, error) {
			all, err := st.Sessions(ctx)
			if err != nil {
				return 0, err
			}
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
