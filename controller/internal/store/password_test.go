package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

func TestChangePassword(t *testing.T) {
	db, _, _ := openDB(t)
	ctx := context.Background()
	if _, _, err := db.EnsureAdminToken(ctx); err != nil { // as every controller has
		t.Fatal(err)
	}
	u, err := db.CreateUser(ctx, store.NewUser{Username: "wang", Role: "viewer", Password: "first passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	field := func(err error) string {
		var e *cx.Error
		if errors.As(err, &e) {
			return e.Field
		}
		return ""
	}
	if err := db.ChangePassword(ctx, u.ID, "wrong", "second passphrase"); field(err) != "current_password" {
		t.Errorf("wrong current password: %v", err)
	}
	if err := db.ChangePassword(ctx, u.ID, "first passphrase", "short"); field(err) != "new_password" {
		t.Errorf("short new password: %v", err)
	}
	if err := db.ChangePassword(ctx, u.ID, "first passphrase", "first passphrase"); field(err) != "new_password" {
		t.Errorf("same password: %v", err)
	}
	if _, _, _, err := db.Login(ctx, "wang", "first passphrase", 0); err != nil {
		t.Fatalf("refused changes changed the password: %v", err)
	}
	if err := db.ChangePassword(ctx, u.ID, "first passphrase", "second passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := db.Login(ctx, "wang", "first passphrase", 0); err == nil {
		t.Error("the old password still logs in")
	}
	if _, _, _, err := db.Login(ctx, "wang", "second passphrase", 0); err != nil {
		t.Errorf("the new password: %v", err)
	}
}
