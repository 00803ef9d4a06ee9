package selfcheck

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJudgeRedirect(t *testing.T) {
	base, _ := url.Parse("https://login.corp.test/login")
	tests := []struct {
		name     string
		location string
		header   http.Header
		body     string
		want     Status
	}{
		{"no redirect", "", nil, "<form>", Pass},
		{"own path", "/launcher", nil, "", Pass},
		{"own host", "https://login.corp.test/x", nil, "", Pass},
		{"absolute", "https://evil.example/", nil, "", Fail},
		{"scheme-relative", "//evil.example/", nil, "", Fail},
		{"backslash", `/\evil.example/`, nil, "", Fail},
		{"tab", "/\t/evil.example", nil, "", Fail},
		{"userinfo", "https://login.corp.test@evil.example/", nil, "", Fail},
		{"subdomain of evil", "https://login.corp.test.evil.example/", nil, "", Fail},
		{"evil as a subdomain of ours", "https://evil.example.corp.test/", nil, "", Pass},
		{"evil in the query only", "/login?rd=https%3A%2F%2Fevil.example", nil, "", Pass},
		{"injected header", "", http.Header{"Set-Cookie": {"x=1; Domain=evil.example"}}, "", Fail},
		{"meta refresh", "", nil, `<meta http-equiv="refresh" content="0;url=https://evil.example/">`, Fail},
		{"script redirect", "", nil, `<script>window.location = "https://evil.example/"</script>`, Fail},
		{"reflected in a form", "", nil, `<input type="hidden" name="next" value="//evil.example/">`, Warn},
		{"other scheme without slashes", "http:evil.example", nil, "", Fail},
		{"same scheme without slashes is a path", "https:evil.example", nil, "", Pass},
		{"three slashes", "///evil.example", nil, "", Fail},
		{"trailing dot", "https://evil.example./", nil, "", Fail},
		{"escaped dot", "https://evil%2Eexample/", nil, "", Fail},
		{"leading space and controls", " \x01//evil.example/", nil, "", Fail},
		{"other scheme, one slash", "http:/evil.example", nil, "", Fail},
		{"javascript", "javascript:alert(1)//evil.example", nil, "", Pass},
		{"a return address in a cookie value", "", http.Header{"Set-Cookie": {"rd=https%3A%2F%2Fevil.example; Path=/"}}, "", Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h[k] = v
			}
			if tt.location != "" {
				h.Set("Location", tt.location)
			}
			a := answer{status: 200, header: h, body: []byte(tt.body)}
			if tt.location != "" {
				a.status = 302
			}
			if got, why := judgeRedirect(base, a); got != tt.want {
				t.Errorf("judgeRedirect = %s (%s), want %s", got, why, tt.want)
			}
		})
	}
}

func TestSuiteStrength(t *testing.T) {
	tests := map[string]Status{
		"TLS_RSA_WITH_AES_128_GCM_SHA256":             Fail, // no forward secrecy
		"TLS_RSA_WITH_RC4_128_SHA":                    Fail,
		"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA":         Fail,
		"TLS_ECDHE_RSA_WITH_RC4_128_SHA":              Fail,
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA":          Warn,
		"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256":     Warn,
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384":     Pass,
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": Pass,
	}
	for name, want := range tests {
		if got := suiteStrength(name); got != want {
			t.Errorf("suiteStrength(%s) = %s, want %s", name, got, want)
		}
	}
}

func TestVersionDisclosure(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"Apache/2.4.41 (Ubuntu)", true},
		{"nginx/1.18.0", true},
		{"Microsoft-IIS/10.0", true},
		{"PHP/7.2.24", true},
		{"1.1 varnish (Varnish/6.0)", true},
		{"nginx", false},
		{"cloudflare", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := versioned.MatchString(tt.value); got != tt.want {
			t.Errorf("versioned(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
	if m := errorPageVersion.FindString(`<hr><center>nginx/1.18.0</center>`); m != "nginx/1.18.0" {
		t.Errorf("error page version: %q", m)
	}
	if m := errorPageVersion.FindString(`<p>Powered by sluis</p>`); m != "" {
		t.Errorf("error page version in a clean page: %q", m)
	}
}

func TestLeak(t *testing.T) {
	for body, want := range map[string]bool{
		"root:x:0:0:root:/root:/bin/bash":                     true,
		"uid=0(root) gid=0(root)":                             true,
		"panic: boom\n\ngoroutine 1 [running]:":               true,
		"-----BEGIN PRIVATE KEY-----":                         true,
		"<!doctype html><title>404 Not Found</title>":         false,
		"Traceback (most recent call last):\n  File \"x.py\"": true,
	} {
		if got := leak([]byte(body)) != ""; got != want {
			t.Errorf("leak(%q) = %v, want %v", body, got, want)
		}
	}
}

func TestMaxAge(t *testing.T) {
	for v, want := range map[string]int{
		"max-age=31536000":                    31536000,
		"max-age=63072000; includeSubDomains": 63072000,
		`includeSubDomains; max-age="600"`:    600,
		"":                                    0,
		"max-age=abc":                         0,
	} {
		if got := maxAge(v); got != want {
			t.Errorf("maxAge(%q) = %d, want %d", v, got, want)
		}
	}
}

// A gateway under test is not trusted: what it sends must not reach the
// operator's terminal as control characters.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[2J\x1b]0;owned\x07", "caf\xc3\xa9", "\xff\xfe", strings.Repeat("a", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := printable(s, 300)
		if !utf8.ValidString(out) {
			t.Fatalf("not UTF-8: %q", out)
		}
		for _, r := range out {
			if r < 0x20 || r >= 0x7f {
				t.Fatalf("printable(%q) kept %U", s, r)
			}
		}
		if len(out) > 300+8 {
			t.Fatalf("printable kept %d bytes", len(out))
		}
	})
}

// Location values come from the gateway under test.
func FuzzJudgeRedirect(f *testing.F) {
	base, _ := url.Parse("https://login.corp.test/login")
	for _, s := range []string{"//evil.example/", `/\evil.example`, "https:evil.example", "/%09/evil.example", "http://[::1", "\x00", "/ok"} {
		f.Add(s, "<p>")
	}
	f.Fuzz(func(t *testing.T, loc, body string) {
		a := answer{status: 302, header: http.Header{"Location": {loc}}, body: []byte(body)}
		st, _ := judgeRedirect(base, a)
		// Whatever the browser would reach must be judged: a Location
		// that resolves to evil.example never passes.
		if h := browserHost(base, loc); (h == evil || strings.HasSuffix(h, "."+evil)) && st != Fail {
			t.Fatalf("Location %q reaches %s but was judged %s", loc, h, st)
		}
	})
}

func TestCSPWeakness(t *testing.T) {
	for csp, weak := range map[string]bool{
		"default-src 'none'; style-src 'self'; frame-ancestors 'none'": false,
		"script-src 'self' 'nonce-abc' 'unsafe-inline'":                false,
		"upgrade-insecure-requests; frame-ancestors *":                 true,
		"default-src 'self'; script-src 'self' 'unsafe-inline'":        true,
		"script-src https:": true,
		"default-src *":     true,
		"style-src 'nonce-x' 'unsafe-inline'; script-src 'unsafe-inline'": true,
		"script-src 'self' 'unsafe-eval'":                                 true,
		"script-src 'self'; script-src *":                                 false, // the first one counts
	} {
		if got := cspScriptWeakness(parseCSP(csp)) != ""; got != weak {
			t.Errorf("%q: weak = %v, want %v", csp, got, weak)
		}
	}
}
