package proxy

import (
	"net/url"
	"testing"
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
