package frontdoor

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Match runs on every request to the portal and on every app request
// without a session: an ordinary browser request is its common case.
func BenchmarkMatch(b *testing.B) {
	r := httptest.NewRequest("GET", "https://wiki.test/docs/page/edit?id=7&v=2&rd=https%3A%2F%2Fwiki.test%2F", nil)
	r.RequestURI = "/docs/page/edit?id=7&v=2&rd=https%3A%2F%2Fwiki.test%2F"
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-GB,en;q=0.9,nl;q=0.8")
	r.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	r.Header.Set("Cookie", "__Host-sluis=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; theme=dark; _ga=GA1.2.1234567890.1700000000")
	r.Header.Set("Authorization", "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl")
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36")
	r.Header.Set("Referer", "https://wiki.test/docs/page")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	b.ReportAllocs()
	for b.Loop() {
		if Match(r) != "" {
			b.Fatal("an ordinary request matched")
		}
	}
}

// The generic checks on their edges: what they must catch, and the
// ordinary look-alikes they must let through.
func TestGenericChecks(t *testing.T) {
	tests := []struct {
		target string
		header [2]string
		want   string
	}{
		{"/a/%2e%2e/b", [2]string{}, "generic-traversal"},
		{"/a/..", [2]string{}, "generic-traversal"},
		{"/x?f=..%2f..%2fetc", [2]string{}, "generic-traversal"},
		{"/a/%252fb", [2]string{}, "generic-double-encoding"},
		{"/a/%c0%afb", [2]string{}, "generic-overlong-utf8"},
		{"/a/%u2215b", [2]string{}, "generic-unicode-escape"},
		{"/a%0d%0aLocation:x", [2]string{}, "generic-control-escape"},
		{"/x.jsp;.css", [2]string{}, "generic-path-confusion"},
		{"/x?a=${jndi:ldap://h/a}", [2]string{}, "log4shell-cve-2021-44228"},
		{"/x?a=%24%7B%27%27.getClass()%7D", [2]string{}, "generic-expression-injection"},
		{"/x?host=1.1.1.1;id", [2]string{}, "generic-command-injection"},
		{"/x?id=1+union+select+null", [2]string{}, "generic-sql-injection"},
		{"/", [2]string{"Authorization", "Bearer abc' or '1'='1"}, "generic-bearer-injection"},
		{"/", [2]string{"Authorization", "Basic " + "J3x8c2g7JzpwYXNz"}, "generic-command-injection"}, // '||sh;':pass
		{"/", [2]string{"Cookie", "a=1; b=%24(curl%20x)"}, "generic-command-injection"},
		{"/", [2]string{"X-Forwarded-For", strings.Repeat("9", 300)}, "generic-overflow"},
		{"/", [2]string{"X-Anything", "() { :; }; id"}, "generic-shellshock"},
		// Look-alikes that are ordinary.
		{"/", [2]string{"Authorization", "Bearer "}, ""},
		{"/", [2]string{"Authorization", "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag"}, ""},
		{"/", [2]string{"Authorization", "Basic " + "YWxpY2U6UEBzcyQoKXdvcmQ7IGl0J3MgZmluZXwh"}, ""}, // alice:P@ss$()word; it's fine|!
		{"/search?q=students%27+or+teachers%27+books%3B+cat+toys+%26+sleep", [2]string{}, ""},
		{"/search?q=%22rock+%27n%27+roll%22+100%25", [2]string{}, ""},
		{"/d/x?var-q=${__from:date:iso}&var-h=$__all", [2]string{}, ""},
		{"/login?rd=https%3A%2F%2Fwiki.test%2Fa%3Fq%3Da%2520b", [2]string{}, ""},
		{"/api/v4/projects/g%2Fp/repository/files/a%2Fb.go/raw", [2]string{}, ""},
		{"/", [2]string{"Cookie", "consent={%22analytics%22:true}; _ga=GA1.1.1.1"}, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "https://wiki.test/", nil)
		r.RequestURI = tt.target
		if tt.header[0] != "" {
			r.Header.Set(tt.header[0], tt.header[1])
		}
		if got := Match(r); got != tt.want {
			t.Errorf("%s %q: %q, want %q", tt.target, tt.header, got, tt.want)
		}
	}
}

// Match reads everything an attacker controls: it must not panic, and its
// answer must not depend on more than the bounded prefix it reads.
func FuzzMatch(f *testing.F) {
	f.Add("/vpn/../vpns/cfg/smb.conf", "Cookie", "SESSID=/../x")
	f.Add("/x?a=%24%7b%27%27.getClass()%7d", "Authorization", "Basic Jztsczsn")
	f.Add("/%c0%ae%u002e%252e;/..;/x", "Authorization", "Bearer a'b")
	f.Add("/search?q=a%3B+cat+b", "X-Forwarded-For", "1.1.1.1")
	f.Fuzz(func(t *testing.T, target, name, value string) {
		r := httptest.NewRequest("GET", "https://wiki.test/", nil)
		r.RequestURI = target
		if name != "" && len(name) < 100 {
			r.Header[name] = []string{value}
		}
		rule := Match(r)
		if rule != "" && !strings.HasPrefix(rule, "generic-") {
			for _, s := range Signatures {
				if s.Name == rule {
					return
				}
			}
			t.Fatalf("Match returned %q, which is no rule", rule)
		}
	})
}

// Broad rules are the path lists, never a rule for one exploit; and each
// list named broad exists.
func TestBroadRules(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Signatures {
		broad := BroadRule(r.Name)
		if broad {
			seen[r.Name] = true
			for _, c := range r.Conds {
				if c.Where != "prefix" && c.Where != "path" {
					t.Errorf("broad rule %s has a %s condition: it is more than a path list", r.Name, c.Where)
				}
			}
		}
		if broad && strings.Contains(r.Name, "cve-") {
			t.Errorf("%s names one exploit but is broad", r.Name)
		}
	}
	for _, name := range []string{"generic-system-path", "cgi-probe", "admin-probe", "generic-appliance-citrix", "generic-management-f5"} {
		if !seen[name] {
			t.Errorf("no rule %s", name)
		}
	}
}
