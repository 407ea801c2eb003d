package fleet_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

const (
	villageA = "110101001001"
	villageB = "110101001002"
)

// types lists event types in seq order.
func types(evs []api.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestPlaysOnceReportsInOrderAndKeepsReportsUntilAcked(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{})
	f := startFleet(t, c, villageA)
	waitFor(t, 5*time.Second, "online presence", func() bool {
		p, ok := c.LastPresence(villageA)
		return ok && p.Status == api.Online
	})

	item := c.AddClip(7, tone(300, 1))
	at := c.Now().Add(2 * time.Second)
	st := onceAt(1, villageA, at, item)
	c.PutSchedule(api.VillageGroup(villageA), st)
	waitFor(t, 10*time.Second, "finished", func() bool { return len(c.Find(villageA, api.EventFinished, 1)) == 1 })

	evs := c.Events(villageA)
	want := []string{api.EventReceived, api.EventDownloaded, api.EventStarted, api.EventFinished}
	if got := types(evs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Every batch arrived in seq order, starting at 1 with no gap.
	var next int64 = 1
	for _, b := range c.Batches(villageA) {
		for _, e := range b {
			if e.Seq != next {
				t.Fatalf("got seq %d, want %d (batches %v)", e.Seq, next, c.Batches(villageA))
			}
			next++
		}
	}
	started := evs[2]
	if started.Occurrence == nil || !started.Occurrence.Equal(*st.Schedule.OnceAt) || started.ScheduleID != 1 {
		t.Fatalf("started event %+v, want occurrence %s of schedule 1", started, st.Schedule.OnceAt)
	}
	if late := started.At.Sub(*st.Schedule.OnceAt); late < 0 || late > 1500*time.Millisecond {
		t.Errorf("started %s after the occurrence", late)
	}
	if evs[1].AudioID != 7 {
		t.Errorf("downloaded event for audio %d, want 7", evs[1].AudioID)
	}

	// Nothing acked yet: everything stays in the outbox, across a restart.
	if n, err := f.OutboxLen(villageA); err != nil || n != 4 {
		t.Fatalf("outbox %d (%v), want 4", n, err)
	}
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "offline presence after a clean stop", func() bool {
		p, _ := c.LastPresence(villageA)
		return p.Status == api.Offline
	})
	if n, err := f.OutboxLen(villageA); err != nil || n != 4 {
		t.Fatalf("outbox of stopped box %d (%v), want 4", n, err)
	}
	sent := len(c.Batches(villageA))
	if err := f.StartBox(villageA); err != nil {
		t.Fatal(err)
	}
	// After reconnecting it sends all four again, in order.
	waitFor(t, 10*time.Second, "resend after restart", func() bool {
		var got []int64
		for _, b := range c.Batches(villageA)[sent:] {
			for _, e := range b {
				got = append(got, e.Seq)
			}
		}
		return len(got) >= 4 && got[0] == 1 && got[1] == 2 && got[2] == 3 && got[3] == 4
	})
	// The retained schedule came back: a duplicate, no new report, and the
	// occurrence did not play again.
	time.Sleep(300 * time.Millisecond) // let anything wrongly re-played surface
	if evs := c.Events(villageA); len(evs) != 4 {
		t.Fatalf("after restart the box reported %v", types(evs))
	}
	if played, err := f.Played(villageA); err != nil || len(played) != 1 {
		t.Fatalf("played %v (%v), want one occurrence", played, err)
	}

	// The ack drops them.
	c.Ack(villageA, 3)
	waitFor(t, 5*time.Second, "outbox down to 1", func() bool { n, _ := f.OutboxLen(villageA); return n == 1 })
	c.Ack(villageA, 4)
	waitFor(t, 5*time.Second, "outbox empty", func() bool { n, _ := f.OutboxLen(villageA); return n == 0 })
}

func TestRefusesForgedReplayedExpiredAndMisdirectedCommands(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	item := c.AddClip(1, tone(200, 2))
	at := c.Now().Add(2 * time.Second)
	gA := api.VillageGroup(villageA)

	// Forged: a well-formed command signed by someone else's key.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	forged := c.Command(api.KindSchedulePut, gA)
	st := onceAt(11, villageA, at, item)
	forged.Schedule = &st
	c.Publish(c.topics.Schedule(gA, 11), c.Sign(forged, other))

	// Expired.
	expired := c.Command(api.KindSchedulePut, gA)
	st12 := onceAt(12, villageA, at, item)
	expired.Schedule = &st12
	expired.IssuedAt = c.Now().Add(-2 * time.Hour)
	expired.ExpiresAt = c.Now().Add(-time.Minute)
	c.Publish(c.topics.Schedule(gA, 12), c.Sign(expired, nil))

	// Genuine, but signed for village B and copied to A's topic.
	misdirected := c.Command(api.KindSchedulePut, api.VillageGroup(villageB))
	st13 := onceAt(13, villageA, at, item)
	misdirected.Schedule = &st13
	c.Publish(c.topics.Schedule(gA, 13), c.Sign(misdirected, nil))

	// Genuine put, then its withdrawal, then the put replayed.
	topic, put := c.PutSchedule(gA, onceAt(14, villageA, at, item))
	waitFor(t, 5*time.Second, "put received", func() bool { return len(c.Find(villageA, api.EventReceived, 14)) == 1 })
	c.Withdraw(gA, 14)
	waitFor(t, 5*time.Second, "withdrawal received", func() bool { return len(c.Find(villageA, api.EventReceived, 14)) == 2 })
	c.Publish(topic, put)

	wantReasons := map[string]string{"signature": "forged", "expired": "expired", "another group": "misdirected", "replay": "replayed"}
	waitFor(t, 5*time.Second, "four refusals", func() bool { return len(c.Find(villageA, api.EventRejected, 0)) >= 4 })
	for _, e := range c.Find(villageA, api.EventRejected, 0) {
		for frag := range wantReasons {
			if strings.Contains(e.Reason, frag) {
				delete(wantReasons, frag)
			}
		}
	}
	if len(wantReasons) > 0 {
		t.Fatalf("no refusal reported for %v; rejections: %+v", wantReasons, c.Find(villageA, api.EventRejected, 0))
	}

	// Past the time all of them named: nothing played, nothing started.
	waitFor(t, 10*time.Second, "occurrence time passed", func() bool { return c.Now().After(at.Add(1500 * time.Millisecond)) })
	if got := c.Find(villageA, api.EventStarted, 0); len(got) != 0 {
		t.Fatalf("refused or withdrawn schedules played: %+v", got)
	}
	if played, _ := f.Played(villageA); len(played) != 0 {
		t.Fatalf("played %v", played)
	}
}

func TestPlaysOnControllerTimeWhenBoxClockIsSevenMinutesBehind(t *testing.T) {
	t.Parallel()
	const skew = 7 * time.Minute
	c := newController(t, controllerOptions{skew: skew, autoAck: true})
	f := startFleet(t, c, villageA)
	off, err := f.ClockOffset(villageA)
	if err != nil || off < skew-time.Second || off > skew+time.Second {
		t.Fatalf("box measured offset %s (%v), want about %s", off, err, skew)
	}
	// Commands are issued on the controller's clock, 7 min ahead of the
	// box's: a box that ignored the offset would refuse them as issued in
	// the future, or play 7 minutes late.
	item := c.AddClip(3, tone(200, 3))
	at := c.Now().Add(2 * time.Second)
	c.PutSchedule(api.VillageGroup(villageA), onceAt(21, villageA, at, item))
	waitFor(t, 10*time.Second, "finished", func() bool { return len(c.Find(villageA, api.EventFinished, 21)) == 1 })
	started := c.Find(villageA, api.EventStarted, 21)[0]
	occ := at.Truncate(time.Second)
	if late := started.At.Sub(occ); late < -200*time.Millisecond || late > 1500*time.Millisecond {
		t.Fatalf("started at %s (controller time), occurrence %s: %s off", started.At, occ, late)
	}
	if rej := c.Find(villageA, api.EventRejected, 0); len(rej) > 0 {
		t.Fatalf("refused: %+v", rej)
	}
}

func TestMissingOrCorruptAudioFailsTheOccurrenceAndNeverPlays(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	// A missing clip may still arrive within the grace; keep it short.
	f := startFleetWith(t, c, fleet.Options{Grace: 2 * time.Second}, villageA)
	missing := playlists.Item{AudioID: 404, SHA256: strings.Repeat("ab", 32), DurationMS: 100, Repeat: 1}
	corrupt := c.AddClip(5, tone(200, 5))
	corrupt.SHA256 = strings.Repeat("cd", 32) // the controller serves other bytes than the command names
	at := c.Now().Add(2 * time.Second)
	c.PutSchedule(api.VillageGroup(villageA), onceAt(31, villageA, at, missing))
	c.PutSchedule(api.VillageGroup(villageA), onceAt(32, villageA, at, corrupt))
	waitFor(t, 10*time.Second, "both failed", func() bool {
		return len(c.Find(villageA, api.EventFailed, 31)) == 1 && len(c.Find(villageA, api.EventFailed, 32)) == 1
	})
	if r := c.Find(villageA, api.EventFailed, 31)[0].Reason; r != "audio 404 not downloaded within 2s of the occurrence" {
		t.Errorf("reason %q", r)
	}
	if r := c.Find(villageA, api.EventFailed, 32)[0].Reason; r != "audio 5 not downloaded within 2s of the occurrence" {
		t.Errorf("reason %q", r)
	}
	var mismatch bool
	for _, e := range c.Find(villageA, api.EventFailed, 0) {
		mismatch = mismatch || e.AudioID == 5 && strings.Contains(e.Reason, "sha256 mismatch")
	}
	if !mismatch {
		t.Errorf("hash mismatch not reported: %+v", c.Find(villageA, api.EventFailed, 0))
	}
	if got := c.Find(villageA, api.EventStarted, 0); len(got) != 0 {
		t.Fatalf("started: %+v", got)
	}
	occ, _ := f.Occurrences(villageA)
	if len(occ) != 2 || occ[0].Outcome != api.EventFailed || occ[1].Outcome != api.EventFailed {
		t.Fatalf("occurrences %+v", occ)
	}
}

func TestBrokerRestartResubscribesAndResendsUnacked(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{})
	f := startFleet(t, c, villageA)
	item := c.AddClip(2, tone(100, 4))
	c.PutSchedule(api.VillageGroup(villageA), onceAt(41, villageA, c.Now().Add(time.Hour), item))
	waitFor(t, 5*time.Second, "received and downloaded", func() bool { return len(c.Events(villageA)) == 2 })
	sent := len(c.Batches(villageA))

	c.RestartBroker()
	waitFor(t, 15*time.Second, "reconnected", func() bool { return f.Connected(villageA) })
	// Not acked before the restart: sent again, in order.
	waitFor(t, 5*time.Second, "resend", func() bool {
		bs := c.Batches(villageA)[sent:]
		return len(bs) > 0 && bs[0][0].Seq == 1
	})
	// Subscribed again (clean session): a new command is heard.
	c.Withdraw(api.VillageGroup(villageA), 41)
	waitFor(t, 5*time.Second, "withdrawal after restart", func() bool { return len(c.Find(villageA, api.EventReceived, 41)) == 2 })
	c.Ack(villageA, 3)
	waitFor(t, 5*time.Second, "outbox empty", func() bool { n, _ := f.OutboxLen(villageA); return n == 0 })
}

func TestKeepsPlayingWithTheBrokerGone(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{})
	f := startFleet(t, c, villageA)
	item := c.AddClip(2, tone(100, 6))
	at := c.Now().Add(2 * time.Second)
	c.PutSchedule(api.VillageGroup(villageA), onceAt(51, villageA, at, item))
	waitFor(t, 5*time.Second, "received and downloaded", func() bool { return len(c.Events(villageA)) == 2 })
	if n := f.ReadyFor(51); n != 1 {
		t.Fatalf("ReadyFor = %d, want 1", n)
	}
	if n := f.ReadyFor(52); n != 0 {
		t.Fatalf("ReadyFor(unknown) = %d", n)
	}
	c.StopBroker()
	waitFor(t, 5*time.Second, "disconnected", func() bool { return !f.Connected(villageA) })
	waitFor(t, 10*time.Second, "played offline", func() bool { p, _ := f.Played(villageA); return len(p) == 1 })
	// Started and finished wait in the outbox for the broker.
	waitFor(t, 5*time.Second, "finished queued", func() bool { n, _ := f.OutboxLen(villageA); return n == 4 })
	start := time.Now()
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stopping a box that is reconnecting took %s", d)
	}
}

func TestStartFailsClearlyOnRefusedEnrollment(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{})
	_, err := fleet.Start(t.Context(), fleet.Options{
		Controller: c.http.URL,
		Dir:        t.TempDir(),
		Boxes:      []fleet.Box{{Village: villageA, EnrollToken: "wrong"}},
	})
	if err == nil || !strings.Contains(err.Error(), "wrong or already used") {
		t.Fatalf("err = %v, want the controller's message", err)
	}
}

// TestPresenceIsRepeatedWhileConnected: a connected box says "online"
// again every PresenceEvery, so a presence the broker or the controller
// lost is repaired without a reconnect.
func TestPresenceIsRepeatedWhileConnected(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{})
	startFleetWith(t, c, fleet.Options{PresenceEvery: 300 * time.Millisecond}, villageA)
	online := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, p := range c.presence[villageA] {
			if p.Status == api.Online {
				n++
			}
		}
		return n
	}
	// One on connect, then one about every 300 ms (±10 %).
	waitFor(t, 5*time.Second, "four online presences", func() bool { return online() >= 4 })
}
