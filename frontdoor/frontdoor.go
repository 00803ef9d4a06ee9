// Package frontdoor is the first step of every request on the public
// listener, before routing, authentication or proxying. It checks the
// request against explicit limits, accepts only known hosts, and puts the
// request target into one canonical form, refusing rather than repairing
// anything ambiguous, so that everything after it (router, policy, upstream)
// sees the same path.
package frontdoor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluis-gateway/sluis/errpage"
)

// Limits of the front door (header bytes and timeouts are the listener's).
const (
	// MaxTargetLen is the longest request target accepted.
	MaxTargetLen = 4096
	// MaxHeaderCount is the most header field lines a request may carry.
	MaxHeaderCount = 100
)

func headerCount(h http.Header) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}

// SecurityHeader reports whether a header named name carries identity,
// origin, session or framing: those a client may never forge nor ask a proxy
// to drop. Names are compared case-insensitively with '_' read as '-',
// because some upstream stacks (CGI, some frameworks) fold X_Sluis_User into
// the same variable as X-Sluis-User.
func SecurityHeader(name string) bool {
	if Spoofable(name) {
		return true
	}
	for _, n := range framingNames {
		if len(n) == len(name) && hasPrefixFold(name, n) {
			return true
		}
	}
	return false
}

var framingNames = []string{"cookie", "authorization", "host", "content-length", "transfer-encoding"}

// hasPrefixFold reports whether s begins with prefix (lower case, '-' for
// separators), ignoring case and reading '_' as '-'. It runs on every header
// of every request, so it does not allocate.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// Door is the front door handler.
type Door struct {
	// Hosts are the host names served (portal and apps), lower case,
	// without port. Any other Host gets 421.
	Hosts map[string]bool
	// Portal is the portal's host: requests for it (and for unknown
	// hosts) are checked against the probe signatures here; app hosts
	// check them after the session lookup, for requests without one.
	Portal string
	// Detector records probes and refusals and blocks sources that keep
	// probing; nil means none of that.
	Detector *Detector
	// Blocks are the stored blocks (sluis block add, and the detector's);
	// nil means none.
	Blocks *BlockList
	// Lenient are the app hosts that take encoded slashes or path
	// parameters (see Leniency). A request that needs it is let through
	// marked (see NeedsSession): the app's handler refuses it without a
	// session, so before login the strict form holds on every host.
	Lenient map[string]Leniency
	// Proxies are the trusted load balancers: a request from one of them
	// is taken to be from the client its forwarding header names, before
	// anything here or after reads the client's address. The zero value
	// trusts nobody.
	Proxies Proxies
	Next    http.Handler
	Log     *slog.Logger

	blockedLog foldedIDs
}

// foldedIDs hands out one error ID per source and minute, for at most
// maxFoldedIDs sources a minute (past that each refusal gets an ID of its
// own, unlogged).
type foldedIDs struct {
	mu     sync.Mutex // guards minute and ids
	minute int64
	ids    map[string]string
}

const maxFoldedIDs = 10000

// id returns the error ID of src for the minute of now, and whether it is
// new (to be logged).
func (f *foldedIDs) id(src string, now time.Time) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := now.Unix() / 60; m != f.minute || f.ids == nil {
		f.minute, f.ids = m, map[string]string{}
	}
	if id, ok := f.ids[src]; ok {
		return id, false
	}
	id := errpage.NewID()
	if len(f.ids) >= maxFoldedIDs {
		return id, false
	}
	f.ids[src] = id
	return id, true
}

var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// webdavMethods (RFC 4918) are allowed on app hosts only: file shares
// behind the gateway need them; the portal and unknown hosts never do.
var webdavMethods = map[string]bool{
	"PROPFIND": true, "PROPPATCH": true, "MKCOL": true, "COPY": true, "MOVE": true, "LOCK": true, "UNLOCK": true,
}

func (d *Door) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = d.resolve(r)
	if d.blocked(r) {
		// Blocked sources learn nothing more, and are not recorded again.
		// The page says why, so a member of staff caught in a block can
		// tell the help desk (and the ID finds the log line).
		// One log line per source and minute, whose error ID every page
		// of that minute shows: a blocked flood does not flood the log.
		src := ClientIP(r)
		id, first := d.blockedLog.id(src, time.Now())
		if first && d.Log != nil {
			errpage.Log(r.Context(), d.Log, r, id, errpage.Refusal{Status: http.StatusForbidden,
				Cause: "blocked source (further refusals of it this minute carry the same error ID)"})
		}
		errpage.WritePage(w, r, errpage.Page{Status: http.StatusForbidden, ID: id, Kind: errpage.KindBlocked})
		return
	}
	host, ok := CanonicalHost(r.Host)
	if !allowedMethods[r.Method] && (!webdavMethods[r.Method] || !ok || !d.Hosts[host] || host == d.Portal) {
		d.refuse(w, r, http.StatusMethodNotAllowed, "refused: method not allowed")
		return
	}
	if !ok || !d.Hosts[host] {
		if rule := Match(r); rule != "" {
			d.refuse(w, r, http.StatusForbidden, rule)
			return
		}
		d.refuse(w, r, http.StatusMisdirectedRequest, "refused: unknown host")
		return
	}
	if host == d.Portal {
		if rule := Match(r); rule != "" {
			d.refuse(w, r, http.StatusForbidden, rule)
			return
		}
	}
	target := r.RequestURI
	if r.URL.IsAbs() || !strings.HasPrefix(target, "/") {
		// Absolute-form targets could name another authority than Host.
		d.refuse(w, r, http.StatusBadRequest, "refused: target not in origin form")
		return
	}
	// Upgrade only to WebSocket; never h2c, which would hand the client a
	// raw HTTP/2 connection to the upstream past every later check.
	if up := r.Header.Get("Upgrade"); up != "" || r.Header.Get("HTTP2-Settings") != "" {
		if !strings.EqualFold(up, "websocket") || len(r.Header["Upgrade"]) != 1 || r.Header.Get("HTTP2-Settings") != "" {
			d.refuse(w, r, http.StatusBadRequest, "refused: upgrade other than websocket")
			return
		}
	}
	// A client that names a security-relevant header in Connection asks
	// every hop after this one to drop it, after decisions were made
	// (F5 CVE-2022-1388): refused outright.
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if SecurityHeader(strings.TrimSpace(tok)) {
				d.refuse(w, r, http.StatusBadRequest, "refused: Connection names a security header")
				return
			}
		}
	}
	if n := headerCount(r.Header); n > MaxHeaderCount {
		d.refuse(w, r, http.StatusRequestHeaderFieldsTooLarge, "refused: too many header fields")
		return
	}
	// The portal takes only small forms with a Content-Length.
	if host == d.Portal && len(r.TransferEncoding) > 0 {
		d.refuse(w, r, http.StatusBadRequest, "refused: Transfer-Encoding before login")
		return
	}
	path, query, err := Canonicalize(target)
	if err != nil {
		if l, ok := d.Lenient[host]; ok {
			if path, raw, query, lerr := CanonicalizeLenient(target, l); lerr == nil {
				r.Host = host
				r.URL.Path, r.URL.RawPath, r.URL.RawQuery = path, raw, query
				d.Next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), needsSessionKey{}, true)))
				return
			}
		}
		d.refuse(w, r, http.StatusBadRequest, "refused: "+err.Error())
		return
	}
	r.Host = host
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = path, "", query
	d.Next.ServeHTTP(w, r)
}

type needsSessionKey struct{}

// NeedsSession reports whether the front door let r through only in the
// lenient form of its host (an encoded slash or a path parameter): r may
// reach the app only with a valid session, and never one of the gateway's
// own paths on the app host.
func NeedsSession(r *http.Request) bool {
	v, _ := r.Context().Value(needsSessionKey{}).(bool)
	return v
}

// blocked reports whether r's source is in a stored block in force. The
// stored list is the only truth: the probe detector writes its blocks
// there too, so removing a block lifts it whatever made it.
func (d *Door) blocked(r *http.Request) bool {
	src := ClientIP(r)
	if d.Blocks == nil {
		return false
	}
	blocked, err := d.Blocks.Blocked(r.Context(), src)
	if err != nil && d.Log != nil {
		// Fail open: the store being unreadable must not lock out
		// everyone; the other checks still hold.
		d.Log.Error("frontdoor: reading blocks", "err", err)
	}
	return blocked
}

func (d *Door) refuse(w http.ResponseWriter, r *http.Request, status int, why string) {
	id := errpage.NewID()
	if d.Detector != nil {
		d.Detector.ProbeWithID(r, why, id)
	}
	var attrs []any
	if via := Peer(r); via.IsValid() {
		attrs = []any{"via", via.String()}
	}
	errpage.Refuse(w, r, d.Log, errpage.Refusal{Status: status, Cause: why, ID: id, Attrs: attrs})
}

// CanonicalHost returns the lower-case host name of a Host header value,
// without port.
func CanonicalHost(h string) (string, bool) {
	if h == "" || len(h) > 260 {
		return "", false
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return "", false
		}
	}
	return h, h != ""
}

// ClientIP returns the client's address: the socket's peer, or, for a
// request that came through a trusted proxy, the client the proxy named
// (the front door put it in r.RemoteAddr; see Proxies). Never a header
// from anyone else.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var (
	errTooLong  = errors.New("request target too long")
	errByte     = errors.New("forbidden byte in request target")
	errEscape   = errors.New("forbidden or malformed percent-escape")
	errSegment  = errors.New("dot-segment, empty segment or path parameter")
	errEncoding = errors.New("path is not valid UTF-8")
)

// Canonicalize checks a raw origin-form request target and returns its
// decoded path and raw query. It rejects every form that two parsers could
// read differently: dot-segments (plain or encoded), encoded '/', '\', '.',
// '%' and control bytes, '%u' escapes, backslashes, ';' parameters, empty
// segments ("//"), raw non-ASCII or control bytes, and invalid or overlong
// UTF-8. What it accepts decodes to exactly one path.
func Canonicalize(target string) (path, query string, err error) {
	if len(target) > MaxTargetLen {
		return "", "", errTooLong
	}
	rawPath, query, _ := strings.Cut(target, "?")
	if !strings.HasPrefix(rawPath, "/") {
		return "", "", errSegment
	}
	if err := checkQuery(query); err != nil {
		return "", "", err
	}
	// Most paths have no escapes: then the path is the raw path, with no
	// copy.
	escaped := strings.IndexByte(rawPath, '%') >= 0
	var b []byte
	if escaped {
		b = make([]byte, 0, len(rawPath))
	}
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		switch {
		case c == '%':
			if i+2 >= len(rawPath) || !isHex(rawPath[i+1]) || !isHex(rawPath[i+2]) {
				return "", "", errEscape
			}
			v := unhex(rawPath[i+1])<<4 | unhex(rawPath[i+2])
			if v < 0x20 || v == 0x7f || v == '.' || v == '/' || v == '\\' || v == '%' || v == ';' {
				return "", "", errEscape
			}
			b = append(b, v)
			i += 2
		case c <= 0x20 || c >= 0x7f || c == '\\' || c == '"' || c == '<' || c == '>' || c == '`' || c == '{' || c == '}' || c == '|' || c == '^':
			return "", "", errByte
		case c == ';':
			return "", "", errSegment
		default:
			if escaped {
				b = append(b, c)
			}
		}
	}
	path = rawPath
	if escaped {
		path = string(b)
	}
	if !utf8.ValidString(path) {
		return "", "", errEncoding
	}
	// Segments: no "." or "..", and no empty segment except a trailing one.
	for rest := path[1:]; ; {
		seg, more, found := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || (seg == "" && found) {
			return "", "", errSegment
		}
		if !found {
			break
		}
		rest = more
	}
	return path, query, nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func checkQuery(query string) error {
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= 0x20 || c >= 0x7f || c == '\\' || c == '"' || c == '<' || c == '>' || c == '`' {
			return errByte
		}
	}
	return nil
}

// Leniency is what an app host takes beyond the strict canonical form,
// from requests with a session.
type Leniency struct {
	// EncodedSlashes passes %2F and %252F (an encoded slash encoded
	// once more), and no other %25.
	EncodedSlashes bool
	// PathParams passes ';' in path segments.
	PathParams bool
}

// CanonicalizeLenient is Canonicalize for an app host with leniency l: the
// forms l names are accepted and kept, everything else Canonicalize refuses
// stays refused. It returns the decoded path (as net/url decodes it), the
// raw path to send upstream byte for byte, and the raw query.
//
// An encoded slash is part of its segment, but segments are also checked
// as the most decoding upstream would see them: with %2F and %252F read as
// '/' and each segment cut at its first ';'. So "a%2F..%2Fb", "a%252F..",
// "..;/x" and "/%2Fhost" (read as "//host") are refused, as their plain
// forms are; "/api/vhosts/%2F" is not.
// encodedSlash stands for %2F and %252F in the form of a path that is
// checked for segments; it cannot occur otherwise (control bytes are
// refused).
const encodedSlash byte = 0

func CanonicalizeLenient(target string, l Leniency) (path, rawPath, query string, err error) {
	if len(target) > MaxTargetLen {
		return "", "", "", errTooLong
	}
	rawPath, query, _ = strings.Cut(target, "?")
	if !strings.HasPrefix(rawPath, "/") {
		return "", "", "", errSegment
	}
	if err := checkQuery(query); err != nil {
		return "", "", "", err
	}
	b := make([]byte, 0, len(rawPath))    // the path as net/url decodes it
	seen := make([]byte, 0, len(rawPath)) // as an upstream decoding everything sees it
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		switch {
		case c == '%':
			if i+2 >= len(rawPath) || !isHex(rawPath[i+1]) || !isHex(rawPath[i+2]) {
				return "", "", "", errEscape
			}
			v := unhex(rawPath[i+1])<<4 | unhex(rawPath[i+2])
			switch {
			case l.EncodedSlashes && v == '/':
				b, seen = append(b, '/'), append(seen, encodedSlash)
				i += 2
				continue
			case l.EncodedSlashes && v == '%' && i+4 < len(rawPath) && rawPath[i+3] == '2' && (rawPath[i+4] == 'F' || rawPath[i+4] == 'f'):
				b, seen = append(b, '%', '2', rawPath[i+4]), append(seen, encodedSlash)
				i += 4
				continue
			case v < 0x20 || v == 0x7f || v == '.' || v == '/' || v == '\\' || v == '%' || v == ';':
				return "", "", "", errEscape
			}
			b, seen = append(b, v), append(seen, v)
			i += 2
		case c <= 0x20 || c >= 0x7f || c == '\\' || c == '"' || c == '<' || c == '>' || c == '`' || c == '{' || c == '}' || c == '|' || c == '^':
			return "", "", "", errByte
		case c == ';' && !l.PathParams:
			return "", "", "", errSegment
		default:
			b, seen = append(b, c), append(seen, c)
		}
	}
	if !utf8.Valid(b) {
		return "", "", "", errEncoding
	}
	if len(seen) > 1 && seen[1] == encodedSlash {
		// "/%2Fhost" reads as "//host" to an upstream that decodes it.
		return "", "", "", errSegment
	}
	for rest := string(seen[1:]); ; {
		seg, more, found := strings.Cut(rest, "/")
		base, _, param := strings.Cut(seg, ";")
		if base == "" && (found || param) {
			return "", "", "", errSegment
		}
		// An encoded slash is part of its segment (RabbitMQ's vhost "/"
		// is "%2F"), but what lies between encoded slashes is no dot
		// segment either.
		for part := range strings.SplitSeq(base, "\x00") {
			if part == "." || part == ".." {
				return "", "", "", errSegment
			}
		}
		if !found {
			break
		}
		rest = more
	}
	return string(b), rawPath, query, nil
}
