package box

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// sendLoop publishes the outbox in seq order (see linger for when).
// Everything sent stays in the outbox until acked; it is sent again after
// every reconnect, and after ResendAfter without an ack.
func (a *Agent) sendLoop(ctx context.Context) {
	log := a.log.With("component", "outbox")
	var sent int64 // highest seq published on this connection
	resend, resendC := a.clock.NewTimer(time.Hour)
	resend.Stop()
	retry, retryC := a.clock.NewTimer(time.Hour)
	retry.Stop()
	for {
		if a.link.IsConnected() {
			evs, err := a.db.Pending(sent, api.MaxEventsPerBatch)
			if err != nil {
				log.Error("read outbox", "err", err)
			}
			if len(evs) > 0 {
				raw, _ := json.Marshal(api.EventBatch{V: api.Version, Village: a.o.Village, Version: a.o.Version, Events: evs})
				var err error
				if a.o.DropReport != nil && a.o.DropReport() {
					log.Debug("reports lost on the way (simulated)", "from", evs[0].Seq)
				} else {
					err = a.link.Publish(ctx, a.topics.Events(a.o.Village), raw, false)
				}
				if err != nil {
					log.Warn("publish reports", "err", err, "from", evs[0].Seq)
					retry.Reset(2 * time.Second)
				} else {
					sent = evs[len(evs)-1].Seq
					log.Debug("reports published", "from", evs[0].Seq, "to", sent)
					resend.Reset(a.o.ResendAfter)
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-a.db.Appended():
			if !a.linger(ctx) {
				return
			}
		case <-a.connected:
			sent = 0
		case <-a.acked:
			if n, _ := a.db.OutboxLen(); n == 0 {
				resend.Stop()
			} else {
				resend.Reset(a.o.ResendAfter)
			}
		case <-resendC:
			if n, _ := a.db.OutboxLen(); n > 0 {
				log.Info("no ack for reports; sending them again", "pending", n)
				sent = 0
			}
		case <-retryC:
		}
	}
}

// linger holds new reports back, at most ReportLinger, while the newest
// is one that another follows within moments: a broadcast's received or
// downloaded report, which its started report follows as soon as it
// sounds. The three then travel as one message, and a started report is
// sent the moment it is journaled. It reports false if ctx ended.
func (a *Agent) linger(ctx context.Context) bool {
	t, fired := a.clock.NewTimer(a.o.ReportLinger)
	defer t.Stop()
	for {
		ev, ok, err := a.db.Newest()
		if err != nil || !ok || ev.BroadcastID == 0 || (ev.Type != api.EventReceived && ev.Type != api.EventDownloaded) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-fired:
			return true
		case <-a.db.Appended():
		}
	}
}
