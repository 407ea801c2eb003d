package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

func TestMigrationKeepsTokensStaffBecomesOperator(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := store.OpenAtVersionForTest(ctx, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Secrets "a" and "s", stored as their sha256.
	_, err = old.ExecContext(ctx, `INSERT INTO api_tokens (hash, name, role, created_at) VALUES
		('ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb', 'first', 'admin', '2026-01-01T00:00:00.000000Z'),
		('043a718774c572bd8a25adbeb1bfcd5c0256ae11cecf9f9c3f925d0e52beaf89', 'clerk', 'staff', '2026-01-01T00:00:00.000000Z')`)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for secret, want := range map[string]string{"a": api.RoleAdmin, "s": api.RoleOperator} {
		tok, err := db.Authenticate(ctx, secret)
		if err != nil || tok.Role != want {
			t.Fatalf("token %q after migration: %+v %v", secret, tok, err)
		}
	}
}

func TestUsersAndSessions(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	adminTok, _, _ := db.EnsureAdminToken(ctx)

	bad := []struct {
		name  string
		u     store.NewUser
		field string
	}{
		{"no username", store.NewUser{Role: "viewer", Password: "long enough pw"}, "username"},
		{"space", store.NewUser{Username: "li ming", Role: "viewer", Password: "long enough pw"}, "username"},
		{"bad role", store.NewUser{Username: "li", Role: "staff", Password: "long enough pw"}, "role"},
		{"short password", store.NewUser{Username: "li", Role: "viewer", Password: "short"}, "password"},
		{"village without code", store.NewUser{Username: "li", Role: "village", Password: "long enough pw"}, "village"},
		{"unknown village", store.NewUser{Username: "li", Role: "village", Village: "110101009999", Password: "long enough pw"}, "village"},
		{"code for another role", store.NewUser{Username: "li", Role: "operator", Village: "110101002001", Password: "long enough pw"}, "village"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.CreateUser(ctx, tt.u)
			var ce *cx.Error
			if !errors.As(err, &ce) || ce.Code != cx.EINVALID || ce.Field != tt.field {
				t.Fatalf("err = %v, want invalid %s", err, tt.field)
			}
		})
	}

	op, err := db.CreateUser(ctx, store.NewUser{Username: " Li.Ming ", DisplayName: "李明", Role: api.RoleOperator, Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if op.Username != "li.ming" || op.DisplayName != "李明" {
		t.Fatalf("user %+v", op)
	}
	if _, err := db.CreateUser(ctx, store.NewUser{Username: "LI.MING", Role: api.RoleViewer, Password: "correct horse"}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("duplicate username: %v", err)
	}
	vil, err := db.CreateUser(ctx, store.NewUser{Username: "nancun", Role: api.RoleVillage, Village: "110101002001", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ user, pass string }{{"li.ming", "wrong horse"}, {"nobody", "correct horse"}, {"li.ming", ""}} {
		if _, _, _, err := db.Login(ctx, tt.user, tt.pass, 0); !errors.Is(err, store.ErrUnauthorized) {
			t.Fatalf("login %s/%s: %v", tt.user, tt.pass, err)
		}
	}
	tok, secret, u, err := db.Login(ctx, "Li.Ming", "correct horse", time.Hour)
	if err != nil || u.ID != op.ID || tok.UserID != op.ID || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("login: %+v %+v %v", tok, u, err)
	}
	got, err := db.Authenticate(ctx, secret)
	if err != nil || got.Role != api.RoleOperator || got.Name != "li.ming" || got.Principal() != "user/1" {
		t.Fatalf("authenticate session: %+v %v", got, err)
	}

	// A role change applies to the live session; a village user's session
	// carries the village.
	viewer := api.RoleViewer
	if _, err := db.UpdateUser(ctx, op.ID, store.UserChange{Role: &viewer}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Authenticate(ctx, secret); got.Role != api.RoleViewer {
		t.Fatalf("role after change: %+v", got)
	}
	_, vsecret, _, err := db.Login(ctx, "nancun", "correct horse", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Authenticate(ctx, vsecret); got.Role != api.RoleVillage || got.Village != "110101002001" {
		t.Fatalf("village session: %+v", got)
	}

	// Sessions expire; a new password or disabling ends them.
	clk.Advance(time.Hour)
	if _, err := db.Authenticate(ctx, secret); cx.Code(err) != cx.EUNAUTHORIZED || !strings.Contains(cx.Message(err), "expired") {
		t.Fatalf("expired session: %v", err)
	}
	pw := "another horse"
	if _, err := db.UpdateUser(ctx, vil.ID, store.UserChange{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, vsecret); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("session after password change: %v", err)
	}
	_, vsecret, _, _ = db.Login(ctx, "nancun", "another horse", 0)
	yes := true
	if _, err := db.UpdateUser(ctx, vil.ID, store.UserChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, vsecret); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("session after disabling: %v", err)
	}
	if _, _, _, err := db.Login(ctx, "nancun", "another horse", 0); !strings.Contains(cx.Message(err), "disabled") {
		t.Fatalf("login when disabled: %v", err)
	}

	// The installation never loses its last admin.
	admin, err := db.CreateUser(ctx, store.NewUser{Username: "boss", Role: api.RoleAdmin, Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := db.Authenticate(ctx, adminTok)
	if err := db.RevokeToken(ctx, first.ID); err != nil {
		t.Fatalf("revoking the first admin token once an admin user exists: %v", err)
	}
	op2 := api.RoleOperator
	if _, err := db.UpdateUser(ctx, admin.ID, store.UserChange{Role: &op2}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("demoting the last admin: %v", err)
	}
	if _, err := db.UpdateUser(ctx, admin.ID, store.UserChange{Disabled: &yes}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("disabling the last admin: %v", err)
	}
	if err := db.DeleteUser(ctx, admin.ID); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("deleting the last admin: %v", err)
	}
	if err := db.DeleteUser(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateUser(ctx, op.ID, store.UserChange{Disabled: &yes}); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("changing a deleted user: %v", err)
	}
	live, _ := db.Users(ctx, false)
	all, _ := db.Users(ctx, true)
	if len(live) != 2 || len(all) != 3 {
		t.Fatalf("users: %d live, %d in all", len(live), len(all))
	}
}

func TestAuditFilter(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	for _, e := range []store.AuditEntry{
		{Actor: "li", Action: "broadcast.create", Object: "broadcast/1"},
		{Actor: "wang", Action: "broadcast.approve", Object: "broadcast/1"},
		{Actor: "li", Action: "schedule.create", Object: "schedule/12"},
		{Actor: "li", Action: "denied", Object: "GET /api/v1/audit"},
		{Actor: "li", Action: "broadcast.create", Object: "broadcast/10"},
	} {
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	tests := []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"all", store.AuditFilter{}, []int64{5, 4, 3, 2, 1}},
		{"actor", store.AuditFilter{Actor: "wang"}, []int64{2}},
		{"action prefix", store.AuditFilter{Action: "broadcast"}, []int64{5, 2, 1}},
		{"action exact", store.AuditFilter{Action: "broadcast.create"}, []int64{5, 1}},
		{"not a word prefix", store.AuditFilter{Action: "broad"}, nil},
		{"object", store.AuditFilter{Object: "broadcast/1"}, []int64{2, 1}},
		{"object kind", store.AuditFilter{Object: "broadcast"}, []int64{5, 2, 1}},
		{"since until", store.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []int64{3, 2}},
		{"before and limit", store.AuditFilter{Before: 5, Limit: 2}, []int64{4, 3}},
		{"combined", store.AuditFilter{Actor: "li", Action: "broadcast", Since: t0.Add(time.Minute)}, []int64{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := db.AuditLog(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, e := range es {
				ids = append(ids, e.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("ids %v, want %v", ids, tt.want)
			}
		})
	}
}
