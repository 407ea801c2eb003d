package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

var expiry = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func putB(id string, seq, bid int64) api.Command {
	return api.Command{ID: id, Kind: api.KindBroadcastPut, Seq: seq, Broadcast: &api.BroadcastState{
		ID: bid, Priority: playlists.Emergency, Test: true, ExpiresAt: expiry,
		Playlist: playlists.Playlist{ID: 1, Items: []playlists.Item{{AudioID: 3}}},
	}}
}

func cancelB(id string, seq, bid int64) api.Command {
	return api.Command{ID: id, Kind: api.KindBroadcastCancel, Seq: seq, Cancel: &api.Cancellation{BroadcastID: bid}}
}

func status(tb testing.TB, db *DB, id int64) (string, int) {
	tb.Helper()
	bs, err := db.Broadcasts()
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range bs {
		if b.State.ID == id {
			return b.Status, b.Plays
		}
	}
	return "", 0
}

// A broadcast's life, step by step; every step says whether it reported.
func TestBroadcastLifecycle(t *testing.T) {
	db, path := openTemp(t)
	now := expiry.Add(-time.Hour)
	ev := func(typ string) api.Event { return api.Event{Type: typ, BroadcastID: 1} }
	steps := []struct {
		name     string
		do       func() (bool, error)
		reported bool
		status   string
		plays    int
	}{
		{"put: received", func() (bool, error) {
			_, n, err := db.PutBroadcast(putB("a", 1, 1), now, ev(api.EventReceived))
			return n, err
		}, true, api.EventReceived, 0},
		{"started", func() (bool, error) { return db.Advance(1, ev(api.EventStarted)) }, true, api.EventStarted, 1},
		{"re-signed put keeps the status", func() (bool, error) {
			_, n, err := db.PutBroadcast(putB("b", 2, 1), now, ev(api.EventReceived))
			return n, err
		}, false, api.EventStarted, 1},
		{"cut off", func() (bool, error) { return db.Advance(1, ev(api.EventPartial)) }, true, api.EventPartial, 1},
		{"started again", func() (bool, error) { return db.Advance(1, ev(api.EventStarted)) }, true, api.EventStarted, 2},
		{"finished", func() (bool, error) { return db.Advance(1, ev(api.EventFinished)) }, true, api.EventFinished, 2},
		{"never starts once finished", func() (bool, error) { return db.Advance(1, ev(api.EventStarted)) }, false, api.EventFinished, 2},
		{"a later put does not revive it", func() (bool, error) {
			_, n, err := db.PutBroadcast(putB("c", 3, 1), now, ev(api.EventReceived))
			return n, err
		}, false, api.EventFinished, 2},
		{"a cancel after it finished is not reported", func() (bool, error) {
			_, n, err := db.CancelBroadcast(cancelB("d", 4, 1), ev(api.EventCancelled))
			return n, err
		}, false, api.EventFinished, 2},
	}
	outbox := 0
	for _, s := range steps {
		reported, err := s.do()
		if err != nil || reported != s.reported {
			t.Fatalf("%s: reported %v (%v), want %v", s.name, reported, err, s.reported)
		}
		if reported {
			outbox++
		}
		if n, _ := db.OutboxLen(); n != outbox {
			t.Fatalf("%s: outbox %d, want %d", s.name, n, outbox)
		}
		if st, plays := status(t, db, 1); st != s.status || plays != s.plays {
			t.Fatalf("%s: %s after %d plays, want %s after %d", s.name, st, plays, s.status, s.plays)
		}
	}
	// Across a reopen too.
	db.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.Advance(1, ev(api.EventStarted)); err != nil || ok {
		t.Fatalf("finished broadcast started after reopen: %v %v", ok, err)
	}
}

func TestCancelBroadcast(t *testing.T) {
	db, _ := openTemp(t)
	now := expiry.Add(-time.Hour)
	if _, _, err := db.PutBroadcast(putB("a", 1, 1), now, api.Event{Type: api.EventReceived}); err != nil {
		t.Fatal(err)
	}
	r, reported, err := db.CancelBroadcast(cancelB("b", 2, 1), api.Event{Type: api.EventCancelled, BroadcastID: 1})
	if err != nil || !reported || r.Status != api.EventCancelled {
		t.Fatalf("cancel of a waiting broadcast: %+v %v %v", r, reported, err)
	}
	if evs, _ := db.Pending(1, 10); len(evs) != 1 || !evs[0].Test {
		t.Fatalf("cancelled report %+v: want test=true from the broadcast", evs)
	}
	if ok, _ := db.Advance(1, api.Event{Type: api.EventStarted}); ok {
		t.Fatal("cancelled broadcast started")
	}
	// The put replayed after its cancellation: refused by the guard.
	if _, _, err := db.PutBroadcast(putB("a", 1, 1), now, api.Event{Type: api.EventReceived}); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed put: %v", err)
	}

	// Never heard of: remembered as cancelled, not reported, never plays.
	if _, reported, err := db.CancelBroadcast(cancelB("c", 3, 2), api.Event{Type: api.EventCancelled, BroadcastID: 2}); err != nil || reported {
		t.Fatalf("cancel of an unknown broadcast: reported %v (%v)", reported, err)
	}
	r, isNew, err := db.PutBroadcast(putB("d", 4, 2), now, api.Event{Type: api.EventReceived})
	if err != nil || isNew || !r.Over() {
		t.Fatalf("put after its cancellation: %+v new=%v (%v)", r, isNew, err)
	}
	if n, _ := db.OutboxLen(); n != 2 {
		t.Fatalf("outbox %d, want 2 (received and cancelled of broadcast 1)", n)
	}
}

func TestBroadcastDownloadsReportedOnceAndPrune(t *testing.T) {
	db, _ := openTemp(t)
	now := expiry.Add(-time.Hour)
	db.PutBroadcast(putB("a", 1, 1), now, api.Event{Type: api.EventReceived})
	db.PutBroadcast(putB("b", 2, 2), now, api.Event{Type: api.EventReceived})
	for i, want := range []bool{true, false} {
		if ok, err := db.MarkBroadcastDownloaded(1, 3, api.Event{Type: api.EventDownloaded}); err != nil || ok != want {
			t.Fatalf("mark %d: %v %v, want %v", i, ok, err, want)
		}
	}
	db.Advance(1, api.Event{Type: api.EventExpired})
	if n, _ := db.PruneBroadcasts(expiry); n != 0 {
		t.Fatalf("pruned %d before expiry", n)
	}
	if n, _ := db.PruneBroadcasts(expiry.Add(time.Second)); n != 1 {
		t.Fatalf("pruned %d, want only the one that is over", n)
	}
	if bs, _ := db.Broadcasts(); len(bs) != 1 || bs[0].State.ID != 2 {
		t.Fatalf("left %+v", bs)
	}
}

// A broadcast whose clips are on disk already is journaled with their
// downloaded reports in its put: each clip reported once, and never again.
func TestPutBroadcastWithCachedClips(t *testing.T) {
	db, _ := openTemp(t)
	now := expiry.Add(-time.Hour)
	dl := api.Event{Type: api.EventDownloaded, BroadcastID: 1, AudioID: 3}
	r, isNew, err := db.PutBroadcast(putB("a", 1, 1), now, api.Event{Type: api.EventReceived, BroadcastID: 1}, dl, dl)
	if err != nil || !isNew || !slices.Equal(r.Reported, []int64{3}) {
		t.Fatalf("put: %+v new=%v err=%v", r, isNew, err)
	}
	evs, err := db.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := []string{api.EventReceived, api.EventDownloaded}; !slices.Equal(types, want) {
		t.Fatalf("outbox %v, want %v", types, want)
	}
	if ok, err := db.MarkBroadcastDownloaded(1, 3, dl); err != nil || ok {
		t.Fatalf("the clip was reported again: %v %v", ok, err)
	}
	// Heard of again (re-signed): nothing more is reported.
	if _, isNew, err := db.PutBroadcast(putB("b", 2, 1), now, api.Event{Type: api.EventReceived, BroadcastID: 1}, dl); err != nil || isNew {
		t.Fatalf("second put: new=%v err=%v", isNew, err)
	}
	if n, _ := db.OutboxLen(); n != 2 {
		t.Fatalf("outbox holds %d reports, want 2", n)
	}
}

func TestConfigsPerGroupUnderTheReplayGuard(t *testing.T) {
	db, _ := openTemp(t)
	town, village := api.TownshipGroup("110101001"), api.VillageGroup("110101001001")
	put := func(id string, seq int64, g api.Group, cfg api.BoxConfig) error {
		return db.PutConfig(api.Command{ID: id, Kind: api.KindConfigPut, Target: g, Seq: seq, Config: &cfg})
	}
	if err := put("a", 5, town, api.BoxConfig{Volume: 60}); err != nil {
		t.Fatal(err)
	}
	if err := put("b", 3, village, api.BoxConfig{Timezone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	if err := put("c", 4, town, api.BoxConfig{Volume: 10}); !errors.Is(err, ErrReplay) {
		t.Fatalf("older township config: %v", err)
	}
	cfgs, err := db.Configs()
	if err != nil || len(cfgs) != 2 || cfgs[town].Volume != 60 || cfgs[village].Timezone != "UTC" {
		t.Fatalf("configs %+v (%v)", cfgs, err)
	}
	if n, _ := db.OutboxLen(); n != 0 {
		t.Fatalf("config reported: outbox %d", n)
	}
}

func TestStateIsWhatTheBoxHolds(t *testing.T) {
	db, _ := openTemp(t)
	for _, c := range []api.Command{put("s1", 1, 1), put("s2", 1, 2), withdraw("w2", 2, 2)} {
		var err error
		if c.Kind == api.KindSchedulePut {
			_, err = db.PutSchedule(c, expiry, api.Event{Type: api.EventReceived})
		} else {
			_, err = db.WithdrawSchedule(c, api.Event{Type: api.EventReceived})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for id := int64(1); id <= 4; id++ {
		if _, _, err := db.PutBroadcast(putB(fmt.Sprint("b", id), 1, id), expiry, api.Event{Type: api.EventReceived}); err != nil {
			t.Fatal(err)
		}
	}
	db.Advance(1, api.Event{Type: api.EventFinished})
	db.Advance(2, api.Event{Type: api.EventPartial})
	if _, _, err := db.CancelBroadcast(cancelB("c3", 2, 3), api.Event{Type: api.EventCancelled}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutConfig(api.Command{ID: "cfg", Kind: api.KindConfigPut, Target: api.GroupAll, Seq: 1, Config: &api.BoxConfig{Volume: 80}}); err != nil {
		t.Fatal(err)
	}

	st, err := db.State()
	if err != nil {
		t.Fatal(err)
	}
	var scheds, bcasts []int64
	for _, s := range st.Schedules {
		scheds = append(scheds, s.State.Schedule.ID)
	}
	for _, b := range st.Broadcasts {
		bcasts = append(bcasts, b.State.ID)
		if len(b.State.Playlist.Items) != 1 {
			t.Fatalf("broadcast %d read without its playlist: %+v", b.State.ID, b)
		}
	}
	if !slices.Equal(scheds, []int64{1}) || !slices.Equal(bcasts, []int64{2, 4}) || st.Configs[api.GroupAll].Volume != 80 {
		t.Fatalf("state: schedules %v, broadcasts %v (want those not over: 2, 4), configs %+v", scheds, bcasts, st.Configs)
	}
}
