package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

func openTemp(tb testing.TB) (*DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, path
}

func put(id string, seq, sched int64) api.Command {
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	return api.Command{ID: id, Kind: api.KindSchedulePut, Seq: seq, Schedule: &api.ScheduleState{
		Schedule: playlists.Schedule{ID: sched, PlaylistID: 1, OnceAt: &at},
		Playlist: playlists.Playlist{ID: 1, Items: []playlists.Item{{AudioID: 3}}},
	}}
}

func withdraw(id string, seq, sched int64) api.Command {
	return api.Command{ID: id, Kind: api.KindScheduleWithdraw, Seq: seq, Withdraw: &api.Withdrawal{ScheduleID: sched}}
}

func TestReplayGuard(t *testing.T) {
	db, _ := openTemp(t)
	now := time.Now()
	ev := api.Event{Type: api.EventReceived, At: now}
	steps := []struct {
		name string
		cmd  api.Command
		want error
	}{
		{"first put", put("a", 5, 1), nil},
		{"same command again", put("a", 5, 1), ErrDuplicate},
		{"other schedule, lower seq", put("b", 3, 2), nil},
		{"newer put", put("c", 7, 1), nil},
		{"older put replayed", put("a", 5, 1), ErrReplay},
		{"withdrawal", withdraw("d", 8, 1), nil},
		{"put after withdrawal replayed", put("c", 7, 1), ErrReplay},
		{"withdrawal again", withdraw("d", 8, 1), ErrDuplicate},
	}
	for _, s := range steps {
		var err error
		if s.cmd.Kind == api.KindSchedulePut {
			_, err = db.PutSchedule(s.cmd, now, ev)
		} else {
			_, err = db.WithdrawSchedule(s.cmd, ev)
		}
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.want)
		}
	}
	scheds, err := db.Schedules()
	if err != nil || len(scheds) != 1 || scheds[0].State.Schedule.ID != 2 {
		t.Fatalf("schedules %+v (%v), want only schedule 2", scheds, err)
	}
	// Only the applied commands were reported: 4 of 8.
	if n, _ := db.OutboxLen(); n != 4 {
		t.Fatalf("outbox %d, want 4", n)
	}
}

func TestClaimOnceAcrossReopen(t *testing.T) {
	db, path := openTemp(t)
	occ := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	ok, err := db.Claim(1, occ, api.Event{Type: api.EventStarted})
	if err != nil || !ok {
		t.Fatalf("first claim %v %v", ok, err)
	}
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.Claim(1, occ, api.Event{Type: api.EventStarted}); err != nil || ok {
		t.Fatalf("second claim %v %v", ok, err)
	}
	if h, _ := db.Handled(1, occ); !h {
		t.Fatal("not handled")
	}
	hs, _ := db.HandledOccurrences()
	if len(hs) != 1 || hs[0].Outcome != api.EventStarted || !hs[0].Occurrence.Equal(occ) {
		t.Fatalf("handled %+v", hs)
	}
	if n, _ := db.PruneHandled(occ.Add(time.Second)); n != 1 {
		t.Fatalf("pruned %d", n)
	}
}

func TestOutboxOrderAckAndCounter(t *testing.T) {
	db, path := openTemp(t)
	for i := 0; i < 5; i++ {
		ev, err := db.Append(api.Event{Type: api.EventFailed, Reason: strings.Repeat("长", 300)})
		if err != nil || ev.Seq != int64(i+1) {
			t.Fatalf("append %d: seq %d, %v", i, ev.Seq, err)
		}
		if len(ev.Reason) > MaxReason {
			t.Fatalf("reason of %d bytes kept", len(ev.Reason))
		}
	}
	evs, _ := db.Pending(2, 10)
	if len(evs) != 3 || evs[0].Seq != 3 || evs[2].Seq != 5 {
		t.Fatalf("pending after 2: %+v", evs)
	}
	if newest, ok, err := db.Newest(); err != nil || !ok || newest.Seq != 5 {
		t.Fatalf("newest %+v %v %v, want seq 5", newest, ok, err)
	}
	ack := api.Command{ID: "k", Kind: api.KindReportsAck, Seq: 9, Ack: &api.ReportsAck{Village: "110101001001", Seq: 3}}
	if n, err := db.ApplyAck(ack); err != nil || n != 3 {
		t.Fatalf("ack dropped %d (%v)", n, err)
	}
	db.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, _ := db.OutboxLen(); n != 2 {
		t.Fatalf("outbox %d after reopen, want 2", n)
	}
	// An ack beyond the counter (state restored from an old copy) moves
	// the counter on, so no seq the controller holds is reused.
	ack2 := api.Command{ID: "l", Kind: api.KindReportsAck, Seq: 10, Ack: &api.ReportsAck{Village: "110101001001", Seq: 40}}
	if _, err := db.ApplyAck(ack2); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Newest(); ok || err != nil {
		t.Fatalf("newest of an empty outbox: %v %v", ok, err)
	}
	if ev, _ := db.Append(api.Event{Type: api.EventReceived}); ev.Seq != 41 {
		t.Fatalf("seq after big ack %d, want 41", ev.Seq)
	}
}
