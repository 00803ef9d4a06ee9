package policy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluis-gateway/sluis"
)

var (
	ams, _ = time.LoadLocation("Europe/Amsterdam")
	// A Tuesday, 10:00 in Amsterdam.
	tuesday = time.Date(2026, 11, 24, 10, 0, 0, 0, ams)
	office  = netip.MustParsePrefix("10.1.0.0/16")
	workday = mustHours("mon-fri 07:00-19:00")
)

func mustHours(s string) sluis.Hours {
	h, err := ParseHours(s)
	if err != nil {
		panic(err)
	}
	return h
}

func normal() Situation { return Situation{Level: sluis.LevelNormal, Now: tuesday, Zone: ams} }

func totp(user string, groups ...string) sluis.Identity {
	return sluis.Identity{User: user, Groups: groups, MFA: true, MFAMethod: sluis.FactorTOTP, MFAAt: tuesday.Add(-10 * time.Minute)}
}

func passkey(user string, groups ...string) sluis.Identity {
	id := totp(user, groups...)
	id.MFAMethod = sluis.FactorPasskey
	return id
}

func get(path string) Request {
	return Request{Method: "GET", Path: path, Source: netip.MustParseAddr("192.0.2.7")}
}

// The example of the issue: /admin/ needs wiki-admins and a passkey, and
// only from the office in office hours; everything else needs staff.
var wiki = sluis.App{Name: "wiki", Host: "wiki.corp.test", Allow: []sluis.Rule{
	{Paths: []string{"/admin/"}, Groups: []string{"wiki-admins"}, MFA: true, PhishingResistant: true, Networks: []netip.Prefix{office}, Hours: []sluis.Hours{workday}},
	{Paths: []string{"/api/"}, Methods: []string{"GET", "HEAD"}, Groups: []string{"staff"}, MFA: true},
	{Paths: []string{"/api/"}, Groups: []string{"api-writers"}, MFA: true},
	{Groups: []string{"staff"}, Users: []string{"carl"}, MFA: true},
}}

func TestDecide(t *testing.T) {
	fromOffice := func(r Request) Request { r.Source = netip.MustParseAddr("10.1.2.3"); return r }
	at := func(s Situation, level, reason string) Situation { s.Level, s.LevelReason = level, reason; return s }
	off := normal()
	off.AppOff, off.AppOffReason = true, "CVE-2026-1234"
	evening := normal()
	evening.Now = time.Date(2026, 11, 24, 19, 0, 0, 0, ams)
	strictOld := at(normal(), sluis.LevelStrict, "phishing wave")
	strictOld.ReauthAfter = 5 * time.Minute
	lockdown := at(normal(), sluis.LevelLockdown, "intrusion")
	lockdown.BreakGlass = BreakGlass{Groups: []string{"ict-emergency"}}
	noRules := sluis.App{Name: "none"}
	emptyRule := sluis.App{Name: "empty", Allow: []sluis.Rule{{}}}
	essential := wiki
	essential.Essential = true
	keyAtStrict := wiki
	keyAtStrict.KeyAtStrict = true

	tests := []struct {
		name    string
		who     sluis.Identity
		app     sluis.App
		req     Request
		sit     Situation
		outcome Outcome
		status  int
		rule    int
		message string // a part of the user's text; "" means none
	}{
		{"no session", sluis.Identity{}, wiki, get("/"), normal(), Login, 0, -1, ""},
		{"staff on the front page", totp("anna", "staff"), wiki, get("/"), normal(), Allow, 0, 3, ""},
		{"a listed user", totp("carl"), wiki, get("/page"), normal(), Allow, 0, 3, ""},
		{"not staff", totp("bert", "guests"), wiki, get("/"), normal(), Deny, 403, 3, ""},
		{"staff without a second factor", sluis.Identity{User: "anna", Groups: []string{"staff"}}, wiki, get("/"), normal(), Deny, 403, 3, ""},
		{"staff at /admin/ is refused, not passed to the looser rule", totp("anna", "staff"), wiki, fromOffice(get("/admin/users")), normal(), Deny, 403, 0, ""},
		{"/admin without the slash is /admin/", totp("anna", "staff"), wiki, fromOffice(get("/admin")), normal(), Deny, 403, 0, ""},
		{"/administrator is not /admin/", totp("anna", "staff"), wiki, get("/administrator"), normal(), Allow, 0, 3, ""},
		{"admin with a passkey from the office", passkey("olga", "wiki-admins"), wiki, fromOffice(get("/admin/")), normal(), Allow, 0, 0, ""},
		{"admin with TOTP from the office steps up", totp("olga", "wiki-admins"), wiki, fromOffice(get("/admin/")), normal(), StepUp, 0, 0, ""},
		{"admin from home", passkey("olga", "wiki-admins"), wiki, get("/admin/"), normal(), Deny, 403, 0, "networks"},
		{"admin from home with TOTP: no step-up that cannot help", totp("olga", "wiki-admins"), wiki, get("/admin/"), normal(), Deny, 403, 0, "networks"},
		{"admin after hours", passkey("olga", "wiki-admins"), wiki, fromOffice(get("/admin/")), evening, Deny, 403, 0, "mon-fri 07:00-19:00 (Europe/Amsterdam)"},
		{"the api reads for staff", totp("anna", "staff"), wiki, get("/api/pages"), normal(), Allow, 0, 1, ""},
		{"the api writes only for writers", totp("anna", "staff"), wiki, Request{Method: "POST", Path: "/api/pages"}, normal(), Deny, 403, 2, ""},
		{"a writer posts", totp("wim", "api-writers"), wiki, Request{Method: "POST", Path: "/api/pages"}, normal(), Allow, 0, 2, ""},
		{"an app without rules", totp("anna", "staff"), noRules, get("/"), normal(), Deny, 403, -1, ""},
		{"a rule that lists nobody", totp("anna", "staff"), emptyRule, get("/"), normal(), Deny, 403, 0, ""},
		{"switched off", totp("anna", "staff"), wiki, get("/"), off, Deny, 503, 3, "switched off: CVE-2026-1234"},
		{"switched off, and not allowed anyway", totp("bert", "guests"), wiki, get("/"), off, Deny, 403, 3, ""},
		{"closed", totp("anna", "staff"), wiki, get("/"), at(normal(), sluis.LevelClosed, "patching"), Deny, 503, 3, "closed: patching"},
		{"essential level, other app", totp("anna", "staff"), wiki, get("/"), at(normal(), sluis.LevelEssential, "CVE"), Deny, 503, 3, "Only essential"},
		{"essential level, essential app", totp("anna", "staff"), essential, get("/"), at(normal(), sluis.LevelEssential, "CVE"), Allow, 0, 3, ""},
		{"lockdown, staff", totp("anna", "staff"), wiki, get("/"), lockdown, Deny, 403, 3, "emergency staff: intrusion"},
		{"lockdown, break-glass", totp("ed", "staff", "ict-emergency"), wiki, get("/"), lockdown, Allow, 0, 3, ""},
		{"lockdown, break-glass but not allowed by the app", totp("ed", "ict-emergency"), wiki, get("/"), lockdown, Deny, 403, 3, ""},
		{"strict, an old second factor logs in again", totp("anna", "staff"), wiki, get("/"), strictOld, Login, 0, -1, ""},
		{"strict, a fresh one passes", func() sluis.Identity { id := totp("anna", "staff"); id.MFAAt = tuesday.Add(-time.Minute); return id }(), wiki, get("/"), strictOld, Allow, 0, 3, ""},
		{"strict, an app that wants a key there steps up", func() sluis.Identity { id := totp("anna", "staff"); id.MFAAt = tuesday; return id }(), keyAtStrict, get("/"), strictOld, StepUp, 0, 3, ""},
		{"a tunnel is covered by a rule without paths", totp("anna", "staff"), wiki, Request{Source: netip.MustParseAddr("192.0.2.7")}, normal(), Allow, 0, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.who, tt.app, tt.req, tt.sit)
			if d.Outcome != tt.outcome || d.Status != tt.status || d.Rule != tt.rule || d.Reason == "" {
				t.Fatalf("got %v %d rule %d (%q), want %v %d rule %d", d.Outcome, d.Status, d.Rule, d.Reason, tt.outcome, tt.status, tt.rule)
			}
			if tt.message != "" && !strings.Contains(d.Message, tt.message) && !strings.Contains(strings.Join(d.Unmet, "; "), tt.message) {
				t.Fatalf("message %q, unmet %q: want %q", d.Message, d.Unmet, tt.message)
			}
			if tt.message == "" && d.Outcome == Deny && d.Status == 403 && d.Message != "" {
				t.Fatalf("a refusal tells the user %q", d.Message)
			}
			if d.Outcome == StepUp && d.Factor != sluis.FactorPasskey {
				t.Fatalf("step up to %q", d.Factor)
			}
		})
	}
}

// What the explanation says would change a decision.
func TestDecideUnmet(t *testing.T) {
	d := Decide(totp("anna", "staff"), wiki, get("/admin/x"), Situation{Now: tuesday.Add(12 * time.Hour), Zone: ams})
	want := []string{"needs one of the groups wiki-admins", "needs a source address in 10.1.0.0/16, not 192.0.2.7",
		"outside hours mon-fri 07:00-19:00 (Europe/Amsterdam)", "needs a passkey"}
	if !slices.Equal(d.Unmet, want) {
		t.Fatalf("unmet:\n%q\nwant\n%q", d.Unmet, want)
	}
}

// Properties over hostile inputs: random identities, rules, requests and
// situations. Whatever they are, an allow needs a session, a rule chosen by
// the request's target whose every condition holds, a level that lets the
// app and the user through, and the app switched on; deny is the default.
func TestDecideProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"", "anna", "bert", "staff", "ops", "x", "ANNA", "anna\x00", "*"}
	paths := []string{"", "/", "/admin", "/admin/", "/admin/x", "/Admin/", "/api", "/api/v1", "/*", "/a/*/c", "/a/b/c", "//admin", "/admin/../x", "/%2e%2e/"}
	methods := []string{"", "GET", "POST", "get", "PROPFIND", "HEAD"}
	levels := []string{"", sluis.LevelNormal, sluis.LevelStrict, sluis.LevelEssential, sluis.LevelLockdown, sluis.LevelClosed, "bogus"}
	addrs := []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:10.1.0.1"), netip.MustParseAddr("2001:db8::1")}
	pick := func(from []string) []string {
		var out []string
		for range r.IntN(3) {
			out = append(out, from[r.IntN(len(from))])
		}
		return out
	}
	allowed := 0
	for range 50000 {
		who := sluis.Identity{User: names[r.IntN(len(names))], Groups: pick(names), MFA: r.IntN(2) == 0, MFAAt: tuesday.Add(-time.Duration(r.IntN(3600)) * time.Second)}
		if who.MFA {
			who.MFAMethod = []string{sluis.FactorTOTP, sluis.FactorPasskey}[r.IntN(2)]
		}
		var app sluis.App
		app.Essential, app.KeyAtStrict = r.IntN(2) == 0, r.IntN(3) == 0
		for range r.IntN(4) {
			rule := sluis.Rule{Users: pick(names), Groups: pick(names), MFA: r.IntN(2) == 0, PhishingResistant: r.IntN(3) == 0,
				Paths: pick(paths[1:9]), Methods: pick(methods[1:])}
			if r.IntN(3) == 0 {
				rule.Networks = []netip.Prefix{office}
			}
			if r.IntN(3) == 0 {
				rule.Hours = []sluis.Hours{workday}
			}
			app.Allow = append(app.Allow, rule)
		}
		req := Request{Method: methods[r.IntN(len(methods))], Path: paths[r.IntN(len(paths))], Source: addrs[r.IntN(len(addrs))]}
		sit := Situation{Level: levels[r.IntN(len(levels))], LevelReason: "reason", AppOff: r.IntN(4) == 0,
			BreakGlass: BreakGlass{Users: pick(names), Groups: pick(names)}, ReauthAfter: time.Duration(r.IntN(3600)) * time.Second,
			Now: tuesday.Add(time.Duration(r.IntN(7*24)) * time.Hour), Zone: ams}
		d := Decide(who, app, req, sit)
		if d.Reason == "" {
			t.Fatalf("no reason: %+v", d)
		}
		if d.Outcome != Allow {
			if d.Outcome == Deny && d.Status != 403 && d.Status != 503 {
				t.Fatalf("deny with status %d", d.Status)
			}
			continue
		}
		allowed++
		i := Choose(app.Allow, req)
		rule := app.Allow[i]
		shared := slices.ContainsFunc(who.Groups, func(g string) bool { return slices.Contains(rule.Groups, g) })
		switch {
		case who.User == "":
			t.Fatalf("allowed without a session: %+v", d)
		case d.Rule != i:
			t.Fatalf("allowed by rule %d, but the request chooses %d", d.Rule, i)
		case !shared && !slices.ContainsFunc(rule.Users, func(u string) bool { return sluis.SameName(u, who.User) }):
			t.Fatalf("allowed without being listed: %+v %+v", who, rule)
		case rule.MFA && !who.MFA, rule.PhishingResistant && !who.PhishingResistant():
			t.Fatalf("allowed without the second factor: %+v %+v", who, rule)
		case len(rule.Networks) > 0 && !inNetworks(rule.Networks, req.Source):
			t.Fatalf("allowed from %v: %+v", req.Source, rule)
		case len(rule.Hours) > 0 && !InHours(rule.Hours, sit.Now, sit.Zone):
			t.Fatalf("allowed at %v: %+v", sit.Now, rule)
		case sit.AppOff:
			t.Fatalf("allowed to a switched-off app")
		case sit.Level == sluis.LevelClosed:
			t.Fatalf("allowed at closed")
		case sit.Level == sluis.LevelEssential && !app.Essential:
			t.Fatalf("allowed to a non-essential app at essential")
		case sit.Level == sluis.LevelLockdown && !sit.BreakGlass.Allows(who):
			t.Fatalf("allowed at lockdown without break-glass: %+v", who)
		case sit.Level == sluis.LevelStrict && (Stale(who, sit) || app.KeyAtStrict && !who.PhishingResistant()):
			t.Fatalf("allowed at strict with an old or phishable factor: %+v", who)
		}
	}
	// The properties are checked on allows: enough of them must occur.
	if allowed < 500 {
		t.Fatalf("only %d allows in 50000 decisions", allowed)
	}
}

func TestPathMatch(t *testing.T) {
	tests := []struct {
		pat, path string
		want      bool
	}{
		{"/", "/", true},
		{"/", "/anything/at/all", true},
		{"/", "", false},
		{"/admin/", "/admin", true},
		{"/admin/", "/admin/", true},
		{"/admin/", "/admin/users/1", true},
		{"/admin", "/admin/users", true},
		{"/admin/", "/administrator", false},
		{"/admin/", "/Admin/", false},
		{"/admin/", "/", false},
		{"/admin/", "admin/", false},
		{"/projects/*/settings", "/projects/web/settings", true},
		{"/projects/*/settings", "/projects/web/settings/hooks", true},
		{"/projects/*/settings", "/projects/web", false},
		{"/projects/*/settings", "/projects/a/b/settings", false},
		{"/files/*.pdf", "/files/report.pdf", true},
		{"/files/*.pdf", "/files/report.pdf.exe", false},
		{"/*", "/x", true},
		{"/*", "/", true}, // an empty first segment matches *
		{"/a/b", "/a", false},
	}
	for _, tt := range tests {
		if got := PathMatch(tt.pat, tt.path); got != tt.want {
			t.Errorf("PathMatch(%q, %q) = %v, want %v", tt.pat, tt.path, got, tt.want)
		}
	}
}

func TestValidPattern(t *testing.T) {
	for _, ok := range []string{"/", "/admin", "/admin/", "/a/*/c", "/files/*.pdf", "/api/v4/"} {
		if err := ValidPattern(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "admin", "/a//b", "/a/../b", "/./a", "/a%2Fb", "/a?b", "/[ab]", "/a\\b", "/a\x00", strings.Repeat("/a", 600)} {
		if err := ValidPattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Fuzz: PathMatch never panics, and a pattern without '*' matches exactly
// the path itself and the paths below it.
func FuzzPathMatch(f *testing.F) {
	f.Add("/admin/", "/admin/x")
	f.Add("/a/*/c", "/a/b/c/d")
	f.Add("/", "")
	f.Add("/files/*.pdf", "/files/x.pdf")
	f.Fuzz(func(t *testing.T, pat, p string) {
		got := PathMatch(pat, p)
		if ValidPattern(pat) != nil || strings.Contains(pat, "*") {
			return
		}
		base := strings.TrimSuffix(pat, "/")
		want := base == "" && strings.HasPrefix(p, "/") || base != "" && (p == base || strings.HasPrefix(p, base+"/"))
		if got != want {
			t.Fatalf("PathMatch(%q, %q) = %v, want %v", pat, p, got, want)
		}
	})
}

func TestParseHours(t *testing.T) {
	tests := []struct {
		in       string
		days     uint8
		from, to int
	}{
		{"mon-fri 07:00-19:00", 0b0111110, 7 * 60, 19 * 60},
		{"Sat,Sun 10:00-14:30", 0b1000001, 600, 870},
		{"fri-mon 22:00-06:00", 0b1100011, 22 * 60, 6 * 60},
		{"daily 00:00-24:00", 0x7f, 0, 1440},
		{"08:00-17:00", 0x7f, 480, 1020},
		{"mon,wed-thu 09:00-10:00", 0b0011010, 540, 600},
	}
	for _, tt := range tests {
		h, err := ParseHours(tt.in)
		if err != nil || h.Days != tt.days || h.From != tt.from || h.To != tt.to {
			t.Errorf("%q: %+v %v", tt.in, h, err)
		}
	}
	for _, bad := range []string{"", "mon-fri", "mon-fri 7:00-19:00", "mon-fri 07:00", "maandag 07:00-19:00", "mon-fri 07:00-07:00",
		"mon-fri 25:00-26:00", "mon-fri 07:60-19:00", "mon-fri 24:00-01:00", "mon-fri 07:00-19:00 extra", "mon-xyz 07:00-19:00", "mon-fri 24:30-01:00"} {
		if _, err := ParseHours(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestInHours(t *testing.T) {
	night := mustHours("fri 22:00-06:00")
	tests := []struct {
		spans []sluis.Hours
		at    time.Time
		want  bool
	}{
		{[]sluis.Hours{workday}, time.Date(2026, 11, 24, 7, 0, 0, 0, ams), true},       // Tuesday 07:00
		{[]sluis.Hours{workday}, time.Date(2026, 11, 24, 6, 59, 59, 0, ams), false},    // Tuesday 06:59
		{[]sluis.Hours{workday}, time.Date(2026, 11, 24, 19, 0, 0, 0, ams), false},     // Tuesday 19:00
		{[]sluis.Hours{workday}, time.Date(2026, 11, 28, 10, 0, 0, 0, ams), false},     // Saturday
		{[]sluis.Hours{workday}, time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC), true}, // 09:30 in Amsterdam
		{[]sluis.Hours{workday}, time.Date(2026, 11, 24, 18, 30, 0, 0, time.UTC), false},
		{[]sluis.Hours{night}, time.Date(2026, 11, 27, 23, 0, 0, 0, ams), true},   // Friday night
		{[]sluis.Hours{night}, time.Date(2026, 11, 28, 5, 59, 0, 0, ams), true},   // Saturday early, after Friday
		{[]sluis.Hours{night}, time.Date(2026, 11, 28, 22, 30, 0, 0, ams), false}, // Saturday night
		{[]sluis.Hours{night}, time.Date(2026, 11, 27, 5, 0, 0, 0, ams), false},   // Friday early, after Thursday
		// The summer time change: 07:00 local is still 07:00.
		{[]sluis.Hours{workday}, time.Date(2026, 3, 30, 5, 0, 0, 0, time.UTC), true},
	}
	for _, tt := range tests {
		if got := InHours(tt.spans, tt.at, ams); got != tt.want {
			t.Errorf("%v in %s: %v, want %v", tt.at, tt.spans[0].Text, got, tt.want)
		}
	}
}

// BenchmarkDecide decides an allowed request for an app with one rule (as
// before rules per path) and for the four rules of the example,
// where the request is tried against three rules with paths first.
func BenchmarkDecide(b *testing.B) {
	id := totp("anna", "x", "y", "staff")
	req := get("/wiki/Main_Page")
	sit := normal()
	one := sluis.App{Name: "wiki", Allow: []sluis.Rule{{Groups: []string{"a", "b", "staff"}, MFA: true}}}
	for _, bb := range []struct {
		name string
		app  sluis.App
	}{{"one-rule", one}, {"four-rules", wiki}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if Decide(id, bb.app, req, sit).Outcome != Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}
