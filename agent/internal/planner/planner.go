// Package planner decides what the loudspeaker plays and when. It expands
// the box's schedules (playlists.Schedule.Occurrences) on the controller's
// time, holds the broadcasts the box has heard of, sleeps on a timer until
// something is due (waking early when a schedule, a broadcast, a download,
// the config or the clock changes), and plays one thing at a time.
//
// Which thing, and whether it cuts off what is sounding, is decided in one
// place, arbitrate, by the rules of package playlists (playlists.Rules:
// priorities, first come first served among equals, expiry, quiet hours).
//
// Every occurrence is claimed in the journal before it sounds, together
// with its started (or failed) report, so it is dealt with at most once,
// across restarts too. An occurrence the box missed by less than Grace
// (it was booting) starts late; older ones it should have played are
// reported once as failed ("missed"). A broadcast moves on in the journal
// the same way (started, partial, finished…), and once it is over it never
// sounds again.
package planner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Journal is the planner's durable memory and report queue.
type Journal interface {
	// Handled reports whether the occurrence was claimed before.
	Handled(scheduleID int64, occ time.Time) (bool, error)
	// Claim marks the occurrence handled and queues ev in one step; false
	// means it was claimed before and nothing was queued.
	Claim(scheduleID int64, occ time.Time, ev api.Event) (bool, error)
	// Append queues a report.
	Append(ev api.Event) (api.Event, error)
	// Advance moves a broadcast on to ev.Type and queues ev in one step;
	// false means the broadcast is over (finished, cancelled, expired or
	// failed) or unknown: nothing was queued, and it must not sound.
	Advance(broadcastID int64, ev api.Event) (bool, error)
}

// Audio hands out verified clips; an error wrapping fs.ErrNotExist means
// the clip is not (or no longer) downloaded.
type Audio interface {
	Load(sha256 string) ([]int16, error)
	// Has reports whether the clip is downloaded and verified: a broadcast
	// waits for its clips, a schedule occurrence does not.
	Has(sha256 string) bool
}

// Output sounds one clip, returning when it has finished.
type Output interface {
	Play(ctx context.Context, pcm []int16) error
}

// Clock is the controller's time, and timers: the planner sleeps on them
// until something is due, and between the clips of a playlist.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
}

// Timer is the control half of a timer (*time.Timer has both methods).
type Timer = interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// Defaults.
const (
	DefaultGrace    = 5 * time.Minute
	DefaultLookback = 24 * time.Hour
	// horizon bounds how far ahead the next wake-up is searched, and so
	// how long the planner sleeps at most; it re-plans at least this often.
	horizon = time.Hour
	// BeatEvery is the longest Run's loop sleeps, so that Alive can tell a
	// stuck scheduler from an idle one (the box's systemd watchdog).
	BeatEvery = 20 * time.Second
)

// Errors that end a playback early; their text is the failed (or, for a
// broadcast, partial) report's reason.
var (
	ErrWithdrawn = errors.New("cancelled: schedule withdrawn during playback")
	ErrStopped   = errors.New("interrupted: agent stopped during playback")
	// ErrCancelled stops a broadcast whose cancellation arrived; the box
	// reports it cancelled when it applies the cancellation.
	ErrCancelled = errors.New("cancelled: broadcast cancelled during playback")
)

// cutError is why a playback was cut off by something of higher priority;
// it is reported partial.
type cutError struct{ by string }

func (e *cutError) Error() string { return "interrupted by " + e.by }

// Options configures a Planner. Journal, Audio, Output and Clock are required.
type Options struct {
	Journal Journal
	Audio   Audio
	Output  Output
	Clock   Clock
	Logger  *slog.Logger
	// Grace is how late an occurrence may still start (default 5 min).
	Grace time.Duration
	// Lookback is how far back missed occurrences are looked for (default 24 h).
	Lookback time.Duration
}

type schedule struct {
	state      api.ScheduleState
	receivedAt time.Time
}

type occurrence struct {
	scheduleID int64
	at         time.Time
}

type broadcast struct {
	state      api.BroadcastState
	receivedAt time.Time
	held       bool // held back by quiet hours (logged once)
	// stored is closed once the box has committed the broadcast to its
	// journal; nil when it was stored before the planner heard of it. The
	// planner may start sounding before then, but journals nothing about
	// the broadcast until it is stored.
	stored <-chan struct{}
}

// job is what the loudspeaker is given: an occurrence of a schedule
// (broadcastID 0) or a broadcast.
type job struct {
	occurrence
	broadcastID int64
}

type running struct {
	job
	cand   playlists.Candidate
	cancel context.CancelCauseFunc
}

// settings are what the box's config changes in planning and playing.
type settings struct {
	rules  playlists.Rules
	volume int // percent, 1..100
}

// Planner plays the box's schedules and broadcasts.
type Planner struct {
	o    Options
	log  *slog.Logger
	wake chan struct{}
	done chan job
	beat atomic.Int64 // when Run's loop last went round (Unix ns, real time)

	mu         sync.Mutex
	schedules  map[int64]schedule
	broadcasts map[int64]*broadcast // those not over
	// over are the broadcasts the planner has seen to their end and
	// forgotten, until Sync is given a state that knows it too (see Sync).
	over map[int64]bool
	cfg  api.BoxConfig // as last applied by Sync
	set  settings
	cur  *running

	// Owned by Run's goroutine.
	queue   []occurrence
	handled map[occurrence]bool
}

// New returns a planner with no schedules.
func New(o Options) (*Planner, error) {
	if o.Journal == nil || o.Audio == nil || o.Output == nil || o.Clock == nil {
		return nil, errors.New("planner: journal, audio, output and clock are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Lookback <= 0 {
		o.Lookback = DefaultLookback
	}
	return &Planner{
		o:          o,
		log:        o.Logger,
		wake:       make(chan struct{}, 1),
		done:       make(chan job),
		schedules:  map[int64]schedule{},
		broadcasts: map[int64]*broadcast{},
		over:       map[int64]bool{},
		set:        settings{volume: 100},
		handled:    map[occurrence]bool{},
	}, nil
}

// Put adds or replaces a schedule. receivedAt (controller time) is when the
// box got this version: occurrences before it were not the box's to miss.
func (p *Planner) Put(s api.ScheduleState, receivedAt time.Time) {
	p.mu.Lock()
	p.schedules[s.Schedule.ID] = schedule{state: s, receivedAt: receivedAt}
	p.mu.Unlock()
	p.Wake()
}

// Remove forgets a schedule; if it is sounding, it stops.
func (p *Planner) Remove(id int64) {
	p.mu.Lock()
	delete(p.schedules, id)
	if p.cur != nil && p.cur.scheduleID == id {
		p.cur.cancel(ErrWithdrawn)
	}
	p.mu.Unlock()
	p.Wake()
}

// PutBroadcast adds a broadcast that is not over, to play as soon as its
// clips are downloaded and the rules let it, or replaces its state (the
// controller re-signed it). receivedAt is when the box first heard of it.
func (p *Planner) PutBroadcast(b api.BroadcastState, receivedAt time.Time) {
	p.PutBroadcastWhileStoring(b, receivedAt, nil)
}

// PutBroadcastWhileStoring is PutBroadcast for a broadcast the box is
// still committing to its journal: stored is closed when that is done
// (whether or not it succeeded). An emergency can then begin to sound
// while the disk syncs; its reports wait for the commit, and if the
// journal does not know the broadcast after it, the sound stops.
func (p *Planner) PutBroadcastWhileStoring(b api.BroadcastState, receivedAt time.Time, stored <-chan struct{}) {
	p.mu.Lock()
	if old, ok := p.broadcasts[b.ID]; ok {
		old.state = b
	} else {
		p.broadcasts[b.ID] = &broadcast{state: b, receivedAt: receivedAt, stored: stored}
	}
	p.mu.Unlock()
	p.Wake()
}

// CancelBroadcast forgets a broadcast; if it is sounding, it stops at once.
func (p *Planner) CancelBroadcast(id int64) {
	p.mu.Lock()
	delete(p.broadcasts, id)
	if p.cur != nil && p.cur.broadcastID == id {
		p.cur.cancel(ErrCancelled)
	}
	p.mu.Unlock()
	p.Wake()
}

// Schedule is a schedule to play, and when (controller time) the box got
// this version: occurrences before it were not the box's to miss.
type Schedule struct {
	State      api.ScheduleState
	ReceivedAt time.Time
}

// Broadcast is a broadcast that is not over, and when the box first heard
// of it.
type Broadcast struct {
	State      api.BroadcastState
	ReceivedAt time.Time
}

// Sync makes what the planner plays exactly the schedules, broadcasts and
// config given: the box's stored state, which it hands over whole after
// every change. A schedule no longer given stops if it is sounding (as
// Remove); so does a broadcast (as CancelBroadcast), except one handed
// over with PutBroadcastWhileStoring that is still being stored. The
// config is applied only when it changed.
//
// The state may have been read just before the planner journaled the end
// of a broadcast (finished, expired…) and forgot it: such a broadcast is
// not taken back, so it cannot sound again. The planner remembers it until
// a Sync no longer lists it.
func (p *Planner) Sync(scheds []Schedule, bcasts []Broadcast, cfg api.BoxConfig) {
	set, cfgChanged := settings{}, !sameConfig(cfg, p.config())
	if cfgChanged {
		set = p.settings(cfg)
	}
	p.mu.Lock()
	p.schedules = make(map[int64]schedule, len(scheds))
	for _, s := range scheds {
		p.schedules[s.State.Schedule.ID] = schedule{state: s.State, receivedAt: s.ReceivedAt}
	}
	if p.cur != nil && p.cur.broadcastID == 0 {
		if _, ok := p.schedules[p.cur.scheduleID]; !ok {
			p.cur.cancel(ErrWithdrawn)
		}
	}
	live := make(map[int64]bool, len(bcasts))
	for _, b := range bcasts {
		live[b.State.ID] = true
		if old, ok := p.broadcasts[b.State.ID]; ok {
			old.state = b.State
		} else if !p.over[b.State.ID] {
			p.broadcasts[b.State.ID] = &broadcast{state: b.State, receivedAt: b.ReceivedAt}
		}
	}
	for id, b := range p.broadcasts {
		if live[id] || storing(b.stored) {
			continue
		}
		delete(p.broadcasts, id)
		if p.cur != nil && p.cur.broadcastID == id {
			p.cur.cancel(ErrCancelled)
		}
	}
	for id := range p.over {
		if !live[id] {
			delete(p.over, id)
		}
	}
	if cfgChanged {
		p.cfg, p.set = cfg, set
	}
	p.mu.Unlock()
	p.Wake()
}

func (p *Planner) config() api.BoxConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

func sameConfig(a, b api.BoxConfig) bool {
	return a.Timezone == b.Timezone && a.Volume == b.Volume && slices.Equal(a.QuietHours, b.QuietHours)
}

// storing reports whether a broadcast is still being committed to the
// journal (see broadcast.stored).
func storing(stored <-chan struct{}) bool {
	if stored == nil {
		return false
	}
	select {
	case <-stored:
		return false
	default:
		return true
	}
}

// SetConfig applies the box's config (its groups' configs merged): quiet
// hours, the zone they are read in, and the volume.
func (p *Planner) SetConfig(c api.BoxConfig) {
	set := p.settings(c)
	p.mu.Lock()
	p.cfg, p.set = c, set
	p.mu.Unlock()
	p.Wake()
}

// settings are what config c changes in planning and playing.
func (p *Planner) settings(c api.BoxConfig) settings {
	set := settings{rules: playlists.Rules{QuietHours: c.QuietHours}, volume: 100}
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			p.log.Warn("config timezone unknown; reading quiet hours in each schedule's zone", "timezone", c.Timezone, "err", err)
		}
		set.rules.Location = loc
	}
	if c.Volume > 0 {
		set.volume = min(c.Volume, 100)
	}
	return set
}

// Wake makes the planner look again now (after a schedule, download or
// clock change).
func (p *Planner) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Planner) snapshot() (map[int64]schedule, map[int64]broadcast, settings) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int64]schedule, len(p.schedules))
	for id, s := range p.schedules {
		out[id] = s
	}
	bs := make(map[int64]broadcast, len(p.broadcasts))
	for id, b := range p.broadcasts {
		bs[id] = *b
	}
	return out, bs, p.set
}

func (p *Planner) current() *running {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Run plans and plays until ctx ends; a playback in progress is then
// stopped and reported as interrupted.
func (p *Planner) Run(ctx context.Context) error {
	timer, fired := p.o.Clock.NewTimer(0)
	defer timer.Stop()
	for {
		p.beat.Store(time.Now().UnixNano())
		now := p.o.Clock.Now()
		scheds, bcasts, set := p.snapshot()
		p.scan(scheds, now)
		p.arbitrate(ctx, scheds, bcasts, set, now)
		timer.Reset(min(p.untilNext(scheds, bcasts, now), BeatEvery))
		select {
		case <-ctx.Done():
			p.mu.Lock()
			cur := p.cur
			if cur != nil {
				cur.cancel(ErrStopped)
			}
			p.mu.Unlock()
			if cur != nil {
				<-p.done
			}
			return nil
		case <-fired:
		case <-p.wake:
		case j := <-p.done:
			p.mu.Lock()
			p.cur = nil
			p.mu.Unlock()
			if j.broadcastID == 0 {
				p.handled[j.occurrence] = true
			}
		}
	}
}

// Alive reports whether Run's loop went round within the last d (it does
// at least every BeatEvery while it works).
func (p *Planner) Alive(d time.Duration) bool {
	b := p.beat.Load()
	return b != 0 && time.Since(time.Unix(0, b)) < d
}

// scan queues occurrences that are due and reports missed ones.
func (p *Planner) scan(scheds map[int64]schedule, now time.Time) {
	for _, id := range sortedIDs(scheds) {
		s := scheds[id]
		from := now.Add(-p.o.Lookback)
		if r := s.receivedAt.Add(-p.o.Grace); r.After(from) {
			from = r
		}
		occs, err := s.state.Schedule.Occurrences(from, now.Add(time.Nanosecond))
		if err != nil {
			p.log.Error("schedule cannot be expanded", "schedule", id, "err", err)
			continue
		}
		for _, at := range occs {
			o := occurrence{scheduleID: id, at: at}
			if p.isKnown(o) {
				continue
			}
			late := now.Sub(at)
			switch {
			case late <= p.o.Grace:
				p.queue = append(p.queue, o)
				if late > time.Second {
					p.log.Info("occurrence starts late", "schedule", id, "occurrence", at, "late", late.Round(time.Second))
				}
			case !at.Before(s.receivedAt):
				reason := fmt.Sprintf("missed: box was not running at %s", at.Format(time.RFC3339))
				p.claim(o, api.Event{Type: api.EventFailed, Reason: reason})
				p.handled[o] = true
				p.log.Warn("occurrence missed", "schedule", id, "occurrence", at)
			default:
				// Before the box had the schedule, and too late to start now.
			}
		}
	}
	// What is older than the scan window is never looked at again.
	for o := range p.handled {
		if o.at.Before(now.Add(-p.o.Lookback - p.o.Grace)) {
			delete(p.handled, o)
		}
	}
	// Drop queued occurrences of schedules that are gone.
	q := p.queue[:0]
	for _, o := range p.queue {
		if _, ok := scheds[o.scheduleID]; ok {
			q = append(q, o)
		}
	}
	p.queue = q
}

// isKnown reports whether o is queued, sounding or handled.
func (p *Planner) isKnown(o occurrence) bool {
	if p.handled[o] {
		return true
	}
	for _, q := range p.queue {
		if q == o {
			return true
		}
	}
	if cur := p.current(); cur != nil && cur.broadcastID == 0 && cur.occurrence == o {
		return true
	}
	done, err := p.o.Journal.Handled(o.scheduleID, o.at)
	if err != nil {
		p.log.Error("journal", "err", err)
		return true // never risk playing twice
	}
	if done {
		p.handled[o] = true
	}
	return done
}

// waiter is a job that may sound now, as the rules see it.
type waiter struct {
	job  job
	cand playlists.Candidate
}

// pick chooses which of the waiting jobs goes first (playlists.Pick:
// priority, then first come first served), or -1.
func pick(waiting []waiter) int {
	cands := make([]playlists.Candidate, len(waiting))
	for i, w := range waiting {
		cands[i] = w.cand
	}
	return playlists.Pick(cands)
}

func occurrenceCandidate(o occurrence, s schedule, grace time.Duration) playlists.Candidate {
	loc, _ := s.state.Schedule.Location() // nil (the default zone) if unknown
	return playlists.Candidate{Priority: playlists.Routine, Scheduled: true, ID: o.scheduleID, Due: o.at, Until: o.at.Add(grace), Zone: loc}
}

func broadcastCandidate(b api.BroadcastState) playlists.Candidate {
	return playlists.Candidate{Priority: b.Priority, Test: b.Test, ID: b.ID, Due: b.IssuedAt, Until: b.ExpiresAt}
}

// describe names a job for logs and partial reports.
func describe(w waiter) string {
	if w.job.broadcastID == 0 {
		return fmt.Sprintf("schedule %d", w.job.scheduleID)
	}
	return fmt.Sprintf("%s %d (%s)", Label(w.cand.Test, "broadcast"), w.job.broadcastID, w.cand.Priority)
}

// Label marks what concerns a test broadcast, in logs and reasons, so it
// can never be taken for a real one: "TEST " before s.
func Label(test bool, s string) string {
	if test {
		return "TEST " + s
	}
	return s
}

// arbitrate is the planner's one decision point. It turns what waits (due
// occurrences, broadcasts with their clips on disk) into candidates, lets
// the rules drop those that may not sound (expired, quiet hours), picks
// the one that goes first, and starts it, or cuts off what is sounding for
// it, or lets it wait.
func (p *Planner) arbitrate(ctx context.Context, scheds map[int64]schedule, bcasts map[int64]broadcast, set settings, now time.Time) {
	var waiting []waiter
	q := p.queue[:0]
	for _, o := range p.queue {
		c := occurrenceCandidate(o, scheds[o.scheduleID], p.o.Grace)
		switch set.rules.Admit(c, now) {
		case playlists.Expire:
			reason := fmt.Sprintf("skipped: loudspeaker still busy %s after the occurrence", p.o.Grace)
			if missing := p.missing(scheds[o.scheduleID].state.Playlist); missing != 0 {
				reason = fmt.Sprintf("audio %d not downloaded within %s of the occurrence", missing, p.o.Grace)
			}
			p.claim(o, api.Event{Type: api.EventFailed, Reason: reason})
			p.handled[o] = true
			p.log.Warn("occurrence skipped: loudspeaker busy too long", "schedule", o.scheduleID, "occurrence", o.at)
			continue
		case playlists.Skip:
			w, _ := set.rules.QuietAt(c, now)
			p.claim(o, api.Event{Type: api.EventFailed, Reason: "skipped: quiet hours " + w.String()})
			p.handled[o] = true
			p.log.Info("occurrence skipped: quiet hours", "schedule", o.scheduleID, "occurrence", o.at, "quiet_hours", w.String())
			continue
		}
		q = append(q, o)
		// A box that was off, or had no network, at the occurrence may
		// still be fetching the clip: the occurrence waits for it, within
		// the grace, rather than failing at once.
		if p.missing(scheds[o.scheduleID].state.Playlist) != 0 {
			continue
		}
		waiting = append(waiting, waiter{job{occurrence: o}, c})
	}
	p.queue = q

	cur := p.current()
	for _, id := range sortedIDs(bcasts) {
		b := bcasts[id]
		if cur != nil && cur.broadcastID == id {
			continue
		}
		c := broadcastCandidate(b.state)
		ready := p.ready(b.state.Playlist)
		switch set.rules.Admit(c, now) {
		case playlists.Expire:
			p.expire(b, ready)
			continue
		case playlists.Hold:
			if !b.held {
				w, _ := set.rules.QuietAt(c, now)
				p.log.Info(Label(b.state.Test, "routine broadcast held until quiet hours end"), "broadcast", id, "quiet_hours", w.String())
				p.mu.Lock()
				if x, ok := p.broadcasts[id]; ok {
					x.held = true
				}
				p.mu.Unlock()
			}
			continue
		}
		if b.held {
			p.mu.Lock()
			if x, ok := p.broadcasts[id]; ok {
				x.held = false
			}
			p.mu.Unlock()
		}
		if ready {
			waiting = append(waiting, waiter{job{broadcastID: id}, c})
		}
	}

	i := pick(waiting)
	if i < 0 {
		return
	}
	w := waiting[i]
	var playing *playlists.Candidate
	if cur != nil {
		playing = &cur.cand
	}
	switch set.rules.Arbitrate(playing, w.cand, now) {
	case playlists.Start:
		p.start(ctx, w, scheds, bcasts, set)
	case playlists.Interrupt:
		p.log.Info(Label(w.cand.Test, "cutting off lower priority"), "for", describe(w), "cut", describe(waiter{cur.job, cur.cand}))
		cur.cancel(&cutError{by: describe(w)})
	}
}

// missing returns the id of a clip of the playlist that is not on disk,
// or 0 when all are.
func (p *Planner) missing(pl playlists.Playlist) int64 {
	for _, it := range pl.Items {
		if !p.o.Audio.Has(it.SHA256) {
			return it.AudioID
		}
	}
	return 0
}

// ready reports whether every clip of the playlist is on disk.
func (p *Planner) ready(pl playlists.Playlist) bool {
	for _, it := range pl.Items {
		if !p.o.Audio.Has(it.SHA256) {
			return false
		}
	}
	return true
}

// expire reports a broadcast past its expiry, once, and forgets it.
func (p *Planner) expire(b broadcast, ready bool) {
	at := b.state.ExpiresAt.UTC().Format(time.RFC3339)
	reason := "expired at " + at + " while waiting for the loudspeaker"
	switch {
	case !b.receivedAt.Before(b.state.ExpiresAt):
		reason = "expired at " + at + ", before the box received it"
	case !ready:
		reason = "expired at " + at + " before its audio was downloaded"
	}
	waitStored(b.stored)
	p.advance(b.state, api.Event{Type: api.EventExpired, Reason: reason})
	p.forget(b.state.ID)
	p.log.Warn(Label(b.state.Test, "broadcast expired; not played"), "broadcast", b.state.ID, "reason", reason)
}

// forget drops a broadcast that is over; the journal says so already.
func (p *Planner) forget(broadcastID int64) {
	p.mu.Lock()
	delete(p.broadcasts, broadcastID)
	p.over[broadcastID] = true
	p.mu.Unlock()
}

func (p *Planner) start(ctx context.Context, w waiter, scheds map[int64]schedule, bcasts map[int64]broadcast, set settings) {
	// Not a child of ctx: Run stops it with ErrStopped, so the report
	// says why (a child would only see "context canceled").
	pctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	p.mu.Lock()
	p.cur = &running{job: w.job, cand: w.cand, cancel: cancel}
	p.mu.Unlock()
	if w.job.broadcastID != 0 {
		b := bcasts[w.job.broadcastID]
		go func() {
			defer cancel(nil)
			if p.playBroadcast(pctx, b, broadcastVolume(b.state, set.volume)) {
				p.forget(b.state.ID)
			}
			p.done <- w.job
		}()
		return
	}
	o := w.job.occurrence
	for i, x := range p.queue {
		if x == o {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			break
		}
	}
	s := scheds[o.scheduleID]
	go func() {
		defer cancel(nil)
		p.play(pctx, o, s.state.Playlist, set.volume)
		p.done <- w.job
	}()
}

// broadcastVolume is the volume a broadcast plays at: 100 when forced, its
// own when it names one, else the box's.
func broadcastVolume(b api.BroadcastState, box int) int {
	switch {
	case b.ForceFullVolume:
		return 100
	case b.Volume > 0:
		return min(b.Volume, 100)
	}
	return box
}

// claim marks the occurrence handled in the journal, queuing ev. It runs
// on Run's goroutine or the playing one, so it leaves p.handled to Run.
func (p *Planner) claim(o occurrence, ev api.Event) bool {
	ev.ScheduleID = o.scheduleID
	at := o.at
	ev.Occurrence = &at
	ev.At = p.o.Clock.Now()
	ok, err := p.o.Journal.Claim(o.scheduleID, o.at, ev)
	if err != nil {
		p.log.Error("claim occurrence", "schedule", o.scheduleID, "occurrence", o.at, "err", err)
		return false
	}
	return ok
}

func (p *Planner) report(o occurrence, ev api.Event) {
	ev.ScheduleID = o.scheduleID
	at := o.at
	ev.Occurrence = &at
	ev.At = p.o.Clock.Now()
	if _, err := p.o.Journal.Append(ev); err != nil {
		p.log.Error("report", "schedule", o.scheduleID, "type", ev.Type, "err", err)
	}
}

// load reads every clip of the playlist, with its loudness gain and at the
// volume. Clips are keyed by sha256: one clip has one gain, as the
// controller measured it.
func (p *Planner) load(pl playlists.Playlist, volume int) (map[string][]int16, string, error) {
	clips := map[string][]int16{}
	for _, it := range pl.Items {
		if _, ok := clips[it.SHA256]; ok {
			continue
		}
		pcm, err := p.o.Audio.Load(it.SHA256)
		if err != nil {
			reason := fmt.Sprintf("audio %d not downloaded", it.AudioID)
			if !errors.Is(err, fs.ErrNotExist) {
				reason = fmt.Sprintf("audio %d: %v", it.AudioID, err)
			}
			return nil, reason, err
		}
		clips[it.SHA256] = scale(pcm, it.GainDB, volume)
	}
	return clips, "", nil
}

// play runs in its own goroutine; Run marks o handled when it hears done.
func (p *Planner) play(ctx context.Context, o occurrence, pl playlists.Playlist, volume int) {
	log := p.log.With("schedule", o.scheduleID, "occurrence", o.at)
	clips, reason, err := p.load(pl, volume)
	if err != nil {
		log.Warn("occurrence cannot play", "reason", reason, "err", err)
		p.claim(o, api.Event{Type: api.EventFailed, Reason: reason})
		return
	}
	if !p.claim(o, api.Event{Type: api.EventStarted}) {
		return
	}
	log.Info("playing", "items", len(pl.Items), "duration", pl.Duration(), "volume", volume)
	if err := p.playlist(ctx, pl, clips, 1); err != nil {
		reason := err.Error()
		cause := context.Cause(ctx)
		if cause != nil {
			reason = cause.Error()
		}
		if cut := (*cutError)(nil); errors.As(cause, &cut) {
			// Not resumed (playlists.Resumes): the schedule carries on at
			// its next occurrence.
			log.Info("occurrence cut off", "by", cut.by)
			p.report(o, api.Event{Type: api.EventPartial, Reason: reason})
			return
		}
		log.Warn("playback failed", "err", reason)
		p.report(o, api.Event{Type: api.EventFailed, Reason: reason})
		return
	}
	log.Info("played")
	p.report(o, api.Event{Type: api.EventFinished})
}

// advance moves a broadcast on in the journal, with its report.
func (p *Planner) advance(b api.BroadcastState, ev api.Event) bool {
	return p.advanceAt(b, ev, p.o.Clock.Now())
}

// advanceAt is advance with a report of something that happened at at.
func (p *Planner) advanceAt(b api.BroadcastState, ev api.Event, at time.Time) bool {
	ev.BroadcastID = b.ID
	ev.Test = b.Test
	ev.At = at
	ok, err := p.o.Journal.Advance(b.ID, ev)
	if err != nil {
		p.log.Error("journal broadcast", "broadcast", b.ID, "type", ev.Type, "err", err)
		return false
	}
	return ok
}

// testToneGap is the pause between a test broadcast's tone and its clips.
const testToneGap = 300 * time.Millisecond

// waitStored waits until a broadcast is in the journal (see broadcast.stored).
func waitStored(stored <-chan struct{}) {
	if stored != nil {
		<-stored
	}
}

// errOver stops a sound begun while the journal was syncing when the
// journal says the broadcast must not sound (cancelled or played before).
var errOver = errors.New("broadcast is over")

// playBroadcast runs in its own goroutine. It reports whether the
// broadcast is over (finished, failed, cancelled): false when it was cut
// off and waits to play again from the start.
//
// The sound begins at once, while the started report is journaled (a
// disk sync): a box must not keep villagers waiting on its disk. The
// report still reaches the outbox only once durable, and is sent only
// from there. If the box dies in between, the broadcast was never
// reported started and plays again from the start when the box is back,
// unless it expired or was cancelled meanwhile; the journal is asked
// before the sound may go on, so a broadcast it says is over is cut at
// once.
func (p *Planner) playBroadcast(ctx context.Context, bb broadcast, volume int) (over bool) {
	b := bb.state
	log := p.log.With("broadcast", b.ID, "priority", b.Priority, "test", b.Test)
	clips, reason, err := p.load(b.Playlist, volume)
	if err != nil {
		log.Warn(Label(b.Test, "broadcast cannot play"), "reason", reason, "err", err)
		waitStored(bb.stored)
		p.advance(b, api.Event{Type: api.EventFailed, Reason: reason})
		return true
	}
	sctx, stopSound := context.WithCancelCause(ctx)
	defer stopSound(nil)
	started := make(chan bool, 1)
	at := p.o.Clock.Now()
	go func() {
		waitStored(bb.stored)
		ok := p.advanceAt(b, api.Event{Type: api.EventStarted}, at)
		if !ok {
			stopSound(errOver)
		}
		started <- ok
	}()
	passes := max(b.Repeat, 1)
	log.Info(Label(b.Test, "broadcast playing"), "items", len(b.Playlist.Items), "repeat", passes, "volume", volume)
	err = p.soundBroadcast(sctx, b, clips, passes, volume)
	if !<-started {
		log.Info(Label(b.Test, "broadcast stopped: the journal says it is over (cancelled, or played before)"))
		return true
	}
	if err == nil {
		log.Info(Label(b.Test, "broadcast played"))
		p.advance(b, api.Event{Type: api.EventFinished})
		return true
	}
	cause := context.Cause(ctx)
	var cut *cutError
	switch {
	case errors.Is(cause, ErrCancelled):
		log.Info(Label(b.Test, "broadcast stopped: cancelled"))
		return true
	case errors.As(cause, &cut) || errors.Is(cause, ErrStopped):
		// Resumed (playlists.Resumes): it waits, and plays again from the
		// start when its turn comes, if it has not expired.
		log.Info(Label(b.Test, "broadcast cut off; it will play again from the start"), "reason", cause)
		return !p.advance(b, api.Event{Type: api.EventPartial, Reason: cause.Error()})
	}
	reason = err.Error()
	if cause != nil {
		reason = cause.Error()
	}
	log.Warn(Label(b.Test, "broadcast playback failed"), "err", reason)
	p.advance(b, api.Event{Type: api.EventFailed, Reason: reason})
	return true
}

// soundBroadcast plays a test broadcast's tone, then the playlist passes times.
func (p *Planner) soundBroadcast(ctx context.Context, b api.BroadcastState, clips map[string][]int16, passes, volume int) error {
	if b.Test {
		if err := p.o.Output.Play(ctx, scale(TestTone(), 0, volume)); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		if err := p.sleep(ctx, testToneGap); err != nil {
			return err
		}
	}
	return p.playlist(ctx, b.Playlist, clips, passes)
}

// playlist sounds every item Repeat times with GapMS between plays, and
// the whole list passes times.
func (p *Planner) playlist(ctx context.Context, pl playlists.Playlist, clips map[string][]int16, passes int) error {
	gap := time.Duration(pl.GapMS) * time.Millisecond
	first := true
	for range max(passes, 1) {
		for _, it := range pl.Items {
			n := max(it.Repeat, 1)
			for range n {
				if !first && gap > 0 {
					if err := p.sleep(ctx, gap); err != nil {
						return err
					}
				}
				first = false
				if err := p.o.Output.Play(ctx, clips[it.SHA256]); err != nil {
					return fmt.Errorf("output: %w", err)
				}
			}
		}
	}
	return nil
}

// sleep waits d on the clock, or until ctx ends.
func (p *Planner) sleep(ctx context.Context, d time.Duration) error {
	t, fired := p.o.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-fired:
		return nil
	}
}

// untilNext is how long to sleep before something is due: the next
// occurrence, a waiting occurrence's or broadcast's deadline, or (while
// quiet hours hold a broadcast) the next minute, when they may end.
func (p *Planner) untilNext(scheds map[int64]schedule, bcasts map[int64]broadcast, now time.Time) time.Duration {
	next := now.Add(horizon)
	for _, s := range scheds {
		occs, err := s.state.Schedule.Occurrences(now.Add(time.Nanosecond), next)
		if err != nil || len(occs) == 0 {
			continue
		}
		if occs[0].Before(next) {
			next = occs[0]
		}
	}
	earlier := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	for _, o := range p.queue {
		earlier(o.at.Add(p.o.Grace))
	}
	for _, b := range bcasts {
		earlier(b.state.ExpiresAt)
		if b.held {
			earlier(now.Truncate(time.Minute).Add(time.Minute))
		}
	}
	return max(next.Sub(now), 0)
}

// sortedIDs orders schedules (or broadcasts) so reports come out the same
// way every time.
func sortedIDs[T any](m map[int64]T) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
