// Package lease lets several gateway nodes on one store agree on which of
// them does the work that one node at a time must do: signing audit
// checkpoints, the directory re-check, the clean-up of expired counters.
//
// A lease is a row in the store (sluis.LeaseStore) with a holder and an
// expiry by the store's clock. The holder renews it every Renew; a node
// that dies stops renewing, and another takes it over once it has run out:
// within TTL+Renew of the last renewal (8 s with the defaults). A row
// lease was chosen over a PostgreSQL advisory lock held on a connection
// because its end does not depend on the server noticing that a
// connection died (a node cut off by the network keeps its TCP
// connection open, for the server, until keepalives time out: minutes).
//
// A holder counts itself as holding only until TTL-Renew after it sent
// the last renewal that succeeded (by its own monotonic clock, never
// later than the store's expiry), so two nodes never both believe they
// hold a lease, unless a node stalls for longer than that in the middle
// of the work itself, which every leased job tolerates: each is safe to
// run twice (a checkpoint twice, a re-check twice), only wasteful.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Names of the leases of sluis serve.
const (
	AuditCheckpoints = "audit-checkpoints"
	DirectoryRecheck = "directory-recheck"
	CleanUp          = "clean-up"
)

// Defaults: a node that dies is replaced within TTL+Renew.
const (
	DefaultTTL   = 6 * time.Second
	DefaultRenew = 2 * time.Second
)

// Lease is one lease that this node tries to hold for as long as it runs.
type Lease struct {
	Store sluis.LeaseStore
	Name  string
	// Holder names this node in the store; empty means Holder(), set at
	// the first Run.
	Holder string
	TTL    time.Duration // 0 means DefaultTTL
	Renew  time.Duration // 0 means DefaultRenew; must be well under TTL
	Log    *slog.Logger  // nil: no log

	mu        sync.Mutex
	heldUntil time.Time // by the monotonic clock; zero: not held
}

// Holder returns a name for this process: its host name, its PID and a
// random part, so that a restarted node is a new holder.
func Holder() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b)
}

func (l *Lease) ttl() time.Duration {
	if l.TTL > 0 {
		return l.TTL
	}
	return DefaultTTL
}

func (l *Lease) renew() time.Duration {
	if l.Renew > 0 {
		return l.Renew
	}
	return DefaultRenew
}

// Held reports whether this node holds the lease now.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().Before(l.heldUntil)
}

// try asks the store once.
func (l *Lease) try(ctx context.Context) {
	sent := time.Now()
	ok, err := l.Store.TryLease(ctx, l.Name, l.Holder, l.ttl())
	l.mu.Lock()
	was := time.Now().Before(l.heldUntil)
	if err == nil && ok {
		l.heldUntil = sent.Add(l.ttl() - l.renew())
	} else if err == nil {
		l.heldUntil = time.Time{}
	} // on an error, what was held stays held until it runs out
	now := time.Now().Before(l.heldUntil)
	l.mu.Unlock()
	if l.Log == nil {
		return
	}
	switch {
	case err != nil:
		l.Log.Warn("lease: the store did not answer", "lease", l.Name, "err", err)
	case now && !was:
		l.Log.Info("lease: this node now does "+l.Name, "lease", l.Name, "holder", l.Holder)
	case was && !now:
		l.Log.Warn("lease: this node no longer does "+l.Name, "lease", l.Name, "holder", l.Holder)
	}
}

// Run takes and renews the lease every Renew until ctx ends, then gives
// it up so that another node takes over at once.
func (l *Lease) Run(ctx context.Context) {
	if l.Holder == "" {
		l.Holder = Holder()
	}
	t := time.NewTicker(l.renew())
	defer t.Stop()
	for {
		l.try(ctx)
		select {
		case <-ctx.Done():
			// Held stays true until it runs out, so that work finishing
			// at shutdown (the last checkpoint) still runs here; a node
			// that takes over at once may then do it too, which leased
			// work tolerates.
			ctx := context.WithoutCancel(ctx)
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			l.Store.ReleaseLease(ctx, l.Name, l.Holder)
			cancel()
			return
		case <-t.C:
		}
	}
}
