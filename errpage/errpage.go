// Package errpage writes the gateway's own error pages. They are static: the
// text depends only on the status, never on the request, so an error page
// cannot reflect an attacker's input or leak internals. Each carries an
// error ID that is also logged with the detail, to link a user's report to
// the log line.
package errpage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
)

var messages = map[int]string{
	http.StatusBadRequest:            "The request was not understood.",
	http.StatusUnauthorized:          "You need to log in first.",
	http.StatusForbidden:             "You are not allowed to open this.",
	http.StatusNotFound:              "There is nothing here.",
	http.StatusMethodNotAllowed:      "That method is not allowed here.",
	http.StatusMisdirectedRequest:    "This gateway does not serve that host name.",
	http.StatusRequestEntityTooLarge: "The request is too large.",
	http.StatusTooManyRequests:       "Too many attempts. Wait a moment and try again.",
	http.StatusBadGateway:            "The application behind the gateway did not answer.",
	http.StatusServiceUnavailable:    "The service is unavailable. Try again later.",
	http.StatusInternalServerError:   "Something went wrong on our side.",
}

// StoreUnreachable is the notice of a 503 answered because the gateway
// cannot reach its store (database): nothing that needs it can be done.
const StoreUnreachable = "The gateway cannot reach its database right now, so it cannot do this. Try again in a minute; if it goes on, give your help desk the error ID below."

// NewID returns a random error ID.
func NewID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Write writes the static page for status with the given error ID. Headers
// that make the page inert are set here too, so every error page is safe
// whichever handler wrote it.
func Write(w http.ResponseWriter, status int, id string) {
	msg, ok := messages[status]
	if !ok {
		msg = http.StatusText(status)
	}
	write(w, status, id, html.EscapeString(msg))
}

// WriteNotice is Write with the operator's own words (for example why an
// app is switched off) in place of the standard text. The notice comes from
// the operator, never from the request, and is escaped.
func WriteNotice(w http.ResponseWriter, status int, id, notice string) {
	write(w, status, id, html.EscapeString(notice))
}

func write(w http.ResponseWriter, status int, id, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Del("Content-Length")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%d %s</title></head>
<body><h1>%d %s</h1><p>%s</p><p><small>Error ID: %s</small></p></body></html>
`, status, http.StatusText(status), status, http.StatusText(status), msg, html.EscapeString(id))
}
