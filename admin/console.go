package admin

import (
	"net/http"
)

// consoleRoutes are the console's pages and actions, and the API.
func (s *Server) consoleRoutes() []Route {
	h := s.wrap
	return []Route{
		{"GET /{$}", "viewer", h(s.overview)},
	}
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) error {
	d := s.pageFor(r, "Overview")
	d.Nav = "overview"
	pages := []string{"overview"}
	_ = pages
	return s.render(w, http.StatusOK, "overview", d)
}
