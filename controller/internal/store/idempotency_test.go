package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
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
	if released, err := db.ReleaseIdempotencyKey(ctx, "user/2", "k"); err != nil || !released {
		t.Fatal(released, err)
	}
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/2", "k", "h1"); !claimed {
		t.Fatal("a released key cannot be claimed again")
	}
	// A finished key is not released (only a running one is).
	if released, err := db.ReleaseIdempotencyKey(ctx, "user/1", "k"); err != nil || released {
		t.Fatal(released, err)
	}
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h1"); claimed {
		t.Fatal("releasing forgot a finished answer")
	}
	clk.Advance(store.IdempotencyTTL + time.Second)
	if _, claimed, _ := db.ClaimIdempotencyKey(ctx, "user/1", "k", "h3"); !claimed {
		t.Fatal("a key is still held after a day")
	}
}

// TestIdempotencyKeyOutlivesACrash: the change a keyed request makes names
// itself on the key in its own transaction; such a key is never released
// for a retry to make the change twice; and a process opened later sees
// an unfinished key of the one before as abandoned, taking it over only if
// nothing was made.
func TestIdempotencyKeyOutlivesACrash(t *testing.T) {
	ctx := context.Background()
	db, _, path := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "aa")
	if _, claimed, err := db.ClaimIdempotencyKey(ctx, "user/1", "made", "h"); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	if _, claimed, err := db.ClaimIdempotencyKey(ctx, "user/1", "lost", "h"); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	b, err := db.CreateBroadcast(store.WithIdempotencyKey(ctx, "user/1", "made"), store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := db.IdempotentAnswer(ctx, "user/1", "made")
	if err != nil || first.Object != "broadcast/"+store.IDRef(b.ID) || first.Done || first.Abandoned {
		t.Fatalf("key of a made broadcast: %+v %v", first, err)
	}
	if released, err := db.ReleaseIdempotencyKey(ctx, "user/1", "made"); err != nil || released {
		t.Fatalf("a key whose change committed was released (%v %v): a retry would make it twice", released, err)
	}

	// The process dies; another opens the database.
	db2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	db2.Now = db.Now
	made, _ := db2.IdempotentAnswer(ctx, "user/1", "made")
	lost, _ := db2.IdempotentAnswer(ctx, "user/1", "lost")
	if !made.Abandoned || made.Object == "" || !lost.Abandoned || lost.Object != "" {
		t.Fatalf("after the crash: made %+v, lost %+v", made, lost)
	}
	if took, err := db2.TakeOverIdempotencyKey(ctx, "user/1", "made"); err != nil || took {
		t.Fatalf("took over a key whose change committed: %v %v", took, err)
	}
	if took, err := db2.TakeOverIdempotencyKey(ctx, "user/1", "lost"); err != nil || !took {
		t.Fatalf("take over a lost key: %v %v", took, err)
	}
	if took, _ := db2.TakeOverIdempotencyKey(ctx, "user/1", "lost"); took {
		t.Fatal("a key was taken over twice")
	}
	if lost, _ := db2.IdempotentAnswer(ctx, "user/1", "lost"); lost.Abandoned {
		t.Fatalf("a key taken over still reads abandoned: %+v", lost)
	}
}
