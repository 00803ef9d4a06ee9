package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// healthCheck asks path on the portal host, as a balancer's health check
// does, and returns the status and the body.
func healthCheck(t *testing.T, g *testenv.Gateway, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(g.URL(g.Portal, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, b.String()
}

// /healthz and /readyz answer on the portal's host without a login, with
// their status and nothing else: no version, no store, no reason.
func TestReadyAndLiveSayOnlyTheirStatus(t *testing.T) {
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	c := g.Client()
	for _, tc := range []struct{ path, body string }{
		{"/healthz", "ok\n"},
		{"/readyz", "ready\n"},
	} {
		status, body := healthCheck(t, g, c, tc.path)
		if status != http.StatusOK || body != tc.body {
			t.Errorf("%s: %d %q, want 200 %q", tc.path, status, body, tc.body)
		}
	}
}
