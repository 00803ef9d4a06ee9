package keys_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/keys"
)

func newSealer(t *testing.T, fill byte) *keys.Sealer {
	t.Helper()
	s, err := keys.NewSealer(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := newSealer(t, 1)
	for _, plain := range [][]byte{[]byte("JBSWY3DPEHPK3PXP"), {}, bytes.Repeat([]byte{0}, 1000)} {
		sealed := s.Seal(plain, "totp:anna")
		if len(plain) > 4 && bytes.Contains(sealed, plain) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := s.Open(sealed, "totp:anna")
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Open = %q, %v; want %q", got, err, plain)
		}
	}
	// A fresh nonce each time: the same secret seals differently.
	if bytes.Equal(s.Seal([]byte("x"), "l"), s.Seal([]byte("x"), "l")) {
		t.Error("two seals of the same value are equal")
	}
}

func TestSealerOpenRefuses(t *testing.T) {
	s := newSealer(t, 1)
	sealed := s.Seal([]byte("JBSWY3DPEHPK3PXP"), "totp:anna")
	tests := []struct {
		name   string
		opener *keys.Sealer
		sealed []byte
		label  string
	}{
		{"another label", s, sealed, "totp:bert"},
		{"empty label", s, sealed, ""},
		{"another key", newSealer(t, 2), sealed, "totp:anna"},
		{"empty input", s, nil, "totp:anna"},
		{"shorter than a nonce", s, sealed[:11], "totp:anna"},
		{"nonce only", s, sealed[:12], "totp:anna"},
		{"last byte cut", s, sealed[:len(sealed)-1], "totp:anna"},
		{"byte appended", s, append(bytes.Clone(sealed), 0), "totp:anna"},
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		tests = append(tests, struct {
			name   string
			opener *keys.Sealer
			sealed []byte
			label  string
		}{"flipped byte", s, b, "totp:anna"})
	}
	for i, tt := range tests {
		got, err := tt.opener.Open(tt.sealed, tt.label)
		if err == nil || got != nil {
			t.Errorf("%s (%d): Open = %q, %v; want an error", tt.name, i, got, err)
		}
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func TestLoadSealer(t *testing.T) {
	dir := t.TempDir()
	s1, err := keys.LoadSealer(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkMode(t, filepath.Join(dir, keys.SealKeyFile), 0o600)
	s2, err := keys.LoadSealer(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The second load finds the same key: what one sealed, the other opens.
	got, err := s2.Open(s1.Seal([]byte("seed"), "totp:anna"), "totp:anna")
	if err != nil || string(got) != "seed" {
		t.Fatalf("reloaded sealer: %q, %v", got, err)
	}
	// A different directory has a different key.
	s3, err := keys.LoadSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Open(s1.Seal([]byte("seed"), "l"), "l"); err == nil {
		t.Error("a new data directory opened another's sealed value")
	}
}

func TestLoadSealerRefusesBadKeyFile(t *testing.T) {
	for _, content := range []string{"", "zz\n", "abcd\n", string(bytes.Repeat([]byte("a"), 66)) + "\n"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, keys.SealKeyFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.LoadSealer(dir); err == nil {
			t.Errorf("seal key %q accepted", content)
		}
	}
}

func TestLoadSigningKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := keys.LoadSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkMode(t, filepath.Join(dir, keys.SigningKeyFile), 0o600)
	k2, err := keys.LoadSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned another key")
	}
	if keys.KeyID(&k1.PublicKey) != keys.KeyID(&k2.PublicKey) {
		t.Error("key ID not stable")
	}
	k3, err := keys.LoadSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if k1.Equal(k3) || keys.KeyID(&k1.PublicKey) == keys.KeyID(&k3.PublicKey) {
		t.Error("two data directories share a signing key or key ID")
	}
}

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	hosts := []string{"login.test", "wiki.test", "grafana.test"}
	cert, caPath, err := keys.SelfSigned(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if caPath != filepath.Join(dir, keys.CAFile) {
		t.Errorf("CA path %q", caPath)
	}
	checkMode(t, filepath.Join(dir, keys.CAKeyFile), 0o600)
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(caPEM, []byte("PRIVATE KEY")) {
		t.Fatal("ca.pem holds a private key")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}

	verify := func(cert [][]byte, host string) error {
		leaf, err := x509.ParseCertificate(cert[0])
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now})
		return err
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"login.test", true},
		{"wiki.test", true},
		{"grafana.test", true},
		{"evil.test", false},
		{"sub.wiki.test", false},
		{"test", false},
	}
	for _, tt := range tests {
		if err := verify(cert.Certificate, tt.host); (err == nil) != tt.ok {
			t.Errorf("verify for %q: %v, want ok=%v", tt.host, err, tt.ok)
		}
	}

	// The certificate's key is the one handed back.
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	priv, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(leaf.PublicKey) {
		t.Error("private key does not match the leaf certificate")
	}

	// A restart keeps the CA that clients were told to trust.
	cert2, _, err := keys.SelfSigned(dir, []string{"login.test"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	caPEM2, _ := os.ReadFile(caPath)
	if !bytes.Equal(caPEM, caPEM2) {
		t.Error("ca.pem changed on the second start")
	}
	if err := verify(cert2.Certificate, "login.test"); err != nil {
		t.Errorf("second leaf does not verify against the first CA: %v", err)
	}
	if b, _ := pem.Decode(caPEM); b == nil || b.Type != "CERTIFICATE" {
		t.Errorf("ca.pem block %v", b)
	}
}
