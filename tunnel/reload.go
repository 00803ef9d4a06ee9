package tunnel

import (
	"time"

	"github.com/sluis-gateway/sluis"
)

// Settings are what a reloaded configuration changes in a running
// Server; their fields mean what the Server's fields of the same names do.
type Settings struct {
	Apps        map[string]sluis.App // the TCP apps, by name; not modified afterwards
	IdleTimeout time.Duration
	MaxPerUser  int
}

// Configure replaces the server's apps and limits while it runs (a
// reloaded configuration). Tunnels that are open stay open; the next
// Recheck decides each again with the new apps (one whose app is gone
// allows nobody and ends), and new tunnels are decided with them at once.
// A lower MaxPerUser refuses new tunnels of a user above it, and ends
// none.
func (s *Server) Configure(set Settings) { s.settings.Store(&set) }

// current returns the settings in force.
func (s *Server) current() *Settings {
	if set := s.settings.Load(); set != nil {
		return set
	}
	return &Settings{Apps: s.Apps, IdleTimeout: s.IdleTimeout, MaxPerUser: s.MaxPerUser}
}

// app returns the TCP app of that name in force.
func (s *Server) app(name string) (sluis.App, bool) {
	if set := s.settings.Load(); set != nil {
		a, ok := set.Apps[name]
		return a, ok
	}
	a, ok := s.Apps[name]
	return a, ok
}
