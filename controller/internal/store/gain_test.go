package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestItemsCarryTheClipGain: wherever the store resolves items for boxes
// (a playlist as created and read back, which a schedule publishes, and a
// broadcast's fixed playlist, of one clip or of a playlist), each item
// carries its clip's gain_db from the audio row; a clip never measured
// (NULL) plays at 0 dB; and a gain_db sent with the item is ignored.
func TestItemsCarryTheClipGain(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	quiet, _, err := db.CreateAudio(ctx, store.Audio{SHA256: "q1", DurationMS: 2000, SampleRate: 22050, Channels: 1,
		LoudnessLUFS: ptr(-30.0), PeakDBFS: ptr(-20.0), GainDB: ptr(14.0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := clip(t, db, "o1") // stored before loudness was measured
	want := map[int64]float64{quiet.ID: 14, old.ID: 0}
	check := func(what string, items []playlists.Item) {
		t.Helper()
		if len(items) == 0 {
			t.Fatalf("%s: no items", what)
		}
		for i, it := range items {
			if it.GainDB != want[it.AudioID] {
				t.Errorf("%s: item %d (audio %d) gain_db = %v, want %v", what, i, it.AudioID, it.GainDB, want[it.AudioID])
			}
		}
	}

	pl, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "p", Items: []playlists.Item{
		{AudioID: quiet.ID, GainDB: -3}, {AudioID: old.ID, GainDB: 5}, {AudioID: quiet.ID},
	}})
	if err != nil {
		t.Fatal(err)
	}
	check("created playlist", pl.Items)
	got, err := db.GetPlaylist(ctx, pl.ID)
	if err != nil {
		t.Fatal(err)
	}
	check("playlist read back (what a schedule publishes)", got.Items)
	all, err := db.Playlists(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("playlists: %d, %v", len(all), err)
	}
	check("playlist list", all[0].Items)

	base := store.Broadcast{Targets: playlists.Targets{All: true}, Priority: playlists.Urgent, Severity: 2,
		ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}
	for _, tt := range []struct {
		name string
		edit func(*store.Broadcast)
	}{
		{"broadcast of a clip", func(b *store.Broadcast) { b.AudioID = quiet.ID }},
		{"broadcast of an unmeasured clip", func(b *store.Broadcast) { b.AudioID = old.ID }},
		{"broadcast of a playlist", func(b *store.Broadcast) { b.PlaylistID = pl.ID }},
	} {
		b := base
		tt.edit(&b)
		b, err := db.CreateBroadcast(ctx, b, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		check(tt.name, b.Playlist.Items)
		back, err := db.GetBroadcast(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		check(tt.name+", read back", back.Wire().Playlist.Items)
	}
}
