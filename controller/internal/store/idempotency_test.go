package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// TestIdempotencyKeyClaimedOnce: of concurrent claims of one key exactly
// one wins; the others see the first request (running, then its answer);
// a released key can be claimed again; a key is per person and forgotten
// after IdempotencyTTL.
func TestIdempotencyKeyClaimedOnce(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, claimed, err := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h1")
			if err != nil {
				t.Error(err)
				return
			}
			if claimed {
				won.Add(1)
			} else if a.RequestHash != "h1" {
				t.Errorf("first request %+v", a)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d claims won", won.Load())
	}
	if a, claimed, err := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h1"); err != nil || claimed || a.Done {
		t.Fatalf("while running: %+v %v %v", a, claimed, err)
	}
	if err := db.FinishIdempotencyKey(ctx, "user/1", "k", 201, []byte(`{"id":7}`)); err != nil {
		t.Fatal(err)
	}
	if a, claimed, err := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h2"); err != nil || claimed || !a.Done || a.Status != 201 || string(a.Body) != `{"id":7}` || a.RequestHash != "h1" {
		t.Fatalf("after finishing: %+v %v %v", a, claimed, err)
	}
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/2", "k", "h1"); !claimed {
		t.Fatal("another person's key was taken")
	}
	if err := db.ReleaseIdempotencyKey(ctx, "user/2", "k"); err != nil {
		t.Fatal(err)
	}
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/2", "k", "h1"); !claimed {
		t.Fatal("a released key cannot be claimed again")
	}
	// A finished key is not released (only a running one is).
	if err := db.ReleaseIdempotencyKey(ctx, "user/1", "k"); err != nil {
		t.Fatal(err)
	}
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h1"); claimed {
		t.Fatal("releasing forgot a finished answer")
	}
	clk.Advance(store.IdempotencyTTL + time.Second)
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h3"); !claimed {
		t.Fatal("a key is still held after a day")
	}
}
