// Package admin is the operators' side of sluis: the admin listener, kept
// apart from the public one, its login (a passkey and a group named in
// admin.roles), the web console and the JSON API under /api/v1/, and the
// actions they share with the CLI (revoking sessions, disabling users,
// emergency levels, blocks, app switches), each recorded in the audit trail
// under the operator's name.
//
// Nothing in this package is ever routed on the public listener.
package admin

import (
	"context"
	"fmt"
)

// Role is what an operator may do; each role includes the ones below it.
type Role int

const (
	// RoleNone may do nothing: not an operator.
	RoleNone Role = iota
	// RoleViewer sees everything and changes nothing.
	RoleViewer
	// RoleHelpdesk adds the user and session actions: disable and enable
	// a user, reset their second factors, revoke sessions.
	RoleHelpdesk
	// RoleOperator adds emergency levels, blocks and app switches.
	RoleOperator
)

// Roles are the names of the roles as admin.roles writes them.
var Roles = map[string]Role{"viewer": RoleViewer, "helpdesk": RoleHelpdesk, "operator": RoleOperator}

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleHelpdesk:
		return "helpdesk"
	case RoleOperator:
		return "operator"
	}
	return "none"
}

// Operator is who performs an action: the name recorded in the audit
// trail ("alice" on the console, "root (uid 0)" for the CLI), the role
// that decides what they may do, and where they act from (the source
// address on the console and API, "cli" for the CLI).
type Operator struct {
	Name   string
	Role   Role
	Source string
	// SessionID is the console session the operator acts in ("" for the
	// CLI): the one session a lockdown it sets does not end.
	SessionID string
}

// ErrForbidden is returned (wrapped) when an operator's role does not
// allow an action; the console and the API answer it with 403.
var ErrForbidden = fmt.Errorf("your role does not allow this")

// Need returns nil when op's role is at least min, else an error wrapping
// ErrForbidden that names the role needed.
func (op Operator) Need(min Role) error {
	if op.Role >= min {
		return nil
	}
	return fmt.Errorf("%w: it needs the role %s (yours: %s)", ErrForbidden, min, op.Role)
}

type operatorKey struct{}

// WithOperator returns ctx carrying the logged-in operator, as the admin
// listener's login check sets it for the console and the API.
func WithOperator(ctx context.Context, op Operator) context.Context {
	return context.WithValue(ctx, operatorKey{}, op)
}

// OperatorFrom returns the operator ctx carries, if any.
func OperatorFrom(ctx context.Context) (Operator, bool) {
	op, ok := ctx.Value(operatorKey{}).(Operator)
	return op, ok
}
