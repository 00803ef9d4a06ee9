// Package reload carries `sluis reload` to the gateway running on a data
// directory, and its result back: the gateway reads its configuration
// again, and answers "reloaded" or the problems that made it keep the
// running one.
//
// The channel is a local socket, as package changes uses, but unlike an
// announcement a reload is acted on and its answer quotes the
// configuration: both ends check who the other is (the kernel's peer
// credentials, SO_PEERCRED). The gateway serves only root and its own
// user; the CLI trusts only a gateway running as root, as itself, or as
// the owner of the data directory, so another local user who took the
// socket's name first cannot pass off a reload that never happened. There
// is no network listener.
package reload

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of one exchange.
const (
	// Timeout bounds a whole reload as the CLI waits for it: reading
	// files, building the providers and swapping the state. A reload that
	// takes longer still finishes, and is logged.
	Timeout = 60 * time.Second
	// MaxProblems and MaxLine bound what an answer carries.
	MaxProblems = 200
	MaxLine     = 4096
	// readRequestTimeout bounds how long a client may take to ask.
	readRequestTimeout = 5 * time.Second
)

// Result is the outcome of one reload.
type Result struct {
	// OK is true when the new configuration is in force.
	OK bool
	// Problems say why it was rejected, each "file:line: key: message"
	// as `sluis config check` prints them; empty when OK.
	Problems []string
}

// ErrNotRunning means no gateway answers on the data directory.
var ErrNotRunning = errors.New("no gateway is running on this data_dir (or it cannot be reached: see its log)")

// ErrNoAnswer means the gateway did not say how the reload ended.
var ErrNoAnswer = errors.New("the running gateway did not say how the reload ended; see its log")

// SocketName returns the name of the reload socket of a data directory:
// an abstract Unix socket (Linux), like package changes' announcements.
func SocketName(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "@sluis-reload-" + hex.EncodeToString(sum[:12])
}

// Serve answers reload requests on dataDir's socket until ctx ends, each
// by calling do (one at a time) and sending its Result. It returns once it
// listens; Wait on the returned func waits for its goroutines to end. An
// error means nobody can ask (`sluis reload` then says no gateway runs;
// SIGHUP still works).
func Serve(ctx context.Context, dataDir string, do func(context.Context) Result, log *slog.Logger) (wait func(), err error) {
	if !supported() {
		return func() {}, errors.New("reload requests over a local socket need Linux")
	}
	ln, err := net.Listen("unix", SocketName(dataDir))
	if err != nil {
		return func() {}, err
	}
	var wg sync.WaitGroup
	var one sync.Mutex           // one reload at a time
	var lastRefusal atomic.Int64 // when a refusal was last logged (Unix nanoseconds)
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					log.Error("reload: accept", "err", err)
				}
				return
			}
			wg.Go(func() {
				defer c.Close()
				uid, err := peerUID(c)
				if err != nil || (uid != 0 && uid != os.Getuid()) {
					// Once a minute at most: another local user could
					// otherwise fill the log.
					if now := time.Now().UnixNano(); now-lastRefusal.Load() > int64(time.Minute) {
						lastRefusal.Store(now)
						log.Warn("reload: refused a request from another user (further ones are not logged for a minute)", "uid", uid, "err", err)
					}
					return
				}
				c.SetReadDeadline(time.Now().Add(readRequestTimeout))
				line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
				if err != nil || line != "reload\n" {
					return
				}
				one.Lock()
				res := do(ctx)
				one.Unlock()
				c.SetWriteDeadline(time.Now().Add(readRequestTimeout))
				c.Write(encode(res))
			})
		}
	})
	return wg.Wait, nil
}

// encode is the answer: "ok", or "rejected" and one problem a line.
func encode(res Result) []byte {
	if res.OK {
		return []byte("ok\n")
	}
	var b strings.Builder
	b.WriteString("rejected\n")
	for i, p := range res.Problems {
		if i == MaxProblems {
			fmt.Fprintf(&b, "and %d more problems (see the gateway's log)\n", len(res.Problems)-i)
			break
		}
		p = strings.NewReplacer("\r", " ", "\n", " ").Replace(p)
		if len(p) > MaxLine {
			p = p[:MaxLine]
		}
		b.WriteString(p + "\n")
	}
	return []byte(b.String())
}

// Ask asks the gateway running on dataDir to reload its configuration
// (the file it was started with) and waits, for up to Timeout, for the
// result. It fails with ErrNotRunning when no gateway listens, and refuses
// a listener that runs as another user than root, the caller or the
// owner of dataDir.
func Ask(ctx context.Context, dataDir string) (Result, error) {
	if !supported() {
		return Result{}, errors.New("sluis reload needs Linux; send the gateway SIGHUP instead")
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", SocketName(dataDir))
	if err != nil {
		return Result{}, ErrNotRunning
	}
	defer c.Close()
	uid, err := peerUID(c)
	if err != nil {
		return Result{}, fmt.Errorf("reload: who listens: %w", err)
	}
	if uid != 0 && uid != os.Getuid() && uid != ownerUID(dataDir) {
		return Result{}, fmt.Errorf("reload: the socket of data_dir %s is held by a process of user id %d, which is not the gateway's: not asking it", dataDir, uid)
	}
	c.SetDeadline(time.Now().Add(Timeout))
	if _, err := c.Write([]byte("reload\n")); err != nil {
		return Result{}, ErrNoAnswer
	}
	sc := bufio.NewScanner(io.LimitReader(c, int64(MaxProblems+2)*(MaxLine+1)))
	sc.Buffer(make([]byte, 0, 1024), MaxLine+1)
	if !sc.Scan() {
		return Result{}, ErrNoAnswer
	}
	switch sc.Text() {
	case "ok":
		return Result{OK: true}, nil
	case "rejected":
	default:
		return Result{}, ErrNoAnswer
	}
	var res Result
	for sc.Scan() {
		res.Problems = append(res.Problems, sc.Text())
	}
	if len(res.Problems) == 0 {
		return Result{}, ErrNoAnswer
	}
	return res, nil
}
