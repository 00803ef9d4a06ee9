// Package cli is the sluis command: the gateway (`sluis serve`), the demo
// and the operator's CLI. It is the only place that wires the parts
// together and picks a store; cmd/sluis only calls Run, and tests start the
// whole program through Run too.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage is returned after a usage message was printed.
var ErrUsage = errors.New("usage")

const usage = `sluis: a remote-access gateway

Usage: sluis [--config FILE] COMMAND [ARGS]

Gateway:
  serve                                  run the gateway
  reload                                 the running gateway reads its configuration again (as SIGHUP);
                                         prints "reloaded", or the problems and exits 1 (the running one stays)
  init [--new]                           create the data_dir (--new: fill an incomplete one, losing what it lost)
  demo [--listen ADDR] [--data DIR]      run a self-contained demo

Users:
  user add NAME --groups a,b [--email E] [--name "Full Name"] [--password-stdin]
  user profile NAME [--email E] [--name "Full Name"]   (replaces both)
  user passwd NAME [--password-stdin]
  user groups NAME --groups a,b
  user disable NAME | user enable NAME
  user list
  user totp NAME                         enrol a new TOTP secret, print its URI
  user keys NAME [--remove KEYNAME]      list a user's passkeys, or remove one
  user mfa-reset NAME                    remove all second factors (help desk); the user enrols again

Apps:
  app disable NAME --reason "..."       switch an app off for everyone, at once
  app enable NAME

Incident:
  emergency set LEVEL --reason "..." [--for 4h]   LEVEL: normal, strict, essential, lockdown, closed
  emergency status | emergency clear

Blocks (refused at the front door):
  block add CIDR [--for 1h] --reason "..." [--force]
                                         --force: a range wider than /8 or /32 (staff too)
  block list                             the operator's blocks and the automatic ones
  block remove CIDR

Sessions and audit:
  session list
  session revoke ID | session revoke --user NAME | --group G | --app A | --all
  audit [--since 1h] [--json]            default the last 24h; --since 0: all
  audit verify [--file EXPORT]           check the trail's hash chain and signed checkpoints
  audit export [--since 24h]             the trail as JSON lines, to keep elsewhere

Configuration:
  config check
  store copy --from sqlite:PATH --to postgres://... | --to-file FILE
                                         copy a gateway's SQLite store (stopped) into an empty
                                         PostgreSQL database, audit trail included
  policy explain USER APP [--path P] [--method M] [--from IP] [--at TIME] [--factor totp|passkey|none]
                                         how the gateway decides such a request, and why;
                                         --at: RFC 3339 or "2026-11-30 08:00" in time_zone

Tunnels (the client of TCP apps: remote desktop, SSH, databases):
  connect APP [--gateway URL] [--listen 127.0.0.1:PORT | --stdio]
              [--user NAME [--password-stdin] [--code CODE]] [--ca FILE] [--login]
                                         log in once (a login is kept per gateway and user),
                                         then carry connections to APP
  connect --logout [--gateway URL] [--user NAME]
                                         end the login's session on the gateway and forget it

Checking a gateway from outside (sluis or any other):
  selfcheck URL [--ca FILE] [--insecure] [--json] [--connect HOST:PORT]
                                         exploit probes, parsing attacks, TLS, headers,
                                         redirects, admin endpoints, blocking; exit 1 on a failure

--config FILE (default ./sluis.yaml) may stand before or after the command.
`

// env is what every command gets.
type env struct {
	ctx        context.Context
	configPath string
	getenv     func(string) string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

// Run is the whole program; args include the program name.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		args = args[1:]
	}
	configPath, args, err := takeConfigFlag(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ErrUsage
	}
	e := &env{ctx: ctx, configPath: configPath, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return e.serve(rest)
	case "reload":
		return e.reloadCmd(rest)
	case "init":
		return e.initDataDir(rest)
	case "demo":
		return e.demo(rest)
	case "user":
		return e.user(rest)
	case "session":
		return e.session(rest)
	case "app":
		return e.app(rest)
	case "block":
		return e.block(rest)
	case "emergency":
		return e.emergency(rest)
	case "audit":
		return e.audit(rest)
	case "config":
		return e.config(rest)
	case "policy":
		return e.policyCmd(rest)
	case "selfcheck":
		return e.selfcheck(rest)
	case "connect":
		return e.connectCmd(rest)
	case "store":
		return e.storeCmd(rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "sluis: unknown command %q\n\n%s", cmd, usage)
	return ErrUsage
}

// takeConfigFlag removes the global --config flag from anywhere in args.
func takeConfigFlag(args []string) (string, []string, error) {
	path := "sluis.yaml"
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-config":
			if i+1 >= len(args) {
				return "", nil, fmt.Errorf("sluis: --config needs a file name")
			}
			path = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.Index(a, "=")+1:]
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		default:
			rest = append(rest, a)
		}
	}
	return path, rest, nil
}

// parseFlags parses fs from args, allowing flags after positional
// arguments, and returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, ErrUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
