// Package config reads the gateway's YAML configuration. Decoding is strict:
// an unknown key, a wrong type or an invalid value is an error that names the
// file, the line and the key, so an operator never runs a gateway whose
// configuration says something other than they think.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	// The time zones are in the binary: a static build on a host without
	// /usr/share/zoneinfo reads rules' hours in the configured zone too.
	_ "time/tzdata"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/frontdoor"
	"github.com/sluis-gateway/sluis/policy"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of a gateway.
type Config struct {
	// Listen is the address the HTTPS listener binds, host:port. Required.
	Listen string `yaml:"listen"`
	// Portal is the host name of the login portal. Required.
	Portal string `yaml:"portal"`
	// DataDir holds the generated keys (and the SQLite database unless
	// Store names another). Relative paths are taken from the
	// configuration file's folder. Required.
	DataDir string `yaml:"data_dir"`
	// Store is where users, sessions, blocks and the audit trail are kept.
	// Zero: the embedded SQLite database in DataDir.
	Store   Store   `yaml:"store"`
	TLS     TLS     `yaml:"tls"`
	Session Session `yaml:"session"`
	Probes  Probes  `yaml:"probes"`
	// Emergency configures the emergency levels.
	Emergency Emergency `yaml:"emergency"`
	// Strict configures the emergency level "strict".
	Strict Strict `yaml:"strict"`
	Audit  Audit  `yaml:"audit"`
	// Tunnels sets the limits of tunnels to TCP apps.
	Tunnels Tunnels `yaml:"tunnels"`
	// Connections sets the limits of the public listener's connections.
	Connections Connections `yaml:"connections"`
	// MemoryLimit is the gateway's soft memory limit (see package
	// memlimit): past it the runtime collects garbage more often; no
	// allocation ever fails because of it. Zero means a limit that
	// follows what the gateway holds live, plus max(128 MiB, that). The
	// environment variable GOMEMLIMIT, when set, wins over both.
	MemoryLimit Size `yaml:"memory_limit"`
	// LDAP, if set, is a directory (LDAP or Active Directory) whose users
	// log in with their directory password and a second factor held by
	// sluis. Local users are looked up first and always work.
	LDAP *LDAP `yaml:"ldap"`
	// OIDC are single sign-on providers, each a button on the login page.
	OIDC []OIDC `yaml:"oidc"`
	Apps []App  `yaml:"apps"`
	// TimeZone is the IANA time zone that rules' hours are read in, and
	// that pages show dates in. Empty means Europe/Amsterdam.
	TimeZone string `yaml:"time_zone"`
	// Language is the pages' language when neither the user's choice nor
	// the browser's Accept-Language names one there is a catalogue of
	// (see package locale): "en" or "nl". Empty means "en".
	Language string `yaml:"language"`
	// Branding is the organisation's face (see branding.go).
	Branding Branding `yaml:"branding"`
	// ConnectVia and ConnectCA are set by `sluis demo` only, never from a
	// file: the address `sluis connect` dials instead of the portal's
	// name, and the CA file it trusts, so that the launcher's commands
	// (with --connect and --ca) work as shown where the portal's name
	// is not in DNS. Empty means the commands need neither.
	ConnectVia, ConnectCA string `yaml:"-"`
	// PublicURL is the portal as users reach it, https://PORTAL[:PORT],
	// when that is not the listener (behind a load balancer or a port
	// forward). Its host is the portal's name; every URL the gateway
	// builds (portal and app URLs, redirects, the return URLs it
	// accepts, the passkey origin, OIDC callbacks, X-Forwarded-Host)
	// takes its scheme and port, apps included. Empty means https with
	// the listener's port.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the addresses (CIDRs) of the load balancers in
	// front of the gateway. From them alone ForwardedHeader (and, with
	// ProxyProtocol, a PROXY protocol header) is believed: the client is
	// the right-most address in it that is not itself trusted. From any
	// other source those headers are ignored. Empty means none: the
	// client is the socket's peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ForwardedHeader is the header the trusted proxies write the
	// client's address to: X-Forwarded-For (the default) or Forwarded
	// (RFC 7239). Only one is read, because a balancer passes the other
	// on as the client sent it.
	ForwardedHeader string `yaml:"forwarded_header"`
	// ProxyProtocol makes the listener take the PROXY protocol (v1 or
	// v2) from TrustedProxies, for TCP load balancers: a connection from
	// them must begin with a header, and one from anywhere else that
	// begins with one is closed. False means no PROXY protocol.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// Admin, if set, is the admin listener: the console, the JSON API and
	// /metrics, apart from the public listener (see Admin). Nil: none.
	Admin *Admin `yaml:"admin"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
	// Warnings are things that are valid but probably not meant.
	Warnings []string `yaml:"-"`
	// lines is the line of every key path, for CheckFiles's messages.
	lines      map[string]int
	zone       *time.Location
	publicPort int // from PublicURL; zero when it is not set
	trusted    []netip.Prefix
}

// PublicPort is the port in the URLs users see: PublicURL's, or else
// listenPort (the port the listener got).
func (c *Config) PublicPort(listenPort int) int {
	if c.publicPort != 0 {
		return c.publicPort
	}
	return listenPort
}

// Proxies are the trusted proxies in front of the gateway, as the front
// door reads them; zero when none are configured.
func (c *Config) Proxies() frontdoor.Proxies {
	if len(c.trusted) == 0 {
		return frontdoor.Proxies{}
	}
	return frontdoor.Proxies{Trusted: c.trusted, Header: c.ForwardedHeader}
}

// DefaultTimeZone is the time zone of rules' hours when time_zone is not
// set.
const DefaultTimeZone = "Europe/Amsterdam"

// Zone returns the time zone rules' hours are read in.
func (c *Config) Zone() *time.Location {
	if c.zone == nil {
		if z, err := time.LoadLocation(DefaultTimeZone); err == nil {
			return z
		}
		return time.UTC
	}
	return c.zone
}

// TLS says where the listener's certificate comes from: either SelfSigned,
// or CertFile and KeyFile (PEM). Exactly one of the two is required.
type TLS struct {
	SelfSigned bool   `yaml:"self_signed"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
}

// Store is where the gateway keeps its data. The zero Store is the
// embedded SQLite database in data_dir, for one node. In YAML it is a
// postgres:// URL, or a mapping {postgres: {url_file: PATH}} (or {url:
// ...}); "sqlite" names the default.
type Store struct {
	// Postgres, if set, is a PostgreSQL database that several gateway
	// nodes share.
	Postgres *Postgres
}

// Postgres is a PostgreSQL database: its URL, written out or in a file.
// Exactly one of the two is set.
type Postgres struct {
	// URL is postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]. A
	// password in it is accepted, but then the configuration file holds a
	// secret: URLFile keeps it out.
	URL string `yaml:"url"`
	// URLFile holds the URL (one line), read at start; relative to the
	// configuration file's folder.
	URLFile string `yaml:"url_file"`
}

// IsPostgres reports whether the store is a PostgreSQL database.
func (s Store) IsPostgres() bool { return s.Postgres != nil }

func (s *Store) UnmarshalYAML(n *yaml.Node) error {
	const want = "want a postgres:// URL, sqlite, or a mapping such as {postgres: {url_file: PATH}}"
	switch n.Kind {
	case yaml.ScalarNode:
		switch {
		case n.Value == "sqlite":
			*s = Store{}
			return nil
		case strings.HasPrefix(n.Value, "postgres://") || strings.HasPrefix(n.Value, "postgresql://"):
			*s = Store{Postgres: &Postgres{URL: n.Value}}
			return nil
		}
		// The value is not quoted: it may hold a password.
		return typeError("line %d: %s", n.Line, want)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value != "postgres" {
				return typeError("line %d: field %s not found in type config.Store", k.Line, k.Value)
			}
			if v.Kind != yaml.MappingNode {
				return typeError("line %d: want a mapping with url_file (or url)", v.Line)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				if kk := v.Content[j]; kk.Value != "url" && kk.Value != "url_file" {
					return typeError("line %d: field %s not found in type config.Postgres", kk.Line, kk.Value)
				}
			}
			var pg Postgres
			if err := v.Decode(&pg); err != nil {
				return err
			}
			*s = Store{Postgres: &pg}
		}
		return nil
	}
	return typeError("line %d: %s", n.Line, want)
}

// ReadURL returns the database's URL: URL, or the first line of URLFile.
// Its errors never quote the URL, which may hold a password.
func (p *Postgres) ReadURL() (string, error) {
	u := p.URL
	if p.URLFile != "" {
		data, err := os.ReadFile(p.URLFile)
		if err != nil {
			return "", fmt.Errorf("store.postgres.url_file: %w", err)
		}
		u = strings.TrimSpace(string(data))
		if u == "" {
			return "", fmt.Errorf("store.postgres.url_file %s: empty", p.URLFile)
		}
	}
	if err := checkPostgresURL(u); err != nil {
		if p.URLFile != "" {
			return "", fmt.Errorf("store.postgres.url_file %s: %v", p.URLFile, err)
		}
		return "", fmt.Errorf("store: %v", err)
	}
	return u, nil
}

// checkPostgresURL checks the form of a database URL, without quoting it.
func checkPostgresURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("the URL does not parse")
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		return errors.New("want a postgres:// URL")
	case u.Host == "":
		return errors.New("the URL names no host")
	case strings.Trim(u.Path, "/") == "":
		return errors.New("the URL names no database (postgres://HOST/DB)")
	}
	return nil
}

// Session sets how long a login lasts.
type Session struct {
	// IdleTimeout ends a session unused for this long. Zero means 30m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// Lifetime ends a session this long after login, used or not. Zero
	// means 12h.
	Lifetime Duration `yaml:"lifetime"`
}

// Probes sets how the front door answers known exploit probes and refused
// requests: each is recorded, and a source that sends BlockAfter of them
// within BlockWindow is blocked for BlockFor.
type Probes struct {
	// BlockAfter is the number of probes that blocks a source. Zero means
	// 10: enough that a user's mistyped URL or a browser quirk never
	// blocks an office behind one address, few enough to stop a scanner.
	BlockAfter int `yaml:"block_after"`
	// BlockWindow is the period BlockAfter counts in. Zero means 1m.
	BlockWindow Duration `yaml:"block_window"`
	// BlockFor is how long a source stays blocked. Zero means 15m.
	BlockFor Duration `yaml:"block_for"`
	// EventEvery bounds the audit trail: per source and rule at most one
	// security.probe event per this interval, with a count. Zero means 1m.
	EventEvery Duration `yaml:"event_every"`
}

// LDAP configures the directory.
type LDAP struct {
	// URLs are tried in order (failover): ldaps://host:636 or
	// ldap://host:389 with start_tls. Required.
	URLs []string `yaml:"urls"`
	// StartTLS upgrades ldap:// connections; plain LDAP is refused
	// unless it is on.
	StartTLS bool `yaml:"start_tls"`
	// CAFile is the CA that signed the directory's certificate; empty
	// means the system's CAs.
	CAFile string `yaml:"ca_file"`
	// BindDN is the service account that searches users and groups.
	BindDN string `yaml:"bind_dn"`
	// BindPasswordFile holds its password (one line); it is read at start.
	BindPasswordFile string `yaml:"bind_password_file"`
	// UserBase and UserFilter find a user; {user} in the filter is
	// replaced by the escaped user name. Active Directory:
	// (&(objectClass=user)(sAMAccountName={user})).
	UserBase   string `yaml:"user_base"`
	UserFilter string `yaml:"user_filter"`
	// NameAttribute is the entry's own user name, the sluis name whatever
	// the filter matched; zero means uid (Active Directory:
	// sAMAccountName).
	NameAttribute string `yaml:"name_attribute"`
	// IDAttribute is the entry's immutable id; zero means entryUUID
	// (Active Directory: objectGUID).
	IDAttribute string `yaml:"id_attribute"`
	// EmailAttribute and DisplayNameAttribute give the user's email
	// address and display name, for apps that take them in a header;
	// zero means mail and displayName.
	EmailAttribute       string `yaml:"email_attribute"`
	DisplayNameAttribute string `yaml:"display_name_attribute"`
	// GroupBase is where groups are searched.
	GroupBase string `yaml:"group_base"`
	// NestedGroups: recursive (default; any LDAP), in_chain (Active
	// Directory's matching rule, one search) or none.
	NestedGroups string `yaml:"nested_groups"`
	// DisabledFilter matches disabled accounts on the user's entry. Active
	// Directory: (userAccountControl:1.2.840.113556.1.4.803:=2).
	DisabledFilter string `yaml:"disabled_filter"`
	// Groups maps directory group DNs to sluis groups; other groups are
	// ignored.
	Groups map[string]string `yaml:"groups"`
	// Timeout bounds each network step. Zero means 5s.
	Timeout Duration `yaml:"timeout"`
	// PoolSize is how many service connections are kept. Zero means 4.
	PoolSize int `yaml:"pool_size"`
	// RecheckEvery is how often the directory is asked again about users
	// with live sessions: a disabled or deleted account loses its
	// sessions, changed groups count. Zero means 5m.
	RecheckEvery Duration `yaml:"recheck_every"`
}

// OIDC is one OpenID Connect provider.
type OIDC struct {
	// Name is the provider's id in URLs (/login/oidc/NAME); its callback
	// is https://PORTAL/login/oidc/NAME/callback. Required.
	Name string `yaml:"name"`
	// Title is the button's text: "Log in with TITLE". Zero means Name.
	Title string `yaml:"title"`
	// Issuer is the provider's https URL; discovery reads
	// ISSUER/.well-known/openid-configuration. Required.
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret (one line), read at start.
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"` // zero means openid, profile, email
	// UsernameClaim names the user; zero means preferred_username.
	UsernameClaim string `yaml:"username_claim"`
	// GroupsClaim holds the groups; zero means groups.
	GroupsClaim string `yaml:"groups_claim"`
	// Groups maps the provider's groups to sluis groups.
	Groups map[string]string `yaml:"groups"`
	// MFAAMR and MFAACR are the amr and acr values that count as the
	// second factor; with neither, sluis asks for its own.
	MFAAMR []string `yaml:"mfa_amr"`
	MFAACR []string `yaml:"mfa_acr"`
}

// Tunnels sets the limits of tunnels to TCP apps.
type Tunnels struct {
	// IdleTimeout closes a tunnel without a byte either way for this
	// long. Zero means 15m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxPerUser caps a user's open tunnels. Zero means 32.
	MaxPerUser int `yaml:"max_per_user"`
}

// Connections sets the limits of the public listener's connections, so
// that nobody can hold all of them (and the process's file descriptors).
type Connections struct {
	// Max caps the connections open at once; past it new ones are closed
	// at once (and logged). Zero means derived at start from the limit on
	// open files: a tenth (at least 256) is kept for the database, logs
	// and directory, half of the rest is for clients (the other half for
	// the connections the gateway opens upstream for them), at most 32768.
	Max int `yaml:"max"`
	// MaxPerSource caps the connections open at once from one address
	// (IPv6: one /64). Zero means 256. A trusted proxy's connections are
	// not capped as its own (each stands for a client); with the PROXY
	// protocol they count under the client its header names.
	MaxPerSource int `yaml:"max_per_source"`
	// HeaderTimeout is how long a new connection has to send a request's
	// headers (HTTP/2: to open a stream) before it is closed. Zero means
	// 10s.
	HeaderTimeout Duration `yaml:"header_timeout"`
	// IdleTimeout closes a kept-alive connection (HTTP/1.1 or HTTP/2)
	// with no request under way for this long. Zero means 60s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DrainDelay is how long, after SIGTERM, the node goes on serving
	// everything while /readyz answers 503, so that a balancer's health
	// check takes it out before it stops accepting connections. Zero
	// means none: the listener closes at once (a balancer then sees
	// refused connections). Set it to what the balancer needs to notice
	// (HAProxy: inter times fall).
	DrainDelay Duration `yaml:"drain_delay"`
	// ShutdownGrace is how long, once the listener has closed, requests
	// under way and open tunnels may take to finish before they are cut
	// and the node exits. Zero means 30s. Open tunnels (an SSH session)
	// seldom finish by themselves, so a node with tunnels open takes the
	// whole grace to exit.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// Strict configures the emergency level "strict".
type Strict struct {
	// ReauthAfter is how old a session's second factor may be at the
	// level "strict" before the user must pass it again. Zero means 1h.
	ReauthAfter Duration `yaml:"reauth_after"`
	// PhishingResistant names the apps that require a passkey at the
	// level "strict" (as `mfa: phishing_resistant` does at every level).
	PhishingResistant []string `yaml:"phishing_resistant"`
}

// Emergency configures the emergency levels.
type Emergency struct {
	// BreakGlass are the users and groups who may still log in and keep
	// their sessions at the level "lockdown". Empty means nobody.
	BreakGlass BreakGlass `yaml:"break_glass"`
}

// BreakGlass lists users and groups.
type BreakGlass struct {
	Users  []string `yaml:"users"`
	Groups []string `yaml:"groups"`
}

// Audit says where the audit trail goes besides the database.
type Audit struct {
	Syslog *Syslog `yaml:"syslog"`
	// FoldRefusals is the interval within which the refused attempts at
	// one user (wrong passwords, codes, throttled tries) are written as
	// one event with a count of attempts and sources. Zero means 1m.
	FoldRefusals Duration `yaml:"fold_refusals"`
	// RefusalsPerMinute caps the refusal events written in a minute over
	// all users; past it, one summary event counts the rest. Zero means
	// 600, which bounds a flood to about 36,000 rows an hour.
	RefusalsPerMinute int `yaml:"refusals_per_minute"`
}

// Syslog forwards every event as it happens to a syslog receiver (RFC 5424
// over TCP, octet-counted), optionally over TLS.
type Syslog struct {
	Address string `yaml:"address"` // host:port; required
	TLS     bool   `yaml:"tls"`
	// CAFile is a PEM file of the CA that signed the receiver's
	// certificate; empty means the system's roots.
	CAFile string `yaml:"ca_file"`
	// Queue bounds the events held while the receiver is unreachable.
	// Zero means 10000.
	Queue int `yaml:"queue"`
}

// App is one web application behind the gateway.
type App struct {
	Name     string `yaml:"name"`
	Host     string `yaml:"host"`
	Upstream string `yaml:"upstream"`
	// Title, Description and IconFile are what the launcher shows (see
	// branding.go); without a title it shows the name.
	Title       string `yaml:"title"`
	Description string `yaml:"description"`
	IconFile    string `yaml:"icon_file"`
	icon        *Image
	// TCP makes the app a TCP app (remote desktop, SSH, a database)
	// reached through `sluis connect`: the gateway dials exactly this
	// host:port. A literal IP address is dialled as written; a host name is
	// resolved when dialling, and refused if it resolves to a loopback,
	// link-local or cloud-metadata address. A TCP app has no host and no
	// upstream.
	TCP string `yaml:"tcp"`
	// Allow are the app's access rules: one mapping, or a list tried in
	// order (see Rule). Without it nobody may open the app.
	Allow Rules `yaml:"allow"`
	// Essential apps stay open at the emergency level "essential".
	Essential bool `yaml:"essential"`
	// RequestHeaders adjusts the list of client headers dropped before the
	// upstream (frontdoor.Spoofable): remove adds names, keep lets listed
	// ones through. Nil means the default list as it is.
	RequestHeaders *RequestHeaders `yaml:"request_headers"`
	// IdentityHeaders maps header names to what the gateway puts in them:
	// user, groups, email or name. The client's copies are always dropped.
	IdentityHeaders map[string]string `yaml:"identity_headers"`
	// CrossSitePost is "refuse" (the default: the app host's session
	// cookie is SameSite=Lax, so a form POST from another site arrives
	// without it and is sent to log in) or "allow" (SameSite=None, for
	// apps with their own single sign-on that receive SAML POST-binding
	// or OIDC form_post entries; the app's own CSRF protection must then
	// hold).
	CrossSitePost string `yaml:"cross_site_post"`
	// PreserveHost sends the public host name (with the port when it is
	// not 443) to the upstream. Without it (the default) the upstream is
	// asked for by its own address, its absolute Location,
	// Content-Location and Refresh URLs and Set-Cookie domains are
	// translated to the public ones, and the client's Destination, and
	// Origin and Referer naming the app, to the upstream's.
	PreserveHost bool `yaml:"preserve_host"`
	// Timeouts of requests to the app; zero values mean the defaults.
	Timeouts AppTimeouts `yaml:"timeouts"`
	// MaxBody caps a request body sent to the app (413 past it), such as
	// 50MiB; zero means no cap (uploads are bounded by time between
	// bytes, Timeouts.BodyIdle, not by total time or size).
	MaxBody Size `yaml:"max_body"`
	// EncodedSlashes is "refuse" (the default: a path with %2F or %25 is
	// refused) or "pass": %2F and %252F are passed to the upstream as
	// they were sent, for requests with a session only (APIs such as
	// GitLab's /api/v4/projects/group%2Fproject). Dot segments stay
	// refused, also those an upstream would see after decoding %2F.
	EncodedSlashes string `yaml:"encoded_slashes"`
	// PathParams is "refuse" (the default: a ';' in the path is refused)
	// or "pass": path parameters (;jsessionid=...) are passed unchanged,
	// for requests with a session only. "..;" stays refused.
	PathParams string `yaml:"path_params"`
	// CORSPreflight is "refuse" (the default: an OPTIONS request without a
	// session goes to login like any other) or "pass": a CORS preflight
	// (OPTIONS with Origin and Access-Control-Request-Method) without a
	// session is relayed to the upstream, with no identity and no cookies.
	CORSPreflight string `yaml:"cors_preflight"`
	// Cache is "private" (the default: a response without the app's own
	// Cache-Control gets "Cache-Control: private") or "no-store" (every
	// response gets "Cache-Control: no-store", for sensitive apps).
	Cache string `yaml:"cache"`
}

// AppTimeouts bound the waits of a request to an app.
type AppTimeouts struct {
	// ResponseHeader is how long the app may take to answer with its
	// response head (long polling, slow reports); zero means 60s.
	ResponseHeader Duration `yaml:"response_header"`
	// BodyIdle is the longest pause between two reads of a request body
	// (a slow upload may take as long as it keeps sending); zero means 60s.
	BodyIdle Duration `yaml:"body_idle"`
}

// Size is a number of bytes, written with a unit: 512KiB, 50MiB, 2GiB (or
// KB, MB, GB as powers of 1000), or a plain number of bytes.
type Size int64

func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	bad := typeError("line %d: %q is not a size such as 50MiB", n.Line, n.Value)
	if n.Kind != yaml.ScalarNode {
		return bad
	}
	v := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}} {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < 0 || i > (1<<50)/mult {
		return bad
	}
	*z = Size(i * mult)
	return nil
}

// RequestHeaders is an app's adjustment of the dropped client headers.
type RequestHeaders struct {
	Remove []string `yaml:"remove"`
	Keep   []string `yaml:"keep"`
}

// Values of the per-app path, preflight and cache settings.
const (
	Pass    = "pass"
	Refuse  = "refuse"
	Private = "private"
	NoStore = "no-store"
)

// Rule is one of an app's access rules. A request chooses the first rule
// whose Paths and Methods match it (a rule without them matches every
// request); all of the rule's conditions (users or groups, mfa, networks,
// hours) must then hold, or the request is denied: a later rule is never
// tried.
type Rule struct {
	// Paths are prefixes of the canonical path, matched segment by
	// segment; '*' in a segment matches any one segment's characters.
	Paths []string `yaml:"paths"`
	// Methods are HTTP methods (GET, POST, ...).
	Methods []string `yaml:"methods"`
	Users   []string `yaml:"users"`
	Groups  []string `yaml:"groups"`
	// MFA requires a second factor in the session: true, false (the
	// default, written out only because sluis's portal always asks for
	// one) or phishing_resistant (a passkey; a session that passed TOTP is
	// asked for one when it opens the app).
	MFA MFA `yaml:"mfa"`
	// Networks are source CIDRs ("10.1.0.0/16") the rule allows from.
	Networks []string `yaml:"networks"`
	// Hours are spans of the week ("mon-fri 07:00-19:00") the rule allows
	// in, in the top-level time_zone.
	Hours []string `yaml:"hours"`

	// Read by validate.
	networks []netip.Prefix
	hours    []sluis.Hours
	line     int
}

// Domain returns the rule as the policy decides on it.
func (r Rule) Domain() sluis.Rule {
	return sluis.Rule{Paths: r.Paths, Methods: r.Methods, Users: r.Users, Groups: r.Groups,
		MFA: r.MFA != MFANone, PhishingResistant: r.MFA == MFAPhishingResistant,
		Networks: r.networks, Hours: r.hours, Line: r.line}
}

// Rules are an app's access rules. In YAML, a single mapping is a list of
// one, so the older form `allow: {groups: [...]}` keeps working.
type Rules []Rule

// ruleKeys are the keys of a rule, for strict decoding.
var ruleKeys = []string{"paths", "methods", "users", "groups", "mfa", "networks", "hours"}

func (r *Rules) UnmarshalYAML(n *yaml.Node) error {
	decode := func(m *yaml.Node) (Rule, error) {
		var one Rule
		if m.Kind != yaml.MappingNode {
			return one, typeError("line %d: a rule is a mapping (users, groups, mfa, paths, methods, networks, hours)", m.Line)
		}
		// n.Decode does not inherit the decoder's strictness: unknown
		// keys are refused here.
		for i := 0; i+1 < len(m.Content); i += 2 {
			if k := m.Content[i]; !slices.Contains(ruleKeys, k.Value) {
				return one, typeError("line %d: field %s not found in type config.Rule", k.Line, k.Value)
			}
		}
		return one, m.Decode(&one)
	}
	switch n.Kind {
	case yaml.MappingNode:
		one, err := decode(n)
		*r = Rules{one}
		return err
	case yaml.SequenceNode:
		out := Rules{}
		for _, c := range n.Content {
			one, err := decode(c)
			if err != nil {
				return err
			}
			out = append(out, one)
		}
		*r = out
		return nil
	}
	return typeError("line %d: want a rule (a mapping) or a list of rules", n.Line)
}

// MFA is an app's second-factor requirement.
type MFA int

const (
	MFANone MFA = iota
	MFAAny
	MFAPhishingResistant
)

func (m *MFA) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "false":
			*m = MFANone
			return nil
		case "true":
			*m = MFAAny
			return nil
		case "phishing_resistant":
			*m = MFAPhishingResistant
			return nil
		}
	}
	return typeError("line %d: want true, false or phishing_resistant", n.Line)
}

// Defaults.
const (
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultShutdownGrace is connections.shutdown_grace's default.
	DefaultShutdownGrace = 30 * time.Second
	DefaultLifetime      = 12 * time.Hour
)

// Duration is a time.Duration written as "30m", "12h" in YAML.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError("line %d: want a duration such as 30m or 12h", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return typeError("line %d: %q is not a duration such as 30m or 12h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// typeError is an UnmarshalYAML method's error: a *yaml.TypeError, which
// the decoder collects and goes on past (any other error ends decoding at
// the first problem).
func typeError(format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf(format, args...)}}
}

// Error lists every problem found in a configuration file.
type Error struct {
	Problems []string // each "file:line: key: message"
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration; name is used in messages and
// to resolve relative paths.
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name, lines: map[string]int{}, keyAt: map[int]string{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// The parser's word for a tab is "found character that cannot
		// start any token", often lines away: a tab in the indentation
		// is said plainly, at its line.
		if tabs := p.tabs(data); len(tabs) > 0 {
			return nil, &Error{Problems: tabs}
		}
		return nil, &Error{Problems: []string{p.syntax(err, data)}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{Problems: []string{name + ":1: the file is empty"}}
	}
	p.index(root.Content[0], "")
	// Refused before decoding, which would expand them (an alias bomb
	// grows a few lines into gigabytes).
	if len(p.problems) > 0 {
		return nil, &Error{Problems: p.problems}
	}

	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			p.typeProblem(err.Error())
			return nil, &Error{Problems: p.problems}
		}
		// The decoder goes on past a value it cannot read (and our
		// UnmarshalYAML methods return TypeErrors so that it does):
		// every such value is listed, and what did decode is validated
		// too, so one bad key hides nothing else.
		for _, m := range te.Errors {
			p.typeProblem(m)
		}
	}
	c.File = name
	read := len(p.problems)
	p.validate(&c)
	if read > 0 {
		// A value that could not be read is also missing or wrong to
		// validation: only its first problem, the reading, is kept.
		p.problems = append(p.problems[:read], p.unlessAtLine(p.problems[read:], p.problems[:read])...)
	}
	if len(p.problems) > 0 {
		return nil, &Error{Problems: p.problems}
	}
	c.Warnings = p.warnings
	c.lines = p.lines
	return &c, nil
}

// CheckFiles checks what the configuration names on this machine, as
// `sluis serve` needs it before it listens: data_dir is a directory it can
// write (or, when missing, one it can create: its nearest existing parent
// is a writable directory; nothing is created here), the certificate and
// key are readable and a pair, and every other file named (CA files,
// password and secret files) is readable. `sluis serve` and `sluis config
// check` both call it, so a check that passes is a start that does not
// fail on these. Problems name file:line: key like Parse's.
func (c *Config) CheckFiles() error {
	p := &parser{file: c.File, lines: c.lines}
	p.checkDataDir(c.DataDir)
	if pg := c.Store.Postgres; pg != nil && pg.URLFile != "" {
		if _, err := pg.ReadURL(); err != nil {
			p.problem("store.postgres.url_file", "%s", strings.TrimLeft(strings.TrimPrefix(err.Error(), "store.postgres.url_file"), ": "))
		}
	}
	if !c.TLS.SelfSigned {
		if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
			key := "tls.cert_file"
			if _, statErr := os.Stat(c.TLS.CertFile); statErr == nil {
				if _, keyErr := os.ReadFile(c.TLS.KeyFile); keyErr != nil {
					key = "tls.key_file"
				}
			}
			p.problem(key, "%v", err)
		}
	}
	if l := c.LDAP; l != nil {
		if pw, err := os.ReadFile(l.BindPasswordFile); err != nil {
			p.problem("ldap.bind_password_file", "%v", err)
		} else if strings.TrimRight(string(pw), "\r\n") == "" {
			p.problem("ldap.bind_password_file", "%s is empty", l.BindPasswordFile)
		}
		if l.CAFile != "" {
			p.checkPEM("ldap.ca_file", l.CAFile)
		}
	}
	for i, o := range c.OIDC {
		if _, err := os.ReadFile(o.ClientSecretFile); err != nil {
			p.problem(fmt.Sprintf("oidc[%d].client_secret_file", i), "%v", err)
		}
	}
	if sl := c.Audit.Syslog; sl != nil && sl.CAFile != "" {
		p.checkPEM("audit.syslog.ca_file", sl.CAFile)
	}
	p.checkAdminFiles(c)
	if len(p.problems) > 0 {
		return &Error{Problems: p.problems}
	}
	return nil
}

func (p *parser) checkPEM(key, file string) {
	pem, err := os.ReadFile(file)
	if err != nil {
		p.problem(key, "%v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		p.problem(key, "%s holds no PEM certificate", file)
	}
}

// checkDataDir: an existing data_dir must be a directory sluis can write;
// a missing one is created at start, so its nearest existing parent must be
// a directory sluis can write. Writing is tried with a file that is removed
// at once.
func (p *parser) checkDataDir(dir string) {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		p.problem("data_dir", "%s is not a directory", dir)
		return
	case err == nil:
		if err := writable(dir); err != nil {
			p.problem("data_dir", "%s is not writable: %v", dir, err)
		}
		return
	case !missing(err):
		p.problem("data_dir", "%v", err)
		return
	}
	parent := dir
	for {
		next := filepath.Dir(parent)
		if next == parent {
			p.problem("data_dir", "%s cannot be created: no parent exists", dir)
			return
		}
		parent = next
		fi, err := os.Stat(parent)
		if missing(err) {
			continue
		}
		switch {
		case err != nil:
			p.problem("data_dir", "%s cannot be created: %v", dir, err)
		case !fi.IsDir():
			p.problem("data_dir", "%s cannot be created: %s is not a directory", dir, parent)
		default:
			if err := writable(parent); err != nil {
				p.problem("data_dir", "%s cannot be created: %s is not writable: %v", dir, parent, err)
			}
		}
		return
	}
}

// missing reports whether a Stat error means there is nothing at the path
// (or a file where a folder of the path should be).
func missing(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".sluis-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

type parser struct {
	file     string
	lines    map[string]int // key path ("apps[0].host") -> line
	keyAt    map[int]string // line -> key path of the value starting there
	problems []string
	warnings []string
	aliases  int // aliases found, of which maxAliasProblems are reported
}

const maxAliasProblems = 10

// index records the line of every key path, to point at the line of a
// value that fails validation.
//
// YAML aliases (*name) are refused at the line where they are used: a
// value shared by reference changes in every place when it is edited in
// one (an allow rule widened for one app widens another), and an error in
// it would be reported at the anchor, far from the key it concerns.
func (p *parser) index(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.AliasNode:
		at := path
		if at == "" {
			at = "(top level)"
		}
		anchored := ""
		if n.Alias != nil {
			anchored = fmt.Sprintf(" (anchored at line %d)", n.Alias.Line)
		}
		if p.aliases++; p.aliases <= maxAliasProblems {
			p.problems = append(p.problems, fmt.Sprintf("%s:%d: %s: alias *%s%s: aliases are not accepted; write the value out where it is used", p.file, n.Line, at, n.Value, anchored))
		} else if p.aliases == maxAliasProblems+1 {
			p.problems = append(p.problems, fmt.Sprintf("%s:%d: and more aliases after this line", p.file, n.Line))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.AliasNode {
				p.index(k, path)
				continue
			}
			kp := k.Value
			if path != "" {
				kp = path + "." + k.Value
			}
			p.lines[kp] = k.Line
			p.keyAt[k.Line] = kp
			// Deeper keys first, so a line names the innermost key on it.
			p.index(v, kp)
			if _, ok := p.keyAt[v.Line]; !ok {
				p.keyAt[v.Line] = kp
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			p.lines[ip] = c.Line
			p.index(c, ip)
		}
	}
}

var (
	lineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type`)
	// unknownAnchorRE matches the parser's error for an alias of no anchor.
	unknownAnchorRE = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)
)

func (p *parser) syntax(err error, data []byte) string {
	msg := err.Error()
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		// The parser does not say where: the first use of the name does.
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			return fmt.Sprintf("%s:%d: alias *%s: no anchor &%s before it", p.file, bytes.Count(data[:i], []byte("\n"))+1, m[1], m[1])
		}
	}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserErrors[m[2]] {
			line++
		}
		return fmt.Sprintf("%s:%d: %s", p.file, line, m[2])
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if parserErrors[msg] {
		return fmt.Sprintf("%s:1: %s", p.file, msg)
	}
	return fmt.Sprintf("%s: %s", p.file, msg)
}

// parserErrors are the messages of yaml.v3's parser (not its scanner),
// whose line it gives counted from 0 (and leaves out for the first line):
// the line of the block or flow collection the problem is in, which is
// where to look (an unclosed '[', a key indented one space too few).
var parserErrors = map[string]bool{
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
}

// maxTabProblems bounds the tab lines reported.
const maxTabProblems = 10

// tabs returns a problem for each line (up to maxTabProblems) whose
// indentation holds a tab.
func (p *parser) tabs(data []byte) []string {
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		rest := strings.TrimLeft(line, " \t")
		if rest == "" || !strings.Contains(line[:len(line)-len(rest)], "\t") {
			continue
		}
		if len(out) == maxTabProblems {
			return append(out, fmt.Sprintf("%s:%d: and more lines indented with tabs", p.file, i+1))
		}
		out = append(out, fmt.Sprintf("%s:%d: tabs are not allowed for indentation", p.file, i+1))
	}
	return out
}

// unlessAtLine returns the problems of ps that are not at the line of
// one of at (both "file:line: ...").
func (p *parser) unlessAtLine(ps, at []string) []string {
	lineOf := func(s string) string {
		rest := strings.TrimPrefix(s, p.file+":")
		n, _, _ := strings.Cut(rest, ":")
		return n
	}
	lines := map[string]bool{}
	for _, a := range at {
		lines[lineOf(a)] = true
	}
	var out []string
	for _, q := range ps {
		if !lines[lineOf(q)] {
			out = append(out, q)
		}
	}
	return out
}

func (p *parser) typeProblem(m string) {
	lm := lineRE.FindStringSubmatch(m)
	if lm == nil {
		p.problems = append(p.problems, fmt.Sprintf("%s: %s", p.file, m))
		return
	}
	line, msg := lm[1], lm[2]
	if u := unknownRE.FindStringSubmatch(msg); u != nil {
		key := u[1]
		n, _ := strconv.Atoi(line)
		if kp, ok := p.keyAt[n]; ok {
			key = kp
		}
		p.problems = append(p.problems, fmt.Sprintf("%s:%s: %s: unknown key", p.file, line, key))
		return
	}
	n, _ := strconv.Atoi(line)
	key := p.keyAt[n]
	msg = strings.Replace(msg, "cannot unmarshal ", "cannot read ", 1)
	if key != "" {
		p.problems = append(p.problems, fmt.Sprintf("%s:%s: %s: %s", p.file, line, key, msg))
	} else {
		p.problems = append(p.problems, fmt.Sprintf("%s:%s: %s", p.file, line, msg))
	}
}

// problem records a problem at the line of key path kp (or of its closest
// parent that is in the file).
func (p *parser) problem(kp, format string, args ...any) {
	line := 1
	for q := kp; q != ""; {
		if l, ok := p.lines[q]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			break
		}
		q = q[:i]
	}
	p.problems = append(p.problems, fmt.Sprintf("%s:%d: %s: %s", p.file, line, kp, fmt.Sprintf(format, args...)))
}

var (
	hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
)

// ValidHost reports whether h is a lower-case DNS host name sluis accepts.
func ValidHost(h string) bool { return len(h) <= 253 && hostRE.MatchString(h) }

func (p *parser) validate(c *Config) {
	base := filepath.Dir(p.file)
	tz := c.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	if z, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		p.problem("time_zone", "%q is not an IANA time zone such as Europe/Amsterdam", c.TimeZone)
	} else {
		c.zone = z
	}
	if c.Listen == "" {
		p.problem("listen", "required (for example 127.0.0.1:8443)")
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		p.problem("listen", "%q is not host:port", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.problem("listen", "%q has no valid port", c.Listen)
	}
	if c.Portal == "" {
		p.problem("portal", "required: the host name of the login portal")
	} else if !ValidHost(c.Portal) {
		p.problem("portal", "%q is not a lower-case host name", c.Portal)
	}
	p.checkPublicFace(c)
	p.checkFace(c, base)
	p.checkAdmin(c)
	if c.DataDir == "" {
		p.problem("data_dir", "required: where the database and keys live")
	} else if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(base, c.DataDir)
	}
	if pg := c.Store.Postgres; pg != nil {
		switch {
		case (pg.URL == "") == (pg.URLFile == ""):
			p.problem("store.postgres", "set either url_file (the URL in a file, kept out of this one) or url")
		case pg.URLFile != "":
			if !filepath.IsAbs(pg.URLFile) {
				pg.URLFile = filepath.Join(base, pg.URLFile)
			}
		default:
			key := "store"
			if _, ok := p.lines["store.postgres.url"]; ok {
				key = "store.postgres.url"
			}
			if err := checkPostgresURL(pg.URL); err != nil {
				p.problem(key, "%v", err)
			} else if u, _ := url.Parse(pg.URL); u != nil {
				if _, has := u.User.Password(); has || u.Query().Has("password") {
					p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s: the URL holds a password, so this file is a secret too; store.postgres.url_file keeps it out", p.file, p.lines[key], key))
				}
			}
		}
	}
	switch {
	case c.TLS.SelfSigned && (c.TLS.CertFile != "" || c.TLS.KeyFile != ""):
		p.problem("tls", "set either self_signed or cert_file and key_file, not both")
	case !c.TLS.SelfSigned && (c.TLS.CertFile == "" || c.TLS.KeyFile == ""):
		p.problem("tls", "set self_signed: true, or both cert_file and key_file")
	}
	if c.TLS.CertFile != "" && !filepath.IsAbs(c.TLS.CertFile) {
		c.TLS.CertFile = filepath.Join(base, c.TLS.CertFile)
	}
	if c.TLS.KeyFile != "" && !filepath.IsAbs(c.TLS.KeyFile) {
		c.TLS.KeyFile = filepath.Join(base, c.TLS.KeyFile)
	}
	if c.Session.IdleTimeout == 0 {
		c.Session.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if c.Session.Lifetime == 0 {
		c.Session.Lifetime = Duration(DefaultLifetime)
	}
	if c.Session.IdleTimeout < Duration(time.Minute) {
		p.problem("session.idle_timeout", "at least 1m")
	}
	if c.Session.IdleTimeout > c.Session.Lifetime {
		p.problem("session.idle_timeout", "longer than session.lifetime (%s)", c.Session.Lifetime.D())
	}
	if c.Session.Lifetime > Duration(30*24*time.Hour) {
		p.problem("session.lifetime", "at most 720h")
	}

	if c.Probes.BlockAfter == 0 {
		c.Probes.BlockAfter = 10
	}
	if c.Tunnels.IdleTimeout == 0 {
		c.Tunnels.IdleTimeout = Duration(15 * time.Minute)
	}
	if c.Tunnels.IdleTimeout < Duration(time.Second) || c.Tunnels.IdleTimeout > Duration(24*time.Hour) {
		p.problem("tunnels.idle_timeout", "between 1s and 24h")
	}
	if c.Tunnels.MaxPerUser == 0 {
		c.Tunnels.MaxPerUser = 32
	}
	if c.Tunnels.MaxPerUser < 1 || c.Tunnels.MaxPerUser > 10000 {
		p.problem("tunnels.max_per_user", "between 1 and 10000")
	}
	if c.Connections.MaxPerSource == 0 {
		c.Connections.MaxPerSource = 256
	}
	if c.Connections.HeaderTimeout == 0 {
		c.Connections.HeaderTimeout = Duration(10 * time.Second)
	}
	if c.Connections.IdleTimeout == 0 {
		c.Connections.IdleTimeout = Duration(time.Minute)
	}
	if c.Connections.ShutdownGrace == 0 {
		c.Connections.ShutdownGrace = Duration(DefaultShutdownGrace)
	}
	switch {
	case c.Connections.Max < 0 || c.Connections.Max > 1000000:
		p.problem("connections.max", "between 1 and 1000000 (or leave it out to derive it from the limit on open files)")
	case c.Connections.MaxPerSource < 1 || c.Connections.MaxPerSource > 1000000:
		p.problem("connections.max_per_source", "between 1 and 1000000")
	case c.Connections.Max > 0 && c.Connections.MaxPerSource > c.Connections.Max:
		p.problem("connections.max_per_source", "more than connections.max (%d)", c.Connections.Max)
	case c.Connections.HeaderTimeout < Duration(time.Second) || c.Connections.HeaderTimeout > Duration(time.Minute):
		p.problem("connections.header_timeout", "between 1s and 1m")
	case c.Connections.IdleTimeout < Duration(time.Second) || c.Connections.IdleTimeout > Duration(time.Hour):
		p.problem("connections.idle_timeout", "between 1s and 1h")
	case c.Connections.DrainDelay > Duration(5*time.Minute):
		p.problem("connections.drain_delay", "between 0s and 5m")
	case c.Connections.ShutdownGrace < Duration(100*time.Millisecond) || c.Connections.ShutdownGrace > Duration(time.Hour):
		p.problem("connections.shutdown_grace", "between 100ms and 1h")
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		p.problem("memory_limit", "at least 64MiB (or leave it out for one that follows the live heap)")
	}
	if c.Probes.BlockWindow == 0 {
		c.Probes.BlockWindow = Duration(time.Minute)
	}
	if c.Probes.BlockFor == 0 {
		c.Probes.BlockFor = Duration(15 * time.Minute)
	}
	if c.Probes.EventEvery == 0 {
		c.Probes.EventEvery = Duration(time.Minute)
	}
	switch {
	case c.Probes.BlockAfter < 1 || c.Probes.BlockAfter > 10000:
		p.problem("probes.block_after", "between 1 and 10000")
	case c.Probes.BlockWindow < Duration(time.Second) || c.Probes.BlockWindow > Duration(24*time.Hour):
		p.problem("probes.block_window", "between 1s and 24h")
	case c.Probes.BlockFor < Duration(time.Second) || c.Probes.BlockFor > Duration(30*24*time.Hour):
		p.problem("probes.block_for", "between 1s and 720h")
	case c.Probes.EventEvery < Duration(time.Second) || c.Probes.EventEvery > Duration(time.Hour):
		p.problem("probes.event_every", "between 1s and 1h")
	}

	if c.Strict.ReauthAfter == 0 {
		c.Strict.ReauthAfter = Duration(time.Hour)
	}
	if c.Strict.ReauthAfter < Duration(time.Minute) {
		p.problem("strict.reauth_after", "at least 1m")
	}
	for j, u := range c.Emergency.BreakGlass.Users {
		if n, err := sluis.CanonicalName(u); err != nil {
			p.problem(fmt.Sprintf("emergency.break_glass.users[%d]", j), "%q is not a valid user name: %v", u, err)
		} else {
			c.Emergency.BreakGlass.Users[j] = n
		}
	}
	for j, g := range c.Emergency.BreakGlass.Groups {
		if !sluis.ValidName(g) {
			p.problem(fmt.Sprintf("emergency.break_glass.groups[%d]", j), "%q is not a valid group name", g)
		}
	}
	if c.Audit.FoldRefusals < 0 || c.Audit.FoldRefusals > Duration(time.Hour) {
		p.problem("audit.fold_refusals", "between 0 (1m) and 1h")
	}
	if c.Audit.RefusalsPerMinute < 0 || c.Audit.RefusalsPerMinute > 100000 {
		p.problem("audit.refusals_per_minute", "between 0 (600) and 100000")
	}
	if sl := c.Audit.Syslog; sl != nil {
		if _, port, err := net.SplitHostPort(sl.Address); err != nil || port == "" {
			p.problem("audit.syslog.address", "%q is not host:port", sl.Address)
		} else if !validPort(port) {
			p.problem("audit.syslog.address", "%q: the port is not between 1 and 65535", sl.Address)
		}
		if sl.CAFile != "" && !sl.TLS {
			p.problem("audit.syslog.ca_file", "set tls: true to use a CA file")
		}
		if sl.CAFile != "" && !filepath.IsAbs(sl.CAFile) {
			sl.CAFile = filepath.Join(base, sl.CAFile)
		}
		if sl.Queue == 0 {
			sl.Queue = 10000
		}
		if sl.Queue < 1 || sl.Queue > 1000000 {
			p.problem("audit.syslog.queue", "between 1 and 1000000")
		}
	}

	if l := c.LDAP; l != nil {
		if len(l.URLs) == 0 {
			p.problem("ldap.urls", "required: ldaps://host:636, or ldap://host:389 with start_tls: true")
		}
		for j, raw := range l.URLs {
			u, err := url.Parse(raw)
			switch {
			case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps"):
				p.problem(fmt.Sprintf("ldap.urls[%d]", j), "%q is not an ldap:// or ldaps:// URL", raw)
			case !urlPortOK(u):
				p.problem(fmt.Sprintf("ldap.urls[%d]", j), "%q: the port is not between 1 and 65535", raw)
			case u.Scheme == "ldap" && !l.StartTLS:
				p.problem(fmt.Sprintf("ldap.urls[%d]", j), "%q is plain LDAP: passwords would cross the network in the clear; use ldaps:// or start_tls: true", raw)
			}
		}
		if l.BindDN == "" {
			p.problem("ldap.bind_dn", "required: the service account that searches users")
		}
		if l.BindPasswordFile == "" {
			p.problem("ldap.bind_password_file", "required: a file holding the service account's password")
		} else if !filepath.IsAbs(l.BindPasswordFile) {
			l.BindPasswordFile = filepath.Join(base, l.BindPasswordFile)
		}
		if l.CAFile != "" && !filepath.IsAbs(l.CAFile) {
			l.CAFile = filepath.Join(base, l.CAFile)
		}
		if l.UserBase == "" {
			p.problem("ldap.user_base", "required")
		}
		if !strings.Contains(l.UserFilter, "{user}") {
			p.problem("ldap.user_filter", "required, with {user} where the user name goes, for example (&(objectClass=person)(uid={user}))")
		}
		if len(l.Groups) > 0 && l.GroupBase == "" {
			p.problem("ldap.group_base", "required when groups are mapped")
		}
		switch l.NestedGroups {
		case "", "recursive", "in_chain", "none":
		default:
			p.problem("ldap.nested_groups", "%q: want recursive, in_chain or none", l.NestedGroups)
		}
		for dn, g := range l.Groups {
			if !sluis.ValidName(g) {
				p.problem("ldap.groups", "%q (for %s) is not a valid group name", g, dn)
			}
		}
		p.checkMappedGroups("ldap.groups", l.Groups)
		if l.Timeout == 0 {
			l.Timeout = Duration(5 * time.Second)
		}
		if l.Timeout < Duration(100*time.Millisecond) || l.Timeout > Duration(time.Minute) {
			p.problem("ldap.timeout", "between 100ms and 1m")
		}
		if l.PoolSize == 0 {
			l.PoolSize = 4
		}
		if l.RecheckEvery == 0 {
			l.RecheckEvery = Duration(5 * time.Minute)
		}
		if l.RecheckEvery < Duration(time.Second) || l.RecheckEvery > Duration(24*time.Hour) {
			p.problem("ldap.recheck_every", "between 1s and 24h")
		}
		if l.PoolSize < 1 || l.PoolSize > 64 {
			p.problem("ldap.pool_size", "between 1 and 64")
		}
	}

	seen := map[string]bool{}
	for i := range c.OIDC {
		o := &c.OIDC[i]
		at := fmt.Sprintf("oidc[%d]", i)
		switch {
		case !nameRE.MatchString(o.Name):
			p.problem(at+".name", "%q: required, lower-case letters, digits, '-', '_' and '.'", o.Name)
		case seen[o.Name]:
			p.problem(at+".name", "%q is used by another provider", o.Name)
		}
		seen[o.Name] = true
		if o.Title == "" {
			o.Title = o.Name
		}
		if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"))) {
			p.problem(at+".issuer", "%q: want the provider's https URL", o.Issuer)
		} else if !urlPortOK(u) {
			p.problem(at+".issuer", "%q: the port is not between 1 and 65535", o.Issuer)
		}
		if o.ClientID == "" {
			p.problem(at+".client_id", "required")
		}
		if o.ClientSecretFile == "" {
			p.problem(at+".client_secret_file", "required: a file holding the client secret")
		} else if !filepath.IsAbs(o.ClientSecretFile) {
			o.ClientSecretFile = filepath.Join(base, o.ClientSecretFile)
		}
		if len(o.Scopes) == 0 {
			o.Scopes = []string{"openid", "profile", "email"}
		}
		for v, g := range o.Groups {
			if !sluis.ValidName(g) {
				p.problem(at+".groups", "%q (for %s) is not a valid group name", g, v)
			}
		}
		p.checkMappedGroups(at+".groups", o.Groups)
	}

	for j, name := range c.Strict.PhishingResistant {
		if _, ok := c.AppByName(name); !ok {
			p.problem(fmt.Sprintf("strict.phishing_resistant[%d]", j), "no app is named %q", name)
		}
	}

	names, hosts := map[string]bool{}, map[string]bool{c.Portal: true}
	for i := range c.Apps {
		a := &c.Apps[i]
		at := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Name == "":
			p.problem(at+".name", "required")
		case !nameRE.MatchString(a.Name):
			p.problem(at+".name", "%q: use lower-case letters, digits, '-', '_' and '.'", a.Name)
		case names[a.Name]:
			p.problem(at+".name", "%q is used by another app", a.Name)
		}
		names[a.Name] = true
		if a.TCP != "" {
			if a.Host != "" || a.Upstream != "" {
				p.problem(at+".tcp", "a TCP app has no host and no upstream")
			}
			if h, port, err := net.SplitHostPort(a.TCP); err != nil || h == "" || !validPort(port) || net.ParseIP(h) == nil && !ValidHost(h) {
				p.problem(at+".tcp", "%q is not host:port (for example 10.1.2.3:3389)", a.TCP)
			}
		} else {
			switch {
			case a.Host == "":
				p.problem(at+".host", "required (or tcp: HOST:PORT for a TCP app)")
			case !ValidHost(a.Host):
				p.problem(at+".host", "%q is not a lower-case host name", a.Host)
			case hosts[a.Host]:
				p.problem(at+".host", "%q is the portal's or another app's host", a.Host)
			}
			hosts[a.Host] = true
			if u, err := url.Parse(a.Upstream); a.Upstream == "" {
				p.problem(at+".upstream", "required (for example http://127.0.0.1:9001)")
			} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
				p.problem(at+".upstream", "%q: want http:// or https:// with a host and no user, query or fragment", a.Upstream)
			} else if !urlPortOK(u) {
				p.problem(at+".upstream", "%q: the port is not between 1 and 65535", a.Upstream)
			}
		}
		p.checkHeaders(at, a)
		for _, o := range []struct {
			key, val, def, alt string
		}{
			{"encoded_slashes", a.EncodedSlashes, Refuse, Pass},
			{"path_params", a.PathParams, Refuse, Pass},
			{"cors_preflight", a.CORSPreflight, Refuse, Pass},
			{"cache", a.Cache, Private, NoStore},
			{"cross_site_post", a.CrossSitePost, Refuse, "allow"},
		} {
			switch {
			case o.val == "" || o.val == o.def || o.val == o.alt:
				if o.val != "" && a.TCP != "" {
					p.problem(at+"."+o.key, "a TCP app has no paths, preflights or responses to cache")
				}
			default:
				p.problem(at+"."+o.key, "%q: want %s or %s", o.val, o.def, o.alt)
			}
		}
		if a.Timeouts.ResponseHeader > Duration(time.Hour) {
			p.problem(at+".timeouts.response_header", "at most 1h")
		}
		if a.Timeouts.BodyIdle > Duration(time.Hour) {
			p.problem(at+".timeouts.body_idle", "at most 1h")
		}
		if a.Allow == nil {
			p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s: no allow rule, so nobody can open this app", p.file, p.lines[at], at))
			continue
		}
		p.checkRules(at, a)
	}
}

// UnknownGroups returns a warning, with file, line and key, for each
// group an app's rule or break-glass names that nobody can be in: no user
// in users has it, and neither the directory's nor an identity provider's
// group mapping gives it. Such a rule is valid (the group may be about to
// be created) but probably a typing error.
func (c *Config) UnknownGroups(users []sluis.User) []string {
	known := map[string]bool{}
	for _, u := range users {
		for _, g := range u.Groups {
			known[g] = true
		}
	}
	if c.LDAP != nil {
		for _, g := range c.LDAP.Groups {
			known[g] = true
		}
	}
	for _, o := range c.OIDC {
		for _, g := range o.Groups {
			known[g] = true
		}
	}
	var out []string
	warn := func(kp, g string) {
		if !known[g] {
			line := c.lines[kp]
			out = append(out, fmt.Sprintf("%s:%d: %s: no user is in the group %q, and no directory or identity provider mapping gives it", c.File, line, kp, g))
			known[g] = true // once per group
		}
	}
	for i, a := range c.Apps {
		_, listed := c.lines[fmt.Sprintf("apps[%d].allow[0]", i)]
		for j, r := range a.Allow {
			rp := fmt.Sprintf("apps[%d].allow", i)
			if listed {
				rp = fmt.Sprintf("%s[%d]", rp, j)
			}
			for k, g := range r.Groups {
				warn(fmt.Sprintf("%s.groups[%d]", rp, k), g)
			}
		}
	}
	for k, g := range c.Emergency.BreakGlass.Groups {
		warn(fmt.Sprintf("emergency.break_glass.groups[%d]", k), g)
	}
	c.adminUnknownGroups(warn)
	return out
}

// maxRules bounds an app's rules; each request tries them in order.
const maxRules = 64

// checkPublicFace checks public_url, trusted_proxies, forwarded_header and
// proxy_protocol.
func (p *parser) checkPublicFace(c *Config) {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "":
			p.problem("public_url", "%q: want https://PORTAL or https://PORTAL:PORT", c.PublicURL)
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			p.problem("public_url", "%q: only scheme, host and port; no user, path, query or fragment", c.PublicURL)
		case strings.ToLower(u.Hostname()) != c.Portal:
			// One name for the portal: certificates, cookies and the
			// host table know it by that name.
			p.problem("public_url", "%q: the host is not the portal's (%s)", c.PublicURL, c.Portal)
		default:
			c.publicPort = 443
			if ps := u.Port(); ps != "" {
				n, err := strconv.Atoi(ps)
				if err != nil || n < 1 || n > 65535 {
					p.problem("public_url", "%q has no valid port", c.PublicURL)
				}
				c.publicPort = n
			} else if strings.HasSuffix(u.Host, ":") {
				p.problem("public_url", "%q has no valid port", c.PublicURL)
			}
		}
	}
	c.trusted = p.networks("trusted_proxies", c.TrustedProxies, "trusts every address: anyone could then name any client address")
	switch strings.ToLower(c.ForwardedHeader) {
	case "", "x-forwarded-for":
		c.ForwardedHeader = "X-Forwarded-For"
	case "forwarded":
		c.ForwardedHeader = "Forwarded"
	default:
		p.problem("forwarded_header", "%q: want X-Forwarded-For or Forwarded", c.ForwardedHeader)
	}
	if c.ProxyProtocol && len(c.TrustedProxies) == 0 {
		p.problem("proxy_protocol", "needs trusted_proxies: the addresses whose PROXY headers are believed")
	}
	if len(c.TrustedProxies) > 0 && c.PublicURL == "" {
		// Behind a balancer the listener's port is seldom the one users
		// reach; every redirect would then send them past it.
		p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: trusted_proxies: no public_url, so every URL the gateway builds carries the listener's port (%s)", p.file, p.lines["trusted_proxies"], c.Listen))
	}
}

// checkRules checks an app's allow rules and reads their networks and
// hours.
func (p *parser) checkRules(at string, a *App) {
	if len(a.Allow) > maxRules {
		p.problem(at+".allow", "%d rules; at most %d", len(a.Allow), maxRules)
		return
	}
	if len(a.Allow) == 0 {
		p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s.allow: no rules, so nobody can open this app", p.file, p.lines[at+".allow"], at))
	}
	// A single mapping is indexed without a list index.
	_, listed := p.lines[at+".allow[0]"]
	catchAll := -1
	for i := range a.Allow {
		r := &a.Allow[i]
		rp := at + ".allow"
		if listed {
			rp = fmt.Sprintf("%s[%d]", rp, i)
		}
		r.line = p.lines[rp]
		if r.line == 0 {
			r.line = p.lines[at+".allow"]
		}
		if catchAll >= 0 {
			p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s: never chosen: rule %d before it matches every request", p.file, r.line, rp, catchAll+1))
		}
		if len(r.Paths) == 0 && len(r.Methods) == 0 && catchAll < 0 {
			catchAll = i
		}
		if len(r.Users) == 0 && len(r.Groups) == 0 {
			p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: %s: lists no users and no groups, so it allows nobody", p.file, r.line, rp))
		}
		if a.TCP != "" && (len(r.Paths) > 0 || len(r.Methods) > 0) {
			p.problem(rp, "a TCP app's tunnels have no paths or methods")
		}
		for j, u := range r.Users {
			if n, err := sluis.CanonicalName(u); err != nil {
				p.problem(fmt.Sprintf("%s.users[%d]", rp, j), "%q is not a valid user name: %v", u, err)
			} else {
				r.Users[j] = n
			}
		}
		for j, g := range r.Groups {
			if !sluis.ValidName(g) {
				p.problem(fmt.Sprintf("%s.groups[%d]", rp, j), "%q is not a valid group name", g)
			}
		}
		for j, pat := range r.Paths {
			if err := policy.ValidPattern(pat); err != nil {
				p.problem(fmt.Sprintf("%s.paths[%d]", rp, j), "%v", err)
			}
		}
		for j, m := range r.Methods {
			if !methodRE.MatchString(m) {
				p.problem(fmt.Sprintf("%s.methods[%d]", rp, j), "%q is not an HTTP method in upper case (GET, POST, PROPFIND, ...)", m)
			}
		}
		r.networks = nil
		for j, n := range r.Networks {
			pf, err := netip.ParsePrefix(n)
			if err != nil {
				p.problem(fmt.Sprintf("%s.networks[%d]", rp, j), "%q is not a CIDR such as 10.1.0.0/16 or 2001:db8::/48", n)
				continue
			}
			if pf != pf.Masked() {
				p.problem(fmt.Sprintf("%s.networks[%d]", rp, j), "%q has bits set past the prefix length; did you mean %s?", n, pf.Masked())
				continue
			}
			r.networks = append(r.networks, pf)
		}
		r.hours = nil
		for j, h := range r.Hours {
			span, err := policy.ParseHours(h)
			if err != nil {
				p.problem(fmt.Sprintf("%s.hours[%d]", rp, j), "%v", err)
				continue
			}
			r.hours = append(r.hours, span)
		}
	}
}

// methodRE is an HTTP method as rules name it: an upper-case token.
var methodRE = regexp.MustCompile(`^[A-Z][A-Z0-9-]{0,31}$`)

// headerNameRE is a header name an app's configuration may use: a token
// of letters, digits and '-' (names with '_' are always dropped).
var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$`)

var hopByHop = []string{"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade"}

// checkHeaders checks an app's request_headers and identity_headers.
func (p *parser) checkHeaders(at string, a *App) {
	if a.TCP != "" && (a.RequestHeaders != nil || len(a.IdentityHeaders) > 0) {
		p.problem(at+".tcp", "a TCP app has no request_headers and no identity_headers")
		return
	}
	ident := map[string]bool{} // lower case
	for _, name := range slices.Sorted(maps.Keys(a.IdentityHeaders)) {
		kp := at + ".identity_headers." + name
		switch v := a.IdentityHeaders[name]; {
		case !headerNameRE.MatchString(name):
			p.problem(kp, "%q is not a header name (letters, digits and '-')", name)
		case frontdoor.Pinned(name):
			p.problem(kp, "%s is set by the gateway for every app", name)
		case !frontdoor.Spoofable(name) && frontdoor.SecurityHeader(name) || slices.Contains(hopByHop, strings.ToLower(name)):
			p.problem(kp, "%s carries the request's framing or credentials, not an identity", name)
		case ident[strings.ToLower(name)]:
			p.problem(kp, "%s is listed twice (names are compared without regard to case)", name)
		case v != sluis.IdentityUser && v != sluis.IdentityGroups && v != sluis.IdentityEmail && v != sluis.IdentityName:
			p.problem(kp, "%q: want user, groups, email or name", v)
		}
		ident[strings.ToLower(name)] = true
	}
	if a.RequestHeaders == nil {
		return
	}
	removed := map[string]bool{}
	for j, name := range a.RequestHeaders.Remove {
		kp := fmt.Sprintf("%s.request_headers.remove[%d]", at, j)
		switch {
		case !headerNameRE.MatchString(name):
			p.problem(kp, "%q is not a header name (letters, digits and '-'; names with '_' are always dropped)", name)
		case frontdoor.Pinned(name) || ident[strings.ToLower(name)]:
			p.problem(kp, "%s is set by the gateway", name)
		}
		removed[strings.ToLower(name)] = true
	}
	for j, name := range a.RequestHeaders.Keep {
		kp := fmt.Sprintf("%s.request_headers.keep[%d]", at, j)
		switch {
		case !headerNameRE.MatchString(name):
			p.problem(kp, "%q is not a header name (letters, digits and '-'; names with '_' are always dropped)", name)
		case frontdoor.Pinned(name):
			p.problem(kp, "%s is set by the gateway; no app may receive a client's copy", name)
		case ident[strings.ToLower(name)]:
			p.problem(kp, "%s is one of this app's identity_headers; no app may receive a client's copy", name)
		case removed[strings.ToLower(name)]:
			p.problem(kp, "%s is also in remove", name)
		case !frontdoor.Spoofable(name):
			p.problem(kp, "%s is not dropped by default; there is nothing to keep", name)
		}
	}
}

// checkMappedGroups: a directory's or provider's user has at most the
// sluis groups a mapping names, so these, all together, must be within a
// user's limits (sluis.NormalGroups); then no directory or provider can
// give a user more.
func (p *parser) checkMappedGroups(key string, m map[string]string) {
	var all []string
	for _, g := range m {
		if sluis.ValidName(g) {
			all = append(all, g)
		}
	}
	slices.Sort(all)
	if _, err := sluis.NormalGroups(all); err != nil {
		p.problem(key, "maps to too many groups: %v", err)
	}
}

// AppHosts returns the host of every web app, in configuration order.
func (c *Config) AppHosts() []string {
	var out []string
	for _, a := range c.Apps {
		if a.Host != "" {
			out = append(out, a.Host)
		}
	}
	return out
}

// urlPortOK reports whether u has no port or one between 1 and 65535
// (url.Parse takes any digits).
func urlPortOK(u *url.URL) bool {
	return u.Port() == "" && !strings.HasSuffix(u.Host, ":") || validPort(u.Port())
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// App returns the app with the given host.
func (c *Config) App(host string) (App, bool) {
	i := slices.IndexFunc(c.Apps, func(a App) bool { return a.Host == host })
	if i < 0 {
		return App{}, false
	}
	return c.Apps[i], true
}

// AppByName returns the app with the given name.
func (c *Config) AppByName(name string) (App, bool) {
	i := slices.IndexFunc(c.Apps, func(a App) bool { return a.Name == name })
	if i < 0 {
		return App{}, false
	}
	return c.Apps[i], true
}

// BreakGlass returns the staff who may still pass at lockdown, as the
// access decision takes them (policy.BreakGlass.Allows decides).
func (c *Config) BreakGlass() policy.BreakGlass {
	return policy.BreakGlass{Users: c.Emergency.BreakGlass.Users, Groups: c.Emergency.BreakGlass.Groups}
}

// networks parses list (CIDRs, or single addresses as prefixes of their
// own length) under key: one problem per entry that is not one, has bits
// past its prefix, or covers every address (everyone says why that is
// refused). IPv4-mapped IPv6 prefixes become IPv4 ones.
func (p *parser) networks(key string, list []string, everyone string) []netip.Prefix {
	var out []netip.Prefix
	for j, n := range list {
		k := fmt.Sprintf("%s[%d]", key, j)
		pf, err := netip.ParsePrefix(n)
		if err != nil {
			// One address is a prefix of its own length.
			if a, aerr := netip.ParseAddr(n); aerr == nil && a.Zone() == "" {
				pf, err = a.Unmap().Prefix(a.Unmap().BitLen())
			}
		}
		switch {
		case err != nil:
			p.problem(k, "%q is not an address or a CIDR such as 10.0.0.0/24", n)
			continue
		case pf != pf.Masked():
			p.problem(k, "%q has bits set past the prefix length; did you mean %s?", n, pf.Masked())
			continue
		case pf.Bits() == 0:
			p.problem(k, "%q %s", n, everyone)
			continue
		}
		if pf.Addr().Is4In6() && pf.Bits() >= 96 {
			pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
		}
		out = append(out, pf)
	}
	return out
}
