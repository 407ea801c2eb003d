package users_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/users"
)

const password = "correct horse battery"

var operator = people.Person{Name: "li", Key: "user/9", Role: api.RoleOperator}

func newService(t *testing.T) (*users.Service, *store.DB, store.User) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := db.CreateUser(ctx, store.NewUser{Username: "wang", DisplayName: "王主任", Role: api.RoleAdmin, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := users.New(users.Options{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db, u
}

func reason(err error) string { r, _ := cx.Reason(err); return r }

// lastAudit is the newest audit entry, and how many there are.
func lastAudit(t *testing.T, db *store.DB) (store.AuditEntry, int) {
	t.Helper()
	log, err := db.AuditLog(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) == 0 {
		return store.AuditEntry{}, 0
	}
	return log[0], len(log)
}

// TestLogin: every refused login is audited, under the name tried (or a
// placeholder for a name too long to record), whatever the door; a
// disabled account says so; a login is audited with its session.
func TestLogin(t *testing.T) {
	ctx := context.Background()
	svc, db, u := newService(t)
	tests := []struct {
		name, user, pass string
		console          bool
		reason, actor    string
	}{
		{"wrong password", "wang", "nope", false, api.ReasonLoginFailed, "wang"},
		{"no such user", " ghost ", "nope", true, api.ReasonLoginFailed, "ghost"},
		{"a long name", strings.Repeat("名", 65), "nope", false, api.ReasonLoginFailed, "(a long or malformed username)"},
		{"not UTF-8", "wang\xff", "nope", true, api.ReasonLoginFailed, "(a long or malformed username)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := svc.Login(ctx, "10.0.0.7", tt.user, tt.pass, tt.console)
			if cx.Code(err) != cx.EUNAUTHORIZED || reason(err) != tt.reason {
				t.Fatalf("err = %v, want %s", err, tt.reason)
			}
			e, _ := lastAudit(t, db)
			if e.Action != "login.failed" || e.Actor != tt.actor || e.RemoteAddr != "10.0.0.7" || (e.Params["console"] != "") != tt.console {
				t.Fatalf("audit = %+v", e)
			}
		})
	}

	tok, secret, got, err := svc.Login(ctx, "10.0.0.7", "wang", password, true)
	if err != nil || secret == "" || got.ID != u.ID || tok.UserID != u.ID {
		t.Fatalf("login = %+v %+v, %v", tok, got, err)
	}
	if e, _ := lastAudit(t, db); e.Action != "login" || e.Actor != "wang" || e.Object != "user/1" || e.Params["token"] == "" || e.Params["console"] == "" {
		t.Fatalf("audit = %+v", e)
	}
	if _, err := db.Authenticate(ctx, secret); err != nil {
		t.Fatalf("the session does not work: %v", err)
	}

	if _, err := db.CreateUser(ctx, store.NewUser{Username: "root", Role: api.RoleAdmin, Password: password}); err != nil { // another admin
		t.Fatal(err)
	}
	disabled := true
	if _, err := db.UpdateUser(ctx, u.ID, store.UserChange{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := svc.Login(ctx, "10.0.0.7", "wang", password, false); reason(err) != api.ReasonAccountDisabled {
		t.Fatalf("disabled: %v", err)
	}
	if e, _ := lastAudit(t, db); e.Action != "login.failed" || e.Params["error_reason"] != api.ReasonAccountDisabled {
		t.Fatalf("audit = %+v", e)
	}
}

// TestChangeOwnPassword: a token of no user has no password; a wrong
// current one is refused and audited; a right one ends every session.
func TestChangeOwnPassword(t *testing.T) {
	ctx := context.Background()
	svc, db, u := newService(t)
	tok, secret, _, err := svc.Login(ctx, "", "wang", password, false)
	if err != nil {
		t.Fatal(err)
	}
	wang := people.Person{Name: "wang", Key: tok.Principal(), Role: api.RoleAdmin}
	if err := svc.ChangeOwnPassword(ctx, wang, 0, password, "a new long password"); reason(err) != api.ReasonTokenNoUser {
		t.Fatalf("no user: %v", err)
	}
	err = svc.ChangeOwnPassword(ctx, wang, u.ID, "wrong", "a new long password")
	if !users.WrongPassword(err) {
		t.Fatalf("wrong current password: %v", err)
	}
	if e, _ := lastAudit(t, db); e.Action != "user.password_change_failed" || e.Actor != "wang" {
		t.Fatalf("audit = %+v", e)
	}
	if err := svc.ChangeOwnPassword(ctx, wang, u.ID, password, "a new long password"); err != nil {
		t.Fatal(err)
	}
	if e, _ := lastAudit(t, db); e.Action != "user.password_changed" {
		t.Fatalf("audit = %+v", e)
	}
	if _, err := db.Authenticate(ctx, secret); err == nil {
		t.Fatal("the session outlived the password change")
	}
	if _, _, _, err := svc.Login(ctx, "", "wang", "a new long password", false); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// TestAdminsOnly: only an admin manages users and tokens; a refusal
// changes and audits nothing.
func TestAdminsOnly(t *testing.T) {
	ctx := context.Background()
	svc, db, _ := newService(t)
	u, err := db.CreateUser(ctx, store.NewUser{Username: "zhang", Role: api.RoleViewer, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	role := api.RoleAdmin
	refusals := map[string]func() error{
		"list": func() error { _, err := svc.List(ctx, operator, false); return err },
		"create": func() error {
			_, err := svc.Create(ctx, operator, store.NewUser{Username: "x", Role: api.RoleAdmin, Password: password})
			return err
		},
		"update": func() error { _, err := svc.Update(ctx, operator, u.ID, store.UserChange{Role: &role}); return err },
		"delete": func() error { return svc.Delete(ctx, operator, u.ID) },
		"tokens": func() error { _, err := svc.Tokens(ctx, operator); return err },
		"mint": func() error {
			_, _, err := svc.MintToken(ctx, operator, store.Token{ID: 1}, "script", "", "")
			return err
		},
		"revoke": func() error { return svc.RevokeToken(ctx, operator, 1) },
	}
	_, before := lastAudit(t, db)
	for name, f := range refusals {
		if err := f(); reason(err) != api.ReasonForbidden {
			t.Errorf("%s by an operator: %v", name, err)
		}
	}
	us, _ := db.Users(ctx, true)
	if _, after := lastAudit(t, db); after != before || len(us) != 2 || us[1].Role != api.RoleViewer {
		t.Fatalf("refusals changed something: audit %d -> %d, users %+v", before, after, us)
	}
}

// TestManage: an admin's changes are audited without the password; a
// minted token belongs to the minter's person and defaults to operator.
func TestManage(t *testing.T) {
	ctx := context.Background()
	svc, db, u := newService(t)
	session, _, _, err := svc.Login(ctx, "", "wang", password, false)
	if err != nil {
		t.Fatal(err)
	}
	wang := people.Person{Name: "wang", Key: session.Principal(), Role: api.RoleAdmin, From: "10.0.0.1"}
	li, err := svc.Create(ctx, wang, store.NewUser{Username: "li", Role: api.RoleOperator, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := lastAudit(t, db); e.Action != "user.create" || e.Params["username"] != "li" || e.RemoteAddr != "10.0.0.1" {
		t.Fatalf("audit = %+v", e)
	}
	pw := "another long password"
	if _, err := svc.Update(ctx, wang, li.ID, store.UserChange{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	e, _ := lastAudit(t, db)
	if e.Action != "user.update" || e.Params["password_changed"] == "" || strings.Contains(e.Detail+strings.Join(mapValues(e.Params), " "), pw) {
		t.Fatalf("audit = %+v", e)
	}
	tok, secret, err := svc.MintToken(ctx, wang, session, "  script  ", "", "")
	if err != nil || secret == "" || tok.Name != "script" || tok.Role != api.RoleOperator || tok.Principal() != session.Principal() {
		t.Fatalf("mint = %+v, %v (minter %s)", tok, err, session.Principal())
	}
	if e, _ := lastAudit(t, db); e.Action != "token.create" || e.Params["principal"] != "user/"+itoa(u.ID) {
		t.Fatalf("audit = %+v", e)
	}
	if err := svc.RevokeToken(ctx, wang, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, secret); err == nil {
		t.Fatal("a revoked token works")
	}
	if err := svc.Delete(ctx, wang, li.ID); err != nil {
		t.Fatal(err)
	}
	if e, _ := lastAudit(t, db); e.Action != "user.delete" || e.Object != "user/"+itoa(li.ID) {
		t.Fatalf("audit = %+v", e)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
