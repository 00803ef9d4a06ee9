package portal

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/locale"
)

// Face is the organisation's face on the portal's pages: its name, logo,
// colour and help desk, and the apps' titles, descriptions and icons. All
// of it comes from configuration, read at start, and is shown as written.
type Face struct {
	Brand errpage.Brand
	// Accent is the colour of buttons (white text on it), #rrggbb; the
	// configuration checked its contrast. "" means the portal's green.
	Accent string
	// Logo is the logo served at errpage.LogoPath; nil means none.
	Logo *Image
	// Apps are the apps' faces by app name.
	Apps map[string]AppFace
	// ConnectArgs are more arguments of the launcher's `sluis connect`
	// commands (the demo's --connect and --ca); nil means none.
	ConnectArgs []string
}

// AppFace is how the launcher shows an app.
type AppFace struct {
	Title, Description string
	Icon               *Image // served at /assets/app/NAME; nil means none
}

// Image is a picture read at start, with its type by content (image/png,
// image/jpeg or image/svg+xml).
type Image struct {
	Data []byte
	Type string
}

// imageCSP is the policy of a served logo or icon: an SVG opened on its
// own runs no script and loads nothing.
const imageCSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

// backPaths are the pages the language switch returns to; anything else
// returns to the launcher, so the switch redirects nowhere else.
var backPaths = map[string]bool{"/": true, "/login": true, "/mfa": true, "/enroll": true, "/passkeys": true, "/device": true, "/sessions": true}

func (p *Portal) initFace() error {
	if p.Locale == nil {
		s, err := locale.New("en", nil)
		if err != nil {
			return err
		}
		p.Locale = s
	}
	css := "/* the gateway's own colours */\n"
	if a := p.Face.Accent; a != "" {
		if len(a) != 7 || a[0] != '#' || strings.Trim(a[1:], "0123456789abcdefABCDEF") != "" {
			return fmt.Errorf("portal: accent %q is not #rrggbb", a)
		}
		css = ":root { --accent: " + a + "; }\n"
	}
	p.brandCSS = []byte(css)
	p.Face.Brand.Logo = p.Face.Logo != nil
	return nil
}

// faceRoutes are the routes of the language switch, the brand's colour,
// the logo and the apps' icons.
func (p *Portal) faceRoutes() []Route {
	routes := []Route{
		{"GET /language", "none", p.language},
		{"GET /assets/brand.css", "none", func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			w.Header().Set("Cache-Control", "public, max-age=3600")
			_, err := w.Write(p.brandCSS)
			return err
		}},
	}
	if p.Face.Logo != nil {
		routes = append(routes, Route{"GET " + errpage.LogoPath, "none", func(w http.ResponseWriter, r *http.Request) error {
			return serveImage(w, p.Face.Logo)
		}})
	}
	for name, f := range p.Face.Apps {
		if f.Icon != nil {
			// Icons name the apps: only for who is logged in.
			icon := f.Icon
			routes = append(routes, Route{"GET /assets/app/" + name, "session", func(w http.ResponseWriter, r *http.Request) error {
				if a := p.current(r); a == nil || a.Session.Stage != sluis.StageComplete {
					http.Redirect(w, r, "/login", http.StatusSeeOther)
					return nil
				}
				w.Header().Set("Cache-Control", "private, max-age=3600")
				return serveImage(w, icon)
			}})
		}
	}
	return routes
}

func serveImage(w http.ResponseWriter, img *Image) error {
	h := w.Header()
	h.Set("Content-Type", img.Type)
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "public, max-age=3600")
	}
	h.Set("Content-Security-Policy", imageCSP)
	_, err := w.Write(img.Data)
	return err
}

// language remembers the chosen language and returns to the page the
// switch was on (one of backPaths, with its query), or to the launcher.
func (p *Portal) language(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	p.Locale.SetCookie(w, q.Get("lang"))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, safeBack(q.Get("back")), http.StatusSeeOther)
	return nil
}

// safeBack returns back when it is one of the portal's pages (a path of
// backPaths, re-encoded query), else "/": never another host.
func safeBack(back string) string {
	u, err := url.Parse(back)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" || !backPaths[u.Path] {
		return "/"
	}
	if u.RawQuery == "" {
		return u.Path
	}
	v, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return u.Path
	}
	return u.Path + "?" + v.Encode()
}

// t returns key's words in r's language, with args (an operator's text
// among them) as written.
//
// The log reads English whatever the user's language: a refusal's words
// in another language are noted with their English (see refusalID).
func (p *Portal) t(r *http.Request, key string, args ...any) string {
	l := p.Locale.For(r)
	said := l.T(key, args...)
	if l.Lang != "en" {
		noteEnglish(r, said, p.Locale.Printer("en").T(key, args...))
	}
	return said
}

// dress gives a page its language, face and address for the switch.
func (p *Portal) dress(r *http.Request, d *pageData) {
	d.L, d.Face = p.Locale.For(r), &p.Face
	// The page's path with the login flow's checked return address and
	// state only: nothing else of the request's query is echoed (a
	// device code in a link must not be filled in anywhere).
	d.Back = "/"
	if backPaths[r.URL.Path] {
		d.Back = r.URL.Path + d.Query
	}
}

// appFace gives a launcher entry its title, description and icon.
func (p *Portal) appFace(l *appLink) {
	f := p.Face.Apps[l.Name]
	l.Title, l.Description = f.Title, f.Description
	if l.Title == "" {
		l.Title = l.Name
	}
	if f.Icon != nil {
		l.Icon = "/assets/app/" + l.Name
	}
}

// Tel is the help desk's phone number as a tel: URL: only its digits and
// "+" (config allows nothing else but spaces, dashes and brackets).
func (f *Face) Tel() template.URL {
	return template.URL("tel:" + strings.Map(func(c rune) rune {
		if c == '+' || (c >= '0' && c <= '9') {
			return c
		}
		return -1
	}, f.Brand.Help.Phone))
}

// Org is the organisation's name, "sluis" when none is configured.
func (f *Face) Org() string {
	if f == nil || f.Brand.Title == "" {
		return "sluis"
	}
	return f.Brand.Title
}

// groupsOfFour cuts s into groups of four characters (the last may be
// shorter): a secret typed by hand is read in groups.
func groupsOfFour(s string) []string {
	var out []string
	for len(s) > 4 {
		out = append(out, s[:4])
		s = s[4:]
	}
	return append(out, s)
}

// codesFile is the recovery codes as a text file to download, one a line,
// as a data: URL (made here from the codes alone, never from input).
func (p *Portal) codesFile(r *http.Request, user string, codes []string) template.URL {
	text := p.t(r, "recovery.file_head", user, p.BaseURL(p.Host)) + "\r\n\r\n" + strings.Join(codes, "\r\n") + "\r\n"
	return template.URL("data:text/plain;charset=utf-8," + url.PathEscape(text))
}

// shellQuote quotes s for a POSIX shell when it needs it: a command is
// meant to be copied as shown.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
