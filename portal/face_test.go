package portal

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/locale"
)

// The language switch remembers only a known language and returns only to
// a page of the portal: it is no open redirect.
func TestLanguageSwitch(t *testing.T) {
	h := newReturnPortal(t).Handler()
	tests := []struct {
		query, wantTo, wantCookie string
	}{
		{"lang=nl&back=/login", "/login", "nl"},
		{"lang=en&back=" + urlq("/login?rd=https://wiki.test/x&state=abc"), "/login?rd=https%3A%2F%2Fwiki.test%2Fx&state=abc", "en"},
		{"lang=nl&back=/mfa", "/mfa", "nl"},
		{"lang=de&back=/login", "/login", ""},
		{"lang=nl&back=//evil.example/", "/", "nl"},
		{"lang=nl&back=https://evil.example/login", "/", "nl"},
		{"lang=nl&back=" + urlq(`/\evil.example`), "/", "nl"},
		{"lang=nl&back=/logout", "/", "nl"},
		{"lang=nl", "/", "nl"},
		{"lang=" + urlq("nl\r\nSet-Cookie: x=y") + "&back=/", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "https://login.test/language?"+tt.query, nil))
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tt.wantTo {
				t.Fatalf("%d to %q, want 303 to %q", w.Code, w.Header().Get("Location"), tt.wantTo)
			}
			var got *http.Cookie
			for _, c := range w.Result().Cookies() {
				if c.Name == locale.Cookie {
					got = c
				}
			}
			switch {
			case tt.wantCookie == "" && got != nil:
				t.Fatalf("cookie set: %v", got)
			case tt.wantCookie != "" && (got == nil || got.Value != tt.wantCookie || !got.Secure || got.SameSite != http.SameSiteLaxMode || got.MaxAge < 360*24*3600):
				t.Fatalf("cookie %v, want %s, Secure, SameSite=Lax, a year", got, tt.wantCookie)
			}
		})
	}
}

func urlq(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "?", "%3F", "=", "%3D", "\r", "%0D", "\n", "%0A", " ", "%20", `\`, "%5C").Replace(s)
}

// The login page is in the browser's language, with a switch to the
// others.
func TestLanguageLoginPage(t *testing.T) {
	h := newReturnPortal(t).Handler()
	for _, tt := range []struct{ accept, cookie, want, switchTo string }{
		{"nl-NL,nl;q=0.9", "", `<html lang="nl">`, `lang="en"`},
		{"nl-NL", "en", `<html lang="en">`, `lang="nl"`},
		{"en-GB", "", `<html lang="en">`, `lang="nl"`},
	} {
		r := httptest.NewRequest("GET", "https://login.test/login", nil)
		r.Header.Set("Accept-Language", tt.accept)
		if tt.cookie != "" {
			r.AddCookie(&http.Cookie{Name: locale.Cookie, Value: tt.cookie})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body := w.Body.String()
		if !strings.Contains(body, tt.want) || !strings.Contains(body, tt.switchTo) || !strings.Contains(body, `href="/language?lang=`) {
			t.Errorf("Accept-Language %s, cookie %q: page lacks %s or the switch:\n%s", tt.accept, tt.cookie, tt.want, body)
		}
		if strings.Contains(body, `lang="nl"`) && tt.want == `<html lang="nl">` && !strings.Contains(body, "Gebruikersnaam") {
			t.Errorf("Dutch page without Dutch words:\n%s", body)
		}
	}
}

// A refusal's page is in the user's language, its log line in English.
func TestLanguageLogStaysEnglish(t *testing.T) {
	var logs strings.Builder
	p := newReturnPortal(t)
	p.Log = slog.New(slog.NewTextHandler(&logs, nil))
	h := p.Handler()
	r := httptest.NewRequest("POST", "https://login.test/login", strings.NewReader("username=anna&password=x"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept-Language", "nl-NL")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if !strings.Contains(w.Body.String(), "Het formulier is verlopen.") {
		t.Fatalf("page: %d\n%s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "The form expired") || strings.Contains(logs.String(), "verlopen") {
		t.Fatalf("log: %s", logs.String())
	}
}

// An app's icon names the app: without a login it is a redirect, like
// every route that needs one.
func TestBrandingIconNeedsALogin(t *testing.T) {
	p := newReturnPortal(t)
	p.Face.Apps = map[string]AppFace{"wiki": {Title: "Kennisbank", Icon: &Image{Data: []byte("\x89PNG\r\n\x1a\n"), Type: "image/png"}}}
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, httptest.NewRequest("GET", "https://login.test/assets/app/wiki", nil))
	if w.Code != http.StatusSeeOther || w.Body.Len() > 100 {
		t.Fatalf("icon without a login: %d %q", w.Code, w.Body)
	}
}
