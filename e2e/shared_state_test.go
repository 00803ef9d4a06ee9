package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Two nodes on one PostgreSQL database count every guess and every probe
// together: an attacker who spreads them over both gets no more than from
// one. Six wrong passwords for one user from one address, alternating
// between the nodes (three each, under the per-node budget of five),
// lock that user from that address on both; four probes from a scanner,
// two on each node (block_after 4), block it on both.
func TestTwoNodesShareThrottlesAndProbeCounts(t *testing.T) {
	_, urlFile := newDatabase(t)
	extra := "store:\n  postgres:\n    url_file: " + urlFile + "\nprobes:\n  block_after: 4\n"
	app := testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true}
	g1 := testenv.StartWith(t, extra, app)
	g1.AddUser("anna", pw, "staff")
	g2 := secondNode(t, g1, extra, app)
	nodes := []*testenv.Gateway{g1, g2}

	const attacker = "127.0.0.2"
	clients := []*http.Client{g1.ClientFrom(attacker), g2.ClientFrom(attacker)}
	for i := range 6 {
		n := i % 2
		if p := nodes[n].SubmitPassword(clients[n], "", "anna", fmt.Sprintf("guess %d", i)); p.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d on node %d: %d", i, n+1, p.StatusCode)
		}
	}
	// The sixth failure locked anna from this address for a second, on
	// both nodes: even the right password waits.
	for _, n := range []int{0, 1} {
		if p := nodes[n].SubmitPassword(clients[n], "", "anna", pw); p.StatusCode != http.StatusTooManyRequests || !strings.Contains(p.Body, "Try again in") {
			t.Fatalf("the right password on node %d after six guesses over two nodes: %d", n+1, p.StatusCode)
		}
	}

	const scanner = "127.0.0.3"
	scanners := []*http.Client{g1.ClientFrom(scanner), g2.ClientFrom(scanner)}
	for i := range 4 {
		n := i % 2
		req, _ := http.NewRequest("GET", nodes[n].URL(nodes[n].Portal, "/vpns/cfg/smb.conf"), nil)
		nodes[n].Do(scanners[n], req)
	}
	// Stored by node 2, which took the fourth; node 1 learns of it from
	// the database (LISTEN/NOTIFY, or its poll within a second).
	for n, g := range nodes {
		await(t, 3*time.Second, fmt.Sprintf("the scanner blocked on node %d after four probes over two nodes", n+1), func() bool {
			p := g.Get(scanners[n], g.URL(g.Portal, "/login"))
			return p.StatusCode == http.StatusForbidden && strings.Contains(p.Body, "your network address are blocked")
		})
	}
	if list := g1.MustCLI("", "block", "list"); !strings.Contains(list, scanner+"/32  automatic") {
		t.Fatalf("block list:\n%s", list)
	}
	// Nobody else is blocked or throttled.
	if p := g2.Get(g2.ClientFrom("127.0.0.4"), g2.URL(g2.Portal, "/login")); p.StatusCode != http.StatusOK {
		t.Fatalf("another address: %d", p.StatusCode)
	}
	if out := g1.MustCLI("", "audit", "verify"); !strings.HasPrefix(out, "intact, ") {
		t.Fatalf("audit verify: %s", out)
	}
}

// A user's open tunnels are counted over both nodes: with max_per_user 2,
// one tunnel through each node leaves room for none more on either, and
// closing one makes room again.
func TestTwoNodesShareTheTunnelLimit(t *testing.T) {
	_, urlFile := newDatabase(t)
	extra := "store:\n  postgres:\n    url_file: " + urlFile + "\ntunnels:\n  max_per_user: 2\n"
	echo := newEcho(t)
	app := testenv.App{Name: "echo", TCP: echo.addr(), Users: []string{"anna"}, MFA: true}
	g1 := testenv.StartWith(t, extra, app)
	secret := g1.AddUser("anna", pw, "staff")
	g2 := secondNode(t, g1, extra, app)
	// One sluis connect through each node (codes from one counter, so
	// that no step is used twice).
	c1 := startConnect(t, g1, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g1.Code("anna", secret))
	c2 := startConnect(t, g2, t.TempDir(), "echo", pw+"\n", "--user", "anna", "--password-stdin", "--code", g1.Code("anna", secret))
	open := func(c *client, wait time.Duration) (net.Conn, error) {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		conn.Write([]byte("y"))
		if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
			conn.Close()
			return nil, err
		}
		conn.SetReadDeadline(time.Time{})
		return conn, nil
	}
	first, err := open(c1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := open(c2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client{"node 1": c1, "node 2": c2} {
		if conn, err := open(c, 5*time.Second); err == nil {
			conn.Close()
			t.Fatalf("a third tunnel through %s, with one open on each node", name)
		}
	}
	await(t, 5*time.Second, "the refusal in the clients' logs", func() bool {
		return strings.Contains(c1.stderr.String(), "you have 2 tunnels open") && strings.Contains(c2.stderr.String(), "you have 2 tunnels open")
	})
	// Closed on node 2: node 1 may open one more.
	second.Close()
	closed := time.Now()
	await(t, 5*time.Second, "room for a tunnel through node 1", func() bool {
		conn, err := open(c1, 200*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	t.Logf("room again %v after the close", time.Since(closed))
}
