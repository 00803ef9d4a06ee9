package frontdoor

import (
	"bytes"
	"encoding/base64"
)

// The generic checks recognise the shapes that recur from one product's
// exploit to the next, so that the next CVE of a known shape is caught
// without a rule of its own: encodings no browser sends, dot-segments,
// expression-language and shell syntax where only names and tokens belong,
// SQL in credentials, and fields long enough to overflow a C buffer. Each
// is written for what ordinary clients never send; the benign corpus in
// testdata keeps them honest.

// generic returns the name of the first generic check v fails, or "".
func generic(v *view) string {
	if v.long {
		return "generic-overlong-target"
	}
	if name := genericPath(v.path, v.dpath); name != "" {
		return name
	}
	if name := genericQuery(v.query, v.dquery); name != "" {
		return name
	}
	if hasRun(v.target, 256) {
		return "generic-overflow"
	}
	if v.r.ContentLength > 1<<35 {
		return "generic-oversized-content-length"
	}
	return ""
}

// genericPath checks the path as sent (p) and decoded once (d).
func genericPath(p, d []byte) string {
	found := pathClasses.found(p)
	switch {
	case hasDotSegment(p) || hasDotSegment(d) || found&1 != 0:
		return "generic-traversal"
	case hasDoubleEscape(p):
		return "generic-double-encoding"
	case hasOverlongUTF8(p):
		return "generic-overlong-utf8"
	case hasUnicodeEscape(p, false):
		return "generic-unicode-escape"
	case hasControlEscape(p):
		return "generic-control-escape"
	case found&6 != 0:
		return "generic-path-confusion"
	case hasExpression(d):
		return "generic-expression-injection"
	case hasShellInjection(d):
		return "generic-command-injection"
	}
	return ""
}

// encodedDots are dot-segments with a dot or separator escaped: no browser
// escapes a dot, and no ordinary path has two in a row next to a slash.
var encodedDots = newMulti([][]byte{
	[]byte("%2e"), []byte("..%2f"), []byte("..%5c"), []byte("%2f.."), []byte("%5c.."),
	[]byte("..\\"), []byte("\\.."),
})

// pathParams are ';' parameters that hide a segment from one parser but
// not another (F5 "..;/", Jira "/;/", Tomcat "x.jsp;.css").
var pathParams = newMulti([][]byte{[]byte(";/"), []byte(";."), []byte("..;"), []byte(";%2f")})

// encodedQueryMarks are an escaped '?' followed by more path: mod_rewrite
// and some appliances stop at it, others do not (SonicWall CVE-2024-38475,
// FortiWeb CVE-2025-64446, Ivanti CSA CVE-2024-8963).
var encodedQueryMarks = newMulti([][]byte{[]byte("%3f."), []byte("%3f/"), []byte("%3f%2f")})

// genericQuery checks the query as sent (q) and decoded once (d).
func genericQuery(q, d []byte) string {
	raw, dec := rawQueryClasses.found(q), decodedClasses.found(d)
	switch {
	case dec&classTraversal != 0:
		return "generic-traversal"
	case raw&1 != 0:
		return "generic-double-encoding"
	case hasOverlongUTF8(q):
		return "generic-overlong-utf8"
	case hasUnicodeEscape(q, true):
		return "generic-unicode-escape"
	case raw&2 != 0:
		return "generic-control-escape"
	case dec&classExpression != 0 || hasExpressionSyntax(d):
		return "generic-expression-injection"
	case hasShellInjection(d):
		return "generic-command-injection"
	case dec&classQuerySQL != 0:
		return "generic-sql-injection"
	}
	return ""
}

// The pattern lists are searched together, one pass a text.
var (
	pathClasses     = newClasses(encodedDots, pathParams, encodedQueryMarks)
	rawQueryClasses = newClasses(queryDoubleEscapes, newMulti([][]byte{[]byte("%00")}))
	decodedClasses  = newClasses(queryTraversal, expressionTokens, sqlInQuery, sqlInCredentials)
	headerClasses   = newClasses(newMulti([][]byte{[]byte("() {")}), expressionTokens)
)

// Bits of decodedClasses.
const (
	classTraversal = 1 << iota
	classExpression
	classQuerySQL
	classCredentialSQL
)

var queryTraversal = newMulti([][]byte{[]byte("../"), []byte("..\\"), []byte("..%2f"), []byte("..%5c"), []byte("%2e%2e")})

// A query may hold an escaped URL (a return address) whose own escapes are
// escaped again, so only double-escaped dots, backslashes and NUL count.
var queryDoubleEscapes = newMulti([][]byte{[]byte("%252e"), []byte("%255c"), []byte("%2500"), []byte("%25c0"), []byte("%25u")})

// sqlInQuery are fragments of SQL injection that do not occur in what
// people search for or type into forms.
var sqlInQuery = newMulti([][]byte{
	[]byte("' or '"), []byte("' or 1"), []byte("'or'"), []byte("'or 1"), []byte("' and '"), []byte("' and 1"),
	[]byte("'and'"), []byte(" or 1=1"), []byte("'='"),
	[]byte("union select"), []byte("union all select"), []byte("' union"), []byte("waitfor delay"),
	[]byte("pg_sleep("), []byte("information_schema."), []byte("@@version"), []byte("xp_cmdshell"),
	[]byte("extractvalue("), []byte("updatexml("), []byte("'--"), []byte("' --"), []byte("');"),
})

// sqlInCredentials are the fragments looked for in tokens, passwords and
// cookie values; a few more than in a query, since nobody's password is a
// search for "sleep(".
var sqlInCredentials = newMulti(append([][]byte{
	[]byte("sleep("), []byte("benchmark("), []byte("' #"), []byte("'#"), []byte("or '1'='1"), []byte("\" or \""),
}, sqlInQuery.pats...))

// genericHeader checks one header value (val as sent, b lower-cased) of
// the header named n (normalHeader form).
func genericHeader(n []byte, val string, b []byte, s *scratch) string {
	if len(val) > 512 && isForwarding(n) {
		return "generic-overflow"
	}
	found := headerClasses.found(b)
	switch {
	case hasRun(b, 256):
		return "generic-overflow"
	case found&1 != 0:
		return "generic-shellshock"
	case found&2 != 0 || hasExpressionSyntax(b):
		return "generic-expression-injection"
	}
	switch string(n) {
	case "authorization":
		return checkAuthorization(val, s)
	case "cookie":
		return checkCookies(b, s)
	}
	return ""
}

func isForwarding(n []byte) bool {
	switch string(n) {
	case "x-forwarded-for", "x-real-ip", "x-client-ip", "true-client-ip", "forwarded", "x-originating-ip":
		return true
	}
	return false
}

// checkAuthorization looks into Bearer and Basic credentials: a bearer
// token is one token68 (RFC 6750), so a quote or a space in it is an
// injection (FortiWeb CVE-2025-25257); Basic credentials are decoded and
// held against SQL and shell syntax (Kemp CVE-2024-1212).
func checkAuthorization(val string, s *scratch) string {
	scheme, cred, _ := cutSpace(val)
	switch {
	case equalFold(scheme, "bearer"):
		// An empty token is no credential, not an injection.
		if cred != "" && !isToken68(cred) {
			return "generic-bearer-injection"
		}
	case equalFold(scheme, "basic"):
		src := s.raw[:copy(s.raw[:], cred)]
		src = bytes.TrimRight(src, "=")
		n, err := base64.RawStdEncoding.Decode(s.creds[:], src)
		if err != nil {
			return ""
		}
		d := s.creds[:n]
		lowerBytes(d)
		switch {
		case hasShellInjection(d):
			return "generic-command-injection"
		case containsAny(d, sqlInCredentials):
			return "generic-sql-injection"
		case hasExpression(d):
			return "generic-expression-injection"
		}
	}
	return ""
}

// checkCookies looks at each cookie value of a lower-cased Cookie header,
// decoded once: cookies are tokens and ids, never paths or code.
func checkCookies(b []byte, s *scratch) string {
	for len(b) > 0 {
		var c []byte
		if i := bytes.IndexByte(b, ';'); i >= 0 {
			c, b = b[:i], b[i+1:]
		} else {
			c, b = b, nil
		}
		_, val, ok := bytes.Cut(c, []byte("="))
		if !ok {
			continue
		}
		d := decodeInto(s.creds[:0], val, false)
		found := decodedClasses.found(d)
		switch {
		case found&classTraversal != 0:
			return "generic-traversal"
		case hasShellInjection(d):
			return "generic-command-injection"
		case found&classCredentialSQL != 0:
			return "generic-sql-injection"
		case found&classExpression != 0 || hasExpressionSyntax(d):
			return "generic-expression-injection"
		}
	}
	return ""
}

func cutSpace(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			j := i
			for j < len(s) && s[j] == ' ' {
				j++
			}
			return s[:i], s[j:], true
		}
	}
	return s, "", false
}

func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	return hasPrefixFold(s, lower)
}

func isToken68(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func lowerBytes(b []byte) {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

func containsAny(b []byte, m *multi) bool { return m.any(b) }

// hasDotSegment reports whether a path has a "." or ".." segment, with '/'
// or '\' as separator; browsers and HTTP libraries remove them before
// sending, so one that arrives was written by hand.
func hasDotSegment(p []byte) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '.' || i > 0 && p[i-1] != '/' && p[i-1] != '\\' {
			continue
		}
		j := i + 1
		if j < len(p) && p[j] == '.' {
			j++
		}
		if i > 0 && (j == len(p) || p[j] == '/' || p[j] == '\\' || p[j] == ';' || p[j] == '?') {
			return true
		}
	}
	return false
}

// hasDoubleEscape reports "%25" followed by two hex digits: an escape
// escaped again, which a second decoder turns into the real thing (Palo
// Alto CVE-2025-0108, Cisco CVE-2023-20198).
func hasDoubleEscape(p []byte) bool {
	for i := 0; i+4 < len(p); i++ {
		if p[i] == '%' && p[i+1] == '2' && p[i+2] == '5' && isHex(p[i+3]) && isHex(p[i+4]) {
			return true
		}
	}
	return false
}

// hasOverlongUTF8 reports escaped or raw bytes that only an overlong UTF-8
// encoding uses: C0 and C1 lead bytes, E0 followed by 80-9F, F0 followed
// by 80-8F ("%c0%ae" is a dot to a lax decoder).
func hasOverlongUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == 0xc0 || b[i] == 0xc1 {
			return true
		}
		if b[i] != '%' || i+5 >= len(b) || b[i+3] != '%' {
			continue
		}
		lead := unhexPair(b[i+1], b[i+2])
		next := unhexPair(b[i+4], b[i+5])
		if lead < 0 || next < 0 {
			continue
		}
		if lead == 0xc0 || lead == 0xc1 || lead == 0xe0 && next < 0xa0 || lead == 0xf0 && next < 0x90 || lead >= 0xf8 {
			return true
		}
	}
	return false
}

func unhexPair(a, b byte) int {
	if !isHex(a) || !isHex(b) {
		return -1
	}
	return int(unhex(a)<<4 | unhex(b))
}

// hasUnicodeEscape reports IIS-style "%uXXXX" escapes. In a path any is
// suspect; in a query (where old JavaScript escape() still writes them for
// accented letters) only those of dots, slashes and their full-width
// look-alikes.
func hasUnicodeEscape(b []byte, onlySeparators bool) bool {
	for i := 0; i+5 < len(b); i++ {
		if b[i] != '%' || b[i+1] != 'u' || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
			continue
		}
		if !onlySeparators {
			return true
		}
		switch string(b[i+2 : i+6]) {
		case "002e", "002f", "005c", "2215", "2216", "ff0e", "ff0f", "ff3c", "2024", "fe52":
			return true
		}
	}
	return false
}

// hasControlEscape reports an escaped control byte (NUL, CR, LF, tab, ...)
// in a path, where none belongs.
func hasControlEscape(p []byte) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && (p[i+1] == '0' || p[i+1] == '1') && isHex(p[i+2]) || p[i] == '%' && p[i+1] == '7' && p[i+2] == 'f' {
			return true
		}
	}
	return false
}

// hasRun reports a run of at least n equal bytes: the padding of a buffer
// overflow (Ivanti CVE-2025-22457's X-Forwarded-For, SonicWall
// CVE-2021-20038's query), never a field a person or program fills in.
func hasRun(b []byte, n int) bool {
	run := 1
	for i := 1; i < len(b); i++ {
		if b[i] == b[i-1] {
			if run++; run >= n {
				return true
			}
		} else {
			run = 1
		}
	}
	return false
}

// lookups are the Log4j lookup names an expression "${name:" starts with.
var lookups = []string{
	"jndi", "lower", "upper", "env", "sys", "date", "java", "main", "ctx", "base64", "bundle",
	"docker", "k8s", "spring", "web", "log4j", "marker", "map", "sd", "event", "jvmrunargs", "::-",
}

// expressionTokens are the names expression-language payloads reach for
// (OGNL in Confluence CVE-2022-26134, EL in Ivanti EPMM CVE-2025-4427,
// FreeMarker in VMware CVE-2022-22954, Spring4Shell).
var expressionTokens = newMulti([][]byte{
	[]byte("java.lang.runtime"), []byte("java.lang.processbuilder"), []byte("@java.lang."), []byte("#_memberaccess"),
	[]byte("freemarker.template"), []byte(".getclass()"), []byte("getruntime()"), []byte("class.module.classloader"),
	[]byte("@ognl"), []byte("ognlcontext"), []byte("javax.script"), []byte("jndi:ldap"), []byte("jndi:rmi"), []byte("jndi:dns"),
	[]byte("#request["), []byte("#context["), []byte("#parameters"), []byte("nashorn"),
	// Java and JavaScript escapes of a quote, which close a string
	// literal in the expression they are pasted into (Confluence
	// CVE-2021-26084, CVE-2023-22527).
	[]byte("\\u0027"), []byte("\\u0022"), []byte("\\x27"),
})

// hasExpression reports template or expression-language syntax: "${" or
// "%{" or "#{" opening an expression (a Log4j lookup, a quote, '#', '@',
// '(' or arithmetic such as "${7*7}"), "{{7*7}}", or a class name payloads
// use.
func hasExpression(b []byte) bool {
	return containsAny(b, expressionTokens) || hasExpressionSyntax(b)
}

// hasExpressionSyntax is hasExpression without the class names.
func hasExpressionSyntax(b []byte) bool {
	for i := 0; i+2 < len(b); i++ {
		k := bytes.IndexByte(b[i+1:], '{')
		if k < 0 || i+k+2 >= len(b) {
			return false
		}
		i += k
		if b[i] != '$' && b[i] != '%' && b[i] != '#' && b[i] != '{' {
			continue
		}
		rest := b[i+2:]
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return false
		}
		switch rest[0] {
		case '\'', '"', '#', '@', '(', '$':
			if b[i] != '{' {
				return true
			}
		}
		if isArithmetic(rest) {
			return true
		}
		if b[i] == '$' {
			for _, l := range lookups {
				if len(rest) > len(l) && string(rest[:len(l)]) == l && (rest[len(l)] == ':' || l == "::-") {
					return true
				}
			}
			if len(rest) > 1 && rest[0] == 't' && rest[1] == '(' {
				return true
			}
		}
		if b[i] == '#' && len(rest) > 1 && rest[0] == 't' && rest[1] == '(' {
			return true
		}
	}
	return false
}

// isArithmetic reports digits, '*' and digits: the "7*7" of template
// injection probes.
func isArithmetic(b []byte) bool {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i == len(b) || b[i] != '*' {
		return false
	}
	return i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '9'
}

// commands are what injected shell code runs first. Those that are also
// English words (words) count only when what follows does not read as
// prose: "; cat /etc/passwd" but not "dogs; cat toys".
var (
	commands = []string{
		"whoami", "uname", "wget", "curl", "sh", "bash", "nc", "ncat", "netcat", "telnet", "tftp", "python",
		"python3", "perl", "php", "ruby", "busybox", "nslookup", "chmod", "mkfifo", "base64", "powershell",
		"certutil", "socat", "openssl", "awk", "xterm", "ifconfig", "nohup", "sudo", "ksh", "zsh",
		"/bin/sh", "/bin/bash", "/bin/busybox",
	}
	words = []string{
		"id", "ls", "cat", "echo", "ping", "dig", "sleep", "rm", "cmd", "touch", "cp", "mv", "mkdir", "reboot",
		"hostname", "env", "pwd", "tar", "su", "dash",
	}
)

// hasShellInjection reports shell syntax that runs a command: "$(",
// "${IFS}", a backquoted command, or a separator (";", "|", "&&", a
// newline) followed by a known command word (Ivanti CVE-2024-21887, Zyxel
// CVE-2022-30525, Kemp CVE-2024-1212, Palo Alto CVE-2024-3400).
func hasShellInjection(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch c {
		case '$':
			if i+1 < len(b) && b[i+1] == '(' && i+2 < len(b) && isWordByte(b[i+2]) {
				return true
			}
			if bytes.HasPrefix(b[i+1:], []byte("{ifs")) {
				return true
			}
		case '`':
			if startsCommand(b[i+1:]) {
				return true
			}
		case ';', '|', '\n':
			if startsCommand(b[i+1:]) {
				return true
			}
		case '&':
			// One '&' separates query parameters; two run a command.
			if i+1 < len(b) && b[i+1] == '&' && startsCommand(b[i+2:]) {
				return true
			}
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '/' || c == '.' || c == '_'
}

// startsCommand reports whether b, after blanks, quotes and a second
// separator, begins with a command word that ends where a word ends.
func startsCommand(b []byte) bool {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '|' || b[0] == '&' || b[0] == '\'' || b[0] == '"') {
		b = b[1:]
	}
	for _, c := range commands {
		if len(b) >= len(c) && string(b[:len(c)]) == c && endsCommand(b[len(c):], false) {
			return true
		}
	}
	for _, c := range words {
		if len(b) >= len(c) && string(b[:len(c)]) == c && endsCommand(b[len(c):], true) {
			return true
		}
	}
	return false
}

// endsCommand reports whether rest, what follows a command word, ends the
// word. For a word that is also English, a blank must be followed by an
// option, a path, a number, a quote or more shell, not by another word.
func endsCommand(rest []byte, prose bool) bool {
	if len(rest) == 0 {
		return true
	}
	switch rest[0] {
	case ';', '|', '&', '\'', '"', '`', '$', '<', '>', ')', '\n', '{', ',':
		return true
	case ' ', '\t':
		if !prose {
			return true
		}
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return true
		}
		c := rest[0]
		return !(c >= 'a' && c <= 'z')
	}
	return false
}
