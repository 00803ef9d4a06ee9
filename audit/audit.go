// Package audit is the only place audit events are built and written. Every
// event goes to the store (the trail `sluis audit` reads) and to the log.
// Events describe what happened and to whom; they never carry a password, a
// one-time code or a token, and the types here have no field for one.
package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Recorder writes audit events.
type Recorder struct {
	Store sluis.AuditStore
	Log   *slog.Logger // nil means slog.Default()
	Now   func() time.Time
}

// Record stamps e with the time and writes it. A failure to write is logged
// but does not fail the request that caused the event.
func (r *Recorder) Record(ctx context.Context, e sluis.Event) {
	if r.Now != nil {
		e.Time = r.Now()
	} else {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	if err := r.Store.AppendEvent(context.WithoutCancel(ctx), e); err != nil {
		log.Error("audit: event not stored", "type", e.Type, "err", err)
	}
	log.Info("audit", "type", e.Type, "user", e.User, "source", e.Source, "app", e.App, "outcome", e.Outcome, "detail", e.Detail)
}

// Broken describes the first event where the chain does not hold.
type Broken struct {
	ID     int64
	Reason string
}

func (b *Broken) Error() string { return fmt.Sprintf("event %d: %s", b.ID, b.Reason) }

// Verify checks the hash chain of events, which must be the whole trail in
// order. It returns nil if every event's hash matches its fields and links
// to the one before; otherwise a *Broken naming the first event where it
// does not (an altered, removed, inserted or reordered event breaks the
// chain there).
func Verify(events []sluis.Event) error {
	var prev []byte
	var prevID int64
	for i, e := range events {
		switch {
		case i > 0 && e.ID != prevID+1:
			return &Broken{e.ID, fmt.Sprintf("follows event %d: events are missing or out of order", prevID)}
		case !bytes.Equal(e.PrevHash, prev):
			return &Broken{e.ID, "does not link to the event before it"}
		case !bytes.Equal(e.Hash, e.ChainHash(e.PrevHash)):
			return &Broken{e.ID, "its contents do not match its hash"}
		}
		prev, prevID = e.Hash, e.ID
	}
	return nil
}
