// Package tunnel carries TCP connections to TCP apps (remote desktop, SSH,
// databases) over the gateway's HTTPS listener. Each connection is one
// HTTP/2 stream, a POST to /.sluis/tunnel/APP whose request body carries
// the client's bytes and whose response body carries the target's; many
// share one TLS connection, and HTTP/2's flow control is the back-pressure.
// A stream passes the front door like any request and is authenticated by
// the token of a `sluis connect` session; nothing is dialled before that
// and the policy allow it.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// ErrForbiddenAddress is returned when a TCP app's host name resolves to
// an address no tunnel may reach.
var ErrForbiddenAddress = errors.New("the target resolves to a loopback, link-local, cloud-metadata or the gateway's own address")

// metadata are cloud metadata and platform services outside the
// link-local ranges.
var metadata = []netip.Prefix{
	netip.MustParsePrefix("fd00:ec2::/32"),      // AWS over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure WireServer
}

// Forbidden reports whether a resolved address is one a name must not lead
// a tunnel to: loopback, link-local (cloud metadata at 169.254.169.254
// among them), unspecified, multicast or a known metadata service.
func Forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	for _, m := range metadata {
		if m.Contains(ip) {
			return true
		}
	}
	return false
}

// own reports whether ip is an address of this machine: a name that
// resolves to one would reach the gateway's own services.
func own(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// Dialer dials the configured targets of TCP apps.
type Dialer struct {
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// Timeout bounds a dial; zero means 10 seconds.
	Timeout time.Duration
}

// Dial connects to target (host:port from configuration). A literal IP
// address is dialled as written: the operator chose it. A host name is
// resolved now, and refused if any of its addresses is forbidden, so DNS
// cannot turn a tunnel to the inside of the gateway; the address checked
// is the address dialled.
func (d *Dialer) Dial(ctx context.Context, target string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nd := &net.Dialer{}
	if _, err := netip.ParseAddr(host); err == nil {
		return nd.DialContext(ctx, "tcp", target)
	}
	var res interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	} = net.DefaultResolver
	if d.Resolver != nil {
		res = d.Resolver
	}
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	for _, a := range addrs {
		if Forbidden(a) || own(a) {
			return nil, fmt.Errorf("%s: %w (%s)", host, ErrForbiddenAddress, a)
		}
	}
	var last error
	for _, a := range addrs {
		conn, err := nd.DialContext(ctx, "tcp", net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		last = err
	}
	return nil, last
}
