package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/store/postgres"
	"github.com/sluis-gateway/sluis/store/storetest"
)

// The tests share one server, each with databases of its own.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func open(t testing.TB, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The suite every store passes, each test on a new database of one server.
func TestStore(t *testing.T) {
	srv := pgtest.Shared(t)
	storetest.Run(t, func(t *testing.T) sluis.Store {
		return open(t, srv.NewDatabase(t))
	})
}

// Nodes that start at once on an empty database all open it, and each
// migration is applied once: the advisory lock lets one node migrate while
// the others wait, then find the work done.
func TestNodesStartingAtOnceMigrateOnce(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	const nodes = 6
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	dbs := make([]*postgres.DB, nodes)
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = postgres.Open(ctx, url)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var applied, revisions, heads int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM schema_migrations), (SELECT count(*) FROM revision), (SELECT count(*) FROM audit_head)`).
		Scan(&applied, &revisions, &heads); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if applied != len(files) || revisions != 1 || heads != 1 {
		t.Fatalf("%d migrations recorded of %d files, %d revision rows, %d audit heads", applied, len(files), revisions, heads)
	}
	// Every node works on the one schema.
	for i, db := range dbs {
		if err := db.CreateUser(ctx, sluis.User{Name: fmt.Sprint("user", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// A migration that fails leaves nothing behind: it runs in a transaction,
// and the next start tries it again.
func TestMigrationRunsInATransaction(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A table in the way of the first migration's last statement.
	if _, err := conn.Exec(ctx, `CREATE TABLE known_browsers (x int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url); err == nil || !strings.Contains(err.Error(), "0001_init.sql") {
		t.Fatalf("opening with a migration that fails: %v", err)
	}
	var users, applied int
	conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'users'`).Scan(&users)
	conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied)
	if users != 0 || applied != 0 {
		t.Fatalf("a failed migration left %d users tables and %d records", users, applied)
	}
	if _, err := conn.Exec(ctx, `DROP TABLE known_browsers`); err != nil {
		t.Fatal(err)
	}
	open(t, url)
}

// The gateway's nodes and the CLI are separate processes with separate
// pools: a change made through one shows in another's Revision at once.
func TestRevisionSeesOtherNodes(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	node, cli := open(t, url), open(t, url)
	must(t, cli.CreateUser(ctx, sluis.User{Name: "anna"}))
	before, err := node.Revision(ctx)
	must(t, err)
	must(t, cli.SetDisabled(ctx, "anna", true))
	after, err := node.Revision(ctx)
	must(t, err)
	if after <= before {
		t.Fatalf("revision %d after another node's change, %d before", after, before)
	}
	// Reopening migrates nothing twice and keeps data.
	if u, err := open(t, url).User(ctx, "anna"); err != nil || !u.Disabled {
		t.Fatalf("reopened: %+v %v", u, err)
	}
}

// Nodes appending to the audit trail at once, alone and with changes,
// never fork the chain: every event follows the one before it, numbered
// without gaps, and the head names the last one.
func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	nodes := []*postgres.DB{open(t, url), open(t, url), open(t, url)}
	const workers, each = 4, 40
	var wg sync.WaitGroup
	errc := make(chan error, len(nodes)*workers)
	started := time.Now()
	for n, db := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					ev := sluis.Event{Type: "test", Detail: fmt.Sprintf("node %d worker %d event %d", n, w, i)}
					var err error
					switch i % 3 {
					case 0:
						_, err = db.AppendEvent(ctx, ev)
					case 1:
						_, err = db.AppendEvents(ctx, []sluis.Event{ev, ev})
					case 2:
						err = db.SetAppDisabled(sluis.WithEvents(ctx, ev), fmt.Sprint("app", n), i%2 == 0, "r", time.Now())
					}
					if err != nil {
						errc <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(started)
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	evs, err := nodes[0].Events(ctx, time.Time{})
	must(t, err)
	// Per worker: 14 single, 13 pairs, 13 with a change.
	want := len(nodes) * workers * (14 + 13*2 + 13)
	if len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	var prev []byte
	for i, e := range evs {
		if e.ID != int64(i+1) || !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, e.ChainHash(prev)) {
			t.Fatalf("event %d does not follow event %d: %+v", e.ID, i, e)
		}
		prev = e.Hash
	}
	id, hash, err := nodes[1].LastEvent(ctx)
	must(t, err)
	if id != int64(want) || !bytes.Equal(hash, prev) {
		t.Fatalf("head %d %x, want %d %x", id, hash, want, prev)
	}
	t.Logf("%d events from %d nodes x %d workers in %v (%.0f events/s, fsync off)", want, len(nodes), workers, elapsed.Round(time.Millisecond), float64(want)/elapsed.Seconds())
}

// Two nodes creating Alice and alice at once: one of them succeeds.
func TestNoTwinsAcrossNodes(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	for round := range 20 {
		name := fmt.Sprintf("user%d", round)
		var wg sync.WaitGroup
		var errA, errB error
		wg.Go(func() { errA = a.CreateUser(ctx, sluis.User{Name: name}) })
		wg.Go(func() { errB = b.CreateUser(ctx, sluis.User{Name: strings.ToUpper(name[:1]) + name[1:]}) })
		wg.Wait()
		if (errA == nil) == (errB == nil) {
			t.Fatalf("round %d: %v and %v; want exactly one to succeed", round, errA, errB)
		}
		for _, err := range []error{errA, errB} {
			if err != nil && sluis.ErrorCode(err) != sluis.ECONFLICT {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// A URL's password never shows in an error.
func TestErrorsHideThePassword(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	for _, u := range []string{
		strings.Replace(url, srv.Password, "s3cret-guess", 1),
		strings.Replace(url, "127.0.0.1:", "127.0.0.1:1", 1) + "&connect_timeout=2",
		strings.Replace(url, "postgres://", "postgres://%zz", 1),
	} {
		_, err := postgres.Open(context.Background(), u)
		if err == nil {
			t.Fatalf("opened %s", postgres.Redact(u))
		}
		if strings.Contains(err.Error(), "s3cret-guess") || strings.Contains(err.Error(), srv.Password) {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
	if r := postgres.Redact(url); strings.Contains(r, srv.Password) || !strings.Contains(r, "127.0.0.1") {
		t.Fatalf("Redact(%q) = %q", url, r)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// One event at a time from one connection: the cost of an append's round
// trips (lock the head, insert, commit).
func BenchmarkAppendEvent(b *testing.B) {
	srv := pgtest.Shared(b)
	db := open(b, srv.NewDatabase(b))
	ctx := context.Background()
	for b.Loop() {
		if _, err := db.AppendEvent(ctx, sluis.Event{Type: "bench", Detail: "x"}); err != nil {
			b.Fatal(err)
		}
	}
}

// An import refuses what it cannot hold (a table or column it does not
// know) rather than leave it behind, and then stores nothing at all.
func TestImportRefusesWhatItCannotHold(t *testing.T) {
	srv := pgtest.Shared(t)
	db := open(t, srv.NewDatabase(t))
	ctx := context.Background()
	rows := func(vals ...[]any) iter.Seq2[[]any, error] {
		return func(yield func([]any, error) bool) {
			for _, v := range vals {
				if !yield(v, nil) {
					return
				}
			}
		}
	}
	user := []any{"anna", "staff,ops", "h", int64(0), nil, int64(0), int64(1), nil, "", "", "", ""}
	userCols := []string{"name", "groups", "password_hash", "disabled", "totp_secret", "totp_last_step", "created_at", "passkey_handle", "source", "external_id", "email", "display_name"}
	for _, c := range []struct {
		name, want string
		src        postgres.Source
	}{
		{"unknown table", "no such table", func(ctx context.Context, table func(string, []string, iter.Seq2[[]any, error]) error) error {
			if err := table("users", userCols, rows(user)); err != nil {
				return err
			}
			return table("mystery", []string{"x"}, rows([]any{int64(1)}))
		}},
		{"unknown column", "no column shoe_size", func(ctx context.Context, table func(string, []string, iter.Seq2[[]any, error]) error) error {
			return table("users", append(userCols, "shoe_size"), rows(append(user, int64(42))))
		}},
		{"wrong type", "column disabled", func(ctx context.Context, table func(string, []string, iter.Seq2[[]any, error]) error) error {
			u := slices.Clone(user)
			u[3] = "yes"
			return table("users", userCols, rows(u))
		}},
	} {
		if _, err := db.Import(ctx, c.src); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if us, _ := db.Users(ctx); len(us) != 0 {
			t.Fatalf("%s: a failed import left users %+v", c.name, us)
		}
	}
	// What it knows, it takes; and only into an empty store.
	ok := func(ctx context.Context, table func(string, []string, iter.Seq2[[]any, error]) error) error {
		return table("users", userCols, rows(user))
	}
	if _, err := db.Import(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if u, err := db.User(ctx, "anna"); err != nil || !slices.Equal(u.Groups, []string{"staff", "ops"}) || u.Disabled {
		t.Fatalf("imported user: %+v %v", u, err)
	}
	if _, err := db.Import(ctx, ok); sluis.ErrorCode(err) != sluis.ECONFLICT {
		t.Fatalf("an import into a store that holds a user: %v", err)
	}
}

// A node that listens hears of another node's change as it commits, and
// of none that rolled back.
func TestListenHearsOtherNodes(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	node, cli := open(t, url), open(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	heard := make(chan int64, 16)
	done := make(chan struct{})
	go func() {
		node.Listen(ctx, func(ctx context.Context) {
			rev, _ := node.Revision(ctx)
			heard <- rev
		}, 50*time.Millisecond, nil)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	wait := func(what string) int64 {
		t.Helper()
		select {
		case rev := <-heard:
			return rev
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing heard", what)
		}
		return 0
	}
	first := wait("on connecting")
	must(t, cli.CreateUser(context.Background(), sluis.User{Name: "anna"}))
	if rev := wait("a new user"); rev <= first {
		t.Fatalf("heard revision %d after %d", rev, first)
	}
	if err := cli.SetDisabled(context.Background(), "nobody", true); sluis.ErrorCode(err) != sluis.ENOTFOUND {
		t.Fatal(err)
	}
	must(t, cli.SetDisabled(context.Background(), "anna", true))
	wait("a disable")
	select {
	case rev := <-heard:
		t.Fatalf("heard a change more (revision %d): the failed one's", rev)
	case <-time.After(200 * time.Millisecond):
	}
}

// What a node pays for each read of the revision (package changes reads
// it every second, and when told of a change).
func BenchmarkRevision(b *testing.B) {
	srv := pgtest.Shared(b)
	db := open(b, srv.NewDatabase(b))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Revision(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// Ready: a migrated database is ready; one missing a migration this
// binary knows is not, and says why.
func TestReady(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	db := open(t, url)
	ctx := context.Background()
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("a migrated database: %v", err)
	}
	other := open(t, url)
	if err := other.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE name = (SELECT max(name) FROM schema_migrations)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err == nil || !strings.Contains(err.Error(), "has not been applied") {
		t.Fatalf("a database missing a migration: %v", err)
	}
}

// The console's audit queries on a trail of 1,000,000 events (see
// storetest.BenchAudit; run with -benchtime=20x).
func BenchmarkAuditSearch(b *testing.B) {
	srv := pgtest.Shared(b)
	storetest.BenchAudit(b, open(b, srv.NewDatabase(b)))
}
