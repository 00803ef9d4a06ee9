package connect

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
)

// TLS records go out at most 16 KiB each, and crypto/tls writes each one
// to the socket on its own: a 256 KiB HTTP/2 frame is sixteen system calls,
// each of which, on a fast network or loopback, costs about as much as the
// bytes it carries. The connection to the gateway therefore gathers the
// records of one Write (one frame, or what HTTP/2 flushes at once) and
// writes them to the socket together.

// maxBatch bounds what one batch holds before it is written anyway.
const maxBatch = 1 << 20

// batchConn sits under the TLS connection: while a Write of the TLS
// connection is under way, the records it writes are held and then written
// in one go.
type batchConn struct {
	net.Conn
	mu      sync.Mutex // guards holders and buf, and orders writes to Conn
	holders int        // Writes of the TLS connection under way
	buf     []byte
	err     error // the first failed write; every later one fails too
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.holders > 0 {
		if len(b.buf)+len(p) > maxBatch {
			if err := b.flushLocked(); err != nil {
				return 0, err
			}
		}
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if err := b.flushLocked(); err != nil {
		return 0, err
	}
	n, err := b.Conn.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *batchConn) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	if err != nil {
		b.err = err
	}
	return err
}

func (b *batchConn) hold() {
	b.mu.Lock()
	b.holders++
	b.mu.Unlock()
}

// release ends a hold, and writes what was held when it was the last.
func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holders--; b.holders > 0 {
		return nil
	}
	err := b.flushLocked()
	if cap(b.buf) > 2*largeCopy {
		b.buf = nil // a batch that was unusually large is not kept
	}
	return err
}

// batchedTLS is the TLS connection to the gateway with its records
// batched; ConnectionState (from *tls.Conn) tells net/http that it speaks
// HTTP/2.
type batchedTLS struct {
	*tls.Conn
	raw *batchConn
}

func (c *batchedTLS) Write(p []byte) (int, error) {
	c.raw.hold()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.release(); err == nil && ferr != nil {
		// The records were taken but not sent: none of p counts as
		// written (the connection is broken now anyway).
		return 0, ferr
	}
	return n, err
}

// dialTLS dials the gateway (or o.ConnectTo) and does the TLS handshake
// over a batchConn.
func dialTLS(ctx context.Context, d *net.Dialer, o Options, conf *tls.Config, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if o.ConnectTo != "" {
		addr = o.ConnectTo
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conf = conf.Clone()
	if conf.ServerName == "" {
		conf.ServerName = host
	}
	bc := &batchConn{Conn: raw}
	tc := tls.Client(bc, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return &batchedTLS{Conn: tc, raw: bc}, nil
}

// Copy buffers: a connection starts with a small one and takes a large
// one while its reads come back full (a bulk transfer), so that a large
// transfer goes in large HTTP/2 frames and an idle connection holds
// little.
const (
	smallCopy = 16 << 10
	largeCopy = 256 << 10
)

var largeCopies = sync.Pool{New: func() any { b := make([]byte, largeCopy); return &b }}

// copyAdaptive is io.Copy with such buffers.
func copyAdaptive(dst io.Writer, src io.Reader) (written int64, err error) {
	small := make([]byte, smallCopy)
	var large *[]byte
	defer func() {
		if large != nil {
			largeCopies.Put(large)
		}
	}()
	buf := small
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			written += int64(m)
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return written, werr
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return written, nil
			}
			return written, rerr
		}
		switch full := n == len(buf); {
		case full && large == nil:
			large = largeCopies.Get().(*[]byte)
			buf = *large
		case !full && large != nil:
			largeCopies.Put(large)
			large, buf = nil, small
		}
	}
}
