// Package planner decides what the loudspeaker plays and when. It expands
// the box's schedules (playlists.Schedule.Occurrences) on the controller's
// time, sleeps on a timer until the next occurrence (waking early when a
// schedule or the clock changes), and plays one occurrence at a time.
//
// Every occurrence is claimed in the journal before it sounds, together
// with its started (or failed) report, so it is dealt with at most once,
// across restarts too. An occurrence the box missed by less than Grace
// (it was booting) starts late; older ones it should have played are
// reported once as failed ("missed").
package planner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"sync"
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
}

// Audio hands out verified clips; an error wrapping fs.ErrNotExist means
// the clip is not (or no longer) downloaded.
type Audio interface {
	Load(sha256 string) ([]int16, error)
}

// Output sounds one clip, returning when it has finished.
type Output interface {
	Play(ctx context.Context, pcm []int16) error
}

// Clock is the controller's time.
type Clock interface {
	Now() time.Time
}

// Defaults.
const (
	DefaultGrace    = 5 * time.Minute
	DefaultLookback = 24 * time.Hour
	// horizon bounds how far ahead the next wake-up is searched, and so
	// how long the planner sleeps at most; it re-plans at least this often.
	horizon = time.Hour
)

// Errors that end a playback early; their text is the failed report's reason.
var (
	ErrWithdrawn = errors.New("cancelled: schedule withdrawn during playback")
	ErrStopped   = errors.New("interrupted: agent stopped during playback")
)

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

type running struct {
	occurrence
	cancel context.CancelCauseFunc
}

// Planner plays the box's schedules.
type Planner struct {
	o    Options
	log  *slog.Logger
	wake chan struct{}
	done chan occurrence

	mu        sync.Mutex
	schedules map[int64]schedule
	cur       *running

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
		o:         o,
		log:       o.Logger,
		wake:      make(chan struct{}, 1),
		done:      make(chan occurrence),
		schedules: map[int64]schedule{},
		handled:   map[occurrence]bool{},
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

// Wake makes the planner look again now (after a schedule or clock change).
func (p *Planner) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Planner) snapshot() map[int64]schedule {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int64]schedule, len(p.schedules))
	for id, s := range p.schedules {
		out[id] = s
	}
	return out
}

// Run plans and plays until ctx ends; a playback in progress is then
// stopped and reported as interrupted.
func (p *Planner) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := p.o.Clock.Now()
		scheds := p.snapshot()
		p.scan(scheds, now)
		p.startNext(ctx, scheds)
		timer.Reset(p.untilNext(scheds, now))
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
		case <-timer.C:
		case <-p.wake:
		case o := <-p.done:
			p.mu.Lock()
			p.cur = nil
			p.mu.Unlock()
			p.handled[o] = true
		}
	}
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
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur != nil && cur.occurrence == o {
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

// pick chooses which due occurrence plays next. Today: the one that was due
// first (ties: lower schedule id), so when two overlap the later waits.
// Priority rules belong here.
func pick(queue []occurrence, _ map[int64]schedule) int {
	best := 0
	for i, o := range queue[1:] {
		b := queue[best]
		if o.at.Before(b.at) || o.at.Equal(b.at) && o.scheduleID < b.scheduleID {
			best = i + 1
		}
	}
	return best
}

func (p *Planner) startNext(ctx context.Context, scheds map[int64]schedule) {
	p.mu.Lock()
	busy := p.cur != nil
	p.mu.Unlock()
	if busy || len(p.queue) == 0 {
		return
	}
	i := pick(p.queue, scheds)
	o := p.queue[i]
	p.queue = append(p.queue[:i], p.queue[i+1:]...)
	s := scheds[o.scheduleID]

	pctx, cancel := context.WithCancelCause(ctx)
	p.mu.Lock()
	p.cur = &running{occurrence: o, cancel: cancel}
	p.mu.Unlock()
	go func() {
		defer cancel(nil)
		p.play(pctx, o, s.state.Playlist)
		p.done <- o
	}()
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

// play runs in its own goroutine; Run marks o handled when it hears done.
func (p *Planner) play(ctx context.Context, o occurrence, pl playlists.Playlist) {
	log := p.log.With("schedule", o.scheduleID, "occurrence", o.at)
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
			log.Warn("occurrence cannot play", "reason", reason, "err", err)
			p.claim(o, api.Event{Type: api.EventFailed, Reason: reason})
			return
		}
		clips[it.SHA256] = pcm
	}
	if !p.claim(o, api.Event{Type: api.EventStarted}) {
		return
	}
	log.Info("playing", "items", len(pl.Items), "duration", pl.Duration())
	if err := playlist(ctx, p.o.Output, pl, clips); err != nil {
		reason := err.Error()
		if cause := context.Cause(ctx); cause != nil {
			reason = cause.Error()
		}
		log.Warn("playback failed", "err", reason)
		p.report(o, api.Event{Type: api.EventFailed, Reason: reason})
		return
	}
	log.Info("played")
	p.report(o, api.Event{Type: api.EventFinished})
}

// playlist sounds every item Repeat times with GapMS between plays.
func playlist(ctx context.Context, out Output, pl playlists.Playlist, clips map[string][]int16) error {
	gap := time.Duration(pl.GapMS) * time.Millisecond
	first := true
	for _, it := range pl.Items {
		n := max(it.Repeat, 1)
		for range n {
			if !first && gap > 0 {
				t := time.NewTimer(gap)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			first = false
			if err := out.Play(ctx, clips[it.SHA256]); err != nil {
				return fmt.Errorf("output: %w", err)
			}
		}
	}
	return nil
}

// untilNext is how long to sleep before the next occurrence starts.
func (p *Planner) untilNext(scheds map[int64]schedule, now time.Time) time.Duration {
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
	return max(next.Sub(now), 0)
}

// sortedIDs orders schedules so missed reports come out the same way every time.
func sortedIDs(m map[int64]schedule) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
