package box

import (
	"context"
	"errors"

	"github.com/cunxiang/cunxiang/agent/internal/cache"
	"github.com/cunxiang/cunxiang/api"
)

// syncDownloads starts downloads the schedules need, cancels those no
// schedule needs any more, and reports clips that are ready.
func (a *Agent) syncDownloads() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fetchCtx == nil {
		return // Run not started yet
	}
	want := map[string]int64{}
	for id, s := range a.schedules {
		for _, it := range s.State.Playlist.Items {
			if !a.cache.Has(it.SHA256) {
				want[it.SHA256] = it.AudioID
				continue
			}
			if reported(s.Reported, it.AudioID) {
				continue
			}
			ev := api.Event{Type: api.EventDownloaded, At: a.clock.Now(), ScheduleID: id, AudioID: it.AudioID}
			if _, err := a.db.MarkDownloaded(id, it.AudioID, ev); err != nil {
				a.log.Error("report download", "component", "cache", "err", err)
				continue
			}
			s.Reported = append(s.Reported, it.AudioID)
			a.schedules[id] = s
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
}
