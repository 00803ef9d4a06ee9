package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// With the disk full, the audit trail fails closed: a login step whose
// event cannot be stored is not taken (503 with an error ID, logged at
// ERROR with the cause). The operator's five controls still commit, with
// their events, on the reserve the gateway keeps; once that is gone too,
// an operator's change whose event cannot be stored does not happen (the
// command fails and says why). Refusals that cannot be stored are
// counted, and once space returns one audit.lost event records them,
// which audit verify reports.
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
	// The operator's five controls still commit, with their events: the
	// reserve the gateway keeps is released for them.
	controls := [][]string{
		{"emergency", "set", "strict", "--reason", "disk full"},
		{"block", "add", "127.0.0.98", "--reason", "scanner"},
		{"app", "disable", "wiki", "--reason", "maintenance"},
		{"session", "revoke", "--user", "anna"},
		{"user", "disable", "anna"},
	}
	reserve := filepath.Join(disk, "data", "reserve")
	if _, err := os.Stat(reserve); err != nil {
		t.Fatalf("the gateway keeps no reserve: %v", err)
	}
	for _, args := range controls {
		if out, err := g.CLI("", args...); err != nil {
			t.Fatalf("%v on a full disk: %v\n%s", args, err, out)
		}
	}
	if _, err := os.Stat(reserve); !os.IsNotExist(err) {
		t.Fatalf("the reserve was not released: %v", err)
	}
	if p := g.Get(g.ClientFrom("127.0.0.98"), g.URL(g.Portal, "/login")); p.StatusCode != http.StatusForbidden {
		t.Fatalf("the block made on a full disk is not in force: %d", p.StatusCode)
	}
	audited := g.MustCLI("", "audit")
	for _, typ := range []string{"emergency.set", "admin.block.add", "admin.app.disable", "admin.session.revoke", "admin.user.disable"} {
		if !strings.Contains(audited, typ) {
			t.Errorf("the trail lacks %s", typ)
		}
	}
	g.MustCLI("", "user", "enable", "anna")
	g.MustCLI("", "app", "enable", "wiki")
	g.MustCLI("", "emergency", "clear")

	// With the reserve gone too, an operator's change that cannot be
	// recorded does not happen, and the command says why.
	again := testenv.Fill(t, disk)
	out, err := g.CLI("", "block", "add", "127.0.0.99", "--reason", "scanner")
	if err == nil || !strings.Contains(err.Error(), "disk is full") || strings.Contains(out, "blocked 127.0.0.99") {
		t.Fatalf("block add on a full disk without a reserve: %v\n%s", err, out)
	}
	if p := g.Get(g.ClientFrom("127.0.0.99"), g.URL(g.Portal, "/login")); p.StatusCode != http.StatusOK {
		t.Fatalf("a block whose event was not stored is in force: %d", p.StatusCode)
	}
	again()

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

// A flood of wrong passwords, at one user and at many, from a new address
// each time, writes a bounded number of audit rows, and on a small
// data_dir the operator's five controls keep working. SLUIS_FLOOD_SECONDS
// and SLUIS_FLOOD_WORKERS lengthen it for a measurement (default 4 s, 30).
func TestRefusalFloodIsBounded(t *testing.T) {
	seconds, workers := envInt("SLUIS_FLOOD_SECONDS", 4), envInt("SLUIS_FLOOD_WORKERS", 30)
	disk := testenv.SmallDisk(t, 8<<20)
	const perMinute = 50
	g := testenv.StartIn(t, disk, fmt.Sprintf("audit:\n  refusals_per_minute: %d\n", perMinute),
		testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	g.AddUser("victim", pw, "staff")
	rows := func() int { return strings.Count(g.MustCLI("", "audit", "--since", "0"), "\n") - 1 }
	size := func() int64 {
		var n int64
		filepath.Walk(filepath.Join(disk, "data"), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && fi.Name() != "reserve" {
				n += fi.Size()
			}
			return nil
		})
		return n
	}
	rows0, size0 := rows(), size()
	var attempts atomic.Int64
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				n := attempts.Add(1)
				user := "victim"
				if n%2 == 0 {
					user = fmt.Sprintf("nobody%d", n) // a spray at many names
				}
				src := fmt.Sprintf("127.%d.%d.%d", 20+n/62500, n/250%250, 1+n%250)
				c := g.ClientFrom(src)
				form, err := c.Get(g.URL(g.Portal, "/login"))
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(form.Body)
				form.Body.Close()
				resp, err := c.PostForm(g.URL(g.Portal, "/login"), url.Values{"csrf": {testenv.CSRF(string(body))}, "username": {user}, "password": {"wrong"}})
				if err == nil {
					resp.Body.Close()
				}
			}
		}(w)
	}
	wg.Wait()
	written, grown := rows()-rows0, size()-size0
	minutes := float64(seconds) / 60
	t.Logf("flood: %d wrong passwords in %d s from %d workers (half at one user, half at new names, each from a new address): %d audit rows (%.0f a minute), data_dir grew %d KiB",
		attempts.Load(), seconds, workers, written, float64(written)/minutes, grown>>10)
	// At most the cap a minute (the minutes a run touches), the folded
	// event of the one user, and a summary a minute.
	if limit := (seconds/60 + 2) * (perMinute + 2); written > limit {
		t.Fatalf("%d audit rows for %d attempts, want at most %d", written, attempts.Load(), limit)
	}
	for _, args := range [][]string{
		{"emergency", "set", "strict", "--reason", "flood"},
		{"block", "add", "127.20.0.0/16", "--reason", "flood"},
		{"app", "disable", "wiki", "--reason", "flood"},
		{"session", "revoke", "--all"},
		{"user", "disable", "victim"},
	} {
		if out, err := g.CLI("", args...); err != nil {
			t.Fatalf("%v after the flood: %v\n%s", args, err, out)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// A read-only data_dir (a copy kept for forensics) is named as such:
// serve and every changing command refuse with words that say read-only,
// while the trail can be verified and exported and the users listed.
func TestReadOnlyDataDir(t *testing.T) {
	disk := testenv.SmallDisk(t, 16<<20)
	g := testenv.StartIn(t, disk, "", testenv.App{Name: "wiki", Host: wikiHost, Upstream: newUpstream(t).URL, Groups: []string{"staff"}, MFA: true})
	g.AddUser("alice", pw, "staff")
	g.MustCLI("", "block", "add", "192.0.2.7", "--reason", "scanner")
	g.Stop()
	testenv.ReadOnly(t, disk)
	for _, args := range [][]string{
		{"serve"},
		{"user", "add", "bob", "--password-stdin"},
		{"block", "add", "192.0.2.8", "--reason", "x"},
		{"emergency", "set", "lockdown", "--reason", "x"},
	} {
		out, err := g.CLI(pw+"\n", args...)
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("%v on a read-only data_dir: %v\n%s", args, err, out)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "list"}, "alice"},
		{[]string{"block", "list"}, "192.0.2.7/32"},
		{[]string{"emergency", "status"}, "level normal"},
		{[]string{"audit", "verify"}, "intact"},
		{[]string{"audit", "export"}, `"type":"admin.block.add"`},
		{[]string{"audit"}, "admin.user.add"},
	} {
		out, err := g.CLI("", tt.args...)
		if err != nil || !strings.Contains(out, tt.want) {
			t.Fatalf("%v on a read-only data_dir: %v\n%s", tt.args, err, out)
		}
	}
}
