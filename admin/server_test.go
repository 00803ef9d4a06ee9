package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// tlsServer starts s's handler on a real TLS listener (httptest's
// certificate) and returns a client that reaches every host there.
func tlsServer(t *testing.T, o Options) (*Server, *http.Client, int) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	o.Port = port
	if o.Host == "" {
		o.Host = "admin.login.test"
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = s.Handler()
	c := ts.Client()
	tr := c.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", ts.Listener.Addr().String())
	}
	tr.TLSClientConfig.InsecureSkipVerify = true
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return s, c, port
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAdminHostCheckAndHeaders(t *testing.T) {
	s, c, port := tlsServer(t, Options{})
	own := fmt.Sprintf("https://admin.login.test:%d", port)
	if s.Origin() != own {
		t.Fatalf("origin %q", s.Origin())
	}
	for host, want := range map[string]int{
		fmt.Sprintf("admin.login.test:%d", port):   http.StatusSeeOther,
		"admin.login.test":                         http.StatusMisdirectedRequest,
		fmt.Sprintf("login.test:%d", port):         http.StatusMisdirectedRequest,
		fmt.Sprintf("rebound.example:%d", port):    http.StatusMisdirectedRequest,
		fmt.Sprintf("127.0.0.1:%d", port):          http.StatusMisdirectedRequest,
		fmt.Sprintf("admin.login.test.:%d", port):  http.StatusMisdirectedRequest,
		fmt.Sprintf("xadmin.login.test:%d", port):  http.StatusMisdirectedRequest,
		fmt.Sprintf("admin.login.test:%d", port+1): http.StatusMisdirectedRequest,
	} {
		resp, body := get(t, c, own+"/", "Host", host)
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
		if want == http.StatusMisdirectedRequest && !strings.Contains(body, "Error ID") {
			t.Errorf("Host %s: %q", host, body)
		}
		for h, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if resp.Header.Get(h) != v {
				t.Errorf("Host %s: %s %q", host, h, resp.Header.Get(h))
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "'unsafe-inline'") {
			t.Errorf("Host %s: CSP %q", host, csp)
		}
	}
	// At port 443 the browser leaves the port out.
	s443, err := New(context.Background(), Options{Host: "admin.login.test", Port: 443})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{"admin.login.test": http.StatusSeeOther, "admin.login.test:443": http.StatusSeeOther, "admin.login.test:8443": http.StatusMisdirectedRequest} {
		r := httptest.NewRequest("GET", "https://admin.login.test/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		s443.Handler().ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("port 443, Host %s: %d, want %d", host, w.Code, want)
		}
	}
	if s443.Origin() != "https://admin.login.test" {
		t.Errorf("origin at 443: %q", s443.Origin())
	}
}

// /metrics: a bearer token (compared as hashes, in constant time) or an
// address in the networks; otherwise 401 (a token would do) or 403; and
// none of it without a handler or without a token and networks.
func TestAdminMetricsAccess(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sluis_up 1\n") })
	const token = "0123456789abcdef-metrics"
	for _, tc := range []struct {
		name     string
		o        Options
		auth     string
		want     int
		wwwAuthn bool
	}{
		{"token", Options{Metrics: metrics, MetricsToken: token}, "Bearer " + token, 200, false},
		{"wrong token", Options{Metrics: metrics, MetricsToken: token}, "Bearer " + token + "x", 401, true},
		{"scheme in lower case (RFC 6750)", Options{Metrics: metrics, MetricsToken: token}, "bearer " + token, 200, false},
		{"no token", Options{Metrics: metrics, MetricsToken: token}, "", 401, true},
		{"basic", Options{Metrics: metrics, MetricsToken: token}, "Basic " + token, 401, true},
		{"network", Options{Metrics: metrics, MetricsNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "", 200, false},
		{"other network", Options{Metrics: metrics, MetricsNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "", 403, false},
		{"other network, token", Options{Metrics: metrics, MetricsToken: token, MetricsNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "Bearer " + token, 200, false},
		{"network, wrong token", Options{Metrics: metrics, MetricsToken: token, MetricsNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "Bearer nope", 401, true},
		{"nobody configured", Options{Metrics: metrics}, "", 404, false},
		{"no handler", Options{MetricsToken: token}, "Bearer " + token, 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, port := tlsServer(t, tc.o)
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			resp, body := get(t, c, fmt.Sprintf("https://admin.login.test:%d/metrics", port), hdr...)
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %q, want %d", resp.StatusCode, body, tc.want)
			}
			if (resp.Header.Get("WWW-Authenticate") != "") != tc.wwwAuthn {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tc.want == 200 && body != "sluis_up 1\n" || tc.want != 200 && strings.Contains(body, "sluis_up") {
				t.Errorf("body %q", body)
			}
		})
	}
}

// The listener's server has limits of its own, and TLS from the caller.
func TestAdminHTTPServerLimits(t *testing.T) {
	s, err := New(context.Background(), Options{Host: "admin.login.test", Port: 9443})
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	srv := s.HTTPServer(conf, nil)
	if srv.TLSConfig != conf || srv.ReadHeaderTimeout != HeaderTimeout || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 ||
		srv.MaxHeaderBytes != MaxHeaderBytes || !srv.DisableGeneralOptionsHandler {
		t.Fatalf("server: %+v", srv)
	}
}
