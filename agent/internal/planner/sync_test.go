package planner

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// slowJournal is a journal on a slow disk: every Advance takes sync.
type slowJournal struct {
	*journal
	sync time.Duration
}

func (j slowJournal) Advance(id int64, ev api.Event) (bool, error) {
	time.Sleep(j.sync)
	return j.journal.Advance(id, ev)
}

// startSlow is start with a slow journal.
func startSlow(t *testing.T, clips Audio, sync time.Duration) *rig {
	r := &rig{j: newJournal(), out: &output{}, done: make(chan struct{})}
	var err error
	r.p, err = New(Options{Journal: slowJournal{r.j, sync}, Audio: clips, Output: r.out, Clock: clock{}, Grace: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.p.Run(ctx); close(r.done) }()
	return r
}

func TestEmergencySoundsWithoutWaitingForTheJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := startSlow(t, audio{item(1, 0).SHA256: seconds(5)}, 2*time.Second)
		defer r.stop()
		r.put(bc(1, playlists.Emergency, t0, item(1, 1)), t0)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.startTimes(t0), "0s"; got != want {
			t.Fatalf("clip started at %s, want %s: the sound waited for the disk", got, want)
		}
		evs := r.j.list()
		if len(evs) != 2 || evs[0].Type != api.EventStarted || !evs[0].At.Equal(t0.UTC()) || evs[1].Type != api.EventFinished {
			t.Fatalf("events %+v: want started (at the moment it began to sound), then finished", evs)
		}
	})
}

func TestBroadcastSoundsWhileItIsStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(5)})
		defer r.stop()
		stored := make(chan struct{})
		r.p.PutBroadcastWhileStoring(bc(1, playlists.Emergency, t0, item(1, 1)), t0, stored)
		time.Sleep(time.Second) // the box's disk sync
		synctest.Wait()
		if got := r.j.summary(); got != "" {
			t.Fatalf("journaled %q before the broadcast was stored", got)
		}
		r.j.heard(1)
		close(stored)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.startTimes(t0), "0s"; got != want {
			t.Fatalf("clip started at %s, want %s", got, want)
		}
		if p := r.out.list()[0]; p.err != nil || p.samples != len(seconds(5)) {
			t.Fatalf("play %+v: want all of it", p)
		}
		if got, want := r.j.summary(), "started:b1 finished:b1"; got != want {
			t.Fatalf("events %s, want %s", got, want)
		}
	})
}

func TestSoundStopsWhenTheJournalSaysTheBroadcastIsOver(t *testing.T) {
	for _, status := range []string{"", api.EventCancelled} { // storing failed; cancelled meanwhile
		t.Run("status="+status, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				r := startSlow(t, audio{item(1, 0).SHA256: seconds(5)}, time.Second)
				defer r.stop()
				if status != "" {
					r.j.mu.Lock()
					r.j.bcasts[1] = status
					r.j.mu.Unlock()
				}
				r.p.PutBroadcast(bc(1, playlists.Emergency, t0, item(1, 1)), t0)
				time.Sleep(time.Minute)
				synctest.Wait()
				plays := r.out.list()
				if len(plays) != 1 || plays[0].err == nil || plays[0].end.Sub(t0) != time.Second {
					t.Fatalf("plays %+v: want the sound cut when the journal answered, at +1 s", plays)
				}
				if got := r.j.summary(); got != "" {
					t.Fatalf("events %q, want none", got)
				}
				r.p.mu.Lock()
				_, kept := r.p.broadcasts[1]
				r.p.mu.Unlock()
				if kept {
					t.Fatal("the planner still holds the broadcast: it would sound again")
				}
			})
		})
	}
}

func TestSyncPlaysTheStateItIsGiven(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		loud := seconds(1)
		for i := range loud {
			loud[i] = 1000
		}
		r := start(t, audio{item(1, 0).SHA256: loud, item(2, 0).SHA256: seconds(1)})
		defer r.stop()
		s1 := Schedule{State: once(1, t0.Add(10*time.Second), 0, item(1, 1)), ReceivedAt: t0}
		s2 := Schedule{State: once(2, t0.Add(20*time.Second), 0, item(1, 1)), ReceivedAt: t0}
		b9 := Broadcast{State: bc(9, playlists.Urgent, t0, item(2, 1)), ReceivedAt: t0}
		r.j.heard(9)
		r.p.Sync([]Schedule{s1, s2}, []Broadcast{b9}, api.BoxConfig{})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := r.j.summary(); got != "started:b9 finished:b9" {
			t.Fatalf("events %s", got)
		}
		// A state read before broadcast 9 finished comes after it did: 9
		// does not sound again. Schedule 1 is gone, and the volume is 50.
		r.p.Sync([]Schedule{s2}, []Broadcast{b9}, api.BoxConfig{Volume: 50})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.j.summary(), "started:b9 finished:b9 started:2 finished:2"; got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
		plays := r.out.list()
		if len(plays) != 2 {
			t.Fatalf("clips started at %s: want broadcast 9's, then schedule 2's only", r.startTimes(t0))
		}
		if got := plays[1].pcm[0]; got != 500 {
			t.Fatalf("schedule 2 played at level %d, want 500 (volume 50)", got)
		}
	})
}
