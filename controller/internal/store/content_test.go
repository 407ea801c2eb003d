package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

func conflictUses(tb testing.TB, err error) []api.RowError {
	tb.Helper()
	e, ok := err.(*cx.Error)
	if !ok || e.Code != cx.ECONFLICT {
		tb.Fatalf("want a conflict, got %v", err)
	}
	return e.Details
}

// TestContentDeleteGuards: a clip stays while a playlist or an active
// broadcast uses it, a playlist while a live schedule or an active
// broadcast does; the refusal names each use; deleted things leave the
// lists, cannot be used again, and stay readable by id.
func TestContentDeleteGuards(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	a, b := clip(t, db, "aa"), clip(t, db, "bb")
	p, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "早间", Items: []playlists.Item{{AudioID: a.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: p.ID, Targets: playlists.Targets{All: true}, Timezone: "Asia/Shanghai",
		OnceAt: ptr(t0.Add(time.Hour))}, "li")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency, Severity: 1,
		EventType: "flood", ExpiresAt: t0.Add(30 * time.Minute), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	_, err = db.DeleteAudio(ctx, a.ID)
	want := []api.RowError{{Line: int(p.ID), Field: store.UsePlaylist, Reason: "早间"}, {Line: int(bc.ID), Field: store.UseBroadcast, Reason: "flood"}}
	if got := conflictUses(t, err); !slices.Equal(got, want) {
		t.Fatalf("clip uses %+v, want %+v", got, want)
	}
	_, err = db.DeletePlaylist(ctx, p.ID)
	if got := conflictUses(t, err); !slices.Equal(got, []api.RowError{{Line: int(sc.ID), Field: store.UseSchedule, Reason: "2026-03-01 17:00"}}) {
		t.Fatalf("playlist uses %+v", got)
	}
	if _, err := db.UpdatePlaylist(ctx, p.ID, store.PlaylistChange{Items: &[]playlists.Item{{AudioID: b.ID}}}); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("change the items under a live schedule: %v", err)
	}
	name := "晚间"
	if got, err := db.UpdatePlaylist(ctx, p.ID, store.PlaylistChange{Name: &name}); err != nil || got.Name != "晚间" || len(got.Items) != 1 {
		t.Fatalf("rename: %+v %v", got, err)
	}

	// An hour and a half later the schedule has played and the broadcast
	// has expired: nothing holds them.
	clk.Advance(90 * time.Minute)
	items := []playlists.Item{{AudioID: b.ID, Repeat: 2}}
	if got, err := db.UpdatePlaylist(ctx, p.ID, store.PlaylistChange{Items: &items}); err != nil || len(got.Items) != 1 || got.Items[0].SHA256 != "bb" {
		t.Fatalf("change items: %+v %v", got, err)
	}
	if _, err := db.DeleteAudio(ctx, a.ID); err != nil {
		t.Fatalf("delete a clip no longer used: %v", err)
	}
	if _, err := db.DeleteAudio(ctx, b.ID); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("delete the playlist's new clip: %v", err)
	}
	if _, err := db.DeletePlaylist(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteAudio(ctx, b.ID); err != nil {
		t.Fatal(err)
	}

	if list, _ := db.AudioList(ctx); len(list) != 0 {
		t.Fatalf("library after delete: %+v", list)
	}
	if list, _ := db.Playlists(ctx); len(list) != 0 {
		t.Fatalf("playlists after delete: %+v", list)
	}
	if got, err := db.Audio(ctx, a.ID); err != nil || got.DeletedAt.IsZero() {
		t.Fatalf("deleted clip by id: %+v %v", got, err)
	}
	if got, err := db.GetPlaylist(ctx, p.ID); err != nil || got.DeletedAt.IsZero() {
		t.Fatalf("deleted playlist by id: %+v %v", got, err)
	}
	if _, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "x", Items: []playlists.Item{{AudioID: a.ID}}}); cx.Code(err) != cx.EINVALID {
		t.Fatalf("playlist of a deleted clip: %v", err)
	}
	if _, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: p.ID, Targets: playlists.Targets{All: true}, Timezone: "Asia/Shanghai",
		OnceAt: ptr(clk.Now().Add(time.Hour))}, "li"); cx.Code(err) != cx.EINVALID {
		t.Fatalf("schedule a deleted playlist: %v", err)
	}
	if _, err := db.DeleteAudio(ctx, a.ID); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("delete twice: %v", err)
	}
	// Stored again, the clip is back, under its new title.
	back, created, err := db.CreateAudio(ctx, store.Audio{SHA256: "aa", Title: "又来了", DurationMS: 3000, SampleRate: 22050, Channels: 1}, nil)
	if err != nil || created || back.ID != a.ID || !back.DeletedAt.IsZero() || back.Title != "又来了" {
		t.Fatalf("stored again: %+v %v %v", back, created, err)
	}
	if _, err := db.RenameAudio(ctx, 999, "x"); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("rename a missing clip: %v", err)
	}
	if _, err := db.RenameAudio(ctx, a.ID, "a\tb"); cx.Code(err) != cx.EINVALID {
		t.Fatalf("rename with a tab: %v", err)
	}
}

// TestUpdateVillageAndLastLogin: a village edit keeps the code and the
// creation time; users list their newest login.
func TestUpdateVillageAndLastLogin(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	clk.Advance(time.Hour)
	before, after, err := db.UpdateVillage(ctx, store.Village{Code: "110101001001", Name: "东风村", Township: "新镇", Lat: 30, Lon: 120, Device: "manual"})
	if err != nil || before.Name != "东村" || after.Name != "东风村" || !after.CreatedAt.Equal(t0) || !after.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("update: %+v -> %+v, %v", before, after, err)
	}
	v, err := db.VillageState(ctx, "110101001001")
	if err != nil || v.Village != after {
		t.Fatalf("stored %+v, want %+v (%v)", v.Village, after, err)
	}
	if _, _, err := db.UpdateVillage(ctx, store.Village{Code: "110101009999", Name: "x", Township: "y", Device: "agent"}); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("a missing village: %v", err)
	}

	if _, err := db.CreateUser(ctx, store.NewUser{Username: "li", DisplayName: "李四", Role: "approver", Password: "long enough pw"}); err != nil {
		t.Fatal(err)
	}
	us, _ := db.Users(ctx, false)
	if len(us) != 1 || !us[0].LastLoginAt.IsZero() {
		t.Fatalf("never logged in: %+v", us)
	}
	for range 2 {
		clk.Advance(time.Minute)
		if _, _, _, err := db.Login(ctx, "li", "long enough pw", 0); err != nil {
			t.Fatal(err)
		}
	}
	us, _ = db.Users(ctx, false)
	if !us[0].LastLoginAt.Equal(clk.Now()) {
		t.Fatalf("last login %v, want %v", us[0].LastLoginAt, clk.Now())
	}
}
