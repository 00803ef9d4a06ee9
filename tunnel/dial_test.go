package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestForbidden(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1":        true,
		"127.8.9.10":       true,
		"::1":              true,
		"169.254.169.254":  true, // cloud metadata
		"169.254.1.1":      true,
		"fe80::1":          true,
		"fd00:ec2::254":    true,
		"100.100.100.200":  true,
		"0.0.0.0":          true,
		"::":               true,
		"224.0.0.1":        true,
		"::ffff:127.0.0.1": true, // v4-mapped loopback
		"10.1.2.3":         false,
		"192.168.1.10":     false,
		"2001:db8::5":      false,
		"100.64.0.1":       false,
	} {
		if got := Forbidden(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Forbidden(%s) = %v, want %v", addr, got, want)
		}
	}
}

// fakeResolver answers every name with the same addresses.
type fakeResolver []netip.Addr

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f, nil
}

// A host name that resolves to a forbidden address is refused before any
// connection is made; a literal address is dialled as the operator wrote
// it, loopback included.
func TestDialChecksResolvedAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx := context.Background()
	for _, answer := range []fakeResolver{
		{netip.MustParseAddr("127.0.0.1")},
		{netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("127.0.0.1")}, // one bad address among good ones
		{netip.MustParseAddr("169.254.169.254")},
	} {
		d := &Dialer{Resolver: answer}
		if c, err := d.Dial(ctx, "desktop.corp.test:"+port); !errors.Is(err, ErrForbiddenAddress) {
			if c != nil {
				c.Close()
			}
			t.Errorf("a name resolving to %v: %v", answer, err)
		}
	}
	if len(accepted) != 0 {
		t.Fatalf("%d connections were made for forbidden names", len(accepted))
	}
	d := &Dialer{Resolver: fakeResolver{netip.MustParseAddr("127.0.0.1")}}
	c, err := d.Dial(ctx, "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("a literal address: %v", err)
	}
	c.Close()
}
