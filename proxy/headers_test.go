package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/proxy"
)

// serveApp relays one request with headers h through a proxy for app and
// returns what the upstream received.
func serveApp(t *testing.T, app sluis.App, a func(*sluis.User), h http.Header) http.Header {
	t.Helper()
	f := newFixture(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	app.Name, app.Host, app.Upstream = "wiki", "wiki.test", up.URL
	p, err := proxy.New(app, f.appURL, f.signer, nil, func() time.Time { return f.now }, slog.New(slog.NewTextHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := active()
	if a != nil {
		a(&s.User)
	}
	r := httptest.NewRequest("GET", "https://wiki.test/", nil)
	for k, v := range h {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	p.Serve(w, r, s)
	if w.Code != 200 || got == nil {
		t.Fatalf("status %d", w.Code)
	}
	return got
}

func TestRequestHeadersKeepAndRemove(t *testing.T) {
	app := sluis.App{RequestHeaders: sluis.RequestHeaders{Remove: []string{"X-Debug"}, Keep: []string{"X-Real-IP", "x-auth-token"}}}
	got := serveApp(t, app, nil, http.Header{
		"X-Real-Ip":      {"10.0.0.1"},
		"X_Real_Ip":      {"10.0.0.2"},
		"X-Auth-Token":   {"openstack"},
		"X-Debug":        {"1"},
		"x-debug":        {"1"},
		"X-Webauth-User": {"admin"},
		"X-Custom":       {"kept"},
	})
	for name, want := range map[string][]string{
		"X-Real-Ip": {"10.0.0.1"}, "X_Real_Ip": nil, "X-Auth-Token": {"openstack"},
		"X-Debug": nil, "x-debug": nil, "X-Webauth-User": nil, "X-Custom": {"kept"},
	} {
		if v := got[name]; !slices.Equal(v, want) {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	// Without the app's rules, the default list applies.
	got = serveApp(t, sluis.App{}, nil, http.Header{"X-Real-Ip": {"10.0.0.1"}, "X-Debug": {"1"}})
	if got.Get("X-Real-Ip") != "" || got.Get("X-Debug") != "1" {
		t.Errorf("default: %v", got)
	}
}

func TestIdentityHeadersCannotBeSpoofed(t *testing.T) {
	app := sluis.App{IdentityHeaders: []sluis.IdentityHeader{
		{Name: "X-WEBAUTH-USER", Value: sluis.IdentityUser},
		{Name: "Remote-Groups", Value: sluis.IdentityGroups},
		{Name: "X-Webauth-Email", Value: sluis.IdentityEmail},
		{Name: "X-Webauth-Name", Value: sluis.IdentityName},
		{Name: "X-App-User", Value: sluis.IdentityUser}, // not on the default list
	},
		// Keep naming an identity header is refused by configuration, and
		// ignored here.
		RequestHeaders: sluis.RequestHeaders{Keep: []string{"X-Webauth-User"}},
	}
	user := func(u *sluis.User) { u.Email, u.DisplayName = "anna@corp.test", "Anna Ångström" }
	got := serveApp(t, app, user, http.Header{
		"X-Webauth-User":  {"admin", "admin"},
		"x-webauth-user":  {"admin"},
		"X_WEBAUTH_USER":  {"admin"},
		"Remote-Groups":   {"admins"},
		"X-Webauth-Email": {"admin@corp.test"},
		"X-App-User":      {"admin"},
		"x-app-user":      {"admin"},
		"X_App_User":      {"admin"},
	})
	want := map[string][]string{
		"X-Webauth-User": {"anna"}, "Remote-Groups": {"staff,ops"}, "X-Webauth-Email": {"anna@corp.test"},
		"X-Webauth-Name": {"Anna Ångström"}, "X-App-User": {"anna"},
		"x-webauth-user": nil, "X_WEBAUTH_USER": nil, "x-app-user": nil, "X_App_User": nil,
	}
	for name, w := range want {
		if v := got[name]; !slices.Equal(v, w) {
			t.Errorf("%s: %q, want %q", name, v, w)
		}
	}
	// Unknown or unsafe values leave the header out, and the client's copy
	// stays dropped.
	for _, bad := range []string{"", "Anna\r\nX-Sluis-User: admin", "Anna\x00", "Anna\u0085", "\xff", string(make([]byte, 300))} {
		got = serveApp(t, app, func(u *sluis.User) { u.Email, u.DisplayName = bad, bad }, http.Header{"X-Webauth-Email": {"admin@corp.test"}, "X-Webauth-Name": {"Admin"}})
		if v, ok := got["X-Webauth-Email"]; ok {
			t.Errorf("email %q: sent %q", bad, v)
		}
		if v, ok := got["X-Webauth-Name"]; ok {
			t.Errorf("name %q: sent %q", bad, v)
		}
		if got.Get("X-Webauth-User") != "anna" {
			t.Errorf("user header: %q", got.Get("X-Webauth-User"))
		}
	}
}
