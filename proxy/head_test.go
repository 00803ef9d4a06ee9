package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// headRequest is a bodiless request as the fast path gets it.
func headRequest(method, rawURL, host string, h http.Header) *http.Request {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return &http.Request{Method: method, URL: u, Host: host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// bothHeads writes req with writeHead and with Request.Write and parses
// both as an upstream would. ok is writeHead's.
func bothHeads(t testing.TB, req *http.Request) (ours, gos *http.Request, ok bool, oursErr, gosErr error) {
	var a, b bytes.Buffer
	wa := bufio.NewWriter(&a)
	ok, err := writeHead(wa, req)
	if err != nil {
		t.Fatalf("writeHead: %v", err)
	}
	wa.Flush()
	if !ok && a.Len() != 0 {
		t.Fatalf("writeHead declined but wrote %q", a.String())
	}
	if err := req.Write(&b); err != nil {
		gosErr = err
	} else {
		gos, gosErr = http.ReadRequest(bufio.NewReader(&b))
	}
	if ok {
		ours, oursErr = http.ReadRequest(bufio.NewReader(&a))
	}
	return ours, gos, ok, oursErr, gosErr
}

func sameHead(t testing.TB, ours, gos *http.Request) {
	t.Helper()
	if ours.Method != gos.Method || ours.RequestURI != gos.RequestURI || ours.Host != gos.Host || !reflect.DeepEqual(ours.Header, gos.Header) {
		t.Fatalf("writeHead and Request.Write differ:\nours %s %s host %q %v\ngo's %s %s host %q %v",
			ours.Method, ours.RequestURI, ours.Host, ours.Header, gos.Method, gos.RequestURI, gos.Host, gos.Header)
	}
}

func TestWriteHeadAsRequestWrite(t *testing.T) {
	browser := http.Header{
		"Accept":          {"text/html"},
		"Accept-Language": {"nl-NL,nl;q=0.9"},
		"Cookie":          {"app=1; theme=dark"},
		"X-Forwarded-For": {"192.0.2.1"},
		"X-Sluis-User":    {"anna"},
		"User-Agent":      {"Mozilla/5.0"},
	}
	cases := []struct {
		name   string
		req    *http.Request
		wantOK bool
	}{
		{"browser GET", headRequest("GET", "http://10.0.0.5:8080/wiki/Main%20Page?action=view&x=%2F", "", browser), true},
		{"HEAD with Host set", headRequest("HEAD", "http://10.0.0.5/", "wiki.example.nl", http.Header{"Accept": {"*/*"}}), true},
		{"empty User-Agent sends none", headRequest("GET", "http://up/", "", http.Header{"User-Agent": {""}}), true},
		{"no User-Agent field: Go's default", headRequest("GET", "http://up/", "", http.Header{}), true},
		{"two User-Agents: the first only", headRequest("GET", "http://up/", "", http.Header{"User-Agent": {"a", "b"}}), true},
		{"values in order, padding trimmed", headRequest("GET", "http://up/", "", http.Header{"Accept": {" a ", "\tb"}, "X-Empty": {""}}), true},
		{"excluded fields not written", headRequest("GET", "http://up/", "", http.Header{"Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}, "Host": {"evil"}}), true},
		{"IPv6 upstream", headRequest("GET", "http://[::1]:8080/", "", http.Header{}), true},
		{"field name not a token", headRequest("GET", "http://up/", "", http.Header{"Bad Name": {"x"}, "Accept": {"y"}}), false},
		{"line break in a value", headRequest("GET", "http://up/", "", http.Header{"X-A": {"a\r\nX-Injected: 1"}}), false},
		{"line break in User-Agent", headRequest("GET", "http://up/", "", http.Header{"User-Agent": {"a\nb"}}), false},
		{"host needing Punycode", headRequest("GET", "http://up/", "bücher.example", http.Header{}), false},
		{"host with a zone", headRequest("GET", "http://[fe80::1%25eth0]:80/", "", http.Header{}), false},
		{"Connection: close to add", func() *http.Request {
			r := headRequest("GET", "http://up/", "", http.Header{})
			r.Close = true
			return r
		}(), false},
		{"POST is not for the fast path", headRequest("POST", "http://up/", "", http.Header{}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ours, gos, ok, oe, ge := bothHeads(t, c.req)
			if ok != c.wantOK {
				t.Fatalf("writeHead ok = %v, want %v", ok, c.wantOK)
			}
			if !ok {
				return
			}
			if oe != nil || ge != nil {
				t.Fatalf("parse: ours %v, go's %v", oe, ge)
			}
			sameHead(t, ours, gos)
		})
	}
}

func TestWriteHeadAllocatesOnlyTheTarget(t *testing.T) {
	req := headRequest("GET", "http://10.0.0.5:8080/wiki/page?a=1", "", http.Header{
		"Accept": {"text/html"}, "Cookie": {"a=1"}, "User-Agent": {"Mozilla/5.0"}, "X-Sluis-User": {"anna"},
	})
	w := bufio.NewWriterSize(discard{}, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if ok, err := writeHead(w, req); !ok || err != nil {
			t.Fatal("declined")
		}
	})
	if allocs > 1 {
		t.Fatalf("writeHead allocates %.0f times, want at most 1 (the request target)", allocs)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// rawHead splits a written request head into its request line and its
// field lines grouped by name as written (values in order): what an
// upstream receives, before any parser canonicalises or trims it.
func rawHead(b []byte) (line string, fields map[string][]string) {
	lines := strings.Split(string(b), "\r\n")
	fields = map[string][]string{}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		name, value, _ := strings.Cut(l, ": ")
		fields[name] = append(fields[name], value)
	}
	return lines[0], fields
}

// FuzzWriteHead: whatever the fields, host and target, writeHead either
// declines (and Request.Write is used) or writes the very request line and
// field lines that Request.Write writes, up to the order of fields with
// different names.
func FuzzWriteHead(f *testing.F) {
	f.Add("GET", "/wiki", "x=1&y=%2F", "up:80", "Accept", "text/html", "a=1", "Mozilla/5.0")
	f.Add("HEAD", "/a%20b", "", "[::1]:8080", "X-A", " padded ", "\tb ", "")
	f.Add("GET", "/", "", "up", "Bad Name", "x", "", "ua")
	f.Add("GET", "/", "", "up", "X-A", "a\r\nX-B: 1", "", "ua")
	f.Add("GET", "/ü", "q=ü", "bücher", "X-A", "\x7f", "", "ua\x00")
	f.Add("GET", "/", "", "up", "content-length", "5", "", "ua")
	f.Add("GET", "/", "", "up", "transfer-encoding", "chunked", "", " ")
	f.Fuzz(func(t *testing.T, method, path, query, host, name, value, value2, ua string) {
		u := &url.URL{Scheme: "http", Host: "up", Path: path, RawQuery: query}
		h := http.Header{name: {value, value2}, "User-Agent": {ua}}
		req := &http.Request{Method: method, URL: u, Host: host, Header: h}
		var a, b bytes.Buffer
		wa := bufio.NewWriter(&a)
		ok, err := writeHead(wa, req)
		if err != nil {
			t.Fatal(err)
		}
		wa.Flush()
		if !ok {
			if a.Len() != 0 {
				t.Fatalf("declined but wrote %q", a.String())
			}
			return
		}
		if err := req.Write(&b); err != nil {
			t.Fatalf("writeHead wrote %q where Request.Write fails: %v", a.String(), err)
		}
		la, fa := rawHead(a.Bytes())
		lb, fb := rawHead(b.Bytes())
		if la != lb || !reflect.DeepEqual(fa, fb) {
			t.Fatalf("writeHead and Request.Write differ:\nours %q %v\ngo's %q %v", la, fa, lb, fb)
		}
	})
}
