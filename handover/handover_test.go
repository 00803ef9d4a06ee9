package handover

import (
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/errpage"
)

func base(h string) string { return "https://" + h + ":8443" }

// Start: a browser asking for a page goes to log in with where to come
// back to and the hash of a new state cookie; anything else gets 401.
func TestStart(t *testing.T) {
	tests := []struct {
		name, method, accept string
		cookies              int // state cookies the browser already holds
		status               int
		cleared              int // state cookies dropped
	}{
		{"a page", "GET", "text/html,application/xhtml+xml", 0, http.StatusSeeOther, 0},
		{"HEAD of a page", "HEAD", "text/html", 0, http.StatusSeeOther, 0},
		{"an API call", "GET", "application/json", 0, http.StatusUnauthorized, 0},
		{"a form post", "POST", "text/html", 0, http.StatusUnauthorized, 0},
		{"many logins in flight", "GET", "text/html", MaxStateCookies, http.StatusSeeOther, MaxStateCookies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://wiki.test/docs?id=7", nil)
			r.Header.Set("Accept", tt.accept)
			for i := range tt.cookies {
				r.AddCookie(&http.Cookie{Name: StateCookie + strings.Repeat("a", 15) + string(rune('a'+i)), Value: "x"})
			}
			w := httptest.NewRecorder()
			Start(w, r, base("login.test")+"/login", base("wiki.test")+"/docs?id=7", nil, errpage.Refusal{})
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.status != http.StatusSeeOther {
				if len(w.Result().Cookies()) != 0 {
					t.Fatalf("cookies set on a refusal: %v", w.Result().Cookies())
				}
				return
			}
			loc, _ := url.Parse(w.Header().Get("Location"))
			if loc.Host != "login.test:8443" || loc.Path != "/login" || loc.Query().Get("rd") != "https://wiki.test:8443/docs?id=7" || len(loc.Query().Get("state")) != 64 {
				t.Fatalf("Location %s", loc)
			}
			var set, cleared int
			for _, c := range w.Result().Cookies() {
				switch {
				case c.MaxAge < 0:
					cleared++
				case c.Name == StateCookieName(mustHex(t, loc.Query().Get("state"))) && c.Secure && c.HttpOnly && c.SameSite == http.SameSiteLaxMode:
					set++
				}
			}
			if set != 1 || cleared != tt.cleared || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("state cookies: %d set, %d cleared; %v", set, cleared, w.Result().Cookies())
			}
		})
	}
}

// Logout passes only through configured app hosts, never elsewhere.
func TestLogout(t *testing.T) {
	h := &Host{App: sluis.App{Name: "wiki", Host: "wiki.test"}, AppHosts: []string{"wiki.test", "hr.test", "mail.test"},
		BaseURL: base, Portal: "login.test", Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		next     string
		status   int
		location string
	}{
		{"", http.StatusSeeOther, "https://login.test:8443/login?logged_out=1"},
		{"hr.test", http.StatusSeeOther, "https://hr.test:8443/.sluis/logout"},
		{"hr.test,mail.test", http.StatusSeeOther, "https://hr.test:8443/.sluis/logout?next=mail.test"},
		{"evil.example", http.StatusBadRequest, ""},
		{"hr.test,evil.example", http.StatusBadRequest, ""},
		{"wiki.test", http.StatusBadRequest, ""}, // no loop through itself
		{"hr.test,mail.test,hr.test,mail.test", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.Logout().ServeHTTP(w, httptest.NewRequest("GET", "https://wiki.test/.sluis/logout?next="+url.QueryEscape(tt.next), nil))
		if w.Code != tt.status || w.Header().Get("Location") != tt.location {
			t.Errorf("next=%q: %d %q, want %d %q", tt.next, w.Code, w.Header().Get("Location"), tt.status, tt.location)
		}
		if tt.status == http.StatusSeeOther && w.Header().Get("Clear-Site-Data") != ClearSiteData {
			t.Errorf("next=%q: no Clear-Site-Data", tt.next)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
