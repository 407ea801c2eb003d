package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/delivery"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestCrashAtEveryOutboxStep kills the controller process (SIGKILL, with
// its embedded broker) at each step the publisher takes with an outbox
// entry, for each kind of change: the controller binary built with
// -tags crashtest kills itself where CUNXIANG_CRASH_AT says. The change
// is made through the HTTP API, whose request then fails; the controller
// is started again on the same data and ports without the crash, and
// the test finds out through the API what was accepted. Two boxes
// (in-process, reconnecting to the restarted broker) must then have
// heard of it exactly once: each reports received once, a broadcast
// started once (and finished, or cancelled if that was the change), a
// schedule played once, a withdrawn schedule gone; no command refused.
// Nothing half-sent may remain: read from the stopped controller's
// database, every outbox entry is sent, none dropped, and the topics of
// the change retain its command.
func TestCrashAtEveryOutboxStep(t *testing.T) {
	t.Parallel()
	bin := built(t, "controller", "crashtest")
	for _, step := range []string{delivery.StepTaken, delivery.StepSigned, delivery.StepPublished} {
		for _, kind := range []string{store.OutboxBroadcast, store.OutboxCancel, store.OutboxSchedule, store.OutboxWithdraw} {
			t.Run(step+":"+kind, func(t *testing.T) {
				t.Parallel()
				crashAt(t, bin, step, kind)
			})
		}
	}
}

// crashVillages are the two boxes of a crash test, in one township.
var crashVillages = []string{"110101001001", "110101001002"}

// crashAt runs one crash test: see TestCrashAtEveryOutboxStep.
func crashAt(t *testing.T, bin, step, kind string) {
	ctx := t.Context()
	pc := newProcessController(t, bin)
	ctrl := pc.start(t, "CUNXIANG_CRASH_AT="+step+":"+kind)
	h := pc.harness(t)
	csv := "code,name,township,lat,lon,device\n" +
		crashVillages[0] + ",东村,东镇,39.9,116.4,agent\n" +
		crashVillages[1] + ",西村,东镇,39.91,116.41,agent\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	fl := h.boxes(t, h.BrokerURL, "null", crashVillages...)
	waitFor(t, 20*time.Second, "both boxes connected", func() bool {
		return fl.Connected(crashVillages[0]) && fl.Connected(crashVillages[1])
	})
	pl := h.playlist(t, "断电测试", "断电")
	targets := playlists.Targets{Villages: crashVillages}

	// What comes before the change: the crash hook names only the
	// change's kind, so these are sent as usual.
	var id int64 // the broadcast or schedule the change is about
	switch kind {
	case store.OutboxCancel:
		// A broadcast sounding on both boxes (about 3 minutes of it).
		b, err := h.Client.CreateBroadcast(ctx, routineBroadcast(pl, targets, playlists.MaxRepeat))
		if err != nil {
			t.Fatal(err)
		}
		id = b.ID
		waitFor(t, 20*time.Second, "the broadcast sounding on both boxes", func() bool {
			return boxStatus(t, fl, id) == api.EventStarted+","+api.EventStarted
		})
	case store.OutboxWithdraw:
		at := time.Now().Add(time.Hour).Truncate(time.Second)
		sc, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl, Targets: targets, Timezone: "Asia/Shanghai", OnceAt: &at})
		if err != nil {
			t.Fatal(err)
		}
		sid := sc.ID
		id = sid
		waitFor(t, 20*time.Second, "both boxes to hold the schedule and its clip", func() bool { return fl.ReadyFor(sid) == 2 })
	}

	// The change, during which the controller dies.
	var err error
	var at time.Time // the schedule's occurrence
	switch kind {
	case store.OutboxBroadcast:
		_, err = h.Client.CreateBroadcast(ctx, routineBroadcast(pl, targets, 1))
	case store.OutboxCancel:
		_, err = h.Client.CancelBroadcast(ctx, id)
	case store.OutboxSchedule:
		// Soon after the restart; a box that hears of it late still plays
		// it (within its grace).
		at = time.Now().Add(6 * time.Second).Truncate(time.Second)
		_, err = h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl, Targets: targets, Timezone: "Asia/Shanghai", OnceAt: &at})
	case store.OutboxWithdraw:
		_, err = h.Client.WithdrawSchedule(ctx, id)
	}
	var apiErr *client.Error
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("the %s request was answered (err %v); want the connection lost as the controller dies at %s", kind, err, step)
	}
	waitFor(t, 10*time.Second, "the controller to die", ctrl.exited)
	if !killed(ctrl.err) {
		t.Fatalf("the controller exited with %v, want killed by SIGKILL at %s:%s", ctrl.err, step, kind)
	}
	died := time.Now()

	ctrl = pc.start(t)
	t.Logf("killed at %s:%s (request: %v); answering again %.1f s later", step, kind, err, time.Since(died).Seconds())
	id = accepted(t, h.Client, kind, id)

	// Both boxes show the change.
	switch kind {
	case store.OutboxBroadcast:
		waitFor(t, 30*time.Second, "the broadcast to finish on both boxes", func() bool {
			return boxStatus(t, fl, id) == api.EventFinished+","+api.EventFinished
		})
	case store.OutboxCancel:
		waitFor(t, 30*time.Second, "the broadcast cancelled on both boxes", func() bool {
			return boxStatus(t, fl, id) == api.EventCancelled+","+api.EventCancelled
		})
	case store.OutboxSchedule:
		waitCoverage(t, h, id, at, 40*time.Second, func(c api.Coverage) bool { return c.Played == 2 })
	case store.OutboxWithdraw:
		waitFor(t, 30*time.Second, "both boxes to let the schedule go", func() bool {
			return fl.Running(crashVillages[0]) && fl.Running(crashVillages[1]) && fl.ReadyFor(id) == 0
		})
	}
	waitReportsAcked(t, fl, 40*time.Second)
	if err := fl.Close(); err != nil {
		t.Errorf("stop boxes: %v", err)
	}
	if err := ctrl.stop(t); err != nil {
		t.Errorf("controller exited with %v after SIGTERM, want status 0", err)
	}

	if kind == store.OutboxBroadcast || kind == store.OutboxCancel {
		for _, v := range crashVillages {
			bs, err := fl.Broadcasts(v)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(bs, func(b fleet.Broadcast) bool { return b.ID == id })
			if i < 0 || bs[i].Plays != 1 {
				t.Errorf("box %s: broadcast %d %+v, want it begun to sound once", v, id, bs)
			}
		}
	}
	checkCrashStore(t, pc.dbPath(), kind, id)
}

// routineBroadcast plays the playlist repeat times; routine, it needs
// no second person.
func routineBroadcast(pl int64, targets playlists.Targets, repeat int) api.BroadcastRequest {
	return api.BroadcastRequest{PlaylistID: pl, Targets: targets, Priority: playlists.Routine, Severity: 4,
		Repeat: repeat, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour))}
}

// boxStatus is the broadcast's status on each crash-test box, joined by
// commas ("" for a box that never heard of it).
func boxStatus(tb testing.TB, fl *fleet.Fleet, id int64) string {
	tb.Helper()
	var out []string
	for _, v := range crashVillages {
		s, err := fl.BroadcastOutcome(v, id)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// killed reports whether a process ended by SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// accepted finds out through the API what the request lost in the crash
// did: the change committed before the publisher took it, so it must be
// there. It returns the broadcast's or schedule's id.
func accepted(tb testing.TB, c *client.Client, kind string, id int64) int64 {
	tb.Helper()
	ctx := context.Background()
	switch kind {
	case store.OutboxBroadcast, store.OutboxCancel:
		bs, err := c.Broadcasts(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		want := map[string]string{store.OutboxBroadcast: "", store.OutboxCancel: "cancelled"}[kind]
		if len(bs) != 1 || (want != "" && bs[0].State != want) || (want == "" && bs[0].State == "cancelled") {
			tb.Fatalf("broadcasts after the restart: %+v; want the one the %s request made", bs, kind)
		}
		return bs[0].ID
	default:
		ss, err := c.Schedules(ctx, true)
		if err != nil {
			tb.Fatal(err)
		}
		withdrawn := kind == store.OutboxWithdraw
		if len(ss) != 1 || (ss[0].WithdrawnAt != nil) != withdrawn {
			tb.Fatalf("schedules after the restart: %+v; want the one the %s request made (withdrawn: %t)", ss, kind, withdrawn)
		}
		return ss[0].ID
	}
}

// checkCrashStore reads the stopped controller's database: every outbox
// entry sent and none dropped, the change's entry once, its topics
// retaining its command, and, per box, the reports about the broadcast or
// schedule it expects, with no command refused.
func checkCrashStore(t *testing.T, path, kind string, id int64) {
	t.Helper()
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	rows, err := db.QueryContext(ctx, `SELECT kind, ref, topics, signed_at IS NOT NULL, sent_at IS NOT NULL, attempts, last_error FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string // the change's entries' topics
	var entries []string
	for rows.Next() {
		var k, ref, topics, lastErr string
		var signed, sent bool
		var attempts int
		if err := rows.Scan(&k, &ref, &topics, &signed, &sent, &attempts, &lastErr); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fmt.Sprintf("%s %s signed=%t sent=%t attempts=%d %q", k, ref, signed, sent, attempts, lastErr))
		if !signed || !sent || strings.HasPrefix(lastErr, "dropped") {
			t.Errorf("outbox entry %s %s is left half-sent: signed=%t sent=%t last error %q", k, ref, signed, sent, lastErr)
		}
		if k == kind && ref == store.IDRef(id) {
			var ts []string
			if err := json.Unmarshal([]byte(topics), &ts); err != nil {
				t.Fatal(err)
			}
			mine = append(mine, ts...)
			if len(ts) == 0 {
				t.Errorf("outbox entry %s %s names no topic", k, ref)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if n := strings.Count(strings.Join(entries, "\n"), kind+" "+store.IDRef(id)+" "); n != 1 {
		t.Errorf("the outbox holds %d entries for %s %d, want 1: %q", n, kind, id, entries)
	}
	want := map[string]string{store.OutboxBroadcast: api.KindBroadcastPut, store.OutboxCancel: api.KindBroadcastCancel,
		store.OutboxSchedule: api.KindSchedulePut, store.OutboxWithdraw: api.KindScheduleWithdraw}[kind]
	for _, topic := range mine {
		var k string
		if err := db.QueryRowContext(ctx, `SELECT kind FROM retained WHERE topic = $1`, topic).Scan(&k); err != nil || k != want {
			t.Errorf("topic %s retains %q (err %v), want %s", topic, k, err, want)
		}
	}

	// The reports, per box and type.
	col := "broadcast_id"
	if kind == store.OutboxSchedule || kind == store.OutboxWithdraw {
		col = "schedule_id"
	}
	got := map[string]map[string]int{}
	rows, err = db.QueryContext(ctx, `SELECT village, type, COUNT(*) FROM events WHERE `+col+` = $1 GROUP BY village, type`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v, typ string
		var n int
		if err := rows.Scan(&v, &typ, &n); err != nil {
			t.Fatal(err)
		}
		if got[v] == nil {
			got[v] = map[string]int{}
		}
		got[v][typ] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	expect := map[string]map[string]int{
		store.OutboxBroadcast: {api.EventReceived: 1, api.EventStarted: 1, api.EventFinished: 1},
		store.OutboxCancel:    {api.EventReceived: 1, api.EventStarted: 1, api.EventCancelled: 1},
		store.OutboxSchedule:  {api.EventReceived: 1, api.EventStarted: 1, api.EventFinished: 1},
		// Once for the schedule, once for its withdrawal.
		store.OutboxWithdraw: {api.EventReceived: 2},
	}[kind]
	for _, v := range crashVillages {
		for typ, n := range got[v] {
			if typ == api.EventDownloaded {
				delete(got[v], typ) // as often as the clip was fetched for it
				continue
			}
			if expect[typ] == 0 {
				t.Errorf("box %s reported %s %d times about %s %d, want never", v, typ, n, kind, id)
			}
		}
		for typ, n := range expect {
			if got[v][typ] != n {
				t.Errorf("box %s reported %s %d times about %s %d, want %d (all: %v)", v, typ, got[v][typ], kind, id, n, got[v])
			}
		}
	}
	var refused int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE type = $1`, api.EventRejected).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	if refused != 0 {
		t.Errorf("the boxes refused %d commands", refused)
	}
	t.Logf("outbox: %q; reports about %s %d: %v", entries, kind, id, got)
}
