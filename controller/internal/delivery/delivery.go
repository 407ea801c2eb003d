// Package delivery is the controller's MQTT side: it publishes each
// group's desired state as retained, signed commands, ingests the boxes'
// reports exactly once (acknowledging them only after they are committed),
// and records presence. See api/README.md for the design.
package delivery

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Store is what delivery needs of the database.
type Store interface {
	NextCommandSeq(ctx context.Context) (int64, error)
	PutRetained(ctx context.Context, r store.Retained) error
	ListRetained(ctx context.Context) ([]store.Retained, error)
	RetainedUntil(ctx context.Context, kind string, topics []string) (time.Time, bool, error)
	IngestEvents(ctx context.Context, batches []store.IngestBatch) (map[string]int64, error)
	SetPresences(ctx context.Context, ups []store.PresenceUpdate) (unknown []string, err error)
}

// Options configure the service. Broker is a paho URL (tcp://host:port).
type Options struct {
	Store      Store
	Broker     string
	Username   string
	Password   string
	ClientID   string
	Topics     api.Topics
	SigningKey ed25519.PrivateKey
	Logger     *slog.Logger
	Now        func() time.Time

	// BatchSize and BatchWait bound how many report messages are committed
	// in one transaction and how long the first of them waits for company.
	BatchSize int
	BatchWait time.Duration

	// AckDelay is how long the acks of a commit wait for those of the
	// next ones before they are signed and sent (default 500 ms). Acks
	// are cumulative, and a broadcast makes each box report more than
	// once within a moment (received and started, a short clip's
	// finished, a cancellation): one ack then covers them all, where one
	// each cost every box an Ed25519
	// verification and a disk sync apiece, all at the moment the county
	// is meant to be sounding. A box resends unacked reports only after
	// 30 s.
	AckDelay time.Duration

	// ReportRate and ReportBurst bound the report events one box may have
	// stored: a token bucket per village (DefaultReportRate and
	// DefaultReportBurst if 0; a negative ReportRate: no bound). A box's
	// credentials sit on its disk, and with them a thief could publish
	// legal report batches with ever new seqs as fast as the store
	// commits them, until the disk is full and no emergency can be
	// stored. A message over the bound is acknowledged to the broker but
	// not stored and not covered by a reports.ack, so a real box's outbox
	// sends it again later.
	ReportRate  float64
	ReportBurst int

	// OnCommit, if set, is called after each batch of reports is committed
	// and after each presence change is recorded (the web console's live
	// stream listens). It must not block.
	OnCommit func()

	// Inbound, if set, brings the boxes' reports and presence from a
	// broker in this process (broker.Server.Subscribe) instead of over the
	// MQTT connection, which is then used to publish only. A connection's
	// write queue in the broker is finite and the broker drops what does
	// not fit (10,225 messages when 10,000 boxes reported at once,
	// BENCHMARKS.md); in process there is no queue: a burst slows the
	// boxes' connections instead. A report lost because the controller
	// stopped before its commit is sent again by its box, which keeps it
	// until the signed reports.ack covers it.
	Inbound Inbound
}

// Inbound subscribes fn to a topic filter inside the broker. Subscribing
// a filter again replaces its fn.
type Inbound interface {
	Subscribe(filter string, fn func(topic string, payload []byte)) error
}

// inboundMessage is a message from Inbound, shaped as paho's for the
// ingest; there is nothing to acknowledge.
type inboundMessage struct {
	topic   string
	payload []byte
}

func (m inboundMessage) Duplicate() bool   { return false }
func (m inboundMessage) Qos() byte         { return 1 }
func (m inboundMessage) Retained() bool    { return false }
func (m inboundMessage) Topic() string     { return m.topic }
func (m inboundMessage) MessageID() uint16 { return 0 }
func (m inboundMessage) Payload() []byte   { return m.payload }
func (m inboundMessage) Ack()              {}

// Lifetimes of signed state.
const (
	// signedFor is the longest validity of one signature; retained state
	// that must live longer is re-signed by the refresher.
	signedFor = 30 * 24 * time.Hour
	// refreshBefore: re-sign retained state this long before it expires.
	refreshBefore = 7 * 24 * time.Hour
	// forever is the relevance of a schedule with no end date.
	foreverYears = 100
	ackValidity  = 30 * 24 * time.Hour
)

// Service publishes commands and ingests reports.
type Service struct {
	opts   Options
	log    *slog.Logger
	client paho.Client
	msgs   chan paho.Message
	pres   chan paho.Message

	mu sync.Mutex // serialises publishing of retained state

	ackMu       sync.Mutex
	pendingAcks map[string]int64 // village → acked seq, not yet sent
	ackReady    chan struct{}

	reports reportBudget // ingest.go
}

// New checks the options; Run connects.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Broker == "" || len(opts.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("delivery: Store, Broker and SigningKey are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientID == "" {
		opts.ClientID = "cunxiang-controller"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.BatchWait <= 0 {
		opts.BatchWait = 10 * time.Millisecond
	}
	if opts.ReportRate == 0 {
		opts.ReportRate = DefaultReportRate
	}
	if opts.ReportBurst <= 0 {
		opts.ReportBurst = DefaultReportBurst
	}
	if opts.AckDelay <= 0 {
		opts.AckDelay = 500 * time.Millisecond
	}
	s := &Service{
		opts: opts,
		log:  opts.Logger.With("component", "delivery"),
		msgs: make(chan paho.Message, 20000),
		pres: make(chan paho.Message, 20000),

		ackReady: make(chan struct{}, 1),
	}
	co := paho.NewClientOptions().
		AddBroker(opts.Broker).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		// A persistent session: reports published while the controller is
		// down wait on the broker, and unacknowledged ones are redelivered.
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			s.log.Warn("lost broker connection", "err", err)
		})
	s.client = paho.NewClient(co)
	return s, nil
}

// route hands a received report or presence to the ingest goroutines.
func (s *Service) route(m paho.Message) {
	if _, ok := s.opts.Topics.VillageOfTopic(m.Topic()); !ok {
		m.Ack()
		return
	}
	if isPresence(s.opts.Topics, m.Topic()) {
		s.pres <- m
		return
	}
	s.msgs <- m
}

func (s *Service) onConnect(c paho.Client) {
	s.log.Info("connected to broker", "broker", s.opts.Broker)
	filters := []string{s.opts.Topics.EventsFilter(), s.opts.Topics.PresenceFilter()}
	if s.opts.Inbound != nil {
		// Again on every connect: a broker started anew has forgotten.
		for _, f := range filters {
			if err := s.opts.Inbound.Subscribe(f, func(topic string, payload []byte) {
				s.route(inboundMessage{topic: topic, payload: payload})
			}); err != nil {
				s.log.Error("subscribe to reports in the broker failed", "filter", f, "err", err)
			}
		}
	} else {
		subs := map[string]byte{filters[0]: 1, filters[1]: 1}
		// Never block paho's reader for long: route hands over to our goroutines.
		tok := c.SubscribeMultiple(subs, func(_ paho.Client, m paho.Message) { s.route(m) })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			s.log.Error("subscribe to reports failed", "err", tok.Error())
		}
	}
	// Refill the broker with every retained command (the embedded broker
	// keeps nothing across restarts; an external one may have lost them).
	go func() {
		if err := s.republish(context.Background()); err != nil {
			s.log.Error("republish retained state", "err", err)
		}
	}()
}

func isPresence(t api.Topics, topic string) bool {
	v, ok := t.VillageOfTopic(topic)
	return ok && topic == t.Presence(v)
}

// Run connects to the broker and ingests until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	tok := s.client.Connect()
	// With ConnectRetry the token completes only when connected; don't
	// block start-up on it.
	go func() {
		<-tok.Done()
		if tok.Error() != nil {
			s.log.Error("connect to broker", "err", tok.Error())
		}
	}()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); s.ingest(ctx) }()
	go func() { defer wg.Done(); s.ackLoop(ctx) }()
	go func() { defer wg.Done(); s.presence(ctx) }()
	go func() { defer wg.Done(); s.refresher(ctx) }()
	<-ctx.Done()
	s.client.Disconnect(500)
	wg.Wait()
	return nil
}

// Connected reports whether the broker link is up.
func (s *Service) Connected() bool { return s.client.IsConnectionOpen() }

// sign builds, signs and stores a retained command for topic.
func (s *Service) signAndStore(ctx context.Context, topic string, c api.Command, relevantUntil time.Time, scheduleID int64) (store.Retained, error) {
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
		return store.Retained{}, err
	}
	r := store.Retained{Topic: topic, Payload: payload, Seq: seq, Kind: c.Kind, ScheduleID: scheduleID, ExpiresAt: relevantUntil}
	if err := s.opts.Store.PutRetained(ctx, r); err != nil {
		return store.Retained{}, err
	}
	return r, nil
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

// PublishSchedule puts the schedule, with its playlist, on every group.
// It is stored first: if the broker is down, it goes out on reconnect.
func (s *Service) PublishSchedule(ctx context.Context, sc playlists.Schedule, pl playlists.Playlist, groups []api.Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := &api.ScheduleState{Schedule: sc, Playlist: pl}
	err := s.putOnGroups(ctx, groups, relevance(sc, pl, s.opts.Now()), sc.ID,
		func(g api.Group) string { return s.opts.Topics.Schedule(g, sc.ID) },
		func(g api.Group) api.Command {
			return api.Command{Kind: api.KindSchedulePut, Target: g, Schedule: state}
		})
	if err != nil {
		return fmt.Errorf("publish schedule %d: %w", sc.ID, err)
	}
	s.log.Info("published schedule", "schedule", sc.ID, "groups", len(groups))
	return nil
}

// WithdrawSchedule replaces the schedule on every group with a signed
// withdrawal, so boxes offline now learn it when they return.
func (s *Service) WithdrawSchedule(ctx context.Context, scheduleID int64, groups []api.Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	topic := func(g api.Group) string { return s.opts.Topics.Schedule(g, scheduleID) }
	// The withdrawal must outlive every copy of the schedule it replaces.
	until := s.replacedUntil(ctx, api.KindSchedulePut, groups, topic, s.opts.Now().AddDate(foreverYears, 0, 0))
	err := s.putOnGroups(ctx, groups, until, scheduleID, topic, func(g api.Group) api.Command {
		return api.Command{Kind: api.KindScheduleWithdraw, Target: g, Withdraw: &api.Withdrawal{ScheduleID: scheduleID}}
	})
	if err != nil {
		return fmt.Errorf("withdraw schedule %d: %w", scheduleID, err)
	}
	s.log.Info("withdrew schedule", "schedule", scheduleID, "groups", len(groups))
	return nil
}

// putOnGroups signs, stores and publishes one retained command per group.
// The caller holds s.mu.
func (s *Service) putOnGroups(ctx context.Context, groups []api.Group, until time.Time, scheduleID int64,
	topic func(api.Group) string, command func(api.Group) api.Command) error {
	for _, g := range groups {
		r, err := s.signAndStore(ctx, topic(g), command(g), until, scheduleID)
		if err != nil {
			return err
		}
		s.publish(r)
	}
	return nil
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

// publish sends a stored retained command; failures are logged, since the
// command is stored and goes out again on the next (re)connect.
func (s *Service) publish(r store.Retained) {
	tok := s.client.Publish(r.Topic, 1, true, r.Payload)
	go func() {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			s.log.Warn("retained command not yet on broker; will resend on reconnect", "topic", r.Topic, "err", tok.Error())
		}
	}()
}

// republish sends every stored retained command, re-signing those that
// will expire soon and clearing those no longer relevant.
func (s *Service) republish(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.opts.Store.ListRetained(ctx)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	for _, r := range all {
		if !now.Before(r.ExpiresAt) {
			s.client.Publish(r.Topic, 1, true, []byte{}) // clear it from the broker
			continue
		}
		if r2, ok := s.resignIfDue(ctx, r, now); ok {
			r = r2
		}
		s.publish(r)
	}
	s.log.Info("republished retained state", "commands", len(all))
	return nil
}

// resignIfDue re-signs a retained command whose signature expires within
// refreshBefore, keeping its content.
func (s *Service) resignIfDue(ctx context.Context, r store.Retained, now time.Time) (store.Retained, bool) {
	c, err := api.Verify(s.opts.SigningKey.Public().(ed25519.PublicKey), s.opts.Topics, r.Topic, r.Payload, now)
	// A signature that already lasts as long as the state is relevant
	// cannot be improved: re-signing would only make every box take the
	// same content for a new command.
	if err == nil && (c.ExpiresAt.Sub(now) > refreshBefore || !c.ExpiresAt.Before(r.ExpiresAt)) {
		return r, false
	}
	if err != nil && !errors.Is(err, api.ErrExpired) {
		s.log.Error("stored retained command does not verify", "topic", r.Topic, "err", err)
		return r, false
	}
	if c.Kind == "" { // expired: decode failed before kind was known
		return r, false
	}
	r2, err := s.signAndStore(ctx, r.Topic, c, r.ExpiresAt, r.ScheduleID)
	if err != nil {
		s.log.Error("re-sign retained command", "topic", r.Topic, "err", err)
		return r, false
	}
	return r2, true
}

func (s *Service) refresher(ctx context.Context) {
	t := time.NewTicker(6 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.Connected() {
				if err := s.republish(ctx); err != nil {
					s.log.Error("refresh retained state", "err", err)
				}
			}
		}
	}
}

// PublishBroadcast puts a broadcast on every group. Boxes start it as soon
// as they verify it. Its signature outlives ExpiresAt by a day so a box
// that learns of it late can still verify it and report it expired.
func (s *Service) PublishBroadcast(ctx context.Context, b api.BroadcastState, groups []api.Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.putOnGroups(ctx, groups, b.ExpiresAt.Add(24*time.Hour), 0,
		func(g api.Group) string { return s.opts.Topics.Broadcast(g, b.ID) },
		func(g api.Group) api.Command {
			return api.Command{Kind: api.KindBroadcastPut, Target: g, Broadcast: &b}
		})
	if err != nil {
		return fmt.Errorf("publish broadcast %d: %w", b.ID, err)
	}
	s.log.Info("published broadcast", "broadcast", b.ID, "priority", b.Priority, "test", b.Test, "groups", len(groups))
	return nil
}

// CancelBroadcast replaces the broadcast on every group with a signed
// cancellation; boxes playing it stop within seconds.
func (s *Service) CancelBroadcast(ctx context.Context, broadcastID int64, groups []api.Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	topic := func(g api.Group) string { return s.opts.Topics.Broadcast(g, broadcastID) }
	until := s.replacedUntil(ctx, api.KindBroadcastPut, groups, topic, s.opts.Now().Add(signedFor))
	err := s.putOnGroups(ctx, groups, until, 0, topic, func(g api.Group) api.Command {
		return api.Command{Kind: api.KindBroadcastCancel, Target: g, Cancel: &api.Cancellation{BroadcastID: broadcastID}}
	})
	if err != nil {
		return fmt.Errorf("cancel broadcast %d: %w", broadcastID, err)
	}
	s.log.Info("cancelled broadcast", "broadcast", broadcastID, "groups", len(groups))
	return nil
}

// PublishConfig sets the quiet hours and volume of a township's or a
// village's boxes. It stays on the broker until replaced.
func (s *Service) PublishConfig(ctx context.Context, g api.Group, cfg api.BoxConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := api.Command{Kind: api.KindConfigPut, Target: g, Config: &cfg}
	r, err := s.signAndStore(ctx, s.opts.Topics.Config(g), c, s.opts.Now().AddDate(foreverYears, 0, 0), 0)
	if err != nil {
		return fmt.Errorf("publish config for %s: %w", g, err)
	}
	s.publish(r)
	return nil
}
