package box

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/planner"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

func TestScheduleSoundsAtItsSlot(t *testing.T) {
	r := newRig(t)
	r.start()
	clip := r.clip(1, 200, 1000, false) // on the controller only
	slot := t0.Add(2 * time.Minute)
	r.apply(r.putSchedule(once(7, slot, clip)))
	r.waitReport(api.EventDownloaded, "s", 7)
	if !r.a.Ready(7) {
		t.Fatal("schedule not ready after its clip was downloaded")
	}
	if n := r.out.count(); n != 0 {
		t.Fatalf("%d clips played before the slot", n)
	}

	r.advanceUntil(2*time.Minute, "schedule finished", func() bool { return len(r.find(api.EventFinished, "s", 7)) > 0 })
	plays := r.out.list()
	if len(plays) != 1 || plays[0].at.Before(slot) || plays[0].at.After(slot.Add(planner.DefaultGrace)) {
		t.Fatalf("plays %+v, want one at %s", plays, slot)
	}
	started := r.find(api.EventStarted, "s", 7)
	if len(started) != 1 || started[0].Occurrence == nil || !started[0].Occurrence.Equal(slot) {
		t.Fatalf("started reports %+v, want one for the occurrence at %s", started, slot)
	}
	// Reports come in the order things happened.
	var order []string
	for _, e := range r.events() {
		if e.ScheduleID == 7 {
			order = append(order, e.Type)
		}
	}
	if got, want := strings.Join(order, " "), "received downloaded started finished"; got != want {
		t.Fatalf("reports %q, want %q", got, want)
	}
	if hs, err := r.a.Handled(); err != nil || len(hs) != 1 || hs[0].Outcome != api.EventStarted {
		t.Fatalf("handled %+v, %v", hs, err)
	}
}

func TestWithdrawal(t *testing.T) {
	slot := t0.Add(time.Minute)
	t.Run("before its slot, it never sounds", func(t *testing.T) {
		r := newRig(t)
		clip := r.clip(1, 100, 1000, true)
		r.start()
		r.apply(r.putSchedule(once(1, slot, clip)))
		r.apply(r.putSchedule(once(2, slot.Add(time.Second), clip)))
		r.apply(r.withdraw(1))
		if r.a.Ready(1) {
			t.Fatal("a withdrawn schedule is still held")
		}
		// Schedule 2 comes a second after 1 would have: once it has
		// played, 1 had its chance.
		r.advanceUntil(time.Minute, "schedule 2 finished", func() bool { return len(r.find(api.EventFinished, "s", 2)) > 0 })
		if got := r.find(api.EventStarted, "s", 1); len(got) != 0 {
			t.Fatalf("withdrawn schedule started: %+v", got)
		}
		if n := r.out.count(); n != 1 {
			t.Fatalf("%d clips played, want schedule 2's only", n)
		}
		if got := r.find(api.EventReceived, "s", 1); len(got) != 2 {
			t.Fatalf("want the put and the withdrawal reported received, got %+v", got)
		}
	})
	t.Run("while it sounds, it stops", func(t *testing.T) {
		r := newRig(t)
		clip := r.clip(1, 1000, 1000, true)
		r.start()
		r.out.holdAll()
		r.apply(r.putSchedule(once(1, slot, clip)))
		r.advanceUntil(time.Minute, "schedule sounding", func() bool { return r.out.count() == 1 })
		r.apply(r.withdraw(1))
		if ev := r.waitReport(api.EventFailed, "s", 1); ev.Reason != planner.ErrWithdrawn.Error() {
			t.Fatalf("failed report %+v, want reason %q", ev, planner.ErrWithdrawn)
		}
		if p := r.out.list()[0]; !p.ended || p.err == nil {
			t.Fatalf("the clip was not cut off: %+v", p)
		}
	})
}

func TestOldAndForgedCommandsChangeNothing(t *testing.T) {
	r := newRig(t)
	clip := r.clip(1, 100, 1000, true)
	r.start()
	first := r.putSchedule(once(5, t0.Add(time.Minute), clip))
	r.apply(first)
	moved := t0.Add(3 * time.Minute)
	second := r.putSchedule(once(5, moved, clip)) // the controller moved it
	r.apply(second)
	r.waitReport(api.EventDownloaded, "s", 5)

	n := len(r.events())
	r.apply(second) // its retained copy again, after a reconnect
	if got := r.events(); len(got) != n {
		t.Fatalf("a duplicate command was reported: %+v", got[n:])
	}

	r.apply(first) // the superseded version, replayed
	r.apply(first) // and again: refused, but reported once
	rej := r.find(api.EventRejected, "s", 5)
	if len(rej) != 1 || !strings.Contains(rej[0].Reason, "replayed command") {
		t.Fatalf("rejected reports %+v, want one replay", rej)
	}

	old := r.withdraw(5)
	old.Seq = first.Seq // signed before the second put
	r.apply(old)
	if rej := r.find(api.EventRejected, "s", 5); len(rej) != 2 {
		t.Fatalf("an old withdrawal was not refused: %+v", rej)
	}
	if !r.a.Ready(5) {
		t.Fatal("an old withdrawal removed the schedule")
	}

	forged := r.message(r.withdraw(5))
	forged.Payload = []byte(strings.Replace(string(forged.Payload), `"sig":"`, `"sig":"AAAA`, 1))
	r.a.handle(forged)
	if rej := r.find(api.EventRejected, "s", 0); len(rej) != 1 || !strings.Contains(rej[0].Reason, "signature") {
		t.Fatalf("forged command: rejected reports %+v", rej)
	}

	// It plays once, at the second version's time.
	r.advanceUntil(3*time.Minute, "schedule finished", func() bool { return len(r.find(api.EventFinished, "s", 5)) > 0 })
	started := r.find(api.EventStarted, "s", 5)
	if len(started) != 1 || !started[0].Occurrence.Equal(moved) {
		t.Fatalf("started %+v, want the occurrence at %s only", started, moved)
	}
}

func TestEmergencyCutsOffAScheduleAndItsCancelStopsIt(t *testing.T) {
	r := newRig(t)
	song := r.clip(1, 1000, 1000, true)
	alarm := r.clip(2, 1000, 2000, true)
	r.start()
	r.out.holdAll()
	r.apply(r.putSchedule(once(1, t0.Add(time.Minute), song)))
	r.advanceUntil(time.Minute, "schedule sounding", func() bool { return r.out.count() == 1 })

	r.apply(r.putBroadcast(r.broadcast(9, playlists.Emergency, alarm)))
	if ev := r.waitReport(api.EventPartial, "s", 1); !strings.Contains(ev.Reason, "interrupted by broadcast 9") {
		t.Fatalf("partial report %+v", ev)
	}
	r.waitReport(api.EventStarted, "b", 9)
	waitFor(t, "the alarm sounding", func() bool {
		p := r.out.list()
		return len(p) == 2 && p[1].pcm[0] == 2000 && !p[1].ended
	})
	if !r.a.ReadyForBroadcast(9) {
		t.Fatal("a sounding broadcast is not held")
	}

	r.apply(r.cancelBroadcast(9))
	r.waitReport(api.EventCancelled, "b", 9)
	waitFor(t, "the alarm stopped", func() bool { p := r.out.list()[1]; return p.ended && p.err != nil })
	if r.a.ReadyForBroadcast(9) {
		t.Fatal("a cancelled broadcast is still held")
	}
	bs, err := r.a.Broadcasts()
	if err != nil || len(bs) != 1 || bs[0].Status != api.EventCancelled || bs[0].Plays != 1 {
		t.Fatalf("broadcasts %+v, %v", bs, err)
	}
	if got := r.find(api.EventFinished, "b", 9); len(got) != 0 {
		t.Fatalf("a cancelled broadcast finished: %+v", got)
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	r := newRig(t)
	clip := r.clip(1, 100, 10000, true)
	long := r.clip(2, 1000, 1000, true)
	r.start()
	r.apply(r.putConfig(api.VillageGroup(village), api.BoxConfig{Volume: 40}))
	slot := t0.Add(10 * time.Minute)
	r.apply(r.putSchedule(once(3, slot, clip)))
	r.out.holdAll()
	r.apply(r.putBroadcast(r.broadcast(4, playlists.Urgent, long)))
	waitFor(t, "the broadcast sounding", func() bool { return r.out.count() == 1 })

	r.stop() // a clean stop cuts it off
	if ev := r.find(api.EventPartial, "b", 4); len(ev) != 1 || ev[0].Reason != planner.ErrStopped.Error() {
		t.Fatalf("partial reports %+v", ev)
	}
	// Then a power cut while it sounded again: the store says started.
	db, err := store.Open(filepath.Join(r.dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := db.Advance(4, api.Event{Type: api.EventStarted, At: r.clock.Now(), BroadcastID: 4}); !ok || err != nil {
		t.Fatalf("advance: %v %v", ok, err)
	}
	db.Close()
	r.out.release()

	r.start() // no command: all it knows comes from its store
	if cfg := r.a.Config(); cfg.Volume != 40 {
		t.Fatalf("config after restart %+v", cfg)
	}
	if ev := r.find(api.EventPartial, "b", 4); len(ev) != 2 || ev[1].Reason != ErrRestarted {
		t.Fatalf("partial reports %+v, want the restart's", ev)
	}
	r.waitReport(api.EventFinished, "b", 4)
	if bs, err := r.a.Broadcasts(); err != nil || len(bs) != 1 || bs[0].Plays != 3 {
		t.Fatalf("broadcasts %+v, %v: want it played a third time, from the start", bs, err)
	}
	r.advanceUntil(10*time.Minute, "schedule finished", func() bool { return len(r.find(api.EventFinished, "s", 3)) > 0 })
	plays := r.out.list()
	last := plays[len(plays)-1]
	if last.at.Before(slot) || last.pcm[0] != 4000 {
		t.Fatalf("schedule played at %s at level %d, want from %s at 4000 (volume 40)", last.at, last.pcm[0], slot)
	}
}

func TestConfigReachesThePlanner(t *testing.T) {
	r := newRig(t)
	clip := r.clip(1, 100, 1000, true)
	r.start()
	town := api.TownshipGroup(api.TownshipCode(village))
	r.apply(r.putConfig(town, api.BoxConfig{Timezone: "UTC", QuietHours: []playlists.QuietWindow{{From: "08:00", To: "09:00"}}, Volume: 70}))
	r.apply(r.putConfig(api.VillageGroup(village), api.BoxConfig{Volume: 30}))
	if cfg := r.a.Config(); cfg.Volume != 30 || cfg.Timezone != "UTC" || len(cfg.QuietHours) != 1 {
		t.Fatalf("merged config %+v", cfg)
	}
	r.apply(r.putSchedule(once(1, t0.Add(time.Minute), clip)))
	r.advanceUntil(time.Minute, "the occurrence dealt with", func() bool { return len(r.find(api.EventFailed, "s", 1)) > 0 })
	if ev := r.find(api.EventFailed, "s", 1)[0]; !strings.Contains(ev.Reason, "skipped: quiet hours 08:00") || r.out.count() != 0 {
		t.Fatalf("failed report %+v, %d plays: want it skipped for quiet hours", ev, r.out.count())
	}
}

// slowStore is the store with its download reports held until release.
type slowStore struct {
	downloadStore
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *slowStore) MarkDownloaded(scheduleID, audioID int64, ev api.Event) (bool, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return s.downloadStore.MarkDownloaded(scheduleID, audioID, ev)
}

func TestDownloadsDoNotHoldCommandsUp(t *testing.T) {
	r := newRig(t)
	song := r.clip(1, 100, 1000, true)
	alarm := r.clip(2, 100, 2000, true)
	slow := &slowStore{entered: make(chan struct{}), release: make(chan struct{})}
	r.beforeRun = func(a *Agent) { slow.downloadStore = a.downloads; a.downloads = slow }
	r.start()
	defer close(slow.release)

	r.send(r.message(r.putSchedule(once(1, t0.Add(time.Hour), song))))
	waitFor(t, "the schedule's download report under way", func() bool {
		select {
		case <-slow.entered:
			return true
		default:
			return false
		}
	})
	// While that report's disk sync hangs, an emergency comes and sounds.
	r.send(r.message(r.putBroadcast(r.broadcast(9, playlists.Emergency, alarm))))
	r.waitReport(api.EventFinished, "b", 9)
	if got := r.find(api.EventDownloaded, "s", 1); len(got) != 0 {
		t.Fatalf("the held report was made: %+v", got)
	}
}

func TestWithdrawalCancelsItsDownload(t *testing.T) {
	r := newRig(t)
	r.start()
	clip := r.clip(1, 100, 1000, false)
	open := r.ctrl.gate(1)
	defer open()
	r.apply(r.putSchedule(once(1, t0.Add(time.Hour), clip)))
	waitFor(t, "the download asked for", func() bool { served, _, _ := r.ctrl.counts(1); return served == 1 })
	r.apply(r.withdraw(1))
	waitFor(t, "the download given up", func() bool { _, cancelled, _ := r.ctrl.counts(1); return cancelled == 1 })
	open()
	if got := r.find(api.EventDownloaded, "s", 1); len(got) != 0 {
		t.Fatalf("downloaded reports %+v for a withdrawn schedule", got)
	}
}

func TestABadDownloadIsReportedOnce(t *testing.T) {
	r := newRig(t)
	r.start()
	clip := r.clip(1, 100, 1000, false)
	r.ctrl.addClip(1, []byte("RIFF not the clip"))
	r.apply(r.putSchedule(once(1, t0.Add(time.Hour), clip)))
	var failed []api.Event
	waitFor(t, "the mismatch reported", func() bool {
		failed = nil
		for _, e := range r.events() {
			if e.Type == api.EventFailed && e.AudioID == 1 {
				failed = append(failed, e)
			}
		}
		return len(failed) > 0
	})
	waitFor(t, "a retry", func() bool { served, _, _ := r.ctrl.counts(1); return served >= 2 })
	if len(failed) != 1 || !strings.Contains(failed[0].Reason, "sha256 mismatch") {
		t.Fatalf("failed reports %+v", failed)
	}
}

func TestReportsArePublishedUntilAcked(t *testing.T) {
	r := newRig(t)
	clip := r.clip(1, 100, 1000, true)
	r.start()
	events := r.topics.Events(village)
	sent := func() []api.Event {
		var out []api.Event
		for _, raw := range r.link.published(events) {
			b, err := api.DecodeEventBatch(village, raw)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Events...)
		}
		return out
	}
	r.apply(r.putSchedule(once(1, t0.Add(time.Hour), clip)))
	waitFor(t, "reports published", func() bool { return len(sent()) >= 2 }) // received, downloaded
	got := sent()
	for i, e := range got {
		if e.Seq != int64(i+1) {
			t.Fatalf("published out of order: %+v", got)
		}
	}

	// Not acked: sent again after ResendAfter (30 s).
	n := len(r.link.published(events))
	r.advanceUntil(30*time.Second, "reports sent again", func() bool { return len(r.link.published(events)) > n })

	// An ack for another village is refused; the box's own drops them.
	other := "110101001002"
	wrong := r.command(api.KindReportsAck, api.VillageGroup(other))
	wrong.Ack = &api.ReportsAck{Village: other, Seq: 100}
	r.send(r.message(wrong))
	waitFor(t, "the foreign ack refused", func() bool { return len(r.find(api.EventRejected, "s", 0)) == 1 })
	last, err := r.a.LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	ack := r.command(api.KindReportsAck, api.VillageGroup(village))
	ack.Ack = &api.ReportsAck{Village: village, Seq: last}
	r.send(r.message(ack))
	waitFor(t, "outbox empty", func() bool { n, err := r.a.OutboxLen(); return err == nil && n == 0 })

	// A reconnect says online again; a stop says offline.
	presence := r.topics.Presence(village)
	n = len(r.link.published(presence))
	r.link.connect()
	waitFor(t, "online again", func() bool { return len(r.link.published(presence)) > n })
	r.stop()
	all := r.link.published(presence)
	var p api.Presence
	if err := json.Unmarshal(all[len(all)-1], &p); err != nil || p.Status != api.Offline {
		t.Fatalf("last presence %s, %v", all[len(all)-1], err)
	}
}

func TestClockIsMeasuredAndKept(t *testing.T) {
	r := newRig(t)
	r.ctrl.set(func(c *controller) { c.offset = 90 * time.Second })
	r.start()
	if off := r.a.ClockOffset(); off != 90*time.Second {
		t.Fatalf("offset %s, want 90s", off)
	}
	if now := r.a.Now(); !now.Equal(r.clock.Now().Add(90 * time.Second)) {
		t.Fatalf("Now %s, want the controller's %s", now, r.clock.Now().Add(90*time.Second))
	}
	var p api.Presence
	if err := json.Unmarshal(r.link.published(r.topics.Presence(village))[0], &p); err != nil || p.ClockOffsetMS != 90000 || p.Status != api.Online {
		t.Fatalf("presence %+v, %v", p, err)
	}

	// Back after a restart with the controller away: the last offset stands,
	// and the box measures again once the controller answers.
	r.stop()
	r.ctrl.set(func(c *controller) { c.clockErr = true; c.offset = 2 * time.Minute })
	r.start()
	if off := r.a.ClockOffset(); off != 90*time.Second {
		t.Fatalf("offset after a restart %s, want the stored 90s", off)
	}
	r.ctrl.set(func(c *controller) { c.clockErr = false })
	// The retry comes 5 s on. (The fake clock may move while a measurement
	// is on its way, which the measurement takes for network delay.)
	r.advanceUntil(5*time.Second, "measured again", func() bool { return (r.a.ClockOffset() - 2*time.Minute).Abs() < 2*time.Second })
}

func TestLateBroadcastIsConfirmedFirst(t *testing.T) {
	tests := []struct {
		name     string
		status   string // the controller's answer; "" for none
		priority playlists.Priority
		plays    bool
		reason   string // of the rejected report when it does not play
	}{
		{"still active", api.CheckActive, playlists.Urgent, true, ""},
		{"cancelled meanwhile", api.CheckCancelled, playlists.Emergency, false, "the controller says it is cancelled"},
		{"no answer, emergency", "", playlists.Emergency, true, ""},
		{"no answer, routine", "", playlists.Routine, false, "could not confirm it is still active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.options = func(o *Options) { o.ConfirmTimeout = time.Second }
			clip := r.clip(1, 100, 1000, true)
			r.start()
			if tt.status != "" {
				r.ctrl.set(func(c *controller) { c.status[3] = tt.status })
			}
			b := r.broadcast(3, tt.priority, clip)
			b.IssuedAt = r.clock.Now().Add(-2 * time.Minute) // retained while the box was away
			c := r.putBroadcast(b)
			c.IssuedAt = b.IssuedAt
			r.apply(c)
			if tt.plays {
				r.waitReport(api.EventFinished, "b", 3)
			} else {
				ev := r.waitReport(api.EventRejected, "b", 3)
				if !strings.Contains(ev.Reason, tt.reason) {
					t.Fatalf("rejected %+v, want %q", ev, tt.reason)
				}
				if got := r.find(api.EventStarted, "b", 3); len(got) != 0 || r.out.count() != 0 {
					t.Fatalf("a disowned broadcast sounded: %+v", got)
				}
			}
			if _, _, asked := r.ctrl.counts(3); asked != 1 {
				t.Fatalf("controller asked %d times", asked)
			}
		})
	}
}

func TestNewRefusesWhatItCannotRun(t *testing.T) {
	r := newRig(t)
	out := &output{clock: r.clock}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"bad village", Options{Village: "11010100100", Controller: r.ctrl.URL, DataDir: r.dir, Output: out}, "12-digit"},
		{"no output", Options{Village: village, Controller: r.ctrl.URL, DataDir: r.dir}, "required"},
		{"another village's data", Options{Village: "110101001002", Controller: r.ctrl.URL, DataDir: r.dir, Output: out}, "belongs to village " + village},
		{"not enrolled", Options{Village: village, Controller: r.ctrl.URL, DataDir: t.TempDir(), Output: out}, "not enrolled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestLiveSessionRefusedWithAReport: this agent does not play live
// sessions yet; a genuine live.start (or live.stop) must not be ignored in
// silence but refused with a report naming the broadcast and the reason,
// once per message however often the broker delivers it.
func TestLiveSessionRefusedWithAReport(t *testing.T) {
	r := newRig(t)
	r.start()
	now := r.clock.Now()
	start := r.command(api.KindLiveStart, api.TownshipGroup(api.TownshipCode(village)))
	start.Live = &api.LiveStart{
		BroadcastID: 31, Session: api.NewLiveSessionID(), Priority: playlists.Emergency, Severity: 1,
		Codec: api.CodecOpus, FrameMS: 20, Key: api.NewLiveKey(), StartedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	m := r.message(start)
	r.a.handle(m)
	r.a.handle(m) // its retained copy again, after a reconnect
	rej := r.find(api.EventRejected, "b", 31)
	if len(rej) != 1 || !strings.Contains(rej[0].Reason, api.LiveNotPlayed) {
		t.Fatalf("rejected reports %+v, want one with %q", rej, api.LiveNotPlayed)
	}
	stop := r.command(api.KindLiveStop, start.Target)
	stop.LiveStop = &api.LiveStop{BroadcastID: 31, Session: start.Live.Session, LastSeq: 100}
	r.apply(stop)
	if rej := r.find(api.EventRejected, "b", 31); len(rej) != 2 {
		t.Fatalf("rejected reports %+v, want the stop refused too", rej)
	}
}
