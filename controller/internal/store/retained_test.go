package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
)

func TestRetainedUntil(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	put := func(topic, kind string, exp time.Time) {
		t.Helper()
		if err := db.PutRetained(ctx, store.Retained{Topic: topic, Payload: []byte("x"), Seq: 1, Kind: kind, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	put("b/1/g1", "broadcast.put", t0.Add(time.Hour))
	put("b/1/g2", "broadcast.put", t0.Add(3*time.Hour))
	put("b/1/g3", "broadcast.cancel", t0.Add(9*time.Hour)) // another kind
	put("b/2/g1", "broadcast.put", t0.Add(8*time.Hour))    // another topic
	// More topics than one statement takes, the latest in the last chunk.
	var many []string
	for i := range 1200 {
		many = append(many, fmt.Sprintf("s/%d", i))
	}
	put(many[1100], "schedule.put", t0.Add(5*time.Hour))
	put(many[3], "schedule.put", t0.Add(4*time.Hour))

	tests := []struct {
		name   string
		kind   string
		topics []string
		want   time.Time
		found  bool
	}{
		{"latest of the topics", "broadcast.put", []string{"b/1/g1", "b/1/g2", "b/1/g3", "b/1/g9"}, t0.Add(3 * time.Hour), true},
		{"one topic", "broadcast.put", []string{"b/1/g1"}, t0.Add(time.Hour), true},
		{"kind must match", "broadcast.put", []string{"b/1/g3"}, time.Time{}, false},
		{"nothing stored", "broadcast.put", []string{"b/9/g1"}, time.Time{}, false},
		{"no topics", "broadcast.put", nil, time.Time{}, false},
		{"across chunks", "schedule.put", many, t0.Add(5 * time.Hour), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := db.RetainedUntil(ctx, tc.kind, tc.topics)
			if err != nil || found != tc.found || !got.Equal(tc.want) {
				t.Fatalf("RetainedUntil = %v, %v, %v; want %v, %v", got, found, err, tc.want, tc.found)
			}
		})
	}
}
