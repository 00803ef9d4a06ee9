package audit

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluis-gateway/sluis"
)

// EventDropped is recorded when the forwarding queue overflowed, with the
// number of events the receiver did not get.
const EventDropped = "audit.dropped"

// Syslog forwards events as they happen to a syslog receiver: RFC 5424
// messages with octet-counting framing (RFC 6587) over TCP, optionally TLS.
// Events wait in a bounded queue while the receiver is down and are sent
// when it is back; when the queue overflows, the count of lost events is
// recorded as an audit.dropped event (in the trail, and then forwarded).
type Syslog struct {
	Address string      // host:port of the receiver
	TLS     *tls.Config // nil means plain TCP
	// Queue bounds the events waiting for the receiver; zero means 10000.
	Queue int
	// Record writes the audit.dropped event into the trail.
	Record func(ctx context.Context, e sluis.Event) error
	Log    *slog.Logger

	once    sync.Once
	ch      chan sluis.Event
	mu      sync.Mutex // guards dropped
	dropped int
	// droppedTotal counts every event dropped since the start (dropped
	// only those not reported yet).
	droppedTotal atomic.Uint64
	hostname     string
}

func (s *Syslog) init() {
	s.once.Do(func() {
		s.ch = make(chan sluis.Event, orDefault(s.Queue, 10000))
		s.hostname, _ = os.Hostname()
		if s.hostname == "" {
			s.hostname = "-"
		}
	})
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// Forward queues e for the receiver without waiting.
func (s *Syslog) Forward(e sluis.Event) {
	s.init()
	select {
	case s.ch <- e:
	default:
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
		s.droppedTotal.Add(1)
	}
}

// Queued returns how many events wait for the receiver now.
func (s *Syslog) Queued() int {
	s.init()
	return len(s.ch)
}

// Dropped returns how many events overflowed the queue since the start.
func (s *Syslog) Dropped() uint64 { return s.droppedTotal.Load() }

// Run sends queued events until ctx ends, reconnecting with backoff. Events
// are sent in batches; a batch whose write fails is sent again whole on the
// next connection, so a receiver that goes away loses nothing that was
// queued (it may see an event twice, which its id tells).
func (s *Syslog) Run(ctx context.Context) {
	s.init()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := 100 * time.Millisecond
	var batch []sluis.Event
	for {
		if len(batch) == 0 {
			s.reportDropped(ctx)
			select {
			case <-ctx.Done():
				return
			case e := <-s.ch:
				batch = append(batch, e)
			}
			for more := true; more && len(batch) < 256; {
				select {
				case e := <-s.ch:
					batch = append(batch, e)
				default:
					more = false
				}
			}
		}
		if conn != nil && peerGone(conn) {
			// The receiver closed while we were idle: a write now would
			// seem to succeed and be lost.
			conn.Close()
			conn = nil
		}
		if conn == nil {
			c, err := s.dial(ctx)
			if err != nil {
				s.Log.Warn("audit: syslog receiver unreachable", "address", s.Address, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 10*time.Second)
				continue
			}
			conn, backoff = c, 100*time.Millisecond
		}
		w := bufio.NewWriter(conn)
		for _, e := range batch {
			msg := s.format(e)
			fmt.Fprintf(w, "%d %s", len(msg), msg)
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := w.Flush(); err != nil {
			conn.Close()
			conn = nil
			continue // the same batch, on a new connection
		}
		batch = batch[:0]
	}
}

func (s *Syslog) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if s.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.TLS}
		return td.DialContext(ctx, "tcp", s.Address)
	}
	return d.DialContext(ctx, "tcp", s.Address)
}

// reportDropped records how many events overflowed the queue since the
// last report.
func (s *Syslog) reportDropped(ctx context.Context) {
	if len(s.ch) > cap(s.ch)/2 {
		return // report when the report itself has room in the queue
	}
	s.mu.Lock()
	n := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if n > 0 && s.Record != nil {
		s.Record(ctx, sluis.Event{Type: EventDropped, Source: "gateway", Outcome: sluis.OutcomeFailure,
			Detail: fmt.Sprintf("%d events were not forwarded to the syslog receiver %s: its queue was full", n, s.Address)})
	}
}

// format returns the RFC 5424 message for e: facility authpriv, severity
// notice for successes and warning otherwise; the event's fields as
// structured data, its detail as the message.
func (s *Syslog) format(e sluis.Event) string {
	sev := 5
	if e.Outcome != sluis.OutcomeSuccess {
		sev = 4
	}
	pri := 10*8 + sev
	var sd strings.Builder
	sd.WriteString("[sluis@32473")
	for _, kv := range [][2]string{{"id", fmt.Sprint(e.ID)}, {"user", e.User}, {"source", e.Source}, {"app", e.App},
		{"outcome", e.Outcome}, {"hash", fmt.Sprintf("%x", e.Hash)}} {
		fmt.Fprintf(&sd, ` %s="%s"`, kv[0], sdEscape(kv[1]))
	}
	sd.WriteString("]")
	return fmt.Sprintf("<%d>1 %s %s sluis %d %s %s %s", pri, e.Time.UTC().Format(time.RFC3339Nano), s.hostname,
		os.Getpid(), msgID(e.Type), sd.String(), strings.Map(printable, e.Detail))
}

// sdEscape escapes a structured-data value (RFC 5424 section 6.3.3).
func sdEscape(v string) string {
	v = strings.Map(printable, v)
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(v)
}

// msgID returns the event type as an RFC 5424 MSGID: printable ASCII, at
// most 32 characters.
func msgID(t string) string {
	if t == "" {
		return "-"
	}
	b := []byte(t)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

// printable replaces control characters, so a value cannot break a frame
// or forge a line in a receiver's log.
func printable(r rune) rune {
	if r < 0x20 || r == 0x7f {
		return ' '
	}
	return r
}

// peerGone reports whether the receiver has closed the connection (or sent
// something, which a syslog receiver never does), reading the socket
// without waiting.
func peerGone(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, err := syscall.Read(int(fd), buf[:])
		gone = n >= 0 || !errors.Is(err, syscall.EAGAIN)
		return true // never wait
	})
	return err != nil || gone
}
