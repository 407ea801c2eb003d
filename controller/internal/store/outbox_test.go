package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// outbox lists the unsent outbox entries as kind:ref.
func outbox(tb testing.TB, db *store.DB) []string {
	tb.Helper()
	es, err := db.UnsentOutbox(context.Background(), 1000)
	if err != nil {
		tb.Fatal(err)
	}
	out := []string{}
	for _, e := range es {
		out = append(out, e.Kind+":"+e.Ref)
	}
	return out
}

// markSent marks every unsent outbox entry sent, as the publisher does
// once the broker has them.
func markSent(tb testing.TB, db *store.DB) {
	tb.Helper()
	ctx := context.Background()
	es, err := db.UnsentOutbox(ctx, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range es {
		if err := db.OutboxSent(ctx, e); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestOutboxFollowsChanges: every change boxes must hear of writes its
// outbox entry in its own transaction, in the order of the changes; a
// change refused writes none.
func TestOutboxFollowsChanges(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "aa")
	routine := store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{Townships: []string{"东镇"}}, Priority: playlists.Routine,
		Severity: 4, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}
	released, err := db.CreateBroadcast(ctx, routine, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := func([]playlists.Village) bool { return true }
	pending, err := db.CreateBroadcast(ctx, routine, wait)
	if err != nil {
		t.Fatal(err)
	}
	rejected, err := db.CreateBroadcast(ctx, routine, wait)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: 999, Targets: playlists.Targets{All: true}, ExpiresAt: t0.Add(time.Hour)}, nil); err == nil {
		t.Fatal("a broadcast of a missing clip was stored")
	}
	want := []string{"broadcast:" + store.IDRef(released.ID)}
	if got := outbox(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("after create: %v, want %v (a pending broadcast waits for its approval)", got, want)
	}
	if _, err := db.DecideBroadcast(ctx, pending.ID, true, "wang", "user/2", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DecideBroadcast(ctx, rejected.ID, false, "wang", "user/2", "no"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DecideBroadcast(ctx, pending.ID, true, "zhao", "user/3", ""); err == nil {
		t.Fatal("approved twice")
	}
	want = append(want, "broadcast:"+store.IDRef(pending.ID))
	if got := outbox(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("after decisions: %v, want %v", got, want)
	}
	markSent(t, db)
	if b, _ := db.GetBroadcast(ctx, released.ID); !b.SentAt.Equal(t0) {
		t.Fatalf("sent_at of a sent broadcast: %v", b.SentAt)
	}

	// Cancel (again: repeated on the boxes), resend; nothing for a broadcast never released.
	clk.Advance(time.Minute)
	for range 2 {
		if _, err := db.CancelBroadcast(ctx, released.ID, "li"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ResendBroadcast(ctx, pending.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResendBroadcast(ctx, released.ID); err == nil {
		t.Fatal("a cancelled broadcast was resent")
	}
	never, _ := db.CreateBroadcast(ctx, routine, wait)
	if _, err := db.CancelBroadcast(ctx, never.ID, "li"); err != nil {
		t.Fatal(err)
	}
	// The second cancel replaced the first's entry, still waiting unsigned.
	want = []string{"cancel:" + store.IDRef(released.ID), "broadcast:" + store.IDRef(pending.ID)}
	if got := outbox(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("after cancel and resend: %v, want %v", got, want)
	}
	markSent(t, db)

	// Schedules and settings.
	pl, _ := db.CreatePlaylist(ctx, playlists.Playlist{Name: "p", Items: []playlists.Item{{AudioID: a.ID}}})
	at := t0.Add(2 * time.Hour)
	sc, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: &at}, "li")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: 999, Targets: playlists.Targets{All: true}, OnceAt: &at}, "li"); err == nil {
		t.Fatal("a schedule of a missing playlist was stored")
	}
	if _, err := db.WithdrawSchedule(ctx, sc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutBoxConfig(ctx, store.ScopeTownship, "东镇", api.BoxConfig{Volume: 60}, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutBoxConfig(ctx, store.ScopeTownship, "无此镇", api.BoxConfig{Volume: 60}, "admin"); err == nil {
		t.Fatal("settings of a missing township were stored")
	}
	want = []string{"schedule:" + store.IDRef(sc.ID), "withdraw:" + store.IDRef(sc.ID), "config:" + store.ConfigRef(store.ScopeTownship, "东镇")}
	if got := outbox(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("schedules and settings: %v, want %v", got, want)
	}
	if unsent, _, err := db.OutboxUnsentFor(ctx, store.OutboxWithdraw, store.IDRef(sc.ID)); err != nil || !unsent {
		t.Fatalf("unsent withdrawal: %v %v", unsent, err)
	}

	// A week after they were sent, entries are forgotten.
	markSent(t, db)
	clk.Advance(8 * 24 * time.Hour)
	db.CancelBroadcast(ctx, pending.ID, "li") // expired by now: refused, nothing written
	sc2, _ := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: ptr(clk.Now().Add(time.Hour))}, "li")
	markSent(t, db)
	if n, err := store.OutboxRowsForTest(ctx, db); err != nil || n != 1 {
		t.Fatalf("outbox rows after a week: %d %v (want only schedule %d's)", n, err, sc2.ID)
	}
}

// TestOutboxSignAndFail: signing stores the commands as retained and marks
// the entry in one step; a failure is counted and, for a broadcast, shown.
func TestOutboxSignAndFail(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "aa")
	b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Routine,
		Severity: 4, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	es, _ := db.UnsentOutbox(ctx, 10)
	if len(es) != 1 {
		t.Fatalf("outbox %+v", es)
	}
	e := es[0]
	if err := db.OutboxFailed(ctx, e, "connection refused", "delivery failed at 08:00"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetBroadcast(ctx, b.ID); got.SendError != "delivery failed at 08:00" || !got.SentAt.IsZero() {
		t.Fatalf("failed broadcast %+v", got)
	}
	rs := []store.Retained{
		{Topic: "cx/t/all/b/1", Payload: []byte("one"), Seq: 7, Kind: api.KindBroadcastPut, ExpiresAt: t0.Add(25 * time.Hour), SignedUntil: t0.Add(25 * time.Hour)},
		{Topic: "cx/t/x/b/1", Payload: []byte("two"), Seq: 8, Kind: api.KindBroadcastPut, ExpiresAt: t0.Add(25 * time.Hour), SignedUntil: t0.Add(25 * time.Hour)},
	}
	if err := db.SignOutbox(ctx, e.Seq, rs); err != nil {
		t.Fatal(err)
	}
	es, _ = db.UnsentOutbox(ctx, 10)
	if len(es) != 1 || es[0].SignedAt.IsZero() || es[0].Attempts != 1 || es[0].LastError != "connection refused" || !reflect.DeepEqual(es[0].Topics, []string{"cx/t/all/b/1", "cx/t/x/b/1"}) {
		t.Fatalf("signed entry %+v", es)
	}
	got, err := db.RetainedOn(ctx, es[0].Topics)
	if err != nil || len(got) != 2 || string(got[0].Payload) != "one" || !got[1].SignedUntil.Equal(rs[1].SignedUntil) {
		t.Fatalf("retained %+v %v", got, err)
	}
	if unsent, cause, _ := db.OutboxUnsentFor(ctx, store.OutboxBroadcast, store.IDRef(b.ID)); !unsent || cause != "connection refused" {
		t.Fatalf("unsent %v %q", unsent, cause)
	}
	if err := db.OutboxSent(ctx, es[0]); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetBroadcast(ctx, b.ID); got.SendError != "" || got.SentAt.IsZero() {
		t.Fatalf("sent broadcast %+v", got)
	}
	if err := db.SignOutbox(ctx, e.Seq, rs); err == nil {
		t.Fatal("an entry already sent was signed again")
	}
}

// TestOutboxRepeatReplacesWaitingEntry: a change repeated while its
// entry waits unsigned replaces the entry (however often it is repeated,
// one waits), so the publisher cannot sign what it read before the
// repeat as the waiting entry; an entry already signed is kept and a new
// one follows it.
func TestOutboxRepeatReplacesWaitingEntry(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	ref := store.ConfigRef(store.ScopeTownship, "东镇")
	put := func(volume int) {
		t.Helper()
		if _, err := db.PutBoxConfig(ctx, store.ScopeTownship, "东镇", api.BoxConfig{Volume: volume}, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	put(10)
	read, _ := db.UnsentOutbox(ctx, 10) // the publisher reads the entry and the settings of volume 10...
	for v := 20; v <= 60; v += 10 {
		put(v) // ...while they are saved again and again
	}
	if got, want := outbox(t, db), []string{"config:" + ref}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after six saves: %v, want %v", got, want)
	}
	r := store.Retained{Topic: "cx/t/x/config", Payload: []byte("volume 10"), Seq: 1, Kind: api.KindConfigPut, ExpiresAt: t0.Add(time.Hour), SignedUntil: t0.Add(time.Hour)}
	if err := db.SignOutbox(ctx, read[0].Seq, []store.Retained{r}); !errors.Is(err, store.ErrOutboxSuperseded) {
		t.Fatalf("signing what was read before the saves: %v, want ErrOutboxSuperseded", err)
	}
	if got, _ := db.RetainedOn(ctx, []string{r.Topic}); len(got) != 0 {
		t.Fatalf("a superseded entry stored %+v", got)
	}
	es, _ := db.UnsentOutbox(ctx, 10)
	if err := db.SignOutbox(ctx, es[0].Seq, []store.Retained{r}); err != nil {
		t.Fatal(err)
	}
	put(70) // signed (on its way to the broker): this one follows it
	if got, want := outbox(t, db), []string{"config:" + ref, "config:" + ref}; !reflect.DeepEqual(got, want) {
		t.Fatalf("a save after signing: %v, want %v", got, want)
	}
}

// TestRetainedDue: only commands whose signature runs out before their
// state does are due for signing again, and only before the bound.
func TestRetainedDue(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	put := func(topic string, seq int64, until, signed time.Time) {
		t.Helper()
		if err := db.PutRetained(ctx, store.Retained{Topic: topic, Payload: []byte(topic), Seq: seq, Kind: api.KindSchedulePut, ExpiresAt: until, SignedUntil: signed}); err != nil {
			t.Fatal(err)
		}
	}
	year, month := t0.AddDate(1, 0, 0), t0.AddDate(0, 1, 0)
	put("a", 1, year, t0.Add(3*24*time.Hour))                   // due: signature ends in 3 days, state in a year
	put("b", 2, year, month)                                    // not yet due
	put("c", 3, t0.Add(3*24*time.Hour), t0.Add(3*24*time.Hour)) // signed as long as it matters
	put("d", 4, year, time.Time{})                              // stored before signatures were recorded
	put("e", 5, t0.Add(-time.Hour), time.Time{})                // no longer relevant
	due, err := db.RetainedDue(ctx, t0, t0.Add(7*24*time.Hour), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, r := range due {
		topics = append(topics, r.Topic)
	}
	if !reflect.DeepEqual(topics, []string{"a", "d"}) {
		t.Fatalf("due %v, want [a d]", topics)
	}
	if due, _ := db.RetainedDue(ctx, t0, t0.Add(7*24*time.Hour), 1, 10); len(due) != 1 || due[0].Topic != "d" {
		t.Fatalf("due after seq 1: %+v", due)
	}
	page, err := db.RetainedAfter(ctx, 2, 2)
	if err != nil || len(page) != 2 || page[0].Topic != "c" || page[1].Topic != "d" {
		t.Fatalf("page after 2: %+v %v", page, err)
	}
}
