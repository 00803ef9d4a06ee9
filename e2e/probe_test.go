package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis/internal/testenv"
)

// rawRequest sends req byte for byte over TLS from the local address src
// and returns the status line.
func (w *world) rawRequest(t *testing.T, src, host, req string) string {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := tls.DialWithDialer(d, "tcp", w.g.Addr(), w.g.TLSConfig(host))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	resp.Body.Close()
	return resp.Status
}

// A wave of exploit probes: each is refused and recorded, the source is
// blocked after ten, once, and other sources are unaffected.
func TestExploitProbesAreRecordedAndBlockTheSource(t *testing.T) {
	w := setup(t)
	probes := []struct{ host, target, extra string }{
		{w.g.Portal, "/vpn/../vpns/cfg/smb.conf", ""},
		{w.g.Portal, "/vpns/portal/scripts/newbm.pl", "NSC_USER: ../../../netscaler/portal/templates/x\r\n"},
		{wikiHost, "/dana-na/../dana/html5acc/guacamole/../../../../../../etc/passwd?/dana/html5acc/guacamole/", ""},
		{wikiHost, "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", ""},
		{w.g.Portal, "/api/v1/totp/user-backup-code/../../system/system-information", ""},
		{wikiHost, "/tmui/login.jsp/..;/tmui/locallb/workspace/fileRead.jsp?fileName=/etc/passwd", ""},
		{wikiHost, "/ssl-vpn/hipreport.esp", "Cookie: SESSID=/../../../var/appweb/sslvpndocs/global-protect/portal/images/x.txt\r\n"},
		{w.g.Portal, "/php/utils/debug.php", "X-PAN-AUTHCHECK: off\r\n"},
		{wikiHost, "/mgmt/tm/util/bash", "Connection: keep-alive, X-F5-Auth-Token\r\nX-F5-Auth-Token: a\r\n"},
		{w.g.Portal, "/p/u/doAuthentication.do", ""},
	}
	for i, p := range probes {
		req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", p.target, p.host, p.extra)
		status := w.rawRequest(t, "127.0.0.1", p.host, req)
		if !strings.HasPrefix(status, "403") && !strings.HasPrefix(status, "400") {
			t.Fatalf("probe %d (%s): %s", i, p.target, status)
		}
	}
	// Blocked now, even for an innocent request.
	if status := w.rawRequest(t, "127.0.0.1", w.g.Portal, "GET /login HTTP/1.1\r\nHost: "+w.g.Portal+"\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(status, "403") {
		t.Fatalf("blocked source: %s", status)
	}
	// Another source still gets the login page.
	if status := w.rawRequest(t, "127.0.0.2", w.g.Portal, "GET /login HTTP/1.1\r\nHost: "+w.g.Portal+"\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(status, "200") {
		t.Fatalf("other source: %s", status)
	}
	if n := len(w.wiki.requests()); n != 0 {
		t.Fatalf("upstream saw %d probes", n)
	}
	evs := assertAudit(t, w.g, "security.probe", "security.blocked")
	blocked, probeEvents := 0, 0
	for _, ev := range evs {
		switch ev["type"] {
		case "security.blocked":
			blocked++
			if ev["source"] != "127.0.0.1" {
				t.Errorf("blocked event for %v", ev["source"])
			}
		case "security.probe":
			probeEvents++
			if d, _ := ev["detail"].(string); !strings.Contains(d, "rule ") || !strings.Contains(d, "target \"") {
				t.Errorf("probe event detail %q", d)
			}
		}
	}
	if blocked != 1 || probeEvents < 5 {
		t.Fatalf("%d blocked and %d probe events", blocked, probeEvents)
	}
}

// An operator's block counts at once for that range only; automatic blocks
// show in the list too; removing a block lifts it.
func TestOperatorBlocks(t *testing.T) {
	w := setup(t)
	g := w.g
	login := "GET /login HTTP/1.1\r\nHost: " + g.Portal + "\r\nConnection: close\r\n\r\n"
	g.MustCLI("", "block", "add", "127.0.0.3", "--reason", "scanner seen in the firewall log")
	if s := w.rawRequest(t, "127.0.0.3", g.Portal, login); !strings.HasPrefix(s, "403") {
		t.Fatalf("blocked address: %s", s)
	}
	if s := w.rawRequest(t, "127.0.0.4", g.Portal, login); !strings.HasPrefix(s, "200") {
		t.Fatalf("other address: %s", s)
	}
	// Probes from 127.0.0.5 block it automatically.
	for i := 0; i < 10; i++ {
		w.rawRequest(t, "127.0.0.5", g.Portal, "GET /vpns/cfg/smb.conf HTTP/1.1\r\nHost: "+g.Portal+"\r\nConnection: close\r\n\r\n")
	}
	list := g.MustCLI("", "block", "list")
	if !strings.Contains(list, "127.0.0.3/32  operator") || !strings.Contains(list, "127.0.0.5/32  automatic") {
		t.Fatalf("block list:\n%s", list)
	}
	g.MustCLI("", "block", "remove", "127.0.0.3")
	if s := w.rawRequest(t, "127.0.0.3", g.Portal, login); !strings.HasPrefix(s, "200") {
		t.Fatalf("after remove: %s", s)
	}
	if _, err := g.CLI("", "block", "add", "127.0.0.9"); err == nil {
		t.Fatal("block without a reason accepted")
	}
	assertAudit(t, g, "admin.block.add", "admin.block.remove", "security.blocked")
}

// An automatic block is lifted by `sluis block remove` at once: the front
// door reads only the stored list, which the detector writes to. While
// blocked, the source reads that its address is blocked.
func TestAutomaticBlockIsLiftedByRemove(t *testing.T) {
	w := setup(t)
	g := w.g
	const src = "127.0.0.6"
	secret := g.AddUser("bea", pw, "staff")
	for i := 0; i < 10; i++ {
		w.rawRequest(t, src, g.Portal, "GET /vpns/cfg/smb.conf HTTP/1.1\r\nHost: "+g.Portal+"\r\nConnection: close\r\n\r\n")
	}
	c := g.ClientFrom(src)
	resp, err := c.Get(g.URL(g.Portal, "/login"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "your network address are blocked") || !strings.Contains(string(body), "Error ID: ") {
		t.Fatalf("blocked source got %d:\n%s", resp.StatusCode, body)
	}
	id := regexp.MustCompile(`Error ID: ([0-9a-f]+)`).FindStringSubmatch(string(body))
	if id == nil || !strings.Contains(g.Logs(), id[1]) {
		t.Fatalf("the error ID of the blocked page is not in the log")
	}
	// A policy refusal reads differently.
	if strings.Contains(string(errpageBody(t, g, wikiHost)), "blocked") {
		t.Fatal("a policy 403 says blocked")
	}
	list := g.MustCLI("", "block", "list")
	if !strings.Contains(list, src+"/32  automatic") {
		t.Fatalf("block list:\n%s", list)
	}
	if out := g.MustCLI("", "block", "remove", src); !strings.Contains(out, "unblocked "+src+"/32") {
		t.Fatalf("block remove printed %q", out)
	}
	// The same source logs in and reaches the app, at once.
	p := g.Login(c, g.URL(wikiHost, "/start"), "bea", pw, secret)
	if p.StatusCode != http.StatusOK {
		t.Fatalf("login after unblocking: %d\n%s", p.StatusCode, p.Body)
	}
}

// errpageBody returns the body of a 403 that policy gives: a user of the
// wrong group opening host.
func errpageBody(t *testing.T, g *testenv.Gateway, host string) []byte {
	t.Helper()
	secret := g.AddUser("outsider", pw, "visitors")
	c := g.Client()
	p := g.Login(c, g.URL(g.Portal, "/"), "outsider", pw, secret)
	if p.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", p.StatusCode)
	}
	p = g.Follow(c, g.Get(c, g.URL(host, "/")))
	if p.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong group on %s: %d", host, p.StatusCode)
	}
	return []byte(p.Body)
}
