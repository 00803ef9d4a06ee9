// Package keys creates and loads the key material that lives in the data
// directory: the local CA and listener certificate for self-signed TLS, the
// key that seals secrets at rest, and the key that signs identity assertions.
// Files holding private keys are written with mode 0600 and never served.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names inside the data directory.
const (
	CAFile         = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	SealKeyFile    = "seal.key"
	SigningKeyFile = "assertion-key.pem"
)

// writeNew writes data to path only if the file does not exist yet, so two
// processes starting at once cannot overwrite each other's key.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadOrCreate returns the contents of dir/name, creating it with gen first
// when it does not exist.
func loadOrCreate(dir, name string, mode os.FileMode, gen func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err == nil {
		return data, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	data, err = gen()
	if err != nil {
		return nil, err
	}
	if err := writeNew(path, data, mode); err != nil {
		if errors.Is(err, os.ErrExist) {
			return os.ReadFile(path) // another process won the race
		}
		return nil, err
	}
	return data, nil
}

// ---- sealing secrets at rest ----

// Sealer encrypts small secrets (TOTP seeds) with AES-256-GCM, so the
// database alone yields nothing usable.
type Sealer struct{ aead cipher.AEAD }

// LoadSealer loads (or creates) the sealing key in dir.
func LoadSealer(dir string) (*Sealer, error) {
	raw, err := loadOrCreate(dir, SealKeyFile, 0o600, func() ([]byte, error) {
		k := make([]byte, 32)
		rand.Read(k)
		return []byte(hex.EncodeToString(k) + "\n"), nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	k, err := hex.DecodeString(string(trimNL(raw)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("seal key %s: not 32 hex-encoded bytes", filepath.Join(dir, SealKeyFile))
	}
	return NewSealer(k)
}

// NewSealer returns a Sealer with the given 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Seal encrypts plaintext; label binds it to its purpose and owner (for
// example "totp:anna"), so a sealed value cannot be moved to another row.
func (s *Sealer) Seal(plaintext []byte, label string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, []byte(label))
}

// Open decrypts what Seal produced with the same label.
func (s *Sealer) Open(sealed []byte, label string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], []byte(label))
}

// ---- signing key for identity assertions ----

// loadOrCreateKey loads the PKCS#8 PEM private key in dir/name, creating it
// with gen first when it does not exist.
func loadOrCreateKey(dir, name string, gen func() (any, error)) (any, error) {
	raw, err := loadOrCreate(dir, name, 0o600, func() ([]byte, error) {
		k, err := gen()
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// loadOrCreateP256 is loadOrCreateKey for an ECDSA P-256 key.
func loadOrCreateP256(dir, name string) (*ecdsa.PrivateKey, error) {
	k, err := loadOrCreateKey(dir, name, func() (any, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", filepath.Join(dir, name))
	}
	return ek, nil
}

// LoadSigningKey loads (or creates) the ECDSA P-256 key that signs the
// X-Sluis-Assertion tokens.
func LoadSigningKey(dir string) (*ecdsa.PrivateKey, error) {
	k, err := loadOrCreateP256(dir, SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return k, nil
}

// KeyID returns a stable identifier of a public key for JWKS "kid".
func KeyID(k *ecdsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(k)
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

// ---- self-signed TLS ----

// SelfSigned loads (or creates) a local CA in dir and issues a fresh
// listener certificate from it for the given host names. The CA certificate
// is in dir/ca.pem for clients to trust; the leaf key lives only in memory.
func SelfSigned(dir string, hosts []string, now time.Time) (cert tls.Certificate, caPath string, err error) {
	caKey, err := loadOrCreateP256(dir, CAKeyFile)
	if err != nil {
		return cert, "", fmt.Errorf("CA key: %w", err)
	}
	caPath = filepath.Join(dir, CAFile)
	caPEM, err := loadOrCreate(dir, CAFile, 0o644, func() ([]byte, error) {
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "sluis local CA", Organization: []string{"sluis"}},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
	})
	if err != nil {
		return cert, "", fmt.Errorf("CA certificate: %w", err)
	}
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return cert, "", fmt.Errorf("%s: no PEM block", caPath)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return cert, "", fmt.Errorf("%s: %w", caPath, err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cert, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return cert, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: leafKey}, caPath, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// AuditKeyFile holds the Ed25519 key that signs audit checkpoints.
const AuditKeyFile = "audit-key.pem"

// LoadAuditKey loads (or creates) the Ed25519 key that signs checkpoints
// of the audit trail.
func LoadAuditKey(dir string) (ed25519.PrivateKey, error) {
	k, err := loadOrCreateKey(dir, AuditKeyFile, func() (any, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", filepath.Join(dir, AuditKeyFile))
	}
	return ek, nil
}
