// Package policy makes the one access decision of the gateway: may this
// identity use this app, for this request, in this situation? The app
// handler, the tunnel server, the re-check of open connections and
// `sluis policy explain` all call Decide, and nothing else decides.
//
// It is pure: no I/O, no clock, no globals. Everything it depends on is
// an argument, so every decision can be tested exhaustively, made on every
// request and explained to an operator exactly as it was made.
package policy

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Request is what a decision needs of a request.
type Request struct {
	// Method is the HTTP method, upper case; "" for a tunnel.
	Method string
	// Path is the canonical path (the front door's form); "" for a
	// tunnel, which no rule with paths covers.
	Path string
	// Source is the client's address. The zero Addr (unknown) is in no
	// network.
	Source netip.Addr
}

// BreakGlass names who may still pass at the level "lockdown".
type BreakGlass struct {
	Users  []string // canonical names
	Groups []string
}

// Situation is everything besides the identity, the app and the request
// that a decision depends on: the operator's controls and the clock.
type Situation struct {
	Level       string // sluis.LevelNormal, ... ("" counts as normal)
	LevelReason string // the operator's reason for the level
	// AppOff says the operator switched the app off, and why.
	AppOff       bool
	AppOffReason string
	BreakGlass   BreakGlass
	// ReauthAfter is how old a second factor may be at the level
	// "strict" before it must be passed again; at least a minute.
	ReauthAfter time.Duration
	Now         time.Time
	// Zone is the time zone rules' hours are read in; nil means UTC.
	Zone *time.Location
}

// Outcome is what the gateway does with a request.
type Outcome uint8

// The outcomes of a decision. The zero Outcome denies.
const (
	Deny   Outcome = iota
	Allow          // pass it to the app
	Login          // send the user to log in (again)
	StepUp         // send the user to pass Decision.Factor
)

func (o Outcome) String() string {
	switch o {
	case Allow:
		return "allow"
	case Login:
		return "log in"
	case StepUp:
		return "step up"
	}
	return "deny"
}

// Decision is the outcome of Decide and why.
type Decision struct {
	Outcome Outcome
	// Factor is, for StepUp, the second factor to pass
	// (sluis.FactorPasskey).
	Factor string
	// Status is, for Deny, the HTTP status: 403 for who may not, 503 for
	// what is closed for everyone.
	Status int
	// Reason is why, in words fit for the audit trail (never a secret).
	Reason string
	// Message is, for Deny, the text the user sees; "" means the plain
	// refusal page, which tells nothing about the rules.
	Message string
	// Kind names, for a Deny with a Message, which words it is, so that
	// a page can say it in the user's language: "network", "hours",
	// "closed", "essential", "lockdown" or "app_off" (errpage's kinds).
	// Detail is what those words include as written: the hours, or the
	// operator's reason.
	Kind, Detail string
	// Rule is the index in app.Allow of the rule the request chose; -1
	// when none was chosen (or the decision came before one).
	Rule int
	// Unmet lists each condition of the chosen rule that does not hold,
	// as what would change it ("needs a passkey"), for explanations.
	Unmet []string
}

// Decide decides whether who may make req to app in sit. who is the
// zero Identity when the request has no complete session.
//
// In order: without a session, or with a second factor too old at the
// level "strict", the user logs in. The request chooses the first of
// app's rules whose paths and methods match it; no rule chosen denies, and
// a later rule is never tried. All the chosen rule's conditions must hold
// (users or groups, second factor, networks, hours); when only a passkey
// is missing, the user steps up. Then the emergency level and the app's
// switch decide, as they do for everyone.
func Decide(who sluis.Identity, app sluis.App, req Request, sit Situation) Decision {
	if who.User == "" {
		return Decision{Outcome: Login, Reason: "not logged in", Rule: -1}
	}
	if Stale(who, sit) {
		return Decision{Outcome: Login, Rule: -1,
			Reason: fmt.Sprintf("at the level strict a second factor older than %s is passed again", reauthAfter(sit))}
	}
	i := Choose(app.Allow, req)
	if i < 0 {
		return Decision{Outcome: Deny, Status: 403, Rule: -1, Reason: "no rule of the app covers " + describe(req)}
	}
	rule := &app.Allow[i]
	needMFA, needKey := rule.MFA, rule.PhishingResistant
	if app.KeyAtStrict && sit.Level == sluis.LevelStrict {
		needMFA, needKey = true, true
	}
	listed, why := member(rule, who)
	var unmet []string
	if !listed {
		unmet = append(unmet, why)
	}
	if needMFA && !who.MFA {
		unmet = append(unmet, "needs a second factor")
	}
	placeOK := len(rule.Networks) == 0 || inNetworks(rule.Networks, req.Source)
	if !placeOK {
		unmet = append(unmet, "needs a source address in "+joinPrefixes(rule.Networks)+", not "+addrText(req.Source))
	}
	timeOK := len(rule.Hours) == 0 || InHours(rule.Hours, sit.Now, sit.Zone)
	if !timeOK {
		unmet = append(unmet, "outside hours "+hoursText(rule.Hours, sit.Zone))
	}
	keyOK := !needKey || who.PhishingResistant()
	if !keyOK {
		unmet = append(unmet, "needs a passkey")
	}
	if len(unmet) > 0 {
		d := Decision{Outcome: Deny, Status: 403, Rule: i, Unmet: unmet, Reason: fmt.Sprintf("rule %d: %s", i+1, strings.Join(unmet, "; "))}
		switch {
		case len(unmet) == 1 && !keyOK:
			d.Outcome, d.Status, d.Factor = StepUp, 0, sluis.FactorPasskey
		case listed && !placeOK:
			// Who may use this part of the app is told where from; nobody
			// else learns anything about the rules.
			d.Message, d.Kind = "This part of the application can be opened only from the organisation's own networks.", "network"
		case listed && !timeOK:
			d.Kind, d.Detail = "hours", hoursText(rule.Hours, sit.Zone)
			d.Message = "This part of the application is open " + d.Detail + "."
		}
		return d
	}
	// No formatting on the way to an allow, which every request takes:
	// Rule says which rule it was.
	d := Decision{Outcome: Allow, Rule: i, Reason: why}
	switch sit.Level {
	case sluis.LevelClosed:
		return Decision{Outcome: Deny, Status: 503, Rule: i, Reason: "the gateway is closed: " + sit.LevelReason,
			Message: "Access through the gateway is closed: " + sit.LevelReason, Kind: "closed", Detail: sit.LevelReason}
	case sluis.LevelEssential:
		if !app.Essential {
			return Decision{Outcome: Deny, Status: 503, Rule: i, Reason: "only essential apps are open: " + sit.LevelReason,
				Message: "Only essential applications are open: " + sit.LevelReason, Kind: "essential", Detail: sit.LevelReason}
		}
	case sluis.LevelLockdown:
		if !sit.BreakGlass.Allows(who) {
			return Decision{Outcome: Deny, Status: 403, Rule: i, Reason: "lockdown, and the user is not break-glass staff: " + sit.LevelReason,
				Message: "Access is limited to emergency staff: " + sit.LevelReason, Kind: "lockdown", Detail: sit.LevelReason}
		}
		d.Reason = "break-glass staff at lockdown; " + why
	}
	if sit.AppOff {
		return Decision{Outcome: Deny, Status: 503, Rule: i, Reason: "the app is switched off: " + sit.AppOffReason,
			Message: "This application is switched off: " + sit.AppOffReason, Kind: "app_off", Detail: sit.AppOffReason}
	}
	return d
}

// Stale reports whether who's second factor must be passed again: at the
// level "strict", one passed ReauthAfter ago or longer.
func Stale(who sluis.Identity, sit Situation) bool {
	return sit.Level == sluis.LevelStrict && sit.Now.Sub(who.MFAAt) >= reauthAfter(sit)
}

func reauthAfter(sit Situation) time.Duration { return max(sit.ReauthAfter, time.Minute) }

// Choose returns the index of the first rule whose paths and methods match
// req, or -1.
func Choose(rules []sluis.Rule, req Request) int {
	for i, r := range rules {
		if len(r.Methods) > 0 && !slices.Contains(r.Methods, req.Method) {
			continue
		}
		if len(r.Paths) > 0 && !slices.ContainsFunc(r.Paths, func(p string) bool { return PathMatch(p, req.Path) }) {
			continue
		}
		return i
	}
	return -1
}

// member reports whether who is one of the rule's users or in one of its
// groups, and says why or what is needed.
func member(r *sluis.Rule, who sluis.Identity) (bool, string) {
	if len(r.Users) == 0 && len(r.Groups) == 0 {
		return false, "needs a rule that lists users or groups (this one allows nobody)"
	}
	if slices.ContainsFunc(r.Users, func(u string) bool { return sluis.SameName(u, who.User) }) {
		return true, "the user is listed"
	}
	for _, g := range who.Groups {
		if slices.Contains(r.Groups, g) {
			return true, "a group of the user is listed"
		}
	}
	var need []string
	if len(r.Groups) > 0 {
		need = append(need, "one of the groups "+strings.Join(r.Groups, ", "))
	}
	if len(r.Users) > 0 {
		need = append(need, "to be one of the users "+strings.Join(r.Users, ", "))
	}
	return false, "needs " + strings.Join(need, ", or ")
}

// Allows reports whether who is break-glass staff.
func (b BreakGlass) Allows(who sluis.Identity) bool {
	if slices.ContainsFunc(b.Users, func(u string) bool { return sluis.SameName(u, who.User) }) {
		return true
	}
	return slices.ContainsFunc(who.Groups, func(g string) bool { return slices.Contains(b.Groups, g) })
}

func inNetworks(nets []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	return slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(a) })
}

func joinPrefixes(nets []netip.Prefix) string {
	s := make([]string, len(nets))
	for i, n := range nets {
		s[i] = n.String()
	}
	return strings.Join(s, ", ")
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.Unmap().String()
}

func describe(req Request) string {
	if req.Method == "" && req.Path == "" {
		return "a tunnel"
	}
	return req.Method + " " + req.Path
}

// PathMatch reports whether the canonical path p lies at or below the
// pattern pat, segment by segment: "/admin/" and "/admin" cover /admin,
// /admin/ and /admin/x, not /administrator. In a pattern's segment, '*'
// stands for any characters but '/' ("/projects/*/settings"). "/" covers
// every path. Patterns are checked by ValidPattern.
func PathMatch(pat, p string) bool {
	pat = strings.TrimSuffix(pat, "/")
	if pat == "" {
		return strings.HasPrefix(p, "/")
	}
	if strings.IndexByte(pat, '*') < 0 {
		// The common case: a plain prefix, ending at a segment's end.
		return strings.HasPrefix(p, pat) && (len(p) == len(pat) || p[len(pat)] == '/')
	}
	if !strings.HasPrefix(p, "/") {
		return false
	}
	pat, p = pat[1:], p[1:]
	for {
		ps, prest, more := strings.Cut(pat, "/")
		seg, rest, pmore := strings.Cut(p, "/")
		if ps != seg {
			if !strings.Contains(ps, "*") {
				return false
			}
			if ok, _ := path.Match(ps, seg); !ok {
				return false
			}
		}
		if !more {
			return true
		}
		if !pmore {
			return false
		}
		pat, p = prest, rest
	}
}

// ValidPattern checks a rule's path pattern: it starts with '/', and its
// segments are not empty, not "." or "..", and hold no '%', '?', '[', '\\'
// or control characters ('*' is the only wildcard).
func ValidPattern(pat string) error {
	if !strings.HasPrefix(pat, "/") {
		return fmt.Errorf("%q: a path starts with /", pat)
	}
	if len(pat) > 1024 {
		return fmt.Errorf("a path pattern of %d bytes; at most 1024", len(pat))
	}
	body := strings.TrimSuffix(pat[1:], "/")
	if body == "" {
		return nil
	}
	for _, seg := range strings.Split(body, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%q: an empty segment (//)", pat)
		case seg == "." || seg == "..":
			return fmt.Errorf("%q: a dot segment; paths are matched in their canonical form", pat)
		case strings.ContainsAny(seg, "%?[]\\") || strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf("%q: '*' is the only special character (paths are matched decoded, so no %%)", pat)
		}
	}
	return nil
}
