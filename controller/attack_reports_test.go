package main

import (
	"context"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// TestAttackStolenBoxFillsDiskWithReports: with box A's credentials a
// thief publishes legal report batches with ever new seqs, as fast as the
// broker takes them, to fill the controller's disk until no emergency can
// be stored. Only the box's report budget is stored; another box's
// reports still are.
func TestAttackStolenBoxFillsDiskWithReports(t *testing.T) {
	const burst = 300
	r := startAttackRig(t, func(m *Main) { m.BoxReportBurst = burst })
	ctx := context.Background()
	id := r.emergency(t)

	a := r.login(t, r.A, 4)
	types := make([]string, api.MaxEventsPerBatch)
	for i := range types {
		types[i] = api.EventReceived
	}
	const batches = 10 // 1,000 events, more than three times the budget
	for i := range batches {
		if code, err := a.Publish(r.topics.Events(r.A), reports(t, r.A, id, int64(i*len(types)+1), types...), 1, false); err != nil || code >= 0x80 {
			t.Fatalf("batch %d: code %#x, %v", i, code, err)
		}
	}

	// Box B reports after the flood: once its report is stored, the
	// flood before it has been through the ingest.
	b := r.login(t, r.B, 4)
	if code, err := b.Publish(r.topics.Events(r.B), reports(t, r.B, id, 1, api.EventReceived), 1, false); err != nil || code >= 0x80 {
		t.Fatalf("box B's report: code %#x, %v", code, err)
	}
	waitFor(t, 20*time.Second, "box B's report stored", func() bool {
		evs, err := r.h.Store.VillageEvents(ctx, r.B, 10)
		return err == nil && len(evs) > 0
	})
	evs, err := r.h.Store.VillageEvents(ctx, r.A, 500)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("box A sent %d events; %d stored", batches*len(types), len(evs))
	if len(evs) != burst {
		t.Errorf("%d of box A's %d events stored, want its budget of %d", len(evs), batches*len(types), burst)
	}
}
