package errpage

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// A Refusal is an error page and the log line that goes with it: what the
// user sees is only the status's static text (or the operator's Notice)
// and the error ID; what went wrong, and for whom, goes to the log under
// the same ID, so a help desk given the ID finds the cause.
type Refusal struct {
	Status int
	// Cause says what went wrong, for the log only (the rule, the
	// decision's reason, the failed step). Never a secret: no token,
	// cookie, password or query string.
	Cause string
	// Notice, if set, replaces the status's standard text with the
	// operator's words (WriteNotice).
	Notice string
	// Kind, if set, gives the page words of their own (see the Kind
	// constants), with Detail in them as written; it wins over Notice.
	Kind, Detail string
	// RetryAfter, if positive, is when trying again helps (see Page).
	RetryAfter time.Duration
	// User and App are who asked and for what, when known.
	User, App string
	// Err is the error behind a fault. With a 5xx status it makes the
	// line an error; without one (an app switched off, the level
	// "closed", a client's mistake) the line is info.
	Err error
	// ID, if set, is the error ID to show and log: one shared with an
	// audit event or with other refusals folded into one. Empty means a
	// new ID.
	ID string
	// Attrs are more key-value pairs for the log line.
	Attrs []any
}

// maxLoggedPath bounds the path and host in the log line: a refused
// request's are the client's, of any length.
const maxLoggedPath = 256

// Refuse writes rf's page and logs it to log (nil: nothing logged), and
// returns its error ID. The log line has the ID, the status, the cause,
// the host, method, path (never the query, which may carry a code), the
// client's address, and the user and app when known.
func Refuse(w http.ResponseWriter, r *http.Request, log *slog.Logger, rf Refusal) string {
	id := rf.ID
	if id == "" {
		id = NewID()
	}
	if log != nil {
		Log(r.Context(), log, r, id, rf)
	}
	WritePage(w, r, Page{Status: rf.Status, ID: id, Kind: rf.Kind, Detail: rf.Detail, Notice: rf.Notice, RetryAfter: rf.RetryAfter})
	return id
}

// Log writes the log line of an error page with the given ID, for a page
// written some other way (the portal's own pages). See Refuse.
func Log(ctx context.Context, log *slog.Logger, r *http.Request, id string, rf Refusal) {
	level := slog.LevelInfo
	if rf.Err != nil && rf.Status >= 500 {
		level = slog.LevelError
	}
	path, host := cut(r.URL.Path), cut(r.Host)
	src, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		src = r.RemoteAddr
	}
	attrs := make([]any, 0, 24+len(rf.Attrs))
	attrs = append(attrs, "error_id", id, "status", rf.Status, "cause", rf.Cause)
	if rf.User != "" {
		attrs = append(attrs, "user", rf.User)
	}
	if rf.App != "" {
		attrs = append(attrs, "app", rf.App)
	}
	if host != "" {
		attrs = append(attrs, "host", host)
	}
	attrs = append(attrs, "method", r.Method, "path", path, "source", src)
	if rf.Err != nil {
		attrs = append(attrs, "err", rf.Err)
	}
	attrs = append(attrs, rf.Attrs...)
	log.Log(ctx, level, "error page", attrs...)
}

func cut(s string) string {
	if len(s) > maxLoggedPath {
		return s[:maxLoggedPath] + "…"
	}
	return s
}
