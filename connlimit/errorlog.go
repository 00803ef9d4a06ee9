package connlimit

import (
	"bytes"
	"log"
	"log/slog"
	"net"
	"regexp"
)

// net/http tells of an HTTP/2 connection it closes for a protocol error
// (a rapid reset past its own bound included: ENHANCE_YOUR_CALM) only in
// its ErrorLog, with the client's address; its CountError hook names the
// error but not the connection. These lines are the errors a correct
// client never causes. Their wording is net/http's, checked here only by
// the unit test against copies of the format strings: if a Go release
// rewords them, this report goes quiet (the rapid-reset count in Handler
// does not depend on it).
var h2ErrorLine = regexp.MustCompile(`^http2: server connection error from (\S+): (.*)$|^timeout waiting for SETTINGS frames from (\S+)$`)

// ErrorLog returns the logger for the server's ErrorLog: every line goes
// to log at DEBUG (as net/http's chatter about clients always has), and an
// HTTP/2 connection error is also reported as misuse by its source.
func (l *Listener) ErrorLog(to *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{l: l, log: to}, "", 0)
}

type errorLogWriter struct {
	l   *Listener
	log *slog.Logger
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	w.log.Debug(line)
	if m := h2ErrorLine.FindStringSubmatch(line); m != nil {
		addr, detail := m[1], m[2]
		if addr == "" {
			addr, detail = m[3], "no SETTINGS frame after the preface"
		}
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		w.l.abuse(addr, RuleHTTP2Error, "HTTP/2 connection closed: "+detail)
	}
	return len(p), nil
}
