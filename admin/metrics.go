package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/sluis-gateway/sluis/errpage"
)

// MetricsAccess decides who may read /metrics: a client that sends the
// bearer token (compared in constant time, as hashes, so neither its
// length nor its bytes show in the time of the answer), or one whose
// address is in the networks. It answers nil when the client may, else
// the status to refuse with: 401 (with WWW-Authenticate) when a token
// would do, 403 when only the networks could.
type MetricsAccess struct {
	Token    string
	Networks []netip.Prefix
}

// Allows returns 0 when r may read the metrics, else the status to refuse
// it with.
func (m MetricsAccess) Allows(r *http.Request) int {
	if m.Token != "" {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(m.Token))
			if subtle.ConstantTimeCompare(a[:], b[:]) == 1 {
				return 0
			}
			return http.StatusUnauthorized // a wrong token is not made good by the address
		}
	}
	if src, err := netip.ParseAddr(peerAddr(r)); err == nil {
		src = src.Unmap()
		for _, n := range m.Networks {
			if n.Contains(src) {
				return 0
			}
		}
	}
	if m.Token != "" {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// configured reports whether anybody may read the metrics.
func (m MetricsAccess) configured() bool { return m.Token != "" || len(m.Networks) > 0 }

// peerAddr is the address of r's peer: the admin listener believes no
// forwarding header.
func peerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// metricsGuard serves h to the clients admin.metrics lets through: no
// login, a token or an address instead. Without h, or with neither a
// token nor networks, /metrics is not there (404).
func (s *Server) metricsGuard(h http.Handler) http.Handler {
	access := MetricsAccess{Token: s.o.MetricsToken, Networks: s.o.MetricsNetworks}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h == nil || !access.configured() || r.URL.Path != "/metrics" {
			s.notFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: http.StatusMethodNotAllowed, Cause: "admin: /metrics is read with GET"})
			return
		}
		if status := access.Allows(r); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluis metrics"`)
			}
			errpage.Refuse(w, r, s.o.Log, errpage.Refusal{Status: status, Cause: "admin: /metrics without its token or from outside admin.metrics.networks"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
