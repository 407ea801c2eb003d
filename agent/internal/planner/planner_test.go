package planner

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// journal is an in-memory Journal.
type journal struct {
	mu      sync.Mutex
	handled map[string]bool
	bcasts  map[int64]string // broadcast id → status, as the store keeps it
	events  []api.Event
}

func newJournal() *journal { return &journal{handled: map[string]bool{}, bcasts: map[int64]string{}} }

// heard records a broadcast as the box's store does when it is put.
func (j *journal) heard(id int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.bcasts[id] = api.EventReceived
}

func (j *journal) status(id int64) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bcasts[id]
}

func (j *journal) Advance(id int64, ev api.Event) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch j.bcasts[id] {
	case "", api.EventFinished, api.EventCancelled, api.EventExpired, api.EventFailed:
		return false, nil
	}
	j.bcasts[id] = ev.Type
	j.events = append(j.events, ev)
	return true, nil
}

func key(id int64, occ time.Time) string { return fmt.Sprint(id, "/", playlists.OccurrenceKey(occ)) }

func (j *journal) Handled(id int64, occ time.Time) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.handled[key(id, occ)], nil
}

func (j *journal) Claim(id int64, occ time.Time, ev api.Event) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.handled[key(id, occ)] {
		return false, nil
	}
	j.handled[key(id, occ)] = true
	j.events = append(j.events, ev)
	return true, nil
}

func (j *journal) Append(ev api.Event) (api.Event, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, ev)
	return ev, nil
}

func (j *journal) list() []api.Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]api.Event(nil), j.events...)
}

// summary is "type:schedule[:reason]" per event; broadcasts are "type:b<id>".
func (j *journal) summary() string {
	var s []string
	for _, e := range j.list() {
		x := fmt.Sprintf("%s:%d", e.Type, e.ScheduleID)
		if e.BroadcastID != 0 {
			x = fmt.Sprintf("%s:b%d", e.Type, e.BroadcastID)
		}
		if e.Reason != "" {
			x += ":" + e.Reason
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

type audio map[string][]int16

func (a audio) Load(sum string) ([]int16, error) {
	if pcm, ok := a[sum]; ok {
		return pcm, nil
	}
	return nil, fmt.Errorf("clip %s: %w", sum, fs.ErrNotExist)
}

func (a audio) Has(sum string) bool { _, ok := a[sum]; return ok }

// output records when each clip started and ended; a clip of n samples
// lasts n/SampleRate seconds.
type output struct {
	mu    sync.Mutex
	plays []play
}

type play struct {
	start, end time.Time
	samples    int
	pcm        []int16
	err        error
}

func (o *output) Play(ctx context.Context, pcm []int16) error {
	start := time.Now()
	t := time.NewTimer(time.Duration(len(pcm)) * time.Second / playlists.SampleRate)
	defer t.Stop()
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
	}
	o.mu.Lock()
	o.plays = append(o.plays, play{start: start, end: time.Now(), samples: len(pcm), pcm: pcm, err: err})
	o.mu.Unlock()
	return err
}

func (o *output) list() []play {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]play(nil), o.plays...)
}

// clock is the real clock; inside a synctest bubble, the bubble's.
type clock struct{}

func (clock) Now() time.Time { return time.Now().UTC() }

func (clock) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

func seconds(s float64) []int16 { return make([]int16, int(s*playlists.SampleRate)) }

func item(id int64, repeat int) playlists.Item {
	return playlists.Item{AudioID: id, SHA256: fmt.Sprintf("%064d", id), DurationMS: 1000, Repeat: repeat}
}

func once(id int64, at time.Time, gapMS int64, items ...playlists.Item) api.ScheduleState {
	at = at.UTC()
	return api.ScheduleState{
		Schedule: playlists.Schedule{ID: id, PlaylistID: id, Targets: playlists.Targets{All: true}, OnceAt: &at},
		Playlist: playlists.Playlist{ID: id, Name: "p", Items: items, GapMS: gapMS},
	}
}

type rig struct {
	j      *journal
	out    *output
	p      *Planner
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs a planner inside the synctest bubble; stop ends it.
func start(t *testing.T, clips Audio) *rig {
	r := &rig{j: newJournal(), out: &output{}, done: make(chan struct{})}
	var err error
	r.p, err = New(Options{Journal: r.j, Audio: clips, Output: r.out, Clock: clock{}, Grace: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.p.Run(ctx); close(r.done) }()
	return r
}

func (r *rig) stop() { r.cancel(); <-r.done }

func TestPlaysAtTheOccurrenceWithRepeatsAndGaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(1), item(2, 0).SHA256: seconds(0.5)})
		defer r.stop()
		r.p.Put(once(7, t0.Add(10*time.Second), 250, item(1, 2), item(2, 1)), t0)
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := len(r.out.list()); n != 0 {
			t.Fatalf("%d clips played before the occurrence", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		plays := r.out.list()
		want := []time.Duration{10 * time.Second, 11250 * time.Millisecond, 12500 * time.Millisecond}
		if len(plays) != len(want) {
			t.Fatalf("%d plays, want %d", len(plays), len(want))
		}
		for i, p := range plays {
			if got := p.start.Sub(t0); got != want[i] {
				t.Errorf("play %d started at +%s, want +%s", i, got, want[i])
			}
		}
		if got := r.j.summary(); got != "started:7 finished:7" {
			t.Fatalf("events %s", got)
		}
	})
}

func TestLateStartWithinGraceMissedReportedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(1)})
		defer r.stop()
		earlier := now.Add(-time.Hour)                                     // the box had these schedules before it went down
		r.p.Put(once(1, now.Add(-2*time.Minute), 0, item(1, 1)), earlier)  // booting: starts late
		r.p.Put(once(2, now.Add(-10*time.Minute), 0, item(1, 1)), earlier) // too old: missed
		r.p.Put(once(3, now.Add(-10*time.Minute), 0, item(1, 1)), now)     // arrived after its time: nothing
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if plays := r.out.list(); len(plays) != 1 || !plays[0].start.Equal(now) {
			t.Fatalf("plays %+v, want one at once", plays)
		}
		want := "failed:2:missed: box was not running at " + now.Add(-10*time.Minute).UTC().Format(time.RFC3339) + " started:1 finished:1"
		if got := r.j.summary(); got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
		r.p.Wake()
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := r.j.summary(); got != want {
			t.Fatalf("events changed on later scans: %s", got)
		}
	})
}

func TestOverlappingOccurrenceWaitsForTheEarlier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(5), item(2, 0).SHA256: seconds(1)})
		defer r.stop()
		r.p.Put(once(1, t0.Add(time.Second), 0, item(1, 1)), t0)
		r.p.Put(once(2, t0.Add(2*time.Second), 0, item(2, 1)), t0)
		time.Sleep(time.Minute)
		synctest.Wait()
		plays := r.out.list()
		if len(plays) != 2 || plays[0].samples != len(seconds(5)) || plays[1].start.Sub(t0) != 6*time.Second {
			t.Fatalf("plays %+v: want the 5 s clip at +1 s, then the other at +6 s", plays)
		}
		if got := r.j.summary(); got != "started:1 finished:1 started:2 finished:2" {
			t.Fatalf("events %s", got)
		}
	})
}

func TestWithdrawalStopsPlaybackAndForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(10)})
		defer r.stop()
		r.p.Put(once(1, t0.Add(time.Second), 0, item(1, 1)), t0)
		time.Sleep(3 * time.Second)
		r.p.Remove(1)
		synctest.Wait()
		plays := r.out.list()
		if len(plays) != 1 || plays[0].err == nil || plays[0].end.Sub(t0) != 3*time.Second {
			t.Fatalf("plays %+v: want one cut at +3 s", plays)
		}
		if got := r.j.summary(); got != "started:1 failed:1:"+ErrWithdrawn.Error() {
			t.Fatalf("events %s", got)
		}
	})
}

func TestNeverPlaysAHandledOccurrenceOrMissingAudio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(1)})
		defer r.stop()
		at := t0.Add(time.Second)
		r.j.handled[key(1, at)] = true // played before a restart
		r.p.Put(once(1, at, 0, item(1, 1)), t0)
		r.p.Put(once(2, at, 0, item(1, 1), item(9, 1)), t0)
		time.Sleep(6 * time.Minute) // past the 5 min grace
		synctest.Wait()
		if plays := r.out.list(); len(plays) != 0 {
			t.Fatalf("plays %+v", plays)
		}
		if got := r.j.summary(); got != "failed:2:audio 9 not downloaded within 5m0s of the occurrence" {
			t.Fatalf("events %s", got)
		}
	})
}

func TestRecurringScheduleOnControllerDays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble starts at 2000-01-01 00:00 UTC = 08:00 in Shanghai.
		r := start(t, audio{item(1, 0).SHA256: seconds(1)})
		defer r.stop()
		st := api.ScheduleState{
			Schedule: playlists.Schedule{ID: 4, PlaylistID: 4, Targets: playlists.Targets{All: true}, Timezone: "Asia/Shanghai",
				Recurring: &playlists.Recurrence{Times: []string{"08:30", "18:00"}, StartDate: "2000-01-01", EndDate: "2000-01-02"}},
			Playlist: playlists.Playlist{ID: 4, Name: "p", Items: []playlists.Item{item(1, 1)}},
		}
		t0 := time.Now()
		r.p.Put(st, t0)
		time.Sleep(3 * 24 * time.Hour)
		synctest.Wait()
		var got []string
		for _, p := range r.out.list() {
			got = append(got, p.start.Sub(t0).String())
		}
		if want := "30m0s 10h0m0s 24h30m0s 34h0m0s"; strings.Join(got, " ") != want {
			t.Fatalf("played at +%v, want +%s", got, want)
		}
	})
}

// lateAudio is a clip store whose clips arrive while the planner runs.
type lateAudio struct {
	mu sync.Mutex
	m  audio
}

func (a *lateAudio) Load(sum string) ([]int16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Load(sum)
}

func (a *lateAudio) Has(sum string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Has(sum)
}

func (a *lateAudio) add(sum string, pcm []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[sum] = pcm
}

// A box that comes up just after an occurrence (or whose download is
// slow) plays it late once the clip is on disk, within the grace, instead
// of failing it at once.
func TestOccurrenceWaitsForItsClipWithinTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		clips := &lateAudio{m: audio{}}
		r := start(t, clips)
		defer r.stop()
		r.p.Put(once(4, t0.Add(time.Second), 0, item(1, 1)), t0)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := r.j.summary(); got != "" || len(r.out.list()) != 0 {
			t.Fatalf("before the clip arrived: events %q, plays %d", got, len(r.out.list()))
		}
		clips.add(item(1, 0).SHA256, seconds(1))
		r.p.Wake() // as a finished download does
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if plays := r.out.list(); len(plays) != 1 {
			t.Fatalf("plays %+v, want the late occurrence once", plays)
		}
		if got := r.j.summary(); got != "started:4 finished:4" {
			t.Fatalf("events %s", got)
		}
	})
}

// TestIdleSchedulerStaysAlive: with nothing to play for hours the loop
// still goes round every BeatEvery, so the watchdog does not take an idle
// box for a stuck one; before Run it is not alive.
func TestIdleSchedulerStaysAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, audio{})
		synctest.Wait()
		if !r.p.Alive(3 * BeatEvery) {
			t.Fatal("not alive after starting")
		}
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if !r.p.Alive(3 * BeatEvery) {
			t.Fatal("an idle scheduler looked stuck after 3 h")
		}
		r.stop()
	})
	p, err := New(Options{Journal: newJournal(), Audio: audio{}, Output: &output{}, Clock: clock{}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Alive(time.Hour) {
		t.Error("alive before Run")
	}
}
