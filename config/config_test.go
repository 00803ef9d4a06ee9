package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

const minimal = `listen: 127.0.0.1:8443
portal: login.corp.test
data_dir: ./data
tls:
  self_signed: true
session:
  idle_timeout: 30m
  lifetime: 12h
apps:
  - name: wiki
    host: wiki.corp.test
    upstream: http://127.0.0.1:9001
    allow:
      groups: [staff]
      mfa: true
`

func TestMinimal(t *testing.T) {
	c, err := Parse("/etc/sluis/sluis.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/etc/sluis/data" || c.Portal != "login.corp.test" || !c.TLS.SelfSigned {
		t.Fatalf("config: %+v", c)
	}
	if c.Session.IdleTimeout.D() != 30*time.Minute || c.Session.Lifetime.D() != 12*time.Hour {
		t.Fatalf("session: %+v", c.Session)
	}
	a, ok := c.App("wiki.corp.test")
	if !ok || len(a.Allow) != 1 || a.Allow[0].MFA != MFAAny || a.Allow[0].Groups[0] != "staff" {
		t.Fatalf("app: %+v", a)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings: %v", c.Warnings)
	}
	if a.EncodedSlashes != "" || a.PathParams != "" || a.CORSPreflight != "" || a.Cache != "" {
		t.Fatalf("path, preflight and cache settings not empty (refuse, refuse, refuse, private): %+v", a)
	}
	c, err = Parse("s.yaml", []byte(strings.Replace(minimal, "    allow:", "    encoded_slashes: pass\n    path_params: pass\n    cors_preflight: pass\n    cache: no-store\n    allow:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Apps[0]; a.EncodedSlashes != Pass || a.PathParams != Pass || a.CORSPreflight != Pass || a.Cache != NoStore {
		t.Fatalf("app: %+v", a)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("s.yaml", []byte("listen: :8443\nportal: p.test\ndata_dir: /d\ntls: {self_signed: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.IdleTimeout.D() != DefaultIdleTimeout || c.Session.Lifetime.D() != DefaultLifetime {
		t.Fatalf("defaults: %+v", c.Session)
	}
	if k := c.Connections; k.Max != 0 || k.MaxPerSource != 256 || k.HeaderTimeout.D() != 10*time.Second || k.IdleTimeout.D() != time.Minute {
		t.Fatalf("connections: %+v", k)
	}
}

// hdrs adds lines to the wiki app of minimal.
func hdrs(lines string) func(string) string {
	return func(s string) string { return s + lines }
}

func TestAppHeaders(t *testing.T) {
	c, err := Parse("s.yaml", []byte(minimal+"    identity_headers: {X-WEBAUTH-USER: user, Remote-Groups: groups, X-Webauth-Email: email, X-Webauth-Name: name}\n    request_headers:\n      remove: [X-Debug]\n      keep: [X-Real-IP, Remote-Name]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.AppByName("wiki")
	if len(a.IdentityHeaders) != 4 || a.IdentityHeaders["X-WEBAUTH-USER"] != "user" || a.IdentityHeaders["Remote-Groups"] != "groups" ||
		a.RequestHeaders == nil || a.RequestHeaders.Remove[0] != "X-Debug" || len(a.RequestHeaders.Keep) != 2 {
		t.Fatalf("app: %+v %+v", a.IdentityHeaders, a.RequestHeaders)
	}
}

// rules replaces the minimal file's allow rule by the list given.
func rules(list string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, "    allow:\n      groups: [staff]\n      mfa: true\n", "    allow:\n"+list, 1)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want string
	}{
		{"unknown top-level key", func(s string) string { return s + "listne: x\n" }, "sluis.yaml:16: listne: unknown key"},
		{"unknown nested key", func(s string) string {
			return strings.Replace(s, "      mfa: true", "      mfa: true\n      grups: [x]", 1)
		}, "sluis.yaml:16: apps[0].allow.grups: unknown key"},
		{"wrong type", func(s string) string { return strings.Replace(s, "mfa: true", "mfa: maybe", 1) }, "sluis.yaml:15: apps[0].allow.mfa: want true, false or phishing_resistant"},
		{"tcp app with a host", func(s string) string { return s + "  - name: desk\n    tcp: 10.1.2.3:3389\n    host: desk.corp.test\n" }, "sluis.yaml:17: apps[1].tcp: a TCP app has no host and no upstream"},
		{"tcp app without a port", func(s string) string { return s + "  - name: desk\n    tcp: 10.1.2.3\n" }, `sluis.yaml:17: apps[1].tcp: "10.1.2.3" is not host:port`},
		{"tcp app with a bad port", func(s string) string { return s + "  - name: desk\n    tcp: desk.corp.test:70000\n" }, `apps[1].tcp: "desk.corp.test:70000" is not host:port`},
		{"tunnel limits", func(s string) string { return s + "tunnels:\n  max_per_user: 0\n  idle_timeout: 100ms\n" }, "tunnels.idle_timeout: between 1s and 24h"},
		{"connection limits", func(s string) string { return s + "connections:\n  max: 100\n  max_per_source: 200\n" }, "sluis.yaml:18: connections.max_per_source: more than connections.max (100)"},
		{"connection timeout", func(s string) string { return s + "connections:\n  header_timeout: 2m\n" }, "sluis.yaml:17: connections.header_timeout: between 1s and 1m"},
		{"shutdown grace", func(s string) string { return s + "connections:\n  shutdown_grace: 2h\n" }, "sluis.yaml:17: connections.shutdown_grace: between 100ms and 1h"},
		{"drain delay", func(s string) string { return s + "connections:\n  drain_delay: 10m\n" }, "sluis.yaml:17: connections.drain_delay: between 0s and 5m"},
		{"connection key", func(s string) string { return s + "connections:\n  max_per_ip: 5\n" }, "sluis.yaml:17: connections.max_per_ip: unknown key"},
		{"plain ldap", func(s string) string {
			return s + "ldap:\n  urls: [ldap://dc.corp.test]\n  bind_dn: cn=x\n  bind_password_file: pw\n  user_base: dc=corp\n  user_filter: (uid={user})\n"
		}, `ldap.urls[0]: "ldap://dc.corp.test" is plain LDAP`},
		{"ldap filter without {user}", func(s string) string {
			return s + "ldap:\n  urls: [ldaps://dc.corp.test]\n  bind_dn: cn=x\n  bind_password_file: pw\n  user_base: dc=corp\n  user_filter: (uid=anna)\n"
		}, "ldap.user_filter: required, with {user}"},
		{"oidc over http", func(s string) string {
			return s + "oidc:\n  - name: idp\n    issuer: http://idp.corp.test/\n    client_id: x\n    client_secret_file: s\n"
		}, `oidc[0].issuer: "http://idp.corp.test/": want the provider's https URL`},
		{"unknown app at strict", func(s string) string { return s + "strict:\n  phishing_resistant: [wiki, payroll]\n" }, `strict.phishing_resistant[1]: no app is named "payroll"`},
		{"encoded slashes", func(s string) string {
			return strings.Replace(s, "    allow:", "    encoded_slashes: allow\n    allow:", 1)
		}, `sluis.yaml:13: apps[0].encoded_slashes: "allow": want refuse or pass`},
		{"path params", func(s string) string { return strings.Replace(s, "    allow:", "    path_params: yes\n    allow:", 1) }, `sluis.yaml:13: apps[0].path_params: "yes": want refuse or pass`},
		{"cors preflight", func(s string) string {
			return strings.Replace(s, "    allow:", "    cors_preflight: on\n    allow:", 1)
		}, `sluis.yaml:13: apps[0].cors_preflight: "on": want refuse or pass`},
		{"cache", func(s string) string { return strings.Replace(s, "    allow:", "    cache: no-cache\n    allow:", 1) }, `sluis.yaml:13: apps[0].cache: "no-cache": want private or no-store`},
		{"tcp app with cache", func(s string) string { return s + "  - name: desk\n    tcp: 10.1.2.3:3389\n    cache: no-store\n" }, "sluis.yaml:18: apps[1].cache: a TCP app has no paths"},
		{"bad duration", func(s string) string { return strings.Replace(s, "30m", "soon", 1) }, `sluis.yaml:7: session.idle_timeout: "soon" is not a duration`},
		{"missing portal", func(s string) string { return strings.Replace(s, "portal: login.corp.test\n", "", 1) }, "sluis.yaml:1: portal: required"},
		{"bad host", func(s string) string { return strings.Replace(s, "host: wiki.corp.test", "host: Wiki_Corp", 1) }, `sluis.yaml:11: apps[0].host: "Wiki_Corp" is not a lower-case host name`},
		{"app host is portal", func(s string) string { return strings.Replace(s, "host: wiki.corp.test", "host: login.corp.test", 1) }, `sluis.yaml:11: apps[0].host: "login.corp.test" is the portal's`},
		{"upstream with query", func(s string) string { return strings.Replace(s, "9001", "9001/?a=b", 1) }, `sluis.yaml:12: apps[0].upstream:`},
		{"upstream scheme", func(s string) string { return strings.Replace(s, "http://", "file://", 1) }, `sluis.yaml:12: apps[0].upstream:`},
		{"tls both", func(s string) string {
			return strings.Replace(s, "self_signed: true", "self_signed: true\n  cert_file: c.pem", 1)
		}, "sluis.yaml:4: tls: set either"},
		{"tls none", func(s string) string { return strings.Replace(s, "self_signed: true", "self_signed: false", 1) }, "sluis.yaml:4: tls: set self_signed"},
		{"idle beyond lifetime", func(s string) string { return strings.Replace(s, "30m", "13h", 1) }, "sluis.yaml:7: session.idle_timeout: longer than session.lifetime"},
		{"group with comma", func(s string) string { return strings.Replace(s, "[staff]", `["a,b"]`, 1) }, `sluis.yaml:14: apps[0].allow.groups[0]: "a,b" is not a valid group name`},
		{"listen without port", func(s string) string { return strings.Replace(s, "127.0.0.1:8443", "127.0.0.1", 1) }, `sluis.yaml:1: listen: "127.0.0.1" is not host:port`},
		{"syntax", func(s string) string { return s + "  - : [\n" }, "sluis.yaml:"},
		{"syslog without port", func(s string) string {
			return strings.Replace(s, "apps:\n", "audit:\n  syslog:\n    address: logs.corp.test\napps:\n", 1)
		}, `sluis.yaml:11: audit.syslog.address: "logs.corp.test" is not host:port`},
		{"syslog CA without TLS", func(s string) string {
			return strings.Replace(s, "apps:\n", "audit:\n  syslog:\n    address: logs.corp.test:6514\n    ca_file: ca.pem\napps:\n", 1)
		}, `sluis.yaml:12: audit.syslog.ca_file: set tls: true`},
		{"ldap maps to too many groups", func(s string) string {
			var m []string
			for i := range 257 {
				m = append(m, fmt.Sprintf("    cn=g%d: g%d", i, i))
			}
			return s + "ldap:\n  urls: [ldaps://dc.corp.test]\n  bind_dn: cn=x\n  bind_password_file: pw\n  user_base: dc=corp\n  user_filter: (uid={user})\n  group_base: dc=corp\n  groups:\n" + strings.Join(m, "\n") + "\n"
		}, "sluis.yaml:23: ldap.groups: maps to too many groups: 257 groups: at most 256"},
		{"oidc maps to too many groups", func(s string) string {
			var m []string
			for i := range 257 {
				m = append(m, fmt.Sprintf("      v%d: g%d", i, i))
			}
			return s + "oidc:\n  - name: idp\n    issuer: https://idp.corp.test/\n    client_id: x\n    client_secret_file: s\n    groups:\n" + strings.Join(m, "\n") + "\n"
		}, "sluis.yaml:21: oidc[0].groups: maps to too many groups"},
		{"identity header with underscore", hdrs("    identity_headers: {X_Webauth_User: user}\n"), `sluis.yaml:16: apps[0].identity_headers.X_Webauth_User: "X_Webauth_User" is not a header name`},
		{"identity header of the gateway", hdrs("    identity_headers:\n      x-sluis-user: user\n"), `sluis.yaml:17: apps[0].identity_headers.x-sluis-user: x-sluis-user is set by the gateway for every app`},
		{"identity header forwarding", hdrs("    identity_headers: {X-Forwarded-For: user}\n"), `sluis.yaml:16: apps[0].identity_headers.X-Forwarded-For: X-Forwarded-For is set by the gateway`},
		{"identity header cookie", hdrs("    identity_headers: {Cookie: user}\n"), `apps[0].identity_headers.Cookie: Cookie carries the request's framing or credentials`},
		{"identity header twice", hdrs("    identity_headers: {X-WEBAUTH-USER: user, x-webauth-user: user}\n"), `apps[0].identity_headers.x-webauth-user: x-webauth-user is listed twice`},
		{"identity header value", hdrs("    identity_headers:\n      Remote-User: username\n"), `sluis.yaml:17: apps[0].identity_headers.Remote-User: "username": want user, groups, email or name`},
		{"keep the gateway's own", hdrs("    request_headers:\n      keep: [X-Sluis-User]\n"), `sluis.yaml:17: apps[0].request_headers.keep[0]: X-Sluis-User is set by the gateway; no app may receive a client's copy`},
		{"keep an identity header", hdrs("    identity_headers: {X-Webauth-User: user}\n    request_headers:\n      keep: [x-webauth-user]\n"), `sluis.yaml:18: apps[0].request_headers.keep[0]: x-webauth-user is one of this app's identity_headers`},
		{"keep an underscore name", hdrs("    request_headers:\n      keep: [REMOTE_USER]\n"), `apps[0].request_headers.keep[0]: "REMOTE_USER" is not a header name`},
		{"keep what is not dropped", hdrs("    request_headers:\n      keep: [X-Custom]\n"), `apps[0].request_headers.keep[0]: X-Custom is not dropped by default`},
		{"keep and remove", hdrs("    request_headers:\n      remove: [X-Real-IP]\n      keep: [X-Real-IP]\n"), `apps[0].request_headers.keep[0]: X-Real-IP is also in remove`},
		{"remove a bad name", hdrs("    request_headers:\n      remove: [\"X Custom\"]\n"), `sluis.yaml:17: apps[0].request_headers.remove[0]: "X Custom" is not a header name`},
		{"request_headers key", hdrs("    request_headers:\n      drop: [X-Custom]\n"), `sluis.yaml:17: apps[0].request_headers.drop: unknown key`},
		{"rule key", rules("      - groups: [staff]\n        path: [/admin/]\n"), "sluis.yaml:15: apps[0].allow[0].path: unknown key"},
		{"rule key in the single form", func(s string) string {
			return strings.Replace(s, "      mfa: true", "      mfa: true\n      network: [10.0.0.0/8]", 1)
		},
			"sluis.yaml:16: apps[0].allow.network: unknown key"},
		{"rule CIDR", rules("      - groups: [staff]\n        networks: [10.1.0.0/33]\n"), `sluis.yaml:15: apps[0].allow[0].networks[0]: "10.1.0.0/33" is not a CIDR`},
		{"rule CIDR with host bits", rules("      - groups: [staff]\n        networks: [10.1.2.3/16]\n"), `apps[0].allow[0].networks[0]: "10.1.2.3/16" has bits set past the prefix length; did you mean 10.1.0.0/16?`},
		{"rule hours", rules("      - groups: [staff]\n        hours: [\"mon-fri 7-19\"]\n"), `sluis.yaml:15: apps[0].allow[0].hours[0]: "mon-fri 7-19"`},
		{"rule path", rules("      - groups: [staff]\n        paths: [admin/]\n"), `sluis.yaml:15: apps[0].allow[0].paths[0]: "admin/": a path starts with /`},
		{"rule path with a dot segment", rules("      - groups: [staff]\n        paths: [/a/../admin]\n"), `apps[0].allow[0].paths[0]: "/a/../admin": a dot segment`},
		{"rule method", rules("      - groups: [staff]\n        methods: [get]\n"), `sluis.yaml:15: apps[0].allow[0].methods[0]: "get" is not an HTTP method in upper case`},
		{"second rule's group", rules("      - groups: [staff]\n        paths: [/a/]\n      - groups: [\"x y\"]\n"), `sluis.yaml:16: apps[0].allow[1].groups[0]: "x y" is not a valid group name`},
		{"rule not a mapping", rules("      - staff\n"), "sluis.yaml:14: apps[0].allow: a rule is a mapping"},
		{"time zone", func(s string) string { return s + "time_zone: Europe/Amsterdm\n" }, `sluis.yaml:16: time_zone: "Europe/Amsterdm" is not an IANA time zone`},
		{"tcp app with paths", func(s string) string {
			return s + "  - name: desk\n    tcp: 10.1.2.3:3389\n    allow:\n      groups: [staff]\n      paths: [/x/]\n"
		}, "sluis.yaml:18: apps[1].allow: a TCP app's tunnels have no paths or methods"},
		{"tcp app with headers", func(s string) string {
			return s + "  - name: desk\n    tcp: 10.1.2.3:3389\n    identity_headers: {X-User: user}\n"
		}, "apps[1].tcp: a TCP app has no request_headers and no identity_headers"},
		{"public_url over http", func(s string) string { return s + "public_url: http://login.corp.test\n" }, `sluis.yaml:16: public_url: "http://login.corp.test": want https://PORTAL or https://PORTAL:PORT`},
		{"public_url of another host", func(s string) string { return s + "public_url: https://sso.corp.test\n" }, `sluis.yaml:16: public_url: "https://sso.corp.test": the host is not the portal's (login.corp.test)`},
		{"public_url with a path", func(s string) string { return s + "public_url: https://login.corp.test/sluis\n" }, `sluis.yaml:16: public_url: "https://login.corp.test/sluis": only scheme, host and port`},
		{"public_url with a bad port", func(s string) string { return s + "public_url: https://login.corp.test:99999\n" }, `sluis.yaml:16: public_url: "https://login.corp.test:99999"`},
		{"trusted proxy not a CIDR", func(s string) string { return s + "trusted_proxies: [10.0.0.0/8, lb.corp.test]\n" }, `sluis.yaml:16: trusted_proxies[1]: "lb.corp.test" is not an address or a CIDR`},
		{"trusted proxy with host bits", func(s string) string { return s + "trusted_proxies:\n  - 10.0.0.7/24\n" }, `sluis.yaml:17: trusted_proxies[0]: "10.0.0.7/24" has bits set past the prefix length; did you mean 10.0.0.0/24?`},
		{"trusting everyone", func(s string) string { return s + "trusted_proxies: [\"::/0\"]\n" }, `sluis.yaml:16: trusted_proxies[0]: "::/0" trusts every address`},
		{"forwarded header", func(s string) string { return s + "trusted_proxies: [10.0.0.1]\nforwarded_header: X-Real-IP\n" }, `sluis.yaml:17: forwarded_header: "X-Real-IP": want X-Forwarded-For or Forwarded`},
		{"proxy protocol without trusted proxies", func(s string) string { return s + "proxy_protocol: true\n" }, `sluis.yaml:16: proxy_protocol: needs trusted_proxies`},
		{"duplicate app", func(s string) string {
			return s + "  - name: wiki\n    host: w2.corp.test\n    upstream: http://127.0.0.1:1\n"
		}, `sluis.yaml:16: apps[1].name: "wiki" is used by another app`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sluis.yaml", []byte(tt.edit(minimal)))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestPublicFace(t *testing.T) {
	c, err := Parse("s.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicPort(8443) != 8443 || len(c.Proxies().Trusted) != 0 || c.ProxyProtocol {
		t.Fatalf("defaults: port %d, proxies %+v", c.PublicPort(8443), c.Proxies())
	}
	for url, port := range map[string]int{"https://login.corp.test": 443, "https://LOGIN.corp.test:8443/": 8443, "https://login.corp.test:443": 443} {
		c, err := Parse("s.yaml", []byte(minimal+"public_url: "+url+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if got := c.PublicPort(9000); got != port {
			t.Errorf("%s: port %d, want %d", url, got, port)
		}
	}
	c, err = Parse("s.yaml", []byte(minimal+"trusted_proxies: [10.0.0.0/24, 192.0.2.7, \"::ffff:198.51.100.0/120\", 2001:db8::/32]\nforwarded_header: forwarded\nproxy_protocol: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "s.yaml:16: trusted_proxies: no public_url") {
		t.Fatalf("warnings %q", c.Warnings)
	}
	p := c.Proxies()
	if fmt.Sprint(p.Trusted) != "[10.0.0.0/24 192.0.2.7/32 198.51.100.0/24 2001:db8::/32]" || p.Header != "Forwarded" || !c.ProxyProtocol {
		t.Fatalf("proxies %+v", p)
	}
}

// An alias is refused where it is used, not only where its anchor stands:
// the line an operator must change.
func TestAliasesAreRefusedWhereUsed(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"shared allow rule", minimal + "  - name: hr\n    host: hr.corp.test\n    upstream: http://127.0.0.1:9002\n    allow: *rule\n",
			[]string{"sluis.yaml:19: apps[1].allow: alias *rule (anchored at line 13): aliases are not accepted"}},
		{"alias to a scalar", strings.Replace(strings.Replace(minimal, "30m", "&d 30m", 1), "lifetime: 12h", "lifetime: *d", 1),
			[]string{"sluis.yaml:8: session.lifetime: alias *d (anchored at line 7)"}},
		{"alias as a list item", "x: &g ops\n" + strings.Replace(minimal, "[staff]", "[staff, *g]", 1),
			[]string{"sluis.yaml:15: apps[0].allow.groups[1]: alias *g (anchored at line 1)"}},
		{"merge key", "y: &s {lifetime: 1h}\n" + strings.Replace(minimal, "session:\n", "session:\n  <<: *s\n", 1),
			[]string{"sluis.yaml:8: session.<<: alias *s (anchored at line 1)"}},
		{"alias of no anchor", strings.Replace(minimal, "lifetime: 12h", "lifetime: *nope", 1),
			[]string{"sluis.yaml:8: alias *nope: no anchor &nope before it"}},
		{"alias bomb", "a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
			[]string{"sluis.yaml:2: b[0]: alias *a (anchored at line 1)", "sluis.yaml:3: and more aliases after this line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(tt.yaml, "    allow:\n", "    allow: &rule\n", 1)
			_, err := Parse("sluis.yaml", []byte(in))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestWarnsAboutAppsNobodyCanOpen(t *testing.T) {
	c, err := Parse("s.yaml", []byte(strings.Replace(minimal, "    allow:\n      groups: [staff]\n      mfa: true\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "nobody can open") {
		t.Fatalf("warnings: %v", c.Warnings)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sluis.yaml")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "data") {
		t.Fatalf("data dir %q", c.DataDir)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzParse: the loader must never panic, whatever the file holds, and every
// error it returns must name the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("listen: [\n"))
	f.Add([]byte("apps: {a: b}\n"))
	f.Add([]byte("session: {idle_timeout: -5m}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %q", err)
			}
			return
		}
		if c.Portal == "" || c.Listen == "" {
			t.Fatalf("accepted config without portal or listen: %+v", c)
		}
	})
}

// Rules as a list: each read in order with its networks, hours and line;
// the single mapping is a list of one.
func TestRules(t *testing.T) {
	c, err := Parse("sluis.yaml", []byte(rules(`      - paths: [/admin/]
        groups: [wiki-admins]
        mfa: phishing_resistant
        networks: [10.1.0.0/16, "2001:db8::/48"]
        hours: ["mon-fri 07:00-19:00"]
      - groups: [staff]
        users: [Carl]
      - groups: [nobody]
`)(minimal)+"time_zone: UTC\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.App("wiki.corp.test")
	if len(a.Allow) != 3 {
		t.Fatalf("rules: %+v", a.Allow)
	}
	admin, staff := a.Allow[0].Domain(), a.Allow[1].Domain()
	if !admin.PhishingResistant || !admin.MFA || len(admin.Networks) != 2 || admin.Networks[1].String() != "2001:db8::/48" ||
		len(admin.Hours) != 1 || admin.Hours[0].From != 7*60 || admin.Line != 14 {
		t.Fatalf("admin rule: %+v", admin)
	}
	if staff.Users[0] != "carl" || staff.Line != 19 || len(staff.Methods) != 0 || staff.MFA {
		t.Fatalf("staff rule: %+v", staff)
	}
	if c.Zone().String() != "UTC" {
		t.Fatalf("zone %v", c.Zone())
	}
	want := "sluis.yaml:21: apps[0].allow[2]: never chosen: rule 2 before it matches every request"
	if len(c.Warnings) != 1 || c.Warnings[0] != want {
		t.Fatalf("warnings %q, want %q", c.Warnings, want)
	}
	// Groups nobody is in are a warning, with their line.
	unknown := c.UnknownGroups([]sluis.User{{Name: "anna", Groups: []string{"staff"}}})
	wantUnknown := []string{`sluis.yaml:15: apps[0].allow[0].groups[0]: no user is in the group "wiki-admins", and no directory or identity provider mapping gives it`,
		`sluis.yaml:21: apps[0].allow[2].groups[0]: no user is in the group "nobody", and no directory or identity provider mapping gives it`}
	if strings.Join(unknown, "\n") != strings.Join(wantUnknown, "\n") {
		t.Fatalf("unknown groups:\n%s\nwant\n%s", strings.Join(unknown, "\n"), strings.Join(wantUnknown, "\n"))
	}
	c, err = Parse("sluis.yaml", []byte(minimal))
	if err != nil || c.Zone().String() != "Europe/Amsterdam" {
		t.Fatalf("default zone: %v %v", c, err)
	}
	if r := c.Apps[0].Allow[0].Domain(); r.Line != 13 || !r.MFA || r.Groups[0] != "staff" {
		t.Fatalf("single rule: %+v", r)
	}
}

// store: is a postgres:// URL, or a mapping whose url_file keeps the
// password out of the file; errors never quote a URL (it may hold a
// password).
func TestStore(t *testing.T) {
	c, err := Parse("/etc/sluis/sluis.yaml", []byte(minimal))
	if err != nil || c.Store.IsPostgres() {
		t.Fatalf("default store: %+v %v", c.Store, err)
	}
	c, err = Parse("/etc/sluis/sluis.yaml", []byte(minimal+"store: sqlite\n"))
	if err != nil || c.Store.IsPostgres() {
		t.Fatalf("store: sqlite: %+v %v", c.Store, err)
	}
	c, err = Parse("/etc/sluis/sluis.yaml", []byte(minimal+"store: postgres://sluis@db.corp.test/sluis?sslmode=verify-full\n"))
	if err != nil || !c.Store.IsPostgres() || c.Store.Postgres.URL != "postgres://sluis@db.corp.test/sluis?sslmode=verify-full" || len(c.Warnings) != 0 {
		t.Fatalf("store URL: %+v %v %v", c.Store, err, c.Warnings)
	}
	c, err = Parse("/etc/sluis/sluis.yaml", []byte(minimal+"store: postgres://sluis:hunter2@db.corp.test/sluis\n"))
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "sluis.yaml:16: store: the URL holds a password") || strings.Contains(c.Warnings[0], "hunter2") {
		t.Fatalf("store URL with a password: %v %v", err, c.Warnings)
	}
	c, err = Parse("/etc/sluis/sluis.yaml", []byte(minimal+"store:\n  postgres:\n    url_file: db-url\n"))
	if err != nil || c.Store.Postgres.URLFile != "/etc/sluis/db-url" || c.Store.Postgres.URL != "" {
		t.Fatalf("store url_file: %+v %v", c.Store.Postgres, err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"store: mysql://root:hunter2@db/x\n", "sluis.yaml:16: store: want a postgres:// URL"},
		{"store: postgres://sluis:hunter2@/x\n", "sluis.yaml:16: store: the URL names no host"},
		{"store: postgres://sluis:hunter2@db.corp.test\n", "sluis.yaml:16: store: the URL names no database"},
		{"store:\n  postgres:\n    url_file: a\n    url: postgres://db/x\n", "sluis.yaml:17: store.postgres: set either url_file"},
		{"store:\n  postgres: {}\n", "sluis.yaml:17: store.postgres: set either url_file"},
		{"store:\n  postgres:\n    urlfile: a\n", "sluis.yaml:18: store.postgres.urlfile: unknown key"},
		{"store:\n  mysql:\n    url: x\n", "sluis.yaml:17: store.mysql: unknown key"},
		{"store: [postgres]\n", "sluis.yaml:16: store: want a postgres:// URL"},
	} {
		_, err := Parse("sluis.yaml", []byte(minimal+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: got %v, want %q (and no password)", c.yaml, err, c.want)
		}
	}
	// The file is read at start, and checked by CheckFiles.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluis.yaml")
	os.WriteFile(cfg, []byte(minimal+"store:\n  postgres:\n    url_file: db-url\n"), 0o600)
	c, err = Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "sluis.yaml:18: store.postgres.url_file:") {
		t.Fatalf("missing url_file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "db-url"), []byte("mysql://root:hunter2@db/x\n"), 0o600)
	if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "want a postgres:// URL") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("url_file with another URL: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "db-url"), []byte("postgres://sluis:hunter2@db.corp.test/sluis\n"), 0o600)
	if err := c.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if u, err := c.Store.Postgres.ReadURL(); err != nil || u != "postgres://sluis:hunter2@db.corp.test/sluis" {
		t.Fatalf("ReadURL: %q %v", u, err)
	}
}

// TestCheckListsEveryProblem: a syntax error names its line, a tab in the
// indentation is said plainly at its line, every problem of a file is
// listed (values that cannot be read, unknown keys and validation
// problems together), and every port is checked.
func TestCheckListsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each a problem that must be listed
		not  []string // problems that must not be
	}{
		{"syntax error", strings.Replace(minimal, "portal: login.corp.test", "portal: [login.corp.test", 1),
			[]string{"sluis.yaml:2: did not find expected ',' or ']'"}, nil},
		{"key indented too little", strings.Replace(minimal, "  lifetime: 12h", " lifetime: 12h", 1), []string{"sluis.yaml:8: did not find expected key"}, nil},
		{"list item in a mapping", minimal + "- x\n", []string{"sluis.yaml:16: did not find expected key"}, nil},
		{"mapping in a value", minimal + "time_zone: a: b\n", []string{"sluis.yaml:16: mapping values are not allowed in this context"}, nil},
		{"unclosed quote", minimal + "time_zone: \"Europe/Amsterdam\n", []string{"sluis.yaml:16: "}, nil},
		{"tab", strings.Replace(minimal, "  self_signed: true", "\tself_signed: true", 1),
			[]string{"sluis.yaml:5: tabs are not allowed for indentation"}, []string{"cannot start any token"}},
		{"two tabs", strings.Replace(strings.Replace(minimal, "  idle_timeout", "\tidle_timeout", 1), "    host:", "  \thost:", 1),
			[]string{"sluis.yaml:7: tabs are not allowed for indentation", "sluis.yaml:11: tabs are not allowed for indentation"}, nil},
		{"several problems at once", strings.NewReplacer(
			"  idle_timeout: 30m", "  idle_timeout: soon",
			"  lifetime: 12h", "  lifetime: [12h]",
			"mfa: true", "mfa: maybe",
			"upstream: http://127.0.0.1:9001", "upstream: http://127.0.0.1:9001\n    colour: blue",
			"portal: login.corp.test", "portal: Login_Corp",
		).Replace(minimal) + "listne: x\n",
			[]string{
				`sluis.yaml:7: session.idle_timeout: "soon" is not a duration`,
				"sluis.yaml:8: session.lifetime: want a duration",
				"sluis.yaml:16: apps[0].allow.mfa: want true, false or phishing_resistant",
				"sluis.yaml:13: apps[0].colour: unknown key",
				"sluis.yaml:17: listne: unknown key",
				`sluis.yaml:2: portal: "Login_Corp" is not a lower-case host name`,
			}, []string{"session.lifetime: between"}},
		{"listen port", strings.Replace(minimal, "127.0.0.1:8443", "127.0.0.1:70000", 1), []string{`sluis.yaml:1: listen: "127.0.0.1:70000" has no valid port`}, nil},
		{"upstream port", strings.Replace(minimal, "127.0.0.1:9001", "127.0.0.1:90010", 1),
			[]string{`sluis.yaml:12: apps[0].upstream: "http://127.0.0.1:90010": the port is not between 1 and 65535`}, nil},
		{"upstream port 0", strings.Replace(minimal, "127.0.0.1:9001", "127.0.0.1:0", 1), []string{"sluis.yaml:12: apps[0].upstream: \"http://127.0.0.1:0\": the port is not between 1 and 65535"}, nil},
		{"syslog port", minimal + "audit:\n  syslog:\n    address: logs.corp.test:65536\n",
			[]string{`sluis.yaml:18: audit.syslog.address: "logs.corp.test:65536": the port is not between 1 and 65535`}, nil},
		{"ldap port", minimal + "ldap:\n  urls: [ldaps://dc.corp.test:6360000]\n  bind_dn: cn=x\n  bind_password_file: pw\n  user_base: dc=corp\n  user_filter: (uid={user})\n",
			[]string{`sluis.yaml:17: ldap.urls[0]: "ldaps://dc.corp.test:6360000": the port is not between 1 and 65535`}, nil},
		{"oidc port", minimal + "oidc:\n  - name: idp\n    issuer: https://idp.corp.test:0/\n    client_id: x\n    client_secret_file: s\n",
			[]string{`sluis.yaml:18: oidc[0].issuer: "https://idp.corp.test:0/": the port is not between 1 and 65535`}, nil},
		{"public_url port", minimal + "public_url: https://login.corp.test:65536\n", []string{`sluis.yaml:16: public_url: "https://login.corp.test:65536" has no valid port`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sluis.yaml", []byte(tt.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *config.Error", err)
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(ce.Problems, func(p string) bool { return strings.HasPrefix(p, w) }) {
					t.Errorf("no problem begins %q in\n%s", w, err)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("%q in\n%s", n, err)
				}
			}
		})
	}
	// A tab where YAML allows one (in a value) is no problem.
	if _, err := Parse("sluis.yaml", []byte(strings.Replace(minimal, "tls:", "tls:\t# self-signed", 1))); err != nil {
		t.Errorf("tab after a key: %v", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		add  string
		want Size
		err  string
	}{
		{"", 0, ""},
		{"memory_limit: 512MiB\n", 512 << 20, ""},
		{"memory_limit: 1GiB\n", 1 << 30, ""},
		{"memory_limit: 10MiB\n", 0, "memory_limit: at least 64MiB"},
		{"memory_limit: lots\n", 0, "not a size"},
	} {
		t.Run(c.add, func(t *testing.T) {
			cfg, err := Parse("sluis.yaml", []byte(minimal+c.add))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MemoryLimit != c.want {
				t.Fatalf("memory_limit %d, want %d", cfg.MemoryLimit, c.want)
			}
		})
	}
}
