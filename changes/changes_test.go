package changes_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/changes"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startWatcher runs a gateway's watcher on a fresh data folder until the
// test ends.
func startWatcher(t *testing.T) (string, *changes.Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	w := &changes.Watcher{Source: open(t, filepath.Join(dir, "sluis.db")), DataDir: dir, Log: slog.Default()}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); w.Wait() })
	return dir, w
}

// The CLI's change is in force when its command returns: Announce waits
// until the gateway has re-read the revision.
func TestAnnouncedChangeIsInForceWhenAnnounceReturns(t *testing.T) {
	ctx := context.Background()
	dir, w := startWatcher(t)

	cli := open(t, filepath.Join(dir, "sluis.db"))
	cli.Changed = func(ctx context.Context) {
		if err := changes.Announce(ctx, dir); err != nil {
			t.Error(err)
		}
	}
	if err := cli.CreateUser(ctx, sluis.User{Name: "anna"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		before, _ := w.Current(ctx)
		if err := cli.SetDisabled(ctx, "anna", i%2 == 0); err != nil {
			t.Fatal(err)
		}
		after, _ := w.Current(ctx)
		want, _ := cli.Revision(ctx)
		if after == before || after != want {
			t.Fatalf("change %d: watcher has %d (before %d), store has %d", i, after, before, want)
		}
	}
}

// Without an announcement (a CLI killed after its commit), the change is
// seen within the poll interval.
func TestUnannouncedChangeIsSeenByPolling(t *testing.T) {
	ctx := context.Background()
	dir, w := startWatcher(t)
	silent := open(t, filepath.Join(dir, "sluis.db"))
	silent.CreateUser(ctx, sluis.User{Name: "anna"})
	before, _ := w.Current(ctx)
	start := time.Now()
	silent.SetDisabled(ctx, "anna", true)
	for {
		if now, _ := w.Current(ctx); now != before {
			break
		}
		if time.Since(start) > 3*changes.PollInterval {
			t.Fatalf("change not seen after %v", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond) // polling the watcher's own poll
	}
	if d := time.Since(start); d > changes.PollInterval+1500*time.Millisecond {
		t.Fatalf("change seen after %v, poll interval %v", d, changes.PollInterval)
	}
}

func TestAnnounceWithoutGatewayReturnsAtOnce(t *testing.T) {
	start := time.Now()
	if err := changes.Announce(context.Background(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

func BenchmarkCurrent(b *testing.B) {
	w := &changes.Watcher{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		w.Current(ctx)
	}
}
