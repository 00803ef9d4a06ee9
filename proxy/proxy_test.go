package proxy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/proxy"
	"github.com/sluis-gateway/sluis/session"
)

func TestStripClientHeaders(t *testing.T) {
	tests := []struct {
		name    string // raw header key, as a client may send it
		removed bool
	}{
		{"X-Sluis-User", true},
		{"X-Sluis-Groups", true},
		{"X-Sluis-Assertion", true},
		{"X-Sluis-Anything", true},
		{"x-sluis-user", true},
		{"X-SLUIS-USER", true},
		{"X_Sluis_User", true},
		{"x_sluis_user", true},
		{"X-Sluis_User", true},
		{"Forwarded", true},
		{"forwarded", true},
		{"X-Forwarded-For", true},
		{"X-Forwarded-Host", true},
		{"X-Forwarded-Proto", true},
		{"X-Forwarded-User", true},
		{"X_Forwarded_For", true},
		{"x_forwarded_user", true},
		{"X-Forwarded", true},
		{"X-Real-Ip", true},
		{"X_Real_IP", true},
		{"X-Client-Ip", true},
		{"True-Client-Ip", true},
		{"X-Cluster-Client-Ip", true},
		{"X-Original-Url", true},
		{"X_Original_URL", true},
		{"X-Rewrite-Url", true},
		{"X-Original-Host", true},
		{"X-Remote-User", true},
		{"X-Remote-Addr", true},
		{"X-Authenticated-User", true},
		{"Remote-User", true},
		{"Remote_User", true},
		{"X-Middleware-Subrequest", true},
		{"X-Webauth-User", true},
		{"X-WEBAUTH-USER", true},
		{"X_Webauth_User", true},
		{"X-Webauth-Email", true},
		{"X-Auth-Request-User", true},
		{"X-Auth-Request-Email", true},
		{"X-Auth-Userid", true},
		{"Remote-Groups", true},
		{"Remote-Email", true},
		{"Remote-Name", true},
		{"X-Authentik-Username", true},
		{"X-Remote-Group", true},
		{"X-Remote-Extra-Scopes", true},
		{"Cf-Access-Authenticated-User-Email", true},
		{"Cf-Connecting-Ip", true},
		{"Fastly-Client-Ip", true},
		{"X-Originating-Ip", true},
		{"X-Remote-Ip", true},
		{"X-Host", true},
		{"X-Proxyuser-Ip", true},
		{"X-Original-Uri", true},
		{"X-Envoy-Original-Path", true},
		{"X-Envoy-Internal", true},
		{"X-Forwarded-Prefix", true},
		{"X-Http-Method-Override", true},
		{"X-Method-Override", true},
		{"X-Http-Method", true},
		{"X-User", true},
		{"X-Email", true},
		{"Any_Name", true},
		{"_", true},

		{"Remote", false},
		{"X-Users", false},
		{"X-Hostname", false},
		{"X-Envoy", false},
		{"X-Authority", false},
		{"Sec-Fetch-Site", false},

		{"Accept", false},
		{"Accept-Language", false},
		{"Authorization", false},
		{"Content-Type", false},
		{"Cookie", false},
		{"Referer", false},
		{"User-Agent", false},
		{"X-Custom", false},
		{"X-Request-Id", false},
		{"X-Requested-With", false},
	}
	all := http.Header{}
	for _, tt := range tests {
		h := http.Header{tt.name: {"v"}, "X-Keep": {"k"}}
		all[tt.name] = []string{"v"}
		proxy.StripClientHeaders(h)
		if _, ok := h[tt.name]; ok == tt.removed {
			t.Errorf("%s: present after strip = %v, want %v", tt.name, ok, !tt.removed)
		}
		if h.Get("X-Keep") != "k" {
			t.Errorf("%s: an unrelated header was removed", tt.name)
		}
	}
	// All at once: exactly the ordinary ones are left.
	proxy.StripClientHeaders(all)
	for _, tt := range tests {
		if _, ok := all[tt.name]; ok == tt.removed {
			t.Errorf("all at once: %s present = %v", tt.name, ok)
		}
	}
}

func TestStripSessionCookie(t *testing.T) {
	tests := []struct {
		name string
		in   []string // Cookie header values; nil means no header
		want []string // nil means the header is gone
	}{
		{"no cookie header", nil, nil},
		{"only the session cookie", []string{"__Host-sluis=tok"}, nil},
		{"session cookie first", []string{"__Host-sluis=tok; a=1"}, []string{"a=1"}},
		{"session cookie in the middle", []string{"a=1; __Host-sluis=tok; b=2"}, []string{"a=1; b=2"}},
		{"session cookie last", []string{"a=1; b=2; __Host-sluis=tok"}, []string{"a=1; b=2"}},
		{"session cookie twice", []string{"__Host-sluis=a; __Host-sluis=b"}, nil},
		{"spaces around the name", []string{"  __Host-sluis =tok ;a=1"}, []string{"a=1"}},
		{"no space after semicolon", []string{"a=1;__Host-sluis=tok;b=2"}, []string{"a=1; b=2"}},
		{"several headers", []string{"a=1", "__Host-sluis=tok", "b=2"}, []string{"a=1; b=2"}},
		{"several headers, session in one", []string{"a=1; __Host-sluis=tok", "b=2; c=3"}, []string{"a=1; b=2; c=3"}},
		{"several headers, only session", []string{"__Host-sluis=a", "__Host-sluis=b"}, nil},
		{"order kept", []string{"z=1; y=2; x=3"}, []string{"z=1; y=2; x=3"}},
		{"empty parts dropped", []string{"a=1; ; b=2;"}, []string{"a=1; b=2"}},
		{"empty header", []string{""}, nil},
		{"name is a prefix", []string{"__Host-sluisX=y; a=1"}, []string{"__Host-sluisX=y; a=1"}},
		{"the gateway's helper cookies", []string{"__Host-sluis-csrf=x; a=1; __Host-sluis-state-0123456789abcdef=s"}, []string{"a=1"}},
		{"name in a value", []string{"a=__Host-sluis=tok"}, []string{"a=__Host-sluis=tok"}},
		{"other case is another cookie", []string{"__host-sluis=x"}, []string{"__host-sluis=x"}},
		{"cookie without value", []string{"a; __Host-sluis"}, []string{"a"}},
	}
	for _, tt := range tests {
		h := http.Header{"Accept": {"*/*"}}
		if tt.in != nil {
			h["Cookie"] = slices.Clone(tt.in)
		}
		proxy.StripSessionCookie(h)
		got, ok := h["Cookie"]
		switch {
		case tt.want == nil && ok:
			t.Errorf("%s: Cookie %q, want no header", tt.name, got)
		case tt.want != nil && !slices.Equal(got, tt.want):
			t.Errorf("%s: Cookie %q, want %q", tt.name, got, tt.want)
		}
		if h.Get("Accept") != "*/*" {
			t.Errorf("%s: another header changed", tt.name)
		}
	}
}

type fixture struct {
	signer *assertion.Signer
	now    time.Time
	appURL string
	logs   *bytes.Buffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewSigner("https://login.test:8443", key, "k1")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		signer: signer,
		now:    time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		appURL: "https://wiki.test:8443",
		logs:   &bytes.Buffer{},
	}
}

func (f *fixture) proxy(t *testing.T, upstream string) *proxy.Proxy {
	t.Helper()
	return f.proxyWith(t, upstream, nil)
}

func (f *fixture) proxyWith(t testing.TB, upstream string, transport http.RoundTripper) *proxy.Proxy {
	t.Helper()
	app := sluis.App{Name: "wiki", Host: "wiki.test", Upstream: upstream}
	p, err := proxy.New(app, f.appURL, f.signer, transport, func() time.Time { return f.now },
		slog.New(slog.NewTextHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func active() *session.Active {
	return &session.Active{
		Session: sluis.Session{ID: "s1", User: "anna", Stage: sluis.StageComplete},
		User:    sluis.User{Name: "anna", Groups: []string{"staff", "ops"}},
	}
}

// In the style of Caddy's hopheaders_test: a client names the identity
// header in Connection, hoping the proxy deletes what the gateway adds.
func TestHopByHopCannotRemoveIdentity(t *testing.T) {
	f := newFixture(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	p := f.proxy(t, up.URL)

	tests := []struct {
		name       string
		connection string
	}{
		{"identity header named", "X-Sluis-User, Keep-Alive"},
		{"all identity headers named", "X-Sluis-User, X-Sluis-Groups, X-Sluis-Assertion"},
		{"lower case", "keep-alive, x-sluis-user, x-sluis-assertion"},
		{"forwarding header named", "X-Forwarded-For, Keep-Alive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			r := httptest.NewRequest("GET", "https://wiki.test/page?x=1", nil)
			r.Header.Set("Connection", tt.connection)
			r.Header.Set("Keep-Alive", "timeout=5")
			r.Header.Set("X-Sluis-User", "mallory")
			r.Header.Set("X-Sluis-Groups", "admins")
			r.Header.Set("X-Sluis-Assertion", "forged")
			r.Header["X_Sluis_User"] = []string{"mallory"}
			r.Header.Set("X-App", "kept")
			w := httptest.NewRecorder()
			p.Serve(w, r, active())
			if w.Code != 200 || got == nil {
				t.Fatalf("status %d, upstream reached: %v", w.Code, got != nil)
			}
			if v := got.Values("X-Sluis-User"); !slices.Equal(v, []string{"anna"}) {
				t.Errorf("X-Sluis-User %q, want [anna]", v)
			}
			if v := got.Values("X-Sluis-Groups"); !slices.Equal(v, []string{"staff,ops"}) {
				t.Errorf("X-Sluis-Groups %q, want [staff,ops]", v)
			}
			if _, ok := got["X_Sluis_User"]; ok {
				t.Error("underscore twin reached the upstream")
			}
			if v := got.Values("Keep-Alive"); len(v) != 0 {
				t.Errorf("Keep-Alive reached the upstream: %q", v)
			}
			if v := got.Values("X-Forwarded-For"); !slices.Equal(v, []string{"192.0.2.1"}) {
				t.Errorf("X-Forwarded-For %q, want the socket address only", v)
			}
			for _, c := range got.Values("Connection") {
				if strings.Contains(strings.ToLower(c), "sluis") {
					t.Errorf("Connection %q reached the upstream", c)
				}
			}
			if got.Get("X-App") != "kept" {
				t.Error("an ordinary header was dropped")
			}
			toks := got.Values("X-Sluis-Assertion")
			if len(toks) != 1 {
				t.Fatalf("X-Sluis-Assertion %q", toks)
			}
			c, err := assertion.Verify(toks[0], f.signer.JWKS(), f.signer.Issuer, f.appURL, f.now)
			if err != nil {
				t.Fatalf("assertion refused: %v", err)
			}
			if c.Subject != "anna" || c.App != "wiki" || !slices.Equal(c.Groups, []string{"staff", "ops"}) {
				t.Errorf("assertion claims %+v", c)
			}
		})
	}
}

func TestSessionCookieNeverReachesUpstream(t *testing.T) {
	f := newFixture(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: "planted"})
		http.SetCookie(w, &http.Cookie{Name: "app", Value: "2"})
	}))
	defer up.Close()
	p := f.proxy(t, up.URL)
	r := httptest.NewRequest("GET", "https://wiki.test/", nil)
	r.Header.Set("Cookie", "a=1; __Host-sluis=secret-token; b=2")
	w := httptest.NewRecorder()
	p.Serve(w, r, active())
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if c := got.Values("Cookie"); !slices.Equal(c, []string{"a=1; b=2"}) {
		t.Errorf("upstream got Cookie %q", c)
	}
	if sc := w.Result().Header.Values("Set-Cookie"); !slices.Equal(sc, []string{"app=2"}) {
		t.Errorf("client got Set-Cookie %q, want only the app's own cookie", sc)
	}
}

func TestUpstreamDownGives502WithoutDetail(t *testing.T) {
	f := newFixture(t)
	up := httptest.NewServer(http.NotFoundHandler())
	addr := up.Listener.Addr().String()
	up.Close() // nothing listens there now
	p := f.proxy(t, up.URL)
	r := httptest.NewRequest("GET", "https://wiki.test/x", nil)
	w := httptest.NewRecorder()
	p.Serve(w, r, active())
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", w.Code)
	}
	body := w.Body.String()
	host, _, _ := strings.Cut(addr, ":")
	for _, leak := range []string{addr, host, "dial", "tcp", "refused", "connect", "proxy", "127.0.0.1", "error:"} {
		if strings.Contains(strings.ToLower(body), leak) {
			t.Errorf("502 page contains %q: %s", leak, body)
		}
	}
	// The detail goes to the log, under the error ID the page shows.
	i := strings.Index(body, "Error ID: ")
	if i < 0 {
		t.Fatalf("no error ID in %q", body)
	}
	id := body[i+len("Error ID: "):]
	id = id[:strings.IndexByte(id, '<')]
	if !strings.Contains(f.logs.String(), "error_id="+id) || !strings.Contains(f.logs.String(), addr) {
		t.Errorf("log lacks error ID %s or cause: %s", id, f.logs)
	}
}

// A user with more groups than the limits (from a store of before them)
// still sends an app bounded identity headers: 10,001 groups once made
// every request carry 237 KB.
func TestIdentityHeadersAreBounded(t *testing.T) {
	f := newFixture(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
	}))
	defer up.Close()
	p := f.proxy(t, up.URL)
	var many []string
	for i := range 10001 {
		many = append(many, fmt.Sprintf("group-%05d", i))
	}
	tests := []struct {
		name   string
		groups []string
		want   int // groups sent
	}{
		{"few", []string{"staff", "ops"}, 2},
		{"10001", many, sluis.MaxGroups},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := active()
			a.User.Groups = tt.groups
			w := httptest.NewRecorder()
			p.Serve(w, httptest.NewRequest("GET", "https://wiki.test/", nil), a)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			h := got.Get("X-Sluis-Groups")
			if n := len(strings.Split(h, ",")); n != tt.want || len(h) > sluis.MaxGroupsBytes {
				t.Fatalf("X-Sluis-Groups: %d groups, %d bytes", n, len(h))
			}
			c, err := assertion.Verify(got.Get("X-Sluis-Assertion"), f.signer.JWKS(), f.signer.Issuer, f.appURL, f.now)
			if err != nil || len(c.Groups) != tt.want {
				t.Fatalf("assertion: %v, %d groups", err, len(c.Groups))
			}
		})
	}
}

// Responses without the app's own Cache-Control are private; an app with
// NoStore has every response no-store, whatever the app said.
func TestCacheControl(t *testing.T) {
	f := newFixture(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("cc"); v != "" {
			w.Header().Set("Cache-Control", v)
		}
		io.WriteString(w, "page")
	}))
	defer up.Close()
	for _, tt := range []struct {
		noStore   bool
		app, want string
	}{
		{false, "", "private"},
		{false, "public, max-age=600", "public, max-age=600"},
		{false, "no-cache", "no-cache"},
		{true, "", "no-store"},
		{true, "public, max-age=600", "no-store"},
	} {
		app := sluis.App{Name: "wiki", Host: "wiki.test", Upstream: up.URL, NoStore: tt.noStore}
		p, err := proxy.New(app, f.appURL, f.signer, nil, func() time.Time { return f.now }, slog.New(slog.NewTextHandler(f.logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		p.Serve(w, httptest.NewRequest("GET", "https://wiki.test/?cc="+url.QueryEscape(tt.app), nil), active())
		if got := w.Result().Header.Values("Cache-Control"); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("no-store %v, app's %q: Cache-Control %q, want %q", tt.noStore, tt.app, got, tt.want)
		}
	}
}

// An app's response without a Content-Type reaches the client without
// one, over HTTP/1.1 and HTTP/2: the gateway does not make one up (net/http
// would sniff one and declare text/html for an untyped file whose first
// bytes look like HTML). A WebDAV server without type maps, Apache's
// mod_dav for one, sends files untyped.
func TestNoContentTypeIsMadeUp(t *testing.T) {
	f := newFixture(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.URL.Query().Get("ct"); ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil // none at all, as Apache sends it
		}
		io.WriteString(w, "<html><script>alert(1)</script>")
	}))
	defer up.Close()
	p := f.proxy(t, up.URL)
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Serve(w, r, active())
	}))
	front.EnableHTTP2 = true
	front.StartTLS()
	defer front.Close()
	tlsConfig := front.Client().Transport.(*http.Transport).TLSClientConfig
	for _, c := range []struct {
		proto     string
		transport *http.Transport
	}{
		{"HTTP/1.1", &http.Transport{TLSClientConfig: tlsConfig.Clone(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		{"HTTP/2.0", &http.Transport{TLSClientConfig: tlsConfig.Clone(), ForceAttemptHTTP2: true}},
	} {
		client := &http.Client{Transport: c.transport}
		for _, tt := range []struct {
			app  string
			want []string
		}{
			{"", nil},
			{"text/plain; charset=utf-8", []string{"text/plain; charset=utf-8"}},
			{"application/octet-stream", []string{"application/octet-stream"}},
		} {
			resp, err := client.Get(front.URL + "/file?ct=" + url.QueryEscape(tt.app))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Proto != c.proto {
				t.Fatalf("spoke %s, want %s", resp.Proto, c.proto)
			}
			if got := resp.Header.Values("Content-Type"); !slices.Equal(got, tt.want) {
				t.Errorf("%s, the app's Content-Type %q: the client got %q", resp.Proto, tt.app, got)
			}
		}
	}
}

// A request the gateway ends (its context cancelled with ErrEnded) fails
// for its client whether the app had answered yet or not, and whichever
// path the proxy took to the app: never the empty 200 of a handler that
// wrote nothing, never a body that ends as if whole.
func TestEndedRequestsFailForTheClient(t *testing.T) {
	tests := []struct {
		name, method, path string
		body               io.Reader
	}{
		{"before the answer", "GET", "/wait", nil},
		{"before the answer, with a body", "POST", "/wait", strings.NewReader("form=1")},
		{"mid-body, chunked", "GET", "/stream", nil},
		{"mid-body, with a length", "GET", "/download", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			arrived := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/download" {
					w.Header().Set("Content-Length", "1000000")
				}
				if r.URL.Path != "/wait" {
					// More than the server buffers: a response with a
					// length is sent as the buffer fills.
					w.Write(bytes.Repeat([]byte("x"), 64<<10))
					w.(http.Flusher).Flush()
				}
				close(arrived)
				<-r.Context().Done()
			}))
			defer up.Close()
			p := f.proxyWith(t, up.URL, proxy.NewTransport())
			cancels := make(chan context.CancelCauseFunc, 1)
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx, cancel := context.WithCancelCause(r.Context())
				defer cancel(nil)
				cancels <- cancel
				p.Serve(w, r.WithContext(ctx), active())
			}))
			defer gw.Close()
			end := func() { (<-cancels)(proxy.ErrEnded) }
			if tt.path == "/wait" {
				go func() {
					<-arrived
					end()
				}()
			}
			req, _ := http.NewRequest(tt.method, gw.URL+tt.path, tt.body)
			resp, err := gw.Client().Do(req)
			if err != nil {
				return // no answer: a failure
			}
			defer resp.Body.Close()
			if tt.path != "/wait" {
				if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
				end()
			}
			// ReadAll takes a clean end for no error.
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Fatalf("the client got a whole response: %d", resp.StatusCode)
			}
		})
	}
}
