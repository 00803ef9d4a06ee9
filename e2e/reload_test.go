package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/slapdtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

const docsHost = "docs.sluis.test"

// editConfig rewrites the running gateway's configuration file: each
// pair of old and new text is replaced once (the test fails if old is not
// there).
func editConfig(t *testing.T, g *testenv.Gateway, pairs ...string) {
	t.Helper()
	data, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("config has no %q:\n%s", pairs[i], s)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(g.ConfigPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lineOf returns the 1-based line of the first line of the file that
// contains text.
func lineOf(t *testing.T, path, text string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q", path, text)
	return 0
}

// heldTunnel is one TCP connection through `sluis connect`, kept open;
// alive checks that it still carries bytes both ways.
type heldTunnel struct {
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func holdTunnel(t *testing.T, addr string) *heldTunnel {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &heldTunnel{conn: conn, r: bufio.NewReader(conn)}
	if err := h.alive(); err != nil {
		t.Fatalf("a new tunnel: %v", err)
	}
	return h
}

func (h *heldTunnel) alive() error {
	h.n++
	msg := fmt.Sprintf("still here %d\n", h.n)
	h.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer h.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(h.conn, msg); err != nil {
		return err
	}
	got, err := h.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("sent %q, got %q back", msg, got)
	}
	return nil
}

// ended waits up to d for the tunnel to be cut, and reports whether it was.
func (h *heldTunnel) ended(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := h.alive(); err != nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Issue 15, item 4: the configuration is read again while the gateway
// serves. An app added answers after `sluis reload`; a rule narrowed
// (here by SIGHUP) refuses the user it leaves out at once, and ends that
// user's open stream and tunnel, while another user's stay; a broken file
// and a file that changes what needs a restart are rejected with
// file:line messages, logged, and the running configuration keeps
// serving. Through all of it, an established tunnel carries on.
func TestReloadWhileServing(t *testing.T) {
	up, docs := newStreamer(t), newUpstream(t)
	echo := newEcho(t)
	g := testenv.Start(t,
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Users: []string{"anna", "bob"}, MFA: true},
		testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna", "bob"}, MFA: true})
	annaSecret, bobSecret := g.AddUser("anna", pw, "staff"), g.AddUser("bob", pw, "staff")
	anna, bob := g.Client(), g.Client()
	for _, u := range []struct {
		c            *http.Client
		name, secret string
	}{{anna, "anna", annaSecret}, {bob, "bob", bobSecret}} {
		if p := g.Login(u.c, g.URL(wikiHost, "/start"), u.name, pw, u.secret); p.StatusCode != 200 {
			t.Fatalf("%s logging in to the wiki: %d", u.name, p.StatusCode)
		}
	}
	annaTunnel := holdTunnel(t, startConnect(t, g, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", annaSecret)).addr)
	bobTunnel := holdTunnel(t, startConnect(t, g, t.TempDir(), "echo", pw+"\n", "--user", "bob", "--password-stdin", "--code", g.Code("bob", bobSecret)).addr)
	annaStream, bobStream := openH2(t, g, anna, "/events"), openH2(t, g, bob, "/events")
	for _, s := range []*openStream{annaStream, bobStream} {
		select {
		case <-s.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing arrived", s.name)
		}
	}
	status := func(c *http.Client, host string) int {
		t.Helper()
		resp, err := c.Get(g.URL(host, "/page"))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tunnelAlive := func(step string) {
		t.Helper()
		if err := annaTunnel.alive(); err != nil {
			t.Fatalf("after %s, anna's established tunnel: %v\n%s", step, err, g.Logs())
		}
	}

	// 1. An app added: unknown before (no certificate names it), in force
	// once `sluis reload` returns.
	if code := status(anna, docsHost); code != 0 && code != http.StatusMisdirectedRequest {
		t.Fatalf("docs before it is configured: %d", code)
	}
	editConfig(t, g, "apps:\n", fmt.Sprintf("apps:\n  - name: docs\n    host: %s\n    upstream: %s\n    allow:\n      users: [anna]\n      mfa: true\n", docsHost, docs.URL))
	if out := g.MustCLI("", "reload"); strings.TrimSpace(out) != "reloaded" {
		t.Fatalf("sluis reload printed %q", out)
	}
	// Anna's session reaches the new app through the portal, without a
	// new login.
	if p := g.Follow(anna, g.Get(anna, g.URL(docsHost, "/page"))); p.StatusCode != 200 {
		t.Fatalf("docs after the reload: %d\n%s", p.StatusCode, p.Body)
	}
	if n := len(docs.requests()); n != 1 {
		t.Errorf("docs' upstream got %d requests, want 1", n)
	}
	tunnelAlive("adding an app")
	for _, s := range []*openStream{annaStream, bobStream} {
		select {
		case <-s.ended:
			t.Fatalf("%s ended by a reload that changed nothing for it: %v", s.name, s.err)
		default:
		}
	}

	// 2. A rule narrowed, by SIGHUP: bob may no longer use the wiki or
	// the echo app.
	logs := strings.Count(g.Logs(), "configuration reloaded")
	editConfig(t, g,
		"  - name: wiki\n    host: wiki.sluis.test\n    upstream: "+up.URL+"\n    essential: false\n    allow:\n      users: [anna, bob]",
		"  - name: wiki\n    host: wiki.sluis.test\n    upstream: "+up.URL+"\n    essential: false\n    allow:\n      users: [anna]",
		"    tcp: "+echo.addr()+"\n    essential: false\n    allow:\n      users: [anna, bob]",
		"    tcp: "+echo.addr()+"\n    essential: false\n    allow:\n      users: [anna]")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, "the reload after SIGHUP", func() bool { return strings.Count(g.Logs(), "configuration reloaded") > logs })
	if code := status(bob, wikiHost); code != http.StatusForbidden {
		t.Errorf("bob on the wiki after the narrowed rule: %d, want 403", code)
	}
	if code := status(anna, wikiHost); code != http.StatusOK {
		t.Errorf("anna on the wiki after the narrowed rule: %d, want 200", code)
	}
	select {
	case <-bobStream.ended:
		if bobStream.err == nil || errors.Is(bobStream.err, io.EOF) {
			t.Errorf("bob's stream ended cleanly (%v); want a cut", bobStream.err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("bob's open stream still flows 5s after the reload")
	}
	if !bobTunnel.ended(5 * time.Second) {
		t.Errorf("bob's tunnel still carries bytes 5s after the reload")
	}
	select {
	case <-annaStream.ended:
		t.Fatalf("anna's stream ended by the reload: %v", annaStream.err)
	default:
	}
	tunnelAlive("narrowing a rule")

	// 3. Rejected: a broken file, a file that changes the listener, and a
	// file that changes the listener and a rule (nothing of it applies).
	good, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		edit  []string
		want  func(path string) []string
		fixed bool // only a setting that needs a restart changed
	}{
		{"broken", []string{"    host: " + docsHost + "\n", "    host: " + docsHost + "\n    bogus: 1\n", "  lifetime: 12h\n", "  lifetime: soon\n"},
			func(path string) []string {
				return []string{fmt.Sprintf("%s:%d: apps[0].bogus: unknown key", path, lineOf(t, path, "bogus:")),
					fmt.Sprintf("%s:%d: session.lifetime", path, lineOf(t, path, "lifetime: soon"))}
			}, false},
		{"listen changed", []string{"listen: 127.0.0.1:0\n", "listen: 127.0.0.1:1\n"},
			func(path string) []string {
				return []string{fmt.Sprintf("%s:1: listen: listen cannot change while running (restart sluis serve)", path)}
			}, true},
		{"listen and a rule changed", []string{"listen: 127.0.0.1:0\n", "listen: 127.0.0.1:1\n", "      users: [anna]\n      mfa: true\n", "      users: [bob]\n      mfa: true\n"},
			func(path string) []string {
				return []string{fmt.Sprintf("%s:1: listen: listen cannot change while running (restart sluis serve)", path)}
			}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(g.ConfigPath, good, 0o600); err != nil {
				t.Fatal(err)
			}
			editConfig(t, g, tt.edit...)
			out, err := g.CLI("", "reload")
			if !errors.Is(err, cli.ErrReloadRejected) || cli.ExitCode(err) == 0 {
				t.Fatalf("sluis reload of a %s file: %v\n%s", tt.name, err, out)
			}
			t.Logf("sluis reload:\n%s", out)
			for _, want := range tt.want(g.ConfigPath) {
				if !strings.Contains(out, want) {
					t.Errorf("sluis reload printed no %q:\n%s", want, out)
				}
				if !strings.Contains(g.Logs(), "reload rejected: "+want) {
					t.Errorf("the gateway logged no %q", want)
				}
			}
			if strings.Contains(out, "reloaded") {
				t.Errorf("a rejected reload printed %q", out)
			}
			// What was in force stays in force.
			if p := g.Get(anna, g.URL(docsHost, "/page")); p.StatusCode != 200 {
				t.Errorf("docs after a rejected reload: %d", p.StatusCode)
			}
			if code := status(bob, wikiHost); code != http.StatusForbidden {
				t.Errorf("bob on the wiki after a rejected reload: %d, want 403 still", code)
			}
			tunnelAlive("a rejected reload")
		})
	}
	if err := os.WriteFile(g.ConfigPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := g.MustCLI("", "reload"); strings.TrimSpace(out) != "reloaded" {
		t.Fatalf("sluis reload of the good file again printed %q", out)
	}
	tunnelAlive("reloading the good file again")
	select {
	case <-annaStream.ended:
		t.Fatalf("anna's stream ended during the reloads: %v", annaStream.err)
	default:
	}
	if logs := g.Logs(); !regexp.MustCompile(`reload rejected; the running configuration stays in force.*problems=2`).MatchString(logs) {
		t.Errorf("the rejection of the broken file is not logged with its count of problems:\n%s", logs)
	}
}

// `sluis reload` without a gateway running says so and fails.
func TestReloadWithoutGateway(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/sluis.yaml"
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nportal: login.sluis.test\ndata_dir: data\ntls:\n  self_signed: true\napps: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	err := cli.Run(t.Context(), []string{"sluis", "--config", cfg, "reload"}, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if err == nil || cli.ExitCode(err) == 0 || !strings.Contains(err.Error(), "no gateway is running") {
		t.Fatalf("sluis reload without a gateway: %v\n%s%s", err, out.String(), errb.String())
	}
}

// wrkCount is a wrk script that counts the responses by whether they are
// 200, and prints the counts at the end.
const wrkCount = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0; statuses = "" end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else
    bad = bad + 1
    if bad <= 5 then statuses = statuses .. " " .. status end
  end
end
function done(summary, latency, requests)
  local o, b, s = 0, 0, ""
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad"); s = s .. t:get("statuses") end
  io.write(string.format("sluis-ok %d\nsluis-bad %d\nsluis-statuses%s\n", o, b, s))
end
`

// Issue 15's check of item 4: wrk loads an app for 10 s while the
// configuration is reloaded every second between two files that both
// allow the request (they differ in the rule's form, another app, the
// session's idle timeout and the probe limits). No request fails: every
// answer is a 200, and wrk reports no socket errors.
func TestReloadUnderLoad(t *testing.T) {
	wrk := needTool(t, "wrk", "wrk")
	app := httptestOK(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: app, Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/start"), "anna", pw, secret); p.StatusCode != 200 {
		t.Fatalf("logging in to the wiki: %d", p.StatusCode)
	}
	u, _ := url.Parse(g.URL(wikiHost, "/"))
	var cookies []string
	for _, ck := range c.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	first, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	editConfig(t, g,
		"  idle_timeout: 30m\n", "  idle_timeout: 45m\n",
		"apps:\n", "probes:\n  block_after: 20\napps:\n  - name: docs\n    host: "+docsHost+"\n    upstream: "+app+"\n    allow:\n      users: [anna]\n      mfa: true\n",
		"    allow:\n      users: [anna]\n      groups: []\n      mfa: true\n", "    allow:\n      - paths: [/admin/]\n        users: [nobody]\n      - groups: [staff]\n        mfa: true\n")
	second, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "count.lua")
	if err := os.WriteFile(script, []byte(wrkCount), 0o600); err != nil {
		t.Fatal(err)
	}
	const load = 10 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), load+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrk, "-t2", "-c16", fmt.Sprintf("-d%ds", int(load.Seconds())), "--timeout", "5s", "-s", script,
		"-H", "Host: "+wikiHost, "-H", "Cookie: "+strings.Join(cookies, "; "), fmt.Sprintf("https://127.0.0.1:%d/page", g.Port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	reloads := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for files := [][]byte{second, first}; ; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("wrk: %v\n%s", err, out.String())
			}
			break loop
		case <-tick.C:
		}
		if err := os.WriteFile(g.ConfigPath, files[reloads%2], 0o600); err != nil {
			t.Fatal(err)
		}
		if res := g.MustCLI("", "reload"); strings.TrimSpace(res) != "reloaded" {
			t.Fatalf("reload %d printed %q", reloads+1, res)
		}
		reloads++
	}
	s := out.String()
	t.Logf("%d reloads under load:\n%s", reloads, s)
	m := regexp.MustCompile(`sluis-ok (\d+)\nsluis-bad (\d+)\n`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no counts in wrk's output:\n%s", s)
	}
	ok, _ := strconv.Atoi(m[1])
	if m[2] != "0" || strings.Contains(s, "Socket errors") || strings.Contains(s, "Non-2xx") {
		t.Errorf("requests failed under reloads (answers other than 200: %s)", m[2])
	}
	if ok < 1000 {
		t.Errorf("only %d requests answered in %s: the load did not load", ok, load)
	}
	if reloads < 8 {
		t.Errorf("only %d reloads in %s", reloads, load)
	}
}

// httptestOK is an app that answers every request with a small 200.
func httptestOK(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Providers follow a reload: a directory added lets its users log in, a
// directory whose password file is missing is refused (the files a
// configuration names are checked as `sluis config check` checks them,
// at their line), and a directory removed lets them in no more, while
// local users log in throughout.
func TestReloadDirectory(t *testing.T) {
	s := slapdtest.Start(t)
	up := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	g.AddUser("local-admin", pw, "staff")
	passwordStep := func(user, password string) (int, string) {
		p := g.SubmitPassword(g.Client(), "", user, password)
		return p.StatusCode, p.Header.Get("Location")
	}
	directoryUser := func(want bool) {
		t.Helper()
		code, loc := passwordStep("carol", "carol-pass")
		if got := code == http.StatusSeeOther && strings.HasPrefix(loc, "/enroll"); got != want {
			t.Fatalf("carol's password step: %d %q; want a directory user: %v", code, loc, want)
		}
		if code, loc := passwordStep("local-admin", pw); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/mfa") {
			t.Fatalf("the local user's password step: %d %q", code, loc)
		}
	}
	directoryUser(false)
	withoutLDAP, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	editConfig(t, g, "apps:\n", ldapConfig(s)+"apps:\n")
	g.MustCLI("", "reload")
	directoryUser(true)

	withLDAP, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	editConfig(t, g, s.PasswordFile, s.PasswordFile+".gone")
	out, err := g.CLI("", "reload")
	want := fmt.Sprintf("%s:%d: ldap.bind_password_file: ", g.ConfigPath, lineOf(t, g.ConfigPath, "bind_password_file"))
	if !errors.Is(err, cli.ErrReloadRejected) || !strings.Contains(out, want) {
		t.Fatalf("a missing password file: %v, want a line starting %q:\n%s", err, want, out)
	}
	directoryUser(true)

	if err := os.WriteFile(g.ConfigPath, withoutLDAP, 0o600); err != nil {
		t.Fatal(err)
	}
	g.MustCLI("", "reload")
	directoryUser(false)
	if err := os.WriteFile(g.ConfigPath, withLDAP, 0o600); err != nil {
		t.Fatal(err)
	}
	g.MustCLI("", "reload")
	directoryUser(true)
}
