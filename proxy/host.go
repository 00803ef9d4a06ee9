package proxy

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// Host names and absolute URLs between the public face and the upstream.
//
// The upstream is asked for by its own address, unless the app sets
// PreserveHost (then by the public host, with the port when it is not
// 443). X-Forwarded-Host always carries the public host with its port.
// Without PreserveHost, what the upstream says about its own address is
// translated back: absolute Location, Content-Location and Refresh URLs
// that point at the upstream become the app's public URL, and a Set-Cookie
// Domain naming the upstream's host is dropped (the cookie is then the
// public host's). What the client writes with the public origin is
// translated to the upstream's: WebDAV's Destination, and Origin and
// Referer when they name the app's own public origin, so that an app that
// checks them against the Host it is asked by (Jupyter, Tornado's and
// gorilla/websocket's WebSocket handshakes, Django's CSRF check) sees its
// own pages' requests as same-origin. Another site's Origin or Referer is
// left as it is, so the app still sees it as foreign.

// addresses are the two sides' origins, as scheme://host[:port].
type addresses struct {
	public, upstream *url.URL
	// publicOrigin is the public origin as a browser serializes it in
	// Origin and Referer (scheme and host in lower case, no default
	// port), upstreamOrigin the upstream's as its URL is written.
	publicOrigin, upstreamOrigin string
}

func newAddresses(publicURL, upstream string) (addresses, error) {
	pub, err := url.Parse(publicURL)
	if err != nil {
		return addresses{}, err
	}
	up, err := url.Parse(upstream)
	if err != nil {
		return addresses{}, err
	}
	a := addresses{public: &url.URL{Scheme: pub.Scheme, Host: pub.Host}, upstream: &url.URL{Scheme: up.Scheme, Host: up.Host}}
	a.publicOrigin = strings.ToLower(pub.Scheme + "://" + pub.Host)
	if d := map[string]string{"http": ":80", "https": ":443"}[strings.ToLower(pub.Scheme)]; d != "" {
		a.publicOrigin = strings.TrimSuffix(a.publicOrigin, d)
	}
	a.upstreamOrigin = a.upstream.String()
	return a, nil
}

// rewriteHost sets the request's Host and X-Forwarded-Host, and translates
// its Destination, Origin and Referer.
func (p *Proxy) rewriteHost(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	h.Set("X-Forwarded-Host", p.addr.public.Host)
	if p.app.PreserveHost {
		pr.Out.Host = p.addr.public.Host
		return
	}
	if d := h.Get("Destination"); d != "" {
		if rest, ok := cutOrigin(d, p.addr.public); ok {
			h.Set("Destination", p.addr.upstream.String()+rest)
		}
	}
	// A browser writes Origin and Referer in one form (see publicOrigin):
	// they are compared byte for byte, and a value in any other form is
	// left as it is. The values are the outgoing request's own copies
	// (ProxyRequest.Out is a clone of In), changed in place.
	if o := h["Origin"]; len(o) == 1 && o[0] == p.addr.publicOrigin {
		o[0] = p.addr.upstreamOrigin
	}
	if r := h["Referer"]; len(r) == 1 {
		if rest, ok := strings.CutPrefix(r[0], p.addr.publicOrigin); ok && strings.HasPrefix(rest, "/") {
			r[0] = p.addr.upstreamOrigin + rest
		}
	}
}

// rewriteResponse translates the upstream's own address in the response
// to the public one.
func (p *Proxy) rewriteResponse(resp *http.Response) {
	if p.app.PreserveHost {
		return
	}
	h := resp.Header
	for _, name := range []string{"Location", "Content-Location"} {
		if v := h.Get(name); v != "" {
			if rest, ok := cutOrigin(v, p.addr.upstream); ok {
				h.Set(name, p.addr.public.String()+rest)
			}
		}
	}
	if v := h.Get("Refresh"); v != "" {
		// "5; url=http://upstream/next"
		if i := strings.Index(strings.ToLower(v), "url="); i >= 0 {
			if rest, ok := cutOrigin(strings.Trim(v[i+4:], `'" `), p.addr.upstream); ok {
				h.Set("Refresh", v[:i+4]+p.addr.public.String()+rest)
			}
		}
	}
	if sc := h["Set-Cookie"]; len(sc) > 0 {
		host := p.addr.upstream.Hostname()
		for i, c := range sc {
			sc[i] = dropDomain(c, host)
		}
	}
}

// cutOrigin returns the rest of an absolute URL (path, query, fragment)
// when its scheme and host are origin's (the host in any case, a default
// port written or not); false otherwise, and for relative URLs.
func cutOrigin(raw string, origin *url.URL) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.User != nil || !strings.EqualFold(u.Scheme, origin.Scheme) {
		return "", false
	}
	if !strings.EqualFold(hostPort(u), hostPort(origin)) {
		return "", false
	}
	rest := u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		rest += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		rest += "#" + u.EscapedFragment()
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

// hostPort is u's host with its port, the scheme's default filled in.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return u.Hostname() + ":" + port
}

// dropDomain removes a Domain attribute that names host (or a domain of
// which host is part) from a Set-Cookie value; other cookies are left.
func dropDomain(cookie, host string) string {
	parts := strings.Split(cookie, ";")
	out := parts[:1]
	for _, a := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
		if strings.EqualFold(k, "domain") {
			d := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(v), "."))
			if h := strings.ToLower(host); h == d || strings.HasSuffix(h, "."+d) {
				continue
			}
		}
		out = append(out, a)
	}
	return strings.Join(out, ";")
}
