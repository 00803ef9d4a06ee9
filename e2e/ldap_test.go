package e2e

import (
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/slapdtest"
	"github.com/sluis-gateway/sluis/internal/testenv"
)

func ldapConfig(s *slapdtest.Slapd) string {
	return fmt.Sprintf(`ldap:
  urls: [%q]
  ca_file: %q
  bind_dn: %q
  bind_password_file: %q
  user_base: "ou=people,dc=corp,dc=test"
  user_filter: "(&(objectClass=inetOrgPerson)(|(uid={user})(mail={user})))"
  group_base: "ou=groups,dc=corp,dc=test"
  disabled_filter: "(employeeType=disabled)"
  recheck_every: 1s
  groups:
    "cn=vpn-staff,ou=groups,dc=corp,dc=test": staff
`, s.LDAPSURL, s.CAFile, s.BindDN, s.PasswordFile)
}

// Directory users against a real slapd: they log in with their directory
// password and a second factor enrolled in sluis, get their groups (nested
// ones too) from the directory, a disabled account is refused, and when
// the directory is gone its users get a clear message while local
// break-glass users still log in.
func TestLDAPLogin(t *testing.T) {
	s := slapdtest.Start(t)
	up := newUpstream(t)
	g := testenv.StartWith(t, ldapConfig(s), testenv.App{Name: "wiki", Host: wikiHost, Upstream: up.URL, Groups: []string{"staff"}, MFA: true})
	localSecret := g.AddUser("local-admin", pw, "staff")

	// First login of a directory user: password from the directory, then
	// enrolment of a second factor in sluis, then the app with the
	// directory's group.
	enrol := func(user, password string) string {
		c := g.Client()
		p := g.SubmitPassword(c, g.URL(wikiHost, "/page"), user, password)
		if p.StatusCode != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/enroll") {
			t.Fatalf("%s: password step: %d %q\n%s", user, p.StatusCode, p.Header.Get("Location"), p.Body)
		}
		e := g.Follow(c, p)
		secret := testenv.EnrolmentSecret(e.Body)
		p = g.Post(c, g.URL(g.Portal, "/enroll"), url.Values{"csrf": {testenv.CSRF(e.Body)}, "rd": {g.URL(wikiHost, "/page")}, "code": {g.Code(user, secret)}})
		_, next := testenv.RecoveryCodes(p.Body)
		if p = g.Follow(c, g.Get(c, next)); p.StatusCode != 200 {
			t.Fatalf("%s: the app after enrolment: %d", user, p.StatusCode)
		}
		if r := up.last(t); r.Header.Get("X-Sluis-User") != user || r.Header.Get("X-Sluis-Groups") != "staff" {
			t.Fatalf("%s reached the app as %q in %q", user, r.Header.Get("X-Sluis-User"), r.Header.Get("X-Sluis-Groups"))
		}
		return secret
	}
	enrol("carol", "carol-pass")
	enrol("erin", "erin-pass") // staff only through the nested group

	// Another name the directory matches for carol's account (her mail
	// address, any case) is carol: her second factor is asked for, no new
	// user is made.
	if p := g.SubmitPassword(g.Client(), "", "Carol@Corp.test", "carol-pass"); p.StatusCode != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/mfa") {
		t.Fatalf("carol by her mail address: %d %q", p.StatusCode, p.Header.Get("Location"))
	}
	if out := g.MustCLI("", "user", "list"); !strings.Contains(out, "carol") || !strings.Contains(out, "erin") || strings.Contains(strings.ToLower(out), "corp.test") {
		t.Fatalf("user list:\n%s", out)
	}

	for _, tt := range []struct{ user, password, reason string }{
		{"carol", "wrong", "unknown user or bad password (directory)"},
		{"dave", "dave-pass", "disabled in the directory"},
		{"nobody", "x", "unknown user or bad password (directory)"},
	} {
		p := g.SubmitPassword(g.Client(), "", tt.user, tt.password)
		if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "Wrong user name or password.") {
			t.Errorf("%s/%s: %d", tt.user, tt.password, p.StatusCode)
		}
		if a := g.MustCLI("", "audit"); !strings.Contains(a, tt.reason) {
			t.Errorf("audit lacks %q", tt.reason)
		}
	}

	// The directory changes while carol and erin have sessions: carol is
	// disabled there and loses hers; erin leaves the nested group and loses
	// the group in sluis.
	admin, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Bind("cn=admin,dc=corp,dc=test", "admin-secret"); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest("uid=carol,ou=people,dc=corp,dc=test", nil)
	m.Add("employeeType", []string{"disabled"})
	if err := admin.Modify(m); err != nil {
		t.Fatal(err)
	}
	m = ldap.NewModifyRequest("cn=nurses,ou=groups,dc=corp,dc=test", nil)
	m.Add("member", []string{"uid=carol,ou=people,dc=corp,dc=test"})
	m.Delete("member", []string{"uid=erin,ou=people,dc=corp,dc=test"})
	if err := admin.Modify(m); err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, "the directory's changes to reach sluis", func() bool {
		a := g.MustCLI("", "audit")
		return strings.Contains(a, "the account is disabled in the directory") && strings.Contains(a, "from ldap (recheck): staff -> ")
	})

	// The directory goes away.
	s.Stop()
	p := g.SubmitPassword(g.Client(), "", "carol", "carol-pass")
	if p.StatusCode != http.StatusServiceUnavailable || !strings.Contains(p.Body, "The directory cannot be reached") {
		t.Fatalf("carol with the directory down: %d\n%s", p.StatusCode, p.Body)
	}
	if p := g.Login(g.Client(), "", "local-admin", pw, localSecret); p.StatusCode != 200 {
		t.Fatalf("a local user with the directory down: %d", p.StatusCode)
	}
}
