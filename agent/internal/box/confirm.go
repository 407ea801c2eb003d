package box

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/link"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Defaults of Options.LateAfter and Options.ConfirmTimeout.
const (
	defaultLateAfter      = 30 * time.Second
	defaultConfirmTimeout = 4 * time.Second
)

// late reports whether a broadcast.put the box has not heard of before
// arrived well after it was signed (on the controller's clock): it was
// retained while the box was offline, or a broker served a stale or
// replayed copy. Such a broadcast sounds only once the controller says it
// is still active.
func (a *Agent) late(c api.Command, now time.Time) bool {
	if now.Sub(c.IssuedAt) <= a.o.LateAfter {
		return false
	}
	_, known, err := a.db.PeekBroadcast(c)
	return err == nil && !known
}

// confirmLate asks the controller, off the command loop (an emergency or a
// cancellation right behind must not wait), whether a late broadcast is
// still active, then plays it or refuses it:
//   - active: played as if it had just come;
//   - cancelled, rejected, expired or unknown: never played, remembered as
//     over (a later copy does not ask again) and reported with the reason;
//   - no answer: a valid unexpired emergency plays all the same
//     (availability beats doubt for a real alarm); anything less urgent
//     waits for the next copy (the broker sends retained commands again on
//     every reconnect).
func (a *Agent) confirmLate(log *slog.Logger, m link.Message, c api.Command) {
	id := c.Broadcast.ID
	a.mu.Lock()
	if a.runCtx == nil || a.confirming[id] {
		a.mu.Unlock()
		return
	}
	a.confirming[id] = true
	ctx := a.runCtx
	a.bg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.bg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.confirming, id)
			a.mu.Unlock()
		}()
		age := a.clock.Now().Sub(c.IssuedAt).Round(time.Second)
		status, err := a.checkBroadcast(ctx, id)
		if ctx.Err() != nil {
			return
		}
		a.cmdMu.Lock()
		defer a.cmdMu.Unlock()
		now := a.clock.Now()
		switch {
		case err != nil && c.Broadcast.Priority == playlists.Emergency:
			log.Warn("late emergency: the controller did not answer; playing it while it is valid", "broadcast", id, "age", age, "err", err)
			err = a.putBroadcast(log, c, now)
		case err != nil:
			a.reject(log, m, c, fmt.Errorf("received %s after it was issued and the controller could not confirm it is still active (%v); not played until it can", age, err))
			return
		case status == api.CheckActive:
			log.Info("late broadcast confirmed active by the controller", "broadcast", id, "age", age)
			err = a.putBroadcast(log, c, now)
		default:
			a.withdrawLate(log, m, c, fmt.Errorf("received %s after it was issued and the controller says it is %s; not played", age, status))
			return
		}
		if err != nil {
			a.logApplyError(log, m, c, err)
		}
	}()
}

// withdrawLate remembers a late broadcast the controller disowned as over,
// so no later copy can start it, and reports why it did not play.
func (a *Agent) withdrawLate(log *slog.Logger, m link.Message, c api.Command, why error) {
	cancel := c
	cancel.Kind, cancel.Broadcast = api.KindBroadcastCancel, nil
	cancel.Cancel = &api.Cancellation{BroadcastID: c.Broadcast.ID}
	if _, _, err := a.db.CancelBroadcast(cancel, api.Event{Type: api.EventCancelled, At: a.clock.Now(), BroadcastID: c.Broadcast.ID}); err != nil {
		log.Error("remember a disowned broadcast", "broadcast", c.Broadcast.ID, "err", err)
	} else if _, err := a.replan(); err != nil {
		log.Error("apply command", "err", err)
	}
	a.reject(log, m, c, why)
}

// checkBroadcast asks GET /api/v1/box/broadcasts/{id} with the box's own
// credentials, within ConfirmTimeout.
func (a *Agent) checkBroadcast(ctx context.Context, id int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.o.ConfirmTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.o.Controller+"/api/v1/box/broadcasts/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(a.id.MQTTUsername, a.id.MQTTPassword)
	resp, err := a.o.HTTPClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("controller answered %s", resp.Status)
	}
	var out api.BroadcastCheck
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 4096)).Decode(&out); err != nil {
		return "", fmt.Errorf("controller's answer: %w", err)
	}
	if out.ID != id || out.Status == "" {
		return "", errors.New("controller's answer is about another broadcast")
	}
	return out.Status, nil
}
