// Package directory authenticates users against LDAP or Active Directory
// and reads their groups: a service account finds the user, the user's
// own bind checks the password, and group membership (nested groups
// included) is mapped to sluis groups. The second factor stays with sluis.
package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/sluis-gateway/sluis"
)

// Errors of Authenticate. Only ErrUnavailable says anything about the
// directory; the others are one answer to the user ("wrong user name or
// password") and a reason for the audit trail.
var (
	ErrUnavailable = errors.New("the directory cannot be reached")
	ErrInvalid     = errors.New("unknown user or wrong password")
	ErrDisabled    = errors.New("the account is disabled in the directory")
	// ErrUnreadable follows a correct password: the directory could not
	// tell whether the account is disabled, or its groups. The login
	// fails like any other, but it is recorded as what it is.
	ErrUnreadable = errors.New("password verified, but the directory could not be read")
)

// Account is a directory user as Authenticate found them.
type Account struct {
	Name   string   // the entry's own name (NameAttribute), lower case: the sluis user name
	ID     string   // the entry's immutable id (IDAttribute)
	Groups []string // sluis groups
	// Email and DisplayName are the entry's (EmailAttribute,
	// DisplayNameAttribute), "" when missing or not safe to keep
	// (sluis.SourceProfile).
	Email, DisplayName string
}

// Nested group modes.
const (
	// NestedRecursive follows groups that are members of groups, one
	// search a level (any LDAP server).
	NestedRecursive = "recursive"
	// NestedInChain asks Active Directory for the whole chain in one
	// search, with its LDAP_MATCHING_RULE_IN_CHAIN.
	NestedInChain = "in_chain"
	// NestedNone takes direct membership only.
	NestedNone = "none"
)

// inChainOID is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN.
const inChainOID = "1.2.840.113556.1.4.1941"

// maxDepth bounds the nesting followed in recursive mode (and cycles).
const maxDepth = 10

// Config says how to reach and read the directory.
type Config struct {
	URLs         []string // ldap:// or ldaps://, tried in order (failover)
	StartTLS     bool     // upgrade ldap:// connections with StartTLS
	RootCAs      *x509.CertPool
	BindDN       string
	BindPassword string
	UserBase     string
	UserFilter   string // with {user} where the escaped user name goes
	// NameAttribute is the entry's user name, which becomes the sluis
	// name whatever name the filter matched (a mail address, an alias);
	// zero means uid. Active Directory: sAMAccountName.
	NameAttribute string
	// IDAttribute is the entry's immutable id; zero means entryUUID.
	// Active Directory: objectGUID.
	IDAttribute string
	// EmailAttribute and DisplayNameAttribute give the email address and
	// display name; zero means mail and displayName.
	EmailAttribute       string
	DisplayNameAttribute string
	GroupBase            string
	Nested               string // NestedRecursive (default), NestedInChain or NestedNone
	// DisabledFilter matches disabled accounts, checked on the user's
	// entry; "" checks nothing. Active Directory:
	// (userAccountControl:1.2.840.113556.1.4.803:=2).
	DisabledFilter string
	// Groups maps group DNs to sluis groups; other groups are ignored.
	Groups map[string]string
	// Timeout bounds each network step; zero means 5 seconds.
	Timeout time.Duration
	// PoolSize is how many service connections are kept; zero means 4.
	PoolSize int
	Log      *slog.Logger
}

// Directory authenticates against one directory.
type Directory struct {
	cfg    Config
	groups map[string]string // normalised DN -> sluis group
	pool   chan *ldap.Conn
}

// New checks the configuration; it does not connect.
func New(cfg Config) (*Directory, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("directory: no URL")
	}
	for _, u := range cfg.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ldap" && p.Scheme != "ldaps") || p.Host == "" {
			return nil, fmt.Errorf("directory: %q is not an ldap:// or ldaps:// URL", u)
		}
	}
	if !strings.Contains(cfg.UserFilter, "{user}") {
		return nil, errors.New("directory: the user filter has no {user}")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 4
	}
	if cfg.Nested == "" {
		cfg.Nested = NestedRecursive
	}
	if cfg.NameAttribute == "" {
		cfg.NameAttribute = "uid"
	}
	if cfg.EmailAttribute == "" {
		cfg.EmailAttribute = "mail"
	}
	if cfg.DisplayNameAttribute == "" {
		cfg.DisplayNameAttribute = "displayName"
	}
	if cfg.IDAttribute == "" {
		cfg.IDAttribute = "entryUUID"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := &Directory{cfg: cfg, groups: map[string]string{}, pool: make(chan *ldap.Conn, cfg.PoolSize)}
	for dn, g := range cfg.Groups {
		n, err := normDN(dn)
		if err != nil {
			return nil, fmt.Errorf("directory: group %q: %w", dn, err)
		}
		d.groups[n] = g
	}
	return d, nil
}

// normDN is a DN in a form that compares equal however it was written.
func normDN(dn string) (string, error) {
	p, err := ldap.ParseDN(dn)
	if err != nil {
		return "", err
	}
	var rdns []string
	for _, r := range p.RDNs {
		var as []string
		for _, a := range r.Attributes {
			as = append(as, strings.ToLower(a.Type)+"="+strings.ToLower(a.Value))
		}
		slices.Sort(as)
		rdns = append(rdns, strings.Join(as, "+"))
	}
	return strings.Join(rdns, ","), nil
}

// dial connects to the first directory that answers, over TLS (ldaps, or
// StartTLS when configured).
func (d *Directory) dial(ctx context.Context) (*ldap.Conn, error) {
	var last error
	for _, u := range d.cfg.URLs {
		p, _ := url.Parse(u)
		host := p.Hostname()
		conf := &tls.Config{RootCAs: d.cfg.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}
		dialer := &net.Dialer{Timeout: d.cfg.Timeout}
		c, err := ldap.DialURL(u, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(conf))
		if err != nil {
			last = err
			d.cfg.Log.Warn("directory: cannot reach", "url", u, "err", err)
			continue
		}
		c.SetTimeout(d.cfg.Timeout)
		if p.Scheme == "ldap" && d.cfg.StartTLS {
			if err := c.StartTLS(conf); err != nil {
				c.Close()
				last = err
				d.cfg.Log.Warn("directory: StartTLS failed", "url", u, "err", err)
				continue
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnavailable, last)
}

// service returns a connection bound as the service account.
func (d *Directory) service(ctx context.Context) (*ldap.Conn, error) {
	select {
	case c := <-d.pool:
		if !c.IsClosing() {
			return c, nil
		}
		c.Close()
	default:
	}
	c, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
		c.Close()
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			d.cfg.Log.Error("directory: the service account's bind is refused; check bind_dn and the password file", "bind_dn", d.cfg.BindDN)
		}
		return nil, fmt.Errorf("%w: service bind: %v", ErrUnavailable, err)
	}
	return c, nil
}

func (d *Directory) release(c *ldap.Conn) {
	select {
	case d.pool <- c:
	default:
		c.Close()
	}
}

// Authenticate checks user's password with the directory and returns the
// account: its own name, its immutable id and the sluis groups it is in.
func (d *Directory) Authenticate(ctx context.Context, user, password string) (Account, error) {
	// An empty password would be an unauthenticated bind, which
	// directories accept as a success.
	if user == "" || password == "" {
		return Account{}, ErrInvalid
	}
	var acct Account
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		acct, err = d.authenticate(ctx, user, password)
		if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrDisabled) || errors.Is(err, ErrUnreadable) || ctx.Err() != nil {
			return acct, err
		}
		// A pooled connection may have died; try once more, fresh.
	}
	// Anything else (the network, the server, its configuration) means
	// the directory cannot answer: said as such, with the detail logged.
	d.cfg.Log.Warn("directory: cannot authenticate", "user", user, "err", err)
	if !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return Account{}, err
}

func (d *Directory) authenticate(ctx context.Context, user, password string) (Account, error) {
	svc, err := d.service(ctx)
	if err != nil {
		return Account{}, err
	}
	ok := false
	defer func() {
		if ok {
			d.release(svc)
		} else {
			svc.Close()
		}
	}()
	acct, dn, err := d.find(svc, user)
	if err != nil {
		ok = errors.Is(err, ErrInvalid)
		return Account{}, err
	}
	// The user's own bind checks the password, on a connection of its own.
	uc, err := d.dial(ctx)
	if err != nil {
		return Account{}, err
	}
	err = uc.Bind(dn, password)
	uc.Close()
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			ok = true
			return Account{}, ErrInvalid
		}
		return Account{}, err
	}
	// The password is right; what follows failing is not "unreachable".
	acct, err = d.state(svc, acct, dn)
	ok = err == nil || errors.Is(err, ErrDisabled)
	return acct, err
}

// Resolve returns the name of the account that user (as typed: a logon
// name, a mail address, any name the user filter matches) denotes, without
// checking a password: the search that Authenticate starts with. Throttles
// and the audit trail key on this name, so every alias of one account
// shares its budget. ErrInvalid when no single entry matches; ErrUnavailable
// when the directory cannot answer.
func (d *Directory) Resolve(ctx context.Context, user string) (string, error) {
	if user == "" {
		return "", ErrInvalid
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var svc *ldap.Conn
		if svc, err = d.service(ctx); err != nil {
			continue
		}
		var acct Account
		acct, _, err = d.find(svc, user)
		if err == nil || errors.Is(err, ErrInvalid) {
			d.release(svc)
			return acct.Name, err
		}
		svc.Close()
		if ctx.Err() != nil {
			break
		}
		// A pooled connection may have died; try once more, fresh.
	}
	d.cfg.Log.Warn("directory: cannot look up a name", "user", user, "err", err)
	if !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return "", err
}

// Recheck reads an account's state again without its password: whether it
// still exists under this name, is disabled, and its groups. The gateway
// calls it now and then for users with live sessions, so a change in the
// directory reaches them before their next login.
func (d *Directory) Recheck(ctx context.Context, name string) (Account, error) {
	svc, err := d.service(ctx)
	if err != nil {
		return Account{}, err
	}
	acct, dn, err := d.find(svc, name)
	if err == nil {
		acct, err = d.state(svc, acct, dn)
	}
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrDisabled) {
		d.release(svc)
	} else {
		svc.Close()
	}
	return acct, err
}

// find looks the user up with the service account: the entry's DN, its own
// name and its immutable id. ErrInvalid when there is not exactly one
// usable entry.
func (d *Directory) find(svc *ldap.Conn, user string) (Account, string, error) {
	filter := strings.ReplaceAll(d.cfg.UserFilter, "{user}", ldap.EscapeFilter(user))
	res, err := svc.Search(ldap.NewSearchRequest(d.cfg.UserBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, int(d.cfg.Timeout/time.Second), false,
		filter, []string{"dn", d.cfg.NameAttribute, d.cfg.IDAttribute, d.cfg.EmailAttribute, d.cfg.DisplayNameAttribute}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return Account{}, "", err
	}
	if len(res.Entries) != 1 {
		if len(res.Entries) > 1 {
			d.cfg.Log.Warn("directory: the user filter finds more than one entry; refused", "user", user)
		}
		return Account{}, "", ErrInvalid
	}
	entry := res.Entries[0]
	// The account's own name and id, whatever name was typed: one sluis
	// user per directory account.
	names := entry.GetAttributeValues(d.cfg.NameAttribute)
	acct := Account{ID: entry.GetAttributeValue(d.cfg.IDAttribute)}
	if raw := entry.GetRawAttributeValue(d.cfg.IDAttribute); strings.EqualFold(d.cfg.IDAttribute, "objectGUID") && len(raw) > 0 {
		acct.ID = fmt.Sprintf("%x", raw)
	}
	if len(names) != 1 || acct.ID == "" {
		d.cfg.Log.Warn("directory: the entry has no single name or no id; refused", "dn", entry.DN, "name_attribute", d.cfg.NameAttribute, "id_attribute", d.cfg.IDAttribute)
		return Account{}, "", ErrInvalid
	}
	name, err := sluis.SourceName(names[0])
	if err != nil {
		d.cfg.Log.Warn("directory: the entry's name cannot be a sluis user name; refused", "dn", entry.DN, "err", err)
		return Account{}, "", ErrInvalid
	}
	acct.Name = name
	acct.Email, acct.DisplayName = sluis.SourceProfile(entry.GetAttributeValue(d.cfg.EmailAttribute), entry.GetAttributeValue(d.cfg.DisplayNameAttribute))
	return acct, entry.DN, nil
}

// state reads whether the account is disabled and its groups.
func (d *Directory) state(svc *ldap.Conn, acct Account, dn string) (Account, error) {
	if d.cfg.DisabledFilter != "" {
		res, err := svc.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, int(d.cfg.Timeout/time.Second), false,
			d.cfg.DisabledFilter, []string{"dn"}, nil))
		if err != nil {
			d.cfg.Log.Warn("directory: cannot check the disabled filter", "dn", dn, "err", err)
			return Account{}, ErrUnreadable
		}
		if len(res.Entries) > 0 {
			return Account{}, ErrDisabled
		}
	}
	if d.cfg.GroupBase == "" || len(d.groups) == 0 {
		return acct, nil // no groups to map
	}
	groupDNs, err := d.memberOf(svc, dn)
	if err != nil {
		d.cfg.Log.Warn("directory: cannot read groups", "dn", dn, "err", err)
		return Account{}, ErrUnreadable
	}
	var out []string
	for _, g := range groupDNs {
		n, err := normDN(g)
		if err != nil {
			continue
		}
		if sg, found := d.groups[n]; found && !slices.Contains(out, sg) {
			out = append(out, sg)
		}
	}
	slices.Sort(out)
	acct.Groups = out
	return acct, nil
}

// memberOf returns the DNs of the groups dn is in, nested ones included
// as configured.
func (d *Directory) memberOf(c *ldap.Conn, dn string) ([]string, error) {
	search := func(filter string) ([]string, error) {
		res, err := c.SearchWithPaging(ldap.NewSearchRequest(d.cfg.GroupBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, int(d.cfg.Timeout/time.Second), false,
			filter, []string{"dn"}, nil), 500)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, e := range res.Entries {
			out = append(out, e.DN)
		}
		return out, nil
	}
	switch d.cfg.Nested {
	case NestedInChain:
		return search(fmt.Sprintf("(member:%s:=%s)", inChainOID, ldap.EscapeFilter(dn)))
	case NestedNone:
		return search(fmt.Sprintf("(member=%s)", ldap.EscapeFilter(dn)))
	}
	seen := map[string]bool{}
	var all []string
	level := []string{dn}
	for depth := 0; depth < maxDepth && len(level) > 0; depth++ {
		var next []string
		for _, m := range level {
			gs, err := search(fmt.Sprintf("(member=%s)", ldap.EscapeFilter(m)))
			if err != nil {
				return nil, err
			}
			for _, g := range gs {
				n, _ := normDN(g)
				if !seen[n] {
					seen[n] = true
					all = append(all, g)
					next = append(next, g)
				}
			}
		}
		level = next
	}
	return all, nil
}

// InChainFilter is the group filter used with NestedInChain, for tests.
func InChainFilter(dn string) string {
	return fmt.Sprintf("(member:%s:=%s)", inChainOID, ldap.EscapeFilter(dn))
}
