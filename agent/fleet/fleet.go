// Package fleet runs many loudspeaker boxes in one process: each the real
// agent (agent/internal/box) with its own MQTT client, identity, clock
// measurement and data directory under Dir/<village>. The controller's demo
// and end-to-end tests use it to stand in for a county of boxes; its
// accessors let tests look inside a box, and StopBox/StartBox take one
// down and bring it back like a power cut.
//
// A fleet never opens a sound card: oto allows one device context per
// process, so outputs are "null" (default) or "wav:DIR" (box v writes its
// clips to DIR/v).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/box"
	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
)

// Options configures a fleet. Controller, Dir and Boxes are required.
type Options struct {
	Controller  string // controller base URL
	Broker      string // optional: overrides the broker the controller suggests
	Dir         string // each box's data directory is Dir/<village>
	TopicPrefix string // optional: overrides the prefix the controller gives
	Output      string // "null" (default) or "wav:DIR"
	Boxes       []Box
	Logger      *slog.Logger

	// ResendAfter is how long a box waits for an ack before it sends its
	// reports again (0: the box's default).
	// Grace is how late a box may still start an occurrence (default 5 min).
	Grace       time.Duration
	ResendAfter time.Duration
	// PresenceEvery is how often a connected box says again it is online
	// (0: the box's default).
	PresenceEvery time.Duration
	// ReportLinger is how long a broadcast's received and downloaded
	// reports wait for its started report at most (0: the box's default).
	ReportLinger time.Duration
	// ReportLoss is the chance that any one report publish is lost on the
	// link (see box.Options.DropReport); 0 loses none.
	ReportLoss float64
	// Started, if set, is called as each box starts (for progress).
	Started func(village string)
	// HTTPClient is shared by every box (enrollment, clock, clips); nil
	// gives each box its own.
	HTTPClient *http.Client
}

// Box is one box to run. EnrollToken is needed only on its first start
// (while Dir/<village> holds no identity).
type Box struct {
	Village     string
	EnrollToken string
	// ClockSkew puts this box's own clock off true time (box.Options.LocalSkew).
	ClockSkew time.Duration
	// Stopped leaves the box down at Start; StartBox brings it up.
	Stopped bool
}

// Occurrence is one occurrence a box dealt with. Outcome is "started"
// when it played (or began to), "failed" when it could not.
type Occurrence struct {
	ScheduleID int64
	At         time.Time
	Outcome    string
}

// Broadcast is a broadcast as a box remembers it. Status is the type of
// the last report that moved it on: received (waiting), started
// (sounding), partial (cut off, waiting to play again from the start), or
// one of the final finished, cancelled, expired, failed. Plays counts the
// times it began to sound.
type Broadcast struct {
	ID         int64
	Status     string
	Plays      int
	Test       bool
	ReceivedAt time.Time
}

// Fleet is a set of running boxes.
type Fleet struct {
	o      Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	boxes map[string]*member
	order []string

	published, dropped atomic.Int64 // report publishes attempted, and lost by ReportLoss
}

type member struct {
	box    Box
	agent  *box.Agent
	cancel context.CancelFunc
	done   chan struct{}
}

// startConcurrency bounds simultaneous enrollments and state opens.
const startConcurrency = 16

// Start enrolls (where needed) and starts every box. It fails, stopping the
// boxes it started, if any box cannot start (say, its token is refused).
// The boxes run until ctx ends or Close.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	if o.Controller == "" || o.Dir == "" {
		return nil, errors.New("fleet: controller and dir are required")
	}
	if o.Output == "" {
		o.Output = "null"
	}
	if o.Output != "null" && !strings.HasPrefix(o.Output, "wav:") {
		return nil, fmt.Errorf("fleet: output %q: only null or wav:DIR (one process has at most one sound card context)", o.Output)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &Fleet{o: o, log: o.Logger, ctx: fctx, cancel: cancel, boxes: map[string]*member{}}
	for _, b := range o.Boxes {
		if _, dup := f.boxes[b.Village]; dup {
			cancel()
			return nil, fmt.Errorf("fleet: village %s given twice", b.Village)
		}
		f.boxes[b.Village] = &member{box: b}
		f.order = append(f.order, b.Village)
	}

	sem := make(chan struct{}, startConcurrency)
	errs := make(chan error, len(o.Boxes))
	var wg sync.WaitGroup
	for _, v := range f.order {
		if f.boxes[v].box.Stopped {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := f.StartBox(v); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// Villages lists the fleet's boxes in the order given.
func (f *Fleet) Villages() []string { return append([]string(nil), f.order...) }

// DataDir is the data directory of a village's box.
func (f *Fleet) DataDir(village string) string { return filepath.Join(f.o.Dir, village) }

func (f *Fleet) member(village string) (*member, error) {
	m, ok := f.boxes[village]
	if !ok {
		return nil, fmt.Errorf("fleet: no box for village %s", village)
	}
	return m, nil
}

// StartBox starts a stopped box (a no-op for a running one).
func (f *Fleet) StartBox(village string) error {
	m, err := f.member(village)
	if err != nil {
		return err
	}
	f.mu.Lock()
	running := m.agent != nil
	f.mu.Unlock()
	if running {
		return nil
	}
	var out player.Output = player.NewNull()
	if dir, ok := strings.CutPrefix(f.o.Output, "wav:"); ok {
		if out, err = player.NewWAVDir(filepath.Join(dir, village)); err != nil {
			return err
		}
	}
	a, err := box.New(f.ctx, box.Options{
		Village:     village,
		Controller:  f.o.Controller,
		Broker:      f.o.Broker,
		TopicPrefix: f.o.TopicPrefix,
		DataDir:     f.DataDir(village),
		EnrollToken: m.box.EnrollToken,
		Output:      out,
		Logger:      f.log,
		HTTPClient:  f.o.HTTPClient,
		ResendAfter: f.o.ResendAfter, PresenceEvery: f.o.PresenceEvery, ReportLinger: f.o.ReportLinger,
		Grace:      f.o.Grace,
		LocalSkew:  m.box.ClockSkew,
		DropReport: f.dropReport,
	})
	if err != nil {
		return fmt.Errorf("box %s: %w", village, err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	f.mu.Lock()
	m.agent, m.cancel, m.done = a, cancel, done
	f.mu.Unlock()
	if f.o.Started != nil {
		f.o.Started(village)
	}
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			f.log.Error("box stopped with an error", "village", village, "err", err)
		}
	}()
	return nil
}

// dropReport counts a report publish and decides whether ReportLoss loses it.
func (f *Fleet) dropReport() bool {
	f.published.Add(1)
	if f.o.ReportLoss > 0 && rand.Float64() < f.o.ReportLoss {
		f.dropped.Add(1)
		return true
	}
	return false
}

// Publishes counts the report batches the boxes tried to publish, and
// those of them ReportLoss lost.
func (f *Fleet) Publishes() (tried, lost int64) { return f.published.Load(), f.dropped.Load() }

// Reports is how many reports a box has made in all (its last seq) and
// how many of them still await the controller's ack.
func (f *Fleet) Reports(village string) (made int64, pending int, err error) {
	err = f.withState(village,
		func(a *box.Agent) error {
			if made, err = a.LastSeq(); err != nil {
				return err
			}
			pending, err = a.OutboxLen()
			return err
		},
		func(db *store.DB) error {
			if made, err = db.LastSeq(); err != nil {
				return err
			}
			pending, err = db.OutboxLen()
			return err
		})
	return made, pending, err
}

// StopBox stops one box as a clean shutdown would (it publishes offline
// presence); its data directory stays for StartBox.
func (f *Fleet) StopBox(village string) error {
	m, err := f.member(village)
	if err != nil {
		return err
	}
	f.mu.Lock()
	a, cancel, done := m.agent, m.cancel, m.done
	m.agent, m.cancel, m.done = nil, nil, nil
	f.mu.Unlock()
	if a == nil {
		return nil
	}
	cancel()
	<-done
	return a.Close()
}

// Running reports whether a village's box is running.
func (f *Fleet) Running(village string) bool {
	m, err := f.member(village)
	if err != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return m.agent != nil
}

// Connected reports whether a village's box is running and connected to the broker.
func (f *Fleet) Connected(village string) bool {
	a := f.agent(village)
	return a != nil && a.Connected()
}

// ReadyFor counts the running boxes that hold the schedule with every clip
// of its playlist downloaded and verified: ready to play it offline.
func (f *Fleet) ReadyFor(scheduleID int64) int {
	n := 0
	for _, v := range f.order {
		if a := f.agent(v); a != nil && a.Ready(scheduleID) {
			n++
		}
	}
	return n
}

// ClockOffset is how far the controller's clock is ahead of the box's,
// as the box last measured it.
func (f *Fleet) ClockOffset(village string) (time.Duration, error) {
	a := f.agent(village)
	if a == nil {
		return 0, fmt.Errorf("fleet: box %s is not running", village)
	}
	return a.ClockOffset(), nil
}

func (f *Fleet) agent(village string) *box.Agent {
	m, err := f.member(village)
	if err != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return m.agent
}

// withState runs fn on the box's state: the running box's, or, for a
// stopped box, its state file opened read-only.
func (f *Fleet) withState(village string, running func(*box.Agent) error, stopped func(*store.DB) error) error {
	if _, err := f.member(village); err != nil {
		return err
	}
	if a := f.agent(village); a != nil {
		return running(a)
	}
	db, err := store.OpenReadOnly(filepath.Join(f.DataDir(village), box.StateFile))
	if err != nil {
		return err
	}
	defer db.Close()
	return stopped(db)
}

// OutboxLen is how many of a box's reports await the controller's ack.
func (f *Fleet) OutboxLen(village string) (int, error) {
	var n int
	err := f.withState(village,
		func(a *box.Agent) (err error) { n, err = a.OutboxLen(); return },
		func(db *store.DB) (err error) { n, err = db.OutboxLen(); return })
	return n, err
}

// Occurrences lists every occurrence a box dealt with (played or failed),
// by schedule and time.
func (f *Fleet) Occurrences(village string) ([]Occurrence, error) {
	var hs []store.Handled
	err := f.withState(village,
		func(a *box.Agent) (err error) { hs, err = a.Handled(); return },
		func(db *store.DB) (err error) { hs, err = db.HandledOccurrences(); return })
	out := make([]Occurrence, 0, len(hs))
	for _, h := range hs {
		out = append(out, Occurrence{ScheduleID: h.ScheduleID, At: h.Occurrence, Outcome: h.Outcome})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ScheduleID != out[j].ScheduleID {
			return out[i].ScheduleID < out[j].ScheduleID
		}
		return out[i].At.Before(out[j].At)
	})
	return out, err
}

// Played lists the occurrences a box started playing.
func (f *Fleet) Played(village string) ([]Occurrence, error) {
	all, err := f.Occurrences(village)
	out := all[:0]
	for _, o := range all {
		if o.Outcome == api.EventStarted {
			out = append(out, o)
		}
	}
	return out, err
}

// Broadcasts lists the broadcasts a box has heard of (running or
// stopped), by id. A broadcast whose cancellation came before it shows as
// cancelled with no plays.
func (f *Fleet) Broadcasts(village string) ([]Broadcast, error) {
	var bs []store.Broadcast
	err := f.withState(village,
		func(a *box.Agent) (err error) { bs, err = a.Broadcasts(); return },
		func(db *store.DB) (err error) { bs, err = db.Broadcasts(); return })
	out := make([]Broadcast, 0, len(bs))
	for _, b := range bs {
		out = append(out, Broadcast{ID: b.State.ID, Status: b.Status, Plays: b.Plays, Test: b.State.Test, ReceivedAt: b.ReceivedAt})
	}
	return out, err
}

// BroadcastOutcome is the status of one broadcast on a box (see
// Broadcast), or "" if the box never heard of it.
func (f *Fleet) BroadcastOutcome(village string, id int64) (string, error) {
	bs, err := f.Broadcasts(village)
	for _, b := range bs {
		if b.ID == id {
			return b.Status, err
		}
	}
	return "", err
}

// ReadyForBroadcast counts the running boxes that hold the broadcast (not
// cancelled, not expired) with every clip downloaded and verified: ready to
// play it offline. Whether it has played: BroadcastOutcome.
func (f *Fleet) ReadyForBroadcast(id int64) int {
	n := 0
	for _, v := range f.order {
		if a := f.agent(v); a != nil && a.ReadyForBroadcast(id) {
			n++
		}
	}
	return n
}

// Config is a running box's config: its county's, township's and
// village's configs merged, the narrowest setting each field.
func (f *Fleet) Config(village string) (api.BoxConfig, error) {
	a := f.agent(village)
	if a == nil {
		return api.BoxConfig{}, fmt.Errorf("fleet: box %s is not running", village)
	}
	return a.Config(), nil
}

// Close stops every box.
func (f *Fleet) Close() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, v := range f.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.StopBox(v); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.cancel()
	return errors.Join(errs...)
}
