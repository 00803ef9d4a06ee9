package frontdoor

import (
	_ "embed"
	"fmt"
	"net/http"
	"strings"
)

//go:embed signatures.txt
var signatureData string

// Rule is one known exploit probe.
type Rule struct {
	Name  string
	Where string // "path", "target" or "header:<name>"
	Text  string // lower case; "*" for header rules means any value
}

// Signatures are the built-in rules, parsed from data compiled into the
// binary.
var (
	Signatures    = mustParseSignatures(signatureData)
	headerRules   = map[string][]Rule{} // by header name, lower case, '-' for '_'
	locationRules []Rule                // path and target rules
)

func init() {
	for _, r := range Signatures {
		if name, ok := strings.CutPrefix(r.Where, "header:"); ok {
			headerRules[normalHeader(name)] = append(headerRules[normalHeader(name)], r)
		} else {
			locationRules = append(locationRules, r)
		}
	}
}

func mustParseSignatures(data string) []Rule {
	var rules []Rule
	for i, line := range strings.Split(data, "\n") {
		if line = strings.TrimRight(line, "\r"); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" || f[2] == "" {
			panic(fmt.Sprintf("signatures.txt:%d: want NAME<TAB>WHERE<TAB>TEXT", i+1))
		}
		r := Rule{Name: f[0], Where: f[1], Text: strings.ToLower(f[2])}
		if r.Where != "path" && r.Where != "target" && !strings.HasPrefix(r.Where, "header:") {
			panic(fmt.Sprintf("signatures.txt:%d: unknown place %q", i+1, r.Where))
		}
		rules = append(rules, r)
	}
	return rules
}

// normalHeader folds a header name the way lenient upstream stacks do:
// case-insensitive, '_' read as '-'.
func normalHeader(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// Match returns the name of the first rule r matches, or "". It looks at
// the request as sent (RequestURI), not the canonical form, because a probe
// is recognised by what the attacker wrote.
func Match(r *http.Request) string {
	target := strings.ToLower(r.RequestURI)
	path, _, _ := strings.Cut(target, "?")
	for _, s := range locationRules {
		in := target
		if s.Where == "path" {
			in = path
		}
		if strings.Contains(in, s.Text) {
			return s.Name
		}
	}
	for name, vals := range r.Header {
		for _, s := range headerRules[normalHeader(name)] {
			if s.Text == "*" {
				return s.Name
			}
			for _, v := range vals {
				if strings.Contains(strings.ToLower(v), s.Text) {
					return s.Name
				}
			}
		}
	}
	return ""
}
