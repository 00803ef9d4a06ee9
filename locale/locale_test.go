package locale

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLanguageChoice(t *testing.T) {
	tests := []struct {
		name, def, cookie, accept, want string
	}{
		{"Dutch browser", "en", "", "nl-NL,nl;q=0.9,en;q=0.8", "nl"},
		{"Belgian Dutch", "en", "", "nl-BE", "nl"},
		{"British English, Dutch default", "nl", "", "en-GB,en;q=0.9", "en"},
		{"German: the default", "en", "", "de-DE,de;q=0.9", "en"},
		{"German: the Dutch default", "nl", "", "de", "nl"},
		{"no header: the default", "nl", "", "", "nl"},
		{"cookie wins over the header", "en", "en", "nl-NL", "en"},
		{"cookie wins over the default", "en", "nl", "", "nl"},
		{"unknown cookie ignored", "en", "de", "nl-NL", "nl"},
		{"hostile cookie ignored", "en", "../../etc", "", "en"},
		{"garbage header: the default", "nl", "", ";;;q=x,,", "nl"},
		{"oversized header: the default", "nl", "", strings.Repeat("en-GB,", 200), "nl"},
		{"second preference", "en", "", "fr-FR,nl;q=0.5", "nl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.def, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := http.NewRequest("GET", "https://login.corp.test/login", nil)
			if tt.accept != "" {
				r.Header.Set("Accept-Language", tt.accept)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: Cookie, Value: tt.cookie})
			}
			if got := s.Choose(r); got != tt.want {
				t.Errorf("Choose = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLanguageUnknownDefault(t *testing.T) {
	if _, err := New("de", nil); err == nil {
		t.Fatal("New(de) succeeded without a German catalogue")
	}
}

func TestLanguagePlurals(t *testing.T) {
	s, err := New("en", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lang, key string
		n         int
		want      string
	}{
		{"en", "next.wait_minutes", 1, "Try again in 1 minute."},
		{"en", "next.wait_minutes", 5, "Try again in 5 minutes."},
		{"nl", "next.wait_minutes", 1, "Probeer het over 1 minuut opnieuw."},
		{"nl", "next.wait_minutes", 12, "Probeer het over 12 minuten opnieuw."},
		{"en", "mfa.recovery_left", 0, "You used your last recovery code. Ask your help desk to set up your authenticator again, or add a passkey."},
		{"en", "mfa.recovery_left", 1, "You used a recovery code; 1 is left. If your authenticator is lost, ask your help desk to set it up again, or add a passkey."},
		{"en", "mfa.recovery_left", 9, "You used a recovery code; 9 are left. If your authenticator is lost, ask your help desk to set it up again, or add a passkey."},
		{"nl", "mfa.recovery_left", 0, "U heeft uw laatste herstelcode gebruikt. Vraag de helpdesk uw authenticator opnieuw in te stellen, of voeg een passkey toe."},
		{"nl", "mfa.recovery_left", 9, "U heeft een herstelcode gebruikt; er zijn er nog 9 over. Bent u uw authenticator kwijt, vraag de helpdesk hem opnieuw in te stellen, of voeg een passkey toe."},
	}
	for _, tt := range tests {
		if got := s.Printer(tt.lang).T(tt.key, tt.n); got != tt.want {
			t.Errorf("%s %s(%d) = %q, want %q", tt.lang, tt.key, tt.n, got, tt.want)
		}
	}
}

func TestLanguageDates(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New("en", ams)
	if err != nil {
		t.Fatal(err)
	}
	// 18:49 UTC is 19:49 in Amsterdam in winter, 20:49 in summer.
	tests := []struct {
		lang string
		at   time.Time
		want string
	}{
		{"en", time.Date(2026, 11, 29, 18, 49, 0, 0, time.UTC), "29 November 2026, 19:49"},
		{"nl", time.Date(2026, 11, 29, 18, 49, 0, 0, time.UTC), "29 november 2026, 19:49"},
		{"nl", time.Date(2026, 7, 1, 18, 49, 0, 0, time.UTC), "1 juli 2026, 20:49"},
		{"en", time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), "1 January 2027, 00:30"},
	}
	for _, tt := range tests {
		if got := s.Printer(tt.lang).Date(tt.at); got != tt.want {
			t.Errorf("%s Date(%v) = %q, want %q", tt.lang, tt.at, got, tt.want)
		}
	}
}

func TestLanguageOperatorTextAsWritten(t *testing.T) {
	s, _ := New("nl", nil)
	// An operator's reason with fmt verbs and markup is an argument, shown
	// as written: never a format, never translated.
	reason := "storing %s 100% <b>"
	if got, want := s.Printer("nl").T("error.app_off", reason), "Deze toepassing is uitgeschakeld: "+reason; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

var verbRE = regexp.MustCompile(`%(\[[0-9]+\])?[-+# 0]*[0-9]*[a-zA-Z%]`)

func verbs(s string) []string {
	v := verbRE.FindAllString(s, -1)
	slices.Sort(v)
	return v
}

// TestLanguageCataloguesComplete fails when a catalogue lacks a key the
// English one has, has a key English lacks, or gives a key other
// placeholders.
func TestLanguageCataloguesComplete(t *testing.T) {
	en, err := Read("en")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range Languages() {
		msgs, err := Read(code)
		if err != nil {
			t.Fatal(err)
		}
		if msgs["language.name"].Text == "" {
			t.Errorf("%s.json: language.name is empty", code)
		}
		for key, m := range en {
			got, ok := msgs[key]
			if !ok {
				t.Errorf("%s.json lacks %q", code, key)
				continue
			}
			if (m.Forms == nil) != (got.Forms == nil) {
				t.Errorf("%s.json: %q: plural forms in one catalogue and not the other", code, key)
				continue
			}
			if m.Forms == nil {
				if !slices.Equal(verbs(m.Text), verbs(got.Text)) {
					t.Errorf("%s.json: %q has placeholders %v, English %v", code, key, verbs(got.Text), verbs(m.Text))
				}
				continue
			}
			// The "other" form has every placeholder; the others may leave
			// the number out ("one", "=0") but add none.
			want := verbs(m.Forms["other"])
			if !slices.Equal(verbs(got.Forms["other"]), want) {
				t.Errorf("%s.json: %q other form has placeholders %v, English %v", code, key, verbs(got.Forms["other"]), want)
			}
			for f, text := range got.Forms {
				for _, v := range verbs(text) {
					if !slices.Contains(want, v) {
						t.Errorf("%s.json: %q form %s has placeholder %s that English lacks", code, key, f, v)
					}
				}
			}
		}
		for key := range msgs {
			if _, ok := en[key]; !ok {
				t.Errorf("%s.json has %q, which en.json lacks", code, key)
			}
		}
	}
	if _, err := New("en", nil); err != nil {
		t.Errorf("the catalogues do not build: %v", err)
	}
}

func TestLanguageDuplicateKeys(t *testing.T) {
	if k := duplicateKey([]byte(`{"a": "x", "b": {"one": "y", "other": "z"}, "a": "w"}`)); k != "a" {
		t.Errorf("duplicateKey = %q, want a", k)
	}
	if k := duplicateKey([]byte(`{"a": "x", "b": {"a": "y", "other": "z"}}`)); k != "" {
		t.Errorf("duplicateKey = %q for keys in a plural object", k)
	}
}
