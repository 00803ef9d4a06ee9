package metrics

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Access says who may read the metrics: a request with the bearer token
// whose hash is TokenHash, or one from an address in Networks. The zero
// Access lets nobody in.
type Access struct {
	// TokenHash is the SHA-256 of the token (admin.metrics.token_file's
	// content, without its line end); nil means no token is accepted.
	TokenHash []byte
	// Networks are the source addresses (of the connection: the admin
	// listener trusts no forwarding header) that need no token.
	Networks []netip.Prefix
}

// HashToken returns the TokenHash of token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// maxScrape bounds the time one scrape may take to write.
const maxScrape = 10 * time.Second

// Handler returns the handler of /metrics: the Prometheus text format (or
// what the scraper negotiates) to a GET or HEAD that a allows, and
// otherwise
//   - 405 for another method;
//   - 401 with WWW-Authenticate: Bearer for a request with a wrong token,
//     or without one from outside a.Networks when a token is configured;
//   - 403 from outside a.Networks when no token is configured (no token
//     would help).
//
// A request with an Authorization header is judged by its token alone,
// even from an allowed network: a wrong token is an error to see, not to
// hide. The token is never logged, and compared in constant time (on its
// hash, so its length tells nothing either).
func (m *Metrics) Handler(a Access) http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	prom := m.Exposition()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch a.Decide(r) {
		case 0:
			prom.ServeHTTP(w, r)
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", Challenge)
			http.Error(w, "a bearer token is needed", http.StatusUnauthorized)
		default:
			http.Error(w, "forbidden", http.StatusForbidden)
		}
	})
}

// Exposition returns the metrics in the Prometheus text format (or what
// the scraper negotiates) for every request: for a listener that decides
// itself who may read them (the admin listener's guard of admin.metrics).
// Anything else serves Handler.
func (m *Metrics) Exposition() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails leaves its series out; the rest is
		// still served.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             maxScrape,
	})
}

// Challenge is the WWW-Authenticate value of a 401 from Decide.
const Challenge = `Bearer realm="sluis metrics"`

// Configured reports whether anybody at all may read the metrics.
func (a Access) Configured() bool { return len(a.TokenHash) == sha256.Size || len(a.Networks) > 0 }

// Decide returns 0 when r may read the metrics, else the status to refuse
// it with: 401 (answer with Challenge) when a token would do, 403 when only
// the networks could. A request with an Authorization header is judged by
// its token alone, even from an allowed network: a wrong token is an error
// to see, not to hide. The token (RFC 6750 section 2.1, the scheme in any
// case) is compared in constant time, on its hash, so neither its length
// nor its bytes show in the time of the answer. Package admin's guard of
// /metrics and Handler both decide here.
func (a Access) Decide(r *http.Request) int {
	if h, ok := r.Header["Authorization"]; ok {
		if len(a.TokenHash) != sha256.Size || len(h) != 1 {
			return http.StatusUnauthorized
		}
		scheme, tok, ok := strings.Cut(h[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return http.StatusUnauthorized
		}
		if subtle.ConstantTimeCompare(HashToken(tok), a.TokenHash) == 1 {
			return 0
		}
		return http.StatusUnauthorized
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.Unmap()
			for _, n := range a.Networks {
				if n.Contains(ip) {
					return 0
				}
			}
		}
	}
	if len(a.TokenHash) == sha256.Size {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}
