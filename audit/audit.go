// Package audit is the only place audit events are built and written. Every
// event goes to the store (the trail `sluis audit` reads) and to the log.
// Events describe what happened and to whom; they never carry a password, a
// one-time code or a token, and the types here have no field for one.
package audit

import (
	"context"
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
