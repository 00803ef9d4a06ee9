package frontdoor

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the load balancers in front of the gateway, whose word on
// the client's address is believed. The zero value trusts nobody: the
// client is the socket's peer, as it is without a balancer.
type Proxies struct {
	// Trusted are the balancers' addresses (IPv4 prefixes unmapped).
	Trusted []netip.Prefix
	// Header is the one header they write the client's address to,
	// in canonical form: "X-Forwarded-For" or "Forwarded". Only that one
	// is read: a balancer passes the other on as the client sent it.
	// Empty means X-Forwarded-For.
	Header string
}

// Trusts reports whether a is the address of a trusted proxy.
func (p Proxies) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, pf := range p.Trusted {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the address of the client of a request that arrived
// from peer with headers h. From a peer that is not trusted it is peer,
// whatever the headers say. From a trusted one it is the right-most
// address in the forwarding header that is not trusted: every proxy
// appends the address it was reached from, so the entries right of that
// one were written by trusted proxies and the entries left of it by
// whoever the client is (they are never read). When every entry is
// trusted the client is the left-most; when an entry cannot be read as
// an address ("unknown", an obfuscated name, garbage from a client on a
// trusted network) the last address read stands: a trusted proxy.
//
// It runs on every request from a balancer, so it reads the header from
// the right without splitting it, and does not allocate.
func (p Proxies) Client(peer netip.Addr, h http.Header) netip.Addr {
	peer = peer.Unmap()
	if !p.Trusts(peer) {
		return peer
	}
	name := p.Header
	if name == "" {
		name = "X-Forwarded-For"
	}
	forwarded := name == "Forwarded"
	client := peer
	lines := h[name]
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			var elem string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				rest, elem = rest[:j], rest[j+1:]
			} else {
				rest, elem = "", rest
			}
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue // "a, , b" and a trailing comma: empty list members
			}
			if forwarded {
				elem = forwardedFor(elem)
			}
			a, ok := parseForwardedAddr(elem)
			if !ok {
				return client
			}
			client = a
			if !p.Trusts(a) {
				return a
			}
		}
	}
	return client
}

// forwardedFor returns the for= value of one element of a Forwarded
// header (RFC 7239), unquoted; "" if it has none.
func forwardedFor(elem string) string {
	for elem != "" {
		var pair string
		pair, elem, _ = strings.Cut(elem, ";")
		pair = strings.Trim(pair, " \t")
		if len(pair) < 4 || !hasPrefixFold(pair, "for=") {
			continue
		}
		v := pair[4:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v
	}
	return ""
}

// parseForwardedAddr reads an address as proxies write it: bare
// (192.0.2.1, 2001:db8::1) or with a port (192.0.2.1:443,
// [2001:db8::1]:443, the form of RFC 7239 and of some cloud balancers).
// Zones are refused.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		// RFC 7239 brackets an IPv6 address even without a port.
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a, true
		}
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

type peerKey struct{}

// resolve puts the client's address, as the trusted proxies give it, in
// r.RemoteAddr, so that every reader of the client's address (ClientIP:
// throttles, probes, blocks, the audit trail, policy networks, tunnels;
// and the proxy's X-Forwarded-For) sees the client and not the balancer.
// The balancer's own address stays in the request's context (Peer). A
// request that did not come from a trusted proxy is returned as it is.
func (d *Door) resolve(r *http.Request) *http.Request {
	if len(d.Proxies.Trusted) == 0 {
		return r
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return r
	}
	peer = peer.Unmap()
	client := d.Proxies.Client(peer, r.Header)
	if client == peer {
		return r
	}
	r = r.WithContext(context.WithValue(r.Context(), peerKey{}, peer))
	// The client's port is not known (the header names none, or one the
	// balancer may have made up): 0.
	r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
	return r
}

// Peer returns the address of the trusted proxy r came through, when the
// front door took the client's address from its forwarding header; the
// zero Addr when r came straight from its client (or a proxy gave no
// other address).
func Peer(r *http.Request) netip.Addr {
	a, _ := r.Context().Value(peerKey{}).(netip.Addr)
	return a
}
