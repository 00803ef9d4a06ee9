package session

import "time"

// SetIdleTimeout replaces IdleTimeout while the service is in use (a
// reloaded configuration): the next check of every session, open
// connections' included, counts its idle time against d. The sessions'
// clocks are kept, so a session idle for longer than d ends at once.
func (s *Service) SetIdleTimeout(d time.Duration) { s.idle.Store(&d) }

func (s *Service) idleTimeout() time.Duration {
	if d := s.idle.Load(); d != nil {
		return *d
	}
	return s.IdleTimeout
}
