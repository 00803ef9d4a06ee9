package errpage

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestRefuse: the page shows the ID and nothing of the cause; the log line
// has the ID, status, cause, user and app, never the query, and its level
// says whether the gateway is at fault.
func TestRefuse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rf    Refusal
		level string
	}{
		{"client", Refusal{Status: 403, Cause: "denied: rule 1: not in group staff", User: "alice", App: "wiki"}, "INFO"},
		{"decision", Refusal{Status: 503, Cause: "denied: the app is switched off", Notice: "This application is switched off: upgrade"}, "INFO"},
		{"fault", Refusal{Status: 502, Cause: "upstream failed", Err: errors.New("connection refused")}, "ERROR"},
		{"shared ID", Refusal{Status: 403, Cause: "cause-not-shown", ID: "0123456789ab"}, "INFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			r := httptest.NewRequest("GET", "https://wiki.test/docs?code=SECRET", nil)
			w := httptest.NewRecorder()
			id := Refuse(w, r, log, tc.rf)
			if tc.rf.ID != "" && id != tc.rf.ID {
				t.Errorf("ID %s, want %s", id, tc.rf.ID)
			}
			body := w.Body.String()
			if w.Code != tc.rf.Status || !strings.Contains(body, "Error ID: "+id) || strings.Contains(body, tc.rf.Cause) {
				t.Errorf("page %d %q", w.Code, body)
			}
			line := logs.String()
			for _, want := range []string{"level=" + tc.level, "error_id=" + id, "status=" + strconv.Itoa(tc.rf.Status), "path=/docs", "source=192.0.2.1"} {
				if !strings.Contains(line, want) {
					t.Errorf("log lacks %q: %s", want, line)
				}
			}
			if !strings.Contains(line, tc.rf.Cause) || !strings.Contains(line, tc.rf.User) || strings.Contains(line, "SECRET") {
				t.Errorf("log line: %s", line)
			}
		})
	}
}
