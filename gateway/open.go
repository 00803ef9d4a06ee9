package gateway

import (
	"slices"
	"sync"

	"github.com/sluis-gateway/sluis/tunnel"
)

// Open reads what a running gateway has open now, for the admin console:
// the proxied requests in flight (WebSockets among them) and the tunnels,
// per app. Give one to New (Options.Open); reading it walks the open
// connections once and costs the requests nothing.
type Open struct {
	mu      sync.Mutex
	live    *liveConns
	tunnels *tunnel.Server
}

// OpenApp is what is open now through one app.
type OpenApp struct {
	App string
	// WebSockets are upgraded connections (WebSocket and any other
	// Upgrade), Streams the other requests in flight (a response that
	// streams, a long download or upload, or a request being answered),
	// Tunnels the open tunnels to a TCP app.
	WebSockets, Streams, Tunnels int
}

// attach is New's hook: from then on o reads this gateway.
func (o *Open) attach(live *liveConns, tunnels *tunnel.Server) {
	o.mu.Lock()
	o.live, o.tunnels = live, tunnels
	o.mu.Unlock()
}

func (o *Open) parts() (*liveConns, *tunnel.Server) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.live, o.tunnels
}

// Apps returns what is open now, per app with anything open, by name.
func (o *Open) Apps() []OpenApp {
	live, tunnels := o.parts()
	by := map[string]*OpenApp{}
	get := func(app string) *OpenApp {
		a := by[app]
		if a == nil {
			a = &OpenApp{App: app}
			by[app] = a
		}
		return a
	}
	if live != nil {
		for _, c := range live.all() {
			if c.upgrade {
				get(c.app.Name).WebSockets++
			} else {
				get(c.app.Name).Streams++
			}
		}
	}
	if tunnels != nil {
		for _, st := range tunnels.Streams() {
			get(st.App).Tunnels++
		}
	}
	out := make([]OpenApp, 0, len(by))
	for _, a := range by {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b OpenApp) int {
		switch {
		case a.App < b.App:
			return -1
		case a.App > b.App:
			return 1
		}
		return 0
	})
	return out
}

// Tunnels returns the open tunnels, oldest first.
func (o *Open) Tunnels() []tunnel.Stream {
	_, tunnels := o.parts()
	if tunnels == nil {
		return nil
	}
	return tunnels.Streams()
}
