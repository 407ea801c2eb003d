// Package box is one loudspeaker box's agent, assembled from its parts: the
// identity it enrolled with, the controller clock, the state file, the clip
// cache, the MQTT link, the planner and an output. Both the agent binary
// (agent/main.go) and agent/fleet, which runs many boxes in one process for
// demos and end-to-end tests, start exactly this code.
//
// What it does with the parts:
//   - verifies every command (signature, group, validity window on the
//     controller's clock, replay guard) and applies it in one transaction
//     with its report;
//   - keeps its schedules, broadcasts and its groups' config in the store
//     only, and after every change hands the planner what the store holds
//     (replan: the config merged, village over township over county); the
//     planner decides what sounds by the rules of package playlists;
//   - reports everything through the on-disk outbox, published in seq order
//     and dropped only when the controller's signed ack covers it;
//   - downloads the clips its schedules and broadcasts need, with resume
//     and backoff, apart from the commands (a download's disk syncs never
//     hold a command up);
//   - keeps playing what it holds when the broker or controller is away.
//
// Every wait is on the box's own clock (Options.Clock), so tests drive a
// box with a fake clock instead of sleeping.
package box

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/cache"
	"github.com/cunxiang/cunxiang/agent/internal/clock"
	"github.com/cunxiang/cunxiang/agent/internal/identity"
	"github.com/cunxiang/cunxiang/agent/internal/link"
	"github.com/cunxiang/cunxiang/agent/internal/planner"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Version is the agent version reported in presence and event batches.
const Version = "0.1.0"

// StateFile is the name of the state database inside the data directory.
const StateFile = "state.db"

var (
	_ planner.Journal = (*store.DB)(nil)
	_ planner.Audio   = (*cache.Cache)(nil)
	_ planner.Clock   = (*clock.Clock)(nil)
	_ mqttLink        = (*link.Link)(nil)
	_ downloadStore   = (*store.DB)(nil)
)

// mqttLink is what the box uses of its MQTT connection.
type mqttLink interface {
	Start()
	Close() error
	Next(ctx context.Context) (link.Message, error)
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
	Connected() <-chan struct{}
	IsConnected() bool
}

// Options configures an Agent. Village, Controller, DataDir and Output are
// required; EnrollToken only until the box has enrolled.
type Options struct {
	Village     string
	Controller  string // base URL, e.g. http://controller:8080
	Broker      string // overrides the broker the controller suggested
	TopicPrefix string // overrides the prefix the controller gave
	DataDir     string
	EnrollToken string
	Output      planner.Output
	Logger      *slog.Logger
	HTTPClient  *http.Client
	Version     string

	ClockInterval time.Duration // between clock measurements (default 10 min)
	Grace         time.Duration // how late an occurrence may start (default 5 min)
	ResendAfter   time.Duration // resend unacked reports after (default 30 s)
	// ReportLinger is how long a broadcast's received and downloaded
	// reports wait for its started report before they are sent (default
	// 25 ms): the three come within a few milliseconds, and going as one
	// message they cost the broker and the controller a third as much
	// when every box in a county reports at once. Other reports go at once.
	ReportLinger time.Duration
	// PresenceEvery is how often a connected box says again that it is
	// online (default 5 min, ±10 % jitter). A presence lost on the way (a
	// broker that dropped it under load, a controller that missed it) is
	// repaired by the next one, and the controller's "last seen" stays
	// fresh for a box with nothing else to report.
	PresenceEvery time.Duration
	// LocalSkew puts the box's own wall clock this far ahead of true time
	// (behind if negative), as a box after a power cut might be; it still
	// plays on controller time through its measured offset. For fleet
	// simulations; real boxes leave it 0.
	LocalSkew time.Duration
	// DropReport, if set, is asked before each report batch is published;
	// true loses that publish on the way (the box believes it sent it), so
	// simulations can show the outbox and acks repairing lost reports.
	DropReport func() bool
	// LateAfter: a broadcast first heard of longer than this after its
	// command was signed (controller clock) sounds only once the
	// controller confirms it is still active (default 30 s); see
	// confirm.go. ConfirmTimeout bounds that question (default 4 s).
	LateAfter, ConfirmTimeout time.Duration
	// Link tunes MQTT timing; Broker, ClientID, credentials, filters and
	// Will are filled in by the agent.
	Link link.Options
	// Clock is the box's own clock, which it reads the time from (through
	// the measured offset) and waits on; nil is the system's. Tests pass
	// playliststest.Clock.
	Clock clock.Local

	// newLink, if set, makes the MQTT link instead of link.New (tests).
	newLink func(link.Options) (mqttLink, error)
}

// Agent is one box.
type Agent struct {
	o      Options
	log    *slog.Logger
	id     identity.Identity
	topics api.Topics
	pub    ed25519.PublicKey
	db     *store.DB
	clock  *clock.Clock
	cache  *cache.Cache
	plan   *planner.Planner
	link   mqttLink
	// downloads is where the downloads read what the box holds and record
	// the downloads they report: the store (a test may slow it down).
	downloads downloadStore

	connected chan struct{} // link up, presence published: (re)send reports
	acked     chan struct{} // an ack dropped reports
	ackReady  chan struct{} // an ack waits in nextAck
	needed    chan struct{} // what the box holds changed: downloads look again

	// cmdMu applies commands one at a time (confirm.go applies late ones),
	// and so hands the planner the states it reads in order (replan).
	cmdMu sync.Mutex

	ackMu   sync.Mutex
	nextAck *ackMsg // the newest ack not yet applied

	fetchSem chan struct{} // bounds downloads at once

	mu         sync.Mutex
	rejected   map[[32]byte]bool // refusals already reported in this run
	confirming map[int64]bool    // late broadcasts being checked with the controller
	runCtx     context.Context   // Run's, once it runs: background work ends with it
	bg         sync.WaitGroup    // downloads and confirmations under way
}

// New enrolls the box if it has no identity yet, and opens its state. It
// does not touch the network otherwise; Run does.
func New(ctx context.Context, o Options) (*Agent, error) {
	if !api.ValidVillageCode(o.Village) {
		return nil, fmt.Errorf("village %q is not a 12-digit administrative-division code", o.Village)
	}
	if o.Controller == "" || o.DataDir == "" || o.Output == nil {
		return nil, errors.New("box: controller, data directory and output are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if o.LateAfter <= 0 {
		o.LateAfter = defaultLateAfter
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = defaultConfirmTimeout
	}
	if o.Version == "" {
		o.Version = Version
	}
	if o.ClockInterval <= 0 {
		o.ClockInterval = 10 * time.Minute
	}
	if o.ResendAfter <= 0 {
		o.ResendAfter = 30 * time.Second
	}
	if o.ReportLinger <= 0 {
		o.ReportLinger = 25 * time.Millisecond
	}
	if o.PresenceEvery <= 0 {
		o.PresenceEvery = 5 * time.Minute
	}
	log := o.Logger.With("village", o.Village)
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}

	id, err := identity.Load(o.DataDir)
	switch {
	case err == nil:
		if id.Village != o.Village {
			return nil, fmt.Errorf("data directory %s belongs to village %s, not %s", o.DataDir, id.Village, o.Village)
		}
	case errors.Is(err, fs.ErrNotExist):
		if o.EnrollToken == "" {
			return nil, fmt.Errorf("box is not enrolled: start it once with --enroll TOKEN (from the controller) and --controller URL")
		}
		id, err = identity.Enroll(ctx, o.HTTPClient, o.Controller, api.EnrollRequest{Village: o.Village, Token: o.EnrollToken, AgentVersion: o.Version})
		if err != nil {
			return nil, err
		}
		if err := identity.Save(o.DataDir, id); err != nil {
			return nil, err
		}
		log.Info("enrolled", "component", "identity", "mqtt_username", id.MQTTUsername)
	default:
		return nil, err
	}

	prefix := o.TopicPrefix
	if prefix == "" {
		prefix = id.TopicPrefix
	}
	broker := o.Broker
	if broker == "" {
		broker = id.Broker
	}
	if broker == "" {
		return nil, errors.New("no broker: the controller suggested none; give --broker")
	}

	db, err := store.Open(filepath.Join(o.DataDir, StateFile))
	if err != nil {
		return nil, err
	}
	if err := db.RaiseSeq(id.LastSeq); err != nil {
		db.Close()
		return nil, err
	}
	a := &Agent{
		o:          o,
		log:        log,
		id:         id,
		topics:     api.Topics{Prefix: prefix},
		pub:        id.PublicKey(),
		db:         db,
		connected:  make(chan struct{}, 1),
		acked:      make(chan struct{}, 1),
		ackReady:   make(chan struct{}, 1),
		needed:     make(chan struct{}, 1),
		downloads:  db,
		rejected:   map[[32]byte]bool{},
		confirming: map[int64]bool{},
		fetchSem:   make(chan struct{}, 2),
	}
	fail := func(err error) (*Agent, error) {
		db.Close()
		return nil, err
	}
	off, _, err := db.ClockOffset()
	if err != nil {
		return fail(err)
	}
	a.clock = clock.New(clock.Options{Local: o.Clock, Offset: off, Skew: o.LocalSkew})
	a.cache, err = cache.New(cache.Options{
		Dir:        filepath.Join(o.DataDir, "audio"),
		Controller: o.Controller,
		Username:   id.MQTTUsername,
		Password:   id.MQTTPassword,
		Client:     o.HTTPClient,
		Logger:     log.With("component", "cache"),
	})
	if err != nil {
		return fail(err)
	}
	a.plan, err = planner.New(planner.Options{
		Journal: db,
		Audio:   a.cache,
		Output:  o.Output,
		Clock:   a.clock,
		Logger:  log.With("component", "planner"),
		Grace:   o.Grace,
	})
	if err != nil {
		return fail(err)
	}
	will, err := json.Marshal(api.Presence{V: api.Version, Village: o.Village, Status: api.Offline, At: a.clock.Now(), Version: o.Version})
	if err != nil {
		return fail(err)
	}
	lo := o.Link
	lo.Broker = broker
	lo.ClientID = "box-" + o.Village
	lo.Username, lo.Password = id.MQTTUsername, id.MQTTPassword
	lo.Filters = nil
	for _, g := range api.GroupsOf(o.Village) {
		lo.Filters = append(lo.Filters, a.topics.CommandFilter(g))
	}
	lo.WillTopic, lo.WillPayload = a.topics.Presence(o.Village), will
	lo.Logger = log.With("component", "link")
	newLink := o.newLink
	if newLink == nil {
		newLink = func(o link.Options) (mqttLink, error) { return link.New(o) }
	}
	a.link, err = newLink(lo)
	if err != nil {
		return fail(err)
	}
	return a, nil
}

// Alive reports whether the box's scheduler is working (not stuck): the
// agent pings systemd's watchdog only while it is.
func (a *Agent) Alive() bool { return a.plan.Alive(3 * planner.BeatEvery) }

// Run works until ctx ends, then says goodbye (retained offline presence)
// and stops every part. It returns only errors that stop the box.
func (a *Agent) Run(ctx context.Context) error {
	if n, err := a.db.PruneHandled(a.clock.Now().Add(-7 * 24 * time.Hour)); err != nil {
		return err
	} else if n > 0 {
		a.log.Debug("forgot old occurrences", "component", "store", "n", n)
	}
	if n, err := a.db.PruneBroadcasts(a.clock.Now().Add(-7 * 24 * time.Hour)); err != nil {
		return err
	} else if n > 0 {
		a.log.Debug("forgot old broadcasts", "component", "store", "n", n)
	}
	if err := a.recoverBroadcasts(); err != nil {
		return err
	}
	a.cmdMu.Lock()
	st, err := a.replan()
	a.cmdMu.Unlock()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	a.log.Info("agent starting", "version", a.o.Version, "schedules", len(st.Schedules), "broadcasts", len(st.Broadcasts), "clock_offset", a.clock.Offset().Round(time.Millisecond))
	a.pruneClips()

	var wg sync.WaitGroup
	goes := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	var planErr error
	wg.Add(1)
	go func() { defer wg.Done(); planErr = a.plan.Run(ctx) }()
	goes(a.downloadLoop)
	// Measure the clock before hearing any command: a box whose clock is
	// off (first boot, a power cut) would refuse the retained commands as
	// expired or issued in the future, and would not hear them again until
	// it reconnected. If the controller is away, the last offset stands.
	first, cancelFirst := context.WithTimeout(ctx, 10*time.Second)
	measured := a.syncClock(first) == nil
	cancelFirst()
	goes(func(ctx context.Context) { a.clockLoop(ctx, measured) })
	goes(a.commandLoop)
	goes(a.ackLoop)
	goes(a.presenceLoop)
	goes(a.sendLoop)
	goes(a.pruneLoop)
	a.link.Start()

	<-ctx.Done()
	a.sayGoodbye()
	a.link.Close()
	wg.Wait()
	a.bg.Wait()
	a.log.Info("agent stopped")
	return planErr
}

// Close releases the state file. Call it after Run has returned.
func (a *Agent) Close() error {
	a.link.Close()
	return a.db.Close()
}

// recoverBroadcasts reports partial a broadcast that was sounding when the
// box stopped without saying so (a power cut): it plays again from the
// start if still valid.
func (a *Agent) recoverBroadcasts() error {
	all, err := a.db.Broadcasts()
	if err != nil {
		return err
	}
	for _, b := range all {
		if b.Status != api.EventStarted {
			continue
		}
		ev := api.Event{Type: api.EventPartial, At: a.clock.Now(), BroadcastID: b.State.ID, Test: b.State.Test, Reason: ErrRestarted}
		if _, err := a.db.Advance(b.State.ID, ev); err != nil {
			return err
		}
		a.log.Warn(planner.Label(b.State.Test, "broadcast was cut off by a restart; it will play again from the start if still valid"), "broadcast", b.State.ID)
	}
	return nil
}

// replan hands the planner what the store holds, and has the downloads
// look again. The store is the box's one record of its schedules,
// broadcasts and config; every change to them ends here. cmdMu is held,
// so states reach the planner in the order they were read.
func (a *Agent) replan() (store.State, error) {
	st, err := a.db.State()
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	scheds := make([]planner.Schedule, len(st.Schedules))
	for i, s := range st.Schedules {
		scheds[i] = planner.Schedule{State: s.State, ReceivedAt: s.ReceivedAt}
	}
	bcasts := make([]planner.Broadcast, len(st.Broadcasts))
	for i, b := range st.Broadcasts {
		bcasts[i] = planner.Broadcast{State: b.State, ReceivedAt: b.ReceivedAt}
	}
	a.plan.Sync(scheds, bcasts, mergeConfig(a.o.Village, st.Configs))
	select {
	case a.needed <- struct{}{}:
	default:
	}
	return st, nil
}

// ErrRestarted is the partial report's reason for a broadcast that was
// sounding when the box went down.
const ErrRestarted = "interrupted: agent restarted during playback"

// mergeConfig is the village's config: each field from the narrowest of
// its groups (county, township, village) that sets it.
func mergeConfig(village string, cfgs map[api.Group]api.BoxConfig) api.BoxConfig {
	var out api.BoxConfig
	for _, g := range api.GroupsOf(village) {
		c, ok := cfgs[g]
		if !ok {
			continue
		}
		if len(c.QuietHours) > 0 {
			out.QuietHours = c.QuietHours
		}
		if c.Timezone != "" {
			out.Timezone = c.Timezone
		}
		if c.Volume > 0 {
			out.Volume = c.Volume
		}
	}
	return out
}

// Accessors for tests and fleet tools.

// Broadcasts lists every broadcast the box remembers, and how far each got.
func (a *Agent) Broadcasts() ([]store.Broadcast, error) { return a.db.Broadcasts() }

// Config is the box's config, its groups' configs merged.
func (a *Agent) Config() api.BoxConfig {
	cfgs, err := a.db.Configs()
	if err != nil {
		a.log.Error("read configs", "component", "store", "err", err)
	}
	return mergeConfig(a.o.Village, cfgs)
}

// ReadyForBroadcast reports whether the box holds the broadcast (not
// cancelled, not expired) with every clip of its playlist downloaded and
// verified.
func (a *Agent) ReadyForBroadcast(id int64) bool {
	all, err := a.db.Broadcasts()
	if err != nil {
		return false
	}
	now := a.clock.Now()
	for _, b := range all {
		if b.State.ID == id {
			return b.Status != api.EventCancelled && b.Status != api.EventExpired && now.Before(b.State.ExpiresAt) && a.downloaded(b.State.Playlist)
		}
	}
	return false
}

// downloaded reports whether every clip of the playlist is on disk.
func (a *Agent) downloaded(pl playlists.Playlist) bool {
	for _, it := range pl.Items {
		if !a.cache.Has(it.SHA256) {
			return false
		}
	}
	return true
}

// LastSeq is the seq of the newest report the box has made.
func (a *Agent) LastSeq() (int64, error) { return a.db.LastSeq() }

// OutboxLen is how many reports await the controller's ack.
func (a *Agent) OutboxLen() (int, error) { return a.db.OutboxLen() }

// Handled lists every occurrence the box has dealt with.
func (a *Agent) Handled() ([]store.Handled, error) { return a.db.HandledOccurrences() }

// ClockOffset is how far the controller's clock is ahead of the box's.
func (a *Agent) ClockOffset() time.Duration { return a.clock.Offset() }

// Now is the box's estimate of controller time.
func (a *Agent) Now() time.Time { return a.clock.Now() }

// Ready reports whether the box holds the schedule and every clip of its
// playlist is downloaded and verified.
func (a *Agent) Ready(scheduleID int64) bool {
	scheds, err := a.db.Schedules()
	if err != nil {
		return false
	}
	for _, s := range scheds {
		if s.State.Schedule.ID == scheduleID {
			return a.downloaded(s.State.Playlist)
		}
	}
	return false
}

// Connected reports whether the MQTT link is up.
func (a *Agent) Connected() bool { return a.link.IsConnected() }

// ---- clock ----

// syncClock measures the controller's clock once and persists the offset.
func (a *Agent) syncClock(ctx context.Context) error {
	log := a.log.With("component", "clock")
	s, err := a.clock.Sync(ctx, a.o.HTTPClient, a.o.Controller)
	if err != nil {
		log.Warn("clock measurement failed; keeping the last offset", "err", err, "offset", a.clock.Offset().Round(time.Millisecond))
		return err
	}
	log.Debug("clock measured", "offset", s.Offset.Round(time.Millisecond), "rtt", s.RTT.Round(time.Microsecond))
	if err := a.db.SetClockOffset(s.Offset); err != nil {
		log.Error("persist clock offset", "err", err)
	}
	a.plan.Wake()
	return nil
}

// clockLoop measures the clock every ClockInterval, and retries with
// backoff after a failure (at once if the first measurement failed).
func (a *Agent) clockLoop(ctx context.Context, measured bool) {
	const minRetry = 5 * time.Second
	retry := minRetry
	for {
		if measured {
			wait := a.o.ClockInterval
			// ±10% so that a county's boxes spread their requests.
			wait = wait*9/10 + rand.N(wait/5+1)
			t, fired := a.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-fired:
			}
		}
		measured = true
		for a.syncClock(ctx) != nil && ctx.Err() == nil {
			t, fired := a.clock.NewTimer(retry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-fired:
			}
			retry = min(retry*2, a.o.ClockInterval)
		}
		retry = minRetry
	}
}

// ---- presence ----

func (a *Agent) presence(status string) []byte {
	raw, _ := json.Marshal(api.Presence{
		V: api.Version, Village: a.o.Village, Status: status, At: a.clock.Now(),
		Version: a.o.Version, ClockOffsetMS: a.clock.Offset().Milliseconds(),
	})
	return raw
}

// presenceLoop says "online" on every (re)connect, and again every
// PresenceEvery (jittered, so a fleet started together does not say it
// together) while connected.
func (a *Agent) presenceLoop(ctx context.Context) {
	every := a.o.PresenceEvery
	heartbeat, beat := a.clock.NewTimer(every)
	defer heartbeat.Stop()
	for {
		reconnected := false
		select {
		case <-ctx.Done():
			return
		case <-a.link.Connected():
			reconnected = true
		case <-beat:
		}
		heartbeat.Reset(every - every/10 + rand.N(every/5+1))
		if !reconnected && !a.link.IsConnected() {
			continue // the next connect says it
		}
		if err := a.link.Publish(ctx, a.topics.Presence(a.o.Village), a.presence(api.Online), true); err != nil {
			a.log.Warn("publish presence", "component", "link", "err", err)
		}
		if reconnected {
			select {
			case a.connected <- struct{}{}:
			default:
			}
		}
	}
}

func (a *Agent) sayGoodbye() {
	if !a.link.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.link.Publish(ctx, a.topics.Presence(a.o.Village), a.presence(api.Offline), true); err != nil {
		a.log.Warn("publish offline presence", "component", "link", "err", err)
	}
}
