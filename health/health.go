// Package health answers a load balancer's two questions about a node:
// is the process alive (LivePath), and should it be sent traffic
// (ReadyPath): its store answers, the store's schema has every migration
// this binary knows, and the node is not shutting down. The answers say
// nothing but their status, so they tell an attacker nothing either.
package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The paths, on the portal's host (and on the admin listener, once there
// is one).
const (
	LivePath  = "/healthz"
	ReadyPath = "/readyz"
)

// Defaults.
const (
	// DefaultTimeout bounds one check of the store.
	DefaultTimeout = 2 * time.Second
	// DefaultCacheFor is how long one check's answer is reused: a flood
	// of /readyz (it needs no login) costs the store at most one query
	// per interval.
	DefaultCacheFor = 500 * time.Millisecond
)

// ErrDraining means that the node is shutting down.
var ErrDraining = errors.New("the node is shutting down")

// Checker keeps the node's readiness. The zero value with Store set is
// ready to use.
type Checker struct {
	// Store checks the store: it can be reached, and its schema has every
	// migration this binary knows. Nil counts as a store that always
	// answers.
	Store func(ctx context.Context) error
	// Timeout bounds one store check; zero means DefaultTimeout.
	Timeout time.Duration
	// CacheFor is how long a check's answer is reused; zero means
	// DefaultCacheFor.
	CacheFor time.Duration
	// Log receives a line when the store's state changes (not one per
	// check); nil means slog.Default().
	Log *slog.Logger

	draining atomic.Bool

	mu       sync.Mutex // guards the fields below
	checked  time.Time  // when the last check ended
	last     error      // its answer
	inFlight chan struct{}
	logged   bool // whether the store was last logged as unreachable
}

// Drain takes the node out of service: from now on Ready answers
// ErrDraining. It cannot be undone; a drained node exits.
func (c *Checker) Drain() { c.draining.Store(true) }

// Draining reports whether Drain was called.
func (c *Checker) Draining() bool { return c.draining.Load() }

// Ready returns nil when the node should be sent traffic, or why not.
func (c *Checker) Ready(ctx context.Context) error {
	if c.Draining() {
		return ErrDraining
	}
	return c.StoreErr(ctx, false)
}

// StoreErr returns the answer of a check of the store: a recent one
// (within CacheFor), or a new one. With fresh, a recent good answer is not
// trusted (the caller has just seen the store fail) but a recent bad one
// is. Concurrent callers share one check.
func (c *Checker) StoreErr(ctx context.Context, fresh bool) error {
	if c.Store == nil {
		return nil
	}
	cacheFor := c.CacheFor
	if cacheFor == 0 {
		cacheFor = DefaultCacheFor
	}
	c.mu.Lock()
	if !c.checked.IsZero() && time.Since(c.checked) < cacheFor && (c.last != nil || !fresh) {
		err := c.last
		c.mu.Unlock()
		return err
	}
	if wait := c.inFlight; wait != nil {
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		err := c.last
		c.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	c.inFlight = done
	c.mu.Unlock()

	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// The check belongs to every caller waiting for it, not to the one
	// request that started it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	err := c.Store(cctx)
	cancel()

	c.mu.Lock()
	c.checked, c.last, c.inFlight = time.Now(), err, nil
	switch {
	case err != nil && !c.logged:
		c.logged = true
		c.log().Error("health: the store cannot be used; the node is not ready", "err", err)
	case err == nil && c.logged:
		c.logged = false
		c.log().Info("health: the store answers again; the node is ready")
	}
	c.mu.Unlock()
	close(done)
	return err
}

func (c *Checker) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// Live answers LivePath: the process runs and serves requests. It checks
// nothing else, so a balancer (or an orchestrator) restarts a node only
// when it is truly stuck, never because its database is down.
func Live(w http.ResponseWriter, r *http.Request) {
	answer(w, http.StatusOK, "ok")
}

// ServeReady answers ReadyPath: 200 "ready", or 503 "not ready" whatever
// the reason (which is logged, not told).
func (c *Checker) ServeReady(w http.ResponseWriter, r *http.Request) {
	if c.Ready(r.Context()) != nil {
		answer(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	answer(w, http.StatusOK, "ready")
}

func answer(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, body+"\n")
}
