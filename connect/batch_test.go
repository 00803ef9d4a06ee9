package connect

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes to the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// The records of one Write of the TLS connection reach the socket in one
// write (at most maxBatch at a time), and the bytes arrive intact and in
// order at a real TLS server.
func TestBatchedTLSWritesRecordsTogether(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.test"}, DNSNames: []string{"gw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name      string
		size      int
		maxWrites int64
	}{
		{"one small record", 100, 1},
		{"two records", 16<<10 + 1, 1},
		{"a 256 KiB frame", 256 << 10, 1},
		{"more than one batch", 3 << 20, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan [32]byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				h := sha256.New()
				io.CopyN(h, c, int64(tc.size))
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				got <- sum
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			cc := &countingConn{Conn: raw}
			bc := &batchConn{Conn: cc}
			tc2 := tls.Client(bc, &tls.Config{RootCAs: pool, ServerName: "gw.test"})
			if err := tc2.Handshake(); err != nil {
				t.Fatal(err)
			}
			c := &batchedTLS{Conn: tc2, raw: bc}
			defer c.Close()
			p := make([]byte, tc.size)
			rand.Read(p)
			before := cc.writes.Load()
			if n, err := c.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			if w := cc.writes.Load() - before; w > tc.maxWrites {
				t.Errorf("%d bytes took %d socket writes, want at most %d", tc.size, w, tc.maxWrites)
			}
			if sum := <-got; !bytes.Equal(sum[:], sha256Sum(p)) {
				t.Error("the server received other bytes")
			}
		})
	}
}

func sha256Sum(p []byte) []byte {
	s := sha256.Sum256(p)
	return s[:]
}
