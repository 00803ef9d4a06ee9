package selfcheck

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// attack is one raw request and how to judge the answer.
type attack struct {
	name   string
	method string
	target string
	header []string // raw header lines, sent as written
	body   string
	// judge decides; nil means refused: the request must be turned away
	// (4xx, 501, 505 or a closed connection), and anything served, a
	// server error or no answer at all is bad.
	judge func(c *checker, a answer) (Status, string)
	bad   Status // what a bad answer counts as; zero means Fail
	// path marks a path trick: answered like any unknown path, it may have
	// gone through unexamined.
	path bool
}

// parsingAttacks are the request-parsing attacks of THREATS.md, aimed at
// the login page's host. Each must be refused, not repaired.
func parsingAttacks(c *checker) []attack {
	login := c.login
	var many []string
	for i := 0; i < 300; i++ {
		many = append(many, fmt.Sprintf("X-Selfcheck-%d: %d", i, i))
	}
	identity := []string{
		"X-Forwarded-User: " + c.canary,
		"X-Remote-User: " + c.canary,
		"Remote-User: " + c.canary,
		"X-Auth-Request-User: " + c.canary,
		"X-Forwarded-Email: " + c.canary + "@example.com",
		"X_Forwarded_User: " + c.canary,
		"X-Forwarded-For: 127.0.0.1",
		"X-Real-IP: 127.0.0.1",
		"Forwarded: for=127.0.0.1;by=127.0.0.1",
		"X-Forwarded-Host: " + evil,
	}
	return []attack{
		// Class 2: the check and the router must see one path.
		{name: "dot-segment", path: true, method: "GET", target: "/selfcheck/../" + c.canary},
		{name: "encoded dot-segment", path: true, method: "GET", target: "/selfcheck/%2e%2e/" + c.canary},
		{name: "double-encoded dot-segment", path: true, method: "GET", target: "/selfcheck/%252e%252e/" + c.canary},
		{name: "encoded slash", path: true, method: "GET", target: "/selfcheck%2f" + c.canary},
		{name: "backslash", path: true, method: "GET", target: `/selfcheck\..\` + c.canary},
		{name: "semicolon parameter (..;/)", path: true, method: "GET", target: "/selfcheck/..;/" + c.canary},
		{name: "empty segment (//)", path: true, method: "GET", target: "//" + c.canary},
		{name: "encoded NUL", path: true, method: "GET", target: "/" + c.canary + "%00.css"},
		{name: "overlong UTF-8", path: true, method: "GET", target: "/selfcheck/%c0%ae%c0%ae/" + c.canary},
		{name: "%u escape", path: true, method: "GET", target: "/selfcheck/%u002e%u002e/" + c.canary},
		{name: "over-long target", method: "GET", target: "/" + strings.Repeat("a", 16<<10), bad: Warn},
		// Class 8: no request picks where the gateway connects.
		{name: "absolute-form target (SSRF)", method: "GET", target: "http://169.254.169.254/latest/meta-data/", judge: noMetadata},
		{name: "foreign Host", method: "GET", target: "/", header: []string{"Host: " + evil}},
		{name: "CONNECT", method: "CONNECT", target: "169.254.169.254:80", header: []string{"Host: 169.254.169.254:80"}},
		// Class 6: CitrixBleed's oversized Host.
		{name: "oversized Host (CitrixBleed)", method: "GET", target: "/", header: []string{"Host: " + strings.Repeat("a", 24<<10)}},
		{name: "300 header fields", method: "GET", target: c.login, header: many, bad: Warn},
		// Class 11: reflection of secrets.
		{name: "TRACE", method: "TRACE", target: "/", header: []string{"Cookie: selfcheck=" + c.canary}},
		// Class 3: client headers are no trust signals.
		{name: "client identity headers", method: "GET", target: "/", header: identity, judge: sameAsPlain},
		{name: "rewrite headers (X-Original-URL)", method: "GET", target: "/", header: []string{"X-Original-URL: /admin", "X-Rewrite-URL: /admin"}, judge: sameAsPlain},
		// Class 4: hop-by-hop abuse.
		{name: "Connection names a security header", method: "GET", target: c.login, header: []string{"Connection: close, Authorization, X-Forwarded-For", "Authorization: Basic YWRtaW46"}, bad: Warn},
		{name: "h2c upgrade", method: "GET", target: "/", header: []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}, judge: noSwitch},
		{name: "WebSocket without a login", method: "GET", target: "/", header: []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: c2VsZmNoZWNrc2VsZmNoZWNr"}, judge: noSwitch},
		// Class 5: framing.
		{name: "Content-Length with Transfer-Encoding", method: "POST", target: login, header: []string{"Content-Length: 5", "Transfer-Encoding: chunked", "Content-Type: application/x-www-form-urlencoded"}, body: "0\r\n\r\n", bad: Warn},
		{name: "Transfer-Encoding: chunked, chunked", method: "POST", target: login, header: []string{"Transfer-Encoding: chunked, chunked"}, body: "0\r\n\r\n"},
		{name: "two Content-Lengths", method: "POST", target: login, header: []string{"Content-Length: 3", "Content-Length: 4"}, body: "a=bc"},
		{name: "chunked body before login", method: "POST", target: login, header: []string{"Transfer-Encoding: chunked", "Content-Type: application/x-www-form-urlencoded"}, body: "5\r\na=bcd\r\n0\r\n\r\n", bad: Warn},
		{name: "huge Content-Length before login (Fortinet CVE-2022-42475)", method: "POST", target: login, header: []string{"Content-Length: 115964117980", "Content-Type: application/x-www-form-urlencoded"}, body: "a=b", bad: Warn},
	}
}

// exploitProbes are the known exploits against gateways (THREATS.md), as
// they are sent in the wild. None may be served before login.
var exploitProbes = []attack{
	{name: "Citrix CVE-2019-19781 traversal", method: "GET", target: "/vpn/../vpns/cfg/smb.conf"},
	{name: "Citrix CVE-2019-19781 template drop", method: "POST", target: "/vpn/../vpns/portal/scripts/newbm.pl", header: []string{"NSC_USER: ../../../netscaler/portal/templates/selfcheck", "NSC_NONCE: nsroot", "Content-Type: application/x-www-form-urlencoded"}, body: "url=http://x&title=[%25t=7*7%25]&desc=x&UI_inuse=RfWeb"},
	{name: "CitrixBleed CVE-2023-4966 oversized Host", method: "GET", target: "/oauth/idp/.well-known/openid-configuration", header: []string{"Host: " + strings.Repeat("a", 24<<10)}, judge: noBleed},
	{name: "CitrixBleed 2 CVE-2025-5777", method: "POST", target: "/p/u/doAuthentication.do", header: []string{"Content-Type: application/x-www-form-urlencoded"}, body: "login"},
	{name: "Pulse CVE-2019-11510 file read", method: "GET", target: "/dana-na/../dana/html5acc/guacamole/../../../../../../etc/passwd?/dana/html5acc/guacamole/"},
	{name: "Ivanti CVE-2023-46805 auth bypass", method: "GET", target: "/api/v1/totp/user-backup-code/../../system/system-information"},
	{name: "Ivanti CVE-2024-21887 command injection", method: "GET", target: "/api/v1/totp/user-backup-code/../../license/keys-status/%3bid"},
	{name: "Ivanti CVE-2024-21893 SAML SSRF", method: "POST", target: "/dana-ws/saml20.ws", header: []string{"Content-Type: text/xml"}, body: "<ds:RetrievalMethod URI=\"http://127.0.0.1:8090/api/v1/license/keys-status\"/>"},
	{name: "Ivanti CVE-2025-0282 overflow", method: "POST", target: "/dana-na/auth/url_default/welcome.cgi", header: []string{"Content-Type: application/x-www-form-urlencoded"}, body: "clientCapabilities=" + strings.Repeat("A", 512)},
	{name: "Fortinet CVE-2018-13379 session file", method: "GET", target: "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession"},
	{name: "Fortinet CVE-2022-40684 admin API", method: "GET", target: "/api/v2/cmdb/system/admin/admin", header: []string{"User-Agent: Report Runner", "Forwarded: for=\"[127.0.0.1]:8000\";by=\"[127.0.0.1]:9000\";"}},
	{name: "Fortinet CVE-2024-21762 chunk parsing", method: "POST", target: "/remote/hostcheck_validate", header: []string{"Transfer-Encoding: chunked"}, body: "ffffffffffffffffff\r\na\r\n0\r\n\r\n"},
	{name: "Fortinet CVE-2024-55591 WebSocket side door", method: "GET", target: "/ws/cli/open?cols=162&rows=100&local_access_token=selfcheck", header: []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: c2VsZmNoZWNrc2VsZmNoZWNr"}},
	{name: "Palo Alto CVE-2024-3400 cookie as file name", method: "POST", target: "/ssl-vpn/hipreport.esp", header: []string{"Cookie: SESSID=/../../../var/appweb/sslvpndocs/global-protect/portal/images/selfcheck.txt"}, body: "a=b"},
	{name: "Palo Alto CVE-2024-0012 auth header", method: "GET", target: "/php/ztp_gate.php/.js.map", header: []string{"X-PAN-AUTHCHECK: off"}},
	{name: "Palo Alto CVE-2025-0108 double decoding", method: "GET", target: "/unauth/%252e%252e/php/ztp_gate.php/PAN_help/x.css"},
	{name: "F5 CVE-2020-5902 ..;/ traversal", method: "GET", target: "/tmui/login.jsp/..;/tmui/locallb/workspace/fileRead.jsp?fileName=/etc/passwd"},
	{name: "F5 CVE-2022-1388 hop-by-hop auth bypass", method: "POST", target: "/mgmt/tm/util/bash", header: []string{"Connection: keep-alive, X-F5-Auth-Token", "X-F5-Auth-Token: a", "Authorization: Basic YWRtaW46", "Content-Type: application/json"}, body: `{"command":"run","utilCmdArgs":"-c id"}`},
	{name: "F5 CVE-2021-22986 SSRF", method: "POST", target: "/mgmt/shared/authn/login", header: []string{"Content-Type: application/json"}, body: `{"loginReference":{"link":"http://localhost/mgmt/shared/gossip"}}`},
	{name: "F5 CVE-2023-46747 smuggling", method: "POST", target: "/tmui/login.jsp", header: []string{"Transfer-Encoding: chunked, chunked"}, body: "0\r\n\r\n"},
	{name: "Cisco CVE-2023-20198 double encoding", method: "POST", target: "/%2577eb%2575i_%2577sma_Http", body: "<x/>"},
	{name: "Cisco CVE-2020-3452 file read", method: "GET", target: "/+CSCOT+/translation-table?type=mst&textdomain=/%2bCSCOE%2b/portal_inc.lua&default-language&lang=../"},
	{name: "SonicWall CVE-2024-53704 empty session", method: "GET", target: "/cgi-bin/sslvpnclient?launchplatform=", header: []string{"Cookie: swap=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
	{name: "SonicWall CVE-2019-7481 SQL injection", method: "POST", target: "/cgi-bin/supportInstaller", header: []string{"Content-Type: application/x-www-form-urlencoded"}, body: "fromEmailInvite=1&customerTID=unused'%20UNION%20SELECT%20'selfcheck'--"},
	{name: "Zyxel CVE-2022-30525 command injection", method: "POST", target: "/ztp/cgi-bin/handler", header: []string{"Content-Type: application/json"}, body: `{"command":"setWanPortSt","proto":"dhcp","port":"4","vlan_tagged":"1","vlanid":"5","mtu":"; id;","data":"hi"}`},
	{name: "Check Point CVE-2024-24919 file read", method: "POST", target: "/clients/MyCRL", body: "aCSHELL/../../../../../../../etc/passwd"},
	{name: "Exchange ProxyLogon backend cookie", method: "GET", target: "/owa/auth/x.js", header: []string{"Cookie: X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3; X-BEResource=localhost/owa/auth/logon.aspx?~3;"}},
	{name: "Next.js CVE-2025-29927 middleware bypass", method: "GET", target: "/admin", header: []string{"X-Middleware-Subrequest: middleware:middleware:middleware:middleware:middleware"}},
	{name: "Log4Shell CVE-2021-44228", method: "GET", target: "/?x=$%7Bjndi:ldap://selfcheck.invalid/a%7D", header: []string{"X-Api-Version: ${jndi:ldap://selfcheck.invalid/a}"}},
	{name: "Shellshock CVE-2014-6271", method: "GET", target: "/cgi-bin/status", header: []string{"Referer: () { :; }; echo; /usr/bin/id"}},
}

// checkAttacks sends each attack on its own connection and judges it.
func (c *checker) checkAttacks(ctx context.Context, group string, attacks []attack) {
	for _, at := range attacks {
		if ctx.Err() != nil || c.down {
			return
		}
		if c.skipBlocked(group, at.name) {
			continue
		}
		a := c.send(ctx, c.request(at.method, at.target, at.header, at.body))
		if group == "probe" {
			c.probes++
		}
		st, why := c.judge(ctx, at, a)
		if (a.closed || a.garbled || a.timeout || a.err != nil) && !c.stillUp(ctx, at.name) {
			st, why = Fail, "the gateway stopped answering after this request (a crash?)"
		}
		ev := fmt.Sprintf("%s %s: %s", at.method, shorten(at.target), a)
		if why != "" {
			ev += "; " + why
		}
		c.add(group, at.name, st, ev)
		c.watchBlock(ctx, at.name, a)
	}
}

// judge decides an attack's outcome.
func (c *checker) judge(ctx context.Context, at attack, a answer) (Status, string) {
	if l := leak(a.all()); l != "" {
		return Fail, l
	}
	if at.method == "TRACE" && strings.Contains(string(a.body), c.canary) {
		return Fail, "the request's cookie came back in the answer"
	}
	bad := at.bad
	if bad == "" {
		bad = Fail
	}
	if at.judge != nil {
		st, why := at.judge(c, a)
		if st == Fail {
			st = bad
		}
		return st, why
	}
	switch {
	case a.err != nil:
		return Warn, "could not be sent"
	case a.garbled:
		return bad, "the answer was not HTTP: the front end may have choked on the request"
	case a.refusal():
		if at.path && a.status == c.unknown.status && a.status != 400 && !a.closed {
			return Warn, fmt.Sprintf("answered like any unknown path (%d): it may have reached the application unexamined; a gateway that refuses it answers 400", a.status)
		}
		return Pass, ""
	case a.timeout:
		return bad, fmt.Sprintf("no answer within %s: the gateway took the request in and is still on it", c.o.Timeout)
	case a.status == 101:
		return bad, "switched protocols before login"
	case a.served() && isLoginForm(a.body) && !strings.Contains(string(a.body), c.canary):
		return Pass, "answered with the login form"
	case a.status >= 200 && a.status < 300:
		return bad, "served before login; it should have been refused"
	case a.status >= 300 && a.status < 400:
		return Pass, "redirected, not served"
	case a.status == 503:
		return Warn, "unavailable (503): a rate limit, or the request got past the front end"
	case a.status >= 500:
		return bad, "server error: the request got past the front end"
	}
	return bad, "unexpected answer"
}

// sameAsPlain: the client's identity and rewrite headers must change
// nothing: not the status, not where the answer sends the browser, not
// whether it asks for a login, and the values sent must not come back.
func sameAsPlain(c *checker, a answer) (Status, string) {
	body := string(a.all())
	if strings.Contains(body, c.canary) {
		return Fail, "the identity sent by the client reached the application (it is named in the answer)"
	}
	if strings.Contains(strings.ToLower(body+a.header.Get("Location")), evil) {
		return Fail, "the X-Forwarded-Host sent by the client is used in the answer"
	}
	if a.refusal() {
		return Pass, "refused"
	}
	plain := c.get(c.ctx, "/")
	switch {
	case a.status != plain.status:
		return Fail, fmt.Sprintf("without these headers the answer is %s", plain)
	case a.header.Get("Location") != plain.header.Get("Location"):
		return Fail, fmt.Sprintf("without these headers the answer sends the browser to %q", plain.header.Get("Location"))
	case isLoginForm(a.body) != isLoginForm(plain.body):
		return Fail, "the answer differs from the one without these headers in whether it asks for a login"
	}
	return Pass, ""
}

// noSwitch: no protocol switch before login.
func noSwitch(c *checker, a answer) (Status, string) {
	if a.status == 101 {
		return Fail, "switched protocols before login"
	}
	return Pass, ""
}

// noMetadata: an absolute-form target must not reach what it names.
func noMetadata(c *checker, a answer) (Status, string) {
	b := strings.ToLower(string(a.all()))
	for _, m := range []string{"ami-id", "instance-id", "iam/", "computemetadata", "security-credentials"} {
		if strings.Contains(b, m) {
			return Fail, "the answer looks like cloud metadata: the gateway fetched the address the client named"
		}
	}
	if a.served() {
		return Fail, "served: the gateway took an absolute-form target (it should refuse it, 400)"
	}
	if a.timeout {
		return Fail, "no answer in time: the gateway may be trying to reach the address the client named"
	}
	return Pass, ""
}

// noBleed: CitrixBleed's answer was a 200 carrying memory; any answer to
// the oversized Host with unprintable bytes or much more than asked for
// is suspect.
func noBleed(c *checker, a answer) (Status, string) {
	for _, b := range a.all() {
		if b < 0x09 || b > 0x0d && b < 0x20 {
			return Fail, "the answer holds binary bytes (memory?)"
		}
	}
	if a.served() && len(a.body) > 16<<10 && !isLoginForm(a.body) {
		return Fail, "a large answer to an oversized Host (memory?)"
	}
	if a.served() {
		return Fail, "served before login with an oversized Host; it should have been refused"
	}
	return Pass, ""
}

// checkBlocking says whether exploit probes get the source blocked. It
// runs last, because it may leave this source blocked for a while.
func (c *checker) checkBlocking(ctx context.Context) {
	name := "probes get the source blocked"
	if c.blockedAt != "" {
		c.add("blocking", name, Pass, fmt.Sprintf("the login page was refused from the check %q on, after %d requests", c.blockedAt, c.blockedN))
		return
	}
	start, n := time.Now(), 0
	probe := exploitProbes[0]
	for i := 1; i <= c.o.BlockProbes && ctx.Err() == nil; i++ {
		if a := c.send(ctx, c.request(probe.method, probe.target, probe.header, probe.body)); (a.closed || a.err != nil) && !c.stillUp(ctx, "blocking probe") {
			c.add("blocking", name, Fail, "the gateway stopped answering during the probes")
			return
		}
		c.probes++
		n++
		if i%5 == 0 || i == c.o.BlockProbes {
			if c.refusedNow(ctx) {
				c.add("blocking", name, Pass, fmt.Sprintf("the login page was refused after %d more exploit probes (%d in all)", n, c.probes))
				return
			}
		}
	}
	a := c.get(ctx, c.login)
	c.add("blocking", name, Fail, fmt.Sprintf("%d exploit probes (%d more in %.1fs), and the login page still answers: %s", c.probes, n, time.Since(start).Seconds(), a))
}

func shorten(s string) string {
	if len(s) > 100 {
		return fmt.Sprintf("%s... (%d bytes)", s[:60], len(s))
	}
	return s
}
