package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/policy"
)

// ErrUnknown is returned for a command about a user or app that does not
// exist; the program exits with status 2, as for a usage error.
var ErrUnknown = errors.New("unknown name")

// policyCmd is `sluis policy explain`: how the gateway would decide a
// request, and why. It reads the same configuration and store as the
// gateway and calls the same function (policy.Decide, with the situation
// built by gateway.Situations).
func (e *env) policyCmd(args []string) error {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprintln(e.stderr, "sluis policy: the only command is \"policy explain USER APP [--path P] [--method M] [--from IP] [--at TIME] [--factor totp|passkey|none]\"")
		return ErrUsage
	}
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	path := fs.String("path", "/", "the request's path (canonical form)")
	method := fs.String("method", "GET", "the request's method")
	from := fs.String("from", "", "the client's address (default: unknown, which is in no network)")
	at := fs.String("at", "", "the time, RFC 3339 or \"2006-01-02 15:04\" in the configured time_zone (default: now)")
	factor := fs.String("factor", sluis.FactorTOTP, "the second factor the session passed: totp, passkey or none")
	pos, err := parseFlags(fs, args[1:], e.stderr)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fmt.Fprintln(e.stderr, "sluis policy explain: give a user and an app")
		return ErrUsage
	}
	c, st, _, err := e.admin(true)
	if err != nil {
		return err
	}
	defer st.Close()

	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			if now, err = time.ParseInLocation("2006-01-02 15:04", *at, c.Zone()); err != nil {
				return fmt.Errorf("--at %s: want RFC 3339 (2026-11-30T08:00:00+01:00) or \"2026-11-30 08:00\"", shown(*at))
			}
		}
	}
	req := policy.Request{Method: strings.ToUpper(*method), Path: *path}
	if *from != "" {
		if req.Source, err = netip.ParseAddr(*from); err != nil {
			return fmt.Errorf("--from %s: not an IP address", shown(*from))
		}
	}
	if err := policy.ValidPattern(req.Path); err != nil || strings.Contains(req.Path, "*") {
		return fmt.Errorf("--path %s: want a canonical path such as /admin/users", shown(*path))
	}
	var app sluis.App
	found := false
	for _, a := range gateway.Apps(c) {
		if a.Name == pos[1] {
			app, found = a, true
		}
	}
	if !found {
		return fmt.Errorf("%w: no app %s in %s", ErrUnknown, shown(pos[1]), c.File)
	}
	if app.TCP != "" {
		req.Method, req.Path = "", "" // a tunnel
	}
	name, err := findUser(e.ctx, st, pos[0])
	if sluis.ErrorCode(err) == sluis.ENOTFOUND {
		return fmt.Errorf("%w: no user %s", ErrUnknown, shown(pos[0]))
	}
	if err != nil {
		return err
	}
	u, err := st.User(e.ctx, name)
	if err != nil {
		return err
	}
	who := sluis.Identity{User: u.Name, Groups: u.Groups, MFAAt: now}
	switch *factor {
	case sluis.FactorTOTP, sluis.FactorPasskey:
		who.MFA, who.MFAMethod = true, *factor
	case "none":
	default:
		return fmt.Errorf("--factor %s: want totp, passkey or none", shown(*factor))
	}
	sit, err := gateway.Situations(c, st, st.Revision, func() time.Time { return now })(e.ctx, app.Name)
	if err != nil {
		return err
	}
	d := policy.Decide(who, app, req, sit)
	e.explain(u, app, req, sit, d)
	return nil
}

// explain prints a decision for an operator: the outcome, the rule and
// what failed, and the situation it was made in.
func (e *env) explain(u sluis.User, app sluis.App, req policy.Request, sit policy.Situation, d policy.Decision) {
	w := e.stdout
	target := req.Method + " " + req.Path
	if app.TCP != "" {
		target = "a tunnel"
	}
	src := "an unknown address"
	if req.Source.IsValid() {
		src = req.Source.String()
	}
	fmt.Fprintf(w, "%s, %s to %s from %s at %s:\n", shown(u.Name), target, app.Name, src, sit.Now.In(sit.Zone).Format("Mon 2006-01-02 15:04 MST"))
	switch d.Outcome {
	case policy.Allow:
		fmt.Fprintln(w, "  decision: allow")
	case policy.Login:
		fmt.Fprintln(w, "  decision: log in")
	case policy.StepUp:
		fmt.Fprintf(w, "  decision: step up (the portal asks for a %s)\n", d.Factor)
	default:
		fmt.Fprintf(w, "  decision: deny (%d)\n", d.Status)
	}
	if d.Rule >= 0 {
		r := app.Allow[d.Rule]
		fmt.Fprintf(w, "  rule: %d of %d%s: %s\n", d.Rule+1, len(app.Allow), ruleLine(r), describeRule(r))
	} else if len(app.Allow) == 0 {
		fmt.Fprintln(w, "  rule: none; the app has no allow rules, so nobody may open it")
	} else if d.Outcome == policy.Deny {
		fmt.Fprintf(w, "  rule: none of the %d rules covers %s, so it is denied\n", len(app.Allow), target)
	}
	for _, m := range d.Unmet {
		fmt.Fprintf(w, "  unmet: %s\n", m)
	}
	fmt.Fprintf(w, "  why: %s\n", d.Reason)
	if d.Message != "" {
		fmt.Fprintf(w, "  the user reads: %s\n", d.Message)
	}
	level := sit.Level
	if level == "" {
		level = sluis.LevelNormal
	}
	fmt.Fprintf(w, "  in force: level %s", level)
	if sit.LevelReason != "" {
		fmt.Fprintf(w, " (%s)", shown(sit.LevelReason))
	}
	if sit.AppOff {
		fmt.Fprintf(w, "; app %s switched off (%s)", app.Name, shown(sit.AppOffReason))
	} else {
		fmt.Fprintf(w, "; app %s on", app.Name)
	}
	if len(u.Groups) > 0 {
		fmt.Fprintf(w, "; %s's groups: %s", shown(u.Name), strings.Join(u.Groups, ", "))
	} else {
		fmt.Fprintf(w, "; %s has no groups", shown(u.Name))
	}
	if u.Disabled {
		fmt.Fprintf(w, "; %s is disabled and cannot log in", shown(u.Name))
	}
	fmt.Fprintln(w)
}

func ruleLine(r sluis.Rule) string {
	if r.Line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", r.Line)
}

// describeRule writes a rule out as the configuration says it.
func describeRule(r sluis.Rule) string {
	var parts []string
	add := func(key string, v []string) {
		if len(v) > 0 {
			parts = append(parts, key+" "+strings.Join(v, ", "))
		}
	}
	add("paths", r.Paths)
	add("methods", r.Methods)
	add("groups", r.Groups)
	add("users", r.Users)
	switch {
	case r.PhishingResistant:
		parts = append(parts, "mfa phishing_resistant")
	case r.MFA:
		parts = append(parts, "mfa")
	}
	var nets []string
	for _, n := range r.Networks {
		nets = append(nets, n.String())
	}
	add("networks", nets)
	var hours []string
	for _, h := range r.Hours {
		hours = append(hours, h.Text)
	}
	add("hours", hours)
	if len(parts) == 0 {
		return "(empty: allows nobody)"
	}
	return strings.Join(parts, "; ")
}
