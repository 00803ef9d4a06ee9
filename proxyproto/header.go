// Package proxyproto takes the PROXY protocol (v1 and v2, as HAProxy
// specifies it) on the public listener, for TCP load balancers: a
// connection from a trusted balancer begins with a header naming the
// client's address, which then becomes the connection's remote address.
//
// The parser is strict: it reads exactly one header, reads no byte past
// it, accepts only TCP over IPv4 or IPv6 (and LOCAL or UNKNOWN, which
// keep the balancer's own address, for its health checks), and refuses
// everything else. Only trusted peers may send a header, and they must;
// an untrusted peer that begins with one is closed, as is a trusted one
// that does not.
package proxyproto

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
)

// Header is a parsed PROXY header.
type Header struct {
	// Source is the client's address and port, Dest the address the
	// client connected to (the balancer's). Both are zero when Local.
	Source, Dest netip.AddrPort
	// Local means the header carries no client: a v2 LOCAL command or a
	// v1 UNKNOWN (the balancer's own health check). The connection is the
	// balancer's.
	Local bool
	// Version is 1 or 2.
	Version int
}

// Limits of a header.
const (
	// maxV1 is v1's longest header, CRLF included (the specification's).
	maxV1 = 107
	// MaxV2 is the longest v2 header taken, addresses and TLVs included
	// (the format allows 16+65535 bytes; balancers send tens).
	MaxV2 = 1024
)

var (
	// ErrIncomplete means the bytes so far begin a header that is not
	// whole yet: read more.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
	// ErrNoHeader means the connection does not begin with a header.
	ErrNoHeader = errors.New("proxyproto: no PROXY header")
	errV1       = errors.New("proxyproto: malformed v1 header")
	errV2       = errors.New("proxyproto: malformed or unsupported v2 header")
)

var (
	v1Prefix = []byte("PROXY ")
	v2Sig    = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Parse reads the header at the start of b. It returns the header and its
// length in bytes; ErrIncomplete when b is a true beginning of a header
// that needs more bytes; ErrNoHeader when b cannot begin one; another
// error for a malformed or unsupported header. It never reads past the
// header.
func Parse(b []byte) (Header, int, error) {
	switch {
	case len(b) == 0:
		return Header{}, 0, ErrIncomplete
	case b[0] == v1Prefix[0]:
		if n := min(len(b), len(v1Prefix)); !bytes.Equal(b[:n], v1Prefix[:n]) {
			return Header{}, 0, ErrNoHeader
		}
		return parseV1(b)
	case b[0] == v2Sig[0]:
		if n := min(len(b), len(v2Sig)); !bytes.Equal(b[:n], v2Sig[:n]) {
			return Header{}, 0, ErrNoHeader
		}
		return parseV2(b)
	}
	return Header{}, 0, ErrNoHeader
}

// parseV1 reads "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n" and
// "PROXY UNKNOWN ...\r\n".
func parseV1(b []byte) (Header, int, error) {
	end := bytes.IndexByte(b[:min(len(b), maxV1)], '\n')
	if end < 0 {
		if len(b) >= maxV1 {
			return Header{}, 0, errV1
		}
		return Header{}, 0, ErrIncomplete
	}
	if end == 0 || b[end-1] != '\r' {
		return Header{}, 0, errV1
	}
	line := b[len(v1Prefix) : end-1]
	n := end + 1
	if bytes.HasPrefix(line, []byte("UNKNOWN")) && (len(line) == 7 || line[7] == ' ') {
		return Header{Local: true, Version: 1}, n, nil
	}
	f := bytes.Split(line, []byte(" "))
	if len(f) != 5 {
		return Header{}, 0, errV1
	}
	var want4 bool
	switch string(f[0]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return Header{}, 0, errV1
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sp, ok1 := v1Port(f[3])
	dp, ok2 := v1Port(f[4])
	if err1 != nil || err2 != nil || !ok1 || !ok2 || src.Zone() != "" || dst.Zone() != "" ||
		src.Is4() != want4 || dst.Is4() != want4 {
		return Header{}, 0, errV1
	}
	return Header{Source: netip.AddrPortFrom(src.Unmap(), sp), Dest: netip.AddrPortFrom(dst.Unmap(), dp), Version: 1}, n, nil
}

// v1Port reads a decimal port without sign or leading zeros.
func v1Port(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseV2 reads the binary header: the signature, version and command,
// family and transport, the length, the addresses and TLVs (skipped).
func parseV2(b []byte) (Header, int, error) {
	if len(b) < 16 {
		return Header{}, 0, ErrIncomplete
	}
	verCmd, fam := b[12], b[13]
	length := int(b[14])<<8 | int(b[15])
	if verCmd>>4 != 2 || 16+length > MaxV2 {
		return Header{}, 0, errV2
	}
	if len(b) < 16+length {
		return Header{}, 0, ErrIncomplete
	}
	n := 16 + length
	body := b[16:n]
	switch verCmd & 0xf {
	case 0: // LOCAL: the balancer speaks for itself; the addresses are ignored.
		return Header{Local: true, Version: 2}, n, nil
	case 1: // PROXY
	default:
		return Header{}, 0, errV2
	}
	switch fam {
	case 0x00: // UNSPEC: the balancer could not tell; its own address stands.
		return Header{Local: true, Version: 2}, n, nil
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return Header{}, 0, errV2
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		return Header{Source: netip.AddrPortFrom(src, port(body[8:])), Dest: netip.AddrPortFrom(dst, port(body[10:])), Version: 2}, n, nil
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return Header{}, 0, errV2
		}
		src := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		dst := netip.AddrFrom16([16]byte(body[16:32])).Unmap()
		return Header{Source: netip.AddrPortFrom(src, port(body[32:])), Dest: netip.AddrPortFrom(dst, port(body[34:])), Version: 2}, n, nil
	}
	// UDP and Unix sockets: not what a TLS listener is reached by.
	return Header{}, 0, errV2
}

func port(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
