package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestAuditText: Text matches anywhere in an entry, ignoring ASCII case,
// and LIKE's wildcards in it match only themselves.
func TestAuditText(t *testing.T) {
	db, _, _ := openDB(t)
	ctx := context.Background()
	for _, e := range []store.AuditEntry{
		{Actor: "li", Action: "broadcast.reject", Object: "broadcast/2", Detail: "范围太大，只发受灾的乡镇"},
		{Actor: "zhang", Action: "broadcast.create", Object: "broadcast/3", Detail: "volume 80%"},
		{Actor: "zhang", Action: "broadcast.create", Object: "broadcast/4", Detail: "volume 80 of 100"},
		{Actor: "wang_admin", Action: "user.create", Object: "user/7", Detail: ""},
	} {
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for text, want := range map[string][]string{
		"受灾":               {"broadcast/2"},
		"BROADCAST.REJECT": {"broadcast/2"},
		"80%":              {"broadcast/3"},
		"_admin":           {"user/7"},
		"n_a":              nil, // not "wang" + any + "admin"
		"Zhang broadcast":  {"broadcast/4", "broadcast/3"},
		"":                 {"user/7", "broadcast/4", "broadcast/3", "broadcast/2"},
	} {
		es, err := db.AuditLog(ctx, store.AuditFilter{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Object)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
	if es, err := db.AuditLog(ctx, store.AuditFilter{Text: "broadcast", Actor: "li"}); err != nil || len(es) != 1 {
		t.Errorf("with actor: %v %v", es, err)
	}
}

// TestAuditParams: an entry's parameters come back as written; an entry
// written without them (as before they were kept) has none, and one with
// an empty set has an empty set.
func TestAuditParams(t *testing.T) {
	db, _, _ := openDB(t)
	ctx := context.Background()
	with := map[string]string{"expires_at": "2026-03-01T00:00:00Z", "title": "洪水 \"警报\" {x}", "groups": "all t/110101001"}
	for _, e := range []store.AuditEntry{
		{Actor: "li", Action: "old", Object: "x/1"},
		{Actor: "li", Action: "none", Object: "x/2", Params: map[string]string{}},
		{Actor: "li", Action: "some", Object: "x/3", Params: with},
	} {
		if err := db.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.AuditLog(ctx, store.AuditFilter{})
	if err != nil || len(es) != 3 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	if !reflect.DeepEqual(es[0].Params, with) {
		t.Errorf("params %v, want %v", es[0].Params, with)
	}
	if es[1].Params == nil || len(es[1].Params) != 0 {
		t.Errorf("an empty set came back as %#v", es[1].Params)
	}
	if es[2].Params != nil {
		t.Errorf("an entry without params came back with %#v", es[2].Params)
	}
}

// TestVillageEvents: a village's latest reports, newest first.
func TestVillageEvents(t *testing.T) {
	db, _, _ := openDB(t)
	seedVillages(t, db)
	enroll(t, db, "110101001001")
	enroll(t, db, "110101001002")
	ctx := context.Background()
	occ := t0.Add(time.Hour)
	_, err := db.IngestEvents(ctx, []store.IngestBatch{
		{Village: "110101001001", Events: []api.Event{
			{Seq: 1, Type: api.EventReceived, At: t0, ScheduleID: 3},
			{Seq: 2, Type: api.EventStarted, At: occ, ScheduleID: 3, Occurrence: &occ},
			{Seq: 3, Type: api.EventFailed, At: occ.Add(time.Second), ScheduleID: 3, Occurrence: &occ, Reason: "no audio device"},
		}},
		{Village: "110101001002", Events: []api.Event{{Seq: 1, Type: api.EventReceived, At: t0, ScheduleID: 3}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := db.VillageEvents(ctx, "110101001001", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Seq != 3 || es[0].Reason != "no audio device" || es[1].Seq != 2 || es[1].Occurrence == "" {
		t.Fatalf("events %+v", es)
	}
	if es, err := db.VillageEvents(ctx, "110101001001", 0); err != nil || len(es) != 3 {
		t.Fatalf("default limit: %d %v", len(es), err)
	}
	if es, err := db.VillageEvents(ctx, "110101002001", 10); err != nil || len(es) != 0 {
		t.Fatalf("a village without a box: %v %v", es, err)
	}
}

// TestBroadcastsCreatedAndVillageConfirmations: the broadcasts of a range
// of time, and what a village confirmed since a time.
func TestBroadcastsCreatedAndVillageConfirmations(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	enroll(t, db, "110101001001")
	a := clip(t, db, "aa")
	mk := func() store.Broadcast {
		b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Routine,
			Severity: 4, ExpiresAt: clk.Now().Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		markSent(t, db)
		return b
	}
	first := mk()
	clk.Advance(time.Hour)
	second := mk()
	for _, tt := range []struct {
		since, until time.Time
		want         []int64
	}{
		{t0, t0.Add(time.Hour), []int64{first.ID}},
		{t0, t0.Add(time.Hour + time.Microsecond), []int64{first.ID, second.ID}},
		{t0.Add(time.Second), t0.Add(2 * time.Hour), []int64{second.ID}},
		{t0.Add(-time.Hour), t0, nil},
	} {
		bs, err := db.BroadcastsCreated(ctx, tt.since, tt.until)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, b := range bs {
			got = append(got, b.ID)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("[%s, %s): %v, want %v", tt.since, tt.until, got, tt.want)
		}
	}

	const manual = "110101002001"
	occ := time.Date(2026, 3, 1, 7, 30, 0, 0, time.UTC)
	sc, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "早间", Items: []playlists.Item{{AudioID: a.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	// Created before the occurrences it confirms: none exists before
	// its schedule did.
	now := clk.t
	clk.t = time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC)
	s, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: sc.ID, Targets: playlists.Targets{All: true}, Timezone: "UTC",
		Recurring: &playlists.Recurrence{Times: []string{"07:30"}, StartDate: "2026-02-27"}}, "li")
	clk.t = now
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []store.Confirmation{
		{Village: manual, ScheduleID: s.ID, Occurrence: occ.AddDate(0, 0, -1)},
		{Village: manual, ScheduleID: s.ID, Occurrence: occ},
		{Village: manual, BroadcastID: first.ID},
	} {
		c.PlayedAt = c.Occurrence
		if c.BroadcastID != 0 {
			c.PlayedAt = t0
		}
		if _, err := db.CreateConfirmation(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := db.VillageConfirmations(ctx, manual, occ)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || !cs[0].Occurrence.Equal(occ) || cs[1].BroadcastID != first.ID {
		t.Fatalf("since %s: %+v", occ, cs)
	}
	if cs, err := db.VillageConfirmations(ctx, "110101001001", t0.AddDate(0, 0, -7)); err != nil || len(cs) != 0 {
		t.Fatalf("another village: %+v %v", cs, err)
	}
}
