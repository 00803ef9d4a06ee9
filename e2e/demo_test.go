package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
}
