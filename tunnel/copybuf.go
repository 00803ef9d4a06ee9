package tunnel

import "sync"

// Copy buffers. An idle tunnel holds only a small buffer per direction
// (each read waits in one), so that a thousand idle tunnels cost little;
// a tunnel whose reads come back full (a bulk transfer) takes a large one
// from a pool, which means fewer, larger HTTP/2 frames, TLS writes and
// hand-overs to the HTTP/2 server per byte, and gives it back as soon as
// a read comes back short.
const (
	smallBuf = 16 << 10
	largeBuf = 256 << 10
)

var largeBufs = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// copyBuf is one direction's buffer.
type copyBuf struct {
	small []byte
	large *[]byte
}

// next returns the buffer for the next read, given how full the last one
// came back.
func (c *copyBuf) next(lastFull bool) []byte {
	switch {
	case lastFull && c.large == nil:
		c.large = largeBufs.Get().(*[]byte)
	case !lastFull && c.large != nil:
		largeBufs.Put(c.large)
		c.large = nil
	}
	if c.large != nil {
		return *c.large
	}
	if c.small == nil {
		c.small = make([]byte, smallBuf)
	}
	return c.small
}

// release gives back a large buffer still held.
func (c *copyBuf) release() {
	if c.large != nil {
		largeBufs.Put(c.large)
		c.large = nil
	}
}
