package lease_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/pgtest"
	"github.com/sluis-gateway/sluis/lease"
	"github.com/sluis-gateway/sluis/store/postgres"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// Two nodes, each with its own pool on one database, want one lease: one
// holds it at a time, and when the holder dies (its connections gone
// without a word, so it releases nothing) the other takes over within
// 10 s. A node that stops cleanly hands over at the next renewal.
func TestTakeoverWhenTheHolderDies(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	open := func() *postgres.DB {
		db, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db1, db2 := open(), open()
	defer db2.Close()
	n1 := &lease.Lease{Store: db1, Name: lease.AuditCheckpoints, Holder: "node-1"}
	n2 := &lease.Lease{Store: db2, Name: lease.AuditCheckpoints, Holder: "node-2"}
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan struct{})
	go func() { n1.Run(ctx1); close(done1) }()
	waitFor(t, 5*time.Second, n1.Held)
	ctx2, stop2 := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() { n2.Run(ctx2); close(done2) }()
	// Several renewals: node-1 keeps it, node-2 never holds it too.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n2.Held() || !n1.Held() {
			t.Fatalf("while node-1 renews: node-1 holds %v, node-2 holds %v", n1.Held(), n2.Held())
		}
	}
	// node-1 dies: its pool closes under it, so it releases nothing.
	died := time.Now()
	db1.Close()
	stop1()
	<-done1
	took := waitFor(t, 10*time.Second, n2.Held)
	t.Logf("node-2 took over %v after node-1 died (TTL %v, renewal every %v)", took.Sub(died).Round(time.Millisecond), lease.DefaultTTL, lease.DefaultRenew)

	// A clean stop hands over at the other's next try.
	n3 := &lease.Lease{Store: db2, Name: lease.AuditCheckpoints, Holder: "node-3"}
	ctx3, stop3 := context.WithCancel(ctx)
	defer stop3()
	go n3.Run(ctx3)
	time.Sleep(2 * lease.DefaultRenew)
	if n3.Held() {
		t.Fatal("node-3 holds the lease node-2 holds")
	}
	stopped := time.Now()
	stop2()
	<-done2
	took = waitFor(t, 2*lease.DefaultRenew+time.Second, n3.Held)
	t.Logf("node-3 took over %v after node-2 stopped cleanly", took.Sub(stopped).Round(time.Millisecond))
}

// waitFor polls cond until it holds and returns when, or fails after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool) time.Time {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return time.Now()
		}
	}
	t.Fatalf("not within %v", d)
	return time.Time{}
}
