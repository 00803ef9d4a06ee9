package frontdoor

import (
	"bytes"
	_ "embed"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

//go:embed signatures.txt
var signatureData string

// Cond is one condition of a rule.
type Cond struct {
	// Where is method, path, prefix, target, query, url or
	// header:NAME; signatures.txt says what each means.
	Where string
	// Text is lower case; "*" for a header means any value.
	Text string
}

// Rule is one known exploit probe: a request matches when every
// condition holds.
type Rule struct {
	Name  string
	Conds []Cond
}

// Signatures are the built-in rules, parsed from data compiled into the
// binary, in file order: Match names the first that fires.
var Signatures = mustParseSignatures(signatureData)

var rules = compile(Signatures)

// Scanning limits: Match looks at no more than this of a target or of a
// header value, so its cost per request is bounded whatever is sent. The
// front door refuses longer targets anyway (MaxTargetLen).
const (
	maxScan       = MaxTargetLen
	maxHeaderScan = 4096
	maxNameLen    = 64
)

// BroadRule reports whether rule names a list of paths that scanners try
// (generic-appliance-..., generic-management-..., generic-system-path,
// cgi-probe, admin-probe) rather than one exploit or an exploit's shape.
// Such paths may be an organisation's own app's (a /webui/, a /cgi-bin/,
// Spring's /actuator/, a GitLab group named tmp), so on an app host they
// are not taken for a probe: a request there without a session is sent to
// log in like any other. On the portal and on unknown hosts, where no app
// lives, they are probes.
func BroadRule(rule string) bool {
	switch {
	case strings.HasPrefix(rule, "generic-appliance-"), strings.HasPrefix(rule, "generic-management-"):
		return true
	}
	return rule == "generic-system-path" || rule == "cgi-probe" || rule == "admin-probe"
}

func mustParseSignatures(data string) []Rule {
	var rules []Rule
	for i, line := range strings.Split(data, "\n") {
		if line = strings.TrimRight(line, "\r"); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 3 || len(f)%2 != 1 || f[0] == "" {
			panic(fmt.Sprintf("signatures.txt:%d: want NAME<TAB>WHERE<TAB>TEXT[<TAB>WHERE<TAB>TEXT...]", i+1))
		}
		r := Rule{Name: f[0]}
		for j := 1; j < len(f); j += 2 {
			c := Cond{Where: f[j], Text: strings.ToLower(f[j+1])}
			if c.Text == "" {
				panic(fmt.Sprintf("signatures.txt:%d: empty text", i+1))
			}
			if kindOf(c.Where) == kindNone {
				panic(fmt.Sprintf("signatures.txt:%d: unknown place %q", i+1, c.Where))
			}
			if kindOf(c.Where) == kindPrefix && c.Text[0] != '/' {
				panic(fmt.Sprintf("signatures.txt:%d: a prefix starts with /", i+1))
			}
			if name, ok := strings.CutPrefix(c.Where, "header:"); ok && len(name) > maxNameLen {
				panic(fmt.Sprintf("signatures.txt:%d: header name longer than %d", i+1, maxNameLen))
			}
			r.Conds = append(r.Conds, c)
		}
		rules = append(rules, r)
	}
	return rules
}

type kind uint8

const (
	kindNone   kind = iota
	kindMethod      // the method, exactly
	kindPrefix      // the path begins with it, as sent or decoded once
	kindPath        // it occurs in the path, as sent or decoded once
	kindQuery       // it occurs in the query, as sent or decoded once
	kindTarget      // it occurs in the target as sent
	kindURL         // target as sent, path decoded or query decoded
	kindHeader      // the header is present and holds it
)

func kindOf(where string) kind {
	switch where {
	case "method":
		return kindMethod
	case "prefix":
		return kindPrefix
	case "path":
		return kindPath
	case "query":
		return kindQuery
	case "target":
		return kindTarget
	case "url":
		return kindURL
	}
	if name, ok := strings.CutPrefix(where, "header:"); ok && name != "" {
		return kindHeader
	}
	return kindNone
}

type cond struct {
	kind   kind
	text   []byte
	header string // normalHeader form, for kindHeader
	any    bool   // header: any value
}

// The fields of a view that rules look into, and which kinds look where.
const (
	fieldPath   = iota // as sent
	fieldDPath         // decoded
	fieldQuery         // as sent
	fieldDQuery        // decoded
	fieldTarget        // as sent
	numFields
)

var fieldsOf = map[kind][]int{
	kindPath:   {fieldPath, fieldDPath},
	kindQuery:  {fieldQuery, fieldDQuery},
	kindTarget: {fieldTarget},
	kindURL:    {fieldTarget, fieldDPath, fieldDQuery},
}

// ruleSet is the compiled form: rules indexed by the condition that rules
// most of them out cheaply, so a request is held against a few candidates
// rather than every rule.
type ruleSet struct {
	conds [][]cond
	// byPrefix holds rules with a prefix condition of at least four
	// bytes, keyed by the three bytes after the leading '/'.
	byPrefix map[[3]byte][]int
	// byHeader holds rules with a header condition (and no long
	// prefix), by normalHeader name; byHeaderCond[i] is the index of
	// that condition in rule i.
	byHeader     map[string][]int
	byHeaderCond map[int]int
	// found holds the rest that have a path, query, target or url
	// condition: one matcher per field of the view finds the texts of
	// all rules that look there in one pass, and ruleOf maps a pattern
	// back to its rule.
	found  [numFields]*multi
	ruleOf [numFields][]int
	// scan holds what is left, tried on every request.
	scan []int
}

func compile(rs []Rule) *ruleSet {
	s := &ruleSet{byPrefix: map[[3]byte][]int{}, byHeader: map[string][]int{}, byHeaderCond: map[int]int{}}
	var pats [numFields][][]byte
	for i, r := range rs {
		var cs []cond
		prefixKey, header, found := -1, -1, -1
		for _, c := range r.Conds {
			k := kindOf(c.Where)
			cc := cond{kind: k, text: []byte(c.Text)}
			switch k {
			case kindHeader:
				cc.header = normalHeader(strings.TrimPrefix(c.Where, "header:"))
				cc.any = c.Text == "*"
				if header < 0 {
					header = len(cs)
				}
			case kindPrefix:
				if len(c.Text) >= 4 && prefixKey < 0 {
					prefixKey = len(cs)
				}
			case kindPath, kindQuery, kindTarget, kindURL:
				if found < 0 {
					found = len(cs)
				}
			}
			cs = append(cs, cc)
		}
		s.conds = append(s.conds, cs)
		switch {
		case prefixKey >= 0:
			t := cs[prefixKey].text
			key := [3]byte{t[1], t[2], t[3]}
			s.byPrefix[key] = append(s.byPrefix[key], i)
		case header >= 0:
			s.byHeader[cs[header].header] = append(s.byHeader[cs[header].header], i)
			s.byHeaderCond[i] = header
		case found >= 0:
			for _, f := range fieldsOf[cs[found].kind] {
				pats[f] = append(pats[f], cs[found].text)
				s.ruleOf[f] = append(s.ruleOf[f], i)
			}
		default:
			s.scan = append(s.scan, i)
		}
	}
	for k := range pats {
		s.found[k] = newMulti(pats[k])
	}
	return s
}

// normalHeader folds a header name the way lenient upstream stacks do:
// case-insensitive, '_' read as '-'.
func normalHeader(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// foldName writes normalHeader(name) into buf without allocating; ok is
// false for names longer than buf.
func foldName(buf []byte, name string) ([]byte, bool) {
	if len(name) > len(buf) {
		return nil, false
	}
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		b[i] = c
	}
	return b, true
}

// view is a request as the rules see it: lower case, as sent and
// decoded once. Its slices point into a pooled scratch buffer.
type view struct {
	r       *http.Request
	target  []byte // as sent
	path    []byte // as sent, before '?'
	query   []byte // as sent, after '?'
	dpath   []byte // percent-decoded once
	dquery  []byte // percent-decoded once, '+' read as ' '
	long    bool   // the target was longer than maxScan
	scratch *scratch
}

type scratch struct {
	target [maxScan]byte
	decode [maxScan]byte
	value  [maxHeaderScan]byte
	other  [maxHeaderScan]byte // for a rule's second header
	creds  [maxHeaderScan]byte
	raw    [maxHeaderScan]byte
	name   [maxNameLen]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Match returns the name of the first rule r matches, or "". It looks at
// the request as sent (RequestURI) and at its path and query decoded once,
// not at the canonical form, because a probe is recognised by what the
// attacker wrote; and at the header values, each up to a bounded length.
// Rules from signatures.txt come first; then the generic checks
// (generic.go) for shapes that recur across products.
func Match(r *http.Request) string {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	v := view{r: r, scratch: s}
	t := r.RequestURI
	if len(t) > maxScan {
		t, v.long = t[:maxScan], true
	}
	v.target = lowerInto(s.target[:0], t)
	v.path, v.query = v.target, nil
	if i := bytes.IndexByte(v.target, '?'); i >= 0 {
		v.path, v.query = v.target[:i], v.target[i+1:]
	}
	v.dpath = decodeInto(s.decode[:0], v.path, false)
	v.dquery = decodeInto(s.decode[len(v.dpath):len(v.dpath)], v.query, true)

	best := -1
	try := func(i int) {
		if (best < 0 || i < best) && rules.holds(i, &v) {
			best = i
		}
	}
	for _, p := range [2][]byte{v.path, v.dpath} {
		if len(p) >= 4 {
			for _, i := range rules.byPrefix[[3]byte{p[1], p[2], p[3]}] {
				try(i)
			}
		}
	}
	// Each header value is lowered once, for the rules on that header
	// and for the generic checks; the first generic finding is kept for
	// when no rule matches.
	var headerFinding string
	for name, vals := range r.Header {
		n, ok := foldName(s.name[:], name)
		if !ok {
			continue
		}
		cands := rules.byHeader[string(n)]
		if len(vals) == 0 {
			vals = []string{""}
		}
		for _, val := range vals {
			val = clip(val, maxHeaderScan)
			b := lowerInto(s.value[:0], val)
			for _, i := range cands {
				if best >= 0 && i > best {
					break
				}
				j := rules.byHeaderCond[i]
				if c := &rules.conds[i][j]; (c.any || bytes.Contains(b, c.text)) && rules.holdsExcept(i, j, &v) {
					best = i
				}
			}
			if headerFinding == "" {
				headerFinding = genericHeader(n, val, b, s)
			}
		}
	}
	for f, text := range [numFields][]byte{v.path, v.dpath, v.query, v.dquery, v.target} {
		rules.found[f].each(text, func(j int) bool { try(rules.ruleOf[f][j]); return true })
	}
	for _, i := range rules.scan {
		try(i)
	}
	if best >= 0 {
		return Signatures[best].Name
	}
	if name := generic(&v); name != "" {
		return name
	}
	return headerFinding
}

func (s *ruleSet) holds(i int, v *view) bool { return s.holdsExcept(i, -1, v) }

// holdsExcept reports whether every condition of rule i but the one at
// skip (already checked) holds.
func (s *ruleSet) holdsExcept(i, skip int, v *view) bool {
	for j := range s.conds[i] {
		if j != skip && !s.conds[i][j].holds(v) {
			return false
		}
	}
	return true
}

func (c *cond) holds(v *view) bool {
	switch c.kind {
	case kindMethod:
		return strings.EqualFold(v.r.Method, string(c.text))
	case kindPrefix:
		return bytes.HasPrefix(v.path, c.text) || bytes.HasPrefix(v.dpath, c.text)
	case kindPath:
		return bytes.Contains(v.path, c.text) || bytes.Contains(v.dpath, c.text)
	case kindQuery:
		return bytes.Contains(v.query, c.text) || bytes.Contains(v.dquery, c.text)
	case kindTarget:
		return bytes.Contains(v.target, c.text)
	case kindURL:
		return bytes.Contains(v.target, c.text) || bytes.Contains(v.dpath, c.text) || bytes.Contains(v.dquery, c.text)
	case kindHeader:
		for name, vals := range v.r.Header {
			if n, ok := foldName(v.scratch.name[:], name); !ok || string(n) != c.header {
				continue
			}
			if c.any {
				return true
			}
			for _, val := range vals {
				if bytes.Contains(lowerInto(v.scratch.other[:0], clip(val, maxHeaderScan)), c.text) {
					return true
				}
			}
		}
	}
	return false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// lowerInto appends s to dst in ASCII lower case.
func lowerInto(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// decodeInto appends src to dst with its percent-escapes decoded once (and
// '+' read as a space if plus), in ASCII lower case. Malformed escapes are
// kept as they are.
func decodeInto(dst, src []byte, plus bool) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '%' && i+2 < len(src) && isHex(src[i+1]) && isHex(src[i+2]):
			c = unhex(src[i+1])<<4 | unhex(src[i+2])
			i += 2
		case c == '+' && plus:
			c = ' '
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
