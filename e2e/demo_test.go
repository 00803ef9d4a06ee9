package e2e

import (
	"context"
	"html"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/cli"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// A newcomer runs `sluis demo` and logs in with what it prints.
func TestDemoWorksWithWhatItPrints(t *testing.T) {
	data := filepath.Join(t.TempDir(), "demo")
	g := testenv.Run(t, data, "sluis", "demo", "--listen", "127.0.0.1:0", "--data", data)
	g.Portal = "login.localhost"
	g.WaitOutput("Press Ctrl-C to stop.")
	out := g.Stdout()
	field := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("demo output lacks %s:\n%s", re, out)
		}
		return m[1]
	}
	open := field(`Open\s+(https://\S+)/`)
	user := field(`User\s+(\S+)`)
	password := field(`Password\s+(\S+)`)
	secret := field(`TOTP\s+secret\s+([A-Z2-7]+)`)
	if open != g.URL("demo.localhost", "") || !strings.Contains(out, "127.0.0.1 login.localhost demo.localhost") ||
		!strings.Contains(out, filepath.Join(data, "ca.pem")) {
		t.Fatalf("demo instructions:\n%s", out)
	}
	c := g.Client()
	p := g.Login(c, open+"/", user, password, secret)
	if p.StatusCode != 200 || !strings.Contains(p.Body, "Hello, demo") || !strings.Contains(p.Body, "valid signature; subject demo") {
		t.Fatalf("demo app: %d\n%s", p.StatusCode, p.Body)
	}

	// The tunnel command it prints works too (logging in with --user, as a
	// script would, instead of a browser), and the launcher shows the same
	// one, to copy as shown.
	cmd := field(`(sluis connect echo --gateway \S+ --connect \S+ --ca \S+)`)
	launcher := g.Get(c, g.URL(g.Portal, "/"))
	m := regexp.MustCompile(`<code class="command" id="cmd-echo">([^<]+)</code>`).FindStringSubmatch(launcher.Body)
	if m == nil || html.UnescapeString(m[1]) != cmd || !strings.Contains(launcher.Body, `data-copy="cmd-echo"`) {
		t.Fatalf("the launcher's command is not the printed %q:\n%s", cmd, launcher.Body)
	}
	args := strings.Fields(cmd)[2:] // after "sluis connect"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncWriter{}, &syncWriter{}
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() {
		done <- cli.Run(ctx, append(append([]string{"sluis", "connect"}, args...), "--user", user, "--password-stdin", "--code", g.Code(user, secret)),
			func(k string) string {
				if k == "XDG_CONFIG_HOME" {
					return dir
				}
				return ""
			}, strings.NewReader(password+"\n"), stdout, stderr)
	}()
	listenRE := regexp.MustCompile(`on (127\.0\.0\.1:\d+)`)
	await(t, 20*time.Second, "sluis connect listening", func() bool {
		select {
		case err := <-done:
			t.Fatalf("sluis connect ended: %v\n%s", err, stderr)
		default:
		}
		return listenRE.MatchString(stdout.String())
	})
	if err := roundTrip(t, listenRE.FindStringSubmatch(stdout.String())[1], 100000); err != nil {
		t.Fatalf("the demo's echo through the tunnel: %v", err)
	}
	cancel()
	<-done
}
