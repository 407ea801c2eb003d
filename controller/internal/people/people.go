// Package people is who acts in the controller's application services:
// the Person every service takes with a context, whatever the door, and
// the audit log entry each service writes in that person's name. It is
// its own package so that services (broadcasts, schedules, alerts, box
// settings) share one Person without importing each other.
package people

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Person is who acts: the one a broadcast is created, approved, rejected,
// cancelled or resent by, a schedule made or withdrawn by.
type Person struct {
	// Name is what records show (created_by, cancelled_by, the audit
	// log's actor): a user's username, or an API token's name.
	Name string
	// Key is the person behind the credentials (store.Token.Principal,
	// "user/3"): the two-person rule compares people, not sessions or
	// tokens, so one person's second session or minted token is still
	// that person.
	Key  string
	Role string
	// Village is the village a village account (api.RoleVillage) acts
	// for; "" for every other role.
	Village string
	// DisplayName is how people know them ("王主任"), for logs; "" if
	// none.
	DisplayName string
	// From is where the person acts from (the client's address), for the
	// audit log; "" for none.
	From string
}

// May says whether p's role is one of roles, and if not, why p may not
// do what (an EFORBIDDEN error naming the roles that may).
func May(p Person, roles []string, what string) error {
	if slices.Contains(roles, p.Role) {
		return nil
	}
	return &cx.Error{Code: cx.EFORBIDDEN, Reason: api.ReasonForbidden,
		Message: fmt.Sprintf("the role %s may not %s; that needs %s", p.Role, what, strings.Join(roles, " or "))}
}

// Auditor writes entries to the audit log (the store).
type Auditor interface {
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Audit writes to the audit log that p did a to object, its detail worded
// from params. It is written whatever the caller then does, even when
// ctx is cancelled: the change is made.
func Audit(ctx context.Context, to Auditor, log *slog.Logger, p Person, a audit.Action, object string, params audit.Params) {
	params = maps.Clone(params)
	if params == nil {
		params = audit.Params{}
	}
	maps.DeleteFunc(params, func(_, v string) bool { return v == "" })
	e := store.AuditEntry{Actor: p.Name, Action: a.String(), Object: object, Detail: a.Detail(params), Params: params, RemoteAddr: p.From}
	if err := to.Audit(context.WithoutCancel(ctx), e); err != nil {
		log.Error("audit entry lost", "actor", e.Actor, "action", e.Action, "object", e.Object, "err", err)
	}
}
