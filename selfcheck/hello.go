package selfcheck

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Go's TLS client offers only the suites Go implements. To see whether a
// gateway accepts SSL 3.0 or suites that are broken outright (NULL,
// EXPORT, DES, anonymous key exchange), the check writes a ClientHello of
// its own and reads only the ServerHello: no handshake is completed.

// rawSuite is a cipher suite Go does not implement.
type rawSuite struct {
	id   uint16
	name string
	bad  Status // what accepting it means
}

var rawSuites = []rawSuite{
	{0x0001, "TLS_RSA_WITH_NULL_MD5", Fail},
	{0x0002, "TLS_RSA_WITH_NULL_SHA", Fail},
	{0x003b, "TLS_RSA_WITH_NULL_SHA256", Fail},
	{0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA", Fail},
	{0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", Fail},
	{0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", Fail},
	{0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", Fail},
	{0x0009, "TLS_RSA_WITH_DES_CBC_SHA", Fail},
	{0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA", Fail},
	{0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", Fail},
	{0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", Fail},
	{0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA", Fail},
	{0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", Fail},
	{0x00a7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384", Fail},
	{0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", Fail},
	{0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", Fail},
	{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", Warn},
	{0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", Warn},
	{0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", Fail}, // RSA key exchange
	{0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", Fail},
}

// sslv3Suites are what an SSL 3.0 client would offer.
var sslv3Suites = []uint16{0x002f, 0x0035, 0x000a, 0x0005, 0x0004, 0x0009, 0x0033, 0x0039, 0x0016}

// clientHello builds a ClientHello record for version offering suites.
func clientHello(server string, version uint16, suites []uint16) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, version)
	random := make([]byte, 32)
	rand.Read(random)
	body = append(body, random...)
	body = append(body, 0) // no session id
	body = binary.BigEndian.AppendUint16(body, uint16(2*len(suites)))
	for _, s := range suites {
		body = binary.BigEndian.AppendUint16(body, s)
	}
	body = append(body, 1, 0) // compression: null only
	var ext []byte
	if version > 0x0300 {
		if net.ParseIP(server) == nil && server != "" {
			name := []byte(server)
			sni := binary.BigEndian.AppendUint16(nil, uint16(len(name)+3))
			sni = append(sni, 0)
			sni = binary.BigEndian.AppendUint16(sni, uint16(len(name)))
			sni = append(sni, name...)
			ext = appendExt(ext, 0x0000, sni)
		}
		// Groups: x25519, P-256, P-384, ffdhe2048; point formats; signature
		// algorithms (RSA and ECDSA with SHA-256/384/1); secure
		// renegotiation.
		ext = appendExt(ext, 0x000a, []byte{0, 8, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18, 0x01, 0x00})
		ext = appendExt(ext, 0x000b, []byte{1, 0})
		ext = appendExt(ext, 0x000d, []byte{0, 12, 0x04, 0x01, 0x05, 0x01, 0x04, 0x03, 0x05, 0x03, 0x02, 0x01, 0x02, 0x03})
		ext = appendExt(ext, 0xff01, []byte{0})
		body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
		body = append(body, ext...)
	}
	hs := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	hs = append(hs, body...)
	rec := []byte{0x16, 0x03, 0x01}
	if version == 0x0300 {
		rec[2] = 0x00
	}
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(hs)))
	return append(rec, hs...)
}

func appendExt(b []byte, typ uint16, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// serverHello sends a ClientHello and returns the version and suite the
// server chose; an alert or a closed connection is a refusal (ok false).
func (c *checker) serverHello(ctx context.Context, version uint16, suites []uint16) (gotVersion, suite uint16, ok bool, err error) {
	d := &net.Dialer{Timeout: c.o.Timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return 0, 0, false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(c.o.Timeout))
	if _, err := conn.Write(clientHello(c.server, version, suites)); err != nil {
		return 0, 0, false, nil
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return 0, 0, false, nil // closed: refused
	}
	if hdr[0] != 0x16 {
		return 0, 0, false, nil // an alert, or not TLS
	}
	n := int(binary.BigEndian.Uint16(hdr[3:5]))
	if n < 4+2+32+1 || n > 1<<14 {
		return 0, 0, false, errors.New("a malformed ServerHello")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(conn, msg); err != nil {
		return 0, 0, false, nil
	}
	if msg[0] != 2 { // ServerHello
		return 0, 0, false, nil
	}
	p := msg[4:]
	gotVersion = binary.BigEndian.Uint16(p[0:2])
	sidLen := int(p[34])
	if len(p) < 35+sidLen+2 {
		return 0, 0, false, errors.New("a short ServerHello")
	}
	suite = binary.BigEndian.Uint16(p[35+sidLen:])
	return gotVersion, suite, true, nil
}

// checkRawTLS probes SSL 3.0 and the suites Go cannot offer.
func (c *checker) checkRawTLS(ctx context.Context) {
	if v, s, ok, err := c.serverHello(ctx, 0x0300, sslv3Suites); err != nil {
		c.add("tls", "SSL 3.0 refused", Warn, "could not tell: "+err.Error())
	} else if ok && v == 0x0300 {
		c.add("tls", "SSL 3.0 refused", Fail, "the server chose SSL 3.0 with suite "+suiteName(s)+" (POODLE)")
	} else {
		c.add("tls", "SSL 3.0 refused", Pass, "refused")
	}
	var fails, warns []string
	for _, rs := range rawSuites {
		_, s, ok, err := c.serverHello(ctx, 0x0303, []uint16{rs.id})
		if err != nil || !ok || s != rs.id {
			continue
		}
		if rs.bad == Fail {
			fails = append(fails, rs.name)
		} else {
			warns = append(warns, rs.name)
		}
	}
	switch {
	case len(fails) > 0:
		c.add("tls", "no NULL, EXPORT, DES or anonymous suites", Fail, "accepted: "+strings.Join(fails, ", "))
	default:
		c.add("tls", "no NULL, EXPORT, DES or anonymous suites", Pass, fmt.Sprintf("none of %d such suites accepted", len(rawSuites)))
	}
	if len(warns) > 0 {
		c.add("tls", "no DHE with CBC", Warn, "accepted: "+strings.Join(warns, ", "))
	}
}

func suiteName(id uint16) string {
	for _, rs := range rawSuites {
		if rs.id == id {
			return rs.name
		}
	}
	return fmt.Sprintf("0x%04x", id)
}
