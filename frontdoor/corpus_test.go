package frontdoor

import (
	"bufio"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// A corpus file (testdata/probes/*.http, testdata/benign/*.http) holds raw
// HTTP requests as they are sent, separated by lines of "====". Lines are
// written with LF and sent with CRLF. The probe files are named by CVE.
type corpusRequest struct {
	file  string
	n     int // 1-based, within the file
	r     *http.Request
	lax   bool // net/http refuses it; parsed by hand
	first string
}

func readCorpus(t *testing.T, dir string) []corpusRequest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.http"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/%s: %v", dir, err)
	}
	var out []corpusRequest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, chunk := range strings.Split(string(data), "\n====\n") {
			raw := strings.ReplaceAll(strings.ReplaceAll(chunk, "\r\n", "\n"), "\n", "\r\n")
			cr := corpusRequest{file: filepath.Base(f), n: i + 1, first: strings.SplitN(chunk, "\n", 2)[0]}
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				// What net/http refuses (an invalid escape such as
				// %u002e in the path, "chunked, chunked") is answered 400
				// by the server before any handler: Match is still asked,
				// for a gateway that sees such requests some other way.
				r, cr.lax = parseLax(t, raw), true
			}
			cr.r = r
			out = append(out, cr)
		}
	}
	return out
}

// parseLax reads a request line and header fields without judging them.
func parseLax(t *testing.T, raw string) *http.Request {
	t.Helper()
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	f := strings.Fields(lines[0])
	if len(f) != 3 {
		t.Fatalf("request line %q", lines[0])
	}
	r := &http.Request{Method: f[0], RequestURI: f[1], Header: http.Header{}}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("header line %q", l)
		}
		k, v = textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v)
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header[k] = append(r.Header[k], v)
	}
	return r
}

// Every request in the probe corpus is a real exploit request for a CVE of
// a remote-access or edge product (or of an app beside one): at least 90%
// must be recognised, and every CVE at least once.
func TestProbeCorpusDetectionRate(t *testing.T) {
	corpus := readCorpus(t, "probes")
	if len(corpus) < 150 {
		t.Fatalf("%d requests in the probe corpus, want at least 150", len(corpus))
	}
	detected, lax, onApp := 0, 0, 0
	perFile := map[string][2]int{} // detected, total
	byRule := map[string]int{}
	var misses []string
	for _, c := range corpus {
		if c.lax {
			lax++
		}
		n := perFile[c.file]
		n[1]++
		if rule := Match(c.r); rule != "" {
			detected++
			n[0]++
			byRule[rule]++
			if !BroadRule(rule) {
				onApp++
			}
		} else {
			misses = append(misses, c.file+"#"+itoa(c.n)+": "+c.first)
		}
		perFile[c.file] = n
	}
	rate := float64(detected) / float64(len(corpus))
	t.Logf("probe corpus: %d/%d detected (%.1f%%) from %d files; %d refused by net/http before any handler", detected, len(corpus), 100*rate, len(perFile), lax)
	// On an app host without a session, broad rules (path lists) do not
	// count: what is left is detected there.
	appRate := float64(onApp) / float64(len(corpus))
	t.Logf("on an app host: %d/%d detected (%.1f%%)", onApp, len(corpus), 100*appRate)
	rules := make([]string, 0, len(byRule))
	for r := range byRule {
		rules = append(rules, r)
	}
	sort.Strings(rules)
	for _, r := range rules {
		t.Logf("  %-40s %d", r, byRule[r])
	}
	for _, m := range misses {
		t.Logf("missed %s", m)
	}
	for f, n := range perFile {
		if n[0] == 0 {
			t.Errorf("%s: none of %d requests detected", f, n[1])
		}
	}
	if rate < 0.90 || appRate < 0.90 {
		t.Fatalf("detection rate %.1f%% (%.1f%% on an app host), want at least 90%%", 100*rate, 100*appRate)
	}
}

// Ordinary traffic: the sluis login flow, launcher and tunnels, and the
// apps put behind gateways (GitLab, Jupyter, WebDAV and Nextcloud,
// RabbitMQ, Grafana, Confluence, Exchange clients) with real browser
// headers, cookies, tokens and passwords. Not one rule may fire.
func TestBenignCorpusMatchesNothing(t *testing.T) {
	corpus := readCorpus(t, "benign")
	if len(corpus) < 100 {
		t.Fatalf("%d requests in the benign corpus, want at least 100", len(corpus))
	}
	for _, c := range corpus {
		if c.lax {
			t.Errorf("%s#%d: net/http refuses %q", c.file, c.n, c.first)
		}
		if rule := Match(c.r); rule != "" {
			t.Errorf("%s#%d: %q matched rule %s", c.file, c.n, c.first, rule)
		}
	}
	t.Logf("benign corpus: %d requests, none matched", len(corpus))
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
