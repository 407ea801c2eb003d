package api

import "slices"

// Roles, as the API names them (api.User.Role, api.Token.Role, api.Me.Role
// and the x-roles of openapi.yaml). A user, and each of their sessions,
// has one; so does every API token. What each role may do is decided by
// the controller's services and its HTTP access table.
const (
	RoleAdmin    = "admin"    // users, villages, tokens, box settings, the audit log; and everything else
	RoleOperator = "operator" // audio, playlists, schedules, broadcasts
	RoleApprover = "approver" // approves or rejects wide urgent and emergency broadcasts
	RoleViewer   = "viewer"   // reads villages, schedules, broadcasts and coverage
	RoleVillage  = "village"  // one village's broadcaster: its schedules, hand confirmations
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleOperator, RoleApprover, RoleViewer, RoleVillage}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// What people decided about a broadcast, as the controller records it.
// pending_approval, rejected and cancelled are also states the API shows
// (Broadcast.State); a released broadcast is shown as sending, in
// progress, done or expired, which follow from the time and the boxes'
// reports.
const (
	BroadcastPending   = "pending_approval" // waiting for a second person's approval
	BroadcastReleased  = "released"         // cleared to send: approved, or needing no approval
	BroadcastRejected  = "rejected"         // an approver refused it; it was never sent
	BroadcastCancelled = "cancelled"        // stopped by an operator (before or after sending)
)
