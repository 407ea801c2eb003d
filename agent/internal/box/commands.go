package box

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/link"
	"github.com/cunxiang/cunxiang/agent/internal/planner"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

func (a *Agent) commandLoop(ctx context.Context) {
	for {
		m, err := a.link.Next(ctx)
		if err != nil {
			return
		}
		a.handle(m)
	}
}

func (a *Agent) handle(m link.Message) {
	if len(m.Payload) == 0 {
		return // a retained command being cleared
	}
	a.cmdMu.Lock()
	defer a.cmdMu.Unlock()
	log := a.log.With("component", "commands", "topic", m.Topic)
	now := a.clock.Now()
	c, err := api.Verify(a.pub, a.topics, m.Topic, m.Payload, now)
	if err != nil {
		a.reject(log, m, c, err)
		return
	}
	log = log.With("command", c.ID, "kind", c.Kind, "seq", c.Seq)
	switch c.Kind {
	case api.KindSchedulePut:
		id := c.Schedule.Schedule.ID
		_, err = a.db.PutSchedule(c, now, api.Event{Type: api.EventReceived, At: now, ScheduleID: id})
		if err == nil {
			log.Info("schedule received", "schedule", id, "items", len(c.Schedule.Playlist.Items))
			_, err = a.replan()
		}
	case api.KindScheduleWithdraw:
		id := c.Withdraw.ScheduleID
		_, err = a.db.WithdrawSchedule(c, api.Event{Type: api.EventReceived, At: now, ScheduleID: id})
		if err == nil {
			log.Info("schedule withdrawn", "schedule", id)
			_, err = a.replan()
		}
	case api.KindBroadcastPut:
		if a.late(c, now) {
			a.confirmLate(log, m, c)
			return
		}
		err = a.putBroadcast(log, c, now)
	case api.KindBroadcastCancel:
		err = a.cancelBroadcast(log, c, now)
	case api.KindConfigPut:
		err = a.db.PutConfig(c)
		if err == nil {
			var st store.State
			if st, err = a.replan(); err == nil {
				cfg := mergeConfig(a.o.Village, st.Configs)
				log.Info("config applied", "group", c.Target, "quiet_hours", playlists.FormatWindows(cfg.QuietHours), "timezone", cfg.Timezone, "volume", cfg.Volume)
			}
		}
	case api.KindLiveStart, api.KindLiveStop:
		// Live sessions are not played yet (docs/live.md, next steps):
		// refuse them with a report, once per message, so the controller
		// counts this village as not having heard, with the reason.
		a.reject(log, m, c, errLiveNotPlayed)
		return
	case api.KindReportsAck:
		if c.Ack.Village != a.o.Village {
			a.reject(log, m, c, fmt.Errorf("ack for village %s", c.Ack.Village))
			return
		}
		a.queueAck(ackMsg{m: m, c: c})
	}
	if err != nil {
		a.logApplyError(log, m, c, err)
	}
}

// errLiveNotPlayed is why this agent refuses a live session.
var errLiveNotPlayed = errors.New(api.LiveNotPlayed + ": this agent does not play live sessions")

// logApplyError reports a command that could not be applied.
func (a *Agent) logApplyError(log *slog.Logger, m link.Message, c api.Command, err error) {
	switch {
	case errors.Is(err, store.ErrDuplicate):
		log.Debug("duplicate command ignored")
	case errors.Is(err, store.ErrReplay):
		a.reject(log, m, c, err)
	default:
		log.Error("apply command", "err", err)
	}
}

// ackMsg is a verified reports.ack waiting to be applied.
type ackMsg struct {
	m link.Message
	c api.Command
}

// queueAck hands an ack to ackLoop. Applying one is a disk sync, which the
// command loop must not wait for: an emergency right behind it would wait
// too. Acks are cumulative, so only the newest waiting one is kept.
func (a *Agent) queueAck(x ackMsg) {
	a.ackMu.Lock()
	if a.nextAck == nil || a.nextAck.c.Seq < x.c.Seq {
		a.nextAck = &x
	}
	a.ackMu.Unlock()
	select {
	case a.ackReady <- struct{}{}:
	default:
	}
}

// ackLoop applies acks: reports up to the acked seq leave the outbox. An
// ack lost in a crash before it is applied costs nothing but a resend,
// which the controller ignores.
func (a *Agent) ackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.ackReady:
		}
		a.ackMu.Lock()
		x := a.nextAck
		a.nextAck = nil
		a.ackMu.Unlock()
		if x == nil {
			continue
		}
		log := a.log.With("component", "commands", "topic", x.m.Topic, "command", x.c.ID, "kind", x.c.Kind, "seq", x.c.Seq)
		n, err := a.db.ApplyAck(x.c)
		switch {
		case err == nil:
			log.Debug("reports acknowledged", "upto", x.c.Ack.Seq, "dropped", n)
			select {
			case a.acked <- struct{}{}:
			default:
			}
		case errors.Is(err, store.ErrDuplicate):
			log.Debug("duplicate command ignored")
		case errors.Is(err, store.ErrReplay):
			a.reject(log, x.m, x.c, err)
		default:
			log.Error("apply command", "err", err)
		}
	}
}

// cachedReports are the downloaded reports of the broadcast's clips that
// are on disk already, to be journaled with its received report (one disk
// sync instead of one more for each).
func (a *Agent) cachedReports(b *api.BroadcastState, now time.Time) []api.Event {
	var out []api.Event
	for _, it := range b.Playlist.Items {
		if a.cache.Has(it.SHA256) {
			out = append(out, api.Event{Type: api.EventDownloaded, At: now, BroadcastID: b.ID, Test: b.Test, AudioID: it.AudioID})
		}
	}
	return out
}

// putBroadcast stores a broadcast, and the planner gets it from the store
// (replan): it plays it as soon as its clips are on disk and the rules let
// it (at once, over anything of lower priority), or reports it expired.
// One that is over (finished, cancelled, expired) is never handed over
// again.
//
// A broadcast heard of for the first time is handed over before it is
// stored, so that an emergency begins to sound while the disk syncs: the
// replay guard was checked without writing, and the planner journals
// nothing about it (no started report) until the store has it. If storing
// fails, replan takes it back (it comes again on reconnect).
func (a *Agent) putBroadcast(log *slog.Logger, c api.Command, now time.Time) error {
	b := c.Broadcast
	ev := api.Event{Type: api.EventReceived, At: now, BroadcastID: b.ID, Test: b.Test}
	_, known, err := a.db.PeekBroadcast(c)
	if err != nil {
		return err
	}
	var stored chan struct{}
	if !known {
		stored = make(chan struct{})
		a.plan.PutBroadcastWhileStoring(*b, now, stored)
	}
	rec, isNew, err := a.db.PutBroadcast(c, now, ev, a.cachedReports(b, now)...)
	if stored != nil {
		close(stored)
	}
	if err != nil {
		if stored != nil {
			if _, rerr := a.replan(); rerr != nil {
				log.Error("take back a broadcast that was not stored", "broadcast", b.ID, "err", rerr)
			}
		}
		return err
	}
	log = log.With("broadcast", b.ID, "priority", b.Priority, "test", b.Test)
	switch {
	case rec.Over():
		log.Debug(planner.Label(b.Test, "broadcast is over; not played again"), "status", rec.Status)
	case isNew:
		log.Info(planner.Label(b.Test, "broadcast received"), "items", len(b.Playlist.Items), "repeat", max(b.Repeat, 1), "expires_at", b.ExpiresAt)
	}
	_, err = a.replan()
	return err
}

// cancelBroadcast stops a broadcast for good: recorded first, so the
// planner cannot start it after, then stopped if it is sounding (replan:
// the store no longer holds it as live).
func (a *Agent) cancelBroadcast(log *slog.Logger, c api.Command, now time.Time) error {
	id := c.Cancel.BroadcastID
	rec, reported, err := a.db.CancelBroadcast(c, api.Event{Type: api.EventCancelled, At: now, BroadcastID: id})
	if err != nil {
		return err
	}
	switch {
	case reported:
		log.Info(planner.Label(rec.State.Test, "broadcast cancelled"), "broadcast", id)
	default:
		log.Info("cancellation of a broadcast that is over or was never heard of", "broadcast", id, "status", rec.Status)
	}
	_, err = a.replan()
	return err
}

// reject logs a refused command and reports it, once per distinct message
// in this run (retained messages come back on every reconnect).
func (a *Agent) reject(log *slog.Logger, m link.Message, c api.Command, why error) {
	h := sha256.New()
	h.Write([]byte(m.Topic))
	h.Write([]byte{0})
	h.Write(m.Payload)
	var key [32]byte
	copy(key[:], h.Sum(nil))
	a.mu.Lock()
	seen := a.rejected[key]
	if len(a.rejected) > 10000 {
		clear(a.rejected)
	}
	a.rejected[key] = true
	a.mu.Unlock()
	if seen {
		log.Debug("refused command again", "reason", why)
		return
	}
	log.Warn("command refused", "reason", why)
	ev := api.Event{Type: api.EventRejected, At: a.clock.Now(), Reason: fmt.Sprintf("%v (topic %s)", why, m.Topic)}
	switch {
	case c.Schedule != nil:
		ev.ScheduleID = c.Schedule.Schedule.ID
	case c.Withdraw != nil:
		ev.ScheduleID = c.Withdraw.ScheduleID
	case c.Broadcast != nil:
		ev.BroadcastID, ev.Test = c.Broadcast.ID, c.Broadcast.Test
	case c.Cancel != nil:
		ev.BroadcastID = c.Cancel.BroadcastID
	case c.Live != nil:
		ev.BroadcastID, ev.Test = c.Live.BroadcastID, c.Live.Test
	case c.LiveStop != nil:
		ev.BroadcastID = c.LiveStop.BroadcastID
	}
	if _, err := a.db.Append(ev); err != nil {
		log.Error("report refusal", "err", err)
	}
}
