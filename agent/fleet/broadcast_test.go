package fleet_test

// Broadcasts, cancellations and box config end to end: real boxes, a real
// broker, commands signed as the controller signs them.

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/agent/internal/cache"
	"github.com/cunxiang/cunxiang/agent/internal/planner"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// broadcastOf is a broadcast issued now on the controller's clock, valid for valid.
func broadcastOf(c *testController, id int64, p playlists.Priority, valid time.Duration, items ...playlists.Item) api.BroadcastState {
	now := c.Now()
	return api.BroadcastState{
		ID: id, Priority: p, Severity: 2, EventType: "flood",
		Playlist: playlists.Playlist{ID: 100 + id, Name: "broadcast", Items: items, GapMS: 50},
		IssuedAt: now, ExpiresAt: now.Add(valid),
	}
}

// one returns the single event of a kind, failing if there is not exactly one.
func one(tb testing.TB, evs []api.Event, what string) api.Event {
	tb.Helper()
	if len(evs) != 1 {
		tb.Fatalf("%d %s events, want 1: %+v", len(evs), what, evs)
	}
	return evs[0]
}

// outcome checks a box's record of a broadcast.
func outcome(tb testing.TB, f *fleet.Fleet, village string, id int64, status string, plays int) {
	tb.Helper()
	bs, err := f.Broadcasts(village)
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range bs {
		if b.ID == id {
			if b.Status != status || b.Plays != plays {
				tb.Fatalf("broadcast %d on %s: %s after %d plays, want %s after %d", id, village, b.Status, b.Plays, status, plays)
			}
			return
		}
	}
	tb.Fatalf("box %s never heard of broadcast %d", village, id)
}

// captures returns what a wav:DIR box played, clip by clip, in order.
func captures(tb testing.TB, dir string) [][]int16 {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wav"))
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(names)
	var out [][]int16
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		pcm, err := cache.Decode(data)
		if err != nil {
			tb.Fatalf("%s: %v", n, err)
		}
		out = append(out, pcm)
	}
	return out
}

// atVolume is pcm as a box plays it at percent: scaled toward zero.
func atVolume(pcm []int16, percent int) []int16 {
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		out[i] = int16(int32(v) * int32(percent) / 100)
	}
	return out
}

func TestEmergencyInterruptsRoutineMidPlay(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	routine := c.AddClip(1, tone(3000, 11))
	alarm := c.AddClip(2, tone(300, 12))
	c.PutSchedule(api.VillageGroup(villageA), onceAt(1, villageA, c.Now().Add(2*time.Second), routine))
	waitFor(t, 10*time.Second, "routine started", func() bool { return len(c.Find(villageA, api.EventStarted, 1)) == 1 })

	c.PutBroadcast(api.VillageGroup(villageA), broadcastOf(c, 7, playlists.Emergency, time.Minute, alarm))
	waitFor(t, 10*time.Second, "emergency finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 7)) == 1 })

	started := one(t, c.Find(villageA, api.EventStarted, 1), "routine started")
	partial := one(t, c.Find(villageA, api.EventPartial, 1), "routine partial")
	if partial.Occurrence == nil || !partial.Occurrence.Equal(*started.Occurrence) || !strings.Contains(partial.Reason, "interrupted by broadcast 7 (emergency)") {
		t.Fatalf("partial %+v", partial)
	}
	if cut := partial.At.Sub(started.At); cut > 2500*time.Millisecond {
		t.Fatalf("routine cut %s after it started: not mid-play of a 3 s clip", cut)
	}
	if got := c.Find(villageA, api.EventFinished, 1); len(got) != 0 {
		t.Fatalf("routine reported finished too: %+v", got)
	}
	eStart := one(t, c.FindBroadcast(villageA, api.EventStarted, 7), "emergency started")
	if eStart.Seq < partial.Seq || eStart.At.Sub(partial.At) > 500*time.Millisecond || eStart.Test {
		t.Fatalf("emergency started %+v after partial %+v", eStart, partial)
	}
	// The routine occurrence is not resumed.
	time.Sleep(3 * time.Second)
	if got := c.Find(villageA, api.EventStarted, 1); len(got) != 1 {
		t.Fatalf("routine started %d times", len(got))
	}
	outcome(t, f, villageA, 7, api.EventFinished, 1)
	if s, _ := f.BroadcastOutcome(villageA, 7); s != api.EventFinished {
		t.Fatalf("BroadcastOutcome = %q", s)
	}
}

func TestCancelStopsPlaybackAndAWaitingBroadcastNeverStarts(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	long := c.AddClip(1, tone(5000, 21))
	short := c.AddClip(2, tone(300, 22))
	g := api.VillageGroup(villageA)

	c.PutBroadcast(g, broadcastOf(c, 1, playlists.Urgent, time.Minute, long))
	waitFor(t, 10*time.Second, "broadcast 1 started", func() bool { return len(c.FindBroadcast(villageA, api.EventStarted, 1)) == 1 })
	c.PutBroadcast(g, broadcastOf(c, 2, playlists.Urgent, time.Minute, short)) // waits: equal priority
	waitFor(t, 5*time.Second, "broadcast 2 ready", func() bool { return f.ReadyForBroadcast(2) == 1 })
	c.CancelBroadcast(g, 2)
	c.CancelBroadcast(g, 1)
	waitFor(t, 5*time.Second, "both cancelled", func() bool {
		return len(c.FindBroadcast(villageA, api.EventCancelled, 1)) == 1 && len(c.FindBroadcast(villageA, api.EventCancelled, 2)) == 1
	})
	// The loudspeaker is free at once: a new broadcast of the same
	// priority does not wait out the rest of the 5 s clip.
	c.PutBroadcast(g, broadcastOf(c, 3, playlists.Urgent, time.Minute, short))
	waitFor(t, 10*time.Second, "broadcast 3 finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 3)) == 1 })

	started1 := one(t, c.FindBroadcast(villageA, api.EventStarted, 1), "broadcast 1 started")
	cancelled1 := one(t, c.FindBroadcast(villageA, api.EventCancelled, 1), "broadcast 1 cancelled")
	started3 := one(t, c.FindBroadcast(villageA, api.EventStarted, 3), "broadcast 3 started")
	if d := started3.At.Sub(cancelled1.At); d > time.Second {
		t.Fatalf("next broadcast started %s after the cancel: playback did not stop within a second", d)
	}
	if d := started3.At.Sub(started1.At); d > 4*time.Second {
		t.Fatalf("playback of the 5 s clip went on for %s", d)
	}
	for _, typ := range []string{api.EventFinished, api.EventPartial} {
		if got := c.FindBroadcast(villageA, typ, 1); len(got) != 0 {
			t.Fatalf("cancelled broadcast also reported %s: %+v", typ, got)
		}
	}
	if got := c.FindBroadcast(villageA, api.EventStarted, 2); len(got) != 0 {
		t.Fatalf("cancelled waiting broadcast started: %+v", got)
	}
	outcome(t, f, villageA, 1, api.EventCancelled, 1)
	outcome(t, f, villageA, 2, api.EventCancelled, 0)

	// A cancellation of a broadcast the box never heard of: remembered, not reported.
	c.CancelBroadcast(g, 4)
	waitFor(t, 5*time.Second, "cancellation 4 applied", func() bool { s, _ := f.BroadcastOutcome(villageA, 4); return s == api.EventCancelled })
	if got := c.FindBroadcast(villageA, api.EventCancelled, 4); len(got) != 0 {
		t.Fatalf("reported a cancellation of an unknown broadcast: %+v", got)
	}
}

func TestExpiredBroadcastIsNeverPlayedByABoxThatReconnectsLate(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	clip := c.AddClip(1, tone(300, 31))
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	b := broadcastOf(c, 5, playlists.Emergency, time.Second, clip)
	c.PutBroadcast(api.VillageGroup(villageA), b)
	waitFor(t, 5*time.Second, "broadcast expired", func() bool { return c.Now().After(b.ExpiresAt.Add(200 * time.Millisecond)) })

	if err := f.StartBox(villageA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "expired reported", func() bool { return len(c.FindBroadcast(villageA, api.EventExpired, 5)) == 1 })
	ex := one(t, c.FindBroadcast(villageA, api.EventExpired, 5), "expired")
	if !strings.Contains(ex.Reason, "before the box received it") {
		t.Fatalf("expired reason %q", ex.Reason)
	}
	one(t, c.FindBroadcast(villageA, api.EventReceived, 5), "received")

	// Once, across a restart: the retained broadcast comes back and is a duplicate.
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	if err := f.StartBox(villageA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reconnected", func() bool { return f.Connected(villageA) })
	time.Sleep(500 * time.Millisecond)
	one(t, c.FindBroadcast(villageA, api.EventExpired, 5), "expired")
	if got := c.FindBroadcast(villageA, api.EventStarted, 5); len(got) != 0 {
		t.Fatalf("expired broadcast started: %+v", got)
	}
	outcome(t, f, villageA, 5, api.EventExpired, 0)
}

func TestBoxOfflineDuringAnEmergencyPlaysItOnReconnect(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	clip := c.AddClip(1, tone(300, 41))
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	c.PutBroadcast(api.VillageGroup(villageA), broadcastOf(c, 6, playlists.Emergency, time.Minute, clip))
	time.Sleep(300 * time.Millisecond) // it happens while the box is away
	if err := f.StartBox(villageA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "finished after reconnecting", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 6)) == 1 })
	got := types(c.Events(villageA))
	want := []string{api.EventReceived, api.EventDownloaded, api.EventStarted, api.EventFinished}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// Never twice, across a restart.
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	if err := f.StartBox(villageA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reconnected", func() bool { return f.Connected(villageA) })
	time.Sleep(800 * time.Millisecond)
	if got := c.FindBroadcast(villageA, api.EventStarted, 6); len(got) != 1 {
		t.Fatalf("started %d times", len(got))
	}
	outcome(t, f, villageA, 6, api.EventFinished, 1)
}

// window is a quiet window from a minute before to ten minutes after now
// (shifted by `from` minutes), as HH:MM in Shanghai.
func window(c *testController, from time.Duration) playlists.QuietWindow {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	now := c.Now().In(loc).Add(from)
	return playlists.QuietWindow{From: now.Add(-time.Minute).Format("15:04"), To: now.Add(10 * time.Minute).Format("15:04")}
}

func TestQuietHoursSilenceRoutineButNotEmergency(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	// Both villages are in township 110101001.
	f := startFleet(t, c, villageA, villageB)
	clip := c.AddClip(1, tone(300, 51))
	quiet := window(c, 0)
	c.PutConfig(api.TownshipGroup(api.TownshipCode(villageA)), api.BoxConfig{QuietHours: []playlists.QuietWindow{quiet}, Timezone: "Asia/Shanghai"})
	// A: only its volume is its own; the township's quiet hours stand.
	c.PutConfig(api.VillageGroup(villageA), api.BoxConfig{Volume: 90})
	// B: its own quiet hours, later today, replace the township's.
	c.PutConfig(api.VillageGroup(villageB), api.BoxConfig{QuietHours: []playlists.QuietWindow{window(c, 2*time.Hour)}})
	waitFor(t, 5*time.Second, "configs applied", func() bool {
		a, _ := f.Config(villageA)
		b, _ := f.Config(villageB)
		return a.Volume == 90 && len(a.QuietHours) == 1 && a.QuietHours[0] == quiet &&
			len(b.QuietHours) == 1 && b.QuietHours[0] != quiet && b.Timezone == "Asia/Shanghai"
	})

	at := c.Now().Add(2 * time.Second)
	c.PutSchedule(api.VillageGroup(villageA), onceAt(1, villageA, at, clip))
	c.PutSchedule(api.VillageGroup(villageB), onceAt(2, villageB, at, clip))
	waitFor(t, 10*time.Second, "A skipped, B played", func() bool {
		return len(c.Find(villageA, api.EventFailed, 1)) == 1 && len(c.Find(villageB, api.EventFinished, 2)) == 1
	})
	skipped := one(t, c.Find(villageA, api.EventFailed, 1), "failed")
	if want := "skipped: quiet hours " + quiet.String(); skipped.Reason != want {
		t.Fatalf("reason %q, want %q", skipped.Reason, want)
	}
	if got := c.Find(villageA, api.EventStarted, 1); len(got) != 0 {
		t.Fatalf("routine sounded in quiet hours: %+v", got)
	}
	if occ, _ := f.Occurrences(villageA); len(occ) != 1 || occ[0].Outcome != api.EventFailed {
		t.Fatalf("occurrences %+v", occ)
	}

	c.PutBroadcast(api.TownshipGroup(api.TownshipCode(villageA)), broadcastOf(c, 8, playlists.Emergency, time.Minute, clip))
	waitFor(t, 10*time.Second, "emergency finished on A", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 8)) == 1 })
	// A routine broadcast waits for quiet hours to end (and would expire first).
	c.PutBroadcast(api.VillageGroup(villageA), broadcastOf(c, 9, playlists.Routine, time.Minute, clip))
	waitFor(t, 5*time.Second, "routine broadcast received", func() bool { return f.ReadyForBroadcast(9) == 1 })
	time.Sleep(500 * time.Millisecond)
	if got := c.FindBroadcast(villageA, api.EventStarted, 9); len(got) != 0 {
		t.Fatalf("routine broadcast sounded in quiet hours: %+v", got)
	}
	outcome(t, f, villageA, 9, api.EventReceived, 0)
}

func TestEqualPriorityWaitsItsTurnFirstIssuedFirst(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	startFleet(t, c, villageA)
	first := c.AddClip(1, tone(1500, 61))
	clip := c.AddClip(2, tone(300, 62))
	g := api.VillageGroup(villageA)
	c.PutBroadcast(g, broadcastOf(c, 1, playlists.Urgent, time.Minute, first))
	waitFor(t, 10*time.Second, "broadcast 1 started", func() bool { return len(c.FindBroadcast(villageA, api.EventStarted, 1)) == 1 })
	// Heard in the other order than issued: issue time decides.
	third := broadcastOf(c, 3, playlists.Urgent, time.Minute, clip)
	second := broadcastOf(c, 2, playlists.Urgent, time.Minute, clip)
	second.IssuedAt = third.IssuedAt.Add(-100 * time.Millisecond)
	c.PutBroadcast(g, third)
	c.PutBroadcast(g, second)
	waitFor(t, 10*time.Second, "all finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 3)) == 1 })

	var order []string
	for _, e := range c.Events(villageA) {
		if e.Type == api.EventStarted || e.Type == api.EventFinished || e.Type == api.EventPartial {
			order = append(order, e.Type+":"+strconv.FormatInt(e.BroadcastID, 10))
		}
	}
	want := "started:1 finished:1 started:2 finished:2 started:3 finished:3"
	if strings.Join(order, " ") != want {
		t.Fatalf("order %v, want %s", order, want)
	}
}

func TestTestBroadcastBeginsWithTheToneAndReportsAreMarked(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	dir := t.TempDir()
	startFleetTo(t, c, "wav:"+dir, villageA)
	pcm := tone(300, 71)
	clip := c.AddClip(1, pcm)
	b := broadcastOf(c, 4, playlists.Urgent, time.Minute, clip)
	b.Test = true
	c.PutBroadcast(api.VillageGroup(villageA), b)
	waitFor(t, 10*time.Second, "test broadcast finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 4)) == 1 })

	got := captures(t, filepath.Join(dir, villageA))
	if len(got) != 2 || !slices.Equal(got[0], planner.TestTone()) || !slices.Equal(got[1], pcm) {
		t.Fatalf("captured %d clips; want the test tone, then the clip, bit-exact", len(got))
	}
	evs := c.Events(villageA)
	if ts := types(evs); !slices.Equal(ts, []string{api.EventReceived, api.EventDownloaded, api.EventStarted, api.EventFinished}) {
		t.Fatalf("events %v", ts)
	}
	for _, e := range evs {
		if !e.Test || e.BroadcastID != 4 {
			t.Errorf("report %+v: want test=true for broadcast 4", e)
		}
	}
}

func TestVolumeScaling(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	dir := t.TempDir()
	f := startFleetTo(t, c, "wav:"+dir, villageA)
	pcm := tone(200, 81)
	clip := c.AddClip(1, pcm)
	g := api.VillageGroup(villageA)
	c.PutConfig(g, api.BoxConfig{Volume: 50})
	waitFor(t, 5*time.Second, "config applied", func() bool { cfg, _ := f.Config(villageA); return cfg.Volume == 50 })

	c.PutSchedule(g, onceAt(1, villageA, c.Now().Add(1500*time.Millisecond), clip))
	waitFor(t, 10*time.Second, "schedule finished", func() bool { return len(c.Find(villageA, api.EventFinished, 1)) == 1 })
	own := broadcastOf(c, 2, playlists.Urgent, time.Minute, clip)
	own.Volume = 80
	c.PutBroadcast(g, own)
	waitFor(t, 10*time.Second, "broadcast 2 finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 2)) == 1 })
	full := broadcastOf(c, 3, playlists.Emergency, time.Minute, clip)
	full.Volume, full.ForceFullVolume = 30, true
	c.PutBroadcast(g, full)
	waitFor(t, 10*time.Second, "broadcast 3 finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 3)) == 1 })

	got := captures(t, filepath.Join(dir, villageA))
	if len(got) != 3 {
		t.Fatalf("captured %d clips, want 3", len(got))
	}
	for i, want := range [][]int16{atVolume(pcm, 50), atVolume(pcm, 80), pcm} {
		if !slices.Equal(got[i], want) {
			t.Errorf("clip %d not at the expected volume (50%%, 80%%, forced 100%% bit-exact)", i)
		}
	}
}

func TestBroadcastCutOffByAStopPlaysAgainFromTheStartAfterRestart(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	clip := c.AddClip(1, tone(2000, 91))
	c.PutBroadcast(api.VillageGroup(villageA), broadcastOf(c, 3, playlists.Urgent, time.Minute, clip))
	waitFor(t, 10*time.Second, "started", func() bool { return len(c.FindBroadcast(villageA, api.EventStarted, 3)) == 1 })
	if err := f.StopBox(villageA); err != nil {
		t.Fatal(err)
	}
	outcome(t, f, villageA, 3, api.EventPartial, 1)
	if err := f.StartBox(villageA); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "finished after the restart", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 3)) == 1 })
	got := types(c.Events(villageA))
	want := []string{api.EventReceived, api.EventDownloaded, api.EventStarted, api.EventPartial, api.EventStarted, api.EventFinished}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if r := one(t, c.FindBroadcast(villageA, api.EventPartial, 3), "partial").Reason; r != "interrupted: agent stopped during playback" {
		t.Fatalf("partial reason %q", r)
	}
	outcome(t, f, villageA, 3, api.EventFinished, 2)
}

// A box's reports of one moment travel as one message: a broadcast whose
// clip is cached is received, downloaded and started within milliseconds,
// and received and downloaded wait for started (when a whole county
// reports at once, a third of the messages for the broker and the
// controller), but no longer: the linger here is 5 s, and the three must
// arrive well before it ends.
func TestBroadcastReportsTravelTogether(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	startFleetWith(t, c, fleet.Options{ReportLinger: 5 * time.Second}, villageA)
	clip := c.AddClip(1, tone(1500, 31))
	g := api.VillageGroup(villageA)
	c.PutBroadcast(g, broadcastOf(c, 1, playlists.Emergency, time.Minute, clip)) // downloads the clip
	waitFor(t, 10*time.Second, "first broadcast finished", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 1)) == 1 })

	c.PutBroadcast(g, broadcastOf(c, 2, playlists.Emergency, time.Minute, clip))
	waitFor(t, 2500*time.Millisecond, "second broadcast's started report, well within the 5 s linger", func() bool {
		return len(c.FindBroadcast(villageA, api.EventStarted, 2)) == 1
	})
	for _, b := range c.Batches(villageA) {
		var types []string
		for _, e := range b {
			if e.BroadcastID == 2 {
				types = append(types, e.Type)
			}
		}
		if len(types) == 0 {
			continue
		}
		slices.Sort(types)
		if want := []string{api.EventDownloaded, api.EventReceived, api.EventStarted}; !slices.Equal(types, want) {
			t.Fatalf("the first message about broadcast 2 carried %v, want %v together (all batches: %v)", types, want, c.Batches(villageA))
		}
		return
	}
	t.Fatal("no message about broadcast 2")
}
