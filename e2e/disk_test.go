package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// With the disk full, the audit trail fails closed: a login step whose
// event cannot be stored is not taken (503 with an error ID, logged at
// ERROR with the cause), and an operator's change whose event cannot be
// stored does not happen (the command fails and says why). Refusals that
// cannot be stored are counted, and once space returns one audit.lost
// event records them, which audit verify reports.
func TestAuditFailsClosedOnAFullDisk(t *testing.T) {
	disk := testenv.SmallDisk(t, 16<<20)
	w := &world{wiki: newUpstream(t), hr: newUpstream(t)}
	g := testenv.StartIn(t, disk, "", testenv.App{Name: "wiki", Host: wikiHost, Upstream: w.wiki.URL, Groups: []string{"staff"}, MFA: true})
	w.g = g
	secret := g.AddUser("anna", pw, "staff")
	if p := g.Login(g.Client(), g.URL(wikiHost, "/start"), "anna", pw, secret); p.StatusCode != http.StatusOK {
		t.Fatalf("login before the disk is full: %d", p.StatusCode)
	}
	empty := testenv.Fill(t, disk)
	// Writes may still fit into space the database already holds: go on
	// until they no longer do (bounded).
	full := false
	for i := 0; i < 300 && !full; i++ {
		p := g.SubmitPassword(g.ClientFrom(fmt.Sprintf("127.0.%d.%d", 10+i/250, 1+i%250)), "", "anna", pw)
		switch p.StatusCode {
		case http.StatusSeeOther:
		case http.StatusServiceUnavailable:
			full = true
			if !strings.Contains(p.Body, "cannot record this step") || !regexp.MustCompile(`Error ID: [0-9a-f]+`).MatchString(p.Body) {
				t.Fatalf("the 503 page:\n%s", p.Body)
			}
		default:
			t.Fatalf("password step %d on a full disk: %d", i, p.StatusCode)
		}
	}
	if !full {
		t.Fatal("300 logins on a full disk were all stored")
	}
	if !strings.Contains(g.Logs(), "storage cannot be written") {
		t.Fatalf("no ERROR naming the cause in the log:\n%s", g.Logs())
	}
	// A refusal is still answered; its event is counted.
	for i := 0; i < 3; i++ {
		if p := g.SubmitPassword(g.ClientFrom("127.0.3.1"), "", "anna", "wrong password"); p.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong password on a full disk: %d", p.StatusCode)
		}
	}
	// An operator's change that cannot be recorded does not happen.
	out, err := g.CLI("", "block", "add", "127.0.0.99", "--reason", "scanner")
	if err == nil || !strings.Contains(err.Error(), "disk is full") || strings.Contains(out, "blocked 127.0.0.99") {
		t.Fatalf("block add on a full disk: %v\n%s", err, out)
	}
	if p := g.Get(g.ClientFrom("127.0.0.99"), g.URL(g.Portal, "/login")); p.StatusCode != http.StatusOK {
		t.Fatalf("a block whose event was not stored is in force: %d", p.StatusCode)
	}

	// Space returns: the lost events are counted in the trail, and the
	// operator's change goes through.
	empty()
	g.MustCLI("", "block", "add", "127.0.0.99", "--reason", "scanner")
	if p := g.Get(g.ClientFrom("127.0.0.99"), g.URL(g.Portal, "/login")); p.StatusCode != http.StatusForbidden {
		t.Fatalf("the block after space returned: %d", p.StatusCode)
	}
	if p := g.SubmitPassword(g.ClientFrom("127.0.3.2"), "", "anna", pw); p.StatusCode != http.StatusSeeOther {
		t.Fatalf("a login after space returned: %d", p.StatusCode)
	}
	verify := g.MustCLI("", "audit", "verify")
	if !strings.HasPrefix(verify, "intact") || !regexp.MustCompile(`gap: event \d+: \d+ events could not be stored .*login\.failure`).MatchString(verify) {
		t.Fatalf("audit verify after the gap:\n%s", verify)
	}
	t.Log(verify)
}
