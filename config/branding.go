package config

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluis-gateway/sluis/locale"
)

// Branding is the organisation's face on the login page, the launcher and
// the error pages. Every field is optional; the zero value shows "sluis"
// in the gateway's own colour, with no help desk.
type Branding struct {
	// Title is the organisation's name ("Gemeente Voorbeeld"), at most
	// 80 characters.
	Title string `yaml:"title"`
	// LogoFile is a PNG, JPEG or SVG file (by its content, not its name)
	// of at most 256 KiB, read once at start and served by the gateway at
	// LogoPath on the portal host. Relative paths are taken from the
	// configuration file's folder.
	LogoFile string `yaml:"logo_file"`
	// Colour is the accent, #rrggbb: buttons (with white text) and the
	// header rule. It must have a contrast of at least 4.5:1 with white
	// (WCAG 2.1 AA for text on it). Empty means the gateway's own green.
	Colour string `yaml:"colour"`
	// Help is the help desk, shown on every page and error page.
	Help Help `yaml:"help"`

	logo *Image
}

// Help is how users reach the help desk. Every field is optional.
type Help struct {
	Text  string `yaml:"text"`  // a sentence, such as "Servicedesk ICT, weekdays 8-17"
	Phone string `yaml:"phone"` // digits, spaces, + - ( )
	Email string `yaml:"email"` // a plain address
	URL   string `yaml:"url"`   // https:// or http:// address of help pages
}

// Image is a picture read at start: the logo or an app's icon.
type Image struct {
	Data []byte
	Type string // image/png, image/jpeg or image/svg+xml
}

// Limits of the organisation's face.
const (
	maxLogoBytes  = 256 << 10
	maxIconBytes  = 64 << 10
	maxTitleRunes = 80
	maxDescRunes  = 300
	// minContrast is WCAG 2.1 AA's contrast for normal text, here white
	// text on the accent colour.
	minContrast = 4.5
)

// Logo returns the logo read at start; nil when there is none.
func (b *Branding) Logo() *Image { return b.logo }

// Icon returns the app's icon read at start; nil when there is none.
func (a *App) Icon() *Image { return a.icon }

var (
	colourRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	phoneRE  = regexp.MustCompile(`^\+?[0-9 ()-]{3,30}$`)
)

// checkFace checks language, branding and the apps' titles, descriptions
// and icons, and reads the logo and icons.
func (p *parser) checkFace(c *Config, base string) {
	if c.Language != "" && !locale.Known(c.Language) {
		p.problem("language", "%q has no catalogue; one of: %s", c.Language, strings.Join(locale.Languages(), ", "))
	}
	b := &c.Branding
	p.checkText("branding.title", b.Title, maxTitleRunes)
	if b.Colour != "" {
		if !colourRE.MatchString(b.Colour) {
			p.problem("branding.colour", "%q is not a colour #rrggbb", b.Colour)
		} else if cr := Contrast(b.Colour, "#ffffff"); cr < minContrast {
			p.problem("branding.colour", "%s has a contrast of %.2f:1 with white text on buttons; at least %.1f:1 is needed (WCAG 2.1 AA): take a darker shade", b.Colour, cr, minContrast)
		}
	}
	if b.LogoFile != "" {
		b.logo = p.readImage("branding.logo_file", resolve(base, b.LogoFile), maxLogoBytes)
	}
	h := b.Help
	p.checkText("branding.help.text", h.Text, maxDescRunes)
	if h.Phone != "" && !phoneRE.MatchString(h.Phone) {
		p.problem("branding.help.phone", "%q: digits, spaces, + - ( ) only", h.Phone)
	}
	if h.Email != "" {
		if a, err := mail.ParseAddress(h.Email); err != nil || a.Address != h.Email {
			p.problem("branding.help.email", "%q is not a plain address such as servicedesk@example.org", h.Email)
		}
	}
	if h.URL != "" {
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			p.problem("branding.help.url", "%q is not an https:// address", h.URL)
		}
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		at := fmt.Sprintf("apps[%d]", i)
		p.checkText(at+".title", a.Title, maxTitleRunes)
		p.checkText(at+".description", a.Description, maxDescRunes)
		if a.IconFile != "" {
			a.icon = p.readImage(at+".icon_file", resolve(base, a.IconFile), maxIconBytes)
		}
	}
}

func resolve(base, file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(base, file)
}

// checkText refuses text that is too long or has control characters (it
// is shown as written, on pages and in help-desk links).
func (p *parser) checkText(key, s string, maxRunes int) {
	switch {
	case !utf8.ValidString(s):
		p.problem(key, "not valid UTF-8")
	case utf8.RuneCountInString(s) > maxRunes:
		p.problem(key, "longer than %d characters", maxRunes)
	case strings.ContainsFunc(s, unicode.IsControl):
		p.problem(key, "has control characters")
	}
}

// readImage reads a PNG, JPEG or SVG file of at most limit bytes, its type
// taken from its content.
func (p *parser) readImage(key, file string, limit int) *Image {
	f, err := os.Open(file)
	if err != nil {
		p.problem(key, "%v", err)
		return nil
	}
	defer f.Close()
	data, err := readAtMost(f, limit)
	if err != nil {
		p.problem(key, "%s: %v", file, err)
		return nil
	}
	typ := ImageType(data)
	if typ == "" {
		p.problem(key, "%s is not a PNG, JPEG or SVG image", file)
		return nil
	}
	return &Image{Data: data, Type: typ}
}

func readAtMost(f *os.File, limit int) ([]byte, error) {
	buf := make([]byte, limit+1)
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	if n > limit {
		return nil, fmt.Errorf("larger than %d KiB", limit>>10)
	}
	return buf[:n], nil
}

// ImageType returns the type of a PNG, JPEG or SVG image by its content,
// or "" for anything else.
func ImageType(data []byte) string {
	switch t := http.DetectContentType(data); t {
	case "image/png", "image/jpeg":
		return t
	}
	head := bytes.TrimSpace(data[:min(len(data), 1024)])
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if bytes.HasPrefix(head, []byte("<svg")) || (bytes.HasPrefix(head, []byte("<?xml")) && bytes.Contains(head, []byte("<svg"))) {
		return "image/svg+xml"
	}
	return ""
}

// Contrast returns the WCAG 2.1 contrast ratio of two colours #rrggbb,
// from 1 (none) to 21 (black on white); 0 if one is not such a colour.
func Contrast(a, b string) float64 {
	la, oka := luminance(a)
	lb, okb := luminance(b)
	if !oka || !okb {
		return 0
	}
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(c string) (float64, bool) {
	if !colourRE.MatchString(c) {
		return 0, false
	}
	ch := func(s string) float64 {
		v, _ := strconv.ParseUint(s, 16, 8)
		x := float64(v) / 255
		if x <= 0.04045 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c[1:3]) + 0.7152*ch(c[3:5]) + 0.0722*ch(c[5:7]), true
}
