package tunnel

import (
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

// Configure replaces the apps and limits that new tunnels and rechecks
// see; before it, the fields count.
func TestConfigure(t *testing.T) {
	s := &Server{Apps: map[string]sluis.App{"ssh": {Name: "ssh", TCP: "127.0.0.1:22"}}, MaxPerUser: 3}
	if a, ok := s.app("ssh"); !ok || a.TCP != "127.0.0.1:22" || s.maxPerUser() != 3 || s.current().IdleTimeout != 0 {
		t.Fatalf("before Configure: %+v %v %d", a, ok, s.maxPerUser())
	}
	s.Configure(Settings{Apps: map[string]sluis.App{"rdp": {Name: "rdp", TCP: "127.0.0.1:3389"}}, IdleTimeout: time.Minute})
	if _, ok := s.app("ssh"); ok {
		t.Fatal("a removed app is still found")
	}
	if a, ok := s.app("rdp"); !ok || a.TCP != "127.0.0.1:3389" {
		t.Fatalf("the added app: %+v %v", a, ok)
	}
	if s.maxPerUser() != DefaultMaxPerUser || s.current().IdleTimeout != time.Minute {
		t.Fatalf("limits after Configure: %d %s", s.maxPerUser(), s.current().IdleTimeout)
	}
}
