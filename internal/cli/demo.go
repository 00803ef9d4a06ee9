package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/demo"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/mfa"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const (
	demoPortal = "login.localhost"
	demoHost   = "demo.localhost"
	demoUser   = "demo"
)

// demo runs a gateway with a built-in app and a ready user, for a first
// look. Its data lives in a temporary folder unless --data names one.
func (e *env) demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8443", "address of the gateway")
	dataDir := fs.String("data", "", "data folder (default: a temporary one, removed at exit)")
	if pos, err := parseFlags(fs, args, e.stderr); err != nil || len(pos) > 0 {
		return ErrUsage
	}
	if *dataDir == "" {
		dir, err := os.MkdirTemp("", "sluis-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*dataDir = dir
	}

	// The demo app: a plain HTTP upstream on loopback.
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var signer atomic.Pointer[assertion.Signer]
	var issuer, audience atomic.Value
	issuer.Store("")
	audience.Store("")
	appSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := signer.Load()
			if s == nil {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			demo.Handler(s.JWKS, issuer.Load().(string), audience.Load().(string)).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go appSrv.Serve(appLn)
	defer appSrv.Close()

	// A TCP app for tunnels: an echo service on loopback.
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer echoLn.Close()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Minute))
				io.Copy(c, io.LimitReader(c, 64<<20))
			}()
		}
	}()

	yaml := fmt.Sprintf(`listen: %q
portal: %s
data_dir: %q
tls:
  self_signed: true
branding:
  title: sluis demo
  help:
    text: "A demo on this machine: the user, password and codes are in its output. / Een demo op deze computer: gebruiker, wachtwoord en codes staan in de uitvoer."
apps:
  - name: demo
    host: %s
    title: Demo app
    description: "Shows what the app receives from the gateway. / Toont wat de app van de gateway ontvangt."
    upstream: http://%s
    allow:
      groups: [staff]
      mfa: true
  - name: echo
    tcp: %s
    title: Echo (TCP)
    description: "Sends back what you type, through a tunnel. / Stuurt terug wat u typt, door een tunnel."
    allow:
      groups: [staff]
      mfa: true
`, *listen, demoPortal, *dataDir, demoHost, appLn.Addr(), echoLn.Addr())
	c, err := config.Parse("(demo)", []byte(yaml))
	if err != nil {
		return err
	}
	// The launcher's tunnel command works as shown, like the one printed
	// below: *.localhost is not in every resolver, and the CA is the demo's.
	c.ConnectVia, c.ConnectCA = "127.0.0.1", filepath.Join(c.DataDir, "ca.pem")
	password, secret, err := demoSetup(e.ctx, c)
	if err != nil {
		return err
	}
	return e.serveConfig(c, func(port int, s *assertion.Signer) {
		base := gateway.BaseURLFunc(port)
		issuer.Store(base(demoPortal))
		audience.Store(base(demoHost))
		signer.Store(s)
		k, _ := mfa.KeyFor("sluis", demoUser, secret)
		fmt.Fprintf(e.stdout, `
sluis demo is running.

  Open       %s/   (the login portal is %s/)
  User       %s
  Password   %s
  TOTP       secret %s
             add it to an authenticator app, or use this URI: %s
             (the current code is also printed below every 30 seconds)

  Tunnel     sluis connect echo --gateway %s --connect 127.0.0.1:%d --ca %s/ca.pem
             logs in through the portal, then carries connections to a TCP echo
             service: connect to the address it prints (nc, telnet) and type.

The certificate is self-signed: accept the browser's warning, or trust the CA in
%s/ca.pem. Browsers resolve *.localhost to 127.0.0.1 by themselves;
for curl and other tools add this line to /etc/hosts:
  127.0.0.1 %s %s

Press Ctrl-C to stop.
`, base(demoHost), base(demoPortal), demoUser, password, secret, k.URI, base(demoPortal), port, c.DataDir, c.DataDir, demoPortal, demoHost)
		go e.printCodes(secret)
	})
}

// demoSetup creates the demo user with a random password and an enrolled
// TOTP secret, or reuses them when --data points at an earlier demo.
func demoSetup(ctx context.Context, c *config.Config) (password, secret string, err error) {
	st, err := openStore(ctx, c)
	if err != nil {
		return "", "", err
	}
	defer st.Close()
	sealer, err := keys.LoadSealer(c.DataDir)
	if err != nil {
		return "", "", err
	}
	password = randomPassword()
	hash, err := authn.Hash(password, authn.DefaultParams)
	if err != nil {
		return "", "", err
	}
	k, err := mfa.NewKey("sluis", demoUser)
	if err != nil {
		return "", "", err
	}
	sealed := sealer.Seal([]byte(k.Secret), "totp:"+demoUser)
	err = st.CreateUser(ctx, sluis.User{Name: demoUser, Groups: []string{"staff"}, PasswordHash: hash, TOTPSecret: sealed, CreatedAt: time.Now()})
	if sluis.ErrorCode(err) == sluis.ECONFLICT {
		if err = st.SetPassword(ctx, demoUser, hash); err == nil {
			err = st.SetTOTP(ctx, demoUser, sealed)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return "", "", err
	}
	return password, k.Secret, err
}

// randomPassword returns 128 random bits as 26 base32 characters.
func randomPassword() string { return rand.Text() }

func (e *env) printCodes(secret string) {
	last := int64(-1)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		now := time.Now()
		if s := mfa.Step(now); s != last {
			last = s
			code, _ := mfa.Code(secret, now)
			left := mfa.Period - time.Duration(now.Unix()%int64(mfa.Period/time.Second))*time.Second
			fmt.Fprintf(e.stdout, "demo one-time code: %s (valid for %ds)\n", code, int(left/time.Second))
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}
