package cli

import (
	"bufio"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/sluis-gateway/sluis/browser"
	"github.com/sluis-gateway/sluis/connect"
)

// connectCmd is `sluis connect`: the client of TCP apps.
func (e *env) connectCmd(args []string) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	gateway := fs.String("gateway", "", "the gateway's portal `URL` (default: $SLUIS_GATEWAY, or the one gateway logged in to)")
	listen := fs.String("listen", "127.0.0.1:0", "the local `address` to accept connections on (loopback only)")
	stdio := fs.Bool("stdio", false, "carry one connection over standard input and output (for ssh -o ProxyCommand)")
	user := fs.String("user", "", "log in directly as `NAME` with password and one-time code (no browser)")
	pwStdin := fs.Bool("password-stdin", false, "with --user: read the password from standard input")
	code := fs.String("code", "", "with --user: the one-time `code`")
	caFile := fs.String("ca", "", "trust the CA certificate(s) in this PEM `file`")
	connectTo := fs.String("connect", "", "dial this `host:port` instead of the gateway's host")
	relogin := fs.Bool("login", false, "log in again even if a login is stored")
	pos, err := parseFlags(fs, args, e.stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "usage: sluis connect APP [--gateway URL] [--listen 127.0.0.1:PORT | --stdio] [--user NAME [--password-stdin] [--code CODE]] [--ca FILE]")
		return ErrUsage
	}
	app := pos[0]
	credPath, err := connect.CredentialsPath(e.getenv)
	if err != nil {
		return err
	}
	creds, err := connect.LoadCredentials(credPath)
	if err != nil {
		return err
	}
	gw := *gateway
	if gw == "" {
		gw = e.getenv("SLUIS_GATEWAY")
	}
	if gw == "" && len(creds.Gateways) == 1 {
		for k := range creds.Gateways {
			gw = k
		}
	}
	u, err := url.Parse(gw)
	if gw == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("give the gateway's https URL with --gateway (or $SLUIS_GATEWAY)")
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	o := connect.Options{Gateway: u, ConnectTo: *connectTo}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s: no PEM certificate in it", *caFile)
		}
	}
	if !*stdio {
		ap, err := netip.ParseAddrPort(*listen)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("--listen %q: give a loopback address and port, such as 127.0.0.1:3389 (a tunnel must not be open to the network)", *listen)
		}
	}
	c := &connect.Client{Gateway: u, App: app, HTTP: connect.NewHTTP(o), Token: creds.Gateways[connect.Key(u.String())].Token,
		Log: func(format string, args ...any) { fmt.Fprintf(e.stderr, "sluis connect: "+format+"\n", args...) }}
	// One reader of standard input for the password and the code.
	in := bufio.NewReader(e.stdin)
	err = connect.ErrLogin
	if c.Token != "" && !*relogin {
		err = c.Check(e.ctx)
	}
	if errors.Is(err, connect.ErrLogin) {
		tok, who, lerr := e.connectLogin(o, *user, *pwStdin, *code, in)
		if lerr != nil {
			return lerr
		}
		c.Token = tok
		creds.Gateways[connect.Key(u.String())] = connect.Credential{Token: tok, User: who, Saved: time.Now().UTC()}
		if err := creds.Save(credPath); err != nil {
			return fmt.Errorf("keeping the login in %s: %w", credPath, err)
		}
		err = c.Check(e.ctx)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", app, err)
	}
	if *stdio {
		_, _, err := c.Pipe(e.ctx, stdinReader{in}, e.stdout)
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sluis connect: %s on %s (stop with ctrl-c)\n", app, ln.Addr())
	return c.Serve(e.ctx, ln)
}

// stdinReader hides the reader's other methods, so the tunnel's end does
// not try to close standard input.
type stdinReader struct{ r io.Reader }

func (s stdinReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// connectLogin logs the client in: with --user by password and code, else
// by a device login the user approves on the portal.
func (e *env) connectLogin(o connect.Options, user string, pwStdin bool, code string, in *bufio.Reader) (token, who string, err error) {
	if user != "" {
		pw, err := e.secretLine(in, "Password for "+user+": ", pwStdin)
		if err != nil {
			return "", "", err
		}
		tok, err := connect.PasswordLogin(e.ctx, o, user, pw, func() (string, error) {
			if code != "" {
				return code, nil
			}
			return e.promptLine(in, "One-time code: ")
		})
		return tok, user, err
	}
	hc := connect.NewHTTP(o)
	s, err := connect.StartDevice(e.ctx, hc, o.Gateway)
	if err != nil {
		return "", "", err
	}
	approve := connect.ApproveURL(o.Gateway)
	fmt.Fprintf(e.stderr, "To log in, open\n\n    %s\n\nlog in there and type this code:\n\n    %s\n\nWaiting for your approval...\n", approve, s.UserCode)
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		browser.Open(approve)
	}
	tok, who, err := connect.WaitDevice(e.ctx, hc, o.Gateway, s)
	if err == nil {
		fmt.Fprintf(e.stderr, "Logged in as %s.\n", who)
	}
	return tok, who, err
}

var lineMu sync.Mutex

// promptLine asks for and reads one line.
func (e *env) promptLine(in *bufio.Reader, prompt string) (string, error) {
	lineMu.Lock()
	defer lineMu.Unlock()
	fmt.Fprint(e.stderr, prompt)
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) || line == "" && err != nil {
		return "", fmt.Errorf("reading %s: %w", strings.TrimSuffix(prompt, ": "), err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// secretLine reads a password: from the terminal without echo, or from
// standard input with --password-stdin.
func (e *env) secretLine(in *bufio.Reader, prompt string, fromStdin bool) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		return string(b), err
	}
	if !fromStdin {
		return "", errors.New("no terminal to ask for the password: use --password-stdin")
	}
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
