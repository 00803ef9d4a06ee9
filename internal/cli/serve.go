package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/assertion"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/changes"
	"github.com/sluis-gateway/sluis/config"
	"github.com/sluis-gateway/sluis/connlimit"
	"github.com/sluis-gateway/sluis/datadir"
	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/gateway"
	"github.com/sluis-gateway/sluis/health"
	"github.com/sluis-gateway/sluis/keys"
	"github.com/sluis-gateway/sluis/lease"
	"github.com/sluis-gateway/sluis/memlimit"
	"github.com/sluis-gateway/sluis/metrics"
	"github.com/sluis-gateway/sluis/proxyproto"
	"github.com/sluis-gateway/sluis/store/postgres"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// Limits of the public listener (and see config.Connections).
const (
	readTimeout    = 60 * time.Second
	maxHeaderBytes = 32 << 10
	// cutGrace is how long, once the grace has run out and what was
	// still open is cut, the handlers get to record their end.
	cutGrace = 500 * time.Millisecond
	// auditCheckpointEvery is how often the audit chain is signed.
	auditCheckpointEvery = time.Minute
	// counterCleanUpEvery is how often expired shared counters are
	// deleted, and maxCounters how many may stay (a row is some 100
	// bytes: 100 MB at most, for an attack spread over a million keys).
	counterCleanUpEvery = time.Minute
	maxCounters         = 1_000_000
)

func (e *env) loadConfig() (*config.Config, error) {
	c, err := config.Load(e.configPath)
	if err != nil {
		return nil, err
	}
	for _, w := range c.Warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	return c, nil
}

// store is an opened store and the hook it calls after every committed
// change that advanced the revision (the Changed field of either store).
type store struct {
	sluis.Store
	changed *func(context.Context)
	// where names the store for the log, never with a password.
	where string
}

// OnChange sets the function called after every change that advanced
// the revision, so the process can tell whoever caches (package changes).
func (s store) OnChange(f func(context.Context)) { *s.changed = f }

// layout is what c's data directory holds: the SQLite database only when
// it is the store.
func layout(c *config.Config) []datadir.File {
	files := datadir.Layout(c.TLS.SelfSigned)
	if c.Store.IsPostgres() {
		files = slices.DeleteFunc(files, func(f datadir.File) bool { return f.Name == datadir.Database })
	}
	return files
}

// openDB opens the configured store: PostgreSQL when c.Store names it,
// else the SQLite database in data_dir.
func openDB(ctx context.Context, c *config.Config) (store, error) {
	if pg := c.Store.Postgres; pg != nil {
		u, err := pg.ReadURL()
		if err != nil {
			return store{}, err
		}
		db, err := postgres.Open(ctx, u)
		if err != nil {
			return store{}, err
		}
		return store{db, &db.Changed, "PostgreSQL " + postgres.Redact(u)}, nil
	}
	path := filepath.Join(c.DataDir, datadir.Database)
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return store{}, err
	}
	return store{db, &db.Changed, "SQLite " + path}, nil
}

// openStore opens the configured store, after checking that the data
// directory is whole (see package datadir): a new one is filled, an
// incomplete one refused.
func openStore(ctx context.Context, c *config.Config) (store, error) {
	return openStoreFor(ctx, c, false, nil)
}

// openStoreFor is openStore for a command that may only read (readOnlyOK):
// on a read-only data_dir (a copy kept for forensics) it reads the
// database as it is, saying so on warn; a command that changes something
// is refused there with words that say read-only.
func openStoreFor(ctx context.Context, c *config.Config, readOnlyOK bool, warn io.Writer) (store, error) {
	if fi, err := os.Stat(c.DataDir); err == nil && fi.IsDir() {
		if werr := datadir.Writable(c.DataDir); werr != nil {
			if !readOnlyOK {
				return store{}, fmt.Errorf("%w: this command changes something; only reading commands (audit, audit verify, audit export, user list, session list, block list, emergency status) work on a read-only data_dir", werr)
			}
			if _, err := datadir.Check(c.DataDir, layout(c)); err != nil {
				return store{}, err
			}
			if warn != nil {
				fmt.Fprintf(warn, "note: %v; reading it as it is\n", werr)
			}
			if c.Store.IsPostgres() {
				return openDB(ctx, c)
			}
			path := filepath.Join(c.DataDir, datadir.Database)
			db, err := sqlite.OpenReadOnly(ctx, path)
			if err != nil {
				return store{}, err
			}
			return store{db, &db.Changed, "SQLite " + path + " (read-only)"}, nil
		}
	}
	if _, err := prepareDataDir(ctx, c, false); err != nil {
		return store{}, err
	}
	st, err := openDB(ctx, c)
	if err != nil {
		return store{}, err
	}
	if err := checkNotLeftBehind(ctx, c, st); err != nil {
		st.Close()
		return store{}, err
	}
	return st, nil
}

// checkNotLeftBehind refuses an empty PostgreSQL store while data_dir
// still holds a SQLite database: the operator switched the store without
// copying, and the gateway would start afresh without a word (no users,
// no blocks, no trail).
func checkNotLeftBehind(ctx context.Context, c *config.Config, st sluis.Store) error {
	if !c.Store.IsPostgres() {
		return nil
	}
	old := filepath.Join(c.DataDir, datadir.Database)
	if fi, err := os.Stat(old); err != nil || fi.Size() == 0 {
		return nil
	}
	empty, err := storeEmpty(ctx, st)
	if err != nil || !empty {
		return err
	}
	return fmt.Errorf("the PostgreSQL store is empty, but data_dir still holds a SQLite database (%s) with what this gateway knew: copy it with `sluis store copy --from sqlite:%s --to postgres://...` (see the README), or move it out of data_dir to start afresh", old, old)
}

// storeEmpty reports whether st holds no users, no audit events, no
// sessions and no blocks.
func storeEmpty(ctx context.Context, st sluis.Store) (bool, error) {
	users, err := st.Users(ctx)
	if err != nil {
		return false, err
	}
	last, _, err := st.LastEvent(ctx)
	if err != nil {
		return false, err
	}
	sessions, err := st.Sessions(ctx)
	if err != nil {
		return false, err
	}
	blocks, err := st.Blocks(ctx)
	if err != nil {
		return false, err
	}
	return len(users) == 0 && last == 0 && len(sessions) == 0 && len(blocks) == 0, nil
}

// prepareDataDir makes sure c's data directory holds all its files. A new
// directory gets all of them. An incomplete one is refused, unless
// fillMissing (`sluis init --new`), which creates what is missing. It
// returns the files it created.
//
// With a PostgreSQL store that other nodes already fill, a new data
// directory is refused too: its keys must be the other nodes' (the
// sealing key of TOTP secrets, the audit key, the assertion key), copied
// from one of them, or this node could read no one's second factor.
func prepareDataDir(ctx context.Context, c *config.Config, fillMissing bool) ([]datadir.File, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	files := layout(c)
	state, missing, err := datadir.Inspect(c.DataDir, files)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	switch {
	case state == datadir.Complete:
		return nil, nil
	case state == datadir.Incomplete && !fillMissing:
		return nil, &datadir.IncompleteError{Dir: c.DataDir, Missing: missing}
	}
	if c.Store.IsPostgres() && !fillMissing {
		st, err := openDB(ctx, c)
		if err != nil {
			return nil, err
		}
		empty, err := storeEmpty(ctx, st)
		st.Close()
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("data_dir %s is new, but the PostgreSQL store already holds data: copy the data_dir of a node that uses it (its keys: %s) rather than making new keys. (To make new keys on purpose: `sluis init --new`; users then enrol their one-time codes again, and the trail recorded so far no longer verifies with the new audit key.)", c.DataDir, fileNames(files))
		}
	}
	for _, f := range missing {
		// An empty file stands for a missing one; it is replaced.
		if fi, err := os.Stat(filepath.Join(c.DataDir, f.Name)); err == nil && fi.Size() == 0 {
			if err := os.Remove(filepath.Join(c.DataDir, f.Name)); err != nil {
				return nil, fmt.Errorf("data_dir: %w", err)
			}
		}
	}
	// Everything is made at once, so that no command leaves a directory
	// that the next one would find incomplete.
	if _, err := keys.LoadSealer(c.DataDir); err != nil {
		return nil, err
	}
	if _, err := keys.LoadSigningKey(c.DataDir); err != nil {
		return nil, err
	}
	if _, err := keys.LoadAuditKey(c.DataDir); err != nil {
		return nil, err
	}
	if c.TLS.SelfSigned {
		if _, _, err := keys.SelfSigned(c.DataDir, append([]string{c.Portal}, c.AppHosts()...), time.Now()); err != nil {
			return nil, fmt.Errorf("self-signed TLS: %w", err)
		}
	}
	st, err := openDB(ctx, c)
	if err != nil {
		return nil, err
	}
	return missing, st.Close()
}

func fileNames(files []datadir.File) string {
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// setMemoryLimit sets the runtime's soft memory limit as c says (a fixed
// memory_limit, or one that follows the live heap), unless GOMEMLIMIT is
// set: the runtime has read it already, and the operator's word wins.
// The returned func restores the limit from before.
func setMemoryLimit(c *config.Config, getenv func(string) string) (restore func()) {
	switch {
	case getenv("GOMEMLIMIT") != "":
		return func() {}
	case c.MemoryLimit > 0:
		before := memlimit.Fixed(int64(c.MemoryLimit))
		return func() { memlimit.Fixed(before) }
	default:
		return memlimit.Follow(0)
	}
}

func (e *env) serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if _, err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	return e.serveConfig(c, nil)
}

// serveConfig runs the gateway for c until the context ends. ready, if
// set, is called once the listener accepts connections.
func (e *env) serveConfig(c *config.Config, ready func(port int, signer *assertion.Signer)) error {
	ctx := e.ctx
	// What `sluis config check` checks too, before anything starts.
	if err := c.CheckFiles(); err != nil {
		return err
	}
	if e.getenv("GOGC") == "" {
		// A proxy allocates per request but keeps little: collecting less
		// often trades some memory for a good share of CPU. GOGC, when
		// set, still wins.
		debug.SetGCPercent(400)
	}
	// GOGC=400 lets the heap grow to five times what is live: under a
	// burst of logins (argon2id allocates 19 MiB a check) that was 420-510
	// MiB resident for 40-100 MiB live. A soft limit bounds it (250 MiB);
	// GOMEMLIMIT, when set, wins (the runtime has read it already).
	defer setMemoryLimit(c, e.getenv)()
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// For profile-guided builds (cmd/sluis/default.pgo) and the
	// benchmarks.
	stopProfile, err := startCPUProfile(e.getenv("SLUIS_CPUPROFILE"))
	if err != nil {
		return err
	}
	defer stopProfile()
	// Allocation and blocking profiles, written when the gateway stops;
	// like the CPU profile, for the benchmarks (bench/proxy, bench/gateway),
	// named by the operator, never served.
	// The files are made now, so that a wrong path fails at the start.
	if path := e.getenv("SLUIS_MEMPROFILE"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("SLUIS_MEMPROFILE: %w", err)
		}
		defer writeProfile(log, "allocs", f)
	}
	if path := e.getenv("SLUIS_BLOCKPROFILE"); path != "" {
		bf, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("SLUIS_BLOCKPROFILE: %w", err)
		}
		mf, err := os.OpenFile(path+".mutex", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			bf.Close()
			return fmt.Errorf("SLUIS_BLOCKPROFILE: %w", err)
		}
		// Every blocking event and every contended lock, at a cost: only
		// while measuring.
		runtime.SetBlockProfileRate(1)
		runtime.SetMutexProfileFraction(1)
		defer writeProfile(log, "block", bf)
		defer writeProfile(log, "mutex", mf)
	}
	// One gateway per data directory (the CLI's commands may run beside
	// it).
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := datadir.Writable(c.DataDir); err != nil {
		return fmt.Errorf("%w: the gateway needs to write there", err)
	}
	unlock, err := datadir.Lock(c.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := openStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("sluis: store " + st.where)
	// What the gateway uses: the store, or the store behind a test's
	// wrapper (WithStoreWrapper).
	var gwStore sluis.Store = st.Store
	if wrap, ok := ctx.Value(storeWrapperKey{}).(func(sluis.Store) sluis.Store); ok {
		gwStore = wrap(st.Store)
	}
	if users, err := gwStore.Users(ctx); err == nil {
		for _, w := range c.UnknownGroups(users) {
			log.Warn("sluis: " + w)
		}
	}
	// A reserve of space for the operator's commands on a full disk.
	if err := datadir.KeepReserve(c.DataDir); err != nil {
		log.Error("sluis: no reserve for the operator's commands: if the disk fills up, emergency levels, blocks and revocations may fail too", "err", err)
	}
	// The watcher keeps the store's revision in memory: changes made here
	// refresh it directly, changes made by the CLI are announced to it.
	// Background work lasts until the gateway has shut down, not only
	// until SIGTERM: while it drains, changes still count and revocations
	// still cut tunnels.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	watcher := &changes.Watcher{Source: gwStore, DataDir: c.DataDir, Log: log}
	if err := watcher.Start(watchCtx); err != nil {
		stopWatch()
		return err
	}
	defer watcher.Wait()
	auditKey, err := keys.LoadAuditKey(c.DataDir)
	if err != nil {
		stopWatch()
		return err
	}
	// Of several nodes on PostgreSQL, one at a time signs checkpoints,
	// re-checks the directory and cleans up: the one holding the lease
	// for it (package lease). The counts behind every throttle and the
	// probe detector live in the store, so that they hold for all nodes.
	// One node on SQLite does all of it, and counts in memory.
	holds := func(string) bool { return true }
	var counters sluis.CounterStore
	var leasesDone sync.WaitGroup
	defer leasesDone.Wait()
	holder := lease.Holder()
	if c.Store.IsPostgres() {
		leases := map[string]*lease.Lease{}
		for _, name := range []string{lease.AuditCheckpoints, lease.DirectoryRecheck, lease.CleanUp} {
			l := &lease.Lease{Store: st, Name: name, Holder: holder, Log: log}
			leases[name] = l
			leasesDone.Go(func() { l.Run(watchCtx) })
		}
		holds = func(name string) bool { return leases[name].Held() }
		counters = st
		log.Info("sluis: several nodes: leases held as " + holder)
		leasesDone.Go(func() {
			t := time.NewTicker(counterCleanUpEvery)
			defer t.Stop()
			for {
				select {
				case <-watchCtx.Done():
					return
				case <-t.C:
				}
				if !holds(lease.CleanUp) {
					continue
				}
				if _, err := st.PurgeCounters(watchCtx, time.Now(), maxCounters); err != nil {
					log.Error("sluis: cleaning up expired counters", "err", err)
				}
			}
		})
	}
	// Signed checkpoints of the audit chain every minute while events
	// flow, and one at shutdown, before the store closes.
	checkpoints := &audit.Checkpointer{Store: gwStore, Key: auditKey, Held: func() bool { return holds(lease.AuditCheckpoints) }}
	checkpointsDone := make(chan struct{})
	go func() {
		checkpoints.Run(watchCtx, auditCheckpointEvery, log)
		close(checkpointsDone)
	}()
	defer func() { <-checkpointsDone }()
	// On PostgreSQL, changes made through other nodes count as they
	// commit, not only at the next poll.
	listenDone := make(chan struct{})
	if db, ok := st.Store.(*postgres.DB); ok {
		go func() {
			defer close(listenDone)
			db.Listen(watchCtx, watcher.Changed, 0, func(err error) {
				log.Warn("changes: listening for other nodes' changes; they count within a second", "err", err)
			})
		}()
	} else {
		close(listenDone)
	}
	defer func() { <-listenDone }()
	defer stopWatch()
	st.OnChange(watcher.Changed)
	warnTwins(ctx, gwStore, log)
	sealer, err := keys.LoadSealer(c.DataDir)
	if err != nil {
		return err
	}
	sigKey, err := keys.LoadSigningKey(c.DataDir)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	fileLimit, err := connlimit.RaiseFileLimit()
	if err != nil {
		log.Warn("sluis: reading the limit on open files", "err", err)
	}
	conns := &connlimit.Listener{Listener: ln, Max: c.Connections.Max, MaxPerSource: c.Connections.MaxPerSource,
		HeaderTimeout: c.Connections.HeaderTimeout.D(), Log: log}
	if conns.Max == 0 {
		conns.Max = connlimit.DefaultMax(fileLimit)
	}
	defer conns.Close()
	log.Info("sluis: connection limits", "max", conns.Max, "max_per_source", conns.MaxPerSource, "open_files_limit", fileLimit,
		"header_timeout", conns.HeaderTimeout, "idle_timeout", c.Connections.IdleTimeout.D())
	// Behind balancers: theirs are not capped as one source (each stands
	// for many clients); with the PROXY protocol each connection is
	// counted under the client its header names. The listener order is
	// raw, caps, PROXY protocol, TLS.
	var public net.Listener = conns
	if proxies := c.Proxies(); len(proxies.Trusted) > 0 {
		conns.Exempt = proxies.Trusts
		if c.ProxyProtocol {
			public = &proxyproto.Listener{Listener: conns, Trusted: proxies.Trusts, Timeout: c.Connections.HeaderTimeout.D(), Log: log}
		}
		log.Info("sluis: behind trusted proxies", "trusted_proxies", strings.Join(c.TrustedProxies, ","),
			"forwarded_header", proxies.Header, "proxy_protocol", c.ProxyProtocol)
	}

	hosts := append([]string{c.Portal}, c.AppHosts()...)
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: aeadSuites, NextProtos: []string{"h2", "http/1.1"}}
	if c.TLS.SelfSigned {
		cert, caPath, err := keys.SelfSigned(c.DataDir, hosts, time.Now())
		if err != nil {
			return fmt.Errorf("self-signed TLS: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
		fmt.Fprintf(e.stdout, "sluis: self-signed TLS; clients can trust the CA certificate in %s\n", caPath)
	} else {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	cert := reloadableCert(tlsConf)

	// URLs carry the port users reach: public_url's behind a balancer.
	publicPort := c.PublicPort(port)
	base := gateway.BaseURLFunc(publicPort)
	signer, err := assertion.NewSigner(base(c.Portal), sigKey, keys.KeyID(&sigKey.PublicKey))
	if err != nil {
		return err
	}
	// The node's metrics; the admin listener serves them at /metrics.
	m := metrics.New()
	if seen, ok := ctx.Value(metricsKey{}).(func(*metrics.Metrics)); ok {
		seen(m)
	}
	rec := &audit.Recorder{Store: gwStore, Log: log, Metrics: m}
	// Events recorded with RecordSoon (a tunnel's end) that still wait
	// are stored before the store closes.
	defer rec.Flush(context.Background())
	if sl := c.Audit.Syslog; sl != nil {
		fw := &audit.Syslog{Address: sl.Address, Queue: sl.Queue, Record: rec.Record, Log: log}
		if sl.TLS {
			host, _, _ := net.SplitHostPort(sl.Address)
			fw.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
			if sl.CAFile != "" {
				pem, err := os.ReadFile(sl.CAFile)
				if err != nil {
					return fmt.Errorf("audit.syslog.ca_file: %w", err)
				}
				fw.TLS.RootCAs = x509.NewCertPool()
				if !fw.TLS.RootCAs.AppendCertsFromPEM(pem) {
					return fmt.Errorf("audit.syslog.ca_file %s: no PEM certificate", sl.CAFile)
				}
			}
		}
		rec.Forward = fw.Forward
		m.Syslog(fw.Queued, fw.Dropped)
		go fw.Run(watchCtx)
	}
	// Readiness for balancers: the store answers with the schema this
	// binary knows, and the node is not shutting down.
	readiness := &health.Checker{Store: storeReady(gwStore), Log: log}
	cut := make(chan struct{})
	opts := gateway.Options{Config: c, Store: gwStore, Health: readiness, Cut: cut, Sealer: sealer, Signer: signer, PublicPort: publicPort, Log: log,
		Revision: watcher.Current, OnChange: watcher.OnChange, Audit: rec, Counters: counters, Holds: holds, Holder: holder, Metrics: m, OnReload: m.Reloaded,
		ConnAbuse: func(report func(ctx context.Context, src, rule, detail string)) {
			conns.Abuse = func(src, rule, detail string) { report(watchCtx, src, rule, detail) }
		}}
	prov, dir, err := newProviders(c, base, log)
	if err != nil {
		return err
	}
	opts.Directory, opts.DirectoryRecheck, opts.SSO = prov.Directory, prov.DirectoryRecheck, prov.SSO
	// The admin listener (admin:), apart from the public one; Open lets
	// its console read what the gateway has open.
	opts.Open = &gateway.Open{}
	handler, err := gateway.New(watchCtx, opts)
	if err != nil {
		return err
	}
	// admin.metrics decides who reads them there (admin's guard).
	adm, err := e.serveAdmin(watchCtx, c, adminDeps{gw: opts, cert: cert, metrics: m.Exposition()})
	if err != nil {
		return err
	}
	defer adm.stop()
	// `sluis reload` and SIGHUP read the configuration file again.
	reloads := &reloader{gw: handler, log: log, base: base, cert: cert, onReload: opts.OnReload, current: c, dir: dir}
	reloads.onReload = adm.followReloads(reloads, opts, reloads.onReload)
	defer e.serveReloads(watchCtx, reloads, c.DataDir)()
	srv := &http.Server{
		// The listener closes a connection that begins no request within
		// the header timeout; for HTTP/2 (a connection without a stream)
		// net/http alone would wait for IdleTimeout.
		Handler:     conns.Handler(handler),
		ConnContext: conns.ConnContext,
		TLSConfig:   tlsConf,
		// For HTTP/1.1, and for the TLS handshake.
		ReadHeaderTimeout: c.Connections.HeaderTimeout.D(),
		ReadTimeout:       readTimeout,
		// Both HTTP/1.1 and HTTP/2 keep-alive connections.
		IdleTimeout:    c.Connections.IdleTimeout.D(),
		MaxHeaderBytes: maxHeaderBytes,
		// Tunnels stream in large frames; what a stream may have in
		// flight (and what a stalled target can make the gateway hold)
		// stays 1 MiB.
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 256 << 10, MaxReceiveBufferPerStream: 1 << 20, MaxReceiveBufferPerConnection: 8 << 20},
		// "OPTIONS *" too goes through the front door (which refuses it)
		// instead of being answered by net/http itself.
		DisableGeneralOptionsHandler: true,
		// At DEBUG as before; HTTP/2 connection errors are also reported
		// as misuse by their source.
		ErrorLog: conns.ErrorLog(log),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(public, "", "") }()
	fmt.Fprintf(e.stdout, "sluis: portal at %s/\n", base(c.Portal))
	for _, a := range c.Apps {
		if a.TCP != "" {
			fmt.Fprintf(e.stdout, "sluis: TCP app %s to %s, through `sluis connect %s --gateway %s`\n", a.Name, a.TCP, a.Name, base(c.Portal))
			continue
		}
		fmt.Fprintf(e.stdout, "sluis: app %s at %s/\n", a.Name, base(a.Host))
	}
	fmt.Fprintf(e.stdout, "sluis: listening on %s\n", net.JoinHostPort(ln.Addr().(*net.TCPAddr).IP.String(), strconv.Itoa(port)))
	if ready != nil {
		ready(port, signer)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return drain(log, srv, errc, readiness, cut, c.Connections.DrainDelay.D(), c.Connections.ShutdownGrace.D())
}

// drain shuts the node down once SIGTERM (or SIGINT) has ended the
// context, as a node behind a balancer should:
//
//  1. /readyz answers 503 at once (and says nothing more);
//  2. for drainDelay everything else is served as before, so the
//     balancer's health check takes the node out before a single
//     connection is refused;
//  3. the listener closes (new connections are refused), idle connections
//     close, and HTTP/2 clients get a GOAWAY: new streams (a browser's
//     next request, `sluis connect`'s next tunnel) go to a new connection,
//     through the balancer to another node;
//  4. requests under way and open tunnels get up to grace to finish;
//  5. what is still open then is cut (tunnels are audited as cut by the
//     shutdown), and drain returns: the program exits. WebSockets, which
//     net/http no longer tracks once upgraded, are cut when the rest has
//     ended.
func drain(log *slog.Logger, srv *http.Server, errc <-chan error, readiness *health.Checker, cut chan<- struct{}, drainDelay, grace time.Duration) error {
	readiness.Drain()
	start := time.Now()
	log.Info("sluis: shutting down: /readyz answers 503", "drain_delay", drainDelay, "shutdown_grace", grace)
	if drainDelay > 0 {
		t := time.NewTimer(drainDelay)
		select {
		case err := <-errc:
			t.Stop()
			return err
		case <-t.C:
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	log.Info("sluis: shutting down: the listener is closed; requests under way may finish", "within", grace)
	err := srv.Shutdown(sctx)
	close(cut)
	if err == nil {
		log.Info("sluis: shut down", "after", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Warn("sluis: shutdown grace over: cutting the requests and tunnels still open")
	// The cut tunnels end their streams and record their end; a request
	// that is still running is cut with its connection.
	cctx, ccancel := context.WithTimeout(context.Background(), cutGrace)
	defer ccancel()
	if err := srv.Shutdown(cctx); err != nil {
		srv.Close()
	}
	log.Info("sluis: shut down", "after", time.Since(start).Round(time.Millisecond))
	return nil
}

type storeWrapperKey struct{}

// WithStoreWrapper returns a context under which `sluis serve` (and
// `sluis demo`) put the store they open behind wrap before anything uses
// it: for tests that make the store fail (internal/storefault). main
// never sets it.
func WithStoreWrapper(ctx context.Context, wrap func(sluis.Store) sluis.Store) context.Context {
	return context.WithValue(ctx, storeWrapperKey{}, wrap)
}

type metricsKey struct{}

// WithMetrics returns a context under which `sluis serve` hands the
// metrics it makes to seen, before it listens: for tests that serve them
// on a listener of their own. main never sets it.
func WithMetrics(ctx context.Context, seen func(*metrics.Metrics)) context.Context {
	return context.WithValue(ctx, metricsKey{}, seen)
}

// storeReady returns the check of /readyz for st: its Ready (reached, and
// every migration applied), or for a store without one, its Revision.
func storeReady(st sluis.Store) func(context.Context) error {
	if r, ok := st.(interface{ Ready(context.Context) error }); ok {
		return r.Ready
	}
	return func(ctx context.Context) error {
		_, err := st.Revision(ctx)
		return err
	}
}

// aeadSuites are the TLS 1.2 cipher suites the gateway accepts: forward
// secret (ECDHE) and authenticated encryption only. Go's defaults also
// accept CBC suites, which padding-oracle attacks have broken time and
// again. (TLS 1.3's suites are not configurable and are all sound.)
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// newDirectory builds the directory client from configuration, reading
// the service account's password file and the CA file; errors name the
// key.
func newDirectory(l *config.LDAP, log *slog.Logger) (*directory.Directory, error) {
	pw, err := os.ReadFile(l.BindPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("ldap.bind_password_file: %w", err)
	}
	password := strings.TrimRight(string(pw), "\r\n")
	if password == "" {
		return nil, fmt.Errorf("ldap.bind_password_file %s: empty", l.BindPasswordFile)
	}
	var pool *x509.CertPool
	if l.CAFile != "" {
		pem, err := os.ReadFile(l.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap.ca_file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap.ca_file %s: no PEM certificate", l.CAFile)
		}
	}
	d, err := directory.New(directory.Config{URLs: l.URLs, StartTLS: l.StartTLS, RootCAs: pool, BindDN: l.BindDN, BindPassword: password,
		UserBase: l.UserBase, UserFilter: l.UserFilter, NameAttribute: l.NameAttribute, IDAttribute: l.IDAttribute, EmailAttribute: l.EmailAttribute, DisplayNameAttribute: l.DisplayNameAttribute, GroupBase: l.GroupBase, Nested: l.NestedGroups, DisabledFilter: l.DisabledFilter,
		Groups: l.Groups, Timeout: l.Timeout.D(), PoolSize: l.PoolSize, Log: log})
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	return d, nil
}

// warnTwins names the users of an older store whose names differ only in
// case. The gateway starts all the same; twins cannot log in while more
// than one of them is enabled (see portal), and `sluis user list` marks
// them.
func warnTwins(ctx context.Context, st sluis.Store, log *slog.Logger) {
	users, err := st.Users(ctx)
	if err != nil {
		log.Warn("sluis: listing users to look for twins", "err", err)
		return
	}
	seen := map[string]bool{}
	for name, others := range sluis.Twins(users) {
		if seen[name] {
			continue
		}
		names := append([]string{name}, others...)
		for _, n := range names {
			seen[n] = true
		}
		slices.Sort(names)
		log.Warn("sluis: these users share one name in different case; while more than one of them is enabled, none of them can log in or use a session: disable all but one. The one left is matched by every list entry (allow.users, break_glass.users) that names any of them", "users", strings.Join(names, ", "))
	}
}

// initDataDir is `sluis init [--new]`: it creates a new data directory,
// and with --new fills an incomplete one, saying what was created and what
// that means.
func (e *env) initDataDir(args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fillMissing := fs.Bool("new", false, "create what an incomplete data_dir is missing (a deliberate new start for those parts)")
	if _, err := parseFlags(fs, args, e.stderr); err != nil {
		return err
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	state, _, err := datadir.Inspect(c.DataDir, layout(c))
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	created, err := prepareDataDir(e.ctx, c, *fillMissing)
	if err != nil {
		return err
	}
	switch {
	case len(created) == 0:
		fmt.Fprintf(e.stdout, "data_dir %s is complete; nothing to do\n", c.DataDir)
	case state == datadir.New:
		fmt.Fprintf(e.stdout, "data_dir %s created\n", c.DataDir)
	default:
		fmt.Fprintf(e.stdout, "data_dir %s: created anew\n", c.DataDir)
		for _, f := range created {
			fmt.Fprintf(e.stdout, "  - %s: %s\n", f.Name, f.Meaning)
		}
	}
	return nil
}
