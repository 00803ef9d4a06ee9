// Package errpage writes the gateway's own error pages. Their words depend
// only on the status, the kind of refusal and the operator's configured
// text, never on the request (beyond the language it asks for), so an
// error page cannot reflect an attacker's input or leak internals. Each
// carries an error ID that is also logged with the detail, to link a
// user's report to the log line.
//
// A page is in the user's language (package locale), with the
// organisation's name, logo and help desk (Face), says what happened in
// plain words and what to do next. It is styled by the portal's
// stylesheet, loaded from the portal host: no inline script or style.
package errpage

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis/locale"
)

//go:embed templates/page.html
var templateFS embed.FS

var page = template.Must(template.ParseFS(templateFS, "templates/page.html"))

// StoreUnreachable is the notice of a 503 answered because the gateway
// cannot reach its store (database): nothing that needs it can be done. A
// Refusal with this Notice gets the words of KindStore in the user's
// language.
const StoreUnreachable = "The gateway cannot reach its database right now, so it cannot do this. Try again in a minute; if it goes on, give your help desk the error ID below."

// Kinds of refusal that have words of their own (Refusal.Kind). The empty
// kind gets the status's words.
const (
	KindBlocked   = "blocked"   // the source address is blocked
	KindNetwork   = "network"   // policy: only from the organisation's networks
	KindHours     = "hours"     // policy: outside the hours; Detail is the hours
	KindAppOff    = "app_off"   // the app is switched off; Detail is the operator's reason
	KindClosed    = "closed"    // emergency level closed; Detail is the operator's reason
	KindEssential = "essential" // emergency level essential
	KindLockdown  = "lockdown"  // emergency level lockdown
	KindFrozen    = "frozen"    // enrolment frozen at level strict
	KindStore     = "store"     // the store cannot be reached
	KindThrottle  = "throttle"  // the shared throttles cannot be used
	KindStorage   = "storage"   // storage cannot be written
)

// Brand is the organisation's face on every page (shared with the portal).
// The zero value shows "sluis" and no help desk.
type Brand struct {
	Title string // the organisation's name; "" means "sluis"
	Logo  bool   // a logo is served at the portal's LogoPath
	Help  Help
}

// Help is how users reach the help desk; all optional, shown as written.
type Help struct {
	Text, Phone, Email, URL string
}

// LogoPath is the fixed path of the organisation's logo on the portal host.
const LogoPath = "/assets/logo"

// Face is what an error page shows besides the error: the languages, the
// brand, and the portal's public URL, from which the page loads its
// stylesheet and logo and to which its links lead.
type Face struct {
	Locale *locale.Set
	Brand  Brand
	Portal string // https://portal[:port], no trailing slash

	mu    sync.Mutex
	pages map[pageKey][]byte // rendered pages, see page
}

type faceKey struct{}

// WithFace returns next with f as the face of every error page written
// for its requests.
func WithFace(f *Face, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), faceKey{}, f)))
	})
}

// FaceOf returns the face of r's error pages: the one WithFace set, or an
// unbranded one in English.
func FaceOf(r *http.Request) *Face {
	if r != nil {
		if f, ok := r.Context().Value(faceKey{}).(*Face); ok && f != nil {
			return f
		}
	}
	return plainFace()
}

var plainFace = sync.OnceValue(func() *Face {
	s, err := locale.New("en", nil)
	if err != nil {
		panic(err) // a broken build: the catalogues are compiled in
	}
	return &Face{Locale: s}
})

// NewID returns a random error ID.
func NewID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Page is one error page.
type Page struct {
	Status int
	ID     string
	// Kind picks words of their own (see the Kind constants); "" the
	// status's.
	Kind string
	// Detail is the operator's words or the rule's hours that Kind's
	// words include, shown as written.
	Detail string
	// Notice, with no Kind, replaces the status's words with the
	// operator's own, shown as written.
	Notice string
	// RetryAfter, if positive, is how long until trying again helps (a
	// 429): the page says so in whole minutes.
	RetryAfter time.Duration
}

// Write writes the page for status with the given error ID.
func Write(w http.ResponseWriter, r *http.Request, status int, id string) {
	WritePage(w, r, Page{Status: status, ID: id})
}

// WriteNotice is Write with the operator's own words (for example why an
// app is switched off) in place of the standard text. The notice comes from
// the operator, never from the request, and is escaped.
func WriteNotice(w http.ResponseWriter, r *http.Request, status int, id, notice string) {
	WritePage(w, r, Page{Status: status, ID: id, Notice: notice})
}

// warningKinds are shown as a warning: emergency measures an operator
// took, not a mistake of the user.
var warningKinds = map[string]bool{KindAppOff: true, KindClosed: true, KindEssential: true, KindLockdown: true, KindFrozen: true}

type link struct{ Text, URL string }

type helpData struct {
	Any                              bool
	Label, Text, Phone, Email, URL   string
	PhoneLabel, EmailLabel, WebLabel string
	Tel, Mailto                      template.URL
}

type pageData struct {
	Lang, Title, Org, What, ErrorID  string
	Assets, Logo, LogoAlt, LangLabel string
	NextTitle, WarningLabel          string
	Warning                          bool
	Status                           int
	Next                             []link
	Langs                            []locale.Choice
	Help                             helpData
}

// WritePage writes pg in r's language with r's face. Headers that make the
// page inert are set here too, so every error page is safe whichever
// handler wrote it.
func WritePage(w http.ResponseWriter, r *http.Request, pg Page) {
	f := FaceOf(r)
	lang := f.Locale.Choose(r)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// The stylesheet and logo come from the portal host, nothing else
	// from anywhere: no script, no inline style.
	src := "'none'"
	if f.Portal != "" {
		src = f.Portal
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+src+"; img-src "+src+"; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Del("Content-Length")
	w.WriteHeader(pg.Status)
	w.Write(f.page(lang, pg))
}

// idMark stands for the error ID in a cached page.
const idMark = "@@sluis-error-id@@"

// maxCachedPages bounds a face's cache of rendered pages: languages
// times statuses and kinds, and the operators' few reasons.
const maxCachedPages = 256

// page returns pg's page in the language lang. Pages are rendered once per
// language and refusal (with a mark for the ID) and then copied: a
// blocked source's flood of requests costs a copy each, not a template.
func (f *Face) page(lang string, pg Page) []byte {
	id := template.HTMLEscapeString(pg.ID)
	if pg.RetryAfter > 0 {
		pg.RetryAfter = time.Duration(locale.Minutes(pg.RetryAfter)) * time.Minute
	}
	pg.ID = ""
	key := pageKey{lang, pg}
	f.mu.Lock()
	body, ok := f.pages[key]
	f.mu.Unlock()
	if !ok {
		body = f.render(f.Locale.Printer(lang), pg)
		f.mu.Lock()
		if f.pages == nil {
			f.pages = map[pageKey][]byte{}
		}
		if len(f.pages) < maxCachedPages {
			f.pages[key] = body
		}
		f.mu.Unlock()
	}
	return bytes.ReplaceAll(body, []byte(idMark), []byte(id))
}

type pageKey struct {
	lang string
	pg   Page
}

// render renders pg (its ID idMark) in l's language.
func (f *Face) render(l *locale.Printer, pg Page) []byte {
	d := pageData{Status: pg.Status, Lang: l.Lang, Org: f.Brand.Title, Assets: f.Portal, LangLabel: l.T("language.switch"),
		NextTitle: l.T("next.title"), WarningLabel: l.T("error.emergency"), ErrorID: l.T("layout.error_id", idMark)}
	if d.Org == "" {
		d.Org = "sluis"
	}
	if f.Brand.Logo && f.Portal != "" {
		d.Logo, d.LogoAlt = f.Portal+LogoPath, l.T("layout.logo_alt", d.Org)
	}
	if f.Portal != "" {
		d.Langs = l.Choices()
	}
	st := strconv.Itoa(pg.Status)
	// A key the catalogue lacks comes back as itself: a status without
	// words of its own gets the general ones.
	if l.T("error."+st+".title") == "error."+st+".title" {
		d.Title, d.What = l.T("error.other.title", pg.Status), l.T("error.other.what")
	} else {
		d.Title, d.What = l.T("error."+st+".title"), l.T("error."+st+".what")
	}
	kind := pg.Kind
	if kind == "" && pg.Notice == StoreUnreachable {
		kind = KindStore
	}
	switch kind {
	default: // none, or one this build has no words for
		if pg.Notice != "" {
			d.What = pg.Notice
		}
	case KindBlocked, KindNetwork, KindStore, KindThrottle, KindStorage:
		d.What = l.T("error." + kind)
	case KindHours:
		d.What = l.T("error.denied_hours", pg.Detail)
	case KindAppOff, KindFrozen:
		d.What = l.T("error."+kind, pg.Detail)
	case KindClosed, KindEssential, KindLockdown:
		d.What = l.T("level."+kind, pg.Detail)
	}
	d.Warning = warningKinds[kind]
	d.Next = next(l, f, pg)
	d.Help = help(l, f.Brand.Help)
	var buf bytes.Buffer
	if err := page.Execute(&buf, d); err != nil {
		// Only a broken build gets here; the page still says something.
		buf.Reset()
		buf.WriteString("<!doctype html><title>Error</title><p>" + template.HTMLEscapeString(d.ErrorID) + "</p>")
	}
	return buf.Bytes()
}

// next returns what the user can do: links back, when to try again.
func next(l *locale.Printer, f *Face, pg Page) []link {
	var out []link
	launcher := link{l.T("next.launcher"), "/"}
	loginLink := link{l.T("next.login"), "/login"}
	if f.Portal != "" {
		launcher.URL, loginLink.URL = f.Portal+"/", f.Portal+"/login"
	}
	switch {
	case pg.Status == http.StatusTooManyRequests && pg.RetryAfter > 0:
		out = append(out, link{Text: l.T("next.wait_minutes", locale.Minutes(pg.RetryAfter))})
	case pg.Status == http.StatusTooManyRequests || pg.Status >= 500 || pg.Kind == KindAppOff:
		out = append(out, link{Text: l.T("next.later")})
	case pg.Status == http.StatusNotFound || pg.Status == http.StatusMisdirectedRequest:
		out = append(out, link{Text: l.T("next.check_address")})
	case pg.Status == http.StatusRequestHeaderFieldsTooLarge:
		out = append(out, link{Text: l.T("next.cookies")})
	}
	switch {
	case pg.Status == http.StatusUnauthorized:
		out = append(out, loginLink)
	case pg.Kind == KindBlocked:
		// A blocked source can open nothing of the gateway: no link.
	default:
		out = append(out, launcher)
	}
	return append(out, link{Text: l.T("next.help")})
}

func help(l *locale.Printer, h Help) helpData {
	d := helpData{Any: h != Help{}, Label: l.T("help.title"), Text: h.Text, Phone: h.Phone, Email: h.Email, URL: h.URL,
		PhoneLabel: l.T("help.phone"), EmailLabel: l.T("help.email"), WebLabel: l.T("help.web")}
	if h.Phone != "" {
		// Only digits and + reach the tel: URL (config checks the
		// number's characters).
		d.Tel = template.URL("tel:" + strings.Map(func(c rune) rune {
			if c == '+' || (c >= '0' && c <= '9') {
				return c
			}
			return -1
		}, h.Phone))
	}
	if h.Email != "" {
		d.Mailto = template.URL("mailto:" + h.Email)
	}
	return d
}
