package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// zitadelOP is the example OpenID provider of github.com/zitadel/oidc, a
// maintained OIDC library, built and run on loopback. Its users are
// test-user@localhost and test-user2, password verysecure; its client
// "web" has the secret "secret".
const zitadelOP = "github.com/zitadel/oidc/v3/example/server@v3.52.0"

func startOP(t *testing.T, port int, redirect string) (stop func()) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("go not found to build the OIDC provider, and SLUIS_REQUIRE_INTEGRATION=1")
		}
		t.Skip("go not found to build the OIDC provider")
	}
	bin := t.TempDir()
	install := exec.Command(goBin, "install", zitadelOP)
	install.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("building the OIDC provider: %v\n%s", err, out)
		}
		t.Skipf("cannot build the OIDC provider: %v", err)
	}
	cmd := exec.Command(filepath.Join(bin, "server"))
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "REDIRECT_URI="+redirect)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	await(t, 20*time.Second, "the OIDC provider", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/.well-known/openid-configuration", port))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return stop
}

// ssoClient is a browser that reaches the gateway's hosts at the gateway
// and everything else (the provider) where it is.
func ssoClient(g *testenv.Gateway) *http.Client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar: jar,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: g.CA},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if strings.HasSuffix(strings.Split(addr, ":")[0], ".sluis.test") {
					addr = g.Addr()
				}
				return d.DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// follow follows redirects until the gateway's portal answers with a page
// or sends the browser to one of its own steps.
func follow(t *testing.T, c *http.Client, resp *http.Response) *http.Response {
	for i := 0; i < 10 && resp.StatusCode >= 300 && resp.StatusCode < 400; i++ {
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(loc.Hostname(), ".sluis.test") && !strings.HasPrefix(loc.Path, "/login/oidc/") {
			return resp // back at sluis
		}
		resp.Body.Close()
		if resp, err = c.Get(loc.String()); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

// Single sign-on with a real OIDC provider: the button on the login page,
// the provider's login, the code flow with PKCE, state and nonce back at
// sluis, the user recorded with groups from a configured claim, and
// sluis's own second factor next (the provider's amr is only "pwd").
// A callback that this browser did not start is refused.
func TestOIDCLogin(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	opPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	secret := filepath.Join(dir, "oidc-secret")
	os.WriteFile(secret, []byte("secret\n"), 0o600)
	up := newUpstream(t)
	g := testenv.StartWith(t, fmt.Sprintf(`oidc:
  - name: idp
    title: Example IdP
    issuer: http://localhost:%d/
    client_id: web
    client_secret_file: %s
    groups_claim: locale
    groups: {de: staff}
    mfa_amr: [mfa, hwk, otp]
  - name: down
    issuer: http://localhost:1/
    client_id: web
    client_secret_file: %s
`, opPort, secret, secret), testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	stop := startOP(t, opPort, g.URL(g.Portal, "/login/oidc/idp/callback"))
	ssoLogin(t, g, opPort)
	users := g.MustCLI("", "user", "list")
	if !regexp.MustCompile(`test-user@localhost\s+staff\s+no\s+oidc:idp`).MatchString(users) {
		t.Fatalf("user list after single sign-on:\n%s", users)
	}
	if a := g.MustCLI("", "audit"); !strings.Contains(a, "single sign-on with idp; second factor next") {
		t.Errorf("audit:\n%s", a)
	}

	// The provider starts again with a new signing key (the example
	// provider makes one at each start): the next login verifies with it,
	// fetched on sight.
	stop()
	startOP(t, opPort, g.URL(g.Portal, "/login/oidc/idp/callback"))
	ssoLogin(t, g, opPort)

	// A callback with a state this browser never got is refused, and the
	// provider is not asked.
	other := ssoClient(g)
	p := g.Get(other, g.URL(g.Portal, "/login/oidc/idp/callback?code=x&state=y"))
	if p.StatusCode != http.StatusBadRequest || !strings.Contains(p.Body, "not started here") {
		t.Fatalf("a foreign callback: %d\n%s", p.StatusCode, p.Body)
	}
	// A provider that cannot be reached: a clear message, the password
	// form still there.
	p = g.Get(other, g.URL(g.Portal, "/login/oidc/down"))
	if p.StatusCode != http.StatusServiceUnavailable || !strings.Contains(p.Body, "cannot be reached") || !strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("an unreachable provider: %d\n%s", p.StatusCode, p.Body)
	}
}

// ssoLogin goes through the provider's login with the example user and
// checks that sluis asks for its own second factor next.
func ssoLogin(t *testing.T, g *testenv.Gateway, opPort int) {
	t.Helper()
	c := ssoClient(g)
	page := g.Get(c, g.URL(g.Portal, "/login?rd="+url.QueryEscape(g.URL(wikiHost, "/page"))))
	m := regexp.MustCompile(`href="(/login/oidc/idp[^"]*)"`).FindStringSubmatch(page.Body)
	if m == nil || !strings.Contains(page.Body, "Log in with Example IdP") {
		t.Fatalf("no single sign-on button on the login page:\n%s", page.Body)
	}
	resp, err := c.Get(g.URL(g.Portal, strings.ReplaceAll(m[1], "&amp;", "&")))
	if err != nil {
		t.Fatal(err)
	}
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "code_challenge_method=S256") || !strings.Contains(loc, "nonce=") || !strings.Contains(loc, "state=") {
		t.Fatalf("start: %d %q", resp.StatusCode, loc)
	}
	// The provider's own login page.
	resp = follow(t, c, resp)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(string(body))
	if id == nil {
		t.Fatalf("the provider's login page: %d\n%s", resp.StatusCode, body)
	}
	resp, err = c.PostForm(fmt.Sprintf("http://localhost:%d/login/username", opPort), url.Values{"id": {id[1]}, "username": {"test-user@localhost"}, "password": {"verysecure"}})
	if err != nil {
		t.Fatal(err)
	}
	resp = follow(t, c, resp)
	resp.Body.Close()
	// Back at sluis: the provider checked the password; sluis's own
	// second factor is next (its enrolment, at a first login).
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/enroll") {
		t.Fatalf("after the provider: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
