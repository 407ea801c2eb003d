package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// BenchmarkBroadcastLife is one broadcast on a box, every step a synced
// transaction: put (received), started, finished, then the ack that
// drops the three reports. It measures the disk syncs a box pays per
// emergency.
//
//	go test ./agent/internal/store -run '^$' -bench . -benchmem
func BenchmarkBroadcastLife(b *testing.B) {
	db, _ := openTemp(b)
	now := expiry.Add(-time.Hour)
	var id int64
	b.ReportAllocs()
	for b.Loop() {
		id++
		if _, _, err := db.PutBroadcast(putB(fmt.Sprint("p", id), id, id), now, api.Event{Type: api.EventReceived, BroadcastID: id}); err != nil {
			b.Fatal(err)
		}
		for _, typ := range []string{api.EventStarted, api.EventFinished} {
			if ok, err := db.Advance(id, api.Event{Type: typ, BroadcastID: id}); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
		last, err := db.LastSeq()
		if err != nil {
			b.Fatal(err)
		}
		ack := api.Command{ID: fmt.Sprint("a", id), Kind: api.KindReportsAck, Seq: id, Ack: &api.ReportsAck{Village: "411421100201", Seq: last}}
		if _, err := db.ApplyAck(ack); err != nil {
			b.Fatal(err)
		}
	}
}
