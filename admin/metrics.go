package admin

import (
	"net"
	"net/http"

	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/metrics"
)

// peerAddr is the address of r's peer: the admin listener believes no
// forwarding header.
func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// metricsGuard serves h to the clients admin.metrics lets through
// (metrics.Access.Decide, the one decision of who reads the metrics): no
// login, a token or an address instead. Without h, or with neither a
// token nor networks, /metrics is not there (404).
func (s *Server) metricsGuard(h http.Handler) http.Handler {
	access := metrics.Access{Networks: s.o.MetricsNetworks}
	if s.o.MetricsToken != "" {
		access.TokenHash = metrics.HashToken(s.o.MetricsToken)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h == nil || !access.Configured() || r.URL.Path != "/metrics" {
			s.notFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: http.StatusMethodNotAllowed, Cause: "admin: /metrics is read with GET"})
			return
		}
		if status := access.Decide(r); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", metrics.Challenge)
			}
			errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: status, Cause: "admin: /metrics without its token or from outside admin.metrics.networks"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
