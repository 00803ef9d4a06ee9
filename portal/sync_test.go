package portal

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/audit"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// External users (directory, identity providers) are one sluis user per
// account: a name already held by a user of another source, or by another
// account of the same source, or the same name in other case, is refused.
func TestSyncExternalUser(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := &Portal{Store: st, Audit: &audit.Recorder{Store: st, Log: slog.Default()}, Log: slog.Default(), Now: time.Now}
	st.CreateUser(context.Background(), sluis.User{Name: "Admin", CreatedAt: time.Now()}) // local
	r := httptest.NewRequest("GET", "https://login.test/", nil)

	u, err := p.syncExternalUser(r, "carol", sluis.SourceLDAP, "ldap:uuid-1", []string{"staff"})
	if err != nil || u.ExternalID != "ldap:uuid-1" || u.Groups[0] != "staff" {
		t.Fatalf("first login: %+v %v", u, err)
	}
	// The source's profile is kept, and follows the source.
	if u, err := p.syncExternalUser(r, "carol", sluis.SourceLDAP, "ldap:uuid-1", []string{"staff"}, "carol@corp.test", "Carol"); err != nil || u.Email != "carol@corp.test" || u.DisplayName != "Carol" {
		t.Fatalf("profile from the source: %+v %v", u, err)
	}
	if u, err := st.User(context.Background(), "carol"); err != nil || u.Email != "carol@corp.test" || u.DisplayName != "Carol" {
		t.Fatalf("stored profile: %+v %v", u, err)
	}
	if u, err := p.syncExternalUser(r, "carol", sluis.SourceLDAP, "ldap:uuid-1", []string{"nurses"}); err != nil || u.Groups[0] != "nurses" {
		t.Fatalf("groups follow the directory: %+v %v", u, err)
	}
	for _, tt := range []struct {
		name, source, id string
		want             error
	}{
		{"carol", sluis.SourceLDAP, "ldap:uuid-2", errAccountChanged}, // another entry now called carol
		{"carol", "oidc:idp", "oidc:https://idp|1", errLocalName},     // another source
		{"admin", "oidc:idp", "oidc:https://idp|2", errLocalName},     // the local Admin in other case
		{"admin", sluis.SourceLDAP, "ldap:uuid-3", errLocalName},
	} {
		if _, err := p.syncExternalUser(r, tt.name, tt.source, tt.id, nil); !errors.Is(err, tt.want) {
			t.Errorf("%s from %s (%s): %v, want %v", tt.name, tt.source, tt.id, err, tt.want)
		}
	}
	events, _ := st.Events(context.Background(), time.Time{})
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if len(types) < 3 || types[0] != "user.created" || types[1] != "user.profile" || types[2] != "user.groups" {
		t.Fatalf("audit: %v", types)
	}
}

// missOnce makes the first lookup and listing of users miss, as when
// another login creates the user between them and the insert.
type missOnce struct {
	sluis.Store
	missed, listed bool
}

func (m *missOnce) Users(ctx context.Context) ([]sluis.User, error) {
	if !m.listed {
		m.listed = true
		return nil, nil
	}
	return m.Store.Users(ctx)
}

func (m *missOnce) User(ctx context.Context, name string) (sluis.User, error) {
	if !m.missed {
		m.missed = true
		return sluis.User{}, sluis.Errorf(sluis.ENOTFOUND, "no user %q", name)
	}
	return m.Store.User(ctx, name)
}

// A user created meanwhile (here: a local bob) goes through the same
// checks as one found at once: the identity provider's bob is refused.
func TestSyncExternalUserRace(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.CreateUser(context.Background(), sluis.User{Name: "bob", Groups: []string{"admins"}, CreatedAt: time.Now()})
	store := &missOnce{Store: st}
	p := &Portal{Store: store, Audit: &audit.Recorder{Store: st, Log: slog.Default()}, Log: slog.Default(), Now: time.Now}
	r := httptest.NewRequest("GET", "https://login.test/", nil)
	if u, err := p.syncExternalUser(r, "bob", "oidc:idp", "oidc:https://idp|7", nil); !errors.Is(err, errLocalName) {
		t.Fatalf("an identity provider's bob against a local bob created meanwhile: %+v %v", u, err)
	}
}
