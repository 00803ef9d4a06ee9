package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

func TestSignaturesRecogniseTheKnownProbes(t *testing.T) {
	tests := []struct {
		target  string
		headers map[string]string
		want    string // rule name prefix; "" for none
	}{
		{"/vpn/../vpns/cfg/smb.conf", nil, "citrix-cve-2019-19781"},
		{"/vpns/portal/scripts/newbm.pl", map[string]string{"NSC_USER": "../../../netscaler/portal/templates/x"}, "citrix-cve-2019-19781"},
		{"/p/u/doAuthentication.do", nil, "citrixbleed2-cve-2025-5777"},
		{"/oauth/idp/.well-known/openid-configuration", nil, "citrixbleed-cve-2023-4966"},
		{"/dana-na/../dana/html5acc/guacamole/../../../../../../etc/passwd?/dana/html5acc/guacamole/", nil, "pulse-cve-2019-11510"},
		{"/api/v1/totp/user-backup-code/../../system/system-information", nil, "ivanti-cve-2023-46805"},
		{"/api/v1/license/keys-status/%3bid", nil, "ivanti-cve-2024-21887"},
		{"/dana-ws/saml20.ws", nil, "ivanti-cve-2024-21893"},
		{"/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", nil, "fortinet-cve-2018-13379"},
		{"/api/v2/cmdb/system/admin/admin", map[string]string{"User-Agent": "Report Runner", "Forwarded": "for=127.0.0.1"}, "fortinet-cve-2022-40684"},
		{"/remote/logincheck", nil, "fortinet-cve-2022-42475"},
		{"/ws/cli/open?cols=162&rows=100", nil, "fortinet-cve-2024-55591"},
		{"/ssl-vpn/hipreport.esp", nil, "paloalto-cve-2024-3400"},
		{"/global-protect/login.esp", map[string]string{"Cookie": "SESSID=/../../../var/appweb/sslvpndocs/global-protect/portal/images/x.txt"}, "paloalto-cve-2024-3400"},
		{"/php/utils/debug.php", map[string]string{"X-PAN-AUTHCHECK": "off"}, "paloalto-cve-2024-0012"},
		{"/unauth/%252e%252e/php/ztp_gate.php/PAN_help/x.css", nil, "paloalto-cve-2025-0108"},
		{"/tmui/login.jsp/..;/tmui/locallb/workspace/fileRead.jsp?fileName=/etc/passwd", nil, "f5-cve-2020-5902"},
		{"/mgmt/tm/util/bash", map[string]string{"X-F5-Auth-Token": "a"}, "f5-cve-2022-1388"},
		{"/mgmt/shared/authn/login", nil, "f5-cve-2021-22986"},
		{"/webui/logoutconfirm.html?logon_hash=1", nil, "cisco-cve-2023-20198"},
		{"/%2577ebui_wsma_HTTP", nil, "cisco-cve-2023-20198"},
		{"/+CSCOT+/translation-table?type=mst&textdomain=/%2bCSCOE%2b/portal_inc.lua", nil, "cisco-cve-2020-3452"},
		{"/cgi-bin/supportInstaller", nil, "sonicwall-cve-2019-7481"},
		{"/cgi-bin/sslvpnclient?launchplatform=", nil, "sonicwall-cve-2024-53704"},
		{"/ztp/cgi-bin/handler", nil, "zyxel-cve-2022-30525"},
		{"/clients/MyCRL", nil, ""},
		{"/owa/auth/x.js", map[string]string{"Cookie": "X-BEResource=localhost/owa/auth/logon.aspx?~3"}, "exchange-proxylogon"},
		{"/_next/data", map[string]string{"X-Middleware-Subrequest": "middleware"}, "nextjs-cve-2025-29927"},
		{"/", map[string]string{"X-Original-URL": "/admin"}, "rewrite-headers"},
		{"/?q=${jndi:ldap://x/a}", nil, "log4shell-cve-2021-44228"},
		{"/", map[string]string{"User-Agent": "() { :; }; /bin/cat /etc/passwd"}, "shellshock-cve-2014-6271"},
		{"/.env", nil, "file-read"},
		{"/.git/config", nil, "file-read"},
		// Ordinary requests match nothing.
		{"/", nil, ""},
		{"/login?rd=https%3A%2F%2Fwiki.corp.test%2F", nil, ""},
		{"/assets/sluis.css", nil, ""},
		{"/.well-known/jwks.json", nil, ""},
		{"/docs/remote-work/vpn-guide", nil, ""},
		{"/", map[string]string{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"}, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "https://login.test"+tt.target, nil)
		r.RequestURI = tt.target
		for k, v := range tt.headers {
			r.Header[http.CanonicalHeaderKey(k)] = []string{v}
		}
		if got := Match(r); got != tt.want {
			t.Errorf("%s %v: rule %q, want %q", tt.target, tt.headers, got, tt.want)
		}
	}
}

type recorder struct {
	mu     sync.Mutex
	events []sluis.Event
}

func (r *recorder) record(_ context.Context, e sluis.Event) error {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// memBlocks is a block store in memory with a revision, as the gateway's
// store has: the detector writes into it, a BlockList reads it.
type memBlocks struct {
	mu     sync.Mutex
	rev    int64
	blocks map[string]sluis.Block
}

func (m *memBlocks) add(_ context.Context, b sluis.Block) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blocks == nil {
		m.blocks = map[string]sluis.Block{}
	}
	m.blocks[b.CIDR] = b
	m.rev++
	return nil
}

func (m *memBlocks) remove(cidr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blocks, cidr)
	m.rev++
}

func (m *memBlocks) load(context.Context) ([]sluis.Block, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sluis.Block
	for _, b := range m.blocks {
		out = append(out, b)
	}
	return out, nil
}

func (m *memBlocks) revision(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev, nil
}

func TestDetectorAggregatesAndBlocks(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	rec := &recorder{}
	store := &memBlocks{}
	list := &BlockList{Load: store.load, Revision: store.revision, Now: clock}
	d := &Detector{BlockAfter: 10, BlockWindow: time.Minute, BlockFor: 15 * time.Minute, EventEvery: time.Minute,
		Record: rec.record, Persist: store.add, Now: clock}
	ctx := context.Background()
	blocked := func(src string) bool {
		b, err := list.Blocked(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// probe is what the front door does: a blocked source is refused
	// before the detector sees it.
	probe := func(src string) {
		if blocked(src) {
			return
		}
		r := httptest.NewRequest("GET", "https://login.test/vpns/x", nil)
		r.RemoteAddr = src + ":1234"
		d.Probe(r, "citrix-cve-2019-19781")
	}
	// Nine probes in a minute: one event, not blocked.
	for i := 0; i < 9; i++ {
		probe("198.51.100.9")
		now = now.Add(time.Second)
	}
	if n := rec.count(EventProbe); n != 1 {
		t.Fatalf("%d probe events for 9 probes within the interval, want 1", n)
	}
	if blocked("198.51.100.9") {
		t.Fatal("blocked after 9 probes")
	}
	// The tenth blocks, with one security.blocked event, however many more come.
	for i := 0; i < 100; i++ {
		probe("198.51.100.9")
	}
	b, ok := store.blocks["198.51.100.9/32"]
	if !ok || !b.Auto || !b.Until.Equal(now.Add(15*time.Minute)) {
		t.Fatalf("stored block %+v, want an automatic one for 15m", b)
	}
	if !blocked("198.51.100.9") {
		t.Fatal("not blocked after 10 probes")
	}
	if n := rec.count(EventBlocked); n != 1 {
		t.Fatalf("%d blocked events, want 1", n)
	}
	if blocked("203.0.113.7") {
		t.Fatal("another source is blocked")
	}
	// The folded count is written once the interval has passed.
	now = now.Add(time.Minute)
	d.Flush(ctx)
	if n := rec.count(EventProbe); n != 2 {
		t.Fatalf("%d probe events after flush, want 2", n)
	}
	last := rec.events[len(rec.events)-1]
	if !strings.Contains(last.Detail, "; 9 more") || last.Source != "198.51.100.9" {
		t.Fatalf("flushed event %+v", last)
	}
	// An operator lifts the block: the source is served at once, and it
	// takes ten new probes to block it again.
	store.remove("198.51.100.9/32")
	if blocked("198.51.100.9") {
		t.Fatal("still blocked after the block was removed")
	}
	for i := 0; i < 9; i++ {
		probe("198.51.100.9")
	}
	if blocked("198.51.100.9") {
		t.Fatal("blocked again by fewer than ten new probes")
	}
	probe("198.51.100.9")
	if !blocked("198.51.100.9") || rec.count(EventBlocked) != 2 {
		t.Fatalf("ten new probes: blocked %v, %d blocked events", blocked("198.51.100.9"), rec.count(EventBlocked))
	}
	// The block ends by itself.
	now = now.Add(16 * time.Minute)
	if blocked("198.51.100.9") {
		t.Fatal("still blocked after 16 minutes")
	}
	// Probes spread out never block.
	for i := 0; i < 100; i++ {
		probe("192.0.2.44")
		now = now.Add(10 * time.Second)
	}
	if blocked("192.0.2.44") {
		t.Fatal("a source probing once every 10 s was blocked with a limit of 10 a minute")
	}
}

// A block that cannot be stored is not in force, and the trail says so.
func TestDetectorBlockNotStored(t *testing.T) {
	rec := &recorder{}
	d := &Detector{Record: rec.record, Persist: func(context.Context, sluis.Block) error { return errors.New("disk full") }}
	for i := 0; i < 10; i++ {
		r := httptest.NewRequest("GET", "https://login.test/vpns/x", nil)
		r.RemoteAddr = "198.51.100.9:1234"
		d.Probe(r, "citrix-cve-2019-19781")
	}
	if len(rec.events) == 0 {
		t.Fatal("no events")
	}
	last := rec.events[len(rec.events)-1]
	if last.Type != EventBlocked || last.Outcome != sluis.OutcomeFailure || !strings.Contains(last.Detail, "could not be stored: disk full") {
		t.Fatalf("last event %+v", last)
	}
}

func TestDetectorBoundsMemory(t *testing.T) {
	d := &Detector{MaxSources: 100}
	for i := 0; i < 1000; i++ {
		r := httptest.NewRequest("GET", "/x", nil)
		r.RemoteAddr = "src" + strings.Repeat("a", i) + ":1"
		d.Probe(r, "x")
	}
	if n := len(d.table().sources); n > 100 {
		t.Fatalf("%d sources kept, limit 100", n)
	}
}

func TestEventsEscapeTheTarget(t *testing.T) {
	rec := &recorder{}
	d := &Detector{Record: rec.record}
	r := httptest.NewRequest("GET", "/x", nil)
	r.RequestURI = "/vpns/\x1b[31m\r\nforged" + strings.Repeat("A", 1000)
	d.Probe(r, "citrix-cve-2019-19781")
	detail := rec.events[0].Detail
	if strings.ContainsAny(detail, "\x1b\r\n") || len(detail) > 400 {
		t.Fatalf("detail %q", detail)
	}
}

// The front door's cost on an ordinary request, the hot path of every
// request: block check, host, limits, canonical target.
func BenchmarkDoor(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	d := &Door{Hosts: map[string]bool{"login.test": true, "wiki.test": true}, Portal: "login.test", Detector: &Detector{}, Next: next}
	r := httptest.NewRequest("GET", "/docs/page/edit?id=7&v=2", nil)
	r.Host = "wiki.test:8443"
	r.RemoteAddr = "192.0.2.1:4711"
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", "__Host-sluis=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; theme=dark")
	r.Header.Set("User-Agent", "Mozilla/5.0")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.Host = "wiki.test:8443"
		d.ServeHTTP(w, r)
	}
}

// An IPv6 client is counted and blocked by its /64: changing the address
// within it neither escapes the count nor the block.
func TestDetectorBlocksIPv6By64(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	store := &memBlocks{}
	list := &BlockList{Load: store.load, Revision: store.revision, Now: clock}
	d := &Detector{Persist: store.add, Now: clock}
	for i := 0; i < 10; i++ {
		r := httptest.NewRequest("GET", "https://login.test/vpns/x", nil)
		r.RemoteAddr = fmt.Sprintf("[2001:db8:1:2::%x]:1234", i+1)
		d.Probe(r, "citrix-cve-2019-19781")
	}
	if _, ok := store.blocks["2001:db8:1:2::/64"]; !ok || len(store.blocks) != 1 {
		t.Fatalf("stored blocks %v, want the one /64", store.blocks)
	}
	for ip, want := range map[string]bool{"2001:db8:1:2::ffff": true, "2001:db8:1:2:aaaa::1": true, "2001:db8:1:3::1": false} {
		if got, _ := list.Blocked(context.Background(), ip); got != want {
			t.Errorf("%s blocked: %v, want %v", ip, got, want)
		}
	}
	if n, _ := list.AutoInForce(context.Background()); n != 1 {
		t.Errorf("%d automatic blocks in force, want 1", n)
	}
}

// A blocked source's refusals in one minute share one logged error ID.
func TestBlockedRefusalsAreLoggedOncePerMinute(t *testing.T) {
	var f foldedIDs
	t0 := time.Unix(1_700_000_040, 0)
	id1, first := f.id("198.51.100.9", t0)
	if !first || id1 == "" {
		t.Fatalf("first refusal: %q %v", id1, first)
	}
	for i := 0; i < 100; i++ {
		if id, first := f.id("198.51.100.9", t0.Add(time.Duration(i)*100*time.Millisecond)); id != id1 || first {
			t.Fatalf("refusal %d: %q %v, want %q unlogged", i, id, first, id1)
		}
	}
	if id, first := f.id("203.0.113.1", t0); id == id1 || !first {
		t.Fatal("another source shares the ID")
	}
	if id, first := f.id("198.51.100.9", t0.Add(time.Minute)); id == id1 || !first {
		t.Fatal("the next minute has the same ID")
	}
	for i := 0; i < maxFoldedIDs+10; i++ {
		f.id(fmt.Sprint(i), t0.Add(time.Minute))
	}
	if len(f.ids) > maxFoldedIDs {
		t.Fatalf("%d IDs kept, want at most %d", len(f.ids), maxFoldedIDs)
	}
}
