package delivery

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// The steps of sending one outbox entry, for Options.Step.
const (
	StepTaken     = "taken"     // read from the outbox, nothing done yet
	StepSigned    = "signed"    // its commands signed and stored as retained, not yet published
	StepPublished = "published" // the broker acknowledged its commands, not yet marked sent
)

const (
	// outboxPage and retainedPage bound what one query reads.
	outboxPage   = 100
	retainedPage = 200
	// maxCommandBytes bounds a signed command: the embedded broker takes
	// packets of up to 1 MB (broker.DefaultMaxPacketSize), the topic and
	// the packet's header included.
	maxCommandBytes = 1<<20 - 16<<10
	// publishWait is how long the broker has to acknowledge a command.
	publishWait = 10 * time.Second
	// refreshEvery is how often signatures due are renewed.
	refreshEvery = 6 * time.Hour
)

// errPermanent marks an outbox entry that can never be sent.
var errPermanent = errors.New("cannot be sent")

// Kick tells the publisher that the outbox has something new.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// progressed returns a channel closed at the next outbox progress.
func (s *Service) progressed() <-chan struct{} {
	s.progressMu.Lock()
	defer s.progressMu.Unlock()
	return s.progress
}

func (s *Service) notifyProgress() {
	s.progressMu.Lock()
	close(s.progress)
	s.progress = make(chan struct{})
	s.progressMu.Unlock()
}

// NotSentError says that an outbox entry is stored but the broker has not
// acknowledged it yet; the publisher keeps trying.
type NotSentError struct {
	Kind, Ref string
	Cause     string // the last failure, if there was one
}

func (e *NotSentError) Error() string {
	if e.Cause == "" {
		return fmt.Sprintf("%s %s is not on the broker yet", e.Kind, e.Ref)
	}
	return fmt.Sprintf("%s %s is not on the broker yet: %s", e.Kind, e.Ref, e.Cause)
}

// Deliver waits until the outbox entries of kind for ref (those a change
// wrote) are on the broker, or ctx ends: then it returns a *NotSentError,
// and the publisher goes on trying. The publisher may be another
// controller's (lease.go): the outbox is in the database.
func (s *Service) Deliver(ctx context.Context, kind, ref string) error {
	s.Kick()
	poll := time.NewTicker(deliverPoll)
	defer poll.Stop()
	for {
		next := s.progressed()
		unsent, cause, err := s.opts.Store.OutboxUnsentFor(context.WithoutCancel(ctx), kind, ref)
		if err != nil {
			return err
		}
		if !unsent {
			return nil
		}
		var polled <-chan time.Time
		if _, ok := s.held(); !ok {
			polled = poll.C // another controller publishes: no progress is told here
		}
		select {
		case <-next:
		case <-polled:
		case <-ctx.Done():
			return &NotSentError{Kind: kind, Ref: ref, Cause: cause}
		}
	}
}

// publisher is the one goroutine that publishes: it drains the outbox in
// order, refills the broker with every retained command after each
// connect (a page at a time, draining the outbox between pages, so an
// emergency never waits for the refill), and renews signatures before they
// expire. Being alone in its process, it needs no lock; it does all this
// only while this process holds the publisher lease (lease.go), and
// refills the broker when it takes the lease over from another.
func (s *Service) publisher(ctx context.Context) {
	retry := time.NewTicker(s.opts.RetryEvery)
	defer retry.Stop()
	refresh := time.NewTicker(refreshEvery)
	defer refresh.Stop()
	// under is ctx carrying the lease, whose writes check it, and whether
	// this process may publish under it now.
	under := func() (context.Context, bool) {
		l, ok := s.held()
		return store.WithLease(ctx, l), ok
	}
	republishing, after := false, int64(0)
	for {
		lctx, holding := under()
		if !holding {
			republishing = false // whoever holds the lease refills
		}
		if holding && s.Connected() {
			s.drain(lctx)
			if republishing {
				var more bool
				after, more = s.republishPage(lctx, after)
				republishing = more
				if more {
					select {
					case <-ctx.Done():
						return
					default:
						continue
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
			// A controller that does not hold the lease finds here, in
			// the database, the entries the other controllers wrote.
			if holding && !s.Connected() {
				s.unreachable(lctx)
			}
		case <-s.reconnected:
			if lctx, holding = under(); holding {
				s.refresh(lctx)
				republishing, after = true, 0
			}
		case <-s.gained:
			// Taken over from another controller, which may have died
			// between storing and publishing: refill the broker.
			if lctx, holding = under(); holding && s.Connected() {
				s.refresh(lctx)
				republishing, after = true, 0
			}
		case <-refresh.C:
			if holding && s.Connected() {
				s.refresh(lctx)
			}
		case done := <-s.renew: // a refresh tick on demand (tests); nothing sends on it in service
			if lctx, holding = under(); holding && s.Connected() {
				s.refresh(lctx)
			}
			close(done)
		}
	}
}

// drain sends the unsent outbox entries in order. It stops at the first
// that fails for a reason that may pass (the broker is away): what comes
// after it may depend on it, and it is tried again soon.
func (s *Service) drain(ctx context.Context) {
	for ctx.Err() == nil {
		entries, err := s.opts.Store.UnsentOutbox(ctx, outboxPage)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("read the outbox", "err", err)
			}
			return
		}
		if len(entries) == 0 {
			return
		}
	page:
		for _, e := range entries {
			err := s.send(ctx, e)
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return // stopping: the entry stays for the next start
			case errors.Is(err, store.ErrOutboxSuperseded):
				break page // a later change replaced it: read the outbox again
			case errors.Is(err, store.ErrLeaseLost):
				// Another controller publishes now; it sends this entry.
				s.log.Warn("stopped publishing: the publisher lease is lost", "kind", e.Kind, "ref", e.Ref, "err", err)
				return
			case errors.Is(err, errPermanent):
				s.log.Error("outbox entry dropped", "kind", e.Kind, "ref", e.Ref, "err", err)
				if err := s.opts.Store.OutboxDrop(ctx, e, err.Error()); err != nil {
					s.log.Error("drop outbox entry", "kind", e.Kind, "ref", e.Ref, "err", err)
					return
				}
			default:
				s.log.Warn("outbox entry not sent yet; trying again", "kind", e.Kind, "ref", e.Ref, "attempts", e.Attempts+1, "err", err)
				if err := s.opts.Store.OutboxFailed(ctx, e, err.Error(), s.sendError()); err != nil {
					s.log.Error("record outbox failure", "kind", e.Kind, "ref", e.Ref, "err", err)
				}
				s.notifyProgress()
				return
			}
			s.notifyProgress()
		}
	}
}

// sendError is a broadcast's SendError while its entry waits, for people.
func (s *Service) sendError() string {
	return "delivery to the broker failed at " + s.opts.Now().UTC().Format(time.RFC3339) + "; the controller keeps trying (details are in its log)"
}

// notConnected is the last error of the entries waiting for the broker.
const notConnected = "not connected to the broker"

// unreachable records on the unsent entries (a page of them), once per
// outage each, that the broker cannot be reached. drain does not try
// while the link is down (paho would queue the publications and send
// them, stale, on reconnect), so without this a broadcast would show no
// send error however long the broker is away, and Deliver no cause.
func (s *Service) unreachable(ctx context.Context) {
	entries, err := s.opts.Store.UnsentOutbox(ctx, outboxPage)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("read the outbox", "err", err)
		}
		return
	}
	recorded := false
	for _, e := range entries {
		if e.LastError == notConnected {
			continue
		}
		if err := s.opts.Store.OutboxFailed(ctx, e, notConnected, s.sendError()); err != nil {
			if ctx.Err() == nil {
				s.log.Error("record outbox failure", "kind", e.Kind, "ref", e.Ref, "err", err)
			}
			break
		}
		recorded = true
	}
	if recorded {
		s.log.Warn("outbox entries wait for the broker", "broker", s.opts.Broker)
		s.notifyProgress()
	}
}

func (s *Service) step(step, kind string) {
	if s.opts.Step != nil {
		s.opts.Step(step, kind)
	}
}

// send signs (unless a run before a crash did), publishes and marks sent
// one outbox entry.
func (s *Service) send(ctx context.Context, e store.OutboxEntry) error {
	if _, ok := s.held(); !ok {
		return errNotHolder
	}
	s.step(StepTaken, e.Kind)
	var rs []store.Retained
	if e.SignedAt.IsZero() {
		var err error
		if rs, err = s.commands(ctx, e); err != nil {
			return err
		}
		if err := s.opts.Store.SignOutbox(ctx, e.Seq, rs); err != nil {
			return err
		}
		s.step(StepSigned, e.Kind)
	} else {
		// Signed before a crash: what its topics retain now is its
		// commands or, where a later change replaced one, that change's.
		var err error
		if rs, err = s.opts.Store.RetainedOn(ctx, e.Topics); err != nil {
			return err
		}
	}
	if _, ok := s.held(); !ok {
		return errNotHolder // signing took too long: another may publish now
	}
	now := s.opts.Now()
	toks := make([]paho.Token, 0, len(rs))
	for _, r := range rs {
		if now.Before(r.ExpiresAt) { // no use sending what no box will take
			toks = append(toks, s.client.Publish(r.Topic, 1, true, r.Payload))
		}
	}
	if err := s.await(ctx, toks); err != nil {
		return err
	}
	s.step(StepPublished, e.Kind)
	if err := s.opts.Store.OutboxSent(ctx, e); err != nil {
		return err
	}
	s.log.Info("sent", "kind", e.Kind, "ref", e.Ref, "commands", len(toks))
	return nil
}

// await waits for the broker to acknowledge every publication.
func (s *Service) await(ctx context.Context, toks []paho.Token) error {
	timeout := time.NewTimer(publishWait)
	defer timeout.Stop()
	for _, t := range toks {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		case <-timeout.C:
			return errors.New("publish: the broker did not acknowledge within 10 s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// commands builds and signs the retained commands an outbox entry causes.
func (s *Service) commands(ctx context.Context, e store.OutboxEntry) ([]store.Retained, error) {
	now := s.opts.Now()
	t := s.opts.Topics
	if e.Kind == store.OutboxConfig {
		scope, name, _ := strings.Cut(e.Ref, "/")
		if scope != store.ScopeTownship && scope != store.ScopeVillage {
			return nil, fmt.Errorf("%w: settings ref %q has no known scope", errPermanent, e.Ref)
		}
		bc, err := s.opts.Store.GetBoxConfig(ctx, scope, name)
		if err != nil {
			return nil, gone(err)
		}
		return s.onGroups(ctx, bc.Groups, now.AddDate(foreverYears, 0, 0), 0, t.Config, func(g api.Group) api.Command {
			cfg := bc.Config
			return api.Command{Kind: api.KindConfigPut, Target: g, Config: &cfg}
		})
	}
	id, err := strconv.ParseInt(e.Ref, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: ref %q is not an id", errPermanent, e.Ref)
	}
	switch e.Kind {
	case store.OutboxBroadcast:
		b, err := s.opts.Store.GetBroadcast(ctx, id)
		if err != nil {
			return nil, gone(err)
		}
		switch {
		case b.State != api.BroadcastReleased:
			// Cancelled before it was sent: the cancellation that follows it
			// in the outbox tells the boxes.
			return nil, fmt.Errorf("%w: broadcast %d is %s", errPermanent, id, b.State)
		case !now.Before(b.ExpiresAt):
			return nil, fmt.Errorf("%w: broadcast %d expired before it was sent", errPermanent, id)
		}
		state := b.Wire()
		return s.onGroups(ctx, b.Groups, b.ExpiresAt.Add(24*time.Hour), 0,
			func(g api.Group) string { return t.Broadcast(g, id) },
			func(g api.Group) api.Command {
				return api.Command{Kind: api.KindBroadcastPut, Target: g, Broadcast: &state}
			})
	case store.OutboxCancel:
		b, err := s.opts.Store.GetBroadcast(ctx, id)
		if err != nil {
			return nil, gone(err)
		}
		topic := func(g api.Group) string { return t.Broadcast(g, id) }
		until := s.replacedUntil(ctx, api.KindBroadcastPut, b.Groups, topic, now.Add(signedFor))
		return s.onGroups(ctx, b.Groups, until, 0, topic, func(g api.Group) api.Command {
			return api.Command{Kind: api.KindBroadcastCancel, Target: g, Cancel: &api.Cancellation{BroadcastID: id}}
		})
	case store.OutboxSchedule:
		sc, err := s.opts.Store.GetSchedule(ctx, id)
		if err != nil {
			return nil, gone(err)
		}
		if !sc.WithdrawnAt.IsZero() {
			return nil, fmt.Errorf("%w: schedule %d was withdrawn before it was sent", errPermanent, id)
		}
		pl, err := s.opts.Store.GetPlaylist(ctx, sc.PlaylistID)
		if err != nil {
			return nil, gone(err)
		}
		state := &api.ScheduleState{Schedule: sc.Schedule, Playlist: pl.Playlist}
		return s.onGroups(ctx, sc.Groups, relevance(sc.Schedule, pl.Playlist, now), id,
			func(g api.Group) string { return t.Schedule(g, id) },
			func(g api.Group) api.Command {
				return api.Command{Kind: api.KindSchedulePut, Target: g, Schedule: state}
			})
	case store.OutboxWithdraw:
		sc, err := s.opts.Store.GetSchedule(ctx, id)
		if err != nil {
			return nil, gone(err)
		}
		topic := func(g api.Group) string { return t.Schedule(g, id) }
		// The withdrawal must outlive every copy of the schedule it replaces.
		until := s.replacedUntil(ctx, api.KindSchedulePut, sc.Groups, topic, now.AddDate(foreverYears, 0, 0))
		return s.onGroups(ctx, sc.Groups, until, id, topic, func(g api.Group) api.Command {
			return api.Command{Kind: api.KindScheduleWithdraw, Target: g, Withdraw: &api.Withdrawal{ScheduleID: id}}
		})
	}
	return nil, fmt.Errorf("%w: unknown kind %q", errPermanent, e.Kind)
}

// gone makes permanent the absence of what an entry refers to, and a
// conflict with what is stored now (settings for a village that no
// longer has a box, a township whose code prefix is now shared): that
// passes, if ever, only when someone edits the village list, and until
// then it would hold up every entry behind it, emergencies included.
// The settings must then be put again.
func gone(err error) error {
	if c := cx.Code(err); c == cx.ENOTFOUND || c == cx.ECONFLICT {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	return err
}

// onGroups signs one command per group.
func (s *Service) onGroups(ctx context.Context, groups []api.Group, until time.Time, scheduleID int64,
	topic func(api.Group) string, command func(api.Group) api.Command) ([]store.Retained, error) {
	rs := make([]store.Retained, 0, len(groups))
	for _, g := range groups {
		r, err := s.sign(ctx, topic(g), command(g), until, scheduleID)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// sign gives a command its id, seq and validity and signs it. The
// signature lasts as long as the state is relevant, but never longer than
// signedFor: refresh signs longer-lived state again before then.
func (s *Service) sign(ctx context.Context, topic string, c api.Command, relevantUntil time.Time, scheduleID int64) (store.Retained, error) {
	now := s.opts.Now().UTC()
	seq, err := s.opts.Store.NextCommandSeq(ctx)
	if err != nil {
		return store.Retained{}, err
	}
	c.ID = api.NewCommandID()
	c.Seq = seq
	c.IssuedAt = now
	c.ExpiresAt = relevantUntil
	if max := now.Add(signedFor); c.ExpiresAt.After(max) {
		c.ExpiresAt = max
	}
	payload, err := api.Sign(s.opts.SigningKey, c)
	if err != nil {
		// The command fails the wire check (a row an older version
		// stored): no box would take it, now or later.
		return store.Retained{}, fmt.Errorf("%w: %w", errPermanent, err)
	}
	if len(payload) > maxCommandBytes {
		// The broker would cut the connection at every try (and paho,
		// keeping it in flight, try it again at every reconnect), holding
		// every change behind it, emergencies too, for good.
		return store.Retained{}, fmt.Errorf("%w: its signed command on %s is %d bytes, more than the broker takes (%d)", errPermanent, topic, len(payload), maxCommandBytes)
	}
	return store.Retained{Topic: topic, Payload: payload, Seq: seq, Kind: c.Kind, ScheduleID: scheduleID,
		ExpiresAt: relevantUntil, SignedUntil: c.ExpiresAt}, nil
}

// relevance is how long a schedule's state matters to a box: until its
// last occurrence has finished sounding, plus a day.
func relevance(sc playlists.Schedule, pl playlists.Playlist, now time.Time) time.Time {
	last, ok := sc.Last()
	if !ok {
		return now.AddDate(foreverYears, 0, 0)
	}
	return last.Add(pl.Duration()).Add(24 * time.Hour)
}

// replacedUntil is how long the state a replacement overwrites stays
// relevant: the latest relevance of the stored commands of kind on the
// groups' topics, or fallback if none is stored.
func (s *Service) replacedUntil(ctx context.Context, kind string, groups []api.Group, topic func(api.Group) string, fallback time.Time) time.Time {
	topics := make([]string, len(groups))
	for i, g := range groups {
		topics[i] = topic(g)
	}
	until, found, err := s.opts.Store.RetainedUntil(ctx, kind, topics)
	if err != nil {
		s.log.Warn("read what a replacement overwrites; using the default lifetime", "err", err)
		return fallback
	}
	if !found {
		return fallback
	}
	return until
}

// republishPage publishes the retained commands after seq (clearing from
// the broker those no longer relevant) and returns the last seq read and
// whether there may be more.
func (s *Service) republishPage(ctx context.Context, after int64) (int64, bool) {
	if _, ok := s.held(); !ok {
		return after, false
	}
	rs, err := s.opts.Store.RetainedAfter(ctx, after, retainedPage)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("republish retained state", "err", err)
		}
		return after, false
	}
	now := s.opts.Now()
	toks := make([]paho.Token, 0, len(rs))
	for _, r := range rs {
		payload := r.Payload
		if !now.Before(r.ExpiresAt) {
			payload = []byte{} // clear it from the broker
		}
		toks = append(toks, s.client.Publish(r.Topic, 1, true, payload))
		after = r.Seq
	}
	if err := s.await(ctx, toks); err != nil && ctx.Err() == nil {
		s.log.Warn("retained state not all on the broker; it goes out again on reconnect", "err", err)
	}
	if len(rs) < retainedPage {
		s.log.Info("republished retained state")
		return after, false
	}
	return after, true
}

// refresh signs again, and publishes, the retained commands whose
// signature expires within refreshBefore while their state stays
// relevant after it. It reads only those.
func (s *Service) refresh(ctx context.Context) {
	now := s.opts.Now()
	pub := s.opts.SigningKey.Public().(ed25519.PublicKey)
	n, after := 0, int64(0)
	for ctx.Err() == nil {
		due, err := s.opts.Store.RetainedDue(ctx, now, now.Add(refreshBefore), after, retainedPage)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("read retained state due for signing", "err", err)
			}
			return
		}
		var toks []paho.Token
		for _, r := range due {
			after = r.Seq
			c, err := api.Verify(pub, s.opts.Topics, r.Topic, r.Payload, now)
			if err != nil && !errors.Is(err, api.ErrExpired) || c.Kind == "" {
				s.log.Error("stored retained command does not verify; not signing it again", "topic", r.Topic, "err", err)
				continue
			}
			r2, err := s.sign(ctx, r.Topic, c, r.ExpiresAt, r.ScheduleID)
			if err == nil {
				err = s.opts.Store.PutRetained(ctx, r2)
			}
			if _, ok := s.held(); !ok || errors.Is(err, store.ErrLeaseLost) {
				s.log.Warn("stopped signing retained state again: the publisher lease is lost", "err", err)
				return
			}
			if err != nil {
				s.log.Error("sign retained command again", "topic", r.Topic, "err", err)
				continue
			}
			toks = append(toks, s.client.Publish(r2.Topic, 1, true, r2.Payload))
			n++
		}
		if err := s.await(ctx, toks); err != nil && ctx.Err() == nil {
			s.log.Warn("renewed commands not all on the broker; they go out again on reconnect", "err", err)
		}
		if len(due) < retainedPage {
			break
		}
	}
	if n > 0 {
		s.log.Info("signed retained state again", "commands", n)
	}
}
