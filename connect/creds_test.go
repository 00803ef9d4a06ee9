package connect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Logins are kept per gateway and user; user names are one user whatever
// their case; the first format (one login per gateway) is read as its
// recorded user's login and saved in the current one.
func TestCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluis", "connect.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	old := `{"gateways": {"https://Login.Example:8443/": {"token": "t-alice", "user": "Alice", "saved": "2025-01-02T03:04:05Z"}}}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	gw := Key("https://login.example:8443")
	if l, ok := c.Find(gw, "alice"); !ok || l.Token != "t-alice" || l.User != "alice" || !c.Migrated {
		t.Fatalf("the first format: %+v %v (migrated %v)", l, ok, c.Migrated)
	}
	c.Put(Login{Gateway: gw, User: "bob", Token: "t-bob"})
	c.Put(Login{Gateway: gw, User: "ALICE", Token: "t-alice-2"})
	c.Put(Login{Gateway: Key("https://other.example"), User: "alice", Token: "t-other"})
	if at := c.At(gw); len(at) != 2 {
		t.Fatalf("logins at %s: %+v", gw, at)
	}
	if l, _ := c.Find(gw, "Alice"); l.Token != "t-alice-2" {
		t.Fatalf("alice's login replaced: %+v", l)
	}
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), `"gateways"`) || strings.Contains(string(b), "Migrated") {
		t.Fatalf("saved in the first format:\n%s", b)
	}
	c, err = LoadCredentials(path)
	if err != nil || c.Migrated || len(c.Logins) != 3 {
		t.Fatalf("reloaded: %+v %v", c, err)
	}
	if got := c.Gateways(); len(got) != 2 {
		t.Fatalf("gateways: %q", got)
	}
	if !c.Remove(gw, "BOB") || c.Remove(gw, "bob") {
		t.Fatal("removing bob's login")
	}
	if _, ok := c.Find(gw, "bob"); ok {
		t.Fatal("bob's login after its removal")
	}
	if _, ok := c.Find(gw, "alice"); !ok {
		t.Fatal("alice's login went with bob's")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadCredentials(path); err == nil {
		t.Fatal("a file others can read was accepted")
	}
}
