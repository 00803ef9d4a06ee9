package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// What a running gateway can take from a reloaded file, and what needs a
// restart: each setting that needs one is named at its line, all of them
// at once, and a file that changes one of them is refused whatever else
// it changes (nothing is half applied).
func TestReplaceable(t *testing.T) {
	tests := []struct {
		name  string
		edits []string // pairs of old and new text in minimal
		want  []string // the problems; none: replaceable
	}{
		{"nothing changed", nil, nil},
		{"an app added", []string{"apps:\n", "apps:\n  - name: docs\n    host: docs.corp.test\n    upstream: http://127.0.0.1:9002\n    allow:\n      users: [anna]\n"}, nil},
		{"a rule changed", []string{"groups: [staff]", "groups: [staff, hr]"}, nil},
		{"the app removed", []string{"  - name: wiki\n    host: wiki.corp.test\n    upstream: http://127.0.0.1:9001\n    allow:\n      groups: [staff]\n      mfa: true\n", "  - name: docs\n    tcp: 127.0.0.1:22\n    allow:\n      users: [anna]\n"}, nil},
		{"session timeouts", []string{"idle_timeout: 30m", "idle_timeout: 5m", "lifetime: 12h", "lifetime: 1h"}, nil},
		{"probes, tunnels, emergency, strict, time zone", []string{"apps:\n", "probes:\n  block_after: 3\ntunnels:\n  max_per_user: 2\nemergency:\n  break_glass:\n    users: [root]\nstrict:\n  reauth_after: 5m\ntime_zone: UTC\napps:\n"}, nil},
		{"tls files", []string{"  self_signed: true\n", "  cert_file: /etc/sluis/cert.pem\n  key_file: /etc/sluis/key.pem\n"}, nil},
		{"listen", []string{"listen: 127.0.0.1:8443", "listen: 127.0.0.1:9443"},
			[]string{"s.yaml:1: listen: listen cannot change while running (restart sluis serve)"}},
		{"portal", []string{"portal: login.corp.test", "portal: sso.corp.test"},
			[]string{"s.yaml:2: portal: portal cannot change while running (restart sluis serve)"}},
		{"data_dir", []string{"data_dir: ./data", "data_dir: ./other"},
			[]string{"s.yaml:3: data_dir: data_dir cannot change while running (restart sluis serve)"}},
		{"store", []string{"apps:\n", "store: postgres://sluis@db.corp.test/sluis\napps:\n"},
			[]string{"s.yaml:9: store: store cannot change while running (restart sluis serve)"}},
		{"public_url", []string{"apps:\n", "public_url: https://login.corp.test\napps:\n"},
			[]string{"s.yaml:9: public_url: public_url cannot change while running (restart sluis serve)"}},
		{"trusted proxies and the PROXY protocol", []string{"apps:\n", "trusted_proxies: [10.0.0.0/8]\nproxy_protocol: true\napps:\n"},
			[]string{"s.yaml:9: trusted_proxies: trusted_proxies cannot change while running (restart sluis serve)",
				"s.yaml:10: proxy_protocol: proxy_protocol cannot change while running (restart sluis serve)"}},
		{"connections", []string{"apps:\n", "connections:\n  max_per_source: 10\napps:\n"},
			[]string{"s.yaml:9: connections: connections cannot change while running (restart sluis serve)"}},
		{"audit", []string{"apps:\n", "audit:\n  fold_refusals: 5m\napps:\n"},
			[]string{"s.yaml:9: audit: audit cannot change while running (restart sluis serve)"}},
		{"listen and a rule: refused whole", []string{"listen: 127.0.0.1:8443", "listen: 127.0.0.1:9443", "groups: [staff]", "groups: [everyone]"},
			[]string{"s.yaml:1: listen: listen cannot change while running (restart sluis serve)"}},
	}
	running, err := Parse("s.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := minimal
			for i := 0; i+1 < len(tt.edits); i += 2 {
				if !strings.Contains(text, tt.edits[i]) {
					t.Fatalf("minimal has no %q", tt.edits[i])
				}
				text = strings.Replace(text, tt.edits[i], tt.edits[i+1], 1)
			}
			next, err := Parse("s.yaml", []byte(text))
			if err != nil {
				t.Fatalf("the new file: %v", err)
			}
			err = running.Replaceable(next)
			var ce *Error
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == nil:
				return
			case !errors.As(err, &ce):
				t.Fatalf("got %v, want %q", err, tt.want)
			case !slices.Equal(ce.Problems, tt.want):
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(ce.Problems, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// A removed setting that needed a restart is named too, at the top of
// the file (it has no line of its own any more).
func TestReplaceableRemovedSetting(t *testing.T) {
	with, err := Parse("s.yaml", []byte("trusted_proxies: [10.0.0.0/8]\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	without, err := Parse("s.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := "s.yaml:1: trusted_proxies: trusted_proxies cannot change while running (restart sluis serve)"
	if err := with.Replaceable(without); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	// With trusted proxies on both sides, their header is named itself.
	header, err := Parse("s.yaml", []byte("trusted_proxies: [10.0.0.0/8]\nforwarded_header: Forwarded\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	want = "s.yaml:1: forwarded_header: forwarded_header cannot change while running (restart sluis serve)"
	if err := header.Replaceable(with); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if keys := FixedKeys(); !slices.Contains(keys, "listen") || !slices.Contains(keys, "store") || slices.Contains(keys, "apps") {
		t.Fatalf("fixed keys: %v", keys)
	}
}

// `sluis reload` finds the gateway by the data_dir of a file that may no
// longer be valid.
func TestDataDirOf(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text, want string
	}{
		{"valid", minimal, filepath.Join(dir, "data")},
		{"absolute", strings.Replace(minimal, "./data", "/var/lib/sluis", 1), "/var/lib/sluis"},
		{"invalid values", strings.Replace(minimal, "idle_timeout: 30m", "idle_timeout: soon\n  bogus: 1", 1), filepath.Join(dir, "data")},
		{"broken YAML", strings.Replace(minimal, "  self_signed: true", "\tself_signed: [true", 1), filepath.Join(dir, "data")},
		{"quoted, with a comment", strings.Replace(minimal, "data_dir: ./data", `data_dir: "/srv/sluis" # keys`, 1) + "\t", "/srv/sluis"},
		{"none", strings.Replace(minimal, "data_dir: ./data\n", "", 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "s.yaml")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := DataDirOf(path)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
