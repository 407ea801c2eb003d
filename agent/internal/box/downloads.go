package box

import (
	"context"
	"errors"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/cache"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// need is a playlist the box must have on disk: a schedule's or a
// broadcast's, with the audio ids whose download it already reported.
type need struct {
	scheduleID, broadcastID int64
	test                    bool
	items                   []playlists.Item
	reported                []int64
}

// needs lists what the schedules and the live broadcasts need; a.mu held.
// Broadcasts past their expiry are forgotten here: they will never play.
func (a *Agent) needs() []need {
	var out []need
	for id, s := range a.schedules {
		out = append(out, need{scheduleID: id, items: s.State.Playlist.Items, reported: s.Reported})
	}
	now := a.clock.Now()
	for id, b := range a.broadcasts {
		if !now.Before(b.State.ExpiresAt) {
			delete(a.broadcasts, id)
			continue
		}
		out = append(out, need{broadcastID: id, test: b.State.Test, items: b.State.Playlist.Items, reported: b.Reported})
	}
	return out
}

// markDownloaded reports a clip of a need as downloaded, once; a.mu held.
func (a *Agent) markDownloaded(n need, audioID int64) error {
	ev := api.Event{Type: api.EventDownloaded, At: a.clock.Now(), ScheduleID: n.scheduleID, BroadcastID: n.broadcastID, Test: n.test, AudioID: audioID}
	if n.broadcastID != 0 {
		if _, err := a.db.MarkBroadcastDownloaded(n.broadcastID, audioID, ev); err != nil {
			return err
		}
		b := a.broadcasts[n.broadcastID]
		b.Reported = append(b.Reported, audioID)
		a.broadcasts[n.broadcastID] = b
		return nil
	}
	if _, err := a.db.MarkDownloaded(n.scheduleID, audioID, ev); err != nil {
		return err
	}
	s := a.schedules[n.scheduleID]
	s.Reported = append(s.Reported, audioID)
	a.schedules[n.scheduleID] = s
	return nil
}

// clipsKept is how long a clip that nothing needs any more stays cached
// (a schedule withdrawn by mistake and put back finds it still there).
const clipsKept = 7 * 24 * time.Hour

// pruneClips deletes cached clips that no schedule or broadcast the box
// knows needs and that were downloaded more than clipsKept ago.
func (a *Agent) pruneClips() {
	a.mu.Lock()
	keep := map[string]bool{}
	for _, n := range a.needs() {
		for _, it := range n.items {
			keep[it.SHA256] = true
		}
	}
	a.mu.Unlock()
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

// syncDownloads starts downloads the schedules and broadcasts need,
// cancels those nothing needs any more, and reports clips that are ready.
func (a *Agent) syncDownloads() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fetchCtx == nil {
		return // Run not started yet
	}
	want := map[string]int64{}
	for _, n := range a.needs() {
		for _, it := range n.items {
			if !a.cache.Has(it.SHA256) {
				want[it.SHA256] = it.AudioID
				continue
			}
			if reported(n.reported, it.AudioID) {
				continue
			}
			if err := a.markDownloaded(n, it.AudioID); err != nil {
				a.log.Error("report download", "component", "cache", "err", err)
				continue
			}
			n.reported = append(n.reported, it.AudioID)
		}
	}
	for sum, cancel := range a.fetching {
		if _, ok := want[sum]; !ok {
			cancel()
			delete(a.fetching, sum)
		}
	}
	for sum, audioID := range want {
		if _, ok := a.fetching[sum]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(a.fetchCtx)
		a.fetching[sum] = cancel
		a.fetchWG.Add(1)
		go a.fetch(ctx, audioID, sum)
	}
}

func reported(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (a *Agent) fetch(ctx context.Context, audioID int64, sum string) {
	defer a.fetchWG.Done()
	log := a.log.With("component", "cache", "audio", audioID)
	select {
	case a.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-a.fetchSem }()
	reportedMismatch := false
	err := a.cache.Fetch(ctx, audioID, sum, func(attempt int, err error) {
		log.Warn("download failed; will retry", "attempt", attempt, "err", err)
		if errors.Is(err, cache.ErrMismatch) && !reportedMismatch {
			reportedMismatch = true
			ev := api.Event{Type: api.EventFailed, At: a.clock.Now(), AudioID: audioID, Reason: "download: " + err.Error()}
			if _, err := a.db.Append(ev); err != nil {
				log.Error("report download failure", "err", err)
			}
		}
	})
	a.mu.Lock()
	if _, ok := a.fetching[sum]; ok && ctx.Err() == nil {
		delete(a.fetching, sum)
	}
	a.mu.Unlock()
	if err != nil {
		return // cancelled
	}
	log.Info("clip downloaded and verified")
	a.syncDownloads()
	a.plan.Wake() // a broadcast may have been waiting for it
}
