package errpage

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/locale"
)

func TestErrorPageWords(t *testing.T) {
	set, err := locale.New("en", nil)
	if err != nil {
		t.Fatal(err)
	}
	face := &Face{Locale: set, Portal: "https://login.corp.test:8443",
		Brand: Brand{Title: "Gemeente Voorbeeld", Logo: true, Help: Help{Text: "Servicedesk ICT", Phone: "+31 20 123 4567", Email: "servicedesk@voorbeeld.nl"}}}
	tests := []struct {
		name, accept string
		pg           Page
		want         []string // in the body
		warning      bool
	}{
		{"400 en", "en-GB", Page{Status: 400}, []string{`lang="en"`, "<h1>Bad request</h1>", "The request was not understood.", "Go to your applications"}, false},
		{"400 nl", "nl-NL", Page{Status: 400}, []string{`lang="nl"`, "<h1>Onjuist verzoek</h1>", "Naar uw toepassingen"}, false},
		{"401 nl links to login", "nl-NL", Page{Status: 401}, []string{"Niet ingelogd", `href="https://login.corp.test:8443/login"`}, false},
		{"403 nl", "nl", Page{Status: 403}, []string{"Geen toegang", "U mag dit niet openen."}, false},
		{"404 nl", "nl-BE", Page{Status: 404}, []string{"Niet gevonden", "Controleer het adres"}, false},
		{"421 en", "en", Page{Status: 421}, []string{"Unknown address", "does not serve that host name", "Check the address you typed."}, false},
		{"429 en with wait", "en", Page{Status: 429, RetryAfter: 4*time.Minute + time.Second}, []string{"Too many attempts", "Try again in 5 minutes."}, false},
		{"429 nl with wait", "nl", Page{Status: 429, RetryAfter: 30 * time.Second}, []string{"Probeer het over 1 minuut opnieuw."}, false},
		{"431 nl", "nl", Page{Status: 431}, []string{"Verzoek te groot", "Verwijder de cookies"}, false},
		{"502 nl", "nl", Page{Status: 502}, []string{"De toepassing antwoordde niet", "Probeer het over een paar minuten opnieuw."}, false},
		{"503 en", "en", Page{Status: 503}, []string{"Unavailable", "Try again in a few minutes."}, false},
		{"blocked nl", "nl", Page{Status: 403, Kind: KindBlocked}, []string{"Verzoeken vanaf uw netwerkadres worden door deze gateway geblokkeerd"}, false},
		{"blocked en", "en", Page{Status: 403, Kind: KindBlocked}, []string{"Requests from your network address are blocked"}, false},
		{"policy: network", "nl", Page{Status: 403, Kind: KindNetwork}, []string{"alleen vanaf de eigen netwerken"}, false},
		{"policy: hours", "en", Page{Status: 403, Kind: KindHours, Detail: "mon-fri 07:00-19:00 (Europe/Amsterdam)"}, []string{"This part of the application is open mon-fri 07:00-19:00 (Europe/Amsterdam)."}, false},
		{"app off: operator's words as written", "nl", Page{Status: 503, Kind: KindAppOff, Detail: "upgrade <tonight>"}, []string{"Deze toepassing is uitgeschakeld: upgrade &lt;tonight&gt;", "Noodmaatregel"}, true},
		{"level closed", "en", Page{Status: 503, Kind: KindClosed, Detail: "incident 42"}, []string{"Access through the gateway is closed: incident 42", "Emergency measure"}, true},
		{"level lockdown nl", "nl", Page{Status: 403, Kind: KindLockdown, Detail: "ransomware"}, []string{"Toegang is beperkt tot noodpersoneel: ransomware"}, true},
		{"store unreachable by notice", "nl", Page{Status: 503, Notice: StoreUnreachable}, []string{"De gateway kan zijn database nu niet bereiken"}, false},
		{"operator notice as written", "nl", Page{Status: 503, Notice: "Onderhoud tot 18:00"}, []string{"Onderhoud tot 18:00"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://wiki.corp.test/x", nil)
			r.Header.Set("Accept-Language", tt.accept)
			w := httptest.NewRecorder()
			tt.pg.ID = "0123456789ab"
			WithFace(face, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { WritePage(w, r, tt.pg) })).ServeHTTP(w, r)
			body := w.Body.String()
			if w.Code != tt.pg.Status {
				t.Errorf("status %d", w.Code)
			}
			for _, s := range append(tt.want, "Gemeente Voorbeeld", "Servicedesk ICT", `href="tel:&#43;31201234567"`, `href="mailto:servicedesk@voorbeeld.nl"`,
				`src="https://login.corp.test:8443/assets/logo"`, `href="https://login.corp.test:8443/assets/sluis.css"`) {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q:\n%s", s, body)
				}
			}
			if !regexp.MustCompile(`Error ID: ([0-9a-f]{12})`).MatchString(body) {
				t.Errorf("page lacks the machine-findable error ID:\n%s", body)
			}
			if got := strings.Contains(body, `class="warning"`); got != tt.warning {
				t.Errorf("warning shown %v, want %v", got, tt.warning)
			}
			for _, bad := range []string{"<script", "style=", "<style"} {
				if strings.Contains(body, bad) {
					t.Errorf("page has %s", bad)
				}
			}
			csp := w.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
				t.Errorf("CSP %q", csp)
			}
		})
	}
}

// Without a face (a request that never passed the gateway's handler) the
// page is still a page: English, unbranded, nothing loaded from anywhere.
func TestErrorPagePlain(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, httptest.NewRequest("GET", "/", nil), 404, "0123456789ab")
	if !strings.Contains(w.Body.String(), "There is nothing here.") || !strings.Contains(w.Header().Get("Content-Security-Policy"), "style-src 'none'") {
		t.Fatalf("%s\n%s", w.Header(), w.Body)
	}
}

// BenchmarkErrorPageBlocked is the page a blocked source gets on every
// request: the cost of a flood's answers.
func BenchmarkErrorPageBlocked(b *testing.B) {
	set, _ := locale.New("en", nil)
	face := &Face{Locale: set, Portal: "https://login.corp.test", Brand: Brand{Title: "Gemeente Voorbeeld", Help: Help{Phone: "+31 20 123 4567"}}}
	h := WithFace(face, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WritePage(w, r, Page{Status: 403, ID: "0123456789ab", Kind: KindBlocked})
	}))
	r := httptest.NewRequest("GET", "https://wiki.corp.test/", nil)
	r.Header.Set("Accept-Language", "nl-NL,nl;q=0.9,en;q=0.8")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}

// Pages are rendered once and copied: each copy has its own ID and its
// own language, and the cache stays bounded.
func TestErrorPageCache(t *testing.T) {
	set, _ := locale.New("en", nil)
	face := &Face{Locale: set}
	get := func(lang, id, detail string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", lang)
		w := httptest.NewRecorder()
		WithFace(face, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WritePage(w, r, Page{Status: 503, ID: id, Kind: KindAppOff, Detail: detail})
		})).ServeHTTP(w, r)
		return w.Body.String()
	}
	for i, tt := range []struct{ lang, id, want string }{
		{"nl", "aaaaaaaaaaaa", "Deze toepassing is uitgeschakeld: x"},
		{"en", "bbbbbbbbbbbb", "This application is switched off: x"},
		{"nl", "cccccccccccc", "Deze toepassing is uitgeschakeld: x"},
	} {
		body := get(tt.lang, tt.id, "x")
		if !strings.Contains(body, "Error ID: "+tt.id) || !strings.Contains(body, tt.want) || strings.Count(body, idMark) != 0 {
			t.Errorf("page %d: %s", i, body)
		}
	}
	for i := range 2 * maxCachedPages {
		get("en", "dddddddddddd", strings.Repeat("y", i))
	}
	if n := len(face.pages); n > maxCachedPages {
		t.Errorf("%d pages cached", n)
	}
	if body := get("en", "eeeeeeeeeeee", "z"); !strings.Contains(body, "switched off: z") || !strings.Contains(body, "Error ID: eeeeeeeeeeee") {
		t.Errorf("a page past the cache's bound: %s", body)
	}
}
