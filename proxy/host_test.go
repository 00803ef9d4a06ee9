package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"

	"github.com/sluis-gateway/sluis"
)

func TestCutOrigin(t *testing.T) {
	up := &url.URL{Scheme: "http", Host: "127.0.0.1:9001"}
	pub := &url.URL{Scheme: "https", Host: "wiki.corp.test"}
	tests := []struct {
		raw    string
		origin *url.URL
		rest   string
		ok     bool
	}{
		{"http://127.0.0.1:9001/a/b?c=d#e", up, "/a/b?c=d#e", true},
		{"http://127.0.0.1:9001", up, "/", true},
		{"HTTP://127.0.0.1:9001/x", up, "/x", true},
		{"http://127.0.0.1:9002/x", up, "", false},  // another port
		{"https://127.0.0.1:9001/x", up, "", false}, // another scheme
		{"http://evil.example/x", up, "", false},
		{"/relative", up, "", false},
		{"//127.0.0.1:9001/x", up, "", false}, // scheme-relative: not the upstream's to translate
		{"http://user@127.0.0.1:9001/x", up, "", false},
		{"https://wiki.corp.test:443/f%2Fg", pub, "/f%2Fg", true}, // the default port written
		{"https://WIKI.corp.test/x", pub, "/x", true},
		{"https://wiki.corp.test.evil/x", pub, "", false},
	}
	for _, tt := range tests {
		rest, ok := cutOrigin(tt.raw, tt.origin)
		if ok != tt.ok || rest != tt.rest {
			t.Errorf("cutOrigin(%q, %v) = %q, %v; want %q, %v", tt.raw, tt.origin, rest, ok, tt.rest, tt.ok)
		}
	}
}

func TestDropDomain(t *testing.T) {
	for in, want := range map[string]string{
		"a=1; Domain=127.0.0.1; Path=/":   "a=1; Path=/",
		"a=1; domain=.internal; HttpOnly": "a=1; domain=.internal; HttpOnly", // not the upstream's host
		"a=1; Path=/":                     "a=1; Path=/",
		"a=1; Domain=127.0.0.1":           "a=1",
	} {
		if got := dropDomain(in, "127.0.0.1"); got != want {
			t.Errorf("dropDomain(%q) = %q, want %q", in, got, want)
		}
	}
	if got := dropDomain("s=1; Domain=corp.internal", "app.corp.internal"); got != "s=1" {
		t.Errorf("a parent domain of the upstream host: %q", got)
	}
}

// Origin and Referer naming the app's public origin reach the upstream as
// its own origin, so that a same-origin check against the Host it is asked
// by holds for the app's own pages; any other origin passes unchanged and
// stays foreign. With PreserveHost the upstream sees the public host, and
// both stay as they are.
func TestOriginAndRefererOfTheAppItself(t *testing.T) {
	const up = "http://127.0.0.1:9001"
	tests := []struct {
		name, value, want string
	}{
		{"Origin", "https://wiki.test:8443", up},
		{"Origin", "https://WIKI.test:8443", "https://WIKI.test:8443"},           // not as a browser writes it: left
		{"Origin", "https://wiki.test", "https://wiki.test"},                     // another port: another origin
		{"Origin", "http://wiki.test:8443", "http://wiki.test:8443"},             // another scheme
		{"Origin", "https://hr.test:8443", "https://hr.test:8443"},               // another app
		{"Origin", "https://evil.example", "https://evil.example"},               // another site
		{"Origin", "https://wiki.test:84431", "https://wiki.test:84431"},         // another port
		{"Origin", "https://wiki.test:8443.evil", "https://wiki.test:8443.evil"}, // not a port
		{"Origin", "null", "null"},                                               // an opaque origin
		{"Origin", "https://wiki.test:8443/", "https://wiki.test:8443/"},         // not an origin
		{"Referer", "https://wiki.test:8443/notebooks/a%20b.ipynb?x=1", up + "/notebooks/a%20b.ipynb?x=1"},
		{"Referer", "https://wiki.test:8443/", up + "/"},
		{"Referer", "https://wiki.test:84431/", "https://wiki.test:84431/"},
		{"Referer", "https://wiki.test:8443.evil/", "https://wiki.test:8443.evil/"},
		{"Referer", "https://wiki.test:8443@evil.example/", "https://wiki.test:8443@evil.example/"},
		{"Referer", "https://evil.example/https://wiki.test:8443/", "https://evil.example/https://wiki.test:8443/"},
		{"Referer", "https://anna@wiki.test:8443/", "https://anna@wiki.test:8443/"},
		{"Destination", "https://wiki.test:8443/dav/b.txt", up + "/dav/b.txt"},
	}
	for _, preserve := range []bool{false, true} {
		p, err := New(sluis.App{Name: "wiki", Host: "wiki.test", Upstream: up, PreserveHost: preserve}, "https://wiki.test:8443", nil, nil, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		rewrite := func(h http.Header) http.Header {
			in := httptest.NewRequest("GET", "https://wiki.test:8443/api/sessions", nil)
			in.Header = h
			pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
			p.rewriteHost(pr)
			return pr.Out.Header
		}
		for _, tt := range tests {
			want := tt.want
			if preserve {
				want = tt.value
			}
			if got := rewrite(http.Header{tt.name: {tt.value}}); !slices.Equal(got[tt.name], []string{want}) {
				t.Errorf("preserve_host %v: %s %q reached the upstream as %q, want %q", preserve, tt.name, tt.value, got[tt.name], want)
			}
		}
		// Two values are not the browser's: left as they are.
		two := []string{"https://wiki.test:8443", "https://evil.example"}
		if got := rewrite(http.Header{"Origin": two}); !slices.Equal(got["Origin"], two) {
			t.Errorf("preserve_host %v: two Origin values became %q", preserve, got["Origin"])
		}
	}
}

// The public origin is written as browsers write it: lower case, no
// default port.
func TestPublicOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://wiki.test:8443": "https://wiki.test:8443",
		"https://wiki.test:443":  "https://wiki.test",
		"https://Wiki.Test":      "https://wiki.test",
		"http://wiki.test:80":    "http://wiki.test",
	} {
		a, err := newAddresses(in, "http://127.0.0.1:9001")
		if err != nil || a.publicOrigin != want || a.upstreamOrigin != "http://127.0.0.1:9001" {
			t.Errorf("newAddresses(%q): %q, %q, %v; want public origin %q", in, a.publicOrigin, a.upstreamOrigin, err, want)
		}
	}
}
