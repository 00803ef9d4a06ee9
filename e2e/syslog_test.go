package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// The gateway forwards its audit events, as they happen, to a syslog
// receiver.
func TestAuditEventsReachASyslogReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var msgs []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString(' ')
					if err != nil {
						return
					}
					n, _ := strconv.Atoi(strings.TrimSpace(l))
					if n <= 0 || n > 1<<16 {
						return
					}
					buf := make([]byte, n)
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					mu.Lock()
					msgs = append(msgs, string(buf))
					mu.Unlock()
				}
			}()
		}
	}()
	up := newUpstream(t)
	g := testenv.StartWith(t, fmt.Sprintf("audit:\n  syslog:\n    address: %s\n", ln.Addr()),
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	g.MustCLI(pw+"\n", "user", "add", "anna", "--groups", "staff", "--password-stdin")
	g.SubmitPassword(g.Client(), "", "anna", "wrong password")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(msgs, "\n")
		mu.Unlock()
		if strings.Contains(got, " login.failure ") {
			if !strings.Contains(got, `user="anna"`) || !strings.Contains(got, "bad password") || !strings.Contains(got, `hash="`) {
				t.Fatalf("forwarded: %s", got)
			}
			if strings.Contains(got, "wrong password") {
				t.Fatal("the password was forwarded")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login.failure forwarded; got:\n%s", got)
		}
		time.Sleep(10 * time.Millisecond) // the receiver runs on its own goroutine
	}
}
