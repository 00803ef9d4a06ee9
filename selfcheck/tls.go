package selfcheck

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"
)

// checkTLS checks the certificate, the protocol versions and the TLS 1.2
// cipher suites offered. It reports whether a TLS connection could be made
// at all.
func (c *checker) checkTLS(ctx context.Context) bool {
	// The certificate, as a client that verifies it sees it.
	if c.o.Insecure {
		c.add("tls", "certificate", Skip, "not verified (--insecure)")
	} else {
		conn, err := c.dial(ctx, c.tlsConfig(true))
		if err != nil {
			c.add("tls", "certificate", Fail, fmt.Sprintf("%s: %v (use --ca FILE for a private CA)", c.addr, err))
		} else {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			left := time.Until(leaf.NotAfter)
			switch {
			case left < 14*24*time.Hour:
				c.add("tls", "certificate", Warn, fmt.Sprintf("trusted, but expires %s", leaf.NotAfter.UTC().Format(time.DateOnly)))
			default:
				c.add("tls", "certificate", Pass, fmt.Sprintf("trusted for %s, expires %s", c.server, leaf.NotAfter.UTC().Format(time.DateOnly)))
			}
		}
	}

	// Versions: only what the server offers matters here, so these
	// handshakes do not verify the certificate.
	offered := map[uint16]error{}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		conf := c.tlsConfig(false)
		conf.MinVersion, conf.MaxVersion = v, v
		conn, err := c.dial(ctx, conf)
		if err == nil {
			conn.Close()
		}
		offered[v] = err
	}
	any := false
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		name := tls.VersionName(v)
		if offered[v] == nil {
			any = true
			c.add("tls", name+" refused", Fail, name+" handshake succeeded; TLS 1.0 and 1.1 are broken and must be off")
		} else {
			c.add("tls", name+" refused", Pass, "handshake failed: "+shortErr(offered[v]))
		}
	}
	if offered[tls.VersionTLS12] == nil {
		any = true
		c.add("tls", "TLS 1.2 offered", Pass, "handshake succeeded")
	} else {
		c.add("tls", "TLS 1.2 offered", Pass, "refused (TLS 1.3 only): "+shortErr(offered[tls.VersionTLS12]))
	}
	if offered[tls.VersionTLS13] == nil {
		any = true
		c.add("tls", "TLS 1.3 offered", Pass, "handshake succeeded")
	} else {
		c.add("tls", "TLS 1.3 offered", Warn, "refused: "+shortErr(offered[tls.VersionTLS13]))
	}
	if !any {
		c.add("tls", "any TLS version", Fail, fmt.Sprintf("no handshake succeeded with %s: %v", c.addr, offered[tls.VersionTLS12]))
		return false
	}

	// Cipher suites below TLS 1.3 (TLS 1.3's are all sound): each one
	// alone, so the answer says exactly which the server accepts.
	if offered[tls.VersionTLS12] != nil && offered[tls.VersionTLS11] != nil && offered[tls.VersionTLS10] != nil {
		c.add("tls", "cipher suites", Pass, "TLS 1.3 only; its suites are all sound")
		c.checkRawTLS(ctx)
		return true
	}
	defer c.checkRawTLS(ctx)
	var broken, cbc, good []string
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !below13(s) {
			continue
		}
		conf := c.tlsConfig(false)
		conf.MinVersion, conf.MaxVersion, conf.CipherSuites = tls.VersionTLS10, tls.VersionTLS12, []uint16{s.ID}
		conn, err := c.dial(ctx, conf)
		if err != nil {
			continue
		}
		conn.Close()
		switch suiteStrength(s.Name) {
		case Fail:
			broken = append(broken, s.Name)
		case Warn:
			cbc = append(cbc, s.Name)
		default:
			good = append(good, s.Name)
		}
	}
	switch {
	case len(broken) > 0:
		c.add("tls", "no broken cipher suites", Fail, "accepted without forward secrecy or with a broken cipher: "+strings.Join(broken, ", "))
	default:
		c.add("tls", "no broken cipher suites", Pass, "none of RSA key exchange, RC4 or 3DES accepted")
	}
	switch {
	case len(cbc) > 0:
		c.add("tls", "only AEAD cipher suites", Warn, "CBC suites accepted (padding-oracle prone): "+strings.Join(cbc, ", "))
	default:
		c.add("tls", "only AEAD cipher suites", Pass, "accepted: "+strings.Join(good, ", "))
	}
	return true
}

func below13(s *tls.CipherSuite) bool {
	for _, v := range s.SupportedVersions {
		if v < tls.VersionTLS13 {
			return true
		}
	}
	return false
}

// suiteStrength judges a TLS 1.0–1.2 suite by name: RSA key exchange (no
// forward secrecy), RC4 and 3DES are broken; CBC is weak; ECDHE with an
// AEAD cipher is sound.
func suiteStrength(name string) Status {
	switch {
	case strings.HasPrefix(name, "TLS_RSA_"), strings.Contains(name, "RC4"), strings.Contains(name, "3DES"), strings.Contains(name, "NULL"), strings.Contains(name, "EXPORT"):
		return Fail
	case strings.Contains(name, "_CBC_"):
		return Warn
	}
	return Pass
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "tls: "); i >= 0 {
		return s[i:]
	}
	return s
}
