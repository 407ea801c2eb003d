package box

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/cache"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// downloadStore is what the downloads need of the box's store: what the
// box holds, and the record of the downloads already reported.
type downloadStore interface {
	State() (store.State, error)
	MarkDownloaded(scheduleID, audioID int64, ev api.Event) (bool, error)
	MarkBroadcastDownloaded(id, audioID int64, ev api.Event) (bool, error)
}

// need is a playlist the box must have on disk: a schedule's or a
// broadcast's, with the audio ids whose download it already reported.
type need struct {
	scheduleID, broadcastID int64
	test                    bool
	items                   []playlists.Item
	reported                []int64
}

// needs lists what the schedules and the live broadcasts of st need.
// Broadcasts past their expiry are left out: they will never play.
func (a *Agent) needs(st store.State) []need {
	var out []need
	for _, s := range st.Schedules {
		out = append(out, need{scheduleID: s.State.Schedule.ID, items: s.State.Playlist.Items, reported: s.Reported})
	}
	now := a.clock.Now()
	for _, b := range st.Broadcasts {
		if !now.Before(b.State.ExpiresAt) {
			continue
		}
		out = append(out, need{broadcastID: b.State.ID, test: b.State.Test, items: b.State.Playlist.Items, reported: b.Reported})
	}
	return out
}

// markDownloaded reports a clip of a need as downloaded, once.
func (a *Agent) markDownloaded(n need, audioID int64) error {
	ev := api.Event{Type: api.EventDownloaded, At: a.clock.Now(), ScheduleID: n.scheduleID, BroadcastID: n.broadcastID, Test: n.test, AudioID: audioID}
	var err error
	if n.broadcastID != 0 {
		_, err = a.downloads.MarkBroadcastDownloaded(n.broadcastID, audioID, ev)
	} else {
		_, err = a.downloads.MarkDownloaded(n.scheduleID, audioID, ev)
	}
	return err
}

// clipsKept is how long a clip that nothing needs any more stays cached
// (a schedule withdrawn by mistake and put back finds it still there).
const clipsKept = 7 * 24 * time.Hour

// pruneClips deletes cached clips that no schedule or broadcast the box
// holds needs and that were downloaded more than clipsKept ago.
func (a *Agent) pruneClips() {
	st, err := a.db.State()
	if err != nil {
		a.log.Warn("prune cached clips", "component", "cache", "err", err)
		return
	}
	keep := map[string]bool{}
	for _, n := range a.needs(st) {
		for _, it := range n.items {
			keep[it.SHA256] = true
		}
	}
	// The files' times are the box's own wall clock's, not the controller's.
	n, err := a.cache.Prune(keep, time.Now().Add(-clipsKept))
	if err != nil {
		a.log.Warn("prune cached clips", "component", "cache", "err", err)
	} else if n > 0 {
		a.log.Info("deleted cached clips nothing needs", "component", "cache", "n", n)
	}
}

// pruneLoop prunes the clip cache once a day.
func (a *Agent) pruneLoop(ctx context.Context) {
	for {
		t, fired := a.clock.NewTimer(24 * time.Hour)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-fired:
			a.pruneClips()
		}
	}
}

// fetchJob is one clip's download.
type fetchJob struct {
	sum    string
	cancel context.CancelFunc
}

// downloadLoop keeps the clip cache in step with what the box holds: each
// time replan says the state changed, or a download ends, it reads the
// store, reports the clips that are on disk (once per schedule or
// broadcast), starts the downloads that are missing and cancels those
// nothing needs any more. It runs apart from the commands, so the disk
// syncs of those reports never hold a command up; it alone owns the
// downloads under way.
func (a *Agent) downloadLoop(ctx context.Context) {
	fetching := map[string]*fetchJob{} // by sha256
	done := make(chan *fetchJob)
	defer func() {
		for _, j := range fetching {
			j.cancel()
		}
	}()
	downloaded := false
	for {
		a.syncDownloads(ctx, fetching, done)
		if downloaded {
			a.plan.Wake() // a broadcast may have been waiting for it
			downloaded = false
		}
		select {
		case <-ctx.Done():
			return
		case <-a.needed:
		case j := <-done:
			if fetching[j.sum] == j {
				delete(fetching, j.sum)
			}
			downloaded = true
		}
	}
}

// syncDownloads is one round of downloadLoop.
func (a *Agent) syncDownloads(ctx context.Context, fetching map[string]*fetchJob, done chan<- *fetchJob) {
	st, err := a.downloads.State()
	if err != nil {
		a.log.Error("read state", "component", "cache", "err", err)
		return
	}
	want := map[string]int64{}
	for _, n := range a.needs(st) {
		for _, it := range n.items {
			if !a.cache.Has(it.SHA256) {
				want[it.SHA256] = it.AudioID
				continue
			}
			if slices.Contains(n.reported, it.AudioID) {
				continue
			}
			if err := a.markDownloaded(n, it.AudioID); err != nil {
				a.log.Error("report download", "component", "cache", "err", err)
				continue
			}
			n.reported = append(n.reported, it.AudioID)
		}
	}
	for sum, j := range fetching {
		if _, ok := want[sum]; !ok {
			j.cancel()
			delete(fetching, sum)
		}
	}
	for sum, audioID := range want {
		if _, ok := fetching[sum]; ok {
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		j := &fetchJob{sum: sum, cancel: cancel}
		fetching[sum] = j
		a.bg.Add(1)
		go a.fetch(fctx, j, audioID, done)
	}
}

// fetch downloads one clip, and tells downloadLoop when it is on disk.
func (a *Agent) fetch(ctx context.Context, j *fetchJob, audioID int64, done chan<- *fetchJob) {
	defer a.bg.Done()
	defer j.cancel()
	log := a.log.With("component", "cache", "audio", audioID)
	select {
	case a.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-a.fetchSem }()
	reportedMismatch := false
	err := a.cache.Fetch(ctx, audioID, j.sum, func(attempt int, err error) {
		log.Warn("download failed; will retry", "attempt", attempt, "err", err)
		if errors.Is(err, cache.ErrMismatch) && !reportedMismatch {
			reportedMismatch = true
			ev := api.Event{Type: api.EventFailed, At: a.clock.Now(), AudioID: audioID, Reason: "download: " + err.Error()}
			if _, err := a.db.Append(ev); err != nil {
				log.Error("report download failure", "err", err)
			}
		}
	})
	if err != nil {
		return // cancelled: nothing needs it any more, or the box stops
	}
	log.Info("clip downloaded and verified")
	select {
	case done <- j:
	case <-ctx.Done():
	}
}
