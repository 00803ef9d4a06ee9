package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// lockedBuffer is a log that a reload may write while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The reloader puts a valid file in force with its certificate (issued
// for the new app's host), keeps the running configuration for a file
// with problems, logs each problem as config check prints it, and tells
// the hook every outcome.
func TestReloader(t *testing.T) {
	path := writeConfig(t, goodConfig)
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(c.DataDir, "sluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, err := keys.LoadSealer(c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.LoadSigningKey(c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewSigner("https://login.test", key, keys.KeyID(&key.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	gw, err := gateway.New(ctx, gateway.Options{Config: c, Store: st, Sealer: sealer, Signer: signer, PublicPort: 443, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	first, err := listenerCert(c)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{first}}
	var outcomes []bool
	r := &reloader{gw: gw, log: log, base: gateway.BaseURLFunc(443), cert: reloadableCert(conf), current: c,
		onReload: func(ok bool) { outcomes = append(outcomes, ok) }}
	served := func() *x509.Certificate {
		cert, err := conf.GetCertificate(&tls.ClientHelloInfo{ServerName: "login.test"})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	if names := served().DNSNames; slices.Contains(names, "docs.test") {
		t.Fatalf("the first certificate names %v", names)
	}

	added := goodConfig + "  - name: docs\n    host: docs.test\n    upstream: http://127.0.0.1:9\n    allow: {groups: [staff], mfa: true}\n"
	if err := os.WriteFile(path, []byte(added), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := r.reload(); !res.OK {
		t.Fatalf("a valid file: %v", res.Problems)
	}
	if gw.Config() == c || len(gw.Config().Apps) != 2 {
		t.Fatal("the new configuration is not in force")
	}
	if names := served().DNSNames; !slices.Contains(names, "docs.test") || !slices.Contains(names, "login.test") {
		t.Fatalf("the certificate after adding docs names %v", names)
	}

	broken := strings.Replace(added, "listen: 127.0.0.1:0", "listen: 127.0.0.1:8443", 1) + "    bogus: 1\n"
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	res := r.reload()
	want := path + ":14: apps[1].bogus: unknown key"
	if res.OK || !slices.Equal(res.Problems, []string{want}) {
		t.Fatalf("a broken file: %+v, want %q", res, want)
	}
	if !strings.Contains(logs.String(), "reload rejected: "+want) || !strings.Contains(logs.String(), "problems=1") {
		t.Fatalf("the rejection is not logged as config check prints it:\n%s", logs)
	}
	// Valid, but the listener changed: named, nothing applied.
	if err := os.WriteFile(path, []byte(strings.Replace(broken, "    bogus: 1\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	res = r.reload()
	want = path + ":1: listen: listen cannot change while running (restart sluis serve)"
	if res.OK || !slices.Equal(res.Problems, []string{want}) {
		t.Fatalf("the listener changed: %+v, want %q", res, want)
	}
	if len(gw.Config().Apps) != 2 || gw.Config().Listen != "127.0.0.1:0" {
		t.Fatal("a rejected file changed the configuration in force")
	}
	if !slices.Equal(outcomes, []bool{true, false, false}) {
		t.Fatalf("the hook was told %v", outcomes)
	}
}
