// Package slapdtest runs a real OpenLDAP server (slapd) on loopback with a
// generated directory, for tests and benchmark programs. It starts a
// process, so only they may import it (internal/deptest checks this).
package slapdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/sluis-gateway/sluis/internal/testserver"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Slapd is a real OpenLDAP server on loopback with a generated directory:
//
//   - dc=corp,dc=test, with ou=people, ou=groups and ou=service
//   - the service account cn=sluis,ou=service (password in BindPassword)
//   - carol (password carol-pass) in cn=vpn-staff and cn=admins
//   - erin (password erin-pass) in cn=nurses, which is a member of
//     cn=vpn-staff: a nested group
//   - dave (password dave-pass), disabled (employeeType: disabled), in
//     cn=vpn-staff
type Slapd struct {
	URL          string // ldap://127.0.0.1:PORT (StartTLS offered)
	LDAPSURL     string // ldaps://127.0.0.1:PORT
	CAFile       string // the CA of the server's certificate
	BaseDN       string
	BindDN       string
	BindPassword string
	PasswordFile string // BindPassword in a file, as sluis reads it
	cmd          *exec.Cmd
	exited       chan struct{} // closed when slapd has ended
}

// Start runs slapd for a test, or skips the test when it is not
// installed (and fails under SLUIS_REQUIRE_INTEGRATION=1).
func Start(t testing.TB) *Slapd {
	t.Helper()
	if _, err := exec.LookPath("/usr/sbin/slapd"); err != nil {
		testserver.Missing(t, "slapd", "slapd")
	}
	s, err := Run(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Run runs slapd with its files in dir (for benchmark programs); the
// caller stops it.
func Run(dir string) (*Slapd, error) {
	slapd, err := exec.LookPath("/usr/sbin/slapd")
	if err != nil {
		return nil, fmt.Errorf("slapd not found (install Debian's slapd package): %w", err)
	}
	slapadd, err := exec.LookPath("/usr/sbin/slapadd")
	if err != nil {
		return nil, fmt.Errorf("slapadd not found next to slapd")
	}
	os.MkdirAll(filepath.Join(dir, "db"), 0o700)
	caFile, certFile, keyFile, err := writeLDAPCerts(dir)
	if err != nil {
		return nil, err
	}
	s := &Slapd{CAFile: caFile, BaseDN: "dc=corp,dc=test", BindDN: "cn=sluis,ou=service,dc=corp,dc=test", BindPassword: "service-secret"}
	s.PasswordFile = filepath.Join(dir, "bind-password")
	os.WriteFile(s.PasswordFile, []byte(s.BindPassword+"\n"), 0o600)
	conf := fmt.Sprintf(slapdConf, dir, certFile, keyFile, caFile)
	cfg := filepath.Join(dir, "slapd.conf")
	os.WriteFile(cfg, []byte(conf), 0o600)
	ldif := filepath.Join(dir, "data.ldif")
	os.WriteFile(ldif, []byte(directoryLDIF), 0o600)
	if out, err := exec.Command(slapadd, "-f", cfg, "-l", ldif).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapadd: %v\n%s", err, out)
	}
	// Free ports are picked, then bound by slapd: another process may take
	// one in between, and slapd then exits. So: up to three tries.
	var last error
	for try := 0; try < 3; try++ {
		if err := s.start(slapd, cfg); err != nil {
			last = err
			continue
		}
		return s, nil
	}
	return nil, last
}

// start runs slapd on fresh ports and waits until both listeners answer.
func (s *Slapd) start(slapd, cfg string) error {
	port, sport := testserver.FreePort(), testserver.FreePort()
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", port)
	s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", sport)
	s.cmd = exec.Command(slapd, "-f", cfg, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "0")
	var logs strings.Builder
	s.cmd.Stderr = &logs
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	cmd := s.cmd
	go func() { cmd.Wait(); close(exited) }()
	up := func(p int) bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if up(port) && up(sport) {
			s.exited = exited
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("slapd exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("slapd not listening after 15s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile %[2]s
TLSCertificateKeyFile %[3]s
TLSCACertificateFile %[4]s
database mdb
maxsize 104857600
suffix "dc=corp,dc=test"
rootdn "cn=admin,dc=corp,dc=test"
rootpw admin-secret
directory %[1]s/db
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by dn.exact="cn=sluis,ou=service,dc=corp,dc=test" read
	by * none
`

// Stop ends slapd (the tests also use it to make the directory
// unreachable).
func (s *Slapd) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		if s.exited != nil {
			<-s.exited
		}
		s.cmd = nil
	}
}

// writeLDAPCerts makes a CA and a certificate for 127.0.0.1 signed by it.
func writeLDAPCerts(dir string) (ca, cert, key string, err error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test directory CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return ca, cert, key, nil
}

const directoryLDIF = `dn: dc=corp,dc=test
objectClass: dcObject
objectClass: organization
dc: corp
o: Corp

dn: ou=people,dc=corp,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=corp,dc=test
objectClass: organizationalUnit
ou: groups

dn: ou=service,dc=corp,dc=test
objectClass: organizationalUnit
ou: service

dn: cn=sluis,ou=service,dc=corp,dc=test
objectClass: person
cn: sluis
sn: service
userPassword: service-secret

dn: uid=carol,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Carol
mail: carol@corp.test
displayName: Carol de Vries
userPassword: carol-pass

dn: uid=erin,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: erin
cn: Erin
sn: Erin
userPassword: erin-pass

dn: uid=dave,ou=people,dc=corp,dc=test
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: Dave
employeeType: disabled
userPassword: dave-pass

dn: cn=nurses,ou=groups,dc=corp,dc=test
objectClass: groupOfNames
cn: nurses
member: uid=erin,ou=people,dc=corp,dc=test

dn: cn=vpn-staff,ou=groups,dc=corp,dc=test
objectClass: groupOfNames
cn: vpn-staff
member: uid=carol,ou=people,dc=corp,dc=test
member: uid=dave,ou=people,dc=corp,dc=test
member: cn=nurses,ou=groups,dc=corp,dc=test

dn: cn=admins,ou=groups,dc=corp,dc=test
objectClass: groupOfNames
cn: admins
member: uid=carol,ou=people,dc=corp,dc=test
`
