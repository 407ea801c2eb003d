package store_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// openAgain opens the database at path as another process would, on the
// same clock.
func openAgain(tb testing.TB, path string, clk *clock) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	db.Now = clk.Now
	return db
}

// deadPID is the pid of a process of this machine that has exited.
func deadPID(tb testing.TB) int {
	tb.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		tb.Fatal(err)
	}
	return cmd.Process.Pid
}

func heartbeat(tb testing.TB, dbs ...*store.DB) {
	tb.Helper()
	for _, db := range dbs {
		if err := db.Heartbeat(context.Background()); err != nil {
			tb.Fatal(err)
		}
	}
}

func acquire(tb testing.TB, db *store.DB) store.Lease {
	tb.Helper()
	l, err := db.AcquireLease(context.Background(), store.LeasePublisher)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// fencedWrites makes the publisher's writes under lease l and returns
// their errors joined.
func fencedWrites(db *store.DB, l store.Lease) error {
	ctx := store.WithLease(context.Background(), l)
	e := store.OutboxEntry{Seq: 1 << 40, Kind: store.OutboxSchedule, Ref: "1"}
	return errors.Join(
		db.PutRetained(ctx, store.Retained{Topic: "cx/t", Payload: []byte("x"), Seq: 1, Kind: "schedule.put", ExpiresAt: t0.Add(time.Hour)}),
		db.OutboxSent(ctx, e),
		db.OutboxFailed(ctx, e, "cause", ""),
		db.OutboxDrop(ctx, e, "cause"),
	)
}

// TestPublisherLease: of processes sharing the database one holds the
// publisher lease at a time; it renews it; another takes it only once it
// expired, the holder released it, or the holder (on this machine) is
// gone, and each change of holder is a new epoch; the deposed holder's
// writes are refused (fencing), the new one's go through.
func TestPublisherLease(t *testing.T) {
	ctx := context.Background()
	a, clk, path := openDB(t)
	b := openAgain(t, path, clk)
	heartbeat(t, a, b)

	la := acquire(t, a)
	if !la.Held || la.Epoch != 1 || la.Holder != a.Instance() {
		t.Fatalf("first acquisition: %+v", la)
	}
	if lb := acquire(t, b); lb.Held || lb.Holder != a.Instance() || lb.HolderLabel == "" {
		t.Fatalf("a second process took a held lease: %+v", lb)
	}
	clk.Advance(store.LeaseTTL - time.Second)
	heartbeat(t, a, b)
	if la2 := acquire(t, a); !la2.Held || la2.Epoch != 1 || !la2.ExpiresAt.Equal(clk.Now().Add(store.LeaseTTL)) {
		t.Fatalf("renewal: %+v", la2)
	}
	clk.Advance(store.LeaseTTL - time.Second)
	if lb := acquire(t, b); lb.Held {
		t.Fatalf("a renewed lease was taken: %+v", lb)
	}
	if err := fencedWrites(a, la); err != nil {
		t.Fatalf("the holder's writes: %v", err)
	}

	// a stops renewing (its database link is lost, or it hangs).
	clk.Advance(2 * time.Second)
	heartbeat(t, b)
	lb := acquire(t, b)
	if !lb.Held || lb.Epoch != 2 {
		t.Fatalf("takeover of an expired lease: %+v", lb)
	}
	if la2 := acquire(t, a); la2.Held || la2.Holder != b.Instance() {
		t.Fatalf("the deposed holder took it back: %+v", la2)
	}
	if err := fencedWrites(a, la); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the deposed holder's writes: %v, want ErrLeaseLost", err)
	}
	if err := fencedWrites(b, lb); err != nil {
		t.Fatalf("the new holder's writes: %v", err)
	}

	// Released: taken at once.
	if err := b.ReleaseLease(ctx, store.LeasePublisher); err != nil {
		t.Fatal(err)
	}
	if la = acquire(t, a); !la.Held || la.Epoch != 3 {
		t.Fatalf("after a release: %+v", la)
	}

	// A holder on this machine whose process is gone (killed) is replaced
	// at once, without waiting for its lease to expire.
	c := openAgain(t, path, clk)
	store.SetPIDForTest(c, deadPID(t))
	heartbeat(t, c)
	if err := a.ReleaseLease(ctx, store.LeasePublisher); err != nil {
		t.Fatal(err)
	}
	if lc := acquire(t, c); !lc.Held || lc.Epoch != 4 {
		t.Fatalf("c: %+v", lc)
	}
	if la = acquire(t, a); !la.Held || la.Epoch != 5 {
		t.Fatalf("the lease of a process that is gone was not taken: %+v", la)
	}

	// Closing gives it up.
	d := openAgain(t, path, clk)
	heartbeat(t, d)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if ld := acquire(t, d); !ld.Held || ld.Epoch != 6 {
		t.Fatalf("after the holder closed: %+v", ld)
	}
	if got, err := d.Lease(ctx, store.LeasePublisher); err != nil || got.Holder != d.Instance() || !got.Held {
		t.Fatalf("Lease: %+v %v", got, err)
	}
}

// TestClaimsOfALiveProcess: an Idempotency-Key and a CAP message claimed
// by another process that still runs (its heartbeat is fresh) are not
// abandoned, however old the claim; they are taken over once its
// heartbeat expires, or at once when it ran on this machine and its pid
// is gone, or when it closed the database.
func TestClaimsOfALiveProcess(t *testing.T) {
	ctx := context.Background()
	a, clk, path := openDB(t)
	b := openAgain(t, path, clk)
	heartbeat(t, a, b)
	alert := store.CAPAlert{Sender: "411421000000", Identifier: "A1", Sent: t0, MsgType: "Alert", Status: "Actual", ReceivedBy: "clerk", Raw: []byte("<alert/>")}
	claim := func(db *store.DB, key string, alert store.CAPAlert) {
		t.Helper()
		if _, claimed, err := db.ClaimIdempotencyKey(ctx, "user/1", key, "h"); err != nil || !claimed {
			t.Fatal(claimed, err)
		}
		if _, claimed, err := db.ClaimCAPAlert(ctx, alert); err != nil || !claimed {
			t.Fatal(claimed, err)
		}
	}
	// held checks that b sees a's claims as live, and cannot take them.
	held := func(key string, alert store.CAPAlert, when string) {
		t.Helper()
		if ans, err := b.IdempotentAnswer(ctx, "user/1", key); err != nil || ans.Abandoned || ans.Done {
			t.Fatalf("%s: the key of a running process reads %+v (%v), want in progress", when, ans, err)
		}
		if took, err := b.TakeOverIdempotencyKey(ctx, "user/1", key); err != nil || took {
			t.Fatalf("%s: took over the key of a running process (%v)", when, err)
		}
		if prev, claimed, err := b.ClaimCAPAlert(ctx, alert); err != nil || claimed || !prev.InFlight {
			t.Fatalf("%s: CAP message of a running process: claimed %v, %+v (%v)", when, claimed, prev, err)
		}
	}
	taken := func(key string, alert store.CAPAlert, when string) {
		t.Helper()
		if ans, err := b.IdempotentAnswer(ctx, "user/1", key); err != nil || !ans.Abandoned {
			t.Fatalf("%s: the key reads %+v (%v), want abandoned", when, ans, err)
		}
		if took, err := b.TakeOverIdempotencyKey(ctx, "user/1", key); err != nil || !took {
			t.Fatalf("%s: key not taken over (%v)", when, err)
		}
		if _, claimed, err := b.ClaimCAPAlert(ctx, alert); err != nil || !claimed {
			t.Fatalf("%s: CAP message not taken over (%v)", when, err)
		}
	}

	claim(a, "k1", alert)
	held("k1", alert, "at once")
	// Old claims of a process that keeps its heartbeat stay its own.
	for range 4 {
		clk.Advance(store.InstanceTTL / 2)
		heartbeat(t, a, b)
	}
	held("k1", alert, "after 2 TTLs with heartbeats")
	// Its heartbeat stops (killed on another machine, or cut off).
	clk.Advance(store.InstanceTTL + time.Second)
	heartbeat(t, b)
	taken("k1", alert, "heartbeat expired")

	// A process of this machine that is gone: at once.
	c := openAgain(t, path, clk)
	store.SetPIDForTest(c, deadPID(t))
	heartbeat(t, c)
	a2 := alert
	a2.Identifier = "A2"
	claim(c, "k2", a2)
	taken("k2", a2, "its pid gone")

	// A process that closed the database: at once.
	d := openAgain(t, path, clk)
	heartbeat(t, d)
	a3 := alert
	a3.Identifier = "A3"
	claim(d, "k3", a3)
	held("k3", a3, "while open")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	taken("k3", a3, "closed")
}

// TestWatchOutbox: on PostgreSQL an outbox entry added by another process
// (a broadcast made through another controller) is announced to the
// watcher at its commit, so the publisher sends it at once; on SQLite
// (one process) the watcher is called once, as on PostgreSQL once it
// listens. Both return nil when ctx ends.
func TestWatchOutbox(t *testing.T) {
	a, clk, path := openDB(t)
	b := openAgain(t, path, clk)
	seedVillages(t, b)
	au := clip(t, b, "aa")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- a.WatchOutbox(ctx, func() {
			select {
			case calls <- struct{}{}:
			default:
			}
		})
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case err := <-done:
			t.Fatalf("WatchOutbox returned %v before %s", err, what)
		case <-time.After(10 * time.Second):
			t.Fatalf("no call for %s within 10 s", what)
		}
	}
	wait("listening")
	if os.Getenv("CUNXIANG_TEST_STORE") == "postgres" {
		if _, err := b.CreateBroadcast(context.Background(), store.Broadcast{AudioID: au.ID, Targets: playlists.Targets{All: true},
			Priority: playlists.Routine, Severity: 4, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil); err != nil {
			t.Fatal(err)
		}
		wait("a broadcast made by another process")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("WatchOutbox at the end: %v", err)
	}
}
