package frontdoor_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluis-gateway/sluis/frontdoor"
)

type canonCase struct {
	name   string
	target string
	ok     bool
	path   string // decoded path when ok
	query  string // raw query when ok
}

var canonCases = []canonCase{
	// Accepted: one reading only, decoded once.
	{"root", "/", true, "/", ""},
	{"path and query", "/a/b?c=d", true, "/a/b", "c=d"},
	{"empty query", "/a?", true, "/a", ""},
	{"unreserved escape", "/%41", true, "/A", ""},
	{"lower-case hex", "/%6a", true, "/j", ""},
	{"trailing slash", "/a/", true, "/a/", ""},
	{"utf-8 upper hex", "/caf%C3%A9", true, "/café", ""},
	{"utf-8 lower hex", "/caf%c3%a9", true, "/café", ""},
	{"four-byte utf-8", "/%F0%9F%98%80", true, "/😀", ""},
	{"encoded space", "/a%20b", true, "/a b", ""},
	{"encoded question mark", "/a%3Fb", true, "/a?b", ""},
	{"plus is literal", "/a+b", true, "/a+b", ""},
	{"dots inside a name", "/a.b/c..d/...", true, "/a.b/c..d/...", ""},
	{"dot-file", "/.well-known/x", true, "/.well-known/x", ""},
	{"sub-delims", "/a:b@c!$&'()*+,=", true, "/a:b@c!$&'()*+,=", ""},
	{"tilde", "/~anna", true, "/~anna", ""},
	{"query is not decoded", "/a?b=%2e%2e%2fx", true, "/a", "b=%2e%2e%2fx"},
	{"query may hold slashes and dots", "/a?x=/../y", true, "/a", "x=/../y"},
	{"second question mark in query", "/a?b?c", true, "/a", "b?c"},
	{"longest target", "/" + strings.Repeat("a", frontdoor.MaxTargetLen-1), true, "/" + strings.Repeat("a", frontdoor.MaxTargetLen-1), ""},

	// Not origin form.
	{"empty", "", false, "", ""},
	{"asterisk", "*", false, "", ""},
	{"relative", "a/b", false, "", ""},
	{"absolute form", "http://other/x", false, "", ""},
	{"query only", "?a=b", false, "", ""},

	// Dot-segments, raw and encoded.
	{"dot-dot in middle", "/a/../b", false, "", ""},
	{"dot in middle", "/a/./b", false, "", ""},
	{"dot-dot alone", "/..", false, "", ""},
	{"dot alone", "/.", false, "", ""},
	{"trailing dot-dot", "/a/..", false, "", ""},
	{"trailing dot", "/a/.", false, "", ""},
	{"dot-dot then slash", "/../x", false, "", ""},
	{"ivanti style", "/api/v1/totp/user-backup-code/../../system/system-information", false, "", ""},
	{"encoded dot-dot", "/%2e%2e/x", false, "", ""},
	{"half encoded dot-dot", "/.%2e/", false, "", ""},
	{"encoded dot upper", "/%2E", false, "", ""},
	{"encoded dot inside a name", "/a%2eb", false, "", ""},

	// Encoded separators and escape characters.
	{"encoded slash", "/a%2fb", false, "", ""},
	{"encoded slash upper", "/a%2Fb", false, "", ""},
	{"encoded backslash", "/a%5cb", false, "", ""},
	{"encoded percent", "/%25", false, "", ""},
	{"double encoding", "/%2577", false, "", ""},
	{"encoded nul", "/a%00", false, "", ""},
	{"encoded semicolon", "/a%3bx", false, "", ""},
	{"encoded CR LF", "/a%0d%0aX:y", false, "", ""},
	{"encoded tab", "/%09/evil", false, "", ""},
	{"encoded DEL", "/a%7f", false, "", ""},
	{"percent-u escape", "/%u002e", false, "", ""},

	// Malformed escapes.
	{"lone percent", "/%", false, "", ""},
	{"one hex digit", "/%4", false, "", ""},
	{"one hex digit before query", "/%4?x", false, "", ""},
	{"not hex", "/%zz", false, "", ""},
	{"half hex", "/%g1", false, "", ""},

	// UTF-8.
	{"overlong dot two bytes", "/%c0%ae", false, "", ""},
	{"overlong dot three bytes", "/%e0%80%ae", false, "", ""},
	{"overlong slash", "/%c0%af", false, "", ""},
	{"invalid byte", "/%ff", false, "", ""},
	{"lone continuation byte", "/%80", false, "", ""},
	{"truncated sequence", "/%c3", false, "", ""},
	{"surrogate", "/%ed%a0%80", false, "", ""},

	// Raw bytes.
	{"raw backslash", "/a\\b", false, "", ""},
	{"raw backslash prefix", "/\\evil", false, "", ""},
	{"f5 path parameter", "/tmui/login.jsp/..;/x", false, "", ""},
	{"path parameter", "/a;jsessionid=1", false, "", ""},
	{"leading double slash", "//x", false, "", ""},
	{"double slash in middle", "/a//b", false, "", ""},
	{"only slashes", "//", false, "", ""},
	{"raw nul", "/a\x00b", false, "", ""},
	{"raw tab", "/a\tb", false, "", ""},
	{"raw space", "/a b", false, "", ""},
	{"raw CR LF", "/a\r\nX-Sluis-User: admin", false, "", ""},
	{"raw DEL", "/a\x7f", false, "", ""},
	{"raw non-ASCII", "/caf\xc3\xa9", false, "", ""},
	{"raw invalid byte", "/\xff", false, "", ""},
	{"angle brackets", "/<script>", false, "", ""},
	{"double quote", "/a\"b", false, "", ""},
	{"backtick", "/a`b", false, "", ""},
	{"braces", "/a{b}", false, "", ""},
	{"pipe", "/a|b", false, "", ""},
	{"caret", "/a^b", false, "", ""},
	{"space in query", "/a?b c", false, "", ""},
	{"nul in query", "/a?b\x00", false, "", ""},
	{"CR LF in query", "/a?b\r\nX: y", false, "", ""},
	{"backslash in query", "/a?x\\y", false, "", ""},
	{"quote in query", "/a?x=\"", false, "", ""},
	{"angle bracket in query", "/a?<script>", false, "", ""},
	{"non-ASCII in query", "/a?x=\xc3\xa9", false, "", ""},

	// Length.
	{"one byte too long", "/" + strings.Repeat("a", frontdoor.MaxTargetLen), false, "", ""},
	{"long query", "/a?" + strings.Repeat("b", frontdoor.MaxTargetLen), false, "", ""},
}

func TestCanonicalize(t *testing.T) {
	for _, tt := range canonCases {
		path, query, err := frontdoor.Canonicalize(tt.target)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: Canonicalize(%q) refused: %v", tt.name, tt.target, err)
		case tt.ok && (path != tt.path || query != tt.query):
			t.Errorf("%s: Canonicalize(%q) = %q, %q; want %q, %q", tt.name, tt.target, path, query, tt.path, tt.query)
		case !tt.ok && err == nil:
			t.Errorf("%s: Canonicalize(%q) accepted as %q, %q", tt.name, tt.target, path, query)
		case !tt.ok && (path != "" || query != ""):
			t.Errorf("%s: refused %q but returned %q, %q", tt.name, tt.target, path, query)
		}
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, tt := range canonCases {
		if len(tt.target) <= 256 {
			f.Add(tt.target)
		}
	}
	f.Fuzz(func(t *testing.T, target string) {
		path, query, err := frontdoor.Canonicalize(target)
		if err != nil {
			return
		}
		checkCanonical(t, target, path)
		if strings.ContainsAny(query, "\x00\r\n \\") {
			t.Fatalf("Canonicalize(%q): query %q holds a forbidden byte", target, query)
		}
		// The form sent upstream reads back as the same path. Escaping can
		// triple the length, past what a client may send; the upstream has
		// no such limit, so only the reading is checked.
		escaped := (&url.URL{Path: path}).EscapedPath()
		if len(escaped) > frontdoor.MaxTargetLen {
			return
		}
		path2, _, err := frontdoor.Canonicalize(escaped)
		if err != nil {
			t.Fatalf("Canonicalize(%q) = %q, but its escaped form %q is refused: %v", target, path, escaped, err)
		}
		if path2 != path {
			t.Fatalf("Canonicalize(%q) = %q, but its escaped form %q reads as %q", target, path, escaped, path2)
		}
	})
}

func checkCanonical(t *testing.T, target, path string) {
	t.Helper()
	if !strings.HasPrefix(path, "/") {
		t.Fatalf("Canonicalize(%q) = %q: does not start with /", target, path)
	}
	if strings.Contains(path, "//") {
		t.Fatalf("Canonicalize(%q) = %q: empty segment", target, path)
	}
	if !utf8.ValidString(path) {
		t.Fatalf("Canonicalize(%q) = %q: invalid UTF-8", target, path)
	}
	for _, seg := range strings.Split(path[1:], "/") {
		if seg == "." || seg == ".." {
			t.Fatalf("Canonicalize(%q) = %q: dot-segment", target, path)
		}
	}
	if strings.ContainsAny(path, "\\;%") {
		t.Fatalf("Canonicalize(%q) = %q: backslash, ';' or '%%' in path", target, path)
	}
	for i := 0; i < len(path); i++ {
		if path[i] < 0x20 || path[i] == 0x7f {
			t.Fatalf("Canonicalize(%q) = %q: control byte", target, path)
		}
	}
}

// seen records what reached the handler behind the door.
type seen struct {
	called             bool
	host, path, raw, q string
}

func newDoor(t *testing.T) (*frontdoor.Door, *seen, *bytes.Buffer) {
	t.Helper()
	s := &seen{}
	logs := &bytes.Buffer{}
	d := &frontdoor.Door{
		Hosts: map[string]bool{"login.test": true, "wiki.test": true},
		Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*s = seen{called: true, host: r.Host, path: r.URL.Path, raw: r.URL.RawPath, q: r.URL.RawQuery}
			io.WriteString(w, "next")
		}),
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	}
	return d, s, logs
}

func TestDoorServeHTTP(t *testing.T) {
	tests := []struct {
		name   string
		method string
		host   string
		target string // RequestURI as the server received it
		status int
		// when status is 200: what the handler behind the door sees
		wantHost, wantPath, wantQuery string
	}{
		{"good request", "GET", "wiki.test", "/a/b?c=d", 200, "wiki.test", "/a/b", "c=d"},
		{"host with port and upper case", "GET", "Wiki.TEST:8443", "/x", 200, "wiki.test", "/x", ""},
		{"host with trailing dot", "GET", "login.test.", "/", 200, "login.test", "/", ""},
		{"escapes decoded once", "POST", "wiki.test", "/caf%C3%A9/%41?q=%2e%2e", 200, "wiki.test", "/café/A", "q=%2e%2e"},
		{"head", "HEAD", "wiki.test", "/", 200, "wiki.test", "/", ""},
		{"options", "OPTIONS", "wiki.test", "/", 200, "wiki.test", "/", ""},

		{"unknown host", "GET", "evil.test", "/", 421, "", "", ""},
		{"unknown host with known suffix", "GET", "evil.wiki.test", "/", 421, "", "", ""},
		{"empty host", "GET", "", "/", 421, "", "", ""},
		{"host with forbidden byte", "GET", "wiki.test/x", "/", 421, "", "", ""},
		{"over-long host", "GET", strings.Repeat("a", 300), "/", 421, "", "", ""},
		{"trace", "TRACE", "wiki.test", "/", 405, "", "", ""},
		{"connect", "CONNECT", "wiki.test", "/", 405, "", "", ""},
		{"unknown method", "BREW", "wiki.test", "/", 405, "", "", ""},
		{"webdav on an app host", "PROPFIND", "wiki.test", "/", 200, "wiki.test", "/", ""},
		{"webdav on an unknown host", "MOVE", "elsewhere.test", "/", 405, "", "", ""},
		{"absolute form", "GET", "wiki.test", "http://other/x", 400, "", "", ""},
		{"absolute form naming a known host", "GET", "wiki.test", "https://wiki.test/x", 400, "", "", ""},
		{"asterisk form", "OPTIONS", "wiki.test", "*", 400, "", "", ""},
		{"dot-segment", "GET", "wiki.test", "/a/../b", 400, "", "", ""},
		{"encoded dot-segment", "GET", "wiki.test", "/a/%2e%2e/b", 400, "", "", ""},
		{"encoded slash", "GET", "wiki.test", "/a%2fb", 400, "", "", ""},
		{"double encoding", "GET", "wiki.test", "/%2577", 400, "", "", ""},
		{"path parameter", "GET", "wiki.test", "/tmui/login.jsp/..;/x", 400, "", "", ""},
		{"empty segment", "GET", "wiki.test", "//evil.test/x", 400, "", "", ""},
		{"raw backslash", "GET", "wiki.test", "/a\\b", 400, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, s, logs := newDoor(t)
			r := httptest.NewRequest("GET", "/", nil)
			r.Method = tt.method
			r.Host = tt.host
			r.RequestURI = tt.target
			if u, err := url.ParseRequestURI(tt.target); err == nil {
				r.URL = u
			} else {
				r.URL = &url.URL{Path: tt.target}
			}
			w := httptest.NewRecorder()
			d.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.status, w.Body)
			}
			if tt.status != 200 {
				if s.called {
					t.Fatal("refused request reached the next handler")
				}
				checkErrorPage(t, w, logs)
				return
			}
			if !s.called {
				t.Fatal("accepted request did not reach the next handler")
			}
			if s.host != tt.wantHost || s.path != tt.wantPath || s.raw != "" || s.q != tt.wantQuery {
				t.Errorf("next saw host %q path %q rawpath %q query %q; want %q %q \"\" %q",
					s.host, s.path, s.raw, s.q, tt.wantHost, tt.wantPath, tt.wantQuery)
			}
		})
	}
}

// checkErrorPage checks a refusal is the static page, with an error ID
// that also appears in the log.
func checkErrorPage(t *testing.T, w *httptest.ResponseRecorder, logs *bytes.Buffer) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("error page headers %v", w.Header())
	}
	body := w.Body.String()
	i := strings.Index(body, "Error ID: ")
	if i < 0 {
		t.Fatalf("no error ID in %q", body)
	}
	id := body[i+len("Error ID: "):]
	id = id[:strings.IndexByte(id, '<')]
	if id == "" || !strings.Contains(logs.String(), "error_id="+id) {
		t.Errorf("error ID %q not in log %q", id, logs)
	}
}

// Error pages are static: nothing from the request comes back, whatever
// was refused.
func TestDoorErrorPagesDoNotEchoTheRequest(t *testing.T) {
	const marker = "zqxmarker"
	tests := []struct {
		name, method, host, target string
	}{
		{"unknown host", "GET", marker + ".evil.test", "/" + marker},
		{"trace", "TRACE", "wiki.test", "/" + marker},
		{"absolute form", "GET", "wiki.test", "http://" + marker + "/" + marker},
		{"bad path", "GET", "wiki.test", "/" + marker + "/../" + marker},
		{"bad escape", "GET", "wiki.test", "/" + marker + "%zz"},
		{"script", "GET", "wiki.test", "/<script>" + marker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, s, _ := newDoor(t)
			r := httptest.NewRequest("GET", "/", nil)
			r.Method, r.Host, r.RequestURI = tt.method, tt.host, tt.target
			if u, err := url.ParseRequestURI(tt.target); err == nil {
				r.URL = u
			}
			r.Header.Set("Cookie", "__Host-sluis="+marker)
			r.Header.Set("User-Agent", marker)
			r.Header.Set("Referer", "https://"+marker)
			w := httptest.NewRecorder()
			d.ServeHTTP(w, r)
			if w.Code < 400 || s.called {
				t.Fatalf("status %d, next called %v", w.Code, s.called)
			}
			if strings.Contains(w.Body.String(), marker) || strings.Contains(w.Body.String(), "<script>") {
				t.Errorf("error page echoes the request: %q", w.Body)
			}
			for name, vals := range w.Header() {
				for _, v := range vals {
					if strings.Contains(v, marker) {
						t.Errorf("response header %s echoes the request: %q", name, v)
					}
				}
			}
		})
	}
}

func TestDoorRefusesWhatWouldConfuseLaterHops(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	d := &frontdoor.Door{Hosts: map[string]bool{"login.test": true, "wiki.test": true}, Portal: "login.test", Next: next}
	tests := []struct {
		name    string
		host    string
		headers map[string][]string
		te      []string
		want    int
	}{
		{"plain", "wiki.test", nil, nil, 299},
		{"connection keep-alive", "wiki.test", map[string][]string{"Connection": {"keep-alive"}}, nil, 299},
		{"connection upgrade", "wiki.test", map[string][]string{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, nil, 299},
		{"connection names identity", "wiki.test", map[string][]string{"Connection": {"keep-alive, X-Sluis-User"}}, nil, 400},
		{"connection names underscore twin", "wiki.test", map[string][]string{"Connection": {"x_sluis_user"}}, nil, 400},
		{"connection names forwarding", "wiki.test", map[string][]string{"Connection": {"X-Forwarded-For"}}, nil, 400},
		{"connection names cookie", "wiki.test", map[string][]string{"Connection": {"close", "Cookie"}}, nil, 400},
		{"connection names F5 token", "wiki.test", map[string][]string{"Connection": {"X-F5-Auth-Token"}}, nil, 299},
		{"too many headers", "wiki.test", manyHeaders(frontdoor.MaxHeaderCount + 1), nil, 431},
		{"enough headers", "wiki.test", manyHeaders(frontdoor.MaxHeaderCount - 5), nil, 299},
		{"chunked to the portal", "login.test", nil, []string{"chunked"}, 400},
		{"chunked to an app", "wiki.test", nil, []string{"chunked"}, 299},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "https://"+tt.host+"/x", nil)
		r.RequestURI = "/x" // origin form, as a server sees it
		r.URL = &url.URL{Path: "/x"}
		for k, v := range tt.headers {
			r.Header[k] = v
		}
		r.TransferEncoding = tt.te
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, w.Code, tt.want)
		}
	}
}

func manyHeaders(n int) map[string][]string {
	h := map[string][]string{}
	for i := 0; i < n; i++ {
		h[fmt.Sprintf("X-H%d", i)] = []string{"v"}
	}
	return h
}

// lenientCases are targets for an app host with both leniencies: what is
// passed keeps its raw form; every traversal form stays refused.
var lenientCases = []struct {
	name, target string
	ok           bool
	path         string // the decoded path, when ok
}{
	{"gitlab project", "/api/v4/projects/group%2Fproject", true, "/api/v4/projects/group/project"},
	{"gitlab lower case", "/api/v4/projects/group%2fproject/repository", true, "/api/v4/projects/group/project/repository"},
	{"rabbitmq default vhost", "/api/vhosts/%2F", true, "/api/vhosts//"},
	{"double-encoded slash", "/job/feature%252Fx/", true, "/job/feature%2Fx/"},
	{"jsessionid", "/app/page.jsp;jsessionid=ABC123?x=1", true, "/app/page.jsp;jsessionid=ABC123"},
	{"param in the middle", "/a;v=1/b", true, "/a;v=1/b"},
	{"plain path", "/a/b", true, "/a/b"},

	{"dot segment", "/a/../b", false, ""},
	{"encoded dot segment", "/a/%2e%2e/b", false, ""},
	{"dot segment between encoded slashes", "/a%2F..%2Fadmin", false, ""},
	{"dot segment after double-encoded slash", "/a%252F..%252Fadmin", false, ""},
	{"single dot between encoded slashes", "/a%2F.%2Fb", false, ""},
	{"encoded slash makes an empty segment", "/%2Fetc/passwd", false, ""},
	{"two encoded slashes", "/a%2F%2Fb", true, "/a//b"},
	{"leading double-encoded slash", "/%252Fetc", false, ""},
	{"f5 dot-dot-semicolon", "/tmui/login.jsp/..;/tmui/x", false, ""},
	{"dot semicolon", "/a/.;x/b", false, ""},
	{"empty segment with parameter", "/a/;x/b", false, ""},
	{"encoded semicolon", "/a%3Bx", false, ""},
	{"other double encoding", "/%2577", false, ""},
	{"triple-encoded slash", "/a%25252Fb", false, ""},
	{"percent at the end", "/a%25", false, ""},
	{"encoded nul", "/a%00b", false, ""},
	{"raw nul", "/a\x00b", false, ""},
	{"encoded backslash", "/a%5c..%5cb", false, ""},
	{"raw backslash", "/a\\b", false, ""},
	{"overlong slash", "/a%c0%afb", false, ""},
	{"overlong dot", "/%c0%ae%c0%ae/x", false, ""},
	{"empty segment", "/a//b", false, ""},
	{"CR LF", "/a%0d%0aX: y", false, ""},
	{"space in query", "/a%2Fb?c d", false, ""},
	{"too long", "/a%2F" + strings.Repeat("a", frontdoor.MaxTargetLen), false, ""},
}

func TestCanonicalizeLenient(t *testing.T) {
	both := frontdoor.Leniency{EncodedSlashes: true, PathParams: true}
	for _, tt := range lenientCases {
		path, raw, _, err := frontdoor.CanonicalizeLenient(tt.target, both)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: CanonicalizeLenient(%q) refused: %v", tt.name, tt.target, err)
		case tt.ok && path != tt.path:
			t.Errorf("%s: CanonicalizeLenient(%q) = %q; want %q", tt.name, tt.target, path, tt.path)
		case tt.ok && raw != strings.SplitN(tt.target, "?", 2)[0]:
			t.Errorf("%s: CanonicalizeLenient(%q): raw path %q, not the target's", tt.name, tt.target, raw)
		case !tt.ok && err == nil:
			t.Errorf("%s: CanonicalizeLenient(%q) accepted as %q", tt.name, tt.target, path)
		}
		// net/url sends exactly the raw path upstream.
		if tt.ok {
			if u := (&url.URL{Path: path, RawPath: raw}); u.EscapedPath() != raw {
				t.Errorf("%s: net/url would send %q, not %q", tt.name, u.EscapedPath(), raw)
			}
		}
	}
	// Each leniency alone passes only its own form.
	if _, _, _, err := frontdoor.CanonicalizeLenient("/a;x", frontdoor.Leniency{EncodedSlashes: true}); err == nil {
		t.Error("path parameter passed with encoded_slashes only")
	}
	if _, _, _, err := frontdoor.CanonicalizeLenient("/a%2Fb", frontdoor.Leniency{PathParams: true}); err == nil {
		t.Error("encoded slash passed with path_params only")
	}
}

func FuzzCanonicalizeLenient(f *testing.F) {
	for _, tt := range lenientCases {
		if len(tt.target) <= 256 {
			f.Add(tt.target)
		}
	}
	both := frontdoor.Leniency{EncodedSlashes: true, PathParams: true}
	f.Fuzz(func(t *testing.T, target string) {
		path, raw, query, err := frontdoor.CanonicalizeLenient(target, both)
		if sp, sq, serr := frontdoor.Canonicalize(target); serr == nil {
			// Leniency takes away nothing the strict form accepts.
			if err != nil || sp != path || sq != query {
				t.Fatalf("CanonicalizeLenient(%q) = %q, %v; strict form %q", target, path, err, sp)
			}
		}
		if err != nil {
			return
		}
		// What an upstream decoding everything (slashes twice) and
		// cutting parameters sees has no traversal in it.
		seen := strings.NewReplacer("%2F", "/", "%2f", "/").Replace(path)
		if strings.ContainsAny(seen, "\\%\x00") || strings.HasPrefix(seen, "//") || strings.Contains(raw, "//") || !utf8.ValidString(seen) {
			t.Fatalf("CanonicalizeLenient(%q) = %q: forbidden form %q", target, path, seen)
		}
		for _, seg := range strings.Split(seen[1:], "/") {
			seg, _, _ = strings.Cut(seg, ";")
			if seg == "." || seg == ".." {
				t.Fatalf("CanonicalizeLenient(%q) = %q: dot-segment", target, path)
			}
		}
		for i := 0; i < len(seen); i++ {
			if seen[i] < 0x20 || seen[i] == 0x7f {
				t.Fatalf("CanonicalizeLenient(%q) = %q: control byte", target, path)
			}
		}
		// What net/url sends upstream (the raw path, or where the client
		// sent a byte such as '#' raw, its escaped form) reads as path.
		u := &url.URL{Path: path, RawPath: raw}
		if back, err := url.PathUnescape(u.EscapedPath()); err != nil || back != path {
			t.Fatalf("CanonicalizeLenient(%q): net/url would send %q, which reads as %q", target, u.EscapedPath(), back)
		}
	})
}

// A lenient host lets its forms through marked as needing a session; the
// strict hosts and the traversal forms are refused as before.
func TestDoorLenientHost(t *testing.T) {
	var marked bool
	d, s, logs := newDoor(t)
	d.Hosts["git.test"] = true
	d.Lenient = map[string]frontdoor.Leniency{"git.test": {EncodedSlashes: true, PathParams: true}}
	next := d.Next
	d.Next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		marked = frontdoor.NeedsSession(r)
		next.ServeHTTP(w, r)
	})
	for _, tt := range []struct {
		host, target string
		status       int
		marked       bool
		path, raw    string
	}{
		{"git.test", "/api/v4/projects/group%2Fproject", 200, true, "/api/v4/projects/group/project", "/api/v4/projects/group%2Fproject"},
		{"git.test", "/a;jsessionid=1", 200, true, "/a;jsessionid=1", "/a;jsessionid=1"},
		{"git.test", "/plain", 200, false, "/plain", ""},
		{"git.test", "/a%2F..%2Fb", 400, false, "", ""},
		{"git.test", "/a/..;/b", 400, false, "", ""},
		{"wiki.test", "/api/v4/projects/group%2Fproject", 400, false, "", ""},
		{"login.test", "/a;jsessionid=1", 400, false, "", ""},
	} {
		*s, marked = seen{}, false
		r := httptest.NewRequest("GET", "/", nil)
		r.Host, r.RequestURI = tt.host, tt.target
		r.URL, _ = url.ParseRequestURI(tt.target)
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		if w.Code != tt.status || marked != tt.marked || s.path != tt.path || s.raw != tt.raw {
			t.Errorf("%s%s: status %d marked %v path %q raw %q; want %d %v %q %q", tt.host, tt.target, w.Code, marked, s.path, s.raw, tt.status, tt.marked, tt.path, tt.raw)
		}
	}
	_ = logs
}

// WebDAV methods reach app hosts only, never the portal.
func TestWebDAVMethodsOnAppHostsOnly(t *testing.T) {
	d := &frontdoor.Door{Hosts: map[string]bool{"login.test": true, "wiki.test": true}, Portal: "login.test",
		Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	for _, tt := range []struct {
		method, host string
		want         int
	}{
		{"PROPFIND", "wiki.test", 200}, {"MOVE", "wiki.test", 200}, {"MKCOL", "wiki.test", 200},
		{"PROPFIND", "login.test", 405}, {"MOVE", "other.test", 405}, {"BREW", "wiki.test", 405},
	} {
		r := httptest.NewRequest(tt.method, "/dav/", nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s on %s: %d, want %d: %s", tt.method, tt.host, w.Code, tt.want, w.Body)
		}
	}
}
