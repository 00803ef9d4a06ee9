package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

const withAdmin = minimal + `admin:
  listen: 127.0.0.1:9443
  host: admin.login.corp.test
  roles:
    viewer: [auditors]
    helpdesk: [servicedesk]
    operator: [ict-ops, staff]
  metrics:
    token_file: metrics.token
    networks: [10.9.0.0/24, 192.0.2.7]
`

func TestAdminBlock(t *testing.T) {
	c, err := Parse("/etc/sluis/sluis.yaml", []byte(withAdmin))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Admin
	if a == nil || a.Listen != "127.0.0.1:9443" || a.Host != "admin.login.corp.test" || a.AllowTOTP {
		t.Fatalf("admin: %+v", a)
	}
	if a.Metrics.TokenFile != "/etc/sluis/metrics.token" {
		t.Fatalf("token_file not taken from the configuration's folder: %q", a.Metrics.TokenFile)
	}
	if n := a.MetricsNetworks(); len(n) != 2 || n[0].String() != "10.9.0.0/24" || n[1].String() != "192.0.2.7/32" {
		t.Fatalf("networks: %v", n)
	}
	for groups, want := range map[string]string{"auditors": "viewer", "servicedesk,auditors": "helpdesk", "staff,auditors": "operator", "hr": "", "": ""} {
		if got := a.RoleOf(strings.Split(groups, ",")); got != want {
			t.Errorf("RoleOf(%s) = %q, want %q", groups, got, want)
		}
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings: %v", c.Warnings)
	}
	// Groups nobody is in are warned about, like an app rule's.
	unknown := c.UnknownGroups([]sluis.User{{Name: "anna", Groups: []string{"staff", "auditors"}}})
	if len(unknown) != 2 || !strings.Contains(unknown[0], ":21: admin.roles.helpdesk[0]") || !strings.Contains(unknown[1], ":22: admin.roles.operator[0]: no user is in the group \"ict-ops\"") {
		t.Fatalf("unknown groups: %q", unknown)
	}
	// No admin block: no admin listener.
	c, err = Parse("s.yaml", []byte(minimal))
	if err != nil || c.Admin != nil {
		t.Fatalf("without an admin block: %+v, %v", c.Admin, err)
	}
}

func TestAdminProblems(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"  listen: 127.0.0.1:9443\n", "", "sluis.yaml:16: admin.listen: required"},
		{"127.0.0.1:9443", "127.0.0.1:8443", "sluis.yaml:17: admin.listen: \"127.0.0.1:8443\" is the public listener's address"},
		{"127.0.0.1:9443", "0.0.0.0:8443", "sluis.yaml:17: admin.listen: \"0.0.0.0:8443\" is the public listener's address"},
		{"127.0.0.1:9443", "127.0.0.1:99999", "sluis.yaml:17: admin.listen: \"127.0.0.1:99999\" has no valid port"},
		{"127.0.0.1:9443", "9443", "sluis.yaml:17: admin.listen: \"9443\" is not host:port"},
		{"admin.login.corp.test", "admin.corp.test", "sluis.yaml:18: admin.host: \"admin.corp.test\" is not the portal's host name (login.corp.test) or a name under it"},
		{"admin.login.corp.test", "evillogin.corp.test", "sluis.yaml:18: admin.host: \"evillogin.corp.test\" is not the portal's host name"},
		{"admin.login.corp.test", "Admin.login.corp.test", "sluis.yaml:18: admin.host: \"Admin.login.corp.test\" is not a lower-case host name"},
		{"  host: admin.login.corp.test\n", "", "sluis.yaml:16: admin.host: required"},
		{"    viewer: [auditors]\n", "    viewers: [auditors]\n", "sluis.yaml:20: admin.roles.viewers: \"viewers\" is not a role: viewer, helpdesk or operator"},
		{"[servicedesk]", "[service desk]", "sluis.yaml:21: admin.roles.helpdesk[0]: \"service desk\" is not a valid group name"},
		{"192.0.2.7]", "192.0.2.7/16]", "sluis.yaml:25: admin.metrics.networks[1]: \"192.0.2.7/16\" has bits set past the prefix length"},
		{"192.0.2.7]", "0.0.0.0/0]", "sluis.yaml:25: admin.metrics.networks[1]: \"0.0.0.0/0\" lets every address read the metrics"},
		{"  host: admin.login.corp.test\n", "  host: admin.login.corp.test\n  cert_file: admin.pem\n", "sluis.yaml:16: admin: set both cert_file and key_file, or neither"},
		{"  roles:\n", "  role: x\n  roles:\n", "sluis.yaml:19: admin.role: unknown key"},
		{"admin:\n  listen: 127.0.0.1:9443\n  host: admin.login.corp.test\n  roles:\n    viewer: [auditors]\n    helpdesk: [servicedesk]\n    operator: [ict-ops, staff]\n  metrics:\n    token_file: metrics.token\n    networks: [10.9.0.0/24, 192.0.2.7]\n", "admin:\n", "sluis.yaml:16: admin: empty"},
	} {
		y := strings.Replace(withAdmin, tc.from, tc.to, 1)
		_, err := Parse("sluis.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q -> %q: got %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
	// An app's host is no admin host.
	y := strings.Replace(withAdmin, "host: wiki.corp.test", "host: admin.login.corp.test", 1)
	if _, err := Parse("sluis.yaml", []byte(y)); err == nil || !strings.Contains(err.Error(), "admin.host: \"admin.login.corp.test\" is an app's host") {
		t.Errorf("app host as admin host: %v", err)
	}
	// Valid, but probably not meant.
	for _, tc := range []struct{ from, to, want string }{
		{"127.0.0.1:9443", "0.0.0.0:9443", "sluis.yaml:17: admin.listen: \"0.0.0.0:9443\" listens on every address"},
		{"admin.login.corp.test", "login.corp.test", "sluis.yaml:18: admin.host: the portal's own name"},
		{"    viewer: [auditors]\n    helpdesk: [servicedesk]\n    operator: [ict-ops, staff]\n", "    viewer: []\n", "admin.roles: no group has a role"},
	} {
		c, err := Parse("sluis.yaml", []byte(strings.Replace(withAdmin, tc.from, tc.to, 1)))
		if err != nil {
			t.Errorf("%q -> %q: %v", tc.from, tc.to, err)
			continue
		}
		if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tc.want) {
			t.Errorf("%q -> %q: warnings %q, want %q", tc.from, tc.to, c.Warnings, tc.want)
		}
	}
}

// CheckFiles reads the metrics token and checks that the certificate the
// admin listener will use covers admin.host.
func TestAdminFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key := testCert(t, dir, "gw", "login.corp.test", "wiki.corp.test")
	adminCert, adminKey := testCert(t, dir, "admin", "admin.login.corp.test")
	base := strings.Replace(strings.Replace(withAdmin, "data_dir: ./data", "data_dir: "+filepath.Join(dir, "data"), 1),
		"tls:\n  self_signed: true\n", "tls:\n  cert_file: "+cert+"\n  key_file: "+key+"\n", 1)
	check := func(y string) error {
		t.Helper()
		c, err := Parse(filepath.Join(dir, "sluis.yaml"), []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c.CheckFiles()
	}
	write("metrics.token", "short\n")
	err := check(base)
	if err == nil || !strings.Contains(err.Error(), ":25: admin.metrics.token_file: "+filepath.Join(dir, "metrics.token")+": the token has 5 bytes; at least 32") {
		t.Fatalf("short token: %v", err)
	}
	if !strings.Contains(err.Error(), ":5: tls.cert_file: "+cert+" does not cover admin.host admin.login.corp.test") {
		t.Fatalf("gateway's certificate without the admin host: %v", err)
	}
	write("metrics.token", "0123456789abcdef0123456789abcdef\n")
	withCert := strings.Replace(base, "  host: admin.login.corp.test\n", "  host: admin.login.corp.test\n  cert_file: "+adminCert+"\n  key_file: "+adminKey+"\n", 1)
	if err := check(withCert); err != nil {
		t.Fatalf("the admin block's own certificate: %v", err)
	}
	wrongCert := strings.Replace(base, "  host: admin.login.corp.test\n", "  host: admin.login.corp.test\n  cert_file: "+cert+"\n  key_file: "+key+"\n", 1)
	if err := check(wrongCert); err == nil || !strings.Contains(err.Error(), ":20: admin.cert_file: "+cert+" does not cover admin.host") {
		t.Fatalf("an admin certificate for other names: %v", err)
	}
	mismatched := strings.Replace(base, "  host: admin.login.corp.test\n", "  host: admin.login.corp.test\n  cert_file: "+adminCert+"\n  key_file: "+key+"\n", 1)
	if err := check(mismatched); err == nil || !strings.Contains(err.Error(), "admin.cert_file: tls: private key does not match public key") {
		t.Fatalf("certificate and key of two pairs: %v", err)
	}
	// Self-signed: the admin listener gets a certificate of its own.
	selfSigned := strings.Replace(withAdmin, "data_dir: ./data", "data_dir: "+filepath.Join(dir, "data"), 1)
	if err := check(selfSigned); err != nil {
		t.Fatalf("self-signed: %v", err)
	}
}

func testCert(t *testing.T, dir, name string, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// The admin block is made once at start: a reload that changes it is
// refused at its line; one that adds an app beside it is taken.
func TestAdminNeedsARestart(t *testing.T) {
	running, err := Parse("s.yaml", []byte(withAdmin))
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range [][2]string{{"operator: [ict-ops, staff]", "operator: [ict-ops]"}, {"127.0.0.1:9443", "127.0.0.1:9444"}, {"admin.login.corp.test", "ops.login.corp.test"}} {
		next, err := Parse("s.yaml", []byte(strings.Replace(withAdmin, edit[0], edit[1], 1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := running.Replaceable(next); err == nil || err.Error() != "s.yaml:16: admin: admin cannot change while running (restart sluis serve)" {
			t.Errorf("%s -> %s: %v", edit[0], edit[1], err)
		}
	}
	next, err := Parse("s.yaml", []byte(strings.Replace(withAdmin, "apps:\n", "apps:\n  - name: docs\n    host: docs.corp.test\n    upstream: http://127.0.0.1:9002\n    allow:\n      users: [anna]\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := running.Replaceable(next); err != nil {
		t.Errorf("an app added beside the admin block: %v", err)
	}
	without, _ := Parse("s.yaml", []byte(minimal))
	if err := running.Replaceable(without); err == nil || !strings.Contains(err.Error(), "admin cannot change while running") {
		t.Errorf("the admin block removed: %v", err)
	}
}
