package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngHeader is enough of a PNG for content sniffing.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00")

func TestBrandingConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("logo.png", pngHeader)
	write("logo.svg", []byte(`<?xml version="1.0"?>`+"\n"+`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`))
	write("logo.txt", []byte("not an image at all"))
	write("huge.png", append(append([]byte{}, pngHeader...), bytes.Repeat([]byte{0}, 300<<10)...))
	face := `branding:
  title: Gemeente Voorbeeld
  colour: "%COLOUR%"
  logo_file: %LOGO%
  help:
    text: Servicedesk ICT, weekdays 8-17
    phone: "+31 20 123 4567"
    email: servicedesk@voorbeeld.nl
    url: https://help.voorbeeld.nl/
language: %LANG%
`
	tests := []struct {
		name, colour, logo, lang string
		want                     string // a word of the problem; "" means valid
		wantType                 string
	}{
		{"PNG logo, dark green, Dutch", "#0b6e4f", "logo.png", "nl", "", "image/png"},
		{"SVG logo", "#1d3a8a", "logo.svg", "en", "", "image/svg+xml"},
		{"pale colour refused with its contrast", "#7fd1ae", "logo.png", "en", "branding.colour: #7fd1ae has a contrast of 1.", ""},
		{"not a colour", "green", "logo.png", "en", "is not a colour #rrggbb", ""},
		{"not an image", "#0b6e4f", "logo.txt", "en", "is not a PNG, JPEG or SVG image", ""},
		{"too large", "#0b6e4f", "huge.png", "en", "larger than 256 KiB", ""},
		{"missing logo", "#0b6e4f", "gone.png", "en", "branding.logo_file", ""},
		{"unknown language", "#0b6e4f", "logo.png", "de", `language: "de" has no catalogue; one of: en, nl`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.NewReplacer("%COLOUR%", tt.colour, "%LOGO%", tt.logo, "%LANG%", tt.lang).Replace(face)
			c, err := Parse(filepath.Join(dir, "sluis.yaml"), []byte(minimal+y))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want one saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l := c.Branding.Logo(); l == nil || l.Type != tt.wantType {
				t.Fatalf("logo = %+v, want type %s", l, tt.wantType)
			}
			if c.Branding.Help.Phone != "+31 20 123 4567" || c.Language != tt.lang {
				t.Fatalf("branding: %+v", c.Branding)
			}
		})
	}
}

func TestBrandingContrast(t *testing.T) {
	tests := []struct {
		a, b     string
		min, max float64
	}{
		{"#000000", "#ffffff", 20.99, 21.01},
		{"#ffffff", "#ffffff", 1, 1},
		{"#0b6e4f", "#ffffff", 6.0, 6.3},
		{"#767676", "#ffffff", 4.5, 4.6}, // the lightest grey that passes AA
		{"#777777", "#ffffff", 4.4, 4.5},
		{"#zzzzzz", "#ffffff", 0, 0},
	}
	for _, tt := range tests {
		if c := Contrast(tt.a, tt.b); c < tt.min || c > tt.max {
			t.Errorf("Contrast(%s, %s) = %.3f, want %.2f..%.2f", tt.a, tt.b, c, tt.min, tt.max)
		}
	}
}

func TestBrandingAppFace(t *testing.T) {
	y := strings.Replace(minimal, "    host: wiki.corp.test\n", "    host: wiki.corp.test\n    title: Kennisbank\n    description: Handleidingen en werkinstructies\n", 1)
	c, err := Parse("/etc/sluis/sluis.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Apps[0]; a.Title != "Kennisbank" || a.Description != "Handleidingen en werkinstructies" || a.Icon() != nil {
		t.Fatalf("app: %+v", a)
	}
	_, err = Parse("/etc/sluis/sluis.yaml", []byte(strings.Replace(y, "title: Kennisbank", "title: "+strings.Repeat("x", 81), 1)))
	if err == nil || !strings.Contains(err.Error(), "apps[0].title: longer than 80 characters") {
		t.Fatalf("err = %v", err)
	}
}
