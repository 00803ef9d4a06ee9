package selfcheck

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A server that accepts anonymous and NULL suites (OpenSSL's s_server at
// security level 0) is caught by the raw ClientHello probe, which Go's own
// TLS client could never have offered those suites to.
func TestRawTLSFindsBrokenSuites(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("SLUIS_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("openssl not found, and SLUIS_REQUIRE_INTEGRATION=1 (install Debian's openssl package)")
		}
		t.Skip("openssl not found")
	}
	dir := t.TempDir()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(openssl, "s_server", "-accept", addr, "-cert", filepath.Join(dir, "cert.pem"), "-key", filepath.Join(dir, "key.pem"),
		"-cipher", "ALL:aNULL:eNULL:@SECLEVEL=0", "-no_tls1_3", "-www", "-quiet")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatal("s_server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &checker{o: Options{Timeout: 2 * time.Second}, addr: addr, server: "127.0.0.1", report: &Report{}}
	c.checkRawTLS(context.Background())
	got := map[string]Result{}
	for _, r := range c.report.Checks {
		got[r.Name] = r
	}
	r := got["no NULL, EXPORT, DES or anonymous suites"]
	if r.Status != Fail || !strings.Contains(r.Evidence, "TLS_DH_anon_WITH_AES_128_CBC_SHA") || !strings.Contains(r.Evidence, "TLS_RSA_WITH_NULL_SHA") {
		t.Errorf("broken suites: %+v", r)
	}
	if r := got["SSL 3.0 refused"]; r.Status != Pass {
		t.Errorf("SSL 3.0 (OpenSSL 3 has none): %+v", r)
	}
}
