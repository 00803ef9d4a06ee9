package admin

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/authn"
	"github.com/sluis-gateway/sluis/errpage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/admin.css
var adminCSS []byte

//go:embed assets/admin.js
var adminJS []byte

// assets are the console's static files: exact names only.
var assets = map[string]struct {
	body []byte
	typ  string
}{
	"/assets/admin.css": {adminCSS, "text/css; charset=utf-8"},
	"/assets/admin.js":  {adminJS, "text/javascript; charset=utf-8"},
}

// pageNames are the console's pages, each a template with the layout.
var pageNames = []string{"login", "key", "message", "overview", "users", "user", "sessions", "apps", "emergency", "blocks", "audit", "confirm"}

func parsePages(zone *time.Location) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		// when shows a time (or *time.Time) in the console's zone.
		"when": func(v any) string {
			var t time.Time
			switch x := v.(type) {
			case time.Time:
				t = x
			case *time.Time:
				if x != nil {
					t = *x
				}
			}
			if t.IsZero() {
				return "-"
			}
			return t.In(zone).Format("2006-01-02 15:04:05")
		},
		"join":      strings.Join,
		"chartLeft": func() int { return chartLeft },
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("admin template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// pageData is what every page's template gets: the layout's parts and,
// in Body, the page's own.
type pageData struct {
	Title string
	// Op is the logged-in operator (nil on the login pages); CSRF the
	// token of this page's forms.
	Op     *Operator
	CSRF   string
	Nav    string // the section of the navigation this page is in
	Notice string
	Error  string
	// ErrorID is the ID of the refusal the page reports, logged with its
	// cause.
	ErrorID string
	Script  bool // the page runs the console's passkey script
	Body    any
}

// pageFor returns the page data of a page of r.
func (s *Server) pageFor(r *http.Request, title string) pageData {
	d := pageData{Title: title}
	if c := consoleOf(r); c != nil {
		op := c.op
		d.Op, d.CSRF = &op, c.csrf
	}
	return d
}

func (s *Server) render(w http.ResponseWriter, status int, page string, d pageData) error {
	t, ok := s.pages[page]
	if !ok {
		return fmt.Errorf("admin: no page %q", page)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", d); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write([]byte(b.String()))
	return err
}

// refuse answers a refused login step on its page: msg for the user with
// a new error ID, the cause in the log under the ID, and, with an
// outcome, an admin.login event naming it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, page string, d pageData, user, outcome, cause, msg string) error {
	id := errpage.NewID()
	errpage.Log(r.Context(), s.o.Log, r, id, errpage.Refusal{Status: status, Cause: "admin: " + cause, User: user})
	if outcome != "" {
		s.event(r, EventLogin, user, outcome, cause+"; error ID "+id)
	}
	d.Error, d.ErrorID = msg, id
	return s.render(w, status, page, d)
}

// messageData is the message page's.
type messageData struct {
	Text string
	Back string // a link back, such as /login
}

// refuseMessage answers with a page that says text, such as why an
// account may not use the console; with a cause, the refusal is recorded
// (admin.login, denied) under the page's error ID.
func (s *Server) refuseMessage(w http.ResponseWriter, r *http.Request, status int, title, user, cause, text string) error {
	d := s.pageFor(r, title)
	d.Body = messageData{Text: text, Back: "/login"}
	id := errpage.NewID()
	errpage.Log(r.Context(), s.o.Log, r, id, errpage.Refusal{Status: status, Cause: "admin: " + cause, User: user})
	if cause != "" {
		s.event(r, EventLogin, user, sluis.OutcomeDenied, cause+"; error ID "+id)
	}
	d.ErrorID = id
	return s.render(w, status, "message", d)
}

// message answers with the message page, without a record.
func (s *Server) message(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	d := s.pageFor(r, title)
	d.Body = messageData{Text: text, Back: "/login"}
	if err := s.render(w, status, "message", d); err != nil {
		s.fail(w, r, "", err)
	}
}

// wrap adapts a console handler that returns an error (answered by
// fail) to http.Handler.
func (s *Server) wrap(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			user := ""
			if c := consoleOf(r); c != nil {
				user = c.user.Name
			}
			s.fail(w, r, user, err)
		}
	})
}

// fail answers an error with a static error page and an ID, the cause in
// the log under it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, user string, err error) {
	rf := errpage.Refusal{User: user, Err: err, Status: http.StatusInternalServerError, Cause: "admin: internal error"}
	var es errStatus
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &es):
		rf.Status, rf.Cause, rf.Err = int(es), "admin: "+strings.ToLower(http.StatusText(int(es))), nil
	case errors.As(err, &mbe):
		rf.Status, rf.Cause, rf.Err = http.StatusRequestEntityTooLarge, "admin: request body too large", nil
	case errors.Is(err, ErrForbidden):
		rf.Status, rf.Cause = http.StatusForbidden, "admin: "+err.Error()
	case errors.Is(err, authn.ErrThrottleUnavailable):
		rf.Status, rf.Cause = http.StatusServiceUnavailable, "admin: the shared throttles cannot be read or written; the attempt was refused"
	case errors.Is(err, audit.ErrNotStored) || sluis.StorageFull(err):
		rf.Status, rf.Cause, rf.Notice = http.StatusServiceUnavailable, "admin: storage cannot be written; the step was not taken",
			"The gateway cannot record this step right now, so it did not take it. Try again in a few minutes."
	case sluis.ErrorCode(err) == sluis.ENOTFOUND:
		rf.Status, rf.Cause = http.StatusNotFound, "admin: "+err.Error()
	case sluis.ErrorCode(err) == sluis.EINVALID:
		rf.Status, rf.Cause = http.StatusBadRequest, "admin: "+err.Error()
	}
	errpage.Refuse(w, r, s.o.Log, rf)
}

// sendJSON writes v as a JSON answer.
func sendJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.URL.Path]
	if !ok {
		s.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.typ)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(a.body)
}
