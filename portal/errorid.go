package portal

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/sluis-gateway/sluis/errpage"
)

// A refusalNote is what the portal learns, while answering one request,
// about a refusal of it: the error ID its page shows and its audit event
// names, and the user and cause of that event. wrap puts one in the
// request's context and in its ResponseWriter, so that render (which sees
// only the writer) and event (which sees only the request) meet.
type refusalNote struct {
	r               *http.Request
	id, user, cause string
	log             *slog.Logger
	// english maps the words said in another language to their English,
	// so that the log reads the same whatever the user's language.
	english map[string]string
}

// noteEnglish remembers that said, in r's language, is english.
func noteEnglish(r *http.Request, said, english string) {
	n, _ := r.Context().Value(refusalNoteKey{}).(*refusalNote)
	if n == nil || said == english {
		return
	}
	if n.english == nil {
		n.english = map[string]string{}
	}
	n.english[said] = english
}

type refusalNoteKey struct{}

// noteWriter carries the note to render. Unwrap hands the real writer to
// http.MaxBytesReader and http.ResponseController.
type noteWriter struct {
	http.ResponseWriter
	note *refusalNote
}

func (w *noteWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unwrap returns the writer wrap was given.
func unwrap(w http.ResponseWriter) http.ResponseWriter {
	if nw, ok := w.(*noteWriter); ok {
		return nw.ResponseWriter
	}
	return w
}

func noted(w http.ResponseWriter, r *http.Request, log *slog.Logger) (http.ResponseWriter, *http.Request, *refusalNote) {
	n := &refusalNote{log: log}
	n.r = r.WithContext(context.WithValue(r.Context(), refusalNoteKey{}, n))
	return &noteWriter{w, n}, n.r, n
}

// errorID returns the note's error ID, made on first use.
func (n *refusalNote) errorID() string {
	if n.id == "" {
		n.id = errpage.NewID()
	}
	return n.id
}

// noteRefusal notes the user and cause of a refusal of r (a failure or a
// denial about to be recorded) and returns the error ID its event is to
// name: the one the refusal's page shows. Empty when r did not come
// through wrap.
func noteRefusal(r *http.Request, user, cause string) string {
	n, _ := r.Context().Value(refusalNoteKey{}).(*refusalNote)
	if n == nil {
		return ""
	}
	n.user, n.cause = user, cause
	return n.errorID()
}

// pageErrorID returns the error ID for a portal page rendered with an
// error status (a throttled login, a wrong password, a closed gateway),
// and logs it with the noted user and cause (or the page's own words).
// Other pages, and writers that did not come through wrap, get none.
func (p *Portal) pageErrorID(w http.ResponseWriter, status int, page, words string) string {
	return refusalID(w, status, page, words)
}

// refusalID is pageErrorID for an answer that is not a page: the JSON
// refusals of the passkey and device endpoints (page names the endpoint).
func refusalID(w http.ResponseWriter, status int, page, words string) string {
	nw, ok := w.(*noteWriter)
	if !ok || status < 400 {
		return ""
	}
	n := nw.note
	cause := n.cause
	if cause == "" {
		if e, ok := n.english[words]; ok {
			words = e
		}
		cause = page + " page: " + strings.TrimSuffix(words, ".")
	}
	id := n.errorID()
	errpage.Log(n.r.Context(), n.log, n.r, id, errpage.Refusal{Status: status, Cause: "portal: " + cause, User: n.user})
	return id
}
