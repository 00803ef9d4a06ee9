package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/frontdoor"
)

type attack struct {
	class, desc string
	lines       []string
	body        *string
}

// parseCorpus reads testdata/attacks.txt (its format is described at its
// top).
func parseCorpus(t *testing.T, path string) []attack {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []attack
	var cur *attack
	inBody := false
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "=== "); ok {
			class, desc, _ := strings.Cut(rest, " | ")
			out = append(out, attack{class: class, desc: desc})
			cur, inBody = &out[len(out)-1], false
			continue
		}
		if cur == nil {
			continue // the header comments
		}
		switch {
		case line == "--body--" && !inBody:
			inBody = true
			empty := ""
			cur.body = &empty
		case inBody:
			if *cur.body != "" || strings.HasSuffix(*cur.body, "\r\n") {
				*cur.body += "\r\n"
			}
			*cur.body += line
		default:
			cur.lines = append(cur.lines, line)
		}
	}
	return out
}

// unescape turns \xHH into bytes.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// The attack corpus: every request of it, byte for byte over TLS, first
// without and then with a valid session. Nothing unauthenticated reaches
// the upstream; what does reach it carries the gateway's identity, a
// canonical path and none of the client's trust headers; no response holds
// a secret, a stack trace or another user's data; the gateway stays up.
func TestAttackCorpus(t *testing.T) {
	w := setup(t)
	g := w.g
	c, secret := w.loggedIn(t, "anna", "staff")
	token := func(host string) string {
		u, _ := url.Parse(g.URL(host, "/"))
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == "__Host-sluis" {
				return ck.Value
			}
		}
		t.Fatalf("no session cookie for %s", host)
		return ""
	}
	appTok, portalTok := token(wikiHost), token(g.Portal)
	attacks := parseCorpus(t, "testdata/attacks.txt")
	if len(attacks) < 150 {
		t.Fatalf("corpus has %d requests, want at least 150", len(attacks))
	}
	classes := map[string]int{}
	for _, a := range attacks {
		classes[a.class]++
	}
	for i := 1; i <= 11; i++ {
		if classes[strconv.Itoa(i)] == 0 {
			t.Errorf("no request for THREATS.md class %d", i)
		}
	}
	secrets := []string{appTok, portalTok, pw, secret, "PRIVATE KEY", "goroutine ", ".go:", "panic:", "runtime error"}
	replacer := strings.NewReplacer("{APP_PORT}", fmt.Sprintf("%s:%d", wikiHost, g.Port), "{APP_UPPER}", strings.ToUpper(wikiHost),
		"{APP_TOKEN}", appTok, "{PORTAL_TOKEN}", portalTok, "{APP}", wikiHost, "{PORTAL}", g.Portal)

	before := len(w.wiki.requests())
	for pass, authenticated := range []bool{false, true} {
		for i, a := range attacks {
			lines := append([]string(nil), a.lines...)
			if authenticated && len(lines) > 0 {
				joined := strings.Join(lines, "\n")
				if !strings.Contains(joined, "Cookie:") && (strings.Contains(joined, "Host: {APP}") || strings.Contains(joined, "Host: {PORTAL}")) {
					tok := "{APP_TOKEN}"
					if strings.Contains(joined, "Host: {PORTAL}") {
						tok = "{PORTAL_TOKEN}"
					}
					lines = append([]string{lines[0], "Cookie: __Host-sluis=" + tok}, lines[1:]...)
				}
			}
			raw := unescape(replacer.Replace(strings.Join(lines, "\r\n"))) + "\r\n\r\n"
			if a.body != nil {
				raw += unescape(replacer.Replace(*a.body))
			}
			sni := g.Portal
			if strings.Contains(strings.Join(a.lines, "\n"), "{APP}") {
				sni = wikiHost
			}
			// Each request from its own address, so the probe blocking of
			// one does not decide the answer to the next.
			src := fmt.Sprintf("127.0.%d.%d", 10+pass, 1+i%250)
			status, resp := sendRaw(t, g.Addr(), src, g.TLSConfig(sni), raw)
			for _, s := range secrets {
				if strings.Contains(resp, s) {
					t.Errorf("%s %q (authenticated %v): response contains %q:\n%.600s", a.class, a.desc, authenticated, s, resp)
				}
			}
			if !authenticated && strings.Contains(resp, "anna") {
				t.Errorf("%s %q: an unauthenticated response shows another user's data:\n%.600s", a.class, a.desc, resp)
			}
			if os.Getenv("SLUIS_CORPUS_VERBOSE") != "" {
				t.Logf("%v %s %-45.45s -> %d", authenticated, a.class, a.desc, status)
			}
		}
		if !authenticated {
			if n := len(w.wiki.requests()) - before; n != 0 {
				for _, r := range w.wiki.requests()[before:] {
					t.Errorf("unauthenticated request reached the upstream: %s %s", r.Method, r.RequestURI)
				}
			}
		}
	}
	got := w.wiki.requests()[before:]
	if len(got) < 20 {
		t.Fatalf("only %d authenticated requests reached the upstream; the corpus is not exercising the proxy", len(got))
	}
	for _, r := range got {
		if r.Header.Get("X-Sluis-User") != "anna" || r.Header.Get("X-Sluis-Assertion") == "" {
			t.Errorf("%s reached the upstream without the gateway's identity: %v", r.RequestURI, r.Header)
		}
		path, _, err := frontdoor.Canonicalize(r.RequestURI)
		if err != nil || path != r.URL.Path {
			t.Errorf("upstream got a non-canonical target %q (%v)", r.RequestURI, err)
		}
		for name := range r.Header {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if frontdoor.Spoofable(name) && n != "x-sluis-user" && n != "x-sluis-groups" && n != "x-sluis-assertion" &&
				n != "x-forwarded-for" && n != "x-forwarded-host" && n != "x-forwarded-proto" {
				t.Errorf("%s: client header %s reached the upstream", r.RequestURI, name)
			}
		}
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) != 1 || !strings.HasPrefix(xff[0], "127.0.11.") {
			t.Errorf("%s: X-Forwarded-For %q", r.RequestURI, xff)
		}
		if r.Header.Get("X-Forwarded-Host") != fmt.Sprintf("%s:%d", wikiHost, g.Port) {
			t.Errorf("%s: X-Forwarded-Host %q", r.RequestURI, r.Header.Get("X-Forwarded-Host"))
		}
		if strings.Contains(strings.Join(r.Header.Values("Cookie"), ";"), "__Host-sluis") {
			t.Errorf("%s: the session cookie reached the upstream", r.RequestURI)
		}
		if r.URL.Path == "/smuggled" {
			t.Errorf("a smuggled request reached the upstream")
		}
	}
	// Still up, still working.
	req, _ := http.NewRequest("GET", g.URL(wikiHost, "/after"), nil)
	if p := g.Do(c, req); p.StatusCode != 200 {
		t.Fatalf("after the corpus: %d", p.StatusCode)
	}
	t.Logf("%d requests in %d classes, twice; %d reached the upstream with a session", len(attacks), len(classes), len(got))
}

// sendRaw writes raw on a fresh TLS connection from src and returns the
// status and the whole response as text ("" if the gateway closed it).
func sendRaw(t *testing.T, addr, src string, conf *tls.Config, raw string) (int, string) {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	conn.Write([]byte(raw))
	br := bufio.NewReader(io.LimitReader(conn, 1<<20))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var head strings.Builder
	resp.Header.Write(&head)
	return resp.StatusCode, resp.Status + "\n" + head.String() + "\n" + string(body)
}
