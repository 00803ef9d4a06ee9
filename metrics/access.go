package metrics

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
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

// MinTokenLen is the shortest token LoadAccess takes: a token is a
// password that nobody types, so it can be long enough that guessing it is
// hopeless (`openssl rand -hex 32` makes one of 64).
const MinTokenLen = 32

// LoadAccess returns the Access of admin.metrics: the token read from
// tokenFile ("" for none; one line, its line end not part of it, at least
// MinTokenLen bytes) and the networks, CIDRs or single addresses. The
// error names what is wrong, never the token.
func LoadAccess(tokenFile string, networks []string) (Access, error) {
	var a Access
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return Access{}, fmt.Errorf("metrics token file: %w", err)
		}
		tok := strings.TrimRight(string(b), "\r\n")
		switch {
		case len(tok) < MinTokenLen:
			return Access{}, fmt.Errorf("metrics token file %s: the token has %d bytes, fewer than %d", tokenFile, len(tok), MinTokenLen)
		case strings.ContainsAny(tok, " \t\r\n"):
			return Access{}, fmt.Errorf("metrics token file %s: the token is one line without spaces", tokenFile)
		}
		a.TokenHash = HashToken(tok)
	}
	for _, n := range networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			addr, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return Access{}, fmt.Errorf("metrics network %q: not a CIDR or an address", n)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		a.Networks = append(a.Networks, p.Masked())
	}
	return a, nil
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
		switch a.allows(r) {
		case allowed:
			prom.ServeHTTP(w, r)
		case needToken:
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluis metrics"`)
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

type verdict int

const (
	forbidden verdict = iota
	needToken
	allowed
)

func (a Access) allows(r *http.Request) verdict {
	if h, ok := r.Header["Authorization"]; ok {
		if len(a.TokenHash) != sha256.Size || len(h) != 1 {
			return needToken
		}
		scheme, tok, ok := strings.Cut(h[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return needToken
		}
		if subtle.ConstantTimeCompare(HashToken(tok), a.TokenHash) == 1 {
			return allowed
		}
		return needToken
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.Unmap()
			for _, n := range a.Networks {
				if n.Contains(ip) {
					return allowed
				}
			}
		}
	}
	if len(a.TokenHash) == sha256.Size {
		return needToken
	}
	return forbidden
}
