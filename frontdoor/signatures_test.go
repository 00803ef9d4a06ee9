package frontdoor

import (
	"net/http/httptest"
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
