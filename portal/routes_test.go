package portal

import (
	"github.com/sluis-gateway/sluis/handover"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// The pre-login surface is counted: adding a route that answers without a
// login must change this list, in review, on purpose.
func TestPreLoginSurfaceIsExactlyThis(t *testing.T) {
	want := []string{
		"GET /.well-known/jwks.json",
		"GET /assets/brand.css", // the organisation's colour (and /assets/logo when configured)
		"GET /assets/copy.js",   // the launcher's copy button
		"GET /assets/passkey.js",
		"GET /assets/sluis.css",
		"GET /healthz",
		"GET /language", // the language switch: sets a cookie, returns to a portal page
		"GET /login",
		"GET /login/oidc/{provider}",
		"GET /login/oidc/{provider}/callback",
		"GET /readyz",
		"POST /device/poll",
		"POST /device/start",
		"POST /login",
		"POST /login/passkey/begin",
		"POST /login/passkey/finish",
	}
	var got []string
	for _, rt := range newReturnPortal(t).Routes() {
		if rt.Access == "none" {
			got = append(got, rt.Pattern)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("pre-login routes:\n got %q\nwant %q", got, want)
	}
	// App hosts answer two paths of the gateway's own before login (see
	// package handover).
	if handover.CallbackPath != "/.sluis/callback" || handover.LogoutPath != "/.sluis/logout" {
		t.Fatalf("app-host paths changed to %q, %q", handover.CallbackPath, handover.LogoutPath)
	}
}

// Every route that needs a login, asked without one, only redirects to
// the login page (or refuses a form without its CSRF token): no content.
func TestRoutesNeedingALoginGiveNothingWithoutOne(t *testing.T) {
	p := newReturnPortal(t)
	h := p.Handler()
	for _, rt := range p.Routes() {
		if rt.Access == "none" {
			continue
		}
		method, path := "GET", rt.Pattern[len("GET "):]
		if rt.Pattern[:4] == "POST" {
			method, path = "POST", rt.Pattern[len("POST "):]
		}
		if path == "/{$}" {
			path = "/"
		}
		r := httptest.NewRequest(method, "https://login.test"+path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther && w.Code != http.StatusForbidden && w.Code != http.StatusUnsupportedMediaType {
			t.Errorf("%s without a login: %d", rt.Pattern, w.Code)
		}
		// The passkey endpoints speak JSON: asked properly, but without
		// a login, they give no ceremony options either.
		if method == "POST" {
			r := httptest.NewRequest(method, "https://login.test"+path, strings.NewReader("{}"))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code < 300 || strings.Contains(w.Body.String(), "challenge") {
				t.Errorf("%s as JSON without a login: %d %s", rt.Pattern, w.Code, w.Body)
			}
		}
		if loc := w.Header().Get("Location"); w.Code == http.StatusSeeOther && loc != "/login" && !strings.HasPrefix(loc, "/login?rd=") {
			t.Errorf("%s without a login redirects to %q", rt.Pattern, loc)
		}
	}
	// Nor does the portal answer any path of the admin listener's (its
	// console, API and metrics are on a listener of their own: see
	// e2e.TestAdminPublicListenerServesNoAdminRoute).
	for _, path := range []string{"/admin", "/debug/pprof/", "/login/", "/assets/", "/.git/config", "/login.php",
		"/api/v1/", "/api/v1/sessions", "/metrics", "/users", "/apps", "/emergency", "/blocks", "/audit", "/audit/export",
		"/login/key", "/assets/admin.css", "/assets/admin.js"} {
		r := httptest.NewRequest("GET", "https://login.test"+path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, w.Code)
		}
	}
}
