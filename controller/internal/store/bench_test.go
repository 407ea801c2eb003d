package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Ingest throughput: one IngestEvents call is one delivery batch (one
// transaction) of size report messages, each from a different box.
//
//	go test ./controller/internal/store -run '^$' -bench 'Ingest|RawInsert|Coverage' -benchmem

// benchBoxes imports n villages, each with an enrolled box.
func benchBoxes(tb testing.TB, db *store.DB, n int) []string {
	tb.Helper()
	ctx := context.Background()
	vs := make([]store.Village, n)
	codes := make([]string, n)
	for i := range vs {
		codes[i] = fmt.Sprintf("4114%04d%04d", 100+i/100, i%100)
		vs[i] = store.Village{Code: codes[i], Name: fmt.Sprintf("村%d", i), Township: fmt.Sprintf("乡%d", i/100), Device: "agent"}
	}
	if _, err := db.ImportVillages(ctx, vs); err != nil {
		tb.Fatal(err)
	}
	if err := store.EnrollAllForTest(ctx, db, codes); err != nil {
		tb.Fatal(err)
	}
	return codes
}

// ingestRun feeds successive batches: every box reports perMsg new events
// per message, as after an emergency (received, started, finished).
type ingestRun struct {
	boxes  []string
	next   int
	seq    map[string]int64
	perMsg int
	at     time.Time
}

func (r *ingestRun) batch(size int) []store.IngestBatch {
	out := make([]store.IngestBatch, size)
	types := []string{api.EventReceived, api.EventStarted, api.EventFinished}
	for i := range out {
		v := r.boxes[r.next%len(r.boxes)]
		r.next++
		evs := make([]api.Event, r.perMsg)
		for k := range evs {
			r.seq[v]++
			evs[k] = api.Event{Seq: r.seq[v], Type: types[int(r.seq[v])%len(types)], At: r.at, BroadcastID: 7}
		}
		out[i] = store.IngestBatch{Village: v, Version: "1.0", Events: evs, ReceivedAt: r.at}
	}
	return out
}

func benchIngest(b *testing.B, perMsg int, store func(context.Context, *store.DB, []store.IngestBatch) error) {
	for _, size := range []int{1, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			ctx := context.Background()
			db, _, _ := openDB(b)
			r := &ingestRun{boxes: benchBoxes(b, db, max(size, 1000)), seq: map[string]int64{}, perMsg: perMsg, at: t0}
			b.ReportAllocs()
			events := 0
			for b.Loop() {
				bs := r.batch(size)
				if err := store(ctx, db, bs); err != nil {
					b.Fatal(err)
				}
				events += size * perMsg
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func ingest(ctx context.Context, db *store.DB, bs []store.IngestBatch) error {
	acks, err := db.IngestEvents(ctx, bs)
	if err == nil && len(acks) == 0 {
		err = fmt.Errorf("no acks")
	}
	return err
}

// BenchmarkIngestBatch: one event per message, the fan-in after an
// emergency (every box reports received, then started).
func BenchmarkIngestBatch(b *testing.B) { benchIngest(b, 1, ingest) }

// BenchmarkIngestBatch3: three events per message.
func BenchmarkIngestBatch3(b *testing.B) { benchIngest(b, 3, ingest) }

// BenchmarkRawInsert is the baseline: the same rows, inserted with one
// prepared statement per transaction and nothing else.
func BenchmarkRawInsert(b *testing.B) { benchIngest(b, 1, store.RawInsertForTest) }

// BenchmarkReplacedUntil is what a cancellation reads to know how long the
// broadcast it replaces stays relevant, with 20,000 retained commands
// stored (a province's schedules and configs): scanning them all, as
// delivery did, against the keyed query it uses now.
func BenchmarkReplacedUntil(b *testing.B) {
	ctx := context.Background()
	db, _, _ := openDB(b)
	for i := range 20000 {
		r := store.Retained{Topic: fmt.Sprintf("cx/g/t%05d/schedule/%d", i%200, i), Payload: make([]byte, 600), Seq: int64(i + 1), Kind: "schedule.put", ExpiresAt: t0.Add(time.Duration(i) * time.Minute)}
		if err := db.PutRetained(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	topics := []string{"cx/g/t00007/schedule/7", "cx/g/t00008/schedule/8"}
	want := t0.Add(8 * time.Minute)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			all, err := db.ListRetained(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var until time.Time
			for _, r := range all {
				if r.Kind == "schedule.put" && (r.Topic == topics[0] || r.Topic == topics[1]) && r.ExpiresAt.After(until) {
					until = r.ExpiresAt
				}
			}
			if !until.Equal(want) {
				b.Fatalf("until %v, want %v", until, want)
			}
		}
	})
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			until, ok, err := db.RetainedUntil(ctx, "schedule.put", topics)
			if err != nil || !ok || !until.Equal(want) {
				b.Fatalf("until %v %v %v, want %v", until, ok, err, want)
			}
		}
	})
}
