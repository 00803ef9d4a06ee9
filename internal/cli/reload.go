package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/reload"
	"github.com/sluis-gateway/sluis/sso"
)

// ErrReloadRejected is returned by `sluis reload` when the gateway kept
// its running configuration.
var ErrReloadRejected = errors.New("reload rejected; the running configuration stays in force")

// reloadCmd is `sluis reload`: the gateway running on the configuration's
// data_dir reads its configuration file again. It prints "reloaded", or
// the problems (as `sluis config check` does) and fails.
func (e *env) reloadCmd(args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	pos, err := parseFlags(fs, args, e.stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fmt.Fprintln(e.stderr, "usage: sluis reload")
		return ErrUsage
	}
	// Only the data_dir is read here: the gateway checks the file itself,
	// and it may be the file's problems that the operator wants to see.
	dir, err := config.DataDirOf(e.configPath)
	if err != nil {
		return err
	}
	res, err := reload.Ask(e.ctx, dir)
	if err != nil {
		return err
	}
	if !res.OK {
		for _, p := range res.Problems {
			fmt.Fprintln(e.stderr, p)
		}
		return fmt.Errorf("%w (%d problem(s))", ErrReloadRejected, len(res.Problems))
	}
	fmt.Fprintln(e.stdout, "reloaded")
	return nil
}

// reloader reads a running gateway's configuration file again (`sluis
// reload`, SIGHUP) and, when it is valid and changes nothing that needs a
// restart, puts it in force: the gateway's state, its identity providers
// and its TLS certificate.
type reloader struct {
	gw   *gateway.Gateway
	log  *slog.Logger
	base func(host string) string
	// cert is the listener's certificate (see reloadableCert).
	cert *atomic.Pointer[tls.Certificate]
	// onReload, if set, is told every outcome (the metrics).
	onReload func(ok bool)

	mu      sync.Mutex // serialises reloads; guards current and dir
	current *config.Config
	dir     *directory.Directory // the directory in force, nil: none
}

// reload reads the file again and returns the outcome, which it also
// logs: every problem at ERROR, as `sluis config check` prints it.
func (r *reloader) reload() reload.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	path := r.current.File
	res := r.try(path)
	if r.onReload != nil {
		r.onReload(res.OK)
	}
	if !res.OK {
		r.log.Error("sluis: reload rejected; the running configuration stays in force", "file", path, "problems", len(res.Problems))
		for _, p := range res.Problems {
			r.log.Error("sluis: reload rejected: " + p)
		}
		return res
	}
	r.log.Info("sluis: configuration reloaded", "file", path, "apps", len(r.current.Apps), "took", time.Since(start).Round(time.Millisecond))
	return res
}

func (r *reloader) try(path string) reload.Result {
	rejected := func(err error) reload.Result {
		var ce *config.Error
		if errors.As(err, &ce) {
			return reload.Result{Problems: ce.Problems}
		}
		return reload.Result{Problems: []string{err.Error()}}
	}
	// The same checks as `sluis config check` and a start: the file,
	// then what it names on this machine.
	next, err := config.Load(path)
	if err == nil {
		err = next.CheckFiles()
	}
	if err == nil {
		err = r.current.Replaceable(next)
	}
	if err != nil {
		return rejected(err)
	}
	for _, w := range next.Warnings {
		r.log.Warn("sluis: reload: " + w)
	}
	prov, dir, err := newProviders(next, r.base, r.log)
	if err != nil {
		return rejected(err)
	}
	cert, err := listenerCert(next)
	if err == nil {
		err = r.gw.Reload(next, prov)
	}
	if err != nil {
		if dir != nil {
			dir.Close()
		}
		return rejected(err)
	}
	// The certificate follows the apps' host names (self-signed), or
	// the files as they are now (a renewed certificate).
	r.cert.Store(&cert)
	if r.dir != nil {
		r.dir.Close()
	}
	r.current, r.dir = next, dir
	return reload.Result{OK: true}
}

// serveReloads reloads on SIGHUP and on `sluis reload` until ctx ends or
// the returned function is called, which stops and waits for that.
func (e *env) serveReloads(ctx context.Context, r *reloader, dataDir string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// r.current is read under the reloader's lock only; the
				// reload's own log line names the file.
				r.log.Info("sluis: SIGHUP: reading the configuration again")
				r.reload()
			}
		}
	}()
	waitSocket, err := reload.Serve(ctx, dataDir, func(context.Context) reload.Result { return r.reload() }, r.log)
	if err != nil {
		// Another gateway on the same data directory (refused by its lock
		// before this point), or another user holds the name.
		r.log.Warn("sluis: `sluis reload` cannot reach this gateway; SIGHUP reloads it", "err", err)
	}
	return func() {
		cancel()
		<-done
		waitSocket()
	}
}

// reloadableCert makes conf serve its one certificate through a pointer a
// reload can replace: new connections get the new certificate, open ones
// keep theirs.
func reloadableCert(conf *tls.Config) *atomic.Pointer[tls.Certificate] {
	var p atomic.Pointer[tls.Certificate]
	cert := conf.Certificates[0]
	p.Store(&cert)
	conf.Certificates = nil
	conf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.Load(), nil }
	return &p
}

// listenerCert is the listener's certificate for c: issued afresh by the
// local CA for the portal and the apps' hosts, or read from cert_file and
// key_file.
func listenerCert(c *config.Config) (tls.Certificate, error) {
	if c.TLS.SelfSigned {
		cert, _, err := keys.SelfSigned(c.DataDir, append([]string{c.Portal}, c.AppHosts()...), time.Now())
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("self-signed TLS: %w", err)
		}
		return cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	return cert, nil
}

// newProviders makes c's identity providers: the directory (returned also
// as itself, to be closed when replaced; nil without one) and the OpenID
// Connect providers, with their secret files read now.
func newProviders(c *config.Config, base func(string) string, log *slog.Logger) (gateway.Providers, *directory.Directory, error) {
	var prov gateway.Providers
	var dir *directory.Directory
	if c.LDAP != nil {
		d, err := newDirectory(c.LDAP, log)
		if err != nil {
			return prov, nil, err
		}
		dir = d
		prov.Directory = d
		prov.DirectoryRecheck = c.LDAP.RecheckEvery.D()
	}
	for i, o := range c.OIDC {
		secret, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			closeDirectory(dir)
			return prov, nil, fmt.Errorf("oidc[%d].client_secret_file: %w", i, err)
		}
		pr, err := sso.New(sso.Config{Name: o.Name, Title: o.Title, Issuer: o.Issuer, ClientID: o.ClientID,
			ClientSecret: strings.TrimRight(string(secret), "\r\n"), RedirectURL: base(c.Portal) + "/login/oidc/" + o.Name + "/callback",
			Scopes: o.Scopes, UsernameClaim: o.UsernameClaim, GroupsClaim: o.GroupsClaim, Groups: o.Groups, MFAAMR: o.MFAAMR, MFAACR: o.MFAACR})
		if err != nil {
			closeDirectory(dir)
			return prov, nil, fmt.Errorf("oidc[%d]: %w", i, err)
		}
		prov.SSO = append(prov.SSO, pr)
	}
	return prov, dir, nil
}

// closeDirectory closes the pooled connections of a directory built for
// providers that are then not used (a later provider failed).
func closeDirectory(d *directory.Directory) {
	if d != nil {
		d.Close()
	}
}
