package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// Enrolment shows ten recovery codes once; each lets its user in once in
// place of a code (typed any way a person would); the help desk's
// `user mfa-reset` removes every factor, ends the sessions, and the user
// enrols again.
func TestRecoveryCodesAndMFAReset(t *testing.T) {
	up := newUpstream(t)
	g := testenv.Start(t, testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	g.MustCLI(pw+"\n", "user", "add", "anna", "--groups", "staff", "--password-stdin")
	c := g.Client()
	enrol := g.Follow(c, g.SubmitPassword(c, "", "anna", pw))
	secret := testenv.EnrolmentSecret(enrol.Body)
	p := g.Post(c, g.URL(g.Portal, "/enroll"), url.Values{"csrf": {testenv.CSRF(enrol.Body)}, "code": {g.Code("anna", secret)}})
	codes, _ := testenv.RecoveryCodes(p.Body)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes after enrolment:\n%s", len(codes), p.Body)
	}
	// The codes can be downloaded as a text file, one a line.
	if !strings.Contains(p.Body, `download="recovery-codes.txt"`) || !strings.Contains(p.Body, "%0D%0A"+codes[0]+"%0D%0A") {
		t.Fatalf("no download of the codes:\n%s", p.Body)
	}
	if s := g.MustCLI("", "audit"); strings.Contains(s, codes[0]) {
		t.Fatal("a recovery code is in the audit trail")
	}

	recover := func(code string) testenv.Page {
		c := g.Client()
		p := g.SubmitPassword(c, "", "anna", pw)
		form := g.Follow(c, p)
		if !strings.Contains(form.Body, `name="recovery"`) {
			t.Fatalf("the code page offers no recovery code:\n%s", form.Body)
		}
		return g.Post(c, g.URL(g.Portal, "/mfa"), url.Values{"csrf": {testenv.CSRF(form.Body)}, "recovery": {code}})
	}
	typed := strings.ToLower(strings.ReplaceAll(codes[3], "-", " "))
	// The user is told how many are left, and goes on from there.
	if p := recover(typed); p.StatusCode != http.StatusOK || !strings.Contains(p.Body, "You used a recovery code; 9 are left.") || !strings.Contains(p.Body, `id="continue"`) {
		t.Fatalf("a recovery code: %d\n%s", p.StatusCode, p.Body)
	}
	if p := recover(codes[3]); p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the same recovery code again: %d", p.StatusCode)
	}
	if p := recover("AAAA-BBBB-CCCC-DDDD"); p.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a made-up recovery code: %d", p.StatusCode)
	}
	if s := g.MustCLI("", "audit"); !strings.Contains(s, "recovery code (9 left)") || !strings.Contains(s, "wrong or used recovery code") {
		t.Fatalf("audit after recovery codes:\n%s", s)
	}

	// The help desk's reset.
	out := g.MustCLI("", "user", "mfa-reset", "anna")
	if !strings.Contains(out, "enrol again") {
		t.Fatalf("mfa-reset said:\n%s", out)
	}
	if p := g.Get(c, g.URL(g.Portal, "/")); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("the session lived through the reset: %d", p.StatusCode)
	}
	// The password step now leads to enrolment, not to a code.
	if p := g.SubmitPassword(g.Client(), "", "anna", pw); !strings.HasPrefix(p.Header.Get("Location"), "/enroll") {
		t.Fatalf("after the reset the password step leads to %q", p.Header.Get("Location"))
	}
	if s := g.MustCLI("", "audit"); !strings.Contains(s, "admin.user.mfa-reset") {
		t.Fatalf("no mfa-reset in the audit trail:\n%s", s)
	}
}
