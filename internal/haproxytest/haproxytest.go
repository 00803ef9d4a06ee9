// Package haproxytest runs a real HAProxy (Debian's haproxy) on loopback
// in front of a server, as the load balancer of a test: in HTTP mode
// (terminating TLS with a certificate of its own, adding X-Forwarded-For
// and speaking TLS to the server) or in TCP mode (passing TLS through,
// optionally with a PROXY protocol v2 header). It starts a process, so
// only tests and benchmark programs may import it (internal/deptest checks
// this).
package haproxytest

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

// Binary is where Debian installs HAProxy.
const Binary = "/usr/sbin/haproxy"

// Config is the balancer to run.
type Config struct {
	// Mode is "http" or "tcp".
	Mode string
	// Backend is the server's address, host:port; it speaks TLS.
	Backend string
	// Backends, when set, are several servers (gateway nodes) taken in
	// turn, each checked every 250 ms: a node that stops is out of the
	// rotation within about a second, and a connection that finds it
	// gone is sent to another (retries, redispatch). Backend is then
	// unused.
	Backends []string
	// Port is the port to listen on (127.0.0.1); zero picks a free one.
	// A test that must know the balancer's port before it starts the
	// server behind it (its public URL) picks one with FreePort.
	Port int
	// Hosts are the names of the certificate HAProxy presents in HTTP
	// mode (a CA of its own signs it: CAFile).
	Hosts []string
	// BackendCA is the CA file HAProxy verifies the server with in HTTP
	// mode, against BackendName; empty means no verification.
	BackendCA, BackendName string
	// BackendHTTP2 makes HAProxy speak HTTP/2 to the server in HTTP mode
	// (alpn h2); otherwise HTTP/1.1, where a streamed request body
	// arrives chunked.
	BackendHTTP2 bool
	// SendProxy makes HAProxy send a PROXY protocol v2 header on each
	// connection to the server (TCP mode).
	SendProxy bool
	// Source is the address HAProxy connects to the server from (any of
	// 127.0.0.0/8), so that the balancer's address differs from its
	// clients'; empty lets the system choose.
	Source string
	// Check, if set, is the path of an HTTP health check that HAProxy
	// sends to each server (Backend, or each of Backends) over TLS (not
	// verified), with CheckHost as Host, every CheckEvery (default 2s); a server that fails two in a
	// row is taken out, one that passes one is put back. HAProxy logs
	// each change ("Server sluis/s1 is DOWN").
	Check, CheckHost string
	CheckEvery       time.Duration
}

// HAProxy is a running HAProxy.
type HAProxy struct {
	Addr   string // 127.0.0.1:PORT
	Port   int
	CAFile string // the CA of the certificate presented in HTTP mode
	CA     *x509.CertPool
	Config string // the configuration it runs

	cmd    *exec.Cmd
	exited chan struct{}
	logs   *testserver.Output
}

// Start runs HAProxy for a test and stops it when the test ends. It skips
// the test when HAProxy is not installed, and fails it instead under
// SLUIS_REQUIRE_INTEGRATION=1.
func Start(t testing.TB, cfg Config) *HAProxy {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		testserver.Missing(t, "haproxy", "haproxy")
	}
	h, err := Run(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// Run runs HAProxy with its files in dir (for benchmark programs); the
// caller stops it.
func Run(dir string, cfg Config) (*HAProxy, error) {
	h := &HAProxy{}
	var front string
	switch cfg.Mode {
	case "http":
		var err error
		h.CAFile, front, err = writeCerts(dir, cfg.Hosts)
		if err != nil {
			return nil, err
		}
		pemCA, _ := os.ReadFile(h.CAFile)
		h.CA = x509.NewCertPool()
		h.CA.AppendCertsFromPEM(pemCA)
	case "tcp":
	default:
		return nil, fmt.Errorf("haproxytest: mode %q: want http or tcp", cfg.Mode)
	}
	// A free port is picked, then bound by HAProxy: another process may
	// take it in between. So: up to three tries, unless the port was
	// given.
	var last error
	for try := 0; try < 3; try++ {
		port := cfg.Port
		if port == 0 {
			port = FreePort()
		}
		h.Port, h.Addr = port, fmt.Sprintf("127.0.0.1:%d", port)
		h.Config = configText(cfg, h.Addr, front)
		file := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(file, []byte(h.Config), 0o600); err != nil {
			return nil, err
		}
		if last = h.start(file); last == nil {
			return h, nil
		}
		if cfg.Port != 0 {
			break
		}
	}
	return nil, last
}

// configText is HAProxy's configuration for cfg, listening on addr, with
// the front certificate (HTTP mode) in front.
func configText(cfg Config, addr, front string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    maxconn 1024\n\ndefaults\n    mode %s\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n", cfg.Mode)
	if cfg.Mode == "http" {
		fmt.Fprintf(&b, "frontend front\n    bind %s ssl crt %s alpn h2,http/1.1\n    option forwardfor\n    default_backend sluis\n\n", addr, front)
		verify := "verify none"
		if cfg.BackendCA != "" {
			verify = fmt.Sprintf("verify required ca-file %s verifyhost %s", cfg.BackendCA, cfg.BackendName)
		}
		if cfg.BackendHTTP2 {
			verify += " alpn h2"
		}
		fmt.Fprintf(&b, "backend sluis\n%s", checkText(cfg))
		servers := cfg.Backends
		if len(servers) == 0 {
			servers = []string{cfg.Backend}
		}
		for i, backend := range servers {
			fmt.Fprintf(&b, "    server s%d %s ssl %s%s%s\n", i+1, backend, verify, source(cfg), serverCheck(cfg))
		}
		return b.String()
	}
	fmt.Fprintf(&b, "frontend front\n    bind %s\n    default_backend sluis\n\n", addr)
	proxy := ""
	if cfg.SendProxy {
		proxy = " send-proxy-v2"
	}
	if len(cfg.Backends) > 0 {
		b.WriteString("backend sluis\n    balance roundrobin\n    option redispatch\n    retries 3\n")
		b.WriteString(checkText(cfg))
		for i, be := range cfg.Backends {
			fmt.Fprintf(&b, "    server s%d %s%s%s%s\n", i+1, be, proxy, serverCheck(cfg), source(cfg))
		}
		return b.String()
	}
	fmt.Fprintf(&b, "backend sluis\n%s    server s1 %s%s%s%s\n", checkText(cfg), cfg.Backend, proxy, serverCheck(cfg), source(cfg))
	return b.String()
}

// checkText is the backend's health check, if any.
func checkText(cfg Config) string {
	if cfg.Check == "" {
		return ""
	}
	return fmt.Sprintf("    option httpchk\n    http-check send meth GET uri %s ver HTTP/1.1 hdr Host %s\n    http-check expect status 200\n", cfg.Check, cfg.CheckHost)
}

// serverCheck is what a server line needs for the health check: with
// Check, HTTP over TLS; else, with several Backends, whether the server
// accepts connections.
func serverCheck(cfg Config) string {
	proxy := ""
	if cfg.SendProxy {
		proxy = " check-send-proxy"
	}
	if cfg.Check == "" {
		if len(cfg.Backends) > 0 {
			return " check inter 250ms fall 1 rise 1" + proxy
		}
		return ""
	}
	every := cfg.CheckEvery
	if every == 0 {
		every = 2 * time.Second
	}
	return fmt.Sprintf(" check check-ssl verify none inter %dms fall 2 rise 1%s", every.Milliseconds(), proxy)
}

func source(cfg Config) string {
	if cfg.Source == "" {
		return ""
	}
	return " source " + cfg.Source
}

// start runs HAProxy on file and waits until it listens.
func (h *HAProxy) start(file string) error {
	// -db: in the foreground, logging to stderr.
	h.cmd = exec.Command(Binary, "-db", "-f", file)
	h.logs = &testserver.Output{}
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	if err := h.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	cmd := h.cmd
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			h.cmd = nil
			return fmt.Errorf("haproxy exited:\n%s\nconfiguration:\n%s", h.logs, h.Config)
		default:
		}
		if c, err := net.Dial("tcp", h.Addr); err == nil {
			c.Close()
			h.exited = exited
			return nil
		}
		if time.Now().After(deadline) {
			h.exited = exited
			h.Stop()
			return fmt.Errorf("haproxy not listening after 15s:\n%s", h.logs)
		}
		time.Sleep(20 * time.Millisecond) // waiting for another process
	}
}

// Logs returns what HAProxy printed so far.
func (h *HAProxy) Logs() string { return h.logs.String() }

// Stop ends HAProxy.
func (h *HAProxy) Stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		h.cmd.Process.Kill()
		if h.exited != nil {
			<-h.exited
		}
		h.cmd = nil
	}
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort() int { return testserver.FreePort() }

// writeCerts writes a CA and, signed by it, a certificate for hosts with
// its key in one PEM file (as HAProxy's crt takes it).
func writeCerts(dir string, hosts []string) (ca, front string, err error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test balancer CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test balancer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: hosts,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	ca, front = filepath.Join(dir, "balancer-ca.pem"), filepath.Join(dir, "front.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return "", "", err
	}
	pair := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
	if err := os.WriteFile(front, pair, 0o600); err != nil {
		return "", "", err
	}
	return ca, front, nil
}
