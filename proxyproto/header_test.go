package proxyproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// v2 builds a v2 header with command cmd, family fam and body.
func v2(cmd, fam byte, body []byte) []byte {
	b := append([]byte{}, v2Sig...)
	b = append(b, 0x20|cmd, fam, byte(len(body)>>8), byte(len(body)))
	return append(b, body...)
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

var (
	v2TCP4 = v2(1, 0x11, unhex("c0000207 c6336401 dc04 01bb"))
	v2TCP6 = v2(1, 0x21, unhex("20010db8000000000000000000000009 20010db8000000000000000000000001 dc04 01bb"))
)

func TestParse(t *testing.T) {
	tlsHello := []byte("\x16\x03\x01\x02\x00\x01")
	tests := []struct {
		name string
		in   []byte
		want string // the header's Source, "local", or the error
		n    int    // the header's length (of a complete one)
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"), "192.0.2.7:56324", 45},
		{"v1 TCP4 followed by TLS", append([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"), tlsHello...), "192.0.2.7:56324", 45},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::9 2001:db8::1 56324 443\r\n"), "[2001:db8::9]:56324", 46},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), "local", 15},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"), "local", 59},
		{"v1 incomplete", []byte("PROXY TCP4 192.0.2.7 198.51"), "incomplete", 0},
		{"v1 prefix only", []byte("PRO"), "incomplete", 0},
		{"v1 without CR", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\n"), "malformed", 0},
		{"v1 TCP4 with IPv6", []byte("PROXY TCP4 2001:db8::9 2001:db8::1 56324 443\r\n"), "malformed", 0},
		{"v1 TCP6 with IPv4", []byte("PROXY TCP6 192.0.2.7 198.51.100.1 56324 443\r\n"), "malformed", 0},
		{"v1 UDP4", []byte("PROXY UDP4 192.0.2.7 198.51.100.1 56324 443\r\n"), "malformed", 0},
		{"v1 leading zero", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 056324 443\r\n"), "malformed", 0},
		{"v1 port too large", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n"), "malformed", 0},
		{"v1 double space", []byte("PROXY TCP4  192.0.2.7 198.51.100.1 56324 443\r\n"), "malformed", 0},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 443\r\n"), "malformed", 0},
		{"v1 too long", append([]byte("PROXY TCP4 "), bytes.Repeat([]byte("1"), 200)...), "malformed", 0},
		{"v1 lower case", []byte("proxy TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"), "no header", 0},
		{"v2 TCP4", v2TCP4, "192.0.2.7:56324", 28},
		{"v2 TCP4 followed by TLS", append(append([]byte{}, v2TCP4...), tlsHello...), "192.0.2.7:56324", 28},
		{"v2 TCP6", v2TCP6, "[2001:db8::9]:56324", 52},
		{"v2 TCP4 with TLVs", v2(1, 0x11, unhex("c0000207 c6336401 dc04 01bb 04 0003 000000")), "192.0.2.7:56324", 34},
		{"v2 IPv4-mapped", v2(1, 0x21, unhex("00000000000000000000ffffc0000207 20010db8000000000000000000000001 dc04 01bb")), "192.0.2.7:56324", 52},
		{"v2 LOCAL", v2(0, 0x00, nil), "local", 16},
		{"v2 LOCAL with addresses", v2(0, 0x11, unhex("c0000207 c6336401 dc04 01bb")), "local", 28},
		{"v2 PROXY UNSPEC", v2(1, 0x00, nil), "local", 16},
		{"v2 incomplete fixed part", v2TCP4[:14], "incomplete", 0},
		{"v2 incomplete addresses", v2TCP4[:20], "incomplete", 0},
		{"v2 short addresses", v2(1, 0x11, unhex("c0000207 c6336401")), "malformed", 0},
		{"v2 UDP", v2(1, 0x12, unhex("c0000207 c6336401 dc04 01bb")), "malformed", 0},
		{"v2 unix", v2(1, 0x31, make([]byte, 216)), "malformed", 0},
		{"v2 bad command", v2(2, 0x11, unhex("c0000207 c6336401 dc04 01bb")), "malformed", 0},
		{"v2 bad version", append(append(append([]byte{}, v2Sig...), 0x11, 0x11, 0, 12), make([]byte, 12)...), "malformed", 0},
		{"v2 too long", v2(1, 0x11, make([]byte, MaxV2)), "malformed", 0},
		{"v2 bad signature", append([]byte("\r\n\r\n\x00\r\nQUIZ\n"), 0x21, 0x11, 0, 0), "no header", 0},
		{"TLS", tlsHello, "no header", 0},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), "no header", 0},
		{"empty", nil, "incomplete", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := Parse(tt.in)
			got := ""
			switch {
			case err == nil && h.Local:
				got = "local"
			case err == nil:
				got = h.Source.String()
			case errors.Is(err, ErrIncomplete):
				got = "incomplete"
			case errors.Is(err, ErrNoHeader):
				got = "no header"
			default:
				got = "malformed"
			}
			if got != tt.want || (err == nil && n != tt.n) {
				t.Fatalf("got %s (%v), %d bytes; want %s, %d bytes", got, err, n, tt.want, tt.n)
			}
		})
	}
}

// FuzzParse: whatever the bytes, Parse does not panic, reads no byte past
// the header it reports, and a header is complete exactly at its length.
// The seed corpus (testdata/fuzz/FuzzParse) holds headers as HAProxy
// sends them.
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n\x16\x03\x01"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2TCP4)
	f.Add(v2TCP6)
	f.Add(v2(0, 0, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			if n != 0 || h != (Header{}) {
				t.Fatalf("error %v with %d bytes and %+v", err, n, h)
			}
			return
		}
		if n <= 0 || n > len(b) || n > MaxV2 {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		h2, n2, err2 := Parse(b[:n])
		if err2 != nil || h2 != h || n2 != n {
			t.Fatalf("the header alone reads differently: %+v %d %v", h2, n2, err2)
		}
		if _, _, err := Parse(b[:n-1]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("one byte short of the header: %v, want incomplete", err)
		}
		if h.Local != !h.Source.IsValid() {
			t.Fatalf("local %v with source %v", h.Local, h.Source)
		}
		if a := h.Source.Addr(); h.Source.IsValid() && (a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("source %v", a)
		}
	})
}
