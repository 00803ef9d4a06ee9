package tunnel

import (
	"slices"
	"time"
)

// Stream is an open tunnel, as the admin console lists it.
type Stream struct {
	User, App, Source string
	Start             time.Time
}

// Streams returns the open tunnels, oldest first.
func (s *Server) Streams() []Stream {
	s.mu.Lock()
	out := make([]Stream, 0, len(s.live))
	for st := range s.live {
		out = append(out, Stream{User: st.user, App: st.app, Source: st.source, Start: st.start})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Stream) int { return a.Start.Compare(b.Start) })
	return out
}
