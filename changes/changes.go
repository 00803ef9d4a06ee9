// Package changes tells a running gateway at once that access-relevant data
// changed in its store, so its caches count the change on the very next
// request without asking the database on every request.
//
// The store keeps a revision number that every such change advances. The
// gateway holds the last revision it read in memory (one atomic load per
// request) and reads it again when:
//   - the gateway itself changed something (the store calls Refresh);
//   - another process (the CLI) changed something and announced it over a
//     local socket, waiting for the gateway's answer before it returns, so
//     the operator's command returning means the change is in force;
//   - and every PollInterval regardless, which bounds staleness should an
//     announcement be lost (a CLI killed between commit and announcement).
//
// The announcement carries no data and is not trusted for anything: it
// only makes the gateway re-read the store, so it needs no authentication.
package changes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// PollInterval is how often the watcher reads the revision regardless of
// announcements.
const PollInterval = time.Second

// StaleAfter is how long the revision may go unread (the store cannot be
// reached) before Current fails. Caches checked against a revision that
// cannot be confirmed would go on honouring what may have been revoked
// meanwhile (by another node, or the CLI), so after this the gateway
// stops trusting them: sessions are looked up in the store, which fails,
// and users get a 503 page; open tunnels and WebSockets are cut. A few
// polls ride out a blip.
const StaleAfter = 3 * PollInterval

// ErrStale means that the store's revision could not be read for longer
// than StaleAfter.
var ErrStale = errors.New("the store's revision could not be read for a while; cached sessions are not trusted")

// Source is what the watcher reads: the store's revision.
type Source interface {
	Revision(ctx context.Context) (int64, error)
}

// SocketName returns the name of the announcement socket for a data
// directory: an abstract Unix socket (Linux), so it needs no file and no
// path-length budget, and cannot go stale.
func SocketName(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "@sluis-changes-" + hex.EncodeToString(sum[:12])
}

// supported reports whether announcements work on this system.
func supported() bool { return runtime.GOOS == "linux" }

// Watcher holds the store's revision for a running gateway.
type Watcher struct {
	Source  Source
	DataDir string
	Log     *slog.Logger

	rev       atomic.Int64
	readAt    atomic.Int64 // when the revision was last read (Unix nanoseconds)
	failing   atomic.Bool  // the last read failed (logged once, not every poll)
	refreshMu sync.Mutex   // one store read at a time; guards subs
	subs      []func()
	ln        net.Listener
	wg        sync.WaitGroup
}

// OnChange registers f to run (on a goroutine of its own) after every
// refresh that finds a new revision: for holders of long-lived connections
// that must re-check them.
func (w *Watcher) OnChange(f func()) {
	w.refreshMu.Lock()
	w.subs = append(w.subs, f)
	w.refreshMu.Unlock()
}

// Start reads the revision, listens for announcements and starts polling.
// Everything stops when ctx ends; Wait waits for that.
func (w *Watcher) Start(ctx context.Context) error {
	if err := w.Refresh(ctx); err != nil {
		return err
	}
	if supported() {
		ln, err := net.Listen("unix", SocketName(w.DataDir))
		if err != nil {
			// Another gateway on the same data directory; polling still
			// works, announcements reach the other one.
			w.Log.Warn("changes: no announcement socket; changes from the CLI count within a second", "err", err)
		} else {
			w.ln = ln
			w.wg.Add(1)
			go w.accept(ctx)
		}
	}
	w.wg.Add(1)
	go w.poll(ctx)
	return nil
}

// Wait waits until the watcher's goroutines have stopped.
func (w *Watcher) Wait() { w.wg.Wait() }

// Current returns the last revision read. It never blocks. It fails with
// ErrStale when the revision could not be read for longer than
// StaleAfter.
func (w *Watcher) Current(context.Context) (int64, error) {
	if time.Since(time.Unix(0, w.readAt.Load())) > StaleAfter {
		return 0, ErrStale
	}
	return w.rev.Load(), nil
}

// Refresh reads the revision from the store now.
func (w *Watcher) Refresh(ctx context.Context) error {
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	rev, err := w.Source.Revision(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	w.readAt.Store(time.Now().UnixNano())
	if w.rev.Swap(rev) != rev {
		for _, f := range w.subs {
			go f()
		}
	}
	return nil
}

// Changed is the store's hook for changes made in this process. A store
// that cannot be read is logged when it fails and when it answers again,
// not at every poll.
func (w *Watcher) Changed(ctx context.Context) {
	err := w.Refresh(ctx)
	switch {
	case err != nil && !w.failing.Swap(true):
		w.Log.Error("changes: reading revision", "err", err)
	case err == nil && w.failing.Swap(false):
		w.Log.Info("changes: the revision can be read again")
	}
}

func (w *Watcher) poll(ctx context.Context) {
	defer w.wg.Done()
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Changed(ctx)
		}
	}
}

func (w *Watcher) accept(ctx context.Context) {
	defer w.wg.Done()
	go func() {
		<-ctx.Done()
		w.ln.Close()
	}()
	for {
		c, err := w.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			w.Log.Error("changes: accept", "err", err)
			return
		}
		go w.serve(ctx, c)
	}
}

// serve handles one announcement: read one short line, re-read the store,
// answer "ok". Bounded in size and time.
func (w *Watcher) serve(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if _, err := c.Read(buf); err != nil {
		return
	}
	if err := w.Refresh(ctx); err != nil {
		w.Log.Error("changes: reading revision", "err", err)
		c.Write([]byte("error\n"))
		return
	}
	c.Write([]byte("ok\n"))
}

// ErrNoAnswer means a gateway is listening but did not confirm the change.
var ErrNoAnswer = errors.New("the running gateway did not confirm the change; it counts within a second")

// Announce tells a gateway running on dataDir that the store changed, and
// waits until it has re-read it. With no gateway running it returns nil at
// once.
func Announce(ctx context.Context, dataDir string) error {
	if !supported() {
		return nil
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", SocketName(dataDir))
	if err != nil {
		return nil // no gateway listening
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("changed\n")); err != nil {
		return ErrNoAnswer
	}
	buf := make([]byte, 8)
	n, _ := c.Read(buf)
	if string(buf[:n]) != "ok\n" {
		return ErrNoAnswer
	}
	return nil
}
