package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluis-gateway/sluis/admin"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/connlimit"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/keys"
)

// adminDeps are what the admin listener takes from the running gateway.
type adminDeps struct {
	// gw are the gateway's options: its store, recorder, keys, directory
	// and revision, and Open, attached to the gateway.
	gw gateway.Options
	// cert is the public listener's certificate (see reloadableCert), the
	// admin listener's too when admin: names none and the gateway's is
	// not self-signed: a reload that renews it renews both.
	cert *atomic.Pointer[tls.Certificate]
	// metrics, if set, answers /metrics on the admin listener, to the
	// clients admin.metrics lets in.
	metrics http.Handler
}

// adminShutdownGrace is how long requests under way on the admin listener
// get to finish when the gateway stops.
const adminShutdownGrace = 5 * time.Second

// adminListener is a running admin listener (nil: none configured).
type adminListener struct {
	console *admin.Server
	srv     *http.Server
	done    chan struct{}
	// own is the admin listener's own certificate (admin.cert_file, or
	// self-signed for admin.host); nil when it serves the gateway's.
	own *atomic.Pointer[tls.Certificate]
}

// serveAdmin starts the admin listener of c.Admin, apart from the public
// one (its own socket, TLS configuration, server and handler: no route is
// shared). Without an admin block it starts nothing and returns nil.
func (e *env) serveAdmin(ctx context.Context, c *config.Config, d adminDeps) (*adminListener, error) {
	ac := c.Admin
	if ac == nil {
		return nil, nil
	}
	gw, log := d.gw, d.gw.Log
	a := &adminListener{done: make(chan struct{})}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: aeadSuites, NextProtos: []string{"h2", "http/1.1"}}
	if ac.CertFile != "" || c.TLS.SelfSigned {
		cert, err := adminCert(c)
		if err != nil {
			return nil, err
		}
		a.own = &atomic.Pointer[tls.Certificate]{}
		a.own.Store(&cert)
		tlsConf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.own.Load(), nil }
	} else {
		tlsConf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return d.cert.Load(), nil }
	}
	token, err := ac.ReadMetricsToken()
	if err != nil {
		return nil, err
	}
	auditKey, err := keys.LoadAuditKey(c.DataDir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	o := admin.Options{Host: ac.Host, Port: port, Portal: c.Portal, PortalURL: gateway.BaseURLFunc(gw.PublicPort)(c.Portal),
		Roles:     func(groups []string) admin.Role { return admin.Roles[ac.RoleOf(groups)] },
		AllowTOTP: ac.AllowTOTP, Store: gw.Store, Audit: gw.Audit, Sealer: gw.Sealer, Revision: gw.Revision, Counters: gw.Counters,
		Actions:  &admin.Actions{Store: gw.Store, Config: c, Recorder: gw.Audit},
		AuditKey: auditKey.Public().(ed25519.PublicKey), Open: gw.Open, Zone: c.Zone(),
		Metrics: d.metrics, MetricsToken: token, MetricsNetworks: ac.MetricsNetworks(), Log: log}
	if gw.Directory != nil {
		o.Directory = gw.Directory
	}
	if a.console, err = admin.New(ctx, o); err != nil {
		ln.Close()
		return nil, err
	}
	conns := &connlimit.Listener{Listener: ln, Max: admin.MaxConns, MaxPerSource: admin.MaxConnsPerSource, HeaderTimeout: admin.HeaderTimeout, Log: log}
	a.srv = a.console.HTTPServer(tlsConf, conns.ErrorLog(log))
	a.srv.Handler, a.srv.ConnContext = conns.Handler(a.srv.Handler), conns.ConnContext
	go func() {
		defer close(a.done)
		if err := a.srv.ServeTLS(conns, "", ""); err != nil && err != http.ErrServerClosed {
			log.Error("sluis: the admin listener stopped", "err", err)
		}
	}()
	fmt.Fprintf(e.stdout, "sluis: admin console at %s/\n", a.console.Origin())
	fmt.Fprintf(e.stdout, "sluis: admin listening on %s\n", net.JoinHostPort(ln.Addr().(*net.TCPAddr).IP.String(), strconv.Itoa(port)))
	return a, nil
}

// adminCert is the admin listener's own certificate: admin.cert_file, or,
// with tls.self_signed, one for admin.host alone from the local CA (so
// the public listener's never names the admin host).
func adminCert(c *config.Config) (tls.Certificate, error) {
	ac := c.Admin
	if ac.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(ac.CertFile, ac.KeyFile)
		if err != nil {
			return cert, fmt.Errorf("admin: %w", err)
		}
		return cert, nil
	}
	cert, _, err := keys.SelfSigned(c.DataDir, []string{ac.Host}, time.Now())
	if err != nil {
		return cert, fmt.Errorf("admin: self-signed TLS: %w", err)
	}
	return cert, nil
}

// reloaded puts a reloaded configuration in force on the console: its
// apps and break-glass staff for the actions, and its certificate files
// as they are now (a renewed certificate). The admin block itself cannot
// change while running (config's fixed settings).
func (a *adminListener) reloaded(c *config.Config, gw gateway.Options) {
	if a == nil || c.Admin == nil {
		return
	}
	a.console.SetActions(&admin.Actions{Store: gw.Store, Config: c, Recorder: gw.Audit})
	if a.own != nil && c.Admin.CertFile != "" {
		if cert, err := adminCert(c); err == nil {
			a.own.Store(&cert)
		} else {
			gw.Log.Error("sluis: reload: the admin certificate stays", "err", err)
		}
	}
}

// followReloads returns the reloader's hook (chained before next, the
// one it had) that tells the console of every configuration put in
// force. It runs under the reloader's lock, so r.current is the new one.
func (a *adminListener) followReloads(r *reloader, gw gateway.Options, next func(ok bool)) func(ok bool) {
	if a == nil {
		return next
	}
	return func(ok bool) {
		if ok {
			a.reloaded(r.current, gw)
			// The directory the reload built (nil when ldap: is gone); a
			// nil *directory.Directory must not become a non-nil
			// interface.
			if r.dir != nil {
				a.console.SetDirectory(r.dir)
			} else {
				a.console.SetDirectory(nil)
			}
		}
		if next != nil {
			next(ok)
		}
	}
}

// stop stops the admin listener: requests under way get
// adminShutdownGrace.
func (a *adminListener) stop() {
	if a == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), adminShutdownGrace)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		a.srv.Close()
	}
	<-a.done
}
