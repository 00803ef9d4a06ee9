package portal

import (
	"net/http/httptest"
	"testing"

	"github.com/sluis-gateway/sluis/metrics"
)

func TestAuthMethod(t *testing.T) {
	for _, tc := range []struct {
		path, detail, mark, want string
	}{
		{"/login", "bad password", "", metrics.MethodPassword},
		{"/login", "throttled (source)", "", metrics.MethodPassword},
		{"/login", "directory unreachable", "", metrics.MethodLDAP},
		{"/login", "disabled", metrics.MethodLDAP, metrics.MethodLDAP},
		{"/login/oidc/corp/callback", "single sign-on with corp", "", metrics.MethodOIDC},
		{"/login/passkey/finish", "passkey not accepted", "", metrics.MethodPasskey},
		{"/mfa/passkey/finish", "passkey", "", metrics.MethodPasskey},
		{"/mfa", "wrong code", "", metrics.MethodTOTP},
		{"/mfa", "recovery code (3 left)", metrics.MethodRecovery, metrics.MethodRecovery},
		{"/enroll", "wrong enrolment code", "", metrics.MethodTOTP},
		{"/device", "sluis connect from 192.0.2.1 approved", "", metrics.MethodDevice},
		{"/somewhere", "", "", metrics.MethodOther},
	} {
		r := httptest.NewRequest("POST", "https://login.test"+tc.path, nil)
		if tc.mark != "" {
			r = withMethod(r, tc.mark)
		}
		if got := authMethod(r, tc.detail); got != tc.want {
			t.Errorf("%s %q: method %s, want %s", tc.path, tc.detail, got, tc.want)
		}
	}
}
