package selfcheck

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// checkHeaders looks at the security headers and cookies of the login
// page, and at the headers of an error page.
func (c *checker) checkHeaders(ctx context.Context) {
	h := c.landing.header
	where := "login page " + c.login

	hsts := h.Get("Strict-Transport-Security")
	switch age := maxAge(hsts); {
	case hsts == "":
		c.add("headers", "HSTS", Fail, where+": no Strict-Transport-Security header; browsers can be talked down to plain HTTP")
	case age < 180*24*3600:
		c.add("headers", "HSTS", Warn, fmt.Sprintf("%s: Strict-Transport-Security: %s (max-age under 180 days)", where, hsts))
	default:
		c.add("headers", "HSTS", Pass, "Strict-Transport-Security: "+hsts)
	}

	csp := h.Get("Content-Security-Policy")
	dirs := parseCSP(csp)
	switch weak := cspScriptWeakness(dirs); {
	case csp == "":
		c.add("headers", "Content-Security-Policy", Fail, where+": no Content-Security-Policy; an injected script would run")
	case weak != "":
		c.add("headers", "Content-Security-Policy", Warn, where+": "+weak+": "+csp)
	default:
		c.add("headers", "Content-Security-Policy", Pass, csp)
	}

	xfo := strings.ToUpper(strings.TrimSpace(h.Get("X-Frame-Options")))
	fa, hasFA := dirs["frame-ancestors"]
	switch {
	case hasFA && !slices.ContainsFunc(fa, func(v string) bool { return v == "*" || v == "https:" || v == "http:" }):
		c.add("headers", "framing refused", Pass, "CSP frame-ancestors "+strings.Join(fa, " "))
	case xfo == "DENY" || xfo == "SAMEORIGIN":
		c.add("headers", "framing refused", Pass, "X-Frame-Options: "+xfo)
	default:
		c.add("headers", "framing refused", Fail, where+": neither a CSP frame-ancestors that names who may frame it nor X-Frame-Options; the login can be framed (clickjacking)")
	}

	if v := h.Get("X-Content-Type-Options"); strings.EqualFold(v, "nosniff") {
		c.add("headers", "X-Content-Type-Options", Pass, "nosniff")
	} else {
		c.add("headers", "X-Content-Type-Options", Fail, where+": X-Content-Type-Options is "+quoteOrMissing(v))
	}

	if v := h.Get("Referrer-Policy"); v != "" && !strings.Contains(strings.ToLower(v), "unsafe-url") {
		c.add("headers", "Referrer-Policy", Pass, v)
	} else {
		c.add("headers", "Referrer-Policy", Warn, where+": Referrer-Policy is "+quoteOrMissing(v))
	}

	if cc := strings.ToLower(h.Get("Cache-Control")); strings.Contains(cc, "no-store") {
		c.add("headers", "login page not cached", Pass, "Cache-Control: "+cc)
	} else {
		c.add("headers", "login page not cached", Warn, where+": Cache-Control is "+quoteOrMissing(cc)+"; shared caches may keep it")
	}

	var weak []string
	for _, sc := range h.Values("Set-Cookie") {
		parts := strings.Split(sc, ";")
		name, _, _ := strings.Cut(parts[0], "=")
		attrs := map[string]bool{}
		for _, a := range parts[1:] {
			k, _, _ := strings.Cut(a, "=")
			attrs[strings.ToLower(strings.TrimSpace(k))] = true
		}
		var miss []string
		if !attrs["secure"] {
			miss = append(miss, "Secure")
		}
		if !attrs["httponly"] {
			miss = append(miss, "HttpOnly")
		}
		if len(miss) > 0 {
			weak = append(weak, strings.TrimSpace(name)+" without "+strings.Join(miss, " and "))
		}
	}
	switch {
	case len(h.Values("Set-Cookie")) == 0:
		c.add("headers", "cookies", Pass, "the login page sets no cookies")
	case len(weak) > 0:
		c.add("headers", "cookies", Fail, where+" sets "+strings.Join(weak, "; "))
	default:
		c.add("headers", "cookies", Pass, "every cookie is Secure and HttpOnly")
	}

	// An error page is where products forget their headers.
	u := c.unknown
	if !u.served() && u.status == 0 {
		c.add("headers", "error page headers", Warn, "GET /"+c.canary+": "+u.String())
		return
	}
	var miss []string
	if u.header.Get("Strict-Transport-Security") == "" {
		miss = append(miss, "Strict-Transport-Security")
	}
	if !strings.EqualFold(u.header.Get("X-Content-Type-Options"), "nosniff") {
		miss = append(miss, "X-Content-Type-Options")
	}
	if len(miss) > 0 {
		c.add("headers", "error page headers", Warn, fmt.Sprintf("GET /%s (%s) lacks %s", c.canary, u.reason, strings.Join(miss, ", ")))
	} else {
		c.add("headers", "error page headers", Pass, fmt.Sprintf("GET /%s: %s, with HSTS and nosniff", c.canary, u.reason))
	}
}

func maxAge(hsts string) int {
	for _, part := range strings.Split(hsts, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(k, "max-age") {
			n, _ := strconv.Atoi(strings.Trim(v, `"`))
			return n
		}
	}
	return 0
}

func quoteOrMissing(v string) string {
	if v == "" {
		return "missing"
	}
	return strconv.Quote(v)
}

// versionHeaders are response headers that name software.
var versionHeaders = []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Generator", "X-Runtime-Version", "X-Version", "Via"}

// versioned finds a version number next to a product name.
var versioned = regexp.MustCompile(`(?i)[a-z][\w.+-]*[/ ]v?\d+(\.\d+)+`)

// errorPageVersion finds a product's version on an error page.
var errorPageVersion = regexp.MustCompile(`(?i)\b(apache|nginx|microsoft-iis|iis|tomcat|jetty|php|openssl|lighttpd|openresty|envoy|caddy|traefik|haproxy|netscaler|citrix|fortios|fortigate|pan-os|ivanti|pulse secure|big-ip|werkzeug|express|kestrel|undertow|wildfly|jboss|weblogic|websphere)[/ ]v?\d+(\.\d+)+`)

// checkDisclosure looks for software versions in headers and error pages.
func (c *checker) checkDisclosure(ctx context.Context) {
	// A malformed request draws the front end's own error page.
	bad := c.get(ctx, "/%"+c.canary)
	pages := []struct {
		what string
		a    answer
	}{{"login page " + c.login, c.landing}, {"GET /" + c.canary, c.unknown}, {"GET /%" + c.canary, bad}}
	for _, name := range versionHeaders {
		var found []string
		for _, p := range pages {
			if v := p.a.header.Get(name); v != "" && versioned.MatchString(v) {
				found = append(found, fmt.Sprintf("%s: %s: %s", p.what, name, v))
			}
		}
		if len(found) > 0 {
			c.add("disclosure", name+" header", Fail, strings.Join(uniq(found), "; "))
		} else {
			v := c.landing.header.Get(name)
			ev := "absent"
			if v != "" {
				ev = fmt.Sprintf("%s: %s (no version)", name, v)
			}
			c.add("disclosure", name+" header", Pass, ev)
		}
	}
	var found []string
	for _, p := range pages {
		if m := errorPageVersion.Find(p.a.body); m != nil {
			found = append(found, fmt.Sprintf("%s: %q", p.what, m))
		}
		if m := leak(p.a.body); m != "" {
			found = append(found, fmt.Sprintf("%s: %s", p.what, m))
		}
	}
	if len(found) > 0 {
		c.add("disclosure", "pages name no versions or internals", Fail, strings.Join(found, "; "))
	} else {
		c.add("disclosure", "pages name no versions or internals", Pass, "login, not-found and bad-request pages checked")
	}
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// evil is the host the redirect checks try to send browsers to.
const evil = "evil.example"

// redirectParams are the return-URL parameters products use.
var redirectParams = []string{"rd", "next", "redirect", "redirect_uri", "redirect_url", "return", "returnTo", "return_to", "returnUrl", "url", "continue", "goto", "target", "dest", "destination", "r", "u"}

// redirectPayloads are raw query values (already escaped as sent) that
// browsers follow to evil.example, from the tricks THREATS.md lists.
func (c *checker) redirectPayloads() []string {
	host := c.base.Hostname()
	return []string{
		url.QueryEscape("https://" + evil + "/"),
		url.QueryEscape("//" + evil + "/"),
		url.QueryEscape(`/\` + evil + "/"),
		url.QueryEscape("https:" + evil),
		"/%09/" + evil,
		url.QueryEscape("https://" + host + "@" + evil + "/"),
		url.QueryEscape("https://" + host + "." + evil + "/"),
		"%0d%0aLocation:%20https://" + evil + "/",
	}
}

// checkRedirects tries to make the login and logout pages redirect to a
// foreign host.
func (c *checker) checkRedirects(ctx context.Context) {
	paths := []string{c.login}
	if c.login != "/logout" {
		paths = append(paths, "/logout")
	}
	for _, p := range paths {
		if c.skipBlocked("redirect", "no open redirect from "+p) {
			continue
		}
		var bad []string
		var reflected []string
		for _, payload := range c.redirectPayloads() {
			var q []string
			for _, name := range redirectParams {
				q = append(q, name+"="+payload)
			}
			target := p + "?" + strings.Join(q, "&")
			a := c.get(ctx, target)
			ev := fmt.Sprintf("GET %s?{each of %d return parameters}=%s", p, len(redirectParams), payload)
			switch verdict, why := judgeRedirect(c.base, a); verdict {
			case Fail:
				bad = append(bad, ev+": "+why)
			case Warn:
				reflected = append(reflected, ev+": "+why)
			}
		}
		name := "no open redirect from " + p
		switch {
		case len(bad) > 0:
			c.add("redirect", name, Fail, strings.Join(bad, "; "))
		case len(reflected) > 0:
			c.add("redirect", name, Warn, strings.Join(reflected, "; "))
		default:
			c.add("redirect", name, Pass, fmt.Sprintf("%d payloads in %d parameters; none sent the browser to %s", len(c.redirectPayloads()), len(redirectParams), evil))
		}
	}
}

// judgeRedirect decides whether an answer sends the browser to evil.
func judgeRedirect(base *url.URL, a answer) (Status, string) {
	locs := a.header.Values("Location")
	for _, loc := range locs {
		if h := browserHost(base, loc); h == evil || strings.HasSuffix(h, "."+evil) {
			return Fail, fmt.Sprintf("%d, Location: %s", a.status, loc)
		}
	}
	// A CRLF in a return address that became a header line of its own.
	for _, sc := range a.header.Values("Set-Cookie") {
		if strings.Contains(strings.ToLower(sc), "domain="+evil) {
			return Fail, "header injected: Set-Cookie: " + sc
		}
	}
	body := bytes.ToLower(a.body)
	if i := bytes.Index(body, []byte(evil)); i >= 0 {
		around := string(body[max(0, i-120):min(len(body), i+40)])
		if strings.Contains(around, "http-equiv") && strings.Contains(around, "refresh") || strings.Contains(around, "location") {
			return Fail, fmt.Sprintf("%d, the page redirects: %q", a.status, snippet([]byte(around)))
		}
		return Warn, fmt.Sprintf("%d, reflected into the page (a redirect after login may follow it): %q", a.status, snippet([]byte(around)))
	}
	for name, vs := range a.header {
		for _, v := range vs {
			if name != "Location" && strings.Contains(strings.ToLower(v), evil) {
				return Warn, fmt.Sprintf("reflected into the header %s: %s", name, v)
			}
		}
	}
	return Pass, ""
}

// browserHost is the host a browser goes to for a Location value, read
// the way browsers read URLs (the WHATWG URL standard) rather than the
// way Go's url package does: leading and trailing controls and spaces go,
// tabs and newlines inside go, a backslash is a slash, any number of
// slashes may stand before the host, a scheme other than the page's starts
// an absolute URL even without slashes, and a host's trailing dot and
// percent-escapes do not matter.
func browserHost(base *url.URL, loc string) string {
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= 0x20 })
	loc = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, loc)
	rest, authority := loc, false
	if i := strings.IndexByte(loc, ':'); i > 0 && isScheme(loc[:i]) {
		scheme := strings.ToLower(loc[:i])
		rest = loc[i+1:]
		switch {
		case scheme != "http" && scheme != "https":
			return "" // javascript:, data: and the like name no host
		case scheme != base.Scheme:
			authority = true // a special scheme of its own: the host follows any slashes
		default:
			authority = strings.HasPrefix(rest, "//")
		}
	} else {
		authority = strings.HasPrefix(rest, "//")
	}
	if !authority {
		return strings.ToLower(base.Hostname())
	}
	rest = strings.TrimLeft(rest, "/")
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	host := rest
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i >= 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if h, err := url.PathUnescape(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

func isScheme(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return true
}

// parseCSP splits a policy into its directives (the first of a name
// counts, as in browsers).
func parseCSP(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(strings.ToLower(d))
		if len(f) == 0 {
			continue
		}
		if _, ok := out[f[0]]; !ok {
			out[f[0]] = f[1:]
		}
	}
	return out
}

// cspScriptWeakness says what lets an injected script run under the
// policy, or "".
func cspScriptWeakness(dirs map[string][]string) string {
	src, ok := dirs["script-src"]
	if !ok {
		src, ok = dirs["default-src"]
	}
	if !ok {
		return "neither script-src nor default-src: any script runs"
	}
	nonce := slices.ContainsFunc(src, func(v string) bool {
		return strings.HasPrefix(v, "'nonce-") || strings.HasPrefix(v, "'sha256-") || strings.HasPrefix(v, "'sha384-") || strings.HasPrefix(v, "'sha512-")
	})
	for _, v := range src {
		switch {
		case v == "*" || v == "http:" || v == "https:" || v == "data:" || v == "blob:":
			return "scripts from " + v + " may run"
		case v == "'unsafe-inline'" && !nonce:
			return "inline scripts may run"
		case v == "'unsafe-eval'":
			return "eval may run"
		}
	}
	return ""
}

// adminPaths are endpoints that must not answer the internet without a
// login, with what proves they did.
var adminPaths = []struct {
	path   string
	marker string // text that shows the endpoint itself answered
}{
	{"/admin", ""},
	{"/admin/", ""},
	{"/administrator/", ""},
	{"/console", ""},
	{"/manager/html", "tomcat"},
	{"/server-status", "server status"},
	{"/nginx_status", "active connections"},
	{"/status", ""},
	{"/actuator/env", "propertysources"},
	{"/debug/pprof/", "goroutine"},
	{"/debug/vars", "memstats"},
	{"/metrics", "# type "},
	{"/api/admin", ""},
	{"/mgmt/tm/sys", ""},
	{"/api/v2/cmdb/system/admin", ""},
	{"/.env", ""},
	{"/.git/config", "[core]"},
}

// checkAdmin asks for well-known admin and debug endpoints without a login.
func (c *checker) checkAdmin(ctx context.Context) {
	for _, p := range adminPaths {
		name := "GET " + p.path
		if ctx.Err() != nil || c.skipBlocked("admin", name) {
			continue
		}
		a := c.get(ctx, p.path)
		st, ev := c.judgeAdmin(p.marker, a)
		c.add("admin", name, st, ev)
		c.watchBlock(ctx, name, a)
	}
}

func (c *checker) judgeAdmin(marker string, a answer) (Status, string) {
	body := strings.ToLower(string(a.body))
	switch {
	case marker != "" && strings.Contains(body, marker):
		return Fail, fmt.Sprintf("answered without a login: %s", a)
	case leak(a.all()) != "":
		return Fail, fmt.Sprintf("%s: %s", leak(a.all()), a)
	case a.served() && isLoginForm(a.body):
		return Pass, a.reason + ", a login form"
	case a.served() && c.unknown.served() && bytes.Equal(a.body, c.unknown.body):
		return Pass, a.reason + ", the same page as any unknown path"
	case a.served():
		return Fail, fmt.Sprintf("answered without a login: %s", a)
	case a.timeout || a.err != nil:
		return Warn, a.String()
	}
	return Pass, a.String()
}

// leaks are what no answer to an unauthenticated request may contain: file
// contents, command output, stack traces, keys.
var leaks = []struct{ text, what string }{
	{"root:x:0:0", "/etc/passwd contents"},
	{"root:*:0:0", "/etc/passwd contents"},
	{"for 16-bit app support", "win.ini contents"},
	{"uid=0(root)", "command output"},
	{"[global]\n", "a configuration file"},
	{"-----begin", "a PEM key or certificate"},
	{"goroutine 1 [", "a Go stack trace"},
	{"traceback (most recent call last)", "a Python stack trace"},
	{"exception in thread", "a Java stack trace"},
	{"\tat java.", "a Java stack trace"},
	{"at system.web.", "a .NET stack trace"},
	{"<b>fatal error</b>:", "a PHP error"},
	{"<b>warning</b>:", "a PHP warning"},
	{"sqlstate[", "a database error"},
	{"you have an error in your sql syntax", "a database error"},
}

// leak names what an answer gives away, or "".
func leak(body []byte) string {
	s := strings.ToLower(string(body))
	for _, l := range leaks {
		if strings.Contains(s, l.text) {
			return "the answer contains " + l.what
		}
	}
	return ""
}
