package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Two gateway nodes on one PostgreSQL database (store.postgres.url_file),
// each with a copy of the same data_dir (the keys): a user added with the
// CLI of one logs in through it, the session works on the other node, and
// a revocation made with the first node's CLI ends the session on the
// second at once (the database tells it), or at the latest at its next
// poll of the revision. The trail that both wrote verifies. A node given
// a new data_dir (new keys) is refused.
func TestTwoNodesOnPostgreSQL(t *testing.T) {
	srv, urlFile := newDatabase(t)
	extra := "store:\n  postgres:\n    url_file: " + urlFile + "\n"
	wiki := newUpstream(t)
	app := testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true}
	g1 := testenv.StartWith(t, extra, app)
	if _, err := os.Stat(filepath.Join(g1.Dir, "data", "sluis.db")); err == nil {
		t.Fatal("a gateway on PostgreSQL made a SQLite database in data_dir")
	}
	if logs := g1.Logs(); strings.Contains(logs, srv.Password) || !strings.Contains(logs, "sluis: store PostgreSQL postgres://sluis:xxxxx@127.0.0.1:") {
		t.Fatalf("the gateway's log of its store:\n%s", logs)
	}
	secret := g1.AddUser("bert", pw, "staff")
	c := g1.Client()
	if p := g1.Login(c, g1.URL(wikiHost, "/start"), "bert", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login on node 1: %d\n%s", p.StatusCode, p.Body)
	}
	if got := wiki.last(t).Header.Get("X-Sluis-User"); got != "bert" {
		t.Fatalf("upstream got X-Sluis-User %q", got)
	}

	// Node 2: the same keys, its own data_dir and listener.
	g2 := secondNode(t, g1, extra, app)
	c2 := g2.Client()
	c2.Jar = c.Jar // the same browser
	if p := g2.Get(c2, g2.URL(wikiHost, "/on-node-2")); p.StatusCode != http.StatusOK {
		t.Fatalf("node 2 with node 1's session: %d", p.StatusCode)
	}

	g1.MustCLI("", "session", "revoke", "--user", "bert")
	revoked := time.Now()
	deadline := revoked.Add(5 * time.Second)
	for {
		p := g2.Get(c2, g2.URL(wikiHost, "/after-revoke"))
		if p.StatusCode != http.StatusOK {
			// Told by the database (LISTEN/NOTIFY), not at the next poll.
			t.Logf("node 2 refused the session revoked through node 1 after %v", time.Since(revoked).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node 2 still lets the revoked session through after 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := g2.MustCLI("", "audit", "verify"); !strings.HasPrefix(out, "intact, ") {
		t.Fatalf("audit verify: %s", out)
	}

	// A third node with a data_dir of its own keys would seal and sign
	// with keys the others do not have.
	dir3 := t.TempDir()
	cfg3 := filepath.Join(dir3, "sluis.yaml")
	body, _ := os.ReadFile(g1.ConfigPath)
	os.WriteFile(cfg3, []byte(strings.Replace(string(body), filepath.Join(g1.Dir, "data"), filepath.Join(dir3, "data"), 1)), 0o600)
	g3 := &testenv.Gateway{ConfigPath: cfg3}
	if _, err := g3.CLI("", "user", "list"); err == nil || !strings.Contains(err.Error(), "already holds data") {
		t.Fatalf("a new data_dir on a store in use: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir3, "data", "seal.key")); err == nil {
		t.Fatal("new keys were made for a store in use")
	}
}

// newDatabase starts a real PostgreSQL (one for the test binary) and
// gives a new database on it, its URL in a file as store.postgres.url_file
// takes it.
func newDatabase(t *testing.T) (srv *pgtest.Server, urlFile string) {
	t.Helper()
	srv = pgtest.Start(t)
	urlFile = filepath.Join(t.TempDir(), "db-url")
	if err := os.WriteFile(urlFile, []byte(srv.NewDatabase(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, urlFile
}

// secondNode starts another node of g's store, with a copy of g's
// data_dir (the same keys), configured with extra and apps as g is.
func secondNode(t *testing.T, g *testenv.Gateway, extra string, apps ...testenv.App) *testenv.Gateway {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join(g.Dir, "data"), filepath.Join(dir, "data"))
	return testenv.StartIn(t, dir, extra, apps...)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "serve.lock" || e.Name() == "reserve" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// An installation moved from SQLite to PostgreSQL with `sluis store copy`
// goes on as it was: the browser's session of before still works, the
// user logs in again with the same password and one-time codes (the
// copied secrets open with data_dir's keys), a revocation counts, and the
// audit trail, with the events of before and after, verifies.
func TestMoveToPostgreSQL(t *testing.T) {
	wiki := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: wiki.URL, Groups: []string{"staff"}, MFA: true})
	secret := g.AddUser("bert", pw, "staff")
	c := g.Client()
	if p := g.Login(c, g.URL(wikiHost, "/before"), "bert", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login on SQLite: %d", p.StatusCode)
	}
	g.MustCLI("", "block", "add", "198.51.100.0/24", "--reason", "scanner")
	g.Stop()

	_, urlFile := newDatabase(t)
	db := filepath.Join(g.Dir, "data", "sluis.db")
	out := g.MustCLI("", "store", "copy", "--from", "sqlite:"+db, "--to-file", urlFile)
	if !strings.Contains(out, "chained as in the source") {
		t.Fatalf("store copy:\n%s", out)
	}
	body, _ := os.ReadFile(g.ConfigPath)
	cfg := strings.Replace(string(body), "apps:\n", "store:\n  postgres:\n    url_file: "+urlFile+"\napps:\n", 1)
	if err := os.WriteFile(g.ConfigPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The old database stays where it was, as a backup; the store is now
	// the copy.
	g = g.Restart()
	if !strings.Contains(g.Logs(), "sluis: store PostgreSQL") {
		t.Fatalf("the gateway's log:\n%s", g.Logs())
	}
	jar := c.Jar
	c = g.Client() // the same browser, at the restarted gateway's port
	c.Jar = jar
	if p := g.Get(c, g.URL(wikiHost, "/after")); p.StatusCode != http.StatusOK {
		t.Fatalf("the session of before, on PostgreSQL: %d", p.StatusCode)
	}
	if out := g.MustCLI("", "block", "list"); !strings.Contains(out, "198.51.100.0/24") {
		t.Fatalf("block list on the copy:\n%s", out)
	}
	c2 := g.Client()
	if p := g.Login(c2, g.URL(wikiHost, "/again"), "bert", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("a new login on PostgreSQL: %d", p.StatusCode)
	}
	g.MustCLI("", "session", "revoke", "--user", "bert")
	if p := g.Get(c, g.URL(wikiHost, "/revoked")); p.StatusCode == http.StatusOK {
		t.Fatal("a revoked session still works")
	}
	out = g.MustCLI("", "audit", "verify")
	if !strings.HasPrefix(out, "intact, ") {
		t.Fatalf("audit verify on the moved store: %s", out)
	}
	if evs := g.MustCLI("", "audit", "--since", "0", "--json"); !strings.Contains(evs, `"type":"admin.block.add"`) || !strings.Contains(evs, `"type":"admin.session.revoke"`) {
		t.Fatalf("the trail lacks the events of before or after:\n%s", evs)
	}
}
