package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/admin"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/changes"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/datadir"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/mfa"
	"github.com/sluis-gateway/sluis/proxy"
	"golang.org/x/term"
)

const minPasswordLen = 8

// admin opens the store for a CLI command that changes something, and
// returns the auditor that records the change in the audit trail.
//
// readOnly says that the command only reads: it then works on a read-only
// data_dir too (a copy kept for forensics).
func (e *env) admin(readOnly bool) (*config.Config, sluis.Store, *auditor, error) {
	c, err := e.loadConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := openStoreFor(e.ctx, c, readOnly, e.stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	if readOnly {
		return c, st, &auditor{ctx: e.ctx, operator: e.operator()}, nil
	}
	// On a full disk the operator's change still commits: the reserve the
	// gateway keeps is released for it.
	if released, err := datadir.ReleaseIfLow(c.DataDir); err != nil {
		fmt.Fprintln(e.stderr, "warning: checking the free space of data_dir:", err)
	} else if released {
		fmt.Fprintf(e.stderr, "warning: the disk of data_dir %s is full; its reserve (%d MiB) was released so that this change can be stored. Free space, then restart sluis serve to keep a new reserve.\n", c.DataDir, datadir.ReserveSize>>20)
	}
	auditKey, err := keys.LoadAuditKey(c.DataDir)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	checkpoints := &audit.Checkpointer{Store: st, Key: auditKey}
	// After every change: a running gateway learns of it before the
	// command returns, and the chain is signed at once, so the operator's
	// own actions are covered by a checkpoint when they return.
	st.OnChange(func(ctx context.Context) {
		if err := changes.Announce(ctx, c.DataDir); err != nil {
			fmt.Fprintln(e.stderr, "warning:", err)
		}
		if err := checkpoints.Checkpoint(ctx); err != nil {
			fmt.Fprintln(e.stderr, "warning: audit checkpoint:", err)
		}
	})
	a := &auditor{ctx: e.ctx, operator: e.operator(), rec: &audit.Recorder{Store: st, Log: discardLogger()}}
	return c, st, a, nil
}

// EventSessionsRevoke records an operator's revocation, committed with
// it; a session.revoked event for each session it ended follows.
const EventSessionsRevoke = admin.EventSessionsRevoke

// actions are the operators' changes (admin.Actions) that the incident and
// user commands make, as the console and the API make them, by the
// operator who runs the command with every role, from "cli".
func (e *env) actions(c *config.Config, st sluis.Store, au *auditor) (*admin.Actions, admin.Operator) {
	return &admin.Actions{Store: st, Config: c, Recorder: au.rec}, admin.Operator{Name: au.operator, Role: admin.RoleOperator, Source: "cli"}
}

// recordSessions records a session.revoked event for each of ids (owner
// names each one's user), after the revocation that was recorded with it.
func (a *auditor) recordSessions(what string, ids []string, owner func(id string) string, suffix string) error {
	for _, id := range ids {
		if err := a.record(sluis.EventSessionRevoked, owner(id), "session "+id+suffix); err != nil {
			return fmt.Errorf("the sessions of %s were revoked (and recorded as such), but not each one's own event: %w", what, err)
		}
	}
	return nil
}

// auditor records the operator's changes in the audit trail.
type auditor struct {
	ctx      context.Context
	operator string
	rec      *audit.Recorder
}

func (a *auditor) event(typ, user, detail string) sluis.Event {
	return sluis.Event{Time: time.Now().UTC(), Type: typ, User: user, Source: "cli", Outcome: sluis.OutcomeSuccess,
		Detail: strings.TrimSpace("by " + a.operator + "; " + detail)}
}

// with returns the context to make one change with: the store commits the
// change and its event together, or neither, and then the command fails
// with the store's words (for example "database or disk is full").
func (a *auditor) with(typ, user, detail string) context.Context {
	return sluis.WithEvents(a.ctx, a.event(typ, user, detail))
}

// record records an event after the fact, for the parts of a change that
// are known only once it is made (each session a revocation ended); the
// change itself was recorded with it (with).
func (a *auditor) record(typ, user, detail string) error {
	return a.rec.Record(a.ctx, a.event(typ, user, detail))
}

// operator names who runs a command, for the audit trail: the account of
// the real user id, never $USER, which anyone can set (USER=ceo as root
// was once recorded as "by ceo").
func (e *env) operator() string {
	return operatorName(os.Getuid(), func(uid string) (string, error) {
		u, err := user.LookupId(uid)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	}, e.getenv)
}

// operatorName is "NAME (uid N)" for the account of uid, "uid N" when no
// account resolves, and "unknown user" where there are no user ids. As
// root, the SUDO_USER that sudo sets is added ("root (uid 0) via sudo from
// alice"): it says who typed the command, but only root (sudo) can have
// set it with any authority, so it is never recorded on its own.
func operatorName(uid int, lookup func(uid string) (string, error), getenv func(string) string) string {
	if uid < 0 {
		return "unknown user"
	}
	id := strconv.Itoa(uid)
	who := "uid " + id
	if name, err := lookup(id); err == nil && name != "" {
		who = shown(name) + " (uid " + id + ")"
	}
	if su := getenv("SUDO_USER"); uid == 0 && su != "" {
		who += " via sudo from " + shown(su)
	}
	return who
}

func splitList(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// findUser returns the stored name of the user an operator named: the one
// user whose name is the same in any case, or, among twins from an older
// store, the one named exactly (admin.FindUser).
func findUser(ctx context.Context, st sluis.Store, typed string) (string, error) {
	return admin.FindUser(ctx, st, typed)
}

// readPassword reads a new password from stdin (one line) with
// --password-stdin, or asks for it twice on a terminal.
func (e *env) readPassword(fromStdin bool) (string, error) {
	var pw string
	if f, ok := e.stdin.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "New password: ")
		b1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(e.stderr, "Repeat password: ")
		b2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(b1) != string(b2) {
			return "", errors.New("the passwords differ")
		}
		pw = string(b1)
	} else {
		if !fromStdin {
			fmt.Fprint(e.stderr, "New password: ")
		}
		line, err := bufio.NewReader(io.LimitReader(e.stdin, authn.MaxPasswordLen+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if len(pw) < minPasswordLen {
		return "", fmt.Errorf("the password must have at least %d characters", minPasswordLen)
	}
	if len(pw) > authn.MaxPasswordLen {
		return "", fmt.Errorf("the password must have at most %d bytes", authn.MaxPasswordLen)
	}
	return pw, nil
}

// checkProfile refuses an email address or display name that an app's
// identity header could not carry (see proxy.HeaderSafe); empty is none.
func checkProfile(email, display string) error {
	if email != "" && !sluis.ValidEmail(email) {
		return fmt.Errorf("--email %q is not an email address", email)
	}
	if display != "" && !proxy.HeaderSafe(display) {
		return fmt.Errorf("--name %q: at most %d bytes of UTF-8, no control characters, no space at either end", display, proxy.MaxIdentityValue)
	}
	return nil
}

func (e *env) user(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return ErrUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	groups := fs.String("groups", "", "comma-separated groups")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	email := fs.String("email", "", "the user's email address, for apps' identity_headers")
	display := fs.String("name", "", "the user's display name, for apps' identity_headers")
	removeKey := fs.String("remove", "", "with keys: remove the passkey of this `name` (its user must add it again)")
	pos, err := parseFlags(fs, args, e.stderr)
	if err != nil {
		return err
	}
	needName := sub != "list"
	if needName && len(pos) != 1 || !needName && len(pos) != 0 {
		fmt.Fprintf(e.stderr, "sluis user %s: wrong arguments\n\n%s", sub, usage)
		return ErrUsage
	}
	c, st, au, err := e.admin(sub == "list" || sub == "keys" && *removeKey == "")
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := e.ctx
	name := ""
	if needName {
		if sub == "add" {
			// One name, one person: stored in canonical form, and
			// refused when another user has it in any case.
			if name, err = sluis.CanonicalName(pos[0]); err != nil {
				return fmt.Errorf("%q is not a valid user name: %w", pos[0], err)
			}
			if twins, err := st.UsersNamed(ctx, name); err != nil {
				return err
			} else if len(twins) > 0 {
				return fmt.Errorf("user %q exists already: %s and %s are one name (user names are compared without regard to case)", twins[0].Name, shown(pos[0]), twins[0].Name)
			}
		} else if name, err = findUser(ctx, st, pos[0]); err != nil {
			return err
		}
	}
	switch sub {
	case "add":
		gs, err := sluis.NormalGroups(splitList(*groups))
		if err != nil {
			return fmt.Errorf("--groups: %w", err)
		}
		if err := checkProfile(*email, *display); err != nil {
			return err
		}
		pw, err := e.readPassword(*pwStdin)
		if err != nil {
			return err
		}
		hash, err := authn.Hash(pw, authn.DefaultParams)
		if err != nil {
			return err
		}
		if err := st.CreateUser(au.with("admin.user.add", name, "groups "+strings.Join(gs, ",")), sluis.User{Name: name, Groups: gs, PasswordHash: hash, CreatedAt: time.Now(), Email: *email, DisplayName: *display}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "user %s added; they enrol a second factor at first login\n", name)
	case "profile":
		if u, err := st.User(ctx, name); err != nil {
			return err
		} else if u.Source != "" {
			return fmt.Errorf("%s comes from %s: their email and name are copied from there at each login", name, u.Source)
		}
		if err := checkProfile(*email, *display); err != nil {
			return err
		}
		if err := st.SetProfile(au.with("admin.user.profile", name, "email "+*email+"; name "+*display), name, *email, *display); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "profile of %s: email %q, name %q\n", name, *email, *display)
	case "passwd":
		if u, err := st.User(ctx, name); err != nil {
			return err
		} else if u.Source == sluis.SourceLDAP {
			return fmt.Errorf("%s is a directory user: their password is changed in the directory", name)
		}
		pw, err := e.readPassword(*pwStdin)
		if err != nil {
			return err
		}
		hash, err := authn.Hash(pw, authn.DefaultParams)
		if err != nil {
			return err
		}
		if err := st.SetPassword(au.with("admin.user.passwd", name, "password changed"), name, hash); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "password of %s changed\n", name)
		return e.revokeAll(st, au, name)
	case "groups":
		gs, err := sluis.NormalGroups(splitList(*groups))
		if err != nil {
			return fmt.Errorf("--groups: %w", err)
		}
		if err := st.SetGroups(au.with("admin.user.groups", name, "groups "+strings.Join(gs, ",")), name, gs); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "groups of %s: %s\n", name, strings.Join(gs, ","))
	case "disable", "enable":
		act, op := e.actions(c, st, au)
		set := act.EnableUser
		if sub == "disable" {
			set = act.DisableUser
		}
		ch, err := set(ctx, op, name)
		if ch.Changed {
			fmt.Fprintf(e.stdout, "user %s %sd\n", ch.User, sub)
			e.revoked(ch.User, ch.Revoked)
		}
		return err
	case "list":
		users, err := st.Users(ctx)
		if err != nil {
			return err
		}
		twins := sluis.Twins(users)
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tGROUPS\tTOTP\tSOURCE\tSTATUS")
		for _, u := range users {
			status, totp, source := "active", "no", "local"
			if u.Source != "" {
				source = u.Source
			}
			if u.Disabled {
				status = "disabled"
			}
			if u.HasTOTP() {
				totp = "yes"
			}
			if others := twins[u.Name]; len(others) > 0 {
				status += "; TWIN of " + strings.Join(others, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Groups, ","), totp, source, status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(twins) > 0 {
			fmt.Fprintln(e.stderr, "warning: users marked TWIN share one name in different case, from before names were compared without regard to case; while more than one of them is enabled, none of them can log in or use a session. Disable all but one (sluis user disable EXACTNAME); the one left is matched by every list entry in the configuration that names any of them.")
		}
		return nil
	case "mfa-reset":
		// The help desk's reset: every second factor goes, every session
		// ends, and the user enrols again at the next login.
		act, op := e.actions(c, st, au)
		ch, err := act.ResetMFA(ctx, op, name)
		if ch.Changed {
			fmt.Fprintf(e.stdout, "second factors of %s removed; they enrol again at their next login\n", ch.User)
			e.revoked(ch.User, ch.Revoked)
		}
		return err
	case "keys":
		if _, err := st.User(ctx, name); err != nil {
			return err
		}
		keys, err := st.Passkeys(ctx, name)
		if err != nil {
			return err
		}
		if *removeKey != "" {
			for _, k := range keys {
				if k.Name == *removeKey {
					if err := st.RemovePasskey(au.with("admin.user.keys.remove", name, "passkey "+k.Name), name, k.ID); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "passkey %s of %s removed\n", shown(k.Name), name)
					return nil
				}
			}
			return fmt.Errorf("%s has no passkey named %s", name, shown(*removeKey))
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDED\tLAST USED\tID")
		for _, k := range keys {
			used := "never"
			if !k.LastUsed.IsZero() {
				used = k.LastUsed.Local().Format(time.DateTime)
			}
			id := hex.EncodeToString(k.ID)
			if len(id) > 16 {
				id = id[:16] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", shown(k.Name), k.CreatedAt.Local().Format(time.DateTime), used, id)
		}
		return tw.Flush()
	case "totp":
		if _, err := st.User(ctx, name); err != nil {
			return err
		}
		sealer, err := keys.LoadSealer(c.DataDir)
		if err != nil {
			return err
		}
		k, err := mfa.NewKey("sluis", name)
		if err != nil {
			return err
		}
		// A new secret is issued after a loss or a compromise: the old
		// passkeys and recovery codes go with the old secret.
		if err := st.ResetMFA(au.with("admin.user.mfa-reset", name, "TOTP secret, passkeys and recovery codes removed, for a new TOTP secret"), name); err != nil {
			return err
		}
		if err := st.SetTOTP(au.with("admin.user.totp", name, "new TOTP secret enrolled"), name, sealer.Seal([]byte(k.Secret), "totp:"+name)); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, k.URI)
		return e.revokeAll(st, au, name)
	default:
		fmt.Fprintf(e.stderr, "sluis: unknown command \"user %s\"\n\n%s", sub, usage)
		return ErrUsage
	}
	return nil
}

// revokeAll ends every session of user after a change of credentials, as
// an operator resetting a compromised account expects.
func (e *env) revokeAll(st sluis.Store, au *auditor, user string) error {
	ids, err := st.RevokeSessions(au.with(EventSessionsRevoke, user, "every session of "+user+", after a change of credentials or a disable"), sluis.SessionFilter{User: user}, time.Now())
	if err != nil {
		return fmt.Errorf("revoking the sessions of %s: %w", user, err)
	}
	if err := au.recordSessions(user, ids, func(string) string { return user }, ""); err != nil {
		return err
	}
	e.revoked(user, ids)
	return nil
}

// revoked tells the operator how many sessions of user a change ended.
func (e *env) revoked(user string, ids []string) {
	if len(ids) > 0 {
		fmt.Fprintf(e.stderr, "revoked %d session(s) of %s\n", len(ids), user)
	}
}

func (e *env) session(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return ErrUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("session "+sub, flag.ContinueOnError)
	user := fs.String("user", "", "revoke every session of this user")
	group := fs.String("group", "", "revoke every session of the members of this group")
	app := fs.String("app", "", "revoke every session that has been used on this app")
	all := fs.Bool("all", false, "revoke every session")
	pos, err := parseFlags(fs, args, e.stderr)
	if err != nil {
		return err
	}
	c, st, au, err := e.admin(sub == "list")
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, now := e.ctx, time.Now()
	switch sub {
	case "list":
		all, err := st.Sessions(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tSTAGE\tSOURCE\tCREATED\tLAST SEEN\tEXPIRES")
		for _, x := range all {
			if x.Revoked() || !now.Before(x.ExpiresAt) {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, x.User, x.Stage, x.Source,
				x.CreatedAt.Local().Format(time.DateTime), x.LastSeen.Local().Format(time.DateTime), x.ExpiresAt.Local().Format(time.DateTime))
		}
		return tw.Flush()
	case "revoke":
		act, op := e.actions(c, st, au)
		var f sluis.SessionFilter
		set := 0
		if *user != "" {
			f.User, set = *user, set+1
		}
		if *group != "" {
			f.Group, set = *group, set+1
		}
		if *app != "" {
			host, err := act.AppHost(*app)
			if err != nil {
				return err
			}
			f.Host, set = host, set+1
		}
		if *all {
			f.All, set = true, set+1
		}
		switch {
		case set == 1 && len(pos) == 0:
			r, err := act.RevokeSessions(ctx, op, f)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "revoked %d session(s) %s\n", len(r.IDs), r.What)
		case set == 0 && len(pos) == 1:
			x, err := act.RevokeSession(ctx, op, pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "revoked session %s of %s\n", x.ID, x.User)
		default:
			fmt.Fprintf(e.stderr, "sluis session revoke: give a session ID, or one of --user NAME, --group G, --app A, --all\n")
			return ErrUsage
		}
	default:
		fmt.Fprintf(e.stderr, "sluis: unknown command \"session %s\"\n\n%s", sub, usage)
		return ErrUsage
	}
	return nil
}

// auditJSON is one line of `sluis audit --json`.
type auditJSON struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	User    string    `json:"user"`
	Source  string    `json:"source"`
	App     string    `json:"app"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail"`
}

// auditVerify checks the hash chain and the signed checkpoints of the
// trail in the store, or of an export in file.
func (e *env) auditVerify(file string) error {
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	var evs []sluis.Event
	var cps []sluis.Checkpoint
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		evs, cps, err = audit.ReadExport(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	} else {
		st, err := openStoreFor(e.ctx, c, true, e.stderr)
		if err != nil {
			return err
		}
		defer st.Close()
		if evs, err = st.Events(e.ctx, time.Time{}); err != nil {
			return err
		}
		if cps, err = st.Checkpoints(e.ctx); err != nil {
			return err
		}
	}
	key, err := keys.LoadAuditKey(c.DataDir)
	if err != nil {
		return err
	}
	rep, err := audit.VerifyTrail(evs, cps, key.Public().(ed25519.PublicKey))
	if err != nil {
		fmt.Fprintf(e.stdout, "BROKEN at %v\n", err)
		return fmt.Errorf("the audit trail has been altered: %w", err)
	}
	if rep.LastCheckpoint == nil {
		fmt.Fprintf(e.stdout, "intact, %d events, no checkpoint yet\n", rep.Events)
	} else {
		fmt.Fprintf(e.stdout, "intact, %d events, last checkpoint at %s (event %d); %d events since\n", rep.Events,
			rep.LastCheckpoint.Time.Local().Format(time.DateTime), rep.LastCheckpoint.EventID, rep.AfterCheckpoint)
	}
	// The chain is whole, but it says where events could not be stored.
	for _, g := range rep.Gaps {
		fmt.Fprintf(e.stdout, "gap: event %d: %s\n", g.ID, g.Detail)
	}
	return nil
}

func (e *env) audit(args []string) error {
	if len(args) > 0 && (args[0] == "verify" || args[0] == "export") {
		sub := args[0]
		fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
		file := fs.String("file", "", "verify this export instead of the database")
		since := fs.Duration("since", 0, "export only events of this last period (default: all)")
		if pos, err := parseFlags(fs, args[1:], e.stderr); err != nil || len(pos) > 0 {
			return ErrUsage
		}
		if sub == "verify" {
			return e.auditVerify(*file)
		}
		from, err := sinceTime(*since, time.Now())
		if err != nil {
			return err
		}
		return e.auditExport(from)
	}
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	since := fs.Duration("since", 24*time.Hour, "show events of this last period (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	errorID := fs.String("id", "", "only the events that name this error ID (of an error page; the whole trail unless --since is given)")
	if pos, err := parseFlags(fs, args, e.stderr); err != nil || len(pos) > 0 {
		return ErrUsage
	}
	if *errorID != "" {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "since" })
		if !set {
			*since = 0
		}
	}
	from, err := sinceTime(*since, time.Now())
	if err != nil {
		return err
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	st, err := openStoreFor(e.ctx, c, true, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	evs, err := st.Events(e.ctx, from)
	if err != nil {
		return err
	}
	if *errorID != "" {
		evs = slices.DeleteFunc(evs, func(ev sluis.Event) bool { return !audit.NamesErrorID(ev, *errorID) })
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, ev := range evs {
			if err := enc.Encode(auditJSON{ev.ID, ev.Time, ev.Type, ev.User, ev.Source, ev.App, ev.Outcome, ev.Detail}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tUSER\tSOURCE\tAPP\tOUTCOME\tDETAIL")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format(time.DateTime), shown(ev.Type), shown(ev.User),
			shown(ev.Source), shown(ev.App), shown(ev.Outcome), shown(ev.Detail))
	}
	return tw.Flush()
}

func (e *env) config(args []string) error {
	if len(args) != 1 || args[0] != "check" {
		fmt.Fprintf(e.stderr, "sluis config: the only command is \"config check\"\n")
		return ErrUsage
	}
	c, err := config.Load(e.configPath)
	if err == nil {
		// The files it names, as `sluis serve` checks them.
		err = c.CheckFiles()
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintln(e.stderr, p)
			}
			return fmt.Errorf("%s: %d problem(s)", e.configPath, len(ce.Problems))
		}
		return err
	}
	for _, w := range c.Warnings {
		fmt.Fprintln(e.stdout, "warning:", w)
	}
	// Groups nobody is in, against the users in the store, when there is
	// one to read.
	if fi, err := os.Stat(c.DataDir); err == nil && fi.IsDir() {
		if st, err := openStoreFor(e.ctx, c, true, io.Discard); err == nil {
			users, err := st.Users(e.ctx)
			st.Close()
			if err == nil {
				for _, w := range c.UnknownGroups(users) {
					fmt.Fprintln(e.stdout, "warning:", w)
				}
			}
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok (portal %s, %d app(s))\n", e.configPath, c.Portal, len(c.Apps))
	return nil
}

// shown returns s for a terminal: as it is when every character is
// printable, quoted with escapes otherwise, so no stored text (a user name
// typed into the login form) can forge a line or send escape sequences to
// the operator's terminal.
func shown(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.Quote(s)
		}
	}
	return s
}

// sinceTime is the start of the period --since names: how far back from
// now. Zero means the whole trail; a negative duration would reach into
// the future and show nothing, which reads as "nothing happened", so it is
// refused.
func sinceTime(since time.Duration, now time.Time) (time.Time, error) {
	switch {
	case since < 0:
		return time.Time{}, fmt.Errorf("--since %s: give how far back, a positive duration such as 1h or 168h (0: the whole trail)", since)
	case since == 0:
		return time.Time{}, nil
	}
	return now.Add(-since), nil
}

// auditExport writes the trail (or its last period) and all checkpoints as
// JSON lines, to be kept elsewhere and verified later with
// `sluis audit verify --file`.
func (e *env) auditExport(from time.Time) error {
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	st, err := openStoreFor(e.ctx, c, true, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	evs, err := st.Events(e.ctx, from)
	if err != nil {
		return err
	}
	cps, err := st.Checkpoints(e.ctx)
	if err != nil {
		return err
	}
	return audit.WriteExport(e.stdout, evs, cps)
}

// incidentArgs are the arguments of the incident commands (app, block,
// emergency): a subcommand, positional arguments, --reason and --for.
type incidentArgs struct {
	sub    string
	pos    []string
	reason string
	forDur time.Duration
	force  bool // block add only
}

func (e *env) parseIncident(group string, args []string) (incidentArgs, error) {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return incidentArgs{}, ErrUsage
	}
	a := incidentArgs{sub: args[0]}
	fs := flag.NewFlagSet(group+" "+a.sub, flag.ContinueOnError)
	reason := fs.String("reason", "", "why (recorded; users see it where it concerns them)")
	forDur := fs.Duration("for", 0, "undo by itself after this long")
	force := new(bool)
	if group == "block" {
		force = fs.Bool("force", false, "block a range wider than /8 (IPv4) or /32 (IPv6), staff included")
	}
	pos, err := parseFlags(fs, args[1:], e.stderr)
	if err != nil {
		return a, err
	}
	a.pos, a.reason, a.forDur, a.force = pos, strings.TrimSpace(*reason), *forDur, *force
	if len(a.reason) > 500 {
		return a, fmt.Errorf("--reason: at most 500 characters")
	}
	if a.forDur < 0 {
		return a, fmt.Errorf("--for must be positive")
	}
	return a, nil
}

// app switches apps off and on for everyone, in the running gateway too.
func (e *env) app(args []string) error {
	ia, err := e.parseIncident("app", args)
	if err != nil {
		return err
	}
	sub, pos, reason := ia.sub, ia.pos, &ia.reason
	if (sub != "disable" && sub != "enable") || len(pos) != 1 {
		fmt.Fprintf(e.stderr, "sluis app %s: give one app name\n", sub)
		return ErrUsage
	}
	c, st, au, err := e.admin(false)
	if err != nil {
		return err
	}
	defer st.Close()
	a, ok := c.AppByName(pos[0])
	if !ok {
		return fmt.Errorf("no app %q in %s", pos[0], c.File)
	}
	if sub == "disable" && *reason == "" {
		return fmt.Errorf("sluis app disable: --reason is required; users see it")
	}
	act, op := e.actions(c, st, au)
	if sub == "disable" {
		err = act.DisableApp(e.ctx, op, a.Name, *reason)
	} else {
		err = act.EnableApp(e.ctx, op, a.Name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "app %s %sd\n", a.Name, sub)
	return nil
}

// block adds, lists and removes blocked source ranges, in force in the
// running gateway on its next request.
func (e *env) block(args []string) error {
	ia, err := e.parseIncident("block", args)
	if err != nil {
		return err
	}
	sub, pos := ia.sub, ia.pos
	c, st, au, err := e.admin(sub == "list")
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	act, op := e.actions(c, st, au)
	switch {
	case sub == "add" && len(pos) == 1:
		if _, err := admin.ParseCIDR(pos[0]); err != nil {
			return err
		}
		if ia.reason == "" {
			return fmt.Errorf("sluis block add: --reason is required")
		}
		r, err := act.AddBlock(e.ctx, op, admin.BlockRequest{CIDR: pos[0], Reason: ia.reason, For: ia.forDur, Force: ia.force})
		var wide *admin.WideRangeError
		if errors.As(err, &wide) {
			return fmt.Errorf("sluis block add: %s covers %s: it would lock out staff too, and everyone the gateway serves; to block it all the same, add --force", wide.CIDR, wide.Covers)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "blocked %s %s\n", r.Block.CIDR, r.Until)
	case sub == "remove" && len(pos) == 1:
		cidr, err := act.RemoveBlock(e.ctx, op, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "unblocked %s\n", cidr)
	case sub == "list" && len(pos) == 0:
		blocks, err := st.Blocks(e.ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CIDR\tBY\tUNTIL\tREASON")
		for _, b := range blocks {
			if !b.Until.IsZero() && !now.Before(b.Until) {
				continue // lifted
			}
			by, until := "operator", "removed"
			if b.Auto {
				by = "automatic"
			}
			if !b.Until.IsZero() {
				until = b.Until.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.CIDR, by, until, shown(b.Reason))
		}
		return tw.Flush()
	default:
		fmt.Fprintf(e.stderr, "sluis block: add CIDR --reason ... [--for 1h] [--force], list, or remove CIDR\n")
		return ErrUsage
	}
	return nil
}

// emergency sets, shows and clears the emergency level; the running
// gateway applies it on the next request.
func (e *env) emergency(args []string) error {
	ia, err := e.parseIncident("emergency", args)
	if err != nil {
		return err
	}
	sub, pos := ia.sub, ia.pos
	c, st, au, err := e.admin(sub == "status")
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	cur, err := st.Emergency(e.ctx)
	if err != nil {
		return err
	}
	curLevel, curReason := cur.Effective(now)
	act, op := e.actions(c, st, au)
	switch {
	case sub == "status" && len(pos) == 0:
		fmt.Fprintf(e.stdout, "level %s", curLevel)
		if curLevel != sluis.LevelNormal {
			fmt.Fprintf(e.stdout, ": %s (set by %s at %s", shown(curReason), shown(cur.SetBy), cur.SetAt.Local().Format(time.DateTime))
			if !cur.Until.IsZero() {
				fmt.Fprintf(e.stdout, ", until %s, then %s", cur.Until.Local().Format(time.DateTime), cur.Previous)
			}
			fmt.Fprint(e.stdout, ")")
		}
		fmt.Fprintln(e.stdout)
		return nil
	case sub == "clear" && len(pos) == 0:
		if _, err := act.ClearLevel(e.ctx, op); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "level normal")
		return nil
	case sub == "set" && len(pos) == 1:
		level := pos[0]
		if !slices.Contains(admin.Levels, level) {
			return fmt.Errorf("unknown level %q: normal, strict, essential, lockdown or closed", level)
		}
		if level != sluis.LevelNormal && ia.reason == "" {
			return fmt.Errorf("sluis emergency set: --reason is required; users see it")
		}
		r, err := act.SetLevel(e.ctx, op, admin.LevelChange{Level: level, Reason: ia.reason, For: ia.forDur})
		if r.Emergency.Level == "" {
			return err
		}
		fmt.Fprintf(e.stdout, "level %s %s\n", level, r.Until)
		if err != nil {
			return err
		}
		if level == sluis.LevelLockdown {
			fmt.Fprintf(e.stdout, "revoked %d session(s) of users outside break_glass\n", r.Revoked)
		}
		return nil
	}
	fmt.Fprintf(e.stderr, "sluis emergency: set LEVEL --reason ..., status or clear\n")
	return ErrUsage
}
