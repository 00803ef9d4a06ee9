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
	if slices.Contains(rule.Users, id.User) {
		return sluis.Decision{Allowed: true, Reason: "the user is listed"}
	}
	for _, g := range id.Groups {
		if slices.Contains(rule.Groups, g) {
			return sluis.Decision{Allowed: true, Reason: "a group of the user is listed"}
		}
	}
	return sluis.Decision{Reason: "not in an allowed user or group"}
}
