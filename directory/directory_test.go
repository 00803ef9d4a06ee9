package directory_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/directory"
	"github.com/sluis-gateway/sluis/internal/slapdtest"
)

func newDir(t *testing.T, s *slapdtest.Slapd, urls []string, startTLS bool) *directory.Directory {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d, err := directory.New(directory.Config{
		URLs: urls, StartTLS: startTLS, RootCAs: pool, BindDN: s.BindDN, BindPassword: s.BindPassword,
		UserBase: "ou=people," + s.BaseDN, UserFilter: "(&(objectClass=inetOrgPerson)(uid={user}))",
		GroupBase: "ou=groups," + s.BaseDN, DisabledFilter: "(employeeType=disabled)",
		Groups:  map[string]string{"cn=vpn-staff,ou=groups,dc=corp,dc=test": "staff", "CN=Admins, OU=Groups, DC=corp, DC=test": "admins"},
		Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Against a real slapd: passwords, disabled accounts, nested groups, LDAPS
// and StartTLS, failover, and a directory that is gone.
func TestAuthenticateAgainstSlapd(t *testing.T) {
	s := slapdtest.Start(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		urls     []string
		startTLS bool
	}{
		{"ldaps", []string{s.LDAPSURL}, false},
		{"starttls", []string{s.URL}, true},
		{"failover from a dead server", []string{"ldaps://127.0.0.1:1", s.LDAPSURL}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDir(t, s, tt.urls, tt.startTLS)
			cases := []struct {
				user, pw string
				groups   []string
				err      error
			}{
				{"carol", "carol-pass", []string{"admins", "staff"}, nil},
				{"erin", "erin-pass", []string{"staff"}, nil}, // through the nested group
				{"carol", "wrong", nil, directory.ErrInvalid},
				{"carol", "", nil, directory.ErrInvalid}, // no unauthenticated bind
				{"nobody", "x", nil, directory.ErrInvalid},
				{"*", "carol-pass", nil, directory.ErrInvalid},            // no filter injection
				{"carol)(uid=*", "carol-pass", nil, directory.ErrInvalid}, // no filter injection
				{"dave", "dave-pass", nil, directory.ErrDisabled},
				{"dave", "wrong", nil, directory.ErrInvalid}, // a disabled account says nothing without its password
			}
			for _, c := range cases {
				acct, err := d.Authenticate(ctx, c.user, c.pw)
				groups := acct.Groups
				sort.Strings(groups)
				if err == nil && (acct.Name != c.user || acct.ID == "") {
					t.Errorf("%s: account %+v", c.user, acct)
				}
				// The profile comes from mail and displayName; erin has
				// neither.
				if err == nil && c.user == "carol" && (acct.Email != "carol@corp.test" || acct.DisplayName != "Carol de Vries") {
					t.Errorf("carol's profile: %q %q", acct.Email, acct.DisplayName)
				}
				if err == nil && c.user == "erin" && (acct.Email != "" || acct.DisplayName != "") {
					t.Errorf("erin's profile: %q %q", acct.Email, acct.DisplayName)
				}
				if !errors.Is(err, c.err) || len(groups) != len(c.groups) || (len(groups) > 0 && groups[0] != c.groups[0]) {
					t.Errorf("%s/%q: groups %v err %v, want %v %v", c.user, c.pw, groups, err, c.groups, c.err)
				}
			}
		})
	}
	// A certificate from an untrusted CA is refused.
	d, _ := directory.New(directory.Config{URLs: []string{s.LDAPSURL}, BindDN: s.BindDN, BindPassword: s.BindPassword, UserBase: s.BaseDN, UserFilter: "(uid={user})", Timeout: time.Second})
	if _, err := d.Authenticate(ctx, "carol", "carol-pass"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("an untrusted directory certificate: %v", err)
	}
	// The directory goes away: a clear error, not "wrong password".
	d = newDir(t, s, []string{s.LDAPSURL}, false)
	if _, err := d.Authenticate(ctx, "carol", "carol-pass"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := d.Authenticate(ctx, "carol", "carol-pass"); !errors.Is(err, directory.ErrUnavailable) {
		t.Errorf("with slapd stopped: %v", err)
	}
}

func TestInChainFilter(t *testing.T) {
	got := directory.InChainFilter("CN=Anna (IT),OU=Staff,DC=corp,DC=test")
	want := `(member:1.2.840.113556.1.4.1941:=CN=Anna \28IT\29,OU=Staff,DC=corp,DC=test)`
	if got != want {
		t.Fatalf("in-chain filter:\n got %s\nwant %s", got, want)
	}
}
