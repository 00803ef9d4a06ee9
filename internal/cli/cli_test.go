package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

type result struct {
	out, errOut string
	err         error
}

func runCLI(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	err := Run(context.Background(), append([]string{"sluis"}, args...), func(string) string { return "" }, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), err}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "sluis.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConfig = `listen: 127.0.0.1:0
portal: login.test
data_dir: ./data
tls: {self_signed: true}
apps:
  - name: wiki
    host: wiki.test
    upstream: http://127.0.0.1:9
    allow: {groups: [staff], mfa: true}
`

func TestConfigCheck(t *testing.T) {
	good := writeConfig(t, goodConfig)
	r := runCLI("", "config", "check", "--config", good)
	if r.err != nil || !strings.Contains(r.out, "ok (portal login.test, 1 app(s))") {
		t.Fatalf("good config: %v %q %q", r.err, r.out, r.errOut)
	}
	// Every problem is listed at once, each at its line and key: an
	// unknown key and a value that cannot be read do not hide the
	// validation problems, nor each other.
	bad := writeConfig(t, strings.NewReplacer("portal: login.test", "portal: login.test\nportl: x\nsession: {idle_timeout: soon}",
		"listen: 127.0.0.1:0", "listen: 127.0.0.1:0\npublic_url: https://login.test:70000").Replace(goodConfig)+
		"  - name: w2\n    host: BAD\n    upstream: http://127.0.0.1:99999\n")
	r = runCLI("", "--config", bad, "config", "check")
	for _, want := range []string{
		bad + ":4: portl: unknown key",
		bad + `:5: session.idle_timeout: "soon" is not a duration`,
		bad + `:2: public_url: "https://login.test:70000" has no valid port`,
		bad + `:14: apps[1].host: "BAD" is not a lower-case host name`,
		bad + `:15: apps[1].upstream: "http://127.0.0.1:99999": the port is not between 1 and 65535`,
	} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.errOut)
		}
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "5 problem(s)") {
		t.Errorf("error %v", r.err)
	}
	tab := writeConfig(t, strings.Replace(goodConfig, "    host: wiki.test", "\thost: wiki.test", 1))
	if r = runCLI("", "--config", tab, "config", "check"); !strings.Contains(r.errOut, tab+":7: tabs are not allowed for indentation") {
		t.Errorf("a tab: %v\n%s", r.err, r.errOut)
	}
	bad2 := writeConfig(t, goodConfig+"  - name: w2\n    host: BAD\n    upstream: ftp://x\n")
	r = runCLI("", "config", "check", "--config="+bad2)
	for _, want := range []string{bad2 + ":11: apps[1].host:", bad2 + ":12: apps[1].upstream:"} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr %q lacks %q", r.errOut, want)
		}
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "2 problem(s)") {
		t.Errorf("error %v", r.err)
	}
	r = runCLI("", "config", "check", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if r.err == nil || !strings.Contains(r.err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", r.err)
	}
}

func TestUserCommands(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	steps := []struct {
		args    []string
		stdin   string
		wantErr bool
		want    string
	}{
		{[]string{"user", "add", "anna", "--groups", "staff,ops", "--password-stdin"}, "long enough pw\n", false, "user anna added"},
		{[]string{"user", "add", "anna", "--password-stdin"}, "long enough pw\n", true, "exists already"},
		{[]string{"user", "add", "bert", "--password-stdin"}, "short\n", true, "at least 8"},
		{[]string{"user", "add", "bad,name", "--password-stdin"}, "long enough pw\n", true, "not a valid user name"},
		{[]string{"user", "add", "carl", "--groups", "a b", "--password-stdin"}, "long enough pw\n", true, "not a valid group name"},
		// --config after the command, and the password prompted (no terminal: one line).
		{[]string{"user", "add", "dora", "--config", cfg}, "another password\n", false, "user dora added"},
		{[]string{"user", "list"}, "", false, "anna  staff,ops  no    local   active"},
		{[]string{"user", "totp", "anna"}, "", false, "otpauth://totp/sluis:anna?"},
		{[]string{"user", "disable", "anna"}, "", false, "user anna disabled"},
		{[]string{"user", "list"}, "", false, "anna  staff,ops  yes   local   disabled"},
		{[]string{"user", "groups", "anna", "--groups", "staff"}, "", false, "groups of anna: staff"},
		{[]string{"user", "passwd", "anna", "--password-stdin"}, "a new password\n", false, "password of anna changed"},
		{[]string{"user", "passwd", "nobody", "--password-stdin"}, "a new password\n", true, "no user"},
		{[]string{"session", "revoke", "--user", "anna"}, "", false, "revoked 0 session(s) of user anna"},
		{[]string{"session", "revoke", "nope"}, "", true, "no session"},
		{[]string{"session", "list"}, "", false, "ID  USER"},
	}
	for _, s := range steps {
		args := s.args
		if !strings.Contains(strings.Join(args, " "), "--config") {
			args = append([]string{"--config", cfg}, args...)
		}
		r := runCLI(s.stdin, args...)
		if (r.err != nil) != s.wantErr {
			t.Fatalf("%v: err %v\n%s%s", s.args, r.err, r.out, r.errOut)
		}
		got := r.out + r.errOut
		if r.err != nil {
			got += r.err.Error()
		}
		if !strings.Contains(got, s.want) {
			t.Fatalf("%v: output %q lacks %q", s.args, got, s.want)
		}
		if strings.Contains(got, "long enough pw") || strings.Contains(got, "a new password") {
			t.Fatalf("%v printed the password", s.args)
		}
	}
	r := runCLI("", "--config", cfg, "audit", "--json")
	for _, typ := range []string{`"type":"admin.user.add"`, `"type":"admin.user.totp"`, `"type":"admin.user.disable"`, `"type":"admin.user.groups"`, `"type":"admin.user.passwd"`} {
		if !strings.Contains(r.out, typ) {
			t.Errorf("audit lacks %s:\n%s", typ, r.out)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"user"}, {"user", "frob", "x"}, {"session", "revoke"}, {"--config"}} {
		r := runCLI("", args...)
		if r.err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if r := runCLI("", "help"); r.err != nil || !strings.Contains(r.out, "user add NAME --groups") {
		t.Errorf("help: %v %q", r.err, r.out)
	}
}

func TestTakeConfigFlag(t *testing.T) {
	tests := []struct {
		in   []string
		path string
		rest string
	}{
		{[]string{"user", "list"}, "sluis.yaml", "user list"},
		{[]string{"--config", "a.yaml", "user", "list"}, "a.yaml", "user list"},
		{[]string{"user", "list", "--config", "b.yaml"}, "b.yaml", "user list"},
		{[]string{"user", "--config=c.yaml", "list"}, "c.yaml", "user list"},
		{[]string{"-config", "d.yaml", "serve"}, "d.yaml", "serve"},
	}
	for _, tt := range tests {
		path, rest, err := takeConfigFlag(tt.in)
		if err != nil || path != tt.path || strings.Join(rest, " ") != tt.rest {
			t.Errorf("%v: %q %q %v", tt.in, path, rest, err)
		}
	}
}

func TestShownEscapesWhatATerminalWouldObey(t *testing.T) {
	for in, want := range map[string]string{
		"anna":             "anna",
		"bad password":     "bad password",
		"x\ny":             `"x\ny"`,
		"\x1b]0;pwned\x07": `"\x1b]0;pwned\a"`,
		"tab\there":        `"tab\there"`,
		"caf\u00e9":        "caf\u00e9",
	} {
		if got := shown(in); got != want {
			t.Errorf("shown(%q) = %s, want %s", in, got, want)
		}
	}
}

// An audit row altered in the database is found, by number.
func TestAuditVerifyFindsAnAlteredRow(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	for _, name := range []string{"anna", "bert", "carl"} {
		if r := runCLI("long enough pw\n", "--config", cfg, "user", "add", name, "--password-stdin"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	r := runCLI("", "--config", cfg, "audit", "verify")
	if r.err != nil || !strings.HasPrefix(r.out, "intact, 3 events") {
		t.Fatalf("intact trail: %v %q", r.err, r.out)
	}
	db, err := sql.Open("sqlite", filepath.Join(filepath.Dir(cfg), "data", "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET detail = 'by nobody' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r = runCLI("", "--config", cfg, "audit", "verify")
	if r.err == nil || !strings.Contains(r.out, "BROKEN at event 2") {
		t.Fatalf("altered trail: %v %q", r.err, r.out)
	}
}

// Removing the newest events leaves an intact chain, but the signed
// checkpoint still names them.
func TestAuditVerifyFindsATruncatedTrail(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	for _, name := range []string{"anna", "bert"} {
		if r := runCLI("long enough pw\n", "--config", cfg, "user", "add", name, "--password-stdin"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if r := runCLI("", "--config", cfg, "audit", "verify"); r.err != nil || !strings.Contains(r.out, "last checkpoint at") || !strings.Contains(r.out, "(event 2); 0 events since") {
		t.Fatalf("intact trail: %v %q", r.err, r.out)
	}
	db, err := sql.Open("sqlite", filepath.Join(filepath.Dir(cfg), "data", "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_events WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := runCLI("", "--config", cfg, "audit", "verify")
	if r.err == nil || !strings.Contains(r.out, "BROKEN at event 2: signed by checkpoint") {
		t.Fatalf("truncated trail: %v %q", r.err, r.out)
	}
}

// An export kept elsewhere verifies later, and an edit to it is found.
func TestAuditExportVerifiesLater(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	for _, name := range []string{"anna", "bert", "carl"} {
		if r := runCLI("long enough pw\n", "--config", cfg, "user", "add", name, "--password-stdin"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	r := runCLI("", "--config", cfg, "audit", "export")
	if r.err != nil || strings.Count(r.out, `"kind":"event"`) != 3 || !strings.Contains(r.out, `"kind":"checkpoint"`) || !strings.Contains(r.out, `"prev_hash"`) {
		t.Fatalf("export: %v\n%s", r.err, r.out)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	os.WriteFile(file, []byte(r.out), 0o600)
	if r := runCLI("", "--config", cfg, "audit", "verify", "--file", file); r.err != nil || !strings.HasPrefix(r.out, "intact, 3 events") {
		t.Fatalf("verify export: %v %q", r.err, r.out)
	}
	os.WriteFile(file, []byte(strings.Replace(r.out, "carl", "mallory", 1)), 0o600)
	if r := runCLI("", "--config", cfg, "audit", "verify", "--file", file); r.err == nil || !strings.Contains(r.out, "BROKEN at event 3") {
		t.Fatalf("verify altered export: %v %q", r.err, r.out)
	}
	// A part of the trail verifies on its own.
	r = runCLI("", "--config", cfg, "audit", "export")
	lines := strings.SplitAfter(r.out, "\n")
	os.WriteFile(file, []byte(strings.Join(lines[1:], "")), 0o600)
	if r := runCLI("", "--config", cfg, "audit", "verify", "--file", file); r.err != nil || !strings.HasPrefix(r.out, "intact, 2 events") {
		t.Fatalf("verify a part: %v %q", r.err, r.out)
	}
}

// A data directory that lost part of itself is never started afresh
// without a word: serve and every command refuse, naming what is missing
// and what it means, until `sluis init --new`.
func TestIncompleteDataDirIsRefused(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	data := filepath.Join(filepath.Dir(cfg), "data")
	if r := runCLI("", "--config", cfg, "init"); r.err != nil || !strings.Contains(r.out, "created") {
		t.Fatalf("init: %v %q %q", r.err, r.out, r.errOut)
	}
	if r := runCLI("long enough pw\n", "--config", cfg, "user", "add", "alice", "--groups", "staff", "--password-stdin"); r.err != nil {
		t.Fatalf("user add: %v %s", r.err, r.errOut)
	}
	if r := runCLI("", "--config", cfg, "init"); r.err != nil || !strings.Contains(r.out, "complete; nothing to do") {
		t.Fatalf("init on a complete data_dir: %v %q", r.err, r.out)
	}
	for _, tt := range []struct {
		file, says string
		empty      bool
	}{
		{"sluis.db", "users and their second factors", false},
		{"sluis.db", "users and their second factors", true},
		{"seal.key", "TOTP secrets", false},
		{"audit-key.pem", "audit verify", false},
		{"assertion-key.pem", "identity assertions", false},
		{"ca.pem", "clients", false},
	} {
		path := filepath.Join(data, tt.file)
		keep, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if tt.empty {
			os.WriteFile(path, nil, 0o600)
		} else {
			os.Remove(path)
		}
		for _, args := range [][]string{{"serve"}, {"user", "list"}, {"audit", "verify"}, {"block", "list"}} {
			r := runCLI("", append([]string{"--config", cfg}, args...)...)
			if r.err == nil || !strings.Contains(r.err.Error(), "incomplete") || !strings.Contains(r.err.Error(), tt.file+": ") || !strings.Contains(r.err.Error(), tt.says) {
				t.Fatalf("%s with %s missing (empty %v): %v", args, tt.file, tt.empty, r.err)
			}
		}
		if err := os.WriteFile(path, keep, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A deliberate new start of what is missing.
	os.Remove(filepath.Join(data, "seal.key"))
	r := runCLI("", "--config", cfg, "init")
	if r.err == nil || !strings.Contains(r.err.Error(), "seal.key") {
		t.Fatalf("init without --new on an incomplete data_dir: %v", r.err)
	}
	r = runCLI("", "--config", cfg, "init", "--new")
	if r.err != nil || !strings.Contains(r.out, "created anew") || !strings.Contains(r.out, "seal.key: ") || strings.Contains(r.out, "sluis.db") {
		t.Fatalf("init --new: %v %q", r.err, r.out)
	}
	if r := runCLI("", "--config", cfg, "user", "list"); r.err != nil || !strings.Contains(r.out, "alice") {
		t.Fatalf("user list after init --new: %v %q", r.err, r.out)
	}
}

// The operator in the audit trail is the account of the real user id; the
// environment ($USER, and SUDO_USER unless root) names nobody on its own.
func TestOperatorName(t *testing.T) {
	accounts := map[string]string{"0": "root", "1000": "alice"}
	lookup := func(uid string) (string, error) {
		if n, ok := accounts[uid]; ok {
			return n, nil
		}
		return "", errors.New("unknown uid")
	}
	tests := []struct {
		name string
		uid  int
		env  map[string]string
		want string
	}{
		{"USER set to someone else", 1000, map[string]string{"USER": "ceo"}, "alice (uid 1000)"},
		{"root with USER=ceo", 0, map[string]string{"USER": "ceo"}, "root (uid 0)"},
		{"root through sudo", 0, map[string]string{"USER": "root", "SUDO_USER": "alice"}, "root (uid 0) via sudo from alice"},
		{"SUDO_USER without root", 1000, map[string]string{"SUDO_USER": "ceo"}, "alice (uid 1000)"},
		{"no account", 4242, map[string]string{"USER": "ceo"}, "uid 4242"},
		{"no user ids", -1, map[string]string{"USER": "ceo"}, "unknown user"},
		{"SUDO_USER with a newline", 0, map[string]string{"SUDO_USER": "a\nb"}, `root (uid 0) via sudo from "a\nb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := operatorName(tt.uid, lookup, func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// USER=ceo in the environment is not what the trail records.
func TestAuditNamesTheRealUserNotUSER(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	getenv := func(k string) string {
		if k == "USER" {
			return "ceo"
		}
		return ""
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"sluis", "--config", cfg, "user", "add", "anna", "--password-stdin"}, getenv, strings.NewReader("long enough pw\n"), &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	r := runCLI("", "--config", cfg, "audit", "--json")
	want := "by uid " + strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		want = "by " + u.Username + " (uid " + u.Uid + ")"
	}
	if !strings.Contains(r.out, want) {
		t.Fatalf("audit lacks %q:\n%s", want, r.out)
	}
	if u, _ := user.Current(); (u == nil || u.Username != "ceo") && strings.Contains(r.out, "by ceo") {
		t.Fatalf("audit names $USER:\n%s", r.out)
	}
}

// --since is how far back: a negative period is refused, not read as
// "nothing happened", and zero is the whole trail.
func TestAuditSince(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	if r := runCLI("long enough pw\n", "--config", cfg, "user", "add", "anna", "--password-stdin"); r.err != nil {
		t.Fatal(r.err)
	}
	tests := []struct {
		args    []string
		wantErr string
		events  int
	}{
		{[]string{"audit", "--json", "--since", "-1h"}, "--since -1h0m0s: give how far back", 0},
		{[]string{"audit", "export", "--since", "-24h"}, "--since -24h0m0s: give how far back", 0},
		{[]string{"audit", "--json", "--since", "0"}, "", 1},
		{[]string{"audit", "--json", "--since", "1h"}, "", 1},
		{[]string{"audit", "--json"}, "", 1},
		{[]string{"audit", "export", "--since", "0"}, "", 1},
		{[]string{"audit", "export", "--since", "1h"}, "", 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI("", append([]string{"--config", cfg}, tt.args...)...)
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", r.err, tt.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if n := strings.Count(r.out, "admin.user.add"); n != tt.events {
				t.Fatalf("%d events, want %d:\n%s", n, tt.events, r.out)
			}
		})
	}
}

// A block of every address, or of more than one network's worth, locks
// out staff too: it needs --force, and the trail says it was forced.
func TestBlockAddWideRangeNeedsForce(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	tests := []struct {
		cidr    string
		force   bool
		wantErr string
		want    string
	}{
		{"0.0.0.0/0", false, "0.0.0.0/0 covers every IPv4 address (2^32): it would lock out staff too", ""},
		{"::/0", false, "::/0 covers every IPv6 address (2^128): it would lock out staff too", ""},
		{"10.0.0.0/7", false, "10.0.0.0/7 covers 33554432 addresses", ""},
		{"2001:db8::/31", false, "2001:db8::/31 covers 2^97 addresses", ""},
		{"10.0.0.0/8", false, "", "blocked 10.0.0.0/8"},
		{"2001:db8::/32", false, "", "blocked 2001:db8::/32"},
		{"192.0.2.7", false, "", "blocked 192.0.2.7/32"},
		{"::ffff:0.0.0.0/96", false, "is not an address or a range", ""},
		{"0.0.0.0/0", true, "", "blocked 0.0.0.0/0"},
		{"::/0", true, "", "blocked ::/0"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.cidr, tt.force), func(t *testing.T) {
			args := []string{"--config", cfg, "block", "add", tt.cidr, "--reason", "test"}
			if tt.force {
				args = append(args, "--force")
			}
			r := runCLI("", args...)
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", r.err, tt.wantErr)
				}
				return
			}
			if r.err != nil || !strings.Contains(r.out, tt.want) {
				t.Fatalf("%v %q, want %q", r.err, r.out, tt.want)
			}
		})
	}
	list := runCLI("", "--config", cfg, "block", "list").out
	if strings.Contains(list, "10.0.0.0/7") || !strings.Contains(list, "0.0.0.0/0") {
		t.Fatalf("block list:\n%s", list)
	}
	r := runCLI("", "--config", cfg, "audit", "--json")
	if !strings.Contains(r.out, "0.0.0.0/0 until removed (forced: covers every IPv4 address (2^32)); test") || strings.Count(r.out, "forced") != 2 {
		t.Fatalf("audit:\n%s", r.out)
	}
}

// writePair writes a certificate and its key as PEM files in dir.
func writePair(t *testing.T, dir, certName, keyName string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "login.test"}, DNSNames: []string{"login.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

// `config check` fails where `serve` would, on what the configuration
// names on this machine; both say file:line: key.
func TestConfigCheckLooksAtTheFilesNamed(t *testing.T) {
	const ldap = "ldap:\n  urls: [ldaps://dc.test]\n  bind_dn: cn=x\n  bind_password_file: %s\n  ca_file: %s\n  user_base: dc=test\n  user_filter: (uid={user})\n"
	tests := []struct {
		name  string
		setup func(dir string) string // returns the configuration
		want  string                  // "" means ok
	}{
		{"data_dir is a file", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "data"), nil, 0o600)
			return goodConfig
		}, "sluis.yaml:3: data_dir: " + "%DIR%/data is not a directory"},
		{"data_dir under a file", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "f"), nil, 0o600)
			return strings.Replace(goodConfig, "./data", "./f/a/data", 1)
		}, "sluis.yaml:3: data_dir: %DIR%/f/a/data cannot be created: %DIR%/f is not a directory"},
		{"data_dir missing, parent writable", func(dir string) string {
			return strings.Replace(goodConfig, "./data", "./a/b/data", 1)
		}, ""},
		{"certificate missing", func(dir string) string {
			return strings.Replace(goodConfig, "{self_signed: true}", "\n  cert_file: cert.pem\n  key_file: key.pem", 1)
		}, "sluis.yaml:5: tls.cert_file: open %DIR%/cert.pem"},
		{"key missing", func(dir string) string {
			writePair(t, dir, "cert.pem", "other.pem")
			return strings.Replace(goodConfig, "{self_signed: true}", "\n  cert_file: cert.pem\n  key_file: key.pem", 1)
		}, "sluis.yaml:6: tls.key_file: open %DIR%/key.pem"},
		{"certificate and key not a pair", func(dir string) string {
			writePair(t, dir, "cert.pem", "k1.pem")
			writePair(t, dir, "c2.pem", "key.pem")
			return strings.Replace(goodConfig, "{self_signed: true}", "\n  cert_file: cert.pem\n  key_file: key.pem", 1)
		}, "sluis.yaml:5: tls.cert_file: tls: private key does not match public key"},
		{"certificate and key", func(dir string) string {
			writePair(t, dir, "cert.pem", "key.pem")
			return strings.Replace(goodConfig, "{self_signed: true}", "\n  cert_file: cert.pem\n  key_file: key.pem", 1)
		}, ""},
		{"ldap password file missing", func(dir string) string {
			writePair(t, dir, "ca.pem", "k.pem")
			return goodConfig + fmt.Sprintf(ldap, "pw", "ca.pem")
		}, "sluis.yaml:13: ldap.bind_password_file: open %DIR%/pw"},
		{"ldap CA not PEM", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "pw"), []byte("secret\n"), 0o600)
			os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not pem"), 0o600)
			return goodConfig + fmt.Sprintf(ldap, "pw", "ca.pem")
		}, "sluis.yaml:14: ldap.ca_file: %DIR%/ca.pem holds no PEM certificate"},
		{"ldap", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "pw"), []byte("secret\n"), 0o600)
			writePair(t, dir, "ca.pem", "k.pem")
			return goodConfig + fmt.Sprintf(ldap, "pw", "ca.pem")
		}, ""},
		{"oidc secret missing", func(dir string) string {
			return goodConfig + "oidc:\n  - name: idp\n    issuer: https://idp.test\n    client_id: x\n    client_secret_file: secret\n"
		}, "sluis.yaml:14: oidc[0].client_secret_file: open %DIR%/secret"},
		{"syslog CA missing", func(dir string) string {
			return goodConfig + "audit:\n  syslog:\n    address: logs.test:6514\n    tls: true\n    ca_file: ca.pem\n"
		}, "sluis.yaml:14: audit.syslog.ca_file: open %DIR%/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "sluis.yaml")
			os.WriteFile(cfg, []byte(tt.setup(dir)), 0o600)
			want := strings.ReplaceAll(tt.want, "%DIR%", dir)
			want = strings.Replace(want, "sluis.yaml:", cfg+":", 1)
			r := runCLI("", "--config", cfg, "config", "check")
			if want == "" {
				if r.err != nil {
					t.Fatalf("check: %v %s", r.err, r.errOut)
				}
				if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
					t.Fatal("config check created a folder")
				}
				return
			}
			if r.err == nil || !strings.Contains(r.errOut, want) {
				t.Fatalf("check: %v\n%s\nlacks %q", r.err, r.errOut, want)
			}
			// serve fails on the same, before it listens.
			r = runCLI("", "--config", cfg, "serve")
			if r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Fatalf("serve: %v, want %q", r.err, want)
			}
		})
	}
}

// Groups typed twice are one; more than a user may have is refused.
func TestUserGroupsFoldedAndLimited(t *testing.T) {
	cfg := writeConfig(t, goodConfig)
	var many []string
	for i := range 257 {
		many = append(many, fmt.Sprintf("g%d", i))
	}
	tests := []struct {
		args    []string
		wantErr string
		want    string
	}{
		{[]string{"user", "add", "anna", "--groups", "staff,ops,staff", "--password-stdin"}, "", "user anna added"},
		{[]string{"user", "list"}, "", "anna  staff,ops  "},
		{[]string{"user", "groups", "anna", "--groups", "ops,ops,Ops"}, "", "groups of anna: ops,Ops"},
		{[]string{"user", "groups", "anna", "--groups", strings.Join(many, ",")}, "--groups: 257 groups: at most 256", ""},
		{[]string{"user", "add", "bert", "--groups", strings.Join(many, ","), "--password-stdin"}, "--groups: 257 groups: at most 256", ""},
		{[]string{"user", "groups", "anna", "--groups", "a b"}, `"a b" is not a valid group name`, ""},
	}
	for _, tt := range tests {
		r := runCLI("long enough pw\n", append([]string{"--config", cfg}, tt.args...)...)
		if tt.wantErr != "" {
			if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Fatalf("%v: err %v, want %q", tt.args[:2], r.err, tt.wantErr)
			}
			continue
		}
		if r.err != nil || !strings.Contains(r.out, tt.want) {
			t.Fatalf("%v: %v %q, want %q", tt.args[:2], r.err, r.out, tt.want)
		}
	}
}
