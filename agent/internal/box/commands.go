package box

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cunxiang/cunxiang/agent/internal/link"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
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
			a.mu.Lock()
			prev := a.schedules[id]
			a.schedules[id] = store.Schedule{State: *c.Schedule, ReceivedAt: now, Reported: prev.Reported}
			a.mu.Unlock()
			a.plan.Put(*c.Schedule, now)
			log.Info("schedule received", "schedule", id, "items", len(c.Schedule.Playlist.Items))
			a.syncDownloads()
		}
	case api.KindScheduleWithdraw:
		id := c.Withdraw.ScheduleID
		_, err = a.db.WithdrawSchedule(c, api.Event{Type: api.EventReceived, At: now, ScheduleID: id})
		if err == nil {
			a.mu.Lock()
			delete(a.schedules, id)
			a.mu.Unlock()
			a.plan.Remove(id)
			log.Info("schedule withdrawn", "schedule", id)
			a.syncDownloads()
		}
	case api.KindReportsAck:
		if c.Ack.Village != a.o.Village {
			a.reject(log, m, c, fmt.Errorf("ack for village %s", c.Ack.Village))
			return
		}
		var n int
		n, err = a.db.ApplyAck(c)
		if err == nil {
			log.Debug("reports acknowledged", "upto", c.Ack.Seq, "dropped", n)
			select {
			case a.acked <- struct{}{}:
			default:
			}
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, store.ErrDuplicate):
		log.Debug("duplicate command ignored")
	case errors.Is(err, store.ErrReplay):
		a.reject(log, m, c, err)
	default:
		log.Error("apply command", "err", err)
	}
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
	if c.Schedule != nil {
		ev.ScheduleID = c.Schedule.Schedule.ID
	} else if c.Withdraw != nil {
		ev.ScheduleID = c.Withdraw.ScheduleID
	}
	if _, err := a.db.Append(ev); err != nil {
		log.Error("report refusal", "err", err)
	}
}
