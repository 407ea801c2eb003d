package delivery

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// commit stores the reports, acknowledges every message to the broker
// (malformed ones included, or they would come back forever) and queues
// one ack per box, the newest winning while ackLoop is busy.
func TestCommitQueuesCoalescedAcks(t *testing.T) {
	ctx := context.Background()
	s, codes := benchService(t, 2)
	a, b := codes[0], codes[1]
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	msg := func(v string, seqs ...int64) *message {
		eb := api.EventBatch{V: api.Version, Village: v, Version: "1.0"}
		for _, q := range seqs {
			eb.Events = append(eb.Events, api.Event{Seq: q, Type: api.EventStarted, At: at, BroadcastID: 7})
		}
		raw, err := json.Marshal(eb)
		if err != nil {
			t.Fatal(err)
		}
		return &message{topic: s.opts.Topics.Events(v), payload: raw}
	}
	first := []*message{msg(a, 1, 2), msg(b, 1), {topic: s.opts.Topics.Events(b), payload: []byte("{")}}
	s.commit(ctx, asMessages(first))
	second := []*message{msg(a, 4), msg(a, 3)} // a's gap is filled in the same batch
	s.commit(ctx, asMessages(second))
	for i, m := range append(first, second...) {
		if !m.acked {
			t.Fatalf("message %d not acknowledged to the broker", i)
		}
	}
	s.ackMu.Lock()
	got := s.pendingAcks
	s.ackMu.Unlock()
	if want := map[string]int64{a: 4, b: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pending acks %v, want %v", got, want)
	}
	s.queueAcks(map[string]int64{a: 2}) // an older ack never lowers a newer one
	s.ackMu.Lock()
	kept := s.pendingAcks[a]
	s.ackMu.Unlock()
	if kept != 4 {
		t.Fatalf("pending ack of %s lowered to %d", a, kept)
	}
	s.flushAcks(ctx) // the broker is down: the acks are signed and dropped
	s.ackMu.Lock()
	left := len(s.pendingAcks)
	s.ackMu.Unlock()
	if left != 0 {
		t.Fatalf("%d acks left after a flush", left)
	}
}

// ackLoop waits AckDelay after the first ack of a burst, so the acks of
// the commits within it are signed and sent as one per box: a broadcast's
// received, downloaded and started reports then cost each box one ack to
// verify and journal, not three.
func TestAcksOfABurstGoTogether(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, codes := benchService(t, 2)
	s.opts.AckDelay = 300 * time.Millisecond
	seq := func() int64 {
		n, err := s.opts.Store.NextCommandSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	done := make(chan struct{})
	go func() { s.ackLoop(ctx); close(done) }()
	before := seq()
	s.queueAcks(map[string]int64{codes[0]: 1})
	time.Sleep(50 * time.Millisecond)
	s.queueAcks(map[string]int64{codes[0]: 2, codes[1]: 1})
	s.ackMu.Lock()
	waiting := len(s.pendingAcks)
	s.ackMu.Unlock()
	if waiting != 2 {
		t.Fatalf("%d boxes' acks waiting 50 ms into the delay, want 2 (sent too early)", waiting)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.ackMu.Lock()
		waiting = len(s.pendingAcks)
		s.ackMu.Unlock()
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("acks never sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Each flush that signs acks takes one command seq for all of them.
	if flushes := seq() - before - 1; flushes != 1 {
		t.Fatalf("the burst's acks were signed in %d flushes, want 1", flushes)
	}
	cancel()
	<-done
}

// A batch of presence messages is stored in one go: a retained one keeps
// the box's own time of the change, malformed and cleared ones are
// skipped, and every message is acknowledged to the broker.
func TestPresenceBatch(t *testing.T) {
	ctx := context.Background()
	s, codes := benchService(t, 2)
	db := s.opts.Store.(*store.DB)
	a, b := codes[0], codes[1]
	changed := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	presence := func(v string, p api.Presence, retained bool) *message {
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return &message{topic: s.opts.Topics.Presence(v), payload: raw, retained: retained}
	}
	msgs := []*message{
		presence(a, api.Presence{V: 1, Village: a, Status: api.Online, Version: "3.0"}, false),
		{topic: s.opts.Topics.Presence(b), payload: []byte("{")},
		{topic: s.opts.Topics.Presence(b), payload: nil, retained: true},
		presence(b, api.Presence{V: 1, Village: b, Status: api.Offline, At: changed}, true),
	}
	before := time.Now()
	s.recordPresence(ctx, asMessages(msgs))
	for i, m := range msgs {
		if !m.acked {
			t.Fatalf("message %d not acknowledged to the broker", i)
		}
	}
	va, err := db.VillageState(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if va.Agent.Presence != api.Online || va.Agent.AgentVersion != "3.0" || va.Agent.LastSeen.Before(before.Add(-time.Millisecond)) {
		t.Fatalf("a: %+v", va.Agent)
	}
	vb, err := db.VillageState(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if vb.Agent.Presence != api.Offline || !vb.Agent.PresenceAt.Equal(changed) {
		t.Fatalf("b: %+v, want offline since %s (the retained message's own time)", vb.Agent, changed)
	}
}
