package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// An operator's own certificate (cert_file / key_file) is served as given.
func TestOwnCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "login.own.test"},
		DNSNames: []string{"login.own.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	// The data folder holds a ca.pem for testenv to read; here it is the
	// operator's certificate itself.
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(filepath.Join(dir, "data", "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	cfg := filepath.Join(dir, "sluis.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nportal: login.own.test\ndata_dir: data\ntls:\n  cert_file: cert.pem\n  key_file: key.pem\n"), 0o600)
	g := testenv.Run(t, filepath.Join(dir, "data"), "sluis", "serve", "--config", cfg)
	conn, err := tls.Dial("tcp", g.Addr(), g.TLSConfig("login.own.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 42 {
		t.Fatalf("served certificate serial %d, want the operator's (42)", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "ca-key.pem")); err == nil {
		t.Fatal("a local CA was created although the operator gave a certificate")
	}
}
