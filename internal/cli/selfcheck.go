package cli

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis/selfcheck"
)

// ErrChecksFailed is returned when selfcheck found a problem (or was
// interrupted); the program exits with status 1.
var ErrChecksFailed = errors.New("selfcheck: checks failed")

// ErrCannotCheck is returned when selfcheck could not run at all (a bad
// URL or CA file); the program exits with status 2, so a script can tell
// "the gateway failed" from "the check did not happen".
var ErrCannotCheck = errors.New("selfcheck: cannot check")

// selfcheck checks a running gateway from outside.
func (e *env) selfcheck(args []string) error {
	fs := flag.NewFlagSet("selfcheck", flag.ContinueOnError)
	caFile := fs.String("ca", "", "trust the CA certificate(s) in this PEM `file`")
	insecure := fs.Bool("insecure", false, "skip certificate verification (the report says so)")
	asJSON := fs.Bool("json", false, "print the report as JSON on standard output (progress goes to standard error)")
	connect := fs.String("connect", "", "dial this `host:port` instead of the URL's host")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit for each request")
	blockProbes := fs.Int("block-probes", 30, "exploit probes to send at most to see whether the source gets blocked")
	pos, err := parseFlags(fs, args, e.stderr)
	if err != nil {
		return err
	}
	if *blockProbes < 1 || *timeout <= 0 {
		fmt.Fprintln(e.stderr, "sluis selfcheck: --block-probes must be at least 1 and --timeout positive")
		return ErrUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "usage: sluis selfcheck URL [--ca FILE] [--insecure] [--json] [--connect HOST:PORT]")
		return ErrUsage
	}
	o := selfcheck.Options{URL: pos[0], Insecure: *insecure, ConnectTo: *connect, Timeout: *timeout, BlockProbes: *blockProbes}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("%w: --ca: %v", ErrCannotCheck, err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: --ca %s: no PEM certificate in it", ErrCannotCheck, *caFile)
		}
	}
	progress := e.stdout
	if *asJSON {
		progress = e.stderr
	}
	fmt.Fprintf(progress, "selfcheck of %s: this sends real exploit requests (harmless payloads such as `id`; a vulnerable gateway may keep a file named selfcheck.txt) and may get this address blocked for a while\n", o.URL)
	o.Progress = func(r selfcheck.Result) { printResult(progress, r) }
	rep, err := selfcheck.Run(e.ctx, o)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCannotCheck, err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printSummary(e.stdout, rep)
	}
	if !rep.OK() || e.ctx.Err() != nil {
		return ErrChecksFailed
	}
	return nil
}

func printResult(w io.Writer, r selfcheck.Result) {
	fmt.Fprintf(w, "%-4s  %-10s  %s: %s\n", strings.ToUpper(string(r.Status)), r.Group, r.Name, r.Evidence)
}

func printSummary(w io.Writer, rep *selfcheck.Report) {
	fmt.Fprintf(w, "\nsummary for %s (%.1fs): %d checks, %d passed, %d failed, %d warnings, %d skipped\n",
		rep.Target, rep.Seconds, len(rep.Checks), rep.Passed, rep.Failed, rep.Warnings, rep.Skipped)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, st := range []selfcheck.Status{selfcheck.Fail, selfcheck.Warn} {
		first := true
		for _, r := range rep.Checks {
			if r.Status != st {
				continue
			}
			if first {
				fmt.Fprintf(w, "%s:\n", map[selfcheck.Status]string{selfcheck.Fail: "failed", selfcheck.Warn: "warnings"}[st])
				first = false
			}
			printResult(w, r)
		}
	}
	switch {
	case rep.Interrupted:
		fmt.Fprintln(w, "result: INTERRUPTED")
	case rep.OK():
		fmt.Fprintln(w, "result: PASS")
	default:
		fmt.Fprintln(w, "result: FAIL")
	}
}

// ExitCode is the program's exit status for what Run returned.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage), errors.Is(err, ErrCannotCheck), errors.Is(err, ErrUnknown):
		return 2
	}
	return 1
}
