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

const connectUsage = `usage: sluis connect APP [--gateway URL] [--listen 127.0.0.1:PORT | --stdio] [--user NAME [--password-stdin] [--code CODE]] [--login] [--ca FILE]
       sluis connect --logout [--gateway URL] [--user NAME] [--ca FILE]`

// connectCmd is `sluis connect`: the client of TCP apps.
func (e *env) connectCmd(args []string) error {
	// For bench/tunnel, as for `sluis serve`.
	stopProfile, err := startCPUProfile(e.getenv("SLUIS_CPUPROFILE"))
	if err != nil {
		return err
	}
	defer stopProfile()
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	gateway := fs.String("gateway", "", "the gateway's portal `URL` (default: $SLUIS_GATEWAY, or the one gateway logged in to)")
	listen := fs.String("listen", "127.0.0.1:0", "the local `address` to accept connections on (loopback only)")
	stdio := fs.Bool("stdio", false, "carry one connection over standard input and output (for ssh -o ProxyCommand)")
	user := fs.String("user", "", "use `NAME`'s saved login, or log in as NAME with password and one-time code (no browser)")
	pwStdin := fs.Bool("password-stdin", false, "with --user: read the password from standard input")
	code := fs.String("code", "", "with --user: the one-time `code`")
	caFile := fs.String("ca", "", "trust the CA certificate(s) in this PEM `file`")
	connectTo := fs.String("connect", "", "dial this `host:port` instead of the gateway's host")
	relogin := fs.Bool("login", false, "log in again even if a login is saved")
	logout := fs.Bool("logout", false, "end the saved login (of --user NAME) at the gateway and forget it")
	pos, err := parseFlags(fs, args, e.stderr)
	if err != nil {
		return err
	}
	if *logout && len(pos) != 0 || !*logout && len(pos) != 1 {
		fmt.Fprintln(e.stderr, connectUsage)
		return ErrUsage
	}
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
	if gws := creds.Gateways(); gw == "" && len(gws) == 1 {
		gw = gws[0]
	}
	u, err := url.Parse(gw)
	if gw == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("give the gateway's https URL with --gateway (or $SLUIS_GATEWAY)")
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	key := connect.Key(u.String())
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
	save := func() error {
		if err := creds.Save(credPath); err != nil {
			return fmt.Errorf("keeping the logins in %s: %w", credPath, err)
		}
		return nil
	}
	if creds.Migrated {
		if err := save(); err != nil {
			return err
		}
	}
	// Which saved login: --user NAME's only; without --user the one
	// login at this gateway, never one of several picked by chance.
	var saved connect.Login
	have := false
	if *user != "" {
		saved, have = creds.Find(key, *user)
	} else if at := creds.At(key); len(at) == 1 {
		saved, have = at[0], true
	} else if len(at) > 1 && (*logout || !*relogin) {
		return fmt.Errorf("logins of %s are saved for %s: choose one with --user NAME", users(at), u)
	}
	if *logout {
		if !have {
			if *user != "" {
				return fmt.Errorf("no login of %s is saved for %s", *user, u)
			}
			return fmt.Errorf("no login is saved for %s", u)
		}
		return e.connectLogout(o, creds, saved, save)
	}
	app := pos[0]
	if !*stdio {
		ap, err := netip.ParseAddrPort(*listen)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("--listen %q: give a loopback address and port, such as 127.0.0.1:3389 (a tunnel must not be open to the network)", *listen)
		}
	}
	c := &connect.Client{Gateway: u, App: app, HTTP: connect.NewHTTP(o),
		Log: func(format string, args ...any) { fmt.Fprintf(e.stderr, "sluis connect: "+format+"\n", args...) }}
	// One reader of standard input for the password and the code.
	in := bufio.NewReader(e.stdin)
	var who string
	err = connect.ErrLogin
	if have && !*relogin {
		c.Token = saved.Token
		who, err = c.Check(e.ctx)
		switch {
		case errors.Is(err, connect.ErrLogin):
			// The gateway ended that session: the login is worth nothing.
			creds.Remove(key, saved.User)
			if err := save(); err != nil {
				return err
			}
		case who == "" && err != nil:
			// The gateway said nothing about the login (unreachable).
		case *user != "" && !connect.SameUser(who, *user):
			// Never someone else's login as NAME's (nor one whose owner
			// the gateway does not name): file it under its owner, if the
			// owner has none, and log in as NAME.
			if who == "" {
				fmt.Fprintf(e.stderr, "sluis connect: the gateway does not say whose the login saved for %s is; logging in as %s\n", *user, *user)
			} else {
				fmt.Fprintf(e.stderr, "sluis connect: the login saved for %s is %s's; logging in as %s\n", *user, who, *user)
			}
			creds.Remove(key, saved.User)
			if _, ok := creds.Find(key, who); !ok && who != "" {
				saved.User = who
				creds.Put(saved)
			}
			if err := save(); err != nil {
				return err
			}
			err = connect.ErrLogin
		case who == "":
			who = saved.User // without --user: the gateway need not say
		case saved.User != who:
			// Keep the gateway's name for the user (an old file may hold
			// the name as typed).
			creds.Remove(key, saved.User)
			saved.User = who
			creds.Put(saved)
			if err := save(); err != nil {
				return err
			}
		}
	}
	if errors.Is(err, connect.ErrLogin) {
		tok, name, lerr := e.connectLogin(o, *user, *pwStdin, *code, in)
		if lerr != nil {
			return lerr
		}
		if name == "" {
			name = strings.ToLower(*user)
		}
		c.Token = tok
		if old, ok := creds.Find(key, name); ok && old.Token != tok {
			// A login that this one replaces (--login, or NAME typed as
			// another of its names) ends on the gateway too, rather than
			// living on unseen until it expires. Best effort: the new
			// login is what counts.
			if _, err := connect.Logout(e.ctx, c.HTTP, o.Gateway, old.Token); err != nil && !errors.Is(err, connect.ErrLogin) {
				fmt.Fprintf(e.stderr, "sluis connect: could not end the replaced login of %s on the gateway: %v\n", name, err)
			}
		}
		creds.Put(connect.Login{Gateway: key, User: name, Token: tok, Saved: time.Now().UTC()})
		if err := save(); err != nil {
			return err
		}
		if who, err = c.Check(e.ctx); who == "" {
			who = name
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", app, err)
	}
	fmt.Fprintf(e.stderr, "sluis connect: connected as %s to %s\n", who, u)
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

// users lists the users of logins, for a message.
func users(logins []connect.Login) string {
	names := make([]string, len(logins))
	for i, l := range logins {
		names[i] = l.User
	}
	return strings.Join(names, ", ")
}

// connectLogout ends a saved login: its session on the gateway, then the
// copy in the file. The copy is forgotten even when the gateway cannot be
// reached, and the user is told that the session may still be alive.
func (e *env) connectLogout(o connect.Options, creds *connect.Credentials, l connect.Login, save func() error) error {
	_, err := connect.Logout(e.ctx, connect.NewHTTP(o), o.Gateway, l.Token)
	creds.Remove(connect.Key(o.Gateway.String()), l.User)
	if serr := save(); serr != nil {
		return serr
	}
	switch {
	case errors.Is(err, connect.ErrLogin):
		fmt.Fprintf(e.stderr, "sluis connect: forgot the login of %s at %s (the gateway had already ended its session)\n", l.User, o.Gateway)
	case err != nil:
		return fmt.Errorf("forgot the login of %s at %s, but could not end its session on the gateway (%w); it ends when it expires, or with sluis session revoke on the gateway", l.User, o.Gateway, err)
	default:
		fmt.Fprintf(e.stderr, "sluis connect: logged %s out of %s\n", l.User, o.Gateway)
	}
	return nil
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
		return connect.PasswordLogin(e.ctx, o, user, pw, func() (string, error) {
			if code != "" {
				return code, nil
			}
			return e.promptLine(in, "One-time code: ")
		})
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
