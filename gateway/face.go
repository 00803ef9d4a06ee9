package gateway

import (
	"net"
	"strconv"

	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/errpage"
	"github.com/sluis-gateway/sluis/locale"
	"github.com/sluis-gateway/sluis/portal"
)

// pageFace builds the languages and the organisation's face of every page
// from the configuration: language, time_zone and branding.
func pageFace(c *config.Config, portalURL string) (*errpage.Face, error) {
	set, err := locale.New(c.Language, c.Zone())
	if err != nil {
		return nil, err
	}
	b := c.Branding
	return &errpage.Face{Locale: set, Portal: portalURL, Brand: errpage.Brand{Title: b.Title, Logo: b.Logo() != nil,
		Help: errpage.Help{Text: b.Help.Text, Phone: b.Help.Phone, Email: b.Help.Email, URL: b.Help.URL}}}, nil
}

// portalFace is the portal's share of it: the colour, the logo and the
// apps' titles, descriptions and icons.
func portalFace(c *config.Config, brand errpage.Brand, port int) portal.Face {
	f := portal.Face{Brand: brand, Accent: c.Branding.Colour, Apps: map[string]portal.AppFace{}}
	if c.ConnectVia != "" {
		f.ConnectArgs = append(f.ConnectArgs, "--connect", net.JoinHostPort(c.ConnectVia, strconv.Itoa(port)))
	}
	if c.ConnectCA != "" {
		f.ConnectArgs = append(f.ConnectArgs, "--ca", c.ConnectCA)
	}
	if l := c.Branding.Logo(); l != nil {
		f.Logo = &portal.Image{Data: l.Data, Type: l.Type}
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		af := portal.AppFace{Title: a.Title, Description: a.Description}
		if ic := a.Icon(); ic != nil {
			af.Icon = &portal.Image{Data: ic.Data, Type: ic.Type}
		}
		f.Apps[a.Name] = af
	}
	return f
}
