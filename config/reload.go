package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fixedSetting is a setting that a running gateway cannot take from a
// reloaded file: what it was built into is made once at start.
type fixedSetting struct {
	key string // the key path, as in messages
	// same reports whether two valid configurations agree on it.
	same func(a, b *Config) bool
}

// fixedSettings are the settings that need a restart, each with why:
//   - listen: the socket is bound once;
//   - portal, public_url: the portal's origin is in the passkeys (their
//     relying party), the assertion's issuer and every session cookie's
//     host; a change would log out and lock out everyone at once;
//   - data_dir: keys, the lock of one gateway per data_dir, the
//     announcement socket;
//   - store: the open database, its leases and its change feed;
//   - trusted_proxies, forwarded_header, proxy_protocol: the listener's
//     PROXY protocol and connection caps are built on them;
//   - connections: the listener's caps and net/http's timeouts are fixed
//     once it serves;
//   - audit: the syslog forwarder and its queue, and the folding of
//     refused attempts, which carries counts that a new one would lose;
//   - admin: the admin listener's socket, host (in its passkeys' origin
//     and its sessions' cookie host), certificate, roles and metrics
//     access are made once. (Who has a role follows the users' groups,
//     which change without a reload.)
//
// Everything else (apps, their rules, ldap, oidc, session, probes,
// tunnels, emergency, strict, time_zone, tls) is taken from the new file.
var fixedSettings = []fixedSetting{
	{"listen", func(a, b *Config) bool { return a.Listen == b.Listen }},
	{"portal", func(a, b *Config) bool { return a.Portal == b.Portal }},
	{"public_url", func(a, b *Config) bool { return a.PublicURL == b.PublicURL }},
	{"data_dir", func(a, b *Config) bool { return a.DataDir == b.DataDir }},
	{"store", func(a, b *Config) bool { return reflect.DeepEqual(a.Store, b.Store) }},
	{"trusted_proxies", func(a, b *Config) bool { return slices.Equal(a.TrustedProxies, b.TrustedProxies) }},
	// Read only from trusted proxies: a change that comes with theirs is
	// named as theirs.
	{"forwarded_header", func(a, b *Config) bool {
		return a.ForwardedHeader == b.ForwardedHeader || len(a.trusted) == 0 || len(b.trusted) == 0
	}},
	{"proxy_protocol", func(a, b *Config) bool { return a.ProxyProtocol == b.ProxyProtocol }},
	{"connections", func(a, b *Config) bool { return a.Connections == b.Connections }},
	{"memory_limit", func(a, b *Config) bool { return a.MemoryLimit == b.MemoryLimit }},
	{"audit", func(a, b *Config) bool { return reflect.DeepEqual(a.Audit, b.Audit) }},
	{"admin", func(a, b *Config) bool { return reflect.DeepEqual(a.Admin, b.Admin) }},
}

// FixedKeys returns the key paths of the settings that cannot change
// while the gateway runs, in the order Replaceable reports them.
func FixedKeys() []string {
	out := make([]string, len(fixedSettings))
	for i, f := range fixedSettings {
		out[i] = f.key
	}
	return out
}

// Replaceable reports whether a running gateway started with c can take
// next (both valid, from Load) without a restart: nil, or an *Error with
// one problem per setting that changed, at its line in next's file
// ("sluis.yaml:3: listen: listen cannot change while running (restart
// sluis serve)"). A setting removed from the file is reported at the top
// of the file.
func (c *Config) Replaceable(next *Config) error {
	p := &parser{file: next.File, lines: next.lines}
	for _, f := range fixedSettings {
		if !f.same(c, next) {
			p.problem(f.key, "%s cannot change while running (restart sluis serve)", f.key)
		}
	}
	if len(p.problems) > 0 {
		return &Error{Problems: p.problems}
	}
	return nil
}

// DataDirOf returns the data_dir that the file at path names, resolved as
// Load resolves it, without validating anything else: `sluis reload` finds
// the running gateway by it even when the file now has problems (which
// the gateway then reports). A file whose YAML does not parse is read
// line by line for a top-level data_dir.
func DataDirOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var top struct {
		DataDir string `yaml:"data_dir"`
	}
	dir := ""
	if yaml.Unmarshal(data, &top) == nil {
		dir = top.DataDir
	} else {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "data_dir:"); ok {
				v, _, _ = strings.Cut(v, " #")
				dir = strings.Trim(strings.TrimSpace(v), `"'`)
				break
			}
		}
	}
	if dir == "" {
		return "", fmt.Errorf("%s: no data_dir to find the running gateway by", path)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(path), dir)
	}
	return dir, nil
}
