package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// queue puts a packet of typ in the queue, its EBDID and archive made
// from the sequence number it gets.
func queue(tb testing.TB, db *store.DB, typ string, broadcast int64) (store.EBDOut, bool) {
	tb.Helper()
	e, ok, err := db.EnqueueEBD(context.Background(), typ, broadcast, "", func(seq int64) (string, []byte, error) {
		return fmt.Sprintf("id-%d", seq), []byte(fmt.Sprintf("tar of %s %d", typ, seq)), nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e, ok
}

func next(tb testing.TB, db *store.DB) (store.EBDOut, bool) {
	tb.Helper()
	e, ok, err := db.NextEBDOut(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return e, ok
}

// TestEBDOutQueue: packets come out oldest first; a failure keeps the
// head where it is with its next attempt; a sent packet leaves the
// queue with the platform's answer; and the queue survives reopening the
// database (a restart), with sequence numbers that keep increasing.
func TestEBDOutQueue(t *testing.T) {
	ctx := context.Background()
	db, clk, path := openDB(t)
	if _, ok := next(t, db); ok {
		t.Fatal("a new queue is not empty")
	}
	v0 := db.Version()
	a, _ := queue(t, db, "EBRDTInfo", 0)
	b, _ := queue(t, db, "EBRDTState", 0)
	c, _ := queue(t, db, "EBRDTState", 0)
	if !(a.Seq < b.Seq && b.Seq < c.Seq) || a.EBDID != fmt.Sprintf("id-%d", a.Seq) {
		t.Fatalf("seqs %d %d %d, ebdid %q", a.Seq, b.Seq, c.Seq, a.EBDID)
	}
	if db.Version() != v0 {
		t.Error("queueing moved Version: the reporter, which watches it, would see a change of its own making")
	}

	h, ok := next(t, db)
	if !ok || h.Seq != a.Seq || string(h.Packet) != "tar of EBRDTInfo "+fmt.Sprint(a.Seq) || h.ResultCode != -1 || !h.CreatedAt.Equal(t0) {
		t.Fatalf("head = %+v, %v", h, ok)
	}
	retry := t0.Add(time.Minute)
	if err := db.EBDOutFailed(ctx, a.Seq, "connection refused", retry); err != nil {
		t.Fatal(err)
	}
	h, _ = next(t, db)
	if h.Seq != a.Seq || h.Attempts != 1 || h.LastError != "connection refused" || !h.NextAttemptAt.Equal(retry) {
		t.Fatalf("after a failure the head = %+v", h)
	}
	clk.Advance(time.Minute)
	if err := db.EBDOutSent(ctx, a.Seq, 1, "接收解析及数据校验成功"); err != nil {
		t.Fatal(err)
	}
	if err := db.EBDOutSent(ctx, a.Seq, 1, ""); err == nil {
		t.Error("a packet was marked sent twice")
	}
	if err := db.EBDOutFailed(ctx, a.Seq, "late", retry); err == nil {
		t.Error("a sent packet was marked failed")
	}
	if n, oldest, err := db.EBDOutQueue(ctx); err != nil || n != 2 || !oldest.Equal(t0) {
		t.Errorf("after one of three was sent the queue holds %d, the oldest from %v (%v): want 2 from %v", n, oldest, err, t0)
	}
	h, _ = next(t, db)
	if h.Seq != b.Seq {
		t.Fatalf("after sending the first, the head is %d, want %d", h.Seq, b.Seq)
	}

	// A restart: the same database opened again.
	db.Close()
	db2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	db2.Now = clk.Now
	h, _ = next(t, db2)
	if h.Seq != b.Seq || string(h.Packet) != "tar of EBRDTState "+fmt.Sprint(b.Seq) {
		t.Fatalf("after reopening, the head = %+v", h)
	}
	d, _ := queue(t, db2, "EBMBrdLog", 0)
	if d.Seq <= c.Seq {
		t.Fatalf("after reopening, seq %d after %d", d.Seq, c.Seq)
	}
	all, err := db2.EBDOutbound(ctx, false, 10)
	if err != nil || len(all) != 4 {
		t.Fatalf("outbound = %d, %v", len(all), err)
	}
	if s := all[3]; s.Seq != a.Seq || s.ResultCode != 1 || s.ResultDesc != "接收解析及数据校验成功" || !s.SentAt.Equal(t0.Add(time.Minute)) || s.Attempts != 2 || s.Packet != nil {
		t.Fatalf("the sent packet reads %+v", s)
	}
	unsent, _ := db2.EBDOutbound(ctx, true, 10)
	if len(unsent) != 3 {
		t.Fatalf("unsent = %d, want 3", len(unsent))
	}
}

// TestEBDOutBuildFails: when the packet cannot be built (signed), nothing
// is queued.
func TestEBDOutBuildFails(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	boom := errors.New("no key")
	_, ok, err := db.EnqueueEBD(ctx, "EBRDTInfo", 0, "", func(int64) (string, []byte, error) { return "", nil, boom })
	if !errors.Is(err, boom) || ok {
		t.Fatalf("err = %v, queued %v", err, ok)
	}
	if _, ok := next(t, db); ok {
		t.Fatal("a packet that failed to build is in the queue")
	}
}

// TestEBDOutBroadcastOnce: a broadcast's log is queued once, and a
// broadcast whose log is queued is no longer unreported.
func TestEBDOutBroadcastOnce(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "aa")
	mk := func() store.Broadcast {
		b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
			Severity: 1, Repeat: 1, ExpiresAt: clk.Now().Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := mk()
	clk.Advance(time.Hour)
	b1, b2 := mk(), mk()
	ids := func() []int64 {
		bs, err := db.UnreportedBroadcasts(ctx, t0.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	if got := fmt.Sprint(ids()); got != fmt.Sprint([]int64{b1.ID, b2.ID}) {
		t.Fatalf("unreported = %s, want %d %d (not %d, made before since)", got, b1.ID, b2.ID, old.ID)
	}
	if _, ok := queue(t, db, "EBMBrdLog", b1.ID); !ok {
		t.Fatal("not queued")
	}
	built := false
	_, ok, err := db.EnqueueEBD(ctx, "EBMBrdLog", b1.ID, "", func(int64) (string, []byte, error) { built = true; return "x", nil, nil })
	if err != nil || ok || built {
		t.Fatalf("second log of a broadcast: queued %v, built %v, err %v", ok, built, err)
	}
	if got := fmt.Sprint(ids()); got != fmt.Sprint([]int64{b2.ID}) {
		t.Fatalf("unreported = %s, want %d", got, b2.ID)
	}
	// A broadcast made here takes the EBMID it is reported as, unless it
	// has one or another broadcast has it.
	if _, ok, err := db.EnqueueEBD(ctx, "EBMBrdLog", b2.ID, "010411010100000001202603010002", func(int64) (string, []byte, error) { return "y", nil, nil }); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, ok, err := db.EnqueueEBD(ctx, "EBMBrdLog", old.ID, "010411010100000001202603010002", func(int64) (string, []byte, error) { return "z", nil, nil }); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got, err := db.BroadcastByEBMID(ctx, "010411010100000001202603010002"); err != nil || got.ID != b2.ID {
		t.Fatalf("by EBMID: %d, %v; want %d", got.ID, err, b2.ID)
	}
	if got, _ := db.GetBroadcast(ctx, old.ID); got.EBMID != "" {
		t.Fatalf("a second broadcast took EBMID %s", got.EBMID)
	}
	// Packets of other types are not one per broadcast.
	queue(t, db, "EBRDTState", 0)
	if _, ok := queue(t, db, "EBRDTState", 0); !ok {
		t.Fatal("a second state report was not queued")
	}
}

func TestTerminalCodes(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	for _, step := range []struct {
		village, code string
		want          string
	}{
		{"110101001001", "061011010100100101", "map[110101001001:061011010100100101]"},
		{"110101001001", "061011010100100199", "map[110101001001:061011010100100199]"},
		{"110101001002", "061011010100100201", "map[110101001001:061011010100100199 110101001002:061011010100100201]"},
		{"110101001001", "", "map[110101001002:061011010100100201]"},
	} {
		if err := db.SetTerminalCode(ctx, step.village, step.code); err != nil {
			t.Fatal(err)
		}
		m, err := db.TerminalCodes(ctx)
		if err != nil || fmt.Sprint(m) != step.want {
			t.Fatalf("after %s=%q: %v, %v; want %s", step.village, step.code, m, err, step.want)
		}
	}
	if err := db.SetTerminalCode(ctx, "110101001001", "061011010100100201"); err == nil {
		t.Error("two boxes got the same resource code")
	}
	if err := db.SetTerminalCode(ctx, "999999999999", "061011010100100301"); err == nil {
		t.Error("a code for a village that does not exist")
	}
}

// TestLastEBDReceived: the upper platform's last heartbeat is the latest
// one acted on; one still being acted on, or refused, does not count.
func TestLastEBDReceived(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	const hb = "ConnectionCheck"
	if at, err := db.LastEBDReceived(ctx, hb); err != nil || !at.IsZero() {
		t.Fatalf("none received: %v %v", at, err)
	}
	claim := func(id string) {
		t.Helper()
		if _, ok, err := db.ClaimEBD(ctx, store.EBDInbound{EBDID: id, Src: "p", Type: hb}); err != nil || !ok {
			t.Fatalf("claim %s: %v %v", id, ok, err)
		}
	}
	claim("a")
	if err := db.FinishEBD(ctx, "a", 1, "ok", nil, 0); err != nil {
		t.Fatal(err)
	}
	first := clk.Now()
	clk.Advance(time.Minute)
	claim("b") // refused
	if err := db.FinishEBD(ctx, "b", 4, "bad", nil, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	claim("c") // still being acted on
	if at, err := db.LastEBDReceived(ctx, hb); err != nil || !at.Equal(first) {
		t.Fatalf("last heartbeat %v (%v); want %v, the one acted on", at, err, first)
	}
	if at, err := db.LastEBDReceived(ctx, "EBM"); err != nil || !at.IsZero() {
		t.Fatalf("no EBM received: %v %v", at, err)
	}
}
