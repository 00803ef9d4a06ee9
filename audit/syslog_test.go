package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
)

// receiver is a syslog receiver over TCP with octet-counting framing.
type receiver struct {
	mu    sync.Mutex
	msgs  []string
	conns []net.Conn
	ln    net.Listener
}

// stop makes the receiver go away: no listener, no connections.
func (r *receiver) stop() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
}

func listen(t *testing.T, addr string) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go r.serve(c)
		}
	}()
	return r
}

func (r *receiver) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		lenStr, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(lenStr))
		if err != nil || n <= 0 || n > 1<<20 {
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, string(buf))
		r.mu.Unlock()
	}
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitFor waits (bounded) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // the forwarder runs on its own goroutine
	}
}

func TestSyslogForwardsAndSurvivesAnOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rcv := listen(t, "127.0.0.1:0")
	addr := rcv.ln.Addr().String()
	var recorded []sluis.Event
	var recMu sync.Mutex
	fw := &audit.Syslog{Address: addr, Queue: 50, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	fw.Record = func(_ context.Context, e sluis.Event) error {
		recMu.Lock()
		recorded = append(recorded, e)
		recMu.Unlock()
		fw.Forward(e)
		return nil
	}
	go fw.Run(ctx)

	ev := func(i int) sluis.Event {
		return sluis.Event{ID: int64(i), Time: time.Now(), Type: sluis.EventLoginFailure, User: fmt.Sprintf("user%d", i),
			Source: "192.0.2.1", App: `a"b]c\d`, Outcome: sluis.OutcomeFailure, Detail: "bad password\nforged line"}
	}
	fw.Forward(ev(1))
	waitFor(t, "the first event", func() bool { return len(rcv.got()) == 1 })
	m := rcv.got()[0]
	for _, want := range []string{"<84>1 ", " sluis ", " login.failure ", `user="user1"`, `source="192.0.2.1"`, `outcome="failure"`, `app="a\"b\]c\\d"`, `bad password forged line`} {
		if !strings.Contains(m, want) {
			t.Errorf("message %q lacks %q", m, want)
		}
	}
	if strings.Contains(m, "\n") {
		t.Errorf("message has a raw newline: %q", m)
	}

	// The receiver goes away; events queue up; it comes back on the same
	// address and gets every one of them.
	rcv.stop()
	for i := 2; i <= 30; i++ {
		fw.Forward(ev(i))
	}
	rcv2 := listen(t, addr)
	defer rcv2.stop()
	waitFor(t, "the queued events", func() bool { return users(rcv2.got()) == 29 })

	// An outage longer than the queue: the overflow is counted and
	// recorded as audit.dropped, which reaches the receiver too.
	rcv2.stop()
	for i := 31; i <= 200; i++ {
		fw.Forward(ev(i))
	}
	rcv3 := listen(t, addr)
	defer rcv3.stop()
	waitFor(t, "the audit.dropped event", func() bool {
		for _, m := range rcv3.got() {
			if strings.Contains(m, " audit.dropped ") {
				return true
			}
		}
		return false
	})
	recMu.Lock()
	defer recMu.Unlock()
	if len(recorded) == 0 {
		t.Fatal("no audit.dropped event recorded")
	}
	for _, e := range recorded {
		if e.Type != audit.EventDropped || !strings.Contains(e.Detail, "events were not forwarded") {
			t.Fatalf("recorded %+v", e)
		}
	}
}

var userRE = regexp.MustCompile(`user="(user\d+)"`)

// users counts the distinct users in msgs.
func users(msgs []string) int {
	seen := map[string]bool{}
	for _, m := range msgs {
		if u := userRE.FindStringSubmatch(m); u != nil {
			seen[u[1]] = true
		}
	}
	return len(seen)
}
