package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestTokenActsAsItsMinter: an API token carries the person who minted it,
// through any chain of tokens, and the two-person rule binds that person:
// an admin's county-wide emergency cannot be approved (or rejected) with an
// approver token the admin minted, nor with one minted by that token; a
// different person can.
func TestTokenActsAsItsMinter(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	bootSecret, _, err := db.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := db.Authenticate(ctx, bootSecret)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := db.CreateUser(ctx, store.NewUser{Username: "wang", Role: api.RoleAdmin, Password: "correct horse wang"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, store.NewUser{Username: "li", Role: api.RoleApprover, Password: "correct horse li"}); err != nil {
		t.Fatal(err)
	}
	session, _, _, err := db.Login(ctx, "wang", "correct horse wang", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(by store.Token, role string) store.Token {
		t.Helper()
		tok, secret, err := db.CreateToken(ctx, "minted "+role, role, "", by)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Authenticate(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if got.Principal() != tok.Principal() {
			t.Fatalf("stored person %s, created as %s", got.Principal(), tok.Principal())
		}
		return got
	}
	wangUser := "user/" + itoa(admin.ID)
	adminTok := mint(session, api.RoleAdmin)
	approverTok := mint(session, api.RoleApprover)
	grandchild := mint(adminTok, api.RoleApprover)
	bootChild := mint(boot, api.RoleAdmin)
	bootGrandchild := mint(bootChild, api.RoleApprover)
	for _, tt := range []struct {
		name string
		tok  store.Token
		want string
	}{
		{"session", session, wangUser},
		{"token minted with a session", approverTok, wangUser},
		{"token minted by a minted token", grandchild, wangUser},
		{"bootstrap admin token", boot, "token/" + itoa(boot.ID)},
		{"token minted by the bootstrap token", bootChild, "token/" + itoa(boot.ID)},
		{"two steps from the bootstrap token", bootGrandchild, "token/" + itoa(boot.ID)},
	} {
		if got := tt.tok.Principal(); got != tt.want {
			t.Errorf("%s: person %s, want %s", tt.name, got, tt.want)
		}
	}
	if tok, _, err := db.CreateToken(ctx, "independent", api.RoleApprover, "", store.Token{}); err != nil || tok.Principal() != "token/"+itoa(tok.ID) {
		t.Errorf("a token minted by no credential: %s %v, want its own person", tok.Principal(), err)
	}

	a := clip(t, db, "ab")
	emergency := func(by store.Token) store.Broadcast {
		t.Helper()
		b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
			Severity: 1, ExpiresAt: t0.Add(time.Hour), CreatedBy: by.Name, CreatedByKey: by.Principal()}, func([]playlists.Village) bool { return true })
		if err != nil || b.State != api.BroadcastPending {
			t.Fatalf("create: %+v %v", b, err)
		}
		return b
	}
	for _, tt := range []struct {
		name             string
		creator, decider store.Token
	}{
		{"session creates, minted token approves", session, approverTok},
		{"minted token creates, session approves", adminTok, session},
		{"token minted by a token approves", session, grandchild},
		{"bootstrap creates, its token's token approves", boot, bootGrandchild},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := emergency(tt.creator)
			for _, approve := range []bool{true, false} {
				_, err := db.DecideBroadcast(ctx, b.ID, approve, tt.decider.Name, tt.decider.Principal(), "no")
				if cx.Code(err) != cx.EFORBIDDEN || !strings.Contains(cx.Message(err), "two-person rule") {
					t.Fatalf("decide (approve=%v) by the creator's own token: %v, want forbidden by the two-person rule", approve, err)
				}
			}
			if got, _ := db.GetBroadcast(ctx, b.ID); got.State != api.BroadcastPending {
				t.Fatalf("state after refused decisions: %s", got.State)
			}
		})
	}
	liSession, _, _, err := db.Login(ctx, "li", "correct horse li", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := emergency(approverTok)
	if got, err := db.DecideBroadcast(ctx, b.ID, true, liSession.Name, liSession.Principal(), ""); err != nil || got.State != api.BroadcastReleased {
		t.Fatalf("a second person approves: %+v %v", got, err)
	}
	if _, err := db.DecideBroadcast(ctx, emergency(boot).ID, true, "nobody", "", ""); cx.Code(err) != cx.EFORBIDDEN {
		t.Fatalf("a decision naming no person: %v", err)
	}
}

// TestMintedTokenPower: only an admin mints a token of another role; a
// token a user minted works only while that user is enabled and may still
// hold it, and does not count as an admin who is left.
func TestMintedTokenPower(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	bootSecret, _, _ := db.EnsureAdminToken(ctx)
	boot, err := db.Authenticate(ctx, bootSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, store.NewUser{Username: "zhao", Role: api.RoleOperator, Password: "correct horse zhao"}); err != nil {
		t.Fatal(err)
	}
	opSession, _, _, _ := db.Login(ctx, "zhao", "correct horse zhao", time.Hour)
	if _, _, err := db.CreateToken(ctx, "escalate", api.RoleApprover, "", opSession); cx.Code(err) != cx.EFORBIDDEN {
		t.Fatalf("an operator mints an approver token: %v, want forbidden", err)
	}
	if _, _, err := db.CreateToken(ctx, "script", api.RoleOperator, "", opSession); err != nil {
		t.Fatalf("an operator mints an operator token: %v", err)
	}

	admin, err := db.CreateUser(ctx, store.NewUser{Username: "wang", Role: api.RoleAdmin, Password: "correct horse wang"})
	if err != nil {
		t.Fatal(err)
	}
	session, _, _, _ := db.Login(ctx, "wang", "correct horse wang", time.Hour)
	_, adminSecret, err := db.CreateToken(ctx, "wang's script", api.RoleAdmin, "", session)
	if err != nil {
		t.Fatal(err)
	}
	_, approverSecret, err := db.CreateToken(ctx, "wang's approver", api.RoleApprover, "", session)
	if err != nil {
		t.Fatal(err)
	}
	// With wang an admin, the bootstrap token may go.
	if err := db.RevokeToken(ctx, boot.ID); err != nil {
		t.Fatalf("revoke the bootstrap token with an admin user left: %v", err)
	}
	// wang's own admin token is not a second admin: disabling wang is refused.
	yes := true
	if _, err := db.UpdateUser(ctx, admin.ID, store.UserChange{Disabled: &yes}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("disable the last admin user who holds a minted admin token: %v, want conflict", err)
	}
	// Demoted, wang's admin token stops (it would outrank him); make another admin first.
	if _, err := db.CreateUser(ctx, store.NewUser{Username: "chen", Role: api.RoleAdmin, Password: "correct horse chen"}); err != nil {
		t.Fatal(err)
	}
	approver := api.RoleApprover
	if _, err := db.UpdateUser(ctx, admin.ID, store.UserChange{Role: &approver}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, adminSecret); cx.Code(err) != cx.EUNAUTHORIZED {
		t.Fatalf("admin token of a demoted user: %v, want unauthorized", err)
	}
	if got, err := db.Authenticate(ctx, approverSecret); err != nil || got.Role != api.RoleApprover {
		t.Fatalf("approver token of a user now an approver: %+v %v", got, err)
	}
	if _, err := db.UpdateUser(ctx, admin.ID, store.UserChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, approverSecret); cx.Code(err) != cx.EUNAUTHORIZED || errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("token of a disabled user: %v, want a clear unauthorized", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
