package policy

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluis-gateway/sluis"
)

func TestDecide(t *testing.T) {
	wiki := sluis.App{Name: "wiki", Allow: sluis.Allow{Groups: []string{"staff"}, Users: []string{"carl"}, MFA: true}}
	open := sluis.App{Name: "open", Allow: sluis.Allow{Groups: []string{"staff"}}}
	none := sluis.App{Name: "none"}
	keyApp := sluis.App{Name: "hr", Allow: sluis.Allow{Groups: []string{"staff"}, MFA: true, PhishingResistant: true}}
	tests := []struct {
		name string
		id   sluis.Identity
		app  sluis.App
		want bool
	}{
		{"group member with mfa", sluis.Identity{User: "anna", Groups: []string{"ops", "staff"}, MFA: true}, wiki, true},
		{"listed user", sluis.Identity{User: "carl", MFA: true}, wiki, true},
		{"group member without mfa", sluis.Identity{User: "anna", Groups: []string{"staff"}}, wiki, false},
		{"listed user without mfa", sluis.Identity{User: "carl"}, wiki, false},
		{"wrong group", sluis.Identity{User: "bert", Groups: []string{"guests"}, MFA: true}, wiki, false},
		{"no groups", sluis.Identity{User: "bert", MFA: true}, wiki, false},
		{"group name as user name", sluis.Identity{User: "staff", MFA: true}, wiki, false},
		{"user name as group", sluis.Identity{User: "x", Groups: []string{"carl"}, MFA: true}, wiki, false},
		{"case differs", sluis.Identity{User: "anna", Groups: []string{"Staff"}, MFA: true}, wiki, false},
		{"anonymous", sluis.Identity{Groups: []string{"staff"}, MFA: true}, wiki, false},
		{"mfa not required", sluis.Identity{User: "anna", Groups: []string{"staff"}}, open, true},
		{"app without rule", sluis.Identity{User: "anna", Groups: []string{"staff"}, MFA: true}, none, false},
		{"key app with a passkey", sluis.Identity{User: "anna", Groups: []string{"staff"}, MFA: true, MFAMethod: sluis.FactorPasskey}, keyApp, true},
		{"key app with totp", sluis.Identity{User: "anna", Groups: []string{"staff"}, MFA: true, MFAMethod: sluis.FactorTOTP}, keyApp, false},
		{"key app, wrong group, with a passkey", sluis.Identity{User: "bert", Groups: []string{"guests"}, MFA: true, MFAMethod: sluis.FactorPasskey}, keyApp, false},
	}
	for _, tt := range tests {
		d := Decide(tt.id, tt.app)
		if d.Allowed != tt.want || d.Reason == "" {
			t.Errorf("%s: got %+v, want allowed=%v", tt.name, d, tt.want)
		}
	}
}

// Property: over random identities and rules, an allow always has a reason
// in the rule (the user listed or a shared group) and MFA when required, and
// a rule without principals never allows.
func TestDecideProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"", "anna", "bert", "staff", "ops", "x"}
	pick := func() []string {
		var out []string
		for range r.IntN(3) {
			out = append(out, names[r.IntN(len(names))])
		}
		return out
	}
	for range 20000 {
		id := sluis.Identity{User: names[r.IntN(len(names))], Groups: pick(), MFA: r.IntN(2) == 0}
		if id.MFA {
			id.MFAMethod = []string{sluis.FactorTOTP, sluis.FactorPasskey}[r.IntN(2)]
		}
		app := sluis.App{Allow: sluis.Allow{Users: pick(), Groups: pick(), MFA: r.IntN(2) == 0, PhishingResistant: r.IntN(3) == 0}}
		d := Decide(id, app)
		if d.StepUp {
			// A step-up is offered only to someone the rule lets in,
			// and only for the kind of factor.
			if d.Allowed || !app.Allow.PhishingResistant || id.PhishingResistant() || !Decide(sluis.Identity{User: id.User, Groups: id.Groups, MFA: true, MFAMethod: sluis.FactorPasskey}, app).Allowed {
				t.Fatalf("step-up offered wrongly: %+v %+v %+v", id, app, d)
			}
		}
		if !d.Allowed {
			continue
		}
		if app.Allow.PhishingResistant && !id.PhishingResistant() {
			t.Fatalf("allowed without a passkey: %+v %+v", id, app)
		}
		shared := slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(app.Allow.Groups, g) })
		switch {
		case id.User == "":
			t.Fatalf("anonymous allowed: %+v %+v", id, app)
		case app.Allow.MFA && !id.MFA:
			t.Fatalf("allowed without required MFA: %+v %+v", id, app)
		case !slices.Contains(app.Allow.Users, id.User) && !shared:
			t.Fatalf("allowed without being listed: %+v %+v", id, app)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	app := sluis.App{Allow: sluis.Allow{Groups: []string{"a", "b", "staff"}, MFA: true}}
	id := sluis.Identity{User: "anna", Groups: []string{"x", "y", "staff"}, MFA: true}
	b.ReportAllocs()
	for b.Loop() {
		Decide(id, app)
	}
}
