package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
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
	// cert is the public listener's certificate, the admin listener's
	// when admin: names none and the gateway's is not self-signed.
	cert tls.Certificate
	// metrics, if set, answers /metrics on the admin listener.
	metrics http.Handler
}

// adminShutdownGrace is how long requests under way on the admin listener
// get to finish when the gateway stops.
const adminShutdownGrace = 5 * time.Second

// serveAdmin starts the admin listener of c.Admin, apart from the public
// one (its own socket, TLS configuration, server and handler: no route is
// shared), and returns the function that stops it. Without an admin block
// it starts nothing.
func (e *env) serveAdmin(ctx context.Context, c *config.Config, d adminDeps) (stop func(), err error) {
	ac := c.Admin
	if ac == nil {
		return func() {}, nil
	}
	log := d.gw.Log
	cert := d.cert
	switch {
	case ac.CertFile != "":
		if cert, err = tls.LoadX509KeyPair(ac.CertFile, ac.KeyFile); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
	case c.TLS.SelfSigned:
		// A certificate of its own, from the same local CA: the public
		// listener's never names the admin host.
		if cert, _, err = keys.SelfSigned(c.DataDir, []string{ac.Host}, time.Now()); err != nil {
			return nil, fmt.Errorf("admin: self-signed TLS: %w", err)
		}
	}
	token, err := ac.ReadMetricsToken()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	gw := d.gw
	auditKey, err := keys.LoadAuditKey(c.DataDir)
	if err != nil {
		return nil, err
	}
	o := admin.Options{Host: ac.Host, Port: port, Portal: c.Portal, PortalURL: gateway.BaseURLFunc(gw.PublicPort)(c.Portal),
		Roles:     func(groups []string) admin.Role { return admin.Roles[ac.RoleOf(groups)] },
		AllowTOTP: ac.AllowTOTP, Store: gw.Store, Audit: gw.Audit, Sealer: gw.Sealer, Revision: gw.Revision, Counters: gw.Counters,
		Actions:  &admin.Actions{Store: gw.Store, Config: c, Recorder: gw.Audit},
		AuditKey: auditKey.Public().(ed25519.PublicKey), Open: gw.Open, Zone: c.Zone(),
		Metrics: d.metrics, MetricsToken: token, MetricsNetworks: ac.MetricsNetworks(), Log: log}
	if gw.Directory != nil {
		o.Directory = gw.Directory
	}
	srvAdmin, err := admin.New(ctx, o)
	if err != nil {
		ln.Close()
		return nil, err
	}
	conns := &connlimit.Listener{Listener: ln, Max: admin.MaxConns, MaxPerSource: admin.MaxConnsPerSource, HeaderTimeout: admin.HeaderTimeout, Log: log}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: aeadSuites, NextProtos: []string{"h2", "http/1.1"}, Certificates: []tls.Certificate{cert}}
	srv := srvAdmin.HTTPServer(tlsConf, conns.ErrorLog(log))
	srv.Handler, srv.ConnContext = conns.Handler(srv.Handler), conns.ConnContext
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(conns, "", ""); err != nil && err != http.ErrServerClosed {
			log.Error("sluis: the admin listener stopped", "err", err)
		}
	}()
	fmt.Fprintf(e.stdout, "sluis: admin console at %s/\n", srvAdmin.Origin())
	fmt.Fprintf(e.stdout, "sluis: admin listening on %s\n", net.JoinHostPort(ln.Addr().(*net.TCPAddr).IP.String(), strconv.Itoa(port)))
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), adminShutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}
