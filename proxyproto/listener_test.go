package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// sourced records what SetSource was told, and refuses 192.0.2.66.
type sourced struct {
	net.Conn
	got netip.Addr
}

func (s *sourced) SetSource(a netip.Addr) error {
	s.got = a
	if a == netip.MustParseAddr("192.0.2.66") {
		return errors.New("too many connections from 192.0.2.66")
	}
	return nil
}

type sourcingListener struct{ net.Listener }

func (l sourcingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sourced{Conn: c}, nil
}

// TestListener runs the listener on loopback, with 127.0.0.2 as the
// trusted balancer and 127.0.0.3 as a client that connects directly.
func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	l := &Listener{Listener: sourcingListener{inner}, Timeout: 300 * time.Millisecond,
		Trusted: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.2") }}
	tests := []struct {
		name, from string
		send       []byte
		remote     string // the server's RemoteAddr; its host only when it is the peer's
		source     string // what SetSource was told
		read       string // what the server reads; "" when the connection is refused
	}{
		{"v1 from the balancer", "127.0.0.2", []byte("PROXY TCP4 192.0.2.7 127.0.0.1 40312 8443\r\nhello"), "192.0.2.7:40312", "192.0.2.7", "hello"},
		{"v2 from the balancer", "127.0.0.2", append(append([]byte{}, v2TCP6...), "hello"...), "[2001:db8::9]:56324", "2001:db8::9", "hello"},
		{"LOCAL from the balancer", "127.0.0.2", append(v2(0, 0, nil), "hello"...), "127.0.0.2", "", "hello"},
		{"the balancer without a header", "127.0.0.2", []byte("\x16\x03\x01hello"), "127.0.0.2", "", ""},
		{"the balancer with a malformed header", "127.0.0.2", []byte("PROXY TCP4 192.0.2.7\r\nhello"), "127.0.0.2", "", ""},
		{"the balancer sends nothing", "127.0.0.2", nil, "127.0.0.2", "", ""},
		{"a client past its cap", "127.0.0.2", []byte("PROXY TCP4 192.0.2.66 127.0.0.1 40312 8443\r\nhello"), "127.0.0.2", "192.0.2.66", ""},
		{"a direct client", "127.0.0.3", []byte("\x16\x03\x01hello"), "127.0.0.3", "", "\x16\x03\x01hello"},
		{"a direct client's v1 header", "127.0.0.3", []byte("PROXY TCP4 192.0.2.7 127.0.0.1 40312 8443\r\nhello"), "127.0.0.3", "", ""},
		{"a direct client's v2 header", "127.0.0.3", append(append([]byte{}, v2TCP4...), "hello"...), "127.0.0.3", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.from)}}
			cc, err := d.Dial("tcp", inner.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			if tt.send != nil {
				if _, err := cc.Write(tt.send); err != nil {
					t.Fatal(err)
				}
			}
			sc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			remote := sc.RemoteAddr().String()
			if host, _, _ := net.SplitHostPort(remote); host == tt.from {
				remote = host
			}
			if remote != tt.remote {
				t.Errorf("remote %s, want %s", remote, tt.remote)
			}
			if got := sc.(*Conn).NetConn().(*sourced).got; (tt.source == "" && got.IsValid()) || (tt.source != "" && got.String() != tt.source) {
				t.Errorf("source %v, want %q", got, tt.source)
			}
			buf := make([]byte, 64)
			sc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := io.ReadAtLeast(sc, buf, 1)
			if tt.read == "" {
				if err == nil {
					t.Fatalf("read %q from a connection that should be refused", buf[:n])
				}
				// Refused means closed: the client sees the end.
				cc.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := cc.Read(buf); err == nil {
					t.Fatalf("client's connection still open: %v", err)
				}
				return
			}
			if err != nil || string(buf[:n]) != tt.read {
				t.Fatalf("read %q, %v; want %q", buf[:n], err, tt.read)
			}
		})
	}
	if got := l.Refused(); got != 6 {
		t.Errorf("%d refused, want 6", got)
	}
}

// A deadline the server set before the header was read still holds
// afterwards; the header's own is gone.
func TestListenerKeepsTheServersDeadline(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	l := &Listener{Listener: inner, Timeout: 100 * time.Millisecond, Trusted: func(netip.Addr) bool { return true }}
	cc, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.Write([]byte("PROXY TCP4 192.0.2.7 127.0.0.1 40312 8443\r\n"))
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetReadDeadline(time.Now().Add(time.Second))
	if sc.RemoteAddr().String() != "192.0.2.7:40312" {
		t.Fatalf("remote %s", sc.RemoteAddr())
	}
	// Past the header's 100ms, within the server's second.
	go func() { time.Sleep(300 * time.Millisecond); cc.Write([]byte("late")) }()
	buf := make([]byte, 8)
	n, err := sc.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}
