package portal

import (
	"context"
	"net/http"
	"strings"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/metrics"
)

type methodKey struct{}

// withMethod marks r as a step of the given method where the route alone
// does not tell it (a directory password and a local one share POST
// /login; a recovery code is typed where a code is).
func withMethod(r *http.Request, method string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), methodKey{}, method))
}

// count counts a login step or second factor in the metrics, by its method
// (the route it came by) and outcome.
func (p *Portal) count(r *http.Request, typ, outcome, detail string) {
	if p.Metrics == nil {
		return
	}
	if outcome == sluis.OutcomeFailure && strings.HasPrefix(detail, "throttled") {
		outcome = metrics.OutcomeThrottled
	}
	switch typ {
	case sluis.EventLoginSuccess, sluis.EventLoginFailure:
		p.Metrics.Login(authMethod(r, detail), outcome)
	case sluis.EventMFASuccess, sluis.EventMFAFailure:
		p.Metrics.SecondFactor(authMethod(r, detail), outcome)
	}
}

// authMethod returns the method of a login step or second factor that r
// made.
func authMethod(r *http.Request, detail string) string {
	if m, ok := r.Context().Value(methodKey{}).(string); ok {
		return m
	}
	path := r.URL.Path
	switch {
	case path == "/login":
		if strings.Contains(detail, "directory") {
			return metrics.MethodLDAP // the directory could not be asked
		}
		return metrics.MethodPassword
	case strings.HasPrefix(path, "/login/oidc/"):
		return metrics.MethodOIDC
	case strings.HasPrefix(path, "/login/passkey/"), strings.HasPrefix(path, "/mfa/passkey/"), strings.HasPrefix(path, "/passkeys/"):
		return metrics.MethodPasskey
	case path == "/device" || strings.HasPrefix(path, "/device/"):
		return metrics.MethodDevice
	case path == "/mfa", path == "/enroll":
		return metrics.MethodTOTP
	}
	return metrics.MethodOther
}
