package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sluis-gateway/sluis"
)

// Admin configures the operators' side of the gateway: a listener of its
// own (normally on an internal address) with the web console, the JSON
// API under /api/v1/ and /metrics. Nothing of it is ever routed on the
// public listener. A configuration without an admin block has no admin
// listener at all.
type Admin struct {
	// Listen is the address the admin listener binds, host:port, such as
	// 127.0.0.1:9443 or an internal interface's address. Required; never
	// the public listener's address.
	Listen string `yaml:"listen"`
	// Host is the name operators reach the console by. It must be the
	// portal's host name or a name under it (admin.PORTAL): passkeys are
	// bound to the portal's name (the WebAuthn RP ID), and a browser uses
	// a passkey only on pages whose host is that name or ends in it.
	// Requests for any other host are answered 421 (DNS rebinding).
	// Required.
	Host string `yaml:"host"`
	// CertFile and KeyFile are the admin listener's certificate and key
	// (PEM), which must cover Host. Both or neither; neither means the
	// gateway's own (with tls.self_signed, a certificate of the same local
	// CA for Host alone, so the public certificate never names the admin
	// host).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Roles give roles to groups: viewer (sees everything), helpdesk (adds
	// the user and session actions) and operator (adds emergency levels,
	// blocks and app switches). A user with groups in several roles has
	// the highest. A user in none cannot log in to the console.
	Roles map[string][]string `yaml:"roles"`
	// AllowTOTP lets operators pass the console's second factor with a
	// one-time code when they have no passkey. False (the default): a
	// passkey only, which a phishing site cannot relay. Recovery codes are
	// never accepted on the console.
	AllowTOTP bool `yaml:"allow_totp"`
	// Metrics sets who may read /metrics on the admin listener.
	Metrics AdminMetrics `yaml:"metrics"`

	networks []netip.Prefix
}

// AdminMetrics sets who may read /metrics: a client with the bearer token
// in TokenFile, or one whose address is in Networks. Neither set: nobody
// (/metrics answers 404).
type AdminMetrics struct {
	// TokenFile holds the bearer token (one line, at least 32 bytes, such
	// as `openssl rand -hex 32` makes); relative to the configuration
	// file's folder, read at start.
	TokenFile string `yaml:"token_file"`
	// Networks are the CIDRs (or single addresses) of scrapers that need no
	// token, such as the Prometheus server's address.
	Networks []string `yaml:"networks"`
}

// RoleNames are the role names admin.roles accepts, lowest first.
var RoleNames = []string{"viewer", "helpdesk", "operator"}

// MinMetricsToken is the shortest bearer token admin.metrics.token_file may
// hold: a token nobody types can be long enough that guessing it is
// hopeless.
const MinMetricsToken = 32

// MetricsNetworks returns admin.metrics.networks as prefixes.
func (a *Admin) MetricsNetworks() []netip.Prefix { return a.networks }

// ReadMetricsToken returns the bearer token of admin.metrics.token_file, or
// "" when none is configured.
func (a *Admin) ReadMetricsToken() (string, error) {
	if a.Metrics.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(a.Metrics.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.metrics.token_file: %w", err)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	switch {
	case strings.ContainsAny(tok, "\r\n \t"):
		return "", fmt.Errorf("admin.metrics.token_file %s: one line without spaces", a.Metrics.TokenFile)
	case len(tok) < MinMetricsToken:
		return "", fmt.Errorf("admin.metrics.token_file %s: the token has %d bytes; at least %d", a.Metrics.TokenFile, len(tok), MinMetricsToken)
	}
	return tok, nil
}

// RoleOf returns the name of the highest role any of groups has in
// admin.roles, or "" for none.
func (a *Admin) RoleOf(groups []string) string {
	best := -1
	for i, name := range RoleNames {
		for _, g := range a.Roles[name] {
			if slices.Contains(groups, g) {
				best = max(best, i)
			}
		}
	}
	if best < 0 {
		return ""
	}
	return RoleNames[best]
}

// checkAdmin checks the admin block.
func (p *parser) checkAdmin(c *Config) {
	a := c.Admin
	if a == nil {
		if _, written := p.lines["admin"]; written {
			p.problem("admin", "empty: give at least listen and host, or leave the block out (no admin listener)")
		}
		return
	}
	base := filepath.Dir(p.file)
	switch host, port, err := net.SplitHostPort(a.Listen); {
	case a.Listen == "":
		p.problem("admin.listen", "required (for example 127.0.0.1:9443): the admin listener's address, normally an internal one")
	case err != nil:
		p.problem("admin.listen", "%q is not host:port", a.Listen)
	case !validListenPort(port):
		p.problem("admin.listen", "%q has no valid port (0 to 65535)", a.Listen)
	case sameListener(a.Listen, c.Listen):
		p.problem("admin.listen", "%q is the public listener's address (listen: %s): the console must never be reachable where users come in", a.Listen, c.Listen)
	default:
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: admin.listen: %q listens on every address; an internal address (or 127.0.0.1) keeps the console away from where users come in", p.file, p.lines["admin.listen"], a.Listen))
		}
	}
	switch {
	case a.Host == "":
		p.problem("admin.host", "required: the name operators reach the console by, such as admin.%s", c.Portal)
	case !ValidHost(a.Host):
		p.problem("admin.host", "%q is not a lower-case host name", a.Host)
	case c.Portal != "" && a.Host != c.Portal && !strings.HasSuffix(a.Host, "."+c.Portal):
		// WebAuthn: the RP ID (the portal's name) must be the page's host
		// or a registrable suffix of it, or the browser offers no passkey.
		p.problem("admin.host", "%q is not the portal's host name (%s) or a name under it (such as admin.%s): passkeys are bound to the portal's name, and a browser uses them only on that name and the names under it", a.Host, c.Portal, c.Portal)
	case slices.Contains(c.AppHosts(), a.Host):
		p.problem("admin.host", "%q is an app's host", a.Host)
	case a.Host == c.Portal:
		p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: admin.host: the portal's own name: browsers send cookies to a host on any port, so the console's and the portal's cookies go to both listeners; a name of its own (admin.%s) keeps them apart", p.file, p.lines["admin.host"], c.Portal))
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		p.problem("admin", "set both cert_file and key_file, or neither (the gateway's certificate)")
	}
	if a.CertFile != "" && !filepath.IsAbs(a.CertFile) {
		a.CertFile = filepath.Join(base, a.CertFile)
	}
	if a.KeyFile != "" && !filepath.IsAbs(a.KeyFile) {
		a.KeyFile = filepath.Join(base, a.KeyFile)
	}
	for _, role := range slices.Sorted(maps.Keys(a.Roles)) {
		kp := "admin.roles." + role
		if !slices.Contains(RoleNames, role) {
			p.problem(kp, "%q is not a role: viewer, helpdesk or operator", role)
			continue
		}
		for j, g := range a.Roles[role] {
			if !sluis.ValidName(g) {
				p.problem(fmt.Sprintf("%s[%d]", kp, j), "%q is not a valid group name", g)
			}
		}
	}
	granted := 0
	for _, gs := range a.Roles {
		granted += len(gs)
	}
	if granted == 0 {
		p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: admin.roles: no group has a role, so nobody can log in to the console", p.file, p.lines["admin"]))
	}
	m := &a.Metrics
	if m.TokenFile != "" && !filepath.IsAbs(m.TokenFile) {
		m.TokenFile = filepath.Join(base, m.TokenFile)
	}
	a.networks = p.networks("admin.metrics.networks", m.Networks, "lets every address read the metrics; name the scrapers' addresses, or use token_file")
}

// checkAdminFiles checks what the admin block names on this machine: the
// certificate and key (a pair, covering admin.host; the gateway's when the
// block names none) and the metrics token file.
func (p *parser) checkAdminFiles(c *Config) {
	a := c.Admin
	if a == nil {
		return
	}
	certKey, certFile, keyFile := "admin.cert_file", a.CertFile, a.KeyFile
	if certFile == "" {
		if c.TLS.SelfSigned {
			certFile = "" // made at start for admin.host
		} else {
			certKey, certFile, keyFile = "tls.cert_file", c.TLS.CertFile, c.TLS.KeyFile
		}
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err == nil && a.Host != "" {
			if leaf, perr := x509.ParseCertificate(pair.Certificate[0]); perr == nil {
				if herr := leaf.VerifyHostname(a.Host); herr != nil {
					p.problem(certKey, "%s does not cover admin.host %s (browsers would refuse the console): %v", certFile, a.Host, herr)
				}
			}
		}
		if err != nil && certKey == "admin.cert_file" {
			key := certKey
			if _, statErr := os.Stat(certFile); statErr == nil {
				if _, keyErr := os.ReadFile(keyFile); keyErr != nil {
					key = "admin.key_file"
				}
			}
			p.problem(key, "%v", err)
		}
	}
	if a.Metrics.TokenFile != "" {
		if _, err := a.ReadMetricsToken(); err != nil {
			p.problem("admin.metrics.token_file", "%s", strings.TrimLeft(strings.TrimPrefix(err.Error(), "admin.metrics.token_file"), ": "))
		}
	}
}

// adminUnknownGroups returns UnknownGroups's warnings for admin.roles.
func (c *Config) adminUnknownGroups(warn func(kp, g string)) {
	if c.Admin == nil {
		return
	}
	for _, role := range RoleNames {
		for k, g := range c.Admin.Roles[role] {
			warn(fmt.Sprintf("admin.roles.%s[%d]", role, k), g)
		}
	}
}

func validListenPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

// sameListener reports whether two listen addresses would be the same
// socket: the same port (not 0, which picks a free one) on the same host,
// or on hosts of which one is every address.
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	any := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	if any(ha) || any(hb) {
		return true
	}
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	if ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(ha, hb)
}
