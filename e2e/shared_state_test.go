package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Two nodes on one PostgreSQL database count every guess and every probe
// together: an attacker who spreads them over both gets no more than from
// one. Six wrong passwords for one user from one address, alternating
// between the nodes (three each, under the per-node budget of five),
// lock that user from that address on both; four probes from a scanner,
// two on each node (block_after 4), block it on both.
func TestTwoNodesShareThrottlesAndProbeCounts(t *testing.T) {
	srv := pgtest.Start(t)
	urlFile := filepath.Join(t.TempDir(), "db-url")
	if err := os.WriteFile(urlFile, []byte(srv.NewDatabase(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := "store:\n  postgres:\n    url_file: " + urlFile + "\nprobes:\n  block_after: 4\n"
	app := testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true}
	g1 := testenv.StartWith(t, extra, app)
	g1.AddUser("anna", pw, "staff")
	dir2 := t.TempDir()
	copyDir(t, filepath.Join(g1.Dir, "data"), filepath.Join(dir2, "data"))
	g2 := testenv.StartIn(t, dir2, extra, app)
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
	for n, g := range nodes {
		if p := g.Get(scanners[n], g.URL(g.Portal, "/login")); p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "your network address are blocked") {
			t.Fatalf("the scanner on node %d after four probes over two nodes: %d", n+1, p.StatusCode)
		}
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
