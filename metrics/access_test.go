package metrics

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestHandlerAccess(t *testing.T) {
	const token = "s3cret-token-of-the-scraper"
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name   string
		access Access
		method string
		auth   []string // Authorization header values
		status int
	}{
		{"token", Access{TokenHash: HashToken(token), Networks: elsewhere}, "GET", []string{"Bearer " + token}, 200},
		{"token, scheme in lower case", Access{TokenHash: HashToken(token)}, "GET", []string{"bearer " + token}, 200},
		{"HEAD with token", Access{TokenHash: HashToken(token)}, "HEAD", []string{"Bearer " + token}, 200},
		{"wrong token", Access{TokenHash: HashToken(token), Networks: elsewhere}, "GET", []string{"Bearer " + token + "x"}, 401},
		{"a prefix of the token", Access{TokenHash: HashToken(token)}, "GET", []string{"Bearer " + token[:10]}, 401},
		{"empty token", Access{TokenHash: HashToken(token)}, "GET", []string{"Bearer "}, 401},
		{"basic auth", Access{TokenHash: HashToken(token)}, "GET", []string{"Basic " + token}, 401},
		{"token twice", Access{TokenHash: HashToken(token)}, "GET", []string{"Bearer " + token, "Bearer " + token}, 401},
		{"wrong token from an allowed network", Access{TokenHash: HashToken(token), Networks: loopback}, "GET", []string{"Bearer nope"}, 401},
		{"a token where none is configured", Access{Networks: elsewhere}, "GET", []string{"Bearer " + token}, 401},
		{"no token, allowed network", Access{Networks: loopback}, "GET", nil, 200},
		{"no token, allowed network and a token configured", Access{TokenHash: HashToken(token), Networks: loopback}, "GET", nil, 200},
		{"no token, other network, token configured", Access{TokenHash: HashToken(token), Networks: elsewhere}, "GET", nil, 401},
		{"no token, other network, no token configured", Access{Networks: elsewhere}, "GET", nil, 403},
		{"zero Access", Access{}, "GET", nil, 403},
		{"POST with token", Access{TokenHash: HashToken(token)}, "POST", []string{"Bearer " + token}, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			m.Login(MethodPassword, OutcomeSuccess)
			srv := httptest.NewTLSServer(m.Handler(tc.access))
			defer srv.Close()
			req, _ := http.NewRequest(tc.method, srv.URL+"/metrics", nil)
			req.Header["Authorization"] = tc.auth
			c := srv.Client()
			c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: c.Transport.(*http.Transport).TLSClientConfig.RootCAs}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			got := string(body)
			switch {
			case tc.status == 200 && tc.method == "GET":
				if !strings.Contains(got, `sluis_logins_total{method="password",outcome="success"} 1`) || !strings.Contains(got, "sluis_build_info{") {
					t.Fatalf("no metrics in:\n%.2000s", got)
				}
			case tc.status == 401:
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
				fallthrough
			default:
				if strings.Contains(got, "sluis_") || strings.Contains(got, token) {
					t.Fatalf("refusal says too much: %s", got)
				}
			}
		})
	}
}
