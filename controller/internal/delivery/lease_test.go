package delivery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestOnlyTheLeaseHolderPublishes: a service whose process does not hold
// the publisher lease (another process on the database does) publishes
// nothing: a change waits in the outbox, unsigned. Once the other gives
// the lease up, the service takes it and sends the change. When the
// lease is taken from it (it expired by the database's clock and another
// process took it), the service signs and sends nothing more, whether it
// notices at its next renewal or its write is refused by the epoch
// check; given the lease back, it sends what waited.
func TestOnlyTheLeaseHolderPublishes(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.startBroker()
	w := h.watch()
	other, err := store.Open(ctx, h.path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.Now = h.clk.Now
	take := func() store.Lease {
		t.Helper()
		if err := other.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		l, err := other.AcquireLease(ctx, store.LeasePublisher)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := take(); !l.Held {
		t.Fatalf("the other process did not get the lease: %+v", l)
	}
	notSent := func(b store.Broadcast) {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		var ns *NotSentError
		if err := h.svc.Deliver(dctx, store.OutboxBroadcast, store.IDRef(b.ID)); !errors.As(err, &ns) {
			t.Fatalf("broadcast %d while another process holds the lease: Deliver %v, want *NotSentError", b.ID, err)
		}
		es, err := h.db.UnsentOutbox(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Ref == store.IDRef(b.ID) && !e.SignedAt.IsZero() {
				t.Fatalf("broadcast %d was signed by a process without the lease", b.ID)
			}
		}
		if m := w.messages(h.topics.Broadcast(b.Groups[0], b.ID)); len(m) != 0 {
			t.Fatalf("broadcast %d was published by a process without the lease", b.ID)
		}
	}

	h.start()
	b1 := h.broadcast(playlists.Targets{All: true}, time.Hour)
	notSent(b1)
	if l, ok := h.svc.Publisher(); ok || l.Holder != other.Instance() {
		t.Fatalf("the service reads the lease as %+v (may publish: %v), want the other's", l, ok)
	}

	// The other stops cleanly: the service takes over and sends.
	if err := other.ReleaseLease(ctx, store.LeasePublisher); err != nil {
		t.Fatal(err)
	}
	h.deliver(store.OutboxBroadcast, store.IDRef(b1.ID))
	w.until(t, "broadcast 1 on the broker", func(held map[string][]byte) bool {
		return held[h.topics.Broadcast(b1.Groups[0], b1.ID)] != nil
	})
	l1, ok := h.svc.Publisher()
	if !ok || !l1.Held {
		t.Fatalf("the service sent without holding the lease: %+v", l1)
	}

	// The service's lease expires by the database's clock (its renewals
	// stalled) and the other takes it.
	var l2 store.Lease
	waitUntil(t, "the other process to take the expired lease", func() bool {
		h.clk.Advance(store.LeaseTTL + time.Second)
		l2 = take()
		return l2.Held
	})
	if l2.Epoch != l1.Epoch+1 {
		t.Fatalf("takeover: epoch %d after %d", l2.Epoch, l1.Epoch)
	}
	b2 := h.broadcast(playlists.Targets{All: true}, time.Hour)
	h.svc.Kick()
	notSent(b2)
	waitUntil(t, "the service to see it lost the lease", func() bool {
		_, ok := h.svc.Publisher()
		return !ok
	})
	notSent(b2)

	// Given back, it sends what waited.
	if err := other.ReleaseLease(ctx, store.LeasePublisher); err != nil {
		t.Fatal(err)
	}
	h.deliver(store.OutboxBroadcast, store.IDRef(b2.ID))
	if l3, ok := h.svc.Publisher(); !ok || l3.Epoch != l2.Epoch+1 {
		t.Fatalf("after the other released it: %+v (may publish: %v)", l3, ok)
	}
}
