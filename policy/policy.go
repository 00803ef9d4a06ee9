// Package policy decides whether an identity may open an app. It is pure: no
// I/O, no clock, no globals, so every decision can be tested exhaustively
// and made on every request.
package policy

import (
	"slices"

	"github.com/sluis-gateway/sluis"
)

// Decide returns whether id may use app. Access is denied unless the app's
// rule names the user or one of the user's groups, and the rule's MFA
// requirement is met. An app without users and groups is open to nobody.
// A user who may use the app but passed only a second factor that can be
// phished, where the app wants a passkey, is refused with StepUp set.
func Decide(id sluis.Identity, app sluis.App) sluis.Decision {
	rule := app.Allow
	if len(rule.Users) == 0 && len(rule.Groups) == 0 {
		return sluis.Decision{Reason: "the app has no allow rule"}
	}
	if id.User == "" {
		return sluis.Decision{Reason: "not logged in"}
	}
	if rule.MFA && !id.MFA {
		return sluis.Decision{Reason: "a second factor is required"}
	}
	reason := ""
	if slices.ContainsFunc(rule.Users, func(u string) bool { return sluis.SameName(u, id.User) }) {
		reason = "the user is listed"
	} else if slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(rule.Groups, g) }) {
		reason = "a group of the user is listed"
	} else {
		return sluis.Decision{Reason: "not in an allowed user or group"}
	}
	if rule.PhishingResistant && !id.PhishingResistant() {
		return sluis.Decision{Reason: "a phishing-resistant second factor (a passkey) is required", StepUp: true}
	}
	return sluis.Decision{Allowed: true, Reason: reason}
}
