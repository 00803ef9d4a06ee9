package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
	"github.com/sluis-gateway/sluis/selfcheck"
)

// runSelfcheck runs `sluis selfcheck` with args and returns its output and
// error.
func runSelfcheck(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = cli.Run(context.Background(), append([]string{"sluis", "selfcheck"}, args...), func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func reportOf(t *testing.T, stdout string) *selfcheck.Report {
	t.Helper()
	var rep selfcheck.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("selfcheck --json printed no report: %v\n%s", err, stdout)
	}
	return &rep
}

func find(rep *selfcheck.Report, group, name string) selfcheck.Result {
	for _, r := range rep.Checks {
		if r.Group == group && r.Name == name {
			return r
		}
	}
	return selfcheck.Result{Status: "missing"}
}

// intranetApp is an internal web app as many are: it names its software,
// trusts the proxy's identity headers, redirects after login to whatever
// `next` says, has an admin page and a status page, and serves a page for
// every other path.
func intranetApp(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "Apache/2.4.41 (Ubuntu)")
	w.Header().Set("X-Powered-By", "PHP/7.2.24")
	switch r.URL.Path {
	case "/login":
		if next := r.URL.Query().Get("next"); next != "" {
			http.Redirect(w, r, next, http.StatusFound)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "PHPSESSID", Value: "abc", Path: "/"})
		fmt.Fprint(w, `<form method="post"><input name="user"><input type="password" name="pw"></form>`)
	case "/admin", "/admin/":
		fmt.Fprint(w, "<h1>Admin console</h1><a href=/admin/users>users</a>")
	case "/server-status":
		fmt.Fprint(w, "<h1>Apache Server Status for intranet</h1>")
	default:
		// A wiki: every path is a page.
		if u := r.Header.Get("X-Forwarded-User"); u != "" {
			fmt.Fprintf(w, "Welcome back, %s. ", u)
		}
		fmt.Fprintf(w, "Intranet page %s", r.URL.Path)
	}
}

// naiveGateway is a reverse proxy put together the quick way: httputil's
// single-host proxy behind a TLS listener set up for old clients.
func naiveGateway(t *testing.T) (*httptest.Server, string) {
	app := httptest.NewServer(http.HandlerFunc(intranetApp))
	t.Cleanup(app.Close)
	target, _ := url.Parse(app.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	proxy := httptest.NewUnstartedServer(rp)
	var suites []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		suites = append(suites, s.ID)
	}
	proxy.TLS = &tls.Config{MinVersion: tls.VersionTLS10, CipherSuites: suites}
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0)
	proxy.StartTLS()
	t.Cleanup(proxy.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return proxy, ca
}

// selfcheck must find real problems: against a naive reverse proxy it
// fails, and each failure carries its evidence.
func TestSelfcheckFailsANaiveProxy(t *testing.T) {
	proxy, ca := naiveGateway(t)
	stdout, stderr, err := runSelfcheck(t, proxy.URL+"/login", "--ca", ca, "--json", "--timeout", "2s", "--block-probes", "10")
	if !errors.Is(err, cli.ErrChecksFailed) {
		t.Fatalf("selfcheck of a naive proxy returned %v, want ErrChecksFailed\n%s", err, stderr)
	}
	rep := reportOf(t, stdout)
	if rep.Insecure || find(rep, "tls", "certificate").Status != selfcheck.Pass {
		t.Errorf("the certificate, trusted through --ca, was not verified: %+v", find(rep, "tls", "certificate"))
	}
	want := []struct{ group, name, evidence string }{
		{"tls", "TLS 1.0 refused", "handshake succeeded"},
		{"tls", "no broken cipher suites", "TLS_RSA_WITH_AES_128_CBC_SHA"},
		{"headers", "HSTS", "no Strict-Transport-Security"},
		{"headers", "Content-Security-Policy", "no Content-Security-Policy"},
		{"headers", "framing refused", "clickjacking"},
		{"headers", "cookies", "PHPSESSID without Secure and HttpOnly"},
		{"disclosure", "Server header", "Apache/2.4.41"},
		{"disclosure", "X-Powered-By header", "PHP/7.2.24"},
		{"redirect", "no open redirect from /login", "Location: https://evil.example/"},
		{"admin", "GET /admin", "Admin console"},
		{"admin", "GET /server-status", "Apache Server Status"},
		{"parsing", "encoded dot-segment", "200 OK"},
		{"parsing", "foreign Host", "200 OK"},
		{"parsing", "oversized Host (CitrixBleed)", "200 OK"},
		{"parsing", "absolute-form target (SSRF)", "200 OK"},
		{"parsing", "client identity headers", "reached the application"},
		{"probe", "Citrix CVE-2019-19781 traversal", "GET /vpn/../vpns/cfg/smb.conf: 200 OK, 39 bytes \"Intranet page /vpn/../vpns/cfg/smb.conf\""},
		{"probe", "Next.js CVE-2025-29927 middleware bypass", "Admin console"},
		{"blocking", "probes get the source blocked", "still answers"},
	}
	for _, w := range want {
		r := find(rep, w.group, w.name)
		if r.Status != selfcheck.Fail || !strings.Contains(r.Evidence, w.evidence) {
			t.Errorf("%s %q: %s %q, want fail with evidence containing %q", w.group, w.name, r.Status, r.Evidence, w.evidence)
		}
	}
	// The naive proxy either waits for the body that never comes (a
	// warning) or relays the app's early answer, the login form: which
	// one wins is a matter of timing on the machine, and neither is a
	// failure of the proxy.
	if r := find(rep, "parsing", "huge Content-Length before login (Fortinet CVE-2022-42475)"); !(r.Status == selfcheck.Warn && strings.Contains(r.Evidence, "no answer within")) &&
		!(r.Status == selfcheck.Pass && strings.Contains(r.Evidence, "answered with the login form")) {
		t.Errorf("a body of 115 GB promised before login: %+v", r)
	}
	// Progress went to standard error, a line a check.
	if n := strings.Count(stderr, "\n"); n < len(rep.Checks) {
		t.Errorf("%d progress lines for %d checks:\n%s", n, len(rep.Checks), stderr)
	}
	if t.Failed() {
		t.Logf("report:\n%s", stdout)
	}
}

// Without a CA, the certificate fails; with --insecure it is skipped and
// the report says so. The text report ends with a summary.
func TestSelfcheckCertificateAndTextReport(t *testing.T) {
	proxy, _ := naiveGateway(t)
	stdout, _, err := runSelfcheck(t, proxy.URL+"/", "--timeout", "2s", "--block-probes", "5")
	if !errors.Is(err, cli.ErrChecksFailed) || !strings.Contains(stdout, "FAIL  tls         certificate: ") || !strings.Contains(stdout, "certificate signed by unknown authority") {
		t.Fatalf("an untrusted certificate did not fail the check (%v):\n%s", err, stdout)
	}
	stdout, _, err = runSelfcheck(t, proxy.URL+"/", "--insecure", "--timeout", "2s", "--block-probes", "5")
	for _, s := range []string{
		"SKIP  tls         certificate: not verified (--insecure)",
		"note: certificate checks were skipped (--insecure)",
		"FAIL  probe       Citrix CVE-2019-19781 traversal: ",
		"\nsummary for " + proxy.URL + "/",
		"\nresult: FAIL\n",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("text report lacks %q", s)
		}
	}
	if !errors.Is(err, cli.ErrChecksFailed) || t.Failed() {
		t.Fatalf("selfcheck --insecure: %v\n%s", err, stdout)
	}
}

// Against sluis with its defaults, every check passes: the probes get the
// checking address blocked, which `block list` then shows.
func TestSelfcheckPassesSluis(t *testing.T) {
	up := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: "wiki.sluis.test", Upstream: up.URL, Users: []string{"anna"}})
	stdout, stderr, err := runSelfcheck(t, g.URL(g.Portal, "/"), "--connect", g.Addr(), "--ca", filepath.Join(g.Dir, "data", "ca.pem"), "--json")
	rep := reportOf(t, stdout)
	for _, r := range rep.Checks {
		if r.Status != selfcheck.Pass && r.Status != selfcheck.Skip {
			t.Errorf("%s %q: %s %s", r.Group, r.Name, r.Status, r.Evidence)
		}
	}
	if err != nil || !rep.OK() {
		t.Fatalf("selfcheck of sluis: %v\n%s", err, stderr)
	}
	if len(rep.Checks) < 90 {
		t.Errorf("only %d checks ran", len(rep.Checks))
	}
	if r := find(rep, "blocking", "probes get the source blocked"); r.Status != selfcheck.Pass {
		t.Errorf("blocking: %+v", r)
	}
	if out := g.MustCLI("", "block", "list"); !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "automatic") {
		t.Errorf("block list after the selfcheck:\n%s", out)
	}
	if len(up.requests()) != 0 {
		t.Errorf("%d of the selfcheck's requests reached the app", len(up.requests()))
	}
}

// With blocking out of the way, every parsing attack and exploit probe is
// refused by the front door itself (not by the block), and the blocking
// check is what fails.
func TestSelfcheckSluisRefusesEachAttackOnItsOwn(t *testing.T) {
	g := testenv.StartWith(t, "probes:\n  block_after: 10000\n")
	stdout, _, err := runSelfcheck(t, g.URL(g.Portal, "/"), "--connect", g.Addr(), "--ca", filepath.Join(g.Dir, "data", "ca.pem"), "--json", "--block-probes", "5")
	rep := reportOf(t, stdout)
	if !errors.Is(err, cli.ErrChecksFailed) || rep.Failed != 1 || find(rep, "blocking", "probes get the source blocked").Status != selfcheck.Fail {
		t.Errorf("want exactly the blocking check failed; got %v, %d failed", err, rep.Failed)
	}
	for _, n := range rep.Notes {
		if strings.Contains(n, "refused this source") {
			t.Errorf("the source was blocked: %s", n)
		}
	}
	refusedBy := map[string]int{}
	for _, r := range rep.Checks {
		if r.Group != "parsing" && r.Group != "probe" {
			continue
		}
		if r.Status != selfcheck.Pass {
			t.Errorf("%s %q: %s %s", r.Group, r.Name, r.Status, r.Evidence)
		}
		if strings.Contains(r.Evidence, "source blocked") {
			t.Errorf("%s %q was refused by a block: %s", r.Group, r.Name, r.Evidence)
		}
		_, ans, _ := strings.Cut(r.Evidence, ": ")
		code, _, _ := strings.Cut(ans, " ")
		refusedBy[code]++
	}
	t.Logf("answers to the parsing attacks and probes: %v", refusedBy)
}

// A second run from an address the first run got blocked says so and
// fails, instead of passing on the block's 403s.
func TestSelfcheckFromABlockedAddress(t *testing.T) {
	g := testenv.Start(t)
	args := []string{g.URL(g.Portal, "/"), "--connect", g.Addr(), "--ca", filepath.Join(g.Dir, "data", "ca.pem")}
	if out, _, err := runSelfcheck(t, args...); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	out, _, err := runSelfcheck(t, args...)
	if !errors.Is(err, cli.ErrChecksFailed) || !strings.Contains(out, "FAIL  headers     login page reachable: GET /: 403 Forbidden") || !strings.Contains(out, "may still be blocked by an earlier run") {
		t.Errorf("second run (%v):\n%s", err, out)
	}
}
