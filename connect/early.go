package connect

import (
	"errors"
	"io"
	"sync"
)

// Early data. A new connection's first bytes (an SSH banner, a database's
// startup message) go out right behind the stream's headers, without
// waiting for the gateway's answer: the gateway answers only once it
// dialled the app, and it copies nothing before the tunnel.open event is
// stored, so waiting for the answer would add a round trip to every
// connection's setup and save nothing. The gateway holds these bytes in
// the stream's window until the tunnel is open, and drops them with a
// tunnel it refuses.
//
// Until the answer, what is read from the local side is kept, so that an
// attempt that fails (the gateway restarting) is made again with the same
// bytes; past maxEarly the local side is not read until the answer.

// maxEarly bounds what is read from the local side before the gateway
// answered.
const maxEarly = 64 << 10

var errAttemptClosed = errors.New("connect: the attempt was given up")

// upload reads the local side of one connection, from the moment it was
// accepted, for the attempts to open its stream.
type upload struct {
	in io.Reader
	// After the answer, the local side is copied into liveW and the
	// answered attempt reads live, once it has sent what was kept.
	live  *io.PipeReader
	liveW *io.PipeWriter
	done  chan struct{} // run has returned
	n     int64         // bytes read from the local side; read after done

	mu       sync.Mutex // guards the fields below
	cond     sync.Cond  // signalled when one of them changes
	kept     []byte     // read before the answer; appended to only before it
	ended    bool       // the local side ended before the answer...
	endErr   error      // ...so (nil: cleanly)
	answered *attempt   // the attempt the gateway opened; nil before
	stopped  bool       // no attempt will be made: stop reading
}

// attempt is the request body of one attempt to open the stream.
type attempt struct {
	u        *upload
	pos      int  // of u.kept, sent
	closed   bool // given up, or done: Read fails; guarded by u.mu
	switched bool // reads live now; set under u.mu, read by the reader
}

func newUpload(in io.Reader) *upload {
	u := &upload{in: in, done: make(chan struct{})}
	u.cond.L = &u.mu
	u.live, u.liveW = io.Pipe()
	go u.run()
	return u
}

// run reads the local side: into kept until the answer (and no further
// than maxEarly), then into the live pipe.
func (u *upload) run() {
	defer close(u.done)
	var buf []byte
	for {
		u.mu.Lock()
		for u.answered == nil && !u.stopped && len(u.kept) >= maxEarly {
			u.cond.Wait()
		}
		answered, stopped := u.answered != nil, u.stopped
		u.mu.Unlock()
		switch {
		case stopped:
			return
		case answered:
			n, err := copyAdaptive(u.liveW, u.in)
			u.n += n
			if localClosed(err) {
				err = nil // the local side reset its connection: its end, not a failure
			}
			u.liveW.CloseWithError(err) // nil: a clean end of the stream
			return
		}
		if buf == nil {
			buf = make([]byte, smallCopy)
		}
		n, err := u.in.Read(buf)
		u.n += int64(n)
		u.mu.Lock()
		if u.answered == nil {
			u.kept = append(u.kept, buf[:n]...)
			if err != nil {
				u.ended = true
				if err != io.EOF && !localClosed(err) {
					u.endErr = err
				}
			}
			u.cond.Broadcast()
			u.mu.Unlock()
			if err != nil {
				return
			}
			continue
		}
		// Answered while this read was under way: these bytes follow what
		// was kept, which the answered attempt sends before it reads live.
		u.mu.Unlock()
		if n > 0 {
			if _, werr := u.liveW.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF || localClosed(err) {
				err = nil
			}
			u.liveW.CloseWithError(err)
			return
		}
	}
}

// attempt returns the body of a new attempt, which sends what was kept
// first.
func (u *upload) attempt() *attempt { return &attempt{u: u} }

// answer notes that the gateway opened the stream of a: no attempt is
// made again, and nothing more is kept.
func (u *upload) answer(a *attempt) {
	u.mu.Lock()
	u.answered = a
	u.cond.Broadcast()
	u.mu.Unlock()
}

// stop ends the reading of the local side: no attempt succeeded, or the
// connection is done. A read under way ends when the local side is
// closed.
func (u *upload) stop() {
	u.mu.Lock()
	u.stopped = true
	u.cond.Broadcast()
	u.mu.Unlock()
	u.live.CloseWithError(errAttemptClosed)
}

func (a *attempt) Read(p []byte) (int, error) {
	if a.switched {
		return a.u.live.Read(p)
	}
	u := a.u
	u.mu.Lock()
	for {
		switch {
		case a.closed:
			u.mu.Unlock()
			return 0, errAttemptClosed
		case a.pos < len(u.kept):
			n := copy(p, u.kept[a.pos:])
			a.pos += n
			u.mu.Unlock()
			return n, nil
		case u.ended:
			err := u.endErr
			u.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return 0, err
		case u.answered == a:
			// Everything kept is sent; the rest comes live.
			a.switched, u.kept = true, nil
			u.mu.Unlock()
			return u.live.Read(p)
		}
		u.cond.Wait()
	}
}

// Close gives the attempt up (or ends the answered one's body): a Read
// under way returns.
func (a *attempt) Close() error {
	u := a.u
	u.mu.Lock()
	a.closed = true
	answered := u.answered == a
	u.cond.Broadcast()
	u.mu.Unlock()
	if answered {
		u.live.CloseWithError(errAttemptClosed)
	}
	return nil
}
