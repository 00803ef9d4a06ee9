package portal

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis"
)

func newReturnPortal(t testing.TB) *Portal {
	t.Helper()
	p := &Portal{
		Host:    "login.test",
		BaseURL: func(h string) string { return "https://" + h + ":8443" },
		Apps:    []sluis.App{{Name: "wiki", Host: "wiki.test"}},
		Log:     slog.Default(),
	}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	return p
}

type returnCase struct {
	name string
	raw  string
	want string // the rebuilt URL; "" means refused
}

var returnCases = []returnCase{
	// Accepted: rebuilt from configuration.
	{"empty goes to the launcher", "", "https://login.test:8443/"},
	{"portal without path", "https://login.test:8443", "https://login.test:8443/"},
	{"portal root", "https://login.test:8443/", "https://login.test:8443/"},
	{"portal path and query", "https://login.test:8443/apps?x=1", "https://login.test:8443/apps?x=1"},
	{"app path and query", "https://wiki.test:8443/page/edit?id=7&v=2", "https://wiki.test:8443/page/edit?id=7&v=2"},
	{"app query without path", "https://wiki.test:8443?q=1", "https://wiki.test:8443/?q=1"},
	{"escaped utf-8 path", "https://wiki.test:8443/caf%C3%A9", "https://wiki.test:8443/caf%C3%A9"},
	{"escaped space", "https://wiki.test:8443/a%20b", "https://wiki.test:8443/a%20b"},
	{"fragment dropped", "https://wiki.test:8443/a#@evil.example", "https://wiki.test:8443/a"},
	{"scheme case", "HTTPS://wiki.test:8443/a", "https://wiki.test:8443/a"},
	{"encoded CR LF in query stays encoded", "https://wiki.test:8443/a?n=%0d%0a", "https://wiki.test:8443/a?n=%0d%0a"},

	// Other hosts.
	{"other host", "https://evil.example/", ""},
	{"other host with our port", "https://evil.example:8443/", ""},
	{"our name as a prefix", "https://login.test.evil.example:8443/", ""},
	{"subdomain of the portal", "https://evil.login.test:8443/", ""},
	{"unknown app host", "https://grafana.test:8443/", ""},
	{"trailing dot", "https://login.test.:8443/", ""},
	{"upper-case host", "https://LOGIN.TEST:8443/", ""},
	{"ip address", "https://127.0.0.1:8443/", ""},
	{"ipv6", "https://[::1]:8443/", ""},
	{"percent in host", "https://login%2etest:8443/", ""},

	// Scheme-relative and scheme tricks.
	{"scheme-relative", "//evil.example", ""},
	{"scheme-relative to our host", "//login.test:8443/", ""},
	{"slash backslash", "/\\evil.example", ""},
	{"backslash slash", "\\/evil.example", ""},
	{"relative path", "/apps", ""},
	{"https without slashes", "https:evil.example", ""},
	{"https with one slash", "https:/evil.example", ""},
	{"https with three slashes", "https:///evil.example", ""},
	{"http scheme", "http://login.test:8443/", ""},
	{"ftp scheme", "ftp://login.test:8443/", ""},
	{"javascript", "javascript:alert(1)", ""},
	{"javascript with our host", "javascript://login.test:8443/%0aalert(1)", ""},
	{"data", "data:text/html,<script>alert(1)</script>", ""},

	// User info.
	{"our host as user info", "https://login.test:8443@evil.example/", ""},
	{"user info before our host", "https://evil.example@login.test:8443/", ""},
	{"empty user info", "https://@login.test:8443/", ""},
	{"encoded at sign", "https://login.test:8443%40evil.example/", ""},
	{"backslash before at", "https://login.test:8443\\@evil.example/", ""},

	// Ports.
	{"wrong port", "https://login.test:443/", ""},
	{"no port", "https://login.test/", ""},
	{"empty port", "https://login.test:/", ""},
	{"zero-padded port", "https://login.test:08443/", ""},
	{"two ports", "https://login.test:8443:8443/", ""},

	// Control bytes, whitespace, backslashes.
	{"CR LF", "https://login.test:8443/\r\nSet-Cookie: x=1", ""},
	{"encoded CR LF in path", "https://login.test:8443/%0d%0aSet-Cookie:x=1", ""},
	{"tab in path", "https://login.test:8443/\tx", ""},
	{"leading tab", "\thttps://login.test:8443/", ""},
	{"leading space", " https://login.test:8443/", ""},
	{"tab in scheme", "ht\ttps://login.test:8443/", ""},
	{"nul in host", "https://wiki.test:8443\x00.evil.example/", ""},
	{"encoded tab then host", "/%09/evil.example", ""},
	{"encoded tab in path", "https://login.test:8443/%09/evil.example", ""},
	{"backslash in path", "https://login.test:8443/a\\b", ""},
	{"raw non-ASCII", "https://wiki.test:8443/caf\xc3\xa9", ""},

	// Paths the front door would refuse.
	{"double slash path", "https://login.test:8443//evil.example", ""},
	{"dot-segment", "https://login.test:8443/a/../b", ""},
	{"encoded dot-segment", "https://login.test:8443/a/%2e%2e/b", ""},
	{"encoded slashes", "https://login.test:8443/%2f%2fevil.example", ""},
	{"path parameter", "https://wiki.test:8443/tmui/login.jsp/..;/x", ""},
	{"over-long", "https://login.test:8443/" + strings.Repeat("a", 2048), ""},
}

func TestCheckReturn(t *testing.T) {
	p := newReturnPortal(t)
	for _, tt := range returnCases {
		got, ok := p.checkReturn(tt.raw)
		switch {
		case tt.want == "" && ok:
			t.Errorf("%s: checkReturn(%q) accepted as %q", tt.name, tt.raw, got.url(p))
		case tt.want != "" && !ok:
			t.Errorf("%s: checkReturn(%q) refused", tt.name, tt.raw)
		case tt.want != "" && got.url(p) != tt.want:
			t.Errorf("%s: checkReturn(%q) = %q, want %q", tt.name, tt.raw, got.url(p), tt.want)
		}
	}
}

func FuzzCheckReturn(f *testing.F) {
	for _, tt := range returnCases {
		if len(tt.raw) <= 256 {
			f.Add(tt.raw)
		}
	}
	p := newReturnPortal(f)
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := p.checkReturn(raw)
		if !ok {
			return
		}
		if !strings.HasPrefix(got.path, "/") || strings.HasPrefix(got.path, "//") {
			t.Fatalf("checkReturn(%q): path %q", raw, got.path)
		}
		s := got.url(p)
		for i := 0; i < len(s); i++ {
			if s[i] <= 0x20 || s[i] == '\\' || s[i] >= 0x7f {
				t.Fatalf("checkReturn(%q) = %q: byte %#x", raw, s, s[i])
			}
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("checkReturn(%q) = %q: %v", raw, s, err)
		}
		if u.Scheme != "https" || u.User != nil || u.Opaque != "" {
			t.Fatalf("checkReturn(%q) = %q: not a plain https URL", raw, s)
		}
		if u.Host != "login.test:8443" && u.Host != "wiki.test:8443" {
			t.Fatalf("checkReturn(%q) = %q: host %q", raw, s, u.Host)
		}
		if !strings.HasPrefix(u.EscapedPath(), "/") || strings.HasPrefix(u.EscapedPath(), "//") {
			t.Fatalf("checkReturn(%q) = %q: path %q", raw, s, u.EscapedPath())
		}
	})
}
