package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

func clip(tb testing.TB, db *store.DB, sha string) store.Audio {
	tb.Helper()
	a, _, err := db.CreateAudio(context.Background(), store.Audio{SHA256: sha, Title: "警报", DurationMS: 3000, SampleRate: 22050, Channels: 1}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func TestBroadcastLifecycle(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "aa")
	base := store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency, Severity: 1,
		Repeat: 2, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}

	var reached []playlists.Village
	b, err := db.CreateBroadcast(ctx, base, func(vs []playlists.Village) bool { reached = vs; return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(reached) != 3 || b.State != api.BroadcastPending || !b.NeedsApproval || !reflect.DeepEqual(b.Groups, []api.Group{api.GroupAll}) {
		t.Fatalf("broadcast %+v reached %d", b, len(reached))
	}
	wantPl := playlists.Playlist{Name: "警报", Items: []playlists.Item{{AudioID: a.ID, SHA256: "aa", DurationMS: 3000, Repeat: 1}}}
	if !reflect.DeepEqual(b.Playlist, wantPl) || b.Duration() != 6*time.Second {
		t.Fatalf("playlist %+v, duration %v", b.Playlist, b.Duration())
	}
	back, err := db.GetBroadcast(ctx, b.ID)
	if err != nil || !reflect.DeepEqual(back, b) {
		t.Fatalf("read back %+v %v\nwant %+v", back, err, b)
	}

	bad := []struct {
		name  string
		edit  func(*store.Broadcast)
		field string
	}{
		{"unknown audio", func(b *store.Broadcast) { b.AudioID = 99 }, "audio_id"},
		{"unknown playlist", func(b *store.Broadcast) { b.AudioID, b.PlaylistID = 0, 99 }, "playlist_id"},
		{"nothing to play", func(b *store.Broadcast) { b.AudioID = 0 }, "audio_id"},
		{"unknown township", func(b *store.Broadcast) { b.Targets = playlists.Targets{Townships: []string{"西镇"}} }, "targets.townships[0]"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			x := base
			tt.edit(&x)
			_, err := db.CreateBroadcast(ctx, x, nil)
			var ce *cx.Error
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("err %v, want field %s", err, tt.field)
			}
		})
	}

	// The two-person rule.
	if _, err := db.DecideBroadcast(ctx, b.ID, true, "li", "user/1", ""); cx.Code(err) != cx.EFORBIDDEN {
		t.Fatalf("self-approval: %v", err)
	}
	ok, err := db.DecideBroadcast(ctx, b.ID, true, "wang", "user/2", "")
	if err != nil || ok.State != api.BroadcastReleased || ok.DecidedBy != "wang" || !ok.DecidedAt.Equal(t0) {
		t.Fatalf("approve: %+v %v", ok, err)
	}
	if _, err := db.DecideBroadcast(ctx, b.ID, false, "zhao", "user/3", "no"); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("rejecting an approved broadcast: %v", err)
	}
	markSent(t, db)
	if sent, _ := db.GetBroadcast(ctx, b.ID); sent.SendError != "" || !sent.SentAt.Equal(t0) {
		t.Fatalf("sent: %+v", sent)
	}
	clk.Advance(time.Minute)
	c, err := db.CancelBroadcast(ctx, b.ID, "li")
	if err != nil || c.State != api.BroadcastCancelled || c.CancelledBy != "li" {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	again, err := db.CancelBroadcast(ctx, b.ID, "zhao")
	if err != nil || again.CancelledBy != "li" || !again.CancelledAt.Equal(c.CancelledAt) {
		t.Fatalf("cancel again: %+v %v", again, err)
	}

	// No approval needed; rejection; expiry.
	free, err := db.CreateBroadcast(ctx, base, func([]playlists.Village) bool { return false })
	if err != nil || free.State != api.BroadcastReleased || free.NeedsApproval {
		t.Fatalf("free: %+v %v", free, err)
	}
	rej, _ := db.CreateBroadcast(ctx, base, func([]playlists.Village) bool { return true })
	r, err := db.DecideBroadcast(ctx, rej.ID, false, "wang", "token/7", "wrong township")
	if err != nil || r.State != api.BroadcastRejected || r.DecisionReason != "wrong township" {
		t.Fatalf("reject: %+v %v", r, err)
	}
	if _, err := db.CancelBroadcast(ctx, rej.ID, "li"); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("cancelling a rejected broadcast: %v", err)
	}
	late, _ := db.CreateBroadcast(ctx, base, func([]playlists.Village) bool { return true })
	clk.Advance(2 * time.Hour)
	if _, err := db.DecideBroadcast(ctx, late.ID, true, "wang", "user/2", ""); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("approving an expired broadcast: %v", err)
	}
	if _, err := db.CancelBroadcast(ctx, late.ID, "li"); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("cancelling an expired broadcast: %v", err)
	}
	list, err := db.Broadcasts(ctx, 0)
	if err != nil || len(list) != 4 || list[0].ID != late.ID {
		t.Fatalf("list: %d %v", len(list), err)
	}
}

func TestBroadcastReportsAndConfirmations(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	enroll(t, db, "110101001001")
	enroll(t, db, "110101001002")
	a := clip(t, db, "aa")
	mk := func(test bool) store.Broadcast {
		b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Urgent,
			Severity: 2, Test: test, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	real, test := mk(false), mk(true)
	ev := func(seq int64, typ string, b store.Broadcast) api.Event {
		return api.Event{Seq: seq, Type: typ, At: t0, BroadcastID: b.ID, Test: b.Test}
	}
	_, err := db.IngestEvents(ctx, []store.IngestBatch{
		{Village: "110101001001", Events: []api.Event{ev(1, "received", real), ev(2, "started", real), ev(3, "finished", real), ev(4, "finished", test)}},
		{Village: "110101001002", Events: []api.Event{ev(1, "started", real), ev(2, "started", test), ev(3, "partial", test)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := db.BroadcastEvents(ctx, real.ID, false)
	if err != nil || len(evs) != 4 || evs[0].BroadcastID != real.ID || evs[0].Test {
		t.Fatalf("real events %+v %v", evs, err)
	}
	tevs, _ := db.BroadcastEvents(ctx, test.ID, true)
	if len(tevs) != 3 || !tevs[0].Test {
		t.Fatalf("test events %+v", tevs)
	}

	// Hand confirmations: only villages without a box, only sent broadcasts.
	const manual = "110101002001"
	if _, err := db.CreateConfirmation(ctx, store.Confirmation{Village: manual, BroadcastID: real.ID}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("confirming an unsent broadcast: %v", err)
	}
	markSent(t, db)
	if _, err := db.CreateConfirmation(ctx, store.Confirmation{Village: "110101001001", BroadcastID: real.ID}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("confirming for a village with a box: %v", err)
	}
	if _, err := db.CreateConfirmation(ctx, store.Confirmation{Village: manual, BroadcastID: real.ID, PlayedAt: t0.Add(time.Hour)}); cx.Code(err) != cx.EINVALID {
		t.Fatalf("played in the future: %v", err)
	}
	clk.Advance(time.Minute)
	c, err := db.CreateConfirmation(ctx, store.Confirmation{Village: manual, BroadcastID: real.ID, Note: "用大喇叭播了两遍", CreatedBy: "nancun"})
	if err != nil || !c.PlayedAt.Equal(t0.Add(time.Minute)) || c.ID == 0 {
		t.Fatalf("confirm: %+v %v", c, err)
	}
	if _, err := db.CreateConfirmation(ctx, store.Confirmation{Village: manual, BroadcastID: real.ID}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("second confirmation: %v", err)
	}

	progress, err := db.BroadcastProgresses(ctx, real.ID, test.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]store.BroadcastProgress{
		real.ID: {Started: 2, Final: 1, Played: 1, Confirmed: 1},
		test.ID: {Started: 2, Final: 2, Played: 1},
	}
	if !reflect.DeepEqual(progress, want) {
		t.Fatalf("progress %+v", progress)
	}

	// Schedule confirmations name an occurrence that has begun.
	pl, _ := db.CreatePlaylist(ctx, playlists.Playlist{Name: "p", Items: []playlists.Item{{AudioID: a.ID}}})
	at := t0.Add(10 * time.Minute)
	sc, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Townships: []string{"南镇"}}, OnceAt: &at}, "li")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		c     store.Confirmation
		field string
	}{
		{store.Confirmation{Village: manual, ScheduleID: sc.ID}, "occurrence"},
		{store.Confirmation{Village: manual, ScheduleID: sc.ID, Occurrence: at.Add(time.Minute)}, "occurrence"},
		{store.Confirmation{Village: manual, ScheduleID: sc.ID, Occurrence: at}, "occurrence"}, // not yet
		{store.Confirmation{Village: manual, ScheduleID: 99, Occurrence: at}, "schedule_id"},
		{store.Confirmation{Village: manual}, "schedule_id"},
	} {
		var ce *cx.Error
		if _, err := db.CreateConfirmation(ctx, tt.c); !errors.As(err, &ce) || ce.Field != tt.field {
			t.Fatalf("%+v: %v, want field %s", tt.c, err, tt.field)
		}
	}
	clk.Advance(20 * time.Minute)
	if _, err := db.CreateConfirmation(ctx, store.Confirmation{Village: manual, ScheduleID: sc.ID, Occurrence: at.In(time.FixedZone("CST", 8*3600))}); err != nil {
		t.Fatal(err)
	}
	cs, err := db.ScheduleConfirmations(ctx, sc.ID, playlists.OccurrenceKey(at))
	if err != nil || len(cs) != 1 || !cs[0].Occurrence.Equal(at) || cs[0].Village != manual {
		t.Fatalf("schedule confirmations %+v %v", cs, err)
	}

	// Schedule coverage never sees test reports.
	o := at
	db.IngestEvents(ctx, []store.IngestBatch{{Village: "110101001001", Events: []api.Event{
		{Seq: 5, Type: "finished", At: at, ScheduleID: sc.ID, Occurrence: &o, Test: true},
		{Seq: 6, Type: "started", At: at, ScheduleID: sc.ID, Occurrence: &o},
	}}})
	sevs, _ := db.ScheduleEvents(ctx, sc.ID, playlists.OccurrenceKey(at))
	if len(sevs) != 1 || sevs[0].Type != "started" {
		t.Fatalf("schedule events %+v", sevs)
	}
}

func TestBoxConfigs(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	cfg := api.BoxConfig{QuietHours: []playlists.QuietWindow{{From: "22:00", To: "06:30"}}, Volume: 70, Timezone: "Asia/Shanghai"}

	empty, err := db.GetBoxConfig(ctx, store.ScopeTownship, "东镇")
	if err != nil || !empty.UpdatedAt.IsZero() || !reflect.DeepEqual(empty.Groups, []api.Group{"t/110101001"}) {
		t.Fatalf("before: %+v %v", empty, err)
	}
	put, err := db.PutBoxConfig(ctx, store.ScopeTownship, "东镇", cfg, "boss")
	if err != nil || !reflect.DeepEqual(put.Groups, []api.Group{"t/110101001"}) {
		t.Fatalf("put: %+v %v", put, err)
	}
	got, _ := db.GetBoxConfig(ctx, store.ScopeTownship, "东镇")
	if !reflect.DeepEqual(got, put) {
		t.Fatalf("get %+v\nwant %+v", got, put)
	}
	v, err := db.PutBoxConfig(ctx, store.ScopeVillage, "110101001002", api.BoxConfig{Volume: 40}, "boss")
	if err != nil || !reflect.DeepEqual(v.Groups, []api.Group{"v/110101001002"}) {
		t.Fatalf("village: %+v %v", v, err)
	}
	for _, tt := range []struct {
		scope, name, code string
	}{
		{store.ScopeTownship, "西镇", cx.ENOTFOUND},
		{store.ScopeVillage, "110101009999", cx.ENOTFOUND},
		{store.ScopeVillage, "110101002001", cx.ECONFLICT}, // no box
	} {
		if _, err := db.PutBoxConfig(ctx, tt.scope, tt.name, cfg, "boss"); cx.Code(err) != tt.code {
			t.Fatalf("%s %s: %v", tt.scope, tt.name, err)
		}
	}
	// A township whose code prefix also holds another township's village.
	db.ImportVillages(ctx, []store.Village{{Code: "110101001003", Name: "飞地", Township: "南镇", Device: "agent"}})
	if _, err := db.PutBoxConfig(ctx, store.ScopeTownship, "东镇", cfg, "boss"); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("shared prefix: %v", err)
	}
}

// TestHeldBroadcast: a released broadcast whose start is to come has no
// outbox entry until ReleaseHeld runs at its start; one that expired while
// held, or was cancelled, is never put there.
func TestHeldBroadcast(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "aa")
	start := t0.Add(10 * time.Minute)
	mk := func(expires time.Time) store.Broadcast {
		b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{Townships: []string{"东镇"}},
			Priority: playlists.Urgent, Severity: 3, ExpiresAt: expires, StartsAt: start, CreatedBy: "li", CreatedByKey: "user/1"}, nil)
		if err != nil || !b.Held || b.State != api.BroadcastReleased || !b.StartsAt.Equal(start) {
			t.Fatalf("create: %+v %v", b, err)
		}
		return b
	}
	held, short, cancelled := mk(t0.Add(time.Hour)), mk(start.Add(time.Second)), mk(t0.Add(time.Hour))
	if _, err := db.CancelBroadcast(ctx, cancelled.ID, "li"); err != nil {
		t.Fatal(err)
	}
	unsent := func() []store.OutboxEntry {
		es, err := db.UnsentOutbox(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	if es := unsent(); len(es) != 0 {
		t.Fatalf("outbox before the start: %+v (a cancellation of a held broadcast reaches no box)", es)
	}
	if at, ok, err := db.NextHeldStart(ctx); err != nil || !ok || !at.Equal(start) {
		t.Fatalf("next held start %v %v %v", at, ok, err)
	}
	if rel, err := db.ReleaseHeld(ctx); err != nil || len(rel) != 0 {
		t.Fatalf("released before the start: %+v %v", rel, err)
	}
	clk.Advance(10*time.Minute + 2*time.Second) // short expired meanwhile
	rel, err := db.ReleaseHeld(ctx)
	if err != nil || len(rel) != 1 || rel[0].ID != held.ID {
		t.Fatalf("released %+v %v, want broadcast %d only", rel, err, held.ID)
	}
	if es := unsent(); len(es) != 1 || es[0].Kind != store.OutboxBroadcast || es[0].Ref != store.IDRef(held.ID) {
		t.Fatalf("outbox after the start: %+v", es)
	}
	for id, want := range map[int64]bool{held.ID: false, short.ID: true, cancelled.ID: true} {
		if b, _ := db.GetBroadcast(ctx, id); b.Held != want {
			t.Fatalf("broadcast %d held %v, want %v", id, b.Held, want)
		}
	}
	if _, ok, err := db.NextHeldStart(ctx); err != nil || ok {
		t.Fatalf("a held broadcast still waits: %v %v", ok, err)
	}
	if rel, err := db.ReleaseHeld(ctx); err != nil || len(rel) != 0 {
		t.Fatalf("released twice: %+v %v", rel, err)
	}
}
