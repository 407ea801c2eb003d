package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

const day = 24 * time.Hour

// renew asks the running publisher for a refresh tick and waits until it
// has renewed what was due.
func (h *harness) renew() {
	h.tb.Helper()
	done := make(chan struct{})
	select {
	case h.svc.renew <- done:
	case <-time.After(waitFor):
		h.tb.Fatal("the publisher did not take the refresh tick")
	}
	select {
	case <-done:
	case <-time.After(waitFor):
		h.tb.Fatal("the refresh did not finish (a spin?)")
	}
}

// signatures counts the commands signed between two calls (the counter
// also moves by one for each call).
func (h *harness) commandSeq() int64 {
	h.tb.Helper()
	n, err := h.db.NextCommandSeq(context.Background())
	if err != nil {
		h.tb.Fatal(err)
	}
	return n
}

// TestRenewsSignaturesDue: a schedule relevant for a year is signed for
// 30 days; at day 24, after a refresh tick or a reconnect, the broker
// retains it signed anew for 30 more days, while a command signed at day
// 20 (not due) keeps its signature, seq and bytes, and one whose
// relevance is over is left alone. The fake clock moves 24 days at once;
// the publisher's own tickers are wall-clock and do not spin.
func TestRenewsSignaturesDue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trigger func(h *harness)
	}{
		{"refresh tick", func(h *harness) { h.renew() }},
		{"reconnect to a fresh broker", func(h *harness) { h.stopBroker(); h.startBroker() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.startBroker()
			h.start()
			long := h.schedule(t0.AddDate(1, 0, 0))
			short := h.once(t0.Add(10 * day))
			h.deliver(store.OutboxSchedule, store.IDRef(long.ID))
			h.deliver(store.OutboxSchedule, store.IDRef(short.ID))
			longTopic := h.topics.Schedule(api.GroupAll, long.ID)
			shortTopic := h.topics.Schedule(api.GroupAll, short.ID)
			first := h.stored(longTopic)
			if c := h.verify(longTopic, first.Payload); !c.ExpiresAt.Equal(t0.Add(signedFor)) {
				t.Fatalf("a year-long schedule signed until %s, want 30 days (%s)", c.ExpiresAt, t0.Add(signedFor))
			}
			shortBefore := h.stored(shortTopic)

			h.clk.Advance(20 * day)
			later := h.schedule(t0.AddDate(0, 6, 0))
			h.deliver(store.OutboxSchedule, store.IDRef(later.ID))
			laterTopic := h.topics.Schedule(api.GroupAll, later.ID)
			laterBefore := h.stored(laterTopic)

			now := h.clk.Advance(4 * day) // day 24: long is due (its signature ends within 7 days), later is not
			before := h.commandSeq()
			h.settled()
			reads := h.hs.dueReads.Load()
			tc.trigger(h)
			held := h.retained("the year-long schedule signed anew, beside the later one", func(held map[string][]byte) bool {
				if held[laterTopic] == nil || held[longTopic] == nil {
					return false
				}
				c, err := api.Verify(h.pub(), h.topics, longTopic, held[longTopic], now)
				return err == nil && c.ExpiresAt.Equal(now.Add(signedFor))
			})
			c := h.verify(longTopic, held[longTopic])
			if c.Seq <= first.Seq || !c.IssuedAt.Equal(now) || c.Kind != api.KindSchedulePut || c.Schedule == nil || c.Schedule.Schedule.ID != long.ID {
				t.Errorf("renewed command: seq %d (was %d), issued %s, kind %s", c.Seq, first.Seq, c.IssuedAt, c.Kind)
			}
			renewed := h.stored(longTopic)
			if !bytes.Equal(renewed.Payload, held[longTopic]) || !renewed.SignedUntil.Equal(now.Add(signedFor)) || !renewed.ExpiresAt.Equal(first.ExpiresAt) {
				t.Errorf("stored after renewal: signed until %s, relevant until %s (was %s); the broker's copy is the stored one: %v",
					renewed.SignedUntil, renewed.ExpiresAt, first.ExpiresAt, bytes.Equal(renewed.Payload, held[longTopic]))
			}
			if !bytes.Equal(held[laterTopic], laterBefore.Payload) {
				t.Error("the broker's copy of a command not due changed")
			}
			if got := h.stored(laterTopic); got.Seq != laterBefore.Seq || !bytes.Equal(got.Payload, laterBefore.Payload) {
				t.Errorf("a command not due was signed again: seq %d, was %d", got.Seq, laterBefore.Seq)
			}
			if got := h.stored(shortTopic); got.Seq != shortBefore.Seq {
				t.Errorf("a command whose relevance is over was signed again: seq %d, was %d", got.Seq, shortBefore.Seq)
			}
			if signed := h.commandSeq() - before - 1; signed != 1 {
				t.Errorf("%d commands signed, want 1 (only the one due)", signed)
			}
			// One page read: the renewed command, with its new seq, is not
			// due again, so the refresh does not chase it.
			if n := h.hs.dueReads.Load() - reads; n != 1 {
				t.Errorf("the refresh read %d pages of commands due, want 1", n)
			}
		})
	}
}

// signOnly signs and stores the commands of the unsent entry of kind for
// ref, as a publisher killed right after store.SignOutbox leaves it.
func (h *harness) signOnly(kind, ref string) []store.Retained {
	h.tb.Helper()
	ctx := context.Background()
	idle := h.newService() // never run: its client never connects
	es, err := h.db.UnsentOutbox(ctx, 1000)
	if err != nil {
		h.tb.Fatal(err)
	}
	for _, e := range es {
		if e.Kind != kind || e.Ref != ref {
			continue
		}
		rs, err := idle.commands(ctx, e)
		if err != nil {
			h.tb.Fatal(err)
		}
		if err := h.db.SignOutbox(ctx, e.Seq, rs); err != nil {
			h.tb.Fatal(err)
		}
		return rs
	}
	h.tb.Fatalf("no unsent %s %s", kind, ref)
	return nil
}

// kindOn verifies what was published on topic and returns its kind.
func (h *harness) kindOn(topic string, payload []byte) string {
	h.tb.Helper()
	if len(payload) == 0 {
		return "cleared"
	}
	return h.verify(topic, payload).Kind
}

// TestPublishesInOutboxOrder: the entries queued while no controller ran
// go out in the order of the changes, so a broadcast followed by its
// cancellation leaves the cancellation on the broker.
func TestPublishesInOutboxOrder(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.startBroker()
	w := h.watch()
	b := h.broadcast(playlists.Targets{All: true}, time.Hour)
	h.signOnly(store.OutboxBroadcast, store.IDRef(b.ID)) // the last controller stopped after signing it
	sc := h.schedule(t0.AddDate(0, 1, 0))
	if _, err := h.db.CancelBroadcast(ctx, b.ID, "li"); err != nil {
		t.Fatal(err)
	}
	b2 := h.broadcast(playlists.Targets{Townships: []string{"南镇"}}, time.Hour)
	if len(b2.Groups) != 1 {
		t.Fatalf("groups %v", b2.Groups)
	}
	h.start()
	h.deliver(store.OutboxBroadcast, store.IDRef(b2.ID))

	bTopic := h.topics.Broadcast(api.GroupAll, b.ID)
	scTopic := h.topics.Schedule(api.GroupAll, sc.ID)
	b2Topic := h.topics.Broadcast(b2.Groups[0], b2.ID)
	held := w.until(t, "the last entry", func(held map[string][]byte) bool { return held[b2Topic] != nil })
	want := []string{
		bTopic + " " + api.KindBroadcastPut,
		scTopic + " " + api.KindSchedulePut,
		bTopic + " " + api.KindBroadcastCancel,
		b2Topic + " " + api.KindBroadcastPut,
	}
	w.mu.Lock()
	seen := slices.Clone(w.seen)
	w.mu.Unlock()
	var got []string
	for _, m := range seen[:min(len(seen), len(want))] {
		got = append(got, m.topic+" "+h.kindOn(m.topic, m.payload))
	}
	if !slices.Equal(got, want) {
		t.Errorf("published\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if k := h.kindOn(bTopic, held[bTopic]); k != api.KindBroadcastCancel {
		t.Errorf("the broker retains %s on the cancelled broadcast's topic", k)
	}
}

// TestBrokerDown: while the broker is away, Deliver gives up with a
// *NotSentError when its ctx ends, and the entry stays with the failure
// recorded (the broadcast shows a send error); once the broker is back
// the publisher sends it by itself and the error is cleared.
func TestBrokerDown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		upFirst bool
	}{{"down from the start", false}, {"lost after connecting", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			if tc.upFirst {
				h.startBroker()
			}
			h.start()
			if tc.upFirst {
				first := h.broadcast(playlists.Targets{All: true}, time.Hour)
				h.deliver(store.OutboxBroadcast, store.IDRef(first.ID))
				h.settled()
				h.stopBroker()
				waitUntil(t, "the link to drop", func() bool { return !h.svc.Connected() })
			}
			b := h.broadcast(playlists.Targets{All: true}, time.Hour)
			ref := store.IDRef(b.ID)
			dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := h.svc.Deliver(dctx, store.OutboxBroadcast, ref)
			cancel()
			var nse *NotSentError
			if !errors.As(err, &nse) || nse.Kind != store.OutboxBroadcast || nse.Ref != ref {
				t.Fatalf("Deliver with the broker down: %v, want a *NotSentError for broadcast %s", err, ref)
			}
			entry := func() outboxRow {
				for _, r := range h.outbox() {
					if r.Kind == store.OutboxBroadcast && r.Ref == ref {
						return r
					}
				}
				t.Fatalf("no outbox entry for broadcast %s", ref)
				return outboxRow{}
			}
			waitUntil(t, "the failure to be recorded", func() bool { r := entry(); return r.Attempts > 0 && r.LastError != "" })
			if r := entry(); r.Sent {
				t.Fatalf("entry %+v marked sent with the broker down", r)
			}
			got, err := h.db.GetBroadcast(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.SendError == "" || !got.SentAt.IsZero() {
				t.Errorf("broadcast with the broker down: send error %q, sent at %s", got.SendError, got.SentAt)
			}
			dctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
			err = h.svc.Deliver(dctx, store.OutboxBroadcast, ref)
			cancel()
			if !errors.As(err, &nse) || nse.Cause == "" {
				t.Errorf("Deliver once a failure is recorded: %v, want a *NotSentError with its cause", err)
			}

			h.startBroker()
			h.deliver(store.OutboxBroadcast, ref)
			if got, err = h.db.GetBroadcast(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if got.SendError != "" || !got.SentAt.Equal(h.clk.Now()) {
				t.Errorf("broadcast once sent: send error %q, sent at %s", got.SendError, got.SentAt)
			}
			if r := entry(); !r.Sent || r.LastError != "" {
				t.Errorf("entry once sent: %+v", r)
			}
			topic := h.topics.Broadcast(api.GroupAll, b.ID)
			held := h.retained("the broadcast", func(held map[string][]byte) bool { return held[topic] != nil })
			if c := h.verify(topic, held[topic]); c.Kind != api.KindBroadcastPut || c.Broadcast.ID != b.ID {
				t.Errorf("the broker holds %s for broadcast %d", c.Kind, c.Broadcast.ID)
			}
		})
	}
}

// TestFinishesAfterCrash: a controller killed after it signed an entry
// (or after the broker took it, before it was marked sent) left the
// signed commands in the store; the next one publishes those very
// commands, signs nothing and marks the entry sent, once.
func TestFinishesAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name      string
		published bool
	}{{"after signing", false}, {"after publishing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			h.startBroker()
			b := h.broadcast(playlists.Targets{All: true}, time.Hour)
			ref := store.IDRef(b.ID)
			rs := h.signOnly(store.OutboxBroadcast, ref)
			if len(rs) != 1 {
				t.Fatalf("%d commands signed", len(rs))
			}
			topic := rs[0].Topic
			w := h.watch()
			if tc.published {
				if tok := w.c.Publish(topic, 1, true, rs[0].Payload); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
					t.Fatal(tok.Error())
				}
			}
			var mu sync.Mutex
			var steps []string
			before := h.commandSeq()
			h.start(func(o *Options) {
				o.Step = func(step, kind string) {
					mu.Lock()
					steps = append(steps, kind+" "+step)
					mu.Unlock()
				}
			})
			h.deliver(store.OutboxBroadcast, ref)
			w.until(t, "the broadcast", func(held map[string][]byte) bool { return held[topic] != nil })
			if signed := h.commandSeq() - before - 1; signed != 0 {
				t.Errorf("%d commands signed again", signed)
			}
			mu.Lock()
			got := slices.Clone(steps)
			mu.Unlock()
			if want := []string{"broadcast " + StepTaken, "broadcast " + StepPublished}; !slices.Equal(got, want) {
				t.Errorf("steps %v, want %v", got, want)
			}
			for i, p := range w.messages(topic) {
				if !bytes.Equal(p, rs[0].Payload) {
					t.Errorf("message %d on %s is not the command signed before the crash", i, topic)
				}
			}
			rows := h.outbox()
			if len(rows) != 1 || !rows[0].Sent || rows[0].Attempts != 0 {
				t.Errorf("outbox %+v, want the one entry sent at the first attempt", rows)
			}
			if got, err := h.db.GetBroadcast(ctx, b.ID); err != nil || !got.SentAt.Equal(h.clk.Now()) {
				t.Errorf("broadcast sent at %s (%v)", got.SentAt, err)
			}
		})
	}
}

// TestRefillsTheBroker: after a reconnect a fresh broker gets every
// retained command back, a page at a time, except those no longer
// relevant; an entry enqueued during the refill goes out between two
// pages. A controller that restarts against a broker that kept all it
// had clears there what is no longer relevant.
func TestRefillsTheBroker(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.startBroker()
	var live []store.Schedule
	for range retainedPage + 30 {
		live = append(live, h.schedule(t0.AddDate(0, 3, 0)))
	}
	over := h.once(t0.Add(time.Hour)) // relevant until a day after it plays
	h.start()
	h.deliver(store.OutboxSchedule, store.IDRef(over.ID))
	h.settled()
	h.clk.Advance(2 * day)

	type page struct {
		after   int64
		proceed chan struct{}
	}
	pages := make(chan page)
	h.hs.setHooks(func(after int64) {
		p := page{after, make(chan struct{})}
		pages <- p
		<-p.proceed
	}, nil)
	next := func() page {
		t.Helper()
		select {
		case p := <-pages:
			return p
		case <-time.After(waitFor):
			t.Fatal("the publisher read no refill page")
			return page{}
		}
	}
	h.stopBroker()
	h.startBroker()
	p := next()
	if p.after != 0 {
		t.Fatalf("the refill began after seq %d", p.after)
	}
	b := h.broadcast(playlists.Targets{All: true}, 7*day) // an emergency while the broker is refilled
	h.svc.Kick()
	close(p.proceed)
	p = next()
	unsent, _, err := h.db.OutboxUnsentFor(ctx, store.OutboxBroadcast, store.IDRef(b.ID))
	if err != nil {
		t.Fatal(err)
	}
	if unsent {
		t.Error("the broadcast enqueued during the refill was not sent before the next page")
	}
	h.hs.setHooks(nil, nil)
	close(p.proceed)

	bTopic := h.topics.Broadcast(api.GroupAll, b.ID)
	held := h.retained("every live command", func(held map[string][]byte) bool {
		for _, sc := range live {
			if held[h.topics.Schedule(api.GroupAll, sc.ID)] == nil {
				return false
			}
		}
		return held[bTopic] != nil
	})
	if len(held) != len(live)+1 {
		t.Errorf("the fresh broker retains %d commands, want %d", len(held), len(live)+1)
	}
	for topic, payload := range held {
		h.verify(topic, payload)
	}
	overTopic := h.topics.Schedule(api.GroupAll, over.ID)
	if held[overTopic] != nil {
		t.Error("the fresh broker got a command no longer relevant")
	}

	// The broker keeps what it has while the controller restarts.
	soon := h.once(h.clk.Now().Add(time.Hour))
	h.deliver(store.OutboxSchedule, store.IDRef(soon.ID))
	soonTopic := h.topics.Schedule(api.GroupAll, soon.ID)
	h.retained("the one-off schedule", func(held map[string][]byte) bool { return held[soonTopic] != nil })
	if err := h.stopSvc(); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(2 * day)
	h.start()
	h.retained("the one-off schedule cleared, the live commands kept", func(held map[string][]byte) bool {
		return held[soonTopic] == nil && held[bTopic] != nil && len(held) == len(live)+1
	})
	if got := h.stored(soonTopic); got.Seq == 0 {
		t.Error("the store forgot the one-off schedule")
	}
}

// routeGoroutines counts the goroutines inside Service.route.
func routeGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "delivery.(*Service).route(")
}

// TestRunLeavesNoGoroutine: every goroutine Run started has ended when it
// returns, paho's handlers blocked on a full ingest channel included, and
// none of them touches the store after (main closes it then).
func TestRunLeavesNoGoroutine(t *testing.T) {
	h := newHarness(t)
	h.startBroker()
	w := h.watch()
	base := runtime.NumGoroutine()

	s := h.newService(func(o *Options) { o.BatchSize = 1 })
	s.msgs = make(chan paho.Message, 1) // full at the second report
	committing := make(chan struct{}, 1)
	h.hs.setHooks(nil, func(ctx context.Context) error {
		select {
		case committing <- struct{}{}:
		default:
		}
		<-ctx.Done() // a commit that hangs until Run stops
		return ctx.Err()
	})
	h.run(s)
	b := h.broadcast(playlists.Targets{All: true}, time.Hour)
	h.deliver(store.OutboxBroadcast, store.IDRef(b.ID))
	const village = "110101001001"
	for i := range 8 {
		raw, err := json.Marshal(api.EventBatch{V: api.Version, Village: village, Version: "1.0",
			Events: []api.Event{{Seq: int64(i + 1), Type: api.EventStarted, At: h.clk.Now(), BroadcastID: b.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		if tok := w.c.Publish(h.topics.Events(village), 1, false, raw); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	select {
	case <-committing:
	case <-time.After(waitFor):
		t.Fatal("no report reached the store")
	}
	waitUntil(t, "paho handlers blocked on the full channel", func() bool { return routeGoroutines() >= 3 })

	if err := h.stopSvc(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<22)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Run returned, %d before it started:\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// insertOutbox writes an outbox row as no change of this controller
// would: a damaged row, or one from another version.
func (h *harness) insertOutbox(kind, ref string) {
	h.tb.Helper()
	h.exec(`INSERT INTO outbox (kind, ref, created_at) VALUES ($1, $2, $3)`, kind, ref, h.clk.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
}

// TestPoisonedEntryDoesNotStall: an entry that can never be sent is
// dropped, with the reason, and the entries behind it go out.
func TestPoisonedEntryDoesNotStall(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		poison func(h *harness) (kind, ref string)
	}{
		{"ref that is not a number", func(h *harness) (string, string) {
			h.insertOutbox(store.OutboxBroadcast, "x")
			return store.OutboxBroadcast, "x"
		}},
		{"unknown kind", func(h *harness) (string, string) {
			h.insertOutbox("siren", "1")
			return "siren", "1"
		}},
		{"broadcast deleted", func(h *harness) (string, string) {
			b := h.broadcast(playlists.Targets{All: true}, time.Hour)
			h.exec(`DELETE FROM broadcasts WHERE id = $1`, b.ID)
			return store.OutboxBroadcast, store.IDRef(b.ID)
		}},
		{"broadcast expired before it was sent", func(h *harness) (string, string) {
			b := h.broadcast(playlists.Targets{All: true}, time.Minute)
			h.clk.Advance(2 * time.Minute)
			return store.OutboxBroadcast, store.IDRef(b.ID)
		}},
		{"schedule withdrawn before it was sent", func(h *harness) (string, string) {
			sc := h.schedule(t0.AddDate(0, 1, 0))
			if _, err := h.db.WithdrawSchedule(ctx, sc.ID); err != nil {
				h.tb.Fatal(err)
			}
			return store.OutboxSchedule, store.IDRef(sc.ID)
		}},
		{"settings of a village that has no box any more", func(h *harness) (string, string) {
			const code = "110101001002"
			if _, err := h.db.PutBoxConfig(ctx, store.ScopeVillage, code, api.BoxConfig{Volume: 60}, "li"); err != nil {
				h.tb.Fatal(err)
			}
			if _, _, err := h.db.UpdateVillage(ctx, store.Village{Code: code, Name: "西村", Township: "东镇", Device: playlists.DeviceManual}); err != nil {
				h.tb.Fatal(err)
			}
			return store.OutboxConfig, store.ConfigRef(store.ScopeVillage, code)
		}},
		{"broadcast of a clip that fails the wire check", func(h *harness) (string, string) {
			// A clip stored without its duration (an older controller's
			// row): no box would take the command, now or later.
			a, _, err := h.db.CreateAudio(ctx, store.Audio{SHA256: strings.Repeat("cd", 32), Title: "旧", SampleRate: 22050, Channels: 1}, nil)
			if err != nil {
				h.tb.Fatal(err)
			}
			b, err := h.db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true},
				Priority: playlists.Routine, Severity: 4, ExpiresAt: h.clk.Now().Add(time.Hour), CreatedBy: "li"}, nil)
			if err != nil {
				h.tb.Fatal(err)
			}
			return store.OutboxBroadcast, store.IDRef(b.ID)
		}},
		{"settings of an unknown scope", func(h *harness) (string, string) {
			h.insertOutbox(store.OutboxConfig, "county/x")
			return store.OutboxConfig, "county/x"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.startBroker()
			kind, ref := tc.poison(h)
			good := h.schedule(h.clk.Now().AddDate(0, 1, 0))
			h.start()
			h.deliver(store.OutboxSchedule, store.IDRef(good.ID))
			for _, r := range h.outbox() {
				if r.Kind == kind && r.Ref == ref && (!r.Sent || !strings.HasPrefix(r.LastError, "dropped: ")) {
					t.Errorf("poisoned entry %+v, want it dropped with its reason", r)
				}
			}
			topic := h.topics.Schedule(api.GroupAll, good.ID)
			h.retained("the entry behind the poisoned one", func(held map[string][]byte) bool { return held[topic] != nil })
		})
	}
}

// TestReplacementsOutliveWhatTheyReplace: a withdrawal and a cancellation
// are retained on the topic of what they replace and stay relevant as
// long as it would have (a box that was away must still hear of them);
// settings go to the township's groups. Each is signed for at most 30
// days.
func TestReplacementsOutliveWhatTheyReplace(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.startBroker()
	h.start()
	sc := h.schedule(t0.AddDate(1, 0, 0))
	b := h.broadcast(playlists.Targets{All: true}, 2*time.Hour)
	h.deliver(store.OutboxSchedule, store.IDRef(sc.ID))
	h.deliver(store.OutboxBroadcast, store.IDRef(b.ID))
	scTopic := h.topics.Schedule(api.GroupAll, sc.ID)
	put := h.stored(scTopic)

	h.clk.Advance(time.Hour)
	if _, err := h.db.WithdrawSchedule(ctx, sc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.CancelBroadcast(ctx, b.ID, "li"); err != nil {
		t.Fatal(err)
	}
	cfg, err := h.db.PutBoxConfig(ctx, store.ScopeTownship, "东镇", api.BoxConfig{Volume: 60}, "li")
	if err != nil {
		t.Fatal(err)
	}
	h.deliver(store.OutboxWithdraw, store.IDRef(sc.ID))
	h.deliver(store.OutboxCancel, store.IDRef(b.ID))
	h.deliver(store.OutboxConfig, store.ConfigRef(store.ScopeTownship, "东镇"))
	now := h.clk.Now()
	bTopic := h.topics.Broadcast(api.GroupAll, b.ID)
	if len(cfg.Groups) != 1 {
		t.Fatalf("settings groups %v", cfg.Groups)
	}
	cfgTopic := h.topics.Config(cfg.Groups[0])
	for _, tc := range []struct {
		topic, kind   string
		relevant, end time.Time // relevance stored, signature's end
	}{
		{scTopic, api.KindScheduleWithdraw, put.ExpiresAt, now.Add(signedFor)},
		{bTopic, api.KindBroadcastCancel, b.ExpiresAt.Add(day), b.ExpiresAt.Add(day)},
		{cfgTopic, api.KindConfigPut, now.AddDate(foreverYears, 0, 0), now.Add(signedFor)},
	} {
		r := h.stored(tc.topic)
		c := h.verify(tc.topic, r.Payload)
		if c.Kind != tc.kind || !r.ExpiresAt.Equal(tc.relevant) || !c.ExpiresAt.Equal(tc.end) || !r.SignedUntil.Equal(tc.end) {
			t.Errorf("%s: %s relevant until %s signed until %s (stored %s); want %s, %s, %s", tc.topic, c.Kind, r.ExpiresAt, c.ExpiresAt, r.SignedUntil, tc.kind, tc.relevant, tc.end)
		}
	}
	held := h.retained("the withdrawal, the cancellation and the settings", func(held map[string][]byte) bool {
		return held[cfgTopic] != nil && h.kindOn(scTopic, held[scTopic]) == api.KindScheduleWithdraw && h.kindOn(bTopic, held[bTopic]) == api.KindBroadcastCancel
	})
	if c := h.verify(cfgTopic, held[cfgTopic]); c.Config == nil || c.Config.Volume != 60 {
		t.Errorf("settings on the broker: %+v", c.Config)
	}
}

// TestBoxReportsReachTheStore: a box's presence and reports, over MQTT or
// handed over inside the broker, are stored, and the box gets a signed
// reports.ack covering them.
func TestBoxReportsReachTheStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inbound bool
	}{{"over MQTT", false}, {"in process", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			h.startBroker()
			const village = "110101002001"
			et, err := h.db.CreateEnrollToken(ctx, village, 0, "test")
			if err != nil {
				t.Fatal(err)
			}
			creds, err := h.db.Enroll(ctx, api.EnrollRequest{Village: village, Token: et.Token, AgentVersion: "1.0"})
			if err != nil {
				t.Fatal(err)
			}
			h.start(func(o *Options) {
				o.AckDelay = 10 * time.Millisecond
				if tc.inbound {
					o.Inbound = h.broker.srv
				}
			})
			b := h.broadcast(playlists.Targets{All: true}, time.Hour)
			h.deliver(store.OutboxBroadcast, store.IDRef(b.ID))
			h.settled() // subscribed

			box := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + h.addr).SetClientID(creds.Username).
				SetUsername(creds.Username).SetPassword(creds.Password).SetCleanSession(true))
			if tok := box.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
				t.Fatalf("box connect: %v", tok.Error())
			}
			t.Cleanup(func() { box.Disconnect(0) })
			publish := func(topic string, retained bool, v any) {
				t.Helper()
				raw, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if tok := box.Publish(topic, 1, retained, raw); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
					t.Fatalf("box publish on %s: %v", topic, tok.Error())
				}
			}
			publish(h.topics.Presence(village), true, api.Presence{V: api.Version, Village: village, Status: api.Online, At: h.clk.Now(), Version: "1.0"})
			for seq := int64(1); seq <= 3; seq++ {
				publish(h.topics.Events(village), false, api.EventBatch{V: api.Version, Village: village, Version: "1.0",
					Events: []api.Event{{Seq: seq, Type: api.EventStarted, At: h.clk.Now(), BroadcastID: b.ID}}})
			}
			ackTopic := h.topics.ReportsAck(village)
			h.retained("the box's reports acknowledged", func(held map[string][]byte) bool {
				c, err := api.Verify(h.pub(), h.topics, ackTopic, held[ackTopic], h.clk.Now())
				return err == nil && c.Kind == api.KindReportsAck && c.Ack.Village == village && c.Ack.Seq == 3
			})
			waitUntil(t, "the box online", func() bool {
				vs, err := h.db.VillageState(ctx, village)
				return err == nil && vs.Agent != nil && vs.Agent.Presence == api.Online
			})
		})
	}
}
