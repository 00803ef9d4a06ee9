package frontdoor

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

var testProxies = Proxies{Trusted: []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:1::/48"),
}}

func TestProxiesClient(t *testing.T) {
	fwd := testProxies
	fwd.Header = "Forwarded"
	tests := []struct {
		name    string
		p       Proxies
		peer    string
		headers []string // lines of the proxies' header, in order
		want    string
	}{
		{"direct client, no header", testProxies, "192.0.2.7", nil, "192.0.2.7"},
		{"direct client forging the header", testProxies, "192.0.2.7", []string{"198.51.100.1"}, "192.0.2.7"},
		{"direct client naming a trusted proxy", testProxies, "192.0.2.7", []string{"10.0.0.5"}, "192.0.2.7"},
		{"balancer without a header", testProxies, "10.0.0.1", nil, "10.0.0.1"},
		{"balancer naming the client", testProxies, "10.0.0.1", []string{"192.0.2.7"}, "192.0.2.7"},
		{"client's forgery left of the balancer's entry", testProxies, "10.0.0.1", []string{"198.51.100.1, 192.0.2.7"}, "192.0.2.7"},
		{"client's forgery in a line of its own", testProxies, "10.0.0.1", []string{"198.51.100.1", "192.0.2.7"}, "192.0.2.7"},
		{"two balancers", testProxies, "10.0.0.1", []string{"198.51.100.1,192.0.2.7,10.0.0.2"}, "192.0.2.7"},
		{"every entry trusted", testProxies, "10.0.0.1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage from a client on a trusted network", testProxies, "10.0.0.1", []string{"evil, 10.0.0.2"}, "10.0.0.2"},
		{"garbage where the client should be", testProxies, "10.0.0.1", []string{"192.0.2.7, <script>"}, "10.0.0.1"},
		{"empty members", testProxies, "10.0.0.1", []string{"192.0.2.7, ,"}, "192.0.2.7"},
		{"with a port", testProxies, "10.0.0.1", []string{"192.0.2.7:4711"}, "192.0.2.7"},
		{"IPv6 client", testProxies, "10.0.0.1", []string{"2001:db8:2::9"}, "2001:db8:2::9"},
		{"IPv6 client with a port", testProxies, "2001:db8:1::1", []string{"[2001:db8:2::9]:4711"}, "2001:db8:2::9"},
		{"IPv4-mapped balancer and client", testProxies, "::ffff:10.0.0.1", []string{"::ffff:192.0.2.7"}, "192.0.2.7"},
		{"zone refused", testProxies, "10.0.0.1", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"Forwarded ignored when X-Forwarded-For is read", testProxies, "10.0.0.1", nil, "10.0.0.1"},
		{"Forwarded", fwd, "10.0.0.1", []string{`for=198.51.100.1, for=192.0.2.7;proto=https`}, "192.0.2.7"},
		{"Forwarded quoted IPv6", fwd, "10.0.0.1", []string{`For="[2001:db8:2::9]:4711"`}, "2001:db8:2::9"},
		{"Forwarded bracketed IPv6 without port", fwd, "10.0.0.1", []string{`for="[2001:db8:2::9]"`}, "2001:db8:2::9"},
		{"Forwarded unknown", fwd, "10.0.0.1", []string{`for=unknown`}, "10.0.0.1"},
		{"Forwarded hop without for", fwd, "10.0.0.1", []string{`for=192.0.2.7, by=10.0.0.1;proto=https`}, "10.0.0.1"},
		{"Forwarded from a direct client", fwd, "192.0.2.7", []string{`for=198.51.100.1`}, "192.0.2.7"},
		{"nobody trusted", Proxies{}, "10.0.0.1", []string{"192.0.2.7"}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			name := "X-Forwarded-For"
			if tt.p.Header == "Forwarded" {
				name = "Forwarded"
			}
			h[name] = tt.headers
			if tt.name == "Forwarded ignored when X-Forwarded-For is read" {
				h["Forwarded"] = []string{"for=192.0.2.99"}
			}
			got := tt.p.Client(netip.MustParseAddr(tt.peer), h)
			if got != netip.MustParseAddr(tt.want) {
				t.Fatalf("client %s, want %s", got, tt.want)
			}
		})
	}
}

// The door takes the client's address from a trusted proxy's header
// before anything reads it: blocks, probes and whatever comes after the
// door see the client; from anyone else the header changes nothing.
func TestDoorResolvesTheClientBehindTrustedProxies(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	blocks := &BlockList{
		Load:     func(context.Context) ([]sluis.Block, error) { return []sluis.Block{{CIDR: "192.0.2.66/32"}}, nil },
		Revision: func(context.Context) (int64, error) { return 1, nil },
		Now:      func() time.Time { return now },
	}
	var sawClient string
	var sawPeer netip.Addr
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sawClient, sawPeer = ClientIP(r), Peer(r) })
	var logs bytes.Buffer
	d := &Door{Hosts: map[string]bool{"login.test": true}, Portal: "login.test", Blocks: blocks, Proxies: testProxies, Next: next,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	tests := []struct {
		name, remote, xff string
		status            int
		client, peer      string
	}{
		{"direct", "192.0.2.7:4711", "", 200, "192.0.2.7", ""},
		{"direct with a forged header", "192.0.2.7:4711", "198.51.100.1", 200, "192.0.2.7", ""},
		{"blocked client forging an unblocked address", "192.0.2.66:4711", "198.51.100.1", 403, "", ""},
		{"through the balancer", "10.0.0.1:5000", "192.0.2.7", 200, "192.0.2.7", "10.0.0.1"},
		{"blocked client through the balancer", "10.0.0.1:5000", "192.0.2.66", 403, "", ""},
		{"other client through the balancer", "10.0.0.1:5001", "192.0.2.8", 200, "192.0.2.8", "10.0.0.1"},
		{"balancer's own request", "10.0.0.1:5002", "", 200, "10.0.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			sawClient, sawPeer = "", netip.Addr{}
			r := httptest.NewRequest("GET", "/login", nil)
			r.Host, r.RemoteAddr = "login.test", tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			w := httptest.NewRecorder()
			d.ServeHTTP(w, r)
			if w.Code != tt.status || sawClient != tt.client {
				t.Fatalf("status %d, client %q; want %d, %q", w.Code, sawClient, tt.status, tt.client)
			}
			if (tt.peer == "" && sawPeer.IsValid()) || (tt.peer != "" && sawPeer != netip.MustParseAddr(tt.peer)) {
				t.Fatalf("peer %v, want %q", sawPeer, tt.peer)
			}
		})
	}
	// A refusal's log line names the client, and the balancer it came
	// through.
	logs.Reset()
	r := httptest.NewRequest("TRACE", "/", nil)
	r.Host, r.RemoteAddr = "login.test", "10.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "192.0.2.9")
	d.ServeHTTP(httptest.NewRecorder(), r)
	if !strings.Contains(logs.String(), "source=192.0.2.9 via=10.0.0.1") {
		t.Fatalf("log: %s", logs.String())
	}
}

func FuzzProxiesClient(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "198.51.100.1, 10.0.0.2", "for=192.0.2.7;proto=https", `for="[2001:db8::1]:80"`, "unknown", ",,", "10.0.0.2, 10.0.0.3"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, header string, forwarded bool) {
		p := testProxies
		name := "X-Forwarded-For"
		if forwarded {
			p.Header, name = "Forwarded", "Forwarded"
		}
		h := http.Header{name: {header}}
		// From a source that is not trusted nothing the header says
		// counts.
		if got := p.Client(netip.MustParseAddr("192.0.2.1"), h); got != netip.MustParseAddr("192.0.2.1") {
			t.Fatalf("untrusted peer's header believed: %s", got)
		}
		got := p.Client(netip.MustParseAddr("10.0.0.1"), h)
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("client %v", got)
		}
	})
}

// BenchmarkDoorBehindBalancer is BenchmarkDoor for a request that came
// through a trusted balancer: the price of finding its client.
func BenchmarkDoorBehindBalancer(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, bc := range []struct {
		name, remote string
		p            Proxies
	}{{"no proxies configured", "192.0.2.1:4711", Proxies{}}, {"direct client", "192.0.2.1:4711", testProxies}, {"through the balancer", "10.0.0.1:4711", testProxies}} {
		b.Run(bc.name, func(b *testing.B) {
			d := &Door{Hosts: map[string]bool{"login.test": true, "wiki.test": true}, Portal: "login.test", Detector: &Detector{}, Proxies: bc.p, Next: next}
			r := httptest.NewRequest("GET", "/docs/page/edit?id=7&v=2", nil)
			r.Header.Set("Accept", "text/html")
			r.Header.Set("Cookie", "__Host-sluis=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; theme=dark")
			r.Header.Set("User-Agent", "Mozilla/5.0")
			r.Header.Set("X-Forwarded-For", "198.51.100.9")
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r.Host, r.RemoteAddr = "wiki.test:8443", bc.remote
				d.ServeHTTP(w, r)
			}
		})
	}
}

// Finding the client behind a balancer reads the header in place.
func TestProxiesClientDoesNotAllocate(t *testing.T) {
	h := http.Header{"X-Forwarded-For": {"198.51.100.1, 192.0.2.7", "10.0.0.2"}}
	peer := netip.MustParseAddr("10.0.0.1")
	if n := testing.AllocsPerRun(100, func() { testProxies.Client(peer, h) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkProxiesClient(b *testing.B) {
	h := http.Header{"X-Forwarded-For": {"198.51.100.1, 192.0.2.7", "10.0.0.2"}}
	peer := netip.MustParseAddr("10.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		testProxies.Client(peer, h)
	}
}
