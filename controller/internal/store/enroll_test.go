package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// TestEnrollWithFailedProvisionSpendsNothing: when the broker refuses the
// box's account, the token stays usable and no password is stored.
func TestEnrollWithFailedProvisionSpendsNothing(t *testing.T) {
	db, _, _ := openDB(t)
	seedVillages(t, db)
	ctx := context.Background()
	const village = "110101001001"
	et, err := db.CreateEnrollToken(ctx, village, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	req := api.EnrollRequest{Village: village, Token: et.Token}
	var offered store.AgentCredentials
	_, err = db.EnrollWith(ctx, req, func(_ context.Context, c store.AgentCredentials) error {
		offered = c
		return errors.New("broker down")
	})
	if err == nil {
		t.Fatal("EnrollWith succeeded although provisioning failed")
	}
	if _, err := db.CheckAgentPassword(ctx, offered.Username, offered.Password); err == nil {
		t.Error("the password offered to the failed provisioning works")
	}
	creds, err := db.EnrollWith(ctx, req, func(_ context.Context, c store.AgentCredentials) error { return nil })
	if err != nil {
		t.Fatalf("the token was spent by the failed attempt: %v", err)
	}
	if got, err := db.CheckAgentPassword(ctx, creds.Username, creds.Password); err != nil || got != village {
		t.Errorf("CheckAgentPassword = %q, %v; want %s", got, err, village)
	}
}
