package e2e

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/changes"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// `sluis connect` reconnects by itself when the gateway goes away and
// comes back (a restart, or a node drained on SIGTERM), with the login it
// holds: no new login, the same token. A connection that was open is cut
// at the end of the shutdown grace (and audited so); one made while the
// gateway is away waits for it and goes through once it is back; new ones
// go through at once after that.
//
// With the gateway's store unreachable, the gateway answers 503 and the
// client waits in the same way; an open tunnel is cut once the store's
// revision has gone unread for changes.StaleAfter (what was revoked
// meanwhile cannot be known), and the client goes on when the store is
// back, without a restart of either.
func TestConnectReconnectsByItself(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tunnelOpen bool
		storeDown  bool // the store goes away instead of the gateway
	}{
		{"gateway restarted", false, false},
		{"gateway drained with a tunnel open", true, false},
		{"store unreachable with a tunnel open", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const grace = time.Second
			echo := newEcho(t)
			g := testenv.StartWith(t, "connections:\n  shutdown_grace: "+grace.String()+"\n",
				testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
			secret := g.AddUser("anna", pw, "staff")
			dir := t.TempDir()
			c := startConnect(t, g, dir, "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
			if err := roundTrip(t, c.addr, 1000); err != nil {
				t.Fatal(err)
			}
			token := savedLogins(t, dir)["anna"]
			logins := strings.Count(g.MustCLI("", "audit"), "login.success")

			var open net.Conn
			if tc.tunnelOpen {
				var err error
				if open, err = net.Dial("tcp", c.addr); err != nil {
					t.Fatal(err)
				}
				defer open.Close()
				if _, err := open.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 5)
				if _, err := io.ReadFull(open, buf); err != nil || string(buf) != "hello" {
					t.Fatalf("the open tunnel: %q %v", buf, err)
				}
			}

			sigterm := time.Now()
			if tc.storeDown {
				g.StoreDown()
			} else {
				g.Terminate()
			}
			if tc.tunnelOpen {
				// The open connection lasts the grace (or, with the store
				// away, until its revision is stale), then is cut.
				lasts := grace
				if tc.storeDown {
					lasts = changes.StaleAfter
				}
				open.SetReadDeadline(time.Now().Add(lasts + 5*time.Second))
				n, err := open.Read(make([]byte, 1))
				if n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
					t.Fatalf("the open tunnel after the gateway went away: %d bytes, %v", n, err)
				}
				if cut := time.Since(sigterm); cut < lasts {
					t.Errorf("the open tunnel was cut %s after the gateway went away, before %s", cut, lasts)
				} else {
					t.Logf("the open tunnel was cut %s after the gateway went away", cut)
				}
			}
			if !tc.storeDown {
				if err := g.Exited(grace + 5*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			// A connection made while the gateway is away waits for it.
			pending := make(chan error, 1)
			go func() { pending <- roundTrip(t, c.addr, 1000) }()
			await(t, 10*time.Second, "the client to notice the gateway is gone", func() bool {
				return strings.Contains(c.stderr.String(), "the gateway is not available")
			})

			started := time.Now()
			n := g
			if tc.storeDown {
				g.StoreUp()
			} else {
				n = g.Restart()
			}
			back := time.Now()
			t.Logf("the gateway was away %s (its return took %s)", back.Sub(sigterm).Round(time.Millisecond), back.Sub(started).Round(time.Millisecond))
			select {
			case err := <-pending:
				if err != nil {
					t.Fatalf("the connection made while the gateway was away: %v\n%s", err, c.stderr)
				}
				t.Logf("the connection made while the gateway was away went through %s after it was back", time.Since(back).Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				t.Fatalf("the connection made while the gateway was away did not go through within 10s of its return\n%s", c.stderr)
			}
			await(t, 5*time.Second, "the client to say it reconnected", func() bool {
				return strings.Contains(c.stderr.String(), "reconnected to the gateway after")
			})
			if err := roundTrip(t, c.addr, 100000); err != nil {
				t.Fatalf("a new connection after the return: %v\n%s", err, c.stderr)
			}
			if now := savedLogins(t, dir)["anna"]; now != token {
				t.Errorf("the saved login changed across the restart")
			}
			audit := n.MustCLI("", "audit")
			if got := strings.Count(audit, "login.success"); got != logins {
				t.Errorf("%d logins after the restart, %d before: the client logged in again", got, logins)
			}
			if want := "cut: the gateway shut down"; tc.tunnelOpen && !tc.storeDown && !strings.Contains(audit, want) {
				t.Errorf("the cut tunnel is not audited as %q:\n%s", want, audit)
			}
			t.Logf("client log:\n%s", c.stderr)
		})
	}
}

// Reconnecting holds only within the session's validity: a login revoked
// while the gateway was away is not used again; the client says to log in
// again and stops.
func TestConnectReconnectStopsWhenTheLoginEnded(t *testing.T) {
	echo := newEcho(t)
	g := testenv.StartWith(t, "connections:\n  shutdown_grace: 1s\n", testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true})
	secret := g.AddUser("anna", pw, "staff")
	c := startConnect(t, g, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g.Code("anna", secret))
	if err := roundTrip(t, c.addr, 1000); err != nil {
		t.Fatal(err)
	}
	g.Terminate()
	if err := g.Exited(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The operator's CLI works while the gateway is down.
	g.MustCLI("", "session", "revoke", "--user", "anna")
	pending := make(chan error, 1)
	go func() { pending <- roundTrip(t, c.addr, 1000) }()
	g.Restart()
	if err := <-pending; err == nil {
		t.Fatal("a connection went through with a revoked login")
	}
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		if err == nil || !strings.Contains(c.stderr.String(), "log in") {
			t.Fatalf("sluis connect ended with %v:\n%s", err, c.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("sluis connect goes on with a revoked login:\n%s", c.stderr)
	}
	if strings.Contains(c.stderr.String(), "reconnected") {
		t.Errorf("the client says it reconnected with a revoked login:\n%s", c.stderr)
	}
	t.Logf("client log:\n%s", c.stderr)
}
