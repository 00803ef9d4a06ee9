package proxy

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strings"
)

// defaultUserAgent is what Request.Write sends for a request without a
// User-Agent field; ReverseProxy sets an empty one to send none.
const defaultUserAgent = "Go-http-client/1.1"

// writeHead writes the head of a bodiless GET or HEAD request to an
// http:// upstream (the Transport's fast path): the request line, Host,
// User-Agent and the other fields, then the empty line (RFC 9112 sections
// 3 and 5). It writes what Request.Write writes, except that fields come
// in the header map's order, not sorted (the order of fields with
// different names carries no meaning, RFC 9110 section 5.3), and it
// allocates nothing but the request target.
//
// Anything unusual is left to Request.Write (ok false, nothing written): a
// field name that is not a token (Request.Write drops those), a value with
// a line break (it replaces them), a host or target with bytes outside
// their grammar, Connection: close to be added. So framing is never
// improvised for a request Go's own writer would treat specially.
func writeHead(w *bufio.Writer, req *http.Request) (ok bool, err error) {
	if req.Close || req.URL == nil || req.URL.Opaque != "" || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return false, nil
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" || !validHost(host) {
		return false, nil
	}
	target := req.URL.RequestURI()
	if !validTarget(target) {
		return false, nil
	}
	ua, hasUA := defaultUserAgent, false
	if vs, ok := req.Header["User-Agent"]; ok {
		hasUA = true
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	for name, vs := range req.Header {
		if headExcluded(name) {
			continue
		}
		if !validName(name) {
			return false, nil
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return false, nil
			}
		}
	}
	if hasUA && strings.ContainsAny(ua, "\r\n") {
		return false, nil
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua != "" { // as Request.Write: "" sends none, blanks an empty field
		w.WriteString("User-Agent: ")
		w.WriteString(textproto.TrimString(ua))
		w.WriteString("\r\n")
	}
	for name, vs := range req.Header {
		if headExcluded(name) {
			continue
		}
		for _, v := range vs {
			w.WriteString(name)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
	_, err = w.WriteString("\r\n")
	return true, err
}

// headExcluded reports the fields Request.Write writes itself or not at
// all (its reqWriteExcludeHeader): none of them belongs in the field
// lines of a bodiless request.
func headExcluded(name string) bool {
	switch name {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// validName reports whether name is a field name (a token, RFC 9110
// section 5.1).
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tchar(name[i]) {
			return false
		}
	}
	return true
}

// tchar reports whether c may be in a token (RFC 9110 section 5.6.2).
func tchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHost reports whether host is made of the bytes of a host and port
// (RFC 3986 section 3.2.2: reg-name, IPv4 or an IP literal in brackets)
// only; a name that would need Punycode or a zone goes to Request.Write.
func validHost(host string) bool {
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validTarget reports whether the request target is an origin-form
// (RFC 9112 section 3.2.1) of visible ASCII: no space, no control byte.
func validTarget(t string) bool {
	if t == "" || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}
