package delivery

import (
	"context"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// ingest commits report messages in batches: one transaction for up to
// BatchSize messages, then the MQTT acknowledgements, then a signed
// reports.ack to each box. A message is acknowledged to the broker only
// after its events are committed, so a crash before the commit means the
// broker (or the box's outbox) delivers it again, and the (village, seq) key
// makes that redelivery a no-op.
func (s *Service) ingest(ctx context.Context) {
	s.collect(ctx, s.msgs, func(batch []paho.Message) { s.commit(ctx, batch) })
}

// collect hands fn the messages from ch in batches of up to BatchSize,
// each handed over BatchWait after its first message at the latest,
// until ctx is done.
func (s *Service) collect(ctx context.Context, ch <-chan paho.Message, fn func([]paho.Message)) {
	batch := make([]paho.Message, 0, s.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			if len(batch) == 0 {
				timer.Reset(s.opts.BatchWait)
			}
			batch = append(batch, m)
			if len(batch) < s.opts.BatchSize {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		if len(batch) == 0 {
			continue
		}
		fn(batch)
		batch = batch[:0]
	}
}

func (s *Service) commit(ctx context.Context, msgs []paho.Message) {
	now := s.opts.Now().UTC()
	batches := make([]store.IngestBatch, 0, len(msgs))
	for _, m := range msgs {
		village, _ := s.opts.Topics.VillageOfTopic(m.Topic())
		b, err := api.DecodeEventBatch(village, m.Payload())
		if err != nil {
			// The broker's access list lets only the box publish here, so
			// this is a bug or a damaged box: log it and drop the message,
			// or it would be redelivered forever.
			s.log.Warn("dropped malformed report", "village", village, "err", err)
			continue
		}
		if ok, warn := s.reports.allow(s.opts, village, len(b.Events), now); !ok {
			if warn {
				s.log.Warn("box reports over its budget: not stored until it sends them again", "village", village, "events", len(b.Events), "per_second", s.opts.ReportRate, "burst", s.opts.ReportBurst)
			}
			continue // acknowledged below, never stored: the box sends it again
		}
		batches = append(batches, store.IngestBatch{Village: village, Version: b.Version, Events: b.Events, ReceivedAt: now})
	}
	acks := map[string]int64{}
	if len(batches) > 0 {
		for {
			var err error
			acks, err = s.opts.Store.IngestEvents(ctx, batches)
			if err == nil {
				break
			}
			s.log.Error("commit reports; will retry", "messages", len(batches), "err", err)
			select {
			case <-ctx.Done():
				return // not acknowledged: the broker redelivers
			case <-time.After(time.Second):
			}
		}
	}
	for _, m := range msgs {
		m.Ack()
	}
	if len(batches) > 0 && s.opts.OnCommit != nil {
		s.opts.OnCommit()
	}
	s.queueAcks(acks)
}

// Report budget defaults (delivery.Options.ReportRate, ReportBurst). A
// box reports about four events for each play (received, downloaded,
// started, finished): a burst of 2,000 is a week offline with dozens of
// plays a day, and one a second, 86,400 a day, is far more than any
// county's schedules make. A thief with a box's password can then add at
// most about 40 MB of rows a day (events of at most 500 bytes).
const (
	DefaultReportRate  = 1.0
	DefaultReportBurst = 2000
)

// reportBudget is a token bucket of report events per village.
type reportBudget struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter // bounded by the villages with a box
	warned  map[string]time.Time
}

// allow spends n events of village's budget, or reports false when it
// has not got them; warn is true at most once a minute per village.
func (r *reportBudget) allow(o Options, village string, n int, now time.Time) (ok, warn bool) {
	if o.ReportRate < 0 {
		return true, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets == nil {
		r.buckets, r.warned = map[string]*rate.Limiter{}, map[string]time.Time{}
	}
	l := r.buckets[village]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(o.ReportRate), o.ReportBurst)
		r.buckets[village] = l
	}
	if l.AllowN(now, n) {
		return true, false
	}
	if now.Sub(r.warned[village]) >= time.Minute {
		r.warned[village] = now
		return false, true
	}
	return false, false
}

// queueAcks hands the acks of a commit to ackLoop, so the next batch is
// committed while these are signed (an Ed25519 signature per box took
// about as long as storing a one-report message). Acks are cumulative:
// while ackLoop is busy, a box's waiting ack is raised rather than queued,
// so under load fewer are signed.
func (s *Service) queueAcks(acks map[string]int64) {
	if len(acks) == 0 {
		return
	}
	s.ackMu.Lock()
	if s.pendingAcks == nil {
		s.pendingAcks = make(map[string]int64, len(acks))
	}
	for v, n := range acks {
		if cur, ok := s.pendingAcks[v]; !ok || n > cur {
			s.pendingAcks[v] = n
		}
	}
	s.ackMu.Unlock()
	select {
	case s.ackReady <- struct{}{}:
	default:
	}
}

// ackLoop sends the acks queueAcks collected, AckDelay after the first
// of them, until ctx is done.
func (s *Service) ackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ackReady:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.AckDelay):
		}
		s.flushAcks(ctx)
	}
}

// flushAcks sends every waiting ack.
func (s *Service) flushAcks(ctx context.Context) {
	s.ackMu.Lock()
	acks := s.pendingAcks
	s.pendingAcks = nil
	s.ackMu.Unlock()
	s.sendAcks(ctx, acks)
}

// sendAcks tells each box up to which seq its reports are stored. All acks
// of one commit share one seq: each is a different object on the box.
func (s *Service) sendAcks(ctx context.Context, acks map[string]int64) {
	if len(acks) == 0 {
		return
	}
	seq, err := s.opts.Store.NextCommandSeq(ctx)
	if err != nil {
		s.log.Error("allocate ack seq", "err", err)
		return
	}
	now := s.opts.Now().UTC()
	toks := make([]paho.Token, 0, len(acks))
	for village, n := range acks {
		g := api.VillageGroup(village)
		c := api.Command{
			ID: api.NewCommandID(), Kind: api.KindReportsAck, Target: g, Seq: seq,
			IssuedAt: now, ExpiresAt: now.Add(ackValidity),
			Ack: &api.ReportsAck{Village: village, Seq: n},
		}
		payload, err := api.Sign(s.opts.SigningKey, c)
		if err != nil {
			s.log.Error("sign ack", "village", village, "err", err)
			continue
		}
		toks = append(toks, s.client.Publish(s.opts.Topics.ReportsAck(village), 1, true, payload))
	}
	for _, t := range toks {
		// A lost ack only means the box resends; the store ignores repeats.
		t.WaitTimeout(5 * time.Second)
	}
}

// presence records online/offline messages in batches, one transaction
// each: after a broker restart every box says it is online within
// seconds.
func (s *Service) presence(ctx context.Context) {
	s.collect(ctx, s.pres, func(batch []paho.Message) { s.recordPresence(ctx, batch) })
}

func (s *Service) recordPresence(ctx context.Context, msgs []paho.Message) {
	now := s.opts.Now().UTC()
	ups := make([]store.PresenceUpdate, 0, len(msgs))
	for _, m := range msgs {
		village, _ := s.opts.Topics.VillageOfTopic(m.Topic())
		if len(m.Payload()) == 0 {
			continue // a retained presence being cleared
		}
		p, err := api.DecodePresence(village, m.Payload())
		if err != nil {
			s.log.Warn("dropped malformed presence", "village", village, "err", err)
			continue
		}
		at := now
		if m.Retained() && !p.At.IsZero() && p.At.Before(at) {
			// Held on the broker since before we subscribed: the box's
			// own time is the better guess of when it changed.
			at = p.At
		}
		ups = append(ups, store.PresenceUpdate{Village: village, Presence: p, ReceivedAt: at})
	}
	// A batch the store refuses is tried twice more, a second apart; then
	// it is dropped, and each box says it again within minutes
	// (box.Options.PresenceEvery).
	var unknown []string
	var err error
	for try := 0; try < 3; try++ {
		if unknown, err = s.opts.Store.SetPresences(ctx, ups); err == nil {
			break
		}
		s.log.Warn("record presence; will retry", "messages", len(ups), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	switch {
	case err != nil:
		s.log.Error("record presence", "messages", len(ups), "err", err)
	case len(ups) > 0:
		for _, v := range unknown {
			s.log.Warn("presence from a village with no enrolled box", "village", v)
		}
		if s.opts.OnCommit != nil {
			s.opts.OnCommit()
		}
	}
	for _, m := range msgs {
		m.Ack()
	}
}
