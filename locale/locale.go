// Package locale chooses the language a person reads the gateway's pages in
// and holds the message catalogues those pages' words come from.
//
// The catalogues are JSON files compiled into the binary, one per language
// (catalogues/en.json, catalogues/nl.json): adding a language is adding a
// file. English is the reference: every other catalogue must have each of
// its keys, with the same placeholders (a test checks both). A value is a
// string, a fmt format whose arguments the caller gives, or, for words
// that depend on a number, an object of CLDR plural forms ("one",
// "other", ...), chosen by the first argument.
//
// A request's language is, in order: the sluis_lang cookie when it names
// a known language, the best match of Accept-Language
// (golang.org/x/text/language), the configured default. Operators' own
// texts (an emergency reason, an app's description) are never looked up:
// callers pass them as arguments, shown as written.
package locale

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

//go:embed catalogues/*.json
var catalogueFS embed.FS

// Cookie is the name of the cookie that keeps a person's choice of
// language. It holds a language code of a catalogue, nothing else.
const Cookie = "sluis_lang"

// cookieAge is how long a choice of language is remembered.
const cookieAge = 365 * 24 * time.Hour

// maxAcceptLanguage bounds the Accept-Language header parsed: a real
// browser's is well under 200 bytes.
const maxAcceptLanguage = 512

// Set is the gateway's languages, built once at start; safe for concurrent
// use.
type Set struct {
	def     language.Tag
	tags    []language.Tag // def first, then the others by code
	codes   []string       // tags' base codes, same order
	matcher language.Matcher
	cat     catalog.Catalog
	zone    *time.Location
	names   map[string]string // code -> the language's name in itself
}

// Languages returns the codes of the compiled-in catalogues ("en", "nl"),
// sorted.
func Languages() []string {
	ents, _ := fs.ReadDir(catalogueFS, "catalogues")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(out)
	return out
}

// Known reports whether code is the code of a compiled-in catalogue.
func Known(code string) bool { return slices.Contains(Languages(), code) }

// New builds the languages with def (a catalogue's code; "" means "en") as
// the default and zone as the time zone dates are shown in (nil means
// UTC). It fails on an unknown default or a broken catalogue (a broken
// build).
func New(def string, zone *time.Location) (*Set, error) {
	if def == "" {
		def = "en"
	}
	if !Known(def) {
		return nil, fmt.Errorf("locale: no catalogue for language %q (there are: %s)", def, strings.Join(Languages(), ", "))
	}
	if zone == nil {
		zone = time.UTC
	}
	s := &Set{zone: zone, names: map[string]string{}}
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	codes := Languages()
	slices.SortStableFunc(codes, func(a, b string) int {
		// The default first: the matcher answers with it when nothing
		// matches.
		switch {
		case a == def:
			return -1
		case b == def:
			return 1
		}
		return 0
	})
	for _, code := range codes {
		tag := language.MustParse(code)
		msgs, err := Read(code)
		if err != nil {
			return nil, err
		}
		for key, m := range msgs {
			if err := b.Set(tag, key, m.catalogMessage()); err != nil {
				return nil, fmt.Errorf("locale: %s: %s: %w", code, key, err)
			}
		}
		s.tags = append(s.tags, tag)
		s.codes = append(s.codes, code)
		s.names[code] = msgs["language.name"].Text
	}
	s.def = s.tags[0]
	s.matcher = language.NewMatcher(s.tags)
	s.cat = b
	return s, nil
}

// Message is one entry of a catalogue: Text, or plural Forms.
type Message struct {
	Text  string
	Forms map[string]string // CLDR plural category ("one", "other", ...) -> text
}

// UnmarshalJSON takes a string or an object of plural forms.
func (m *Message) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m.Forms); err != nil {
			return err
		}
		for k := range m.Forms {
			if _, ok := pluralForms[k]; !ok && !exactForm.MatchString(k) {
				return fmt.Errorf("%q is not a plural form (zero, one, two, few, many, other, or =N for exactly N)", k)
			}
		}
		if _, ok := m.Forms["other"]; !ok {
			return fmt.Errorf("plural forms without \"other\"")
		}
		return nil
	}
	return json.Unmarshal(b, &m.Text)
}

var pluralForms = map[string]plural.Form{
	"zero": plural.Zero, "one": plural.One, "two": plural.Two, "few": plural.Few, "many": plural.Many, "other": plural.Other,
}

// exactForm is a plural case for exactly one number, "=0".
var exactForm = regexp.MustCompile(`^=[0-9]{1,6}$`)

// formOrder is the order cases are given to plural.Selectf; "other" must
// be last.
var formOrder = []string{"zero", "one", "two", "few", "many", "other"}

func (m Message) catalogMessage() catalog.Message {
	if m.Forms == nil {
		return catalog.String(m.Text)
	}
	var cases []any
	// Exact numbers ("=0") are tried before the language's categories.
	for _, f := range slices.Sorted(maps.Keys(m.Forms)) {
		if exactForm.MatchString(f) {
			cases = append(cases, f, m.Forms[f])
		}
	}
	for _, f := range formOrder {
		if t, ok := m.Forms[f]; ok {
			cases = append(cases, pluralForms[f], t)
		}
	}
	return plural.Selectf(1, "%d", cases...)
}

// Read returns the compiled-in catalogue of code.
func Read(code string) (map[string]Message, error) {
	data, err := catalogueFS.ReadFile(path.Join("catalogues", code+".json"))
	if err != nil {
		return nil, fmt.Errorf("locale: no catalogue %q", code)
	}
	var msgs map[string]Message
	if err := json.Unmarshal(data, &msgs); err != nil {
		return nil, fmt.Errorf("locale: catalogue %s.json: %w", code, err)
	}
	if dup := duplicateKey(data); dup != "" {
		// encoding/json keeps the last of two: a translation would
		// silently vanish.
		return nil, fmt.Errorf("locale: catalogue %s.json has %q twice", code, dup)
	}
	return msgs, nil
}

// duplicateKey returns a top-level key that data (a valid JSON object)
// has twice, or "".
func duplicateKey(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	seen := map[string]bool{}
	if _, err := dec.Token(); err != nil { // {
		return ""
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := t.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// Default returns the default language's code.
func (s *Set) Default() string { return s.codes[0] }

// Choose returns the code of the language r is answered in: the cookie's
// when it names a known language, else Accept-Language's best match, else
// the default.
func (s *Set) Choose(r *http.Request) string {
	if r == nil {
		return s.codes[0]
	}
	if c, err := r.Cookie(Cookie); err == nil && slices.Contains(s.codes, c.Value) {
		return c.Value
	}
	al := r.Header.Get("Accept-Language")
	if al == "" || len(al) > maxAcceptLanguage {
		return s.codes[0]
	}
	tags, _, err := language.ParseAcceptLanguage(al)
	if err != nil || len(tags) == 0 {
		return s.codes[0]
	}
	_, i, conf := s.matcher.Match(tags...)
	if conf == language.No {
		return s.codes[0]
	}
	return s.codes[i]
}

// For returns the printer of r's language.
func (s *Set) For(r *http.Request) *Printer { return s.Printer(s.Choose(r)) }

// Printer returns the printer of the language code; an unknown code gets
// the default's.
func (s *Set) Printer(code string) *Printer {
	i := slices.Index(s.codes, code)
	if i < 0 {
		i = 0
	}
	return &Printer{Lang: s.codes[i], set: s, p: message.NewPrinter(s.tags[i], message.Catalog(s.cat))}
}

// SetCookie remembers code as w's client's language for a year. It does
// nothing for an unknown code: the cookie only ever holds a known one.
func (s *Set) SetCookie(w http.ResponseWriter, code string) {
	if !slices.Contains(s.codes, code) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: Cookie, Value: code, Path: "/", MaxAge: int(cookieAge / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// Choice is a language a page offers to switch to.
type Choice struct {
	Code    string // "nl"
	Name    string // the language's name in itself, "Nederlands"
	Current bool   // the page is in this language
}

// Printer formats the words of one language. The zero value is not
// usable; get one from a Set.
type Printer struct {
	Lang string // the language's code, for <html lang>
	set  *Set
	p    *message.Printer
}

// T returns the text of key with args formatted into it (fmt verbs). An
// operator's text is passed as an argument, never as key.
func (p *Printer) T(key string, args ...any) string { return p.p.Sprintf(key, args...) }

// Choices returns the languages to switch to, this one marked.
func (p *Printer) Choices() []Choice {
	out := make([]Choice, 0, len(p.set.codes))
	codes := slices.Clone(p.set.codes)
	slices.Sort(codes)
	for _, c := range codes {
		out = append(out, Choice{Code: c, Name: p.set.names[c], Current: c == p.Lang})
	}
	return out
}

// Date returns t as a date and time of day in the configured time zone,
// in this language's words ("29 November 2026, 19:49").
func (p *Printer) Date(t time.Time) string {
	t = t.In(p.set.zone)
	return p.T("date.format", t.Day(), p.T(fmt.Sprintf("month.%d", int(t.Month()))), strconv.Itoa(t.Year()), t.Format("15:04"))
}

// Minutes returns d rounded up to whole minutes, at least one: "try again
// in N minutes" never says zero.
func Minutes(d time.Duration) int {
	m := int((d + time.Minute - 1) / time.Minute)
	return max(m, 1)
}
