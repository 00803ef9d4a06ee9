// Package demo is the small web app that `sluis demo` puts behind the
// gateway: it shows the identity the gateway sent and whether the signed
// assertion checks out against the gateway's published keys.
package demo

import (
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluis-gateway/sluis/assertion"
)

var page = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluis demo app</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto">
<h1>Hello, {{.User}}</h1>
<p>This page is the demo application behind the sluis gateway. It knows who you are only from what the gateway sent:</p>
<table>
<tr><th align="left">X-Sluis-User</th><td id="user">{{.User}}</td></tr>
<tr><th align="left">X-Sluis-Groups</th><td id="groups">{{.Groups}}</td></tr>
<tr><th align="left">Assertion</th><td id="assertion">{{.Check}}</td></tr>
</table>
<h2>All request headers</h2>
<pre>{{range .Headers}}{{.}}
{{end}}</pre>
</body></html>
`))

// Handler returns the demo app. jwks returns the gateway's key set, issuer
// and audience are what a valid assertion names.
func Handler(jwks func() []byte, issuer, audience string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		check := "missing"
		if tok := r.Header.Get("X-Sluis-Assertion"); tok != "" {
			c, err := assertion.Verify(tok, jwks(), issuer, audience, time.Now())
			if err != nil {
				check = "INVALID: " + err.Error()
			} else {
				check = "valid signature; subject " + c.Subject + "; expires " + c.Expiry.Time().UTC().Format(time.RFC3339)
			}
		}
		var headers []string
		for k, v := range r.Header {
			if k == "X-Sluis-Assertion" {
				v = []string{"(signed JWT, " + strconv.Itoa(len(strings.Join(v, ""))) + " bytes)"}
			}
			headers = append(headers, k+": "+strings.Join(v, ", "))
		}
		sort.Strings(headers)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, map[string]any{
			"User": r.Header.Get("X-Sluis-User"), "Groups": r.Header.Get("X-Sluis-Groups"),
			"Check": check, "Headers": headers,
		})
	})
}
