package proxy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/proxy"
)

// browserHeaders is what a browser sends with an ordinary request to an
// app, plus the gateway's cookie: the common case of the header rewrite.
func browserHeaders() http.Header {
	return http.Header{
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding":           {"gzip, deflate, br"},
		"Accept-Language":           {"en-GB,en;q=0.9,nl;q=0.8"},
		"Cache-Control":             {"max-age=0"},
		"Cookie":                    {"__Host-sluis=tok; app_session=abc123; theme=dark"},
		"Referer":                   {"https://wiki.test/"},
		"Sec-Ch-Ua":                 {`"Chromium";v="131", "Not_A Brand";v="24"`},
		"Sec-Ch-Ua-Mobile":          {"?0"},
		"Sec-Ch-Ua-Platform":        {`"Linux"`},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Sec-Fetch-Site":            {"same-origin"},
		"Sec-Fetch-User":            {"?1"},
		"Upgrade-Insecure-Requests": {"1"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
	}
}

// BenchmarkStripClientHeaders is the header filter alone, on a browser's
// headers.
func BenchmarkStripClientHeaders(b *testing.B) {
	src := browserHeaders()
	h := make(http.Header, len(src)+4)
	b.ReportAllocs()
	for b.Loop() {
		for k, v := range src {
			h[k] = v
		}
		proxy.StripClientHeaders(h)
	}
}

// oneKB answers every request with 1 KiB, in process, so the benchmark
// measures the proxy and not a network.
type oneKB struct{}

var kb = bytes.Repeat([]byte("x"), 1024)

func (oneKB) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: 1024,
		Body: io.NopCloser(bytes.NewReader(kb)), Request: r}, nil
}

// BenchmarkServe1KB is an authenticated 1 KiB request through the proxy
// (header rewrite, signed assertion from the session's memo, relay), with
// an in-process upstream.
func BenchmarkServe1KB(b *testing.B) {
	f := newFixture(b)
	p := f.proxyWith(b, "http://127.0.0.1:1", oneKB{})
	a := active()
	src := browserHeaders()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "https://wiki.test/page", nil)
		for k, v := range src {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		p.Serve(w, r, a)
		if w.Code != 200 || !strings.HasPrefix(w.Body.String(), "xxx") {
			b.Fatalf("status %d", w.Code)
		}
	}
}
