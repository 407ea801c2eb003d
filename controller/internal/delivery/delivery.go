// Package delivery is the controller's MQTT side: it publishes each
// group's desired state as retained, signed commands, ingests the boxes'
// reports exactly once (acknowledging them only after they are committed),
// and records presence. See api/README.md for the design.
package delivery

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Store is what delivery needs of the database.
type Store interface {
	NextCommandSeq(ctx context.Context) (int64, error)
	PutRetained(ctx context.Context, r store.Retained) error
	RetainedAfter(ctx context.Context, seq int64, limit int) ([]store.Retained, error)
	RetainedDue(ctx context.Context, now, before time.Time, seq int64, limit int) ([]store.Retained, error)
	RetainedOn(ctx context.Context, topics []string) ([]store.Retained, error)
	RetainedUntil(ctx context.Context, kind string, topics []string) (time.Time, bool, error)
	IngestEvents(ctx context.Context, batches []store.IngestBatch) (map[string]int64, error)
	SetPresences(ctx context.Context, ups []store.PresenceUpdate) (unknown []string, err error)

	// The outbox (publish.go) and what its entries refer to.
	UnsentOutbox(ctx context.Context, limit int) ([]store.OutboxEntry, error)
	OutboxUnsentFor(ctx context.Context, kind, ref string) (unsent bool, lastError string, err error)
	SignOutbox(ctx context.Context, seq int64, rs []store.Retained) error
	OutboxSent(ctx context.Context, e store.OutboxEntry) error
	OutboxFailed(ctx context.Context, e store.OutboxEntry, cause, sendErr string) error
	OutboxDrop(ctx context.Context, e store.OutboxEntry, cause string) error
	GetBroadcast(ctx context.Context, id int64) (store.Broadcast, error)
	GetSchedule(ctx context.Context, id int64) (store.Schedule, error)
	GetPlaylist(ctx context.Context, id int64) (store.Playlist, error)
	GetBoxConfig(ctx context.Context, scope, name string) (store.BoxConfig, error)

	// The publisher lease (lease.go): only its holder publishes.
	Heartbeat(ctx context.Context) error
	AcquireLease(ctx context.Context, name string) (store.Lease, error)
	ReleaseLease(ctx context.Context, name string) error
	WatchOutbox(ctx context.Context, fn func()) error
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

	// Step, if set, is called as the publisher passes each step of
	// sending an outbox entry (StepTaken, StepSigned, StepPublished) with
	// the entry's kind: the crash tests kill the process there.
	Step func(step, kind string)

	// RetryEvery is how soon an entry that could not be sent is tried
	// again (default 2 s).
	RetryEvery time.Duration
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
	done   chan struct{} // closed when Run returns: paho's handlers stop handing over

	kick        chan struct{} // the outbox has something new
	reconnected chan struct{} // the broker link is up anew: republish everything
	progressMu  sync.Mutex
	progress    chan struct{}      // closed and replaced whenever an outbox entry is sent or fails
	renew       chan chan struct{} // tests: renew the signatures due now, then close the channel sent

	leaseMu sync.Mutex
	lease   leaseState    // lease.go
	gained  chan struct{} // this process took the publisher lease: refill the broker

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

		done:     make(chan struct{}),
		ackReady: make(chan struct{}, 1),

		kick:        make(chan struct{}, 1),
		reconnected: make(chan struct{}, 1),
		progress:    make(chan struct{}),
		renew:       make(chan chan struct{}),
		gained:      make(chan struct{}, 1),
	}
	if opts.RetryEvery <= 0 {
		s.opts.RetryEvery = 2 * time.Second
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
		// Messages no subscription of this run matches (a persistent
		// session's old filters, or a message the broker sends before
		// onConnect has subscribed again) are routed too: route stores or
		// acknowledges each, since one never acknowledged stays in flight
		// and the broker sends nothing newer past its window.
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { s.route(m) }).
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
	ch := s.msgs
	if isPresence(s.opts.Topics, m.Topic()) {
		ch = s.pres
	}
	select {
	case ch <- m:
	case <-s.done: // nobody ingests any more; the broker redelivers it
	}
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
	select {
	case s.reconnected <- struct{}{}:
	default:
	}
}

func isPresence(t api.Topics, topic string) bool {
	v, ok := t.VillageOfTopic(topic)
	return ok && topic == t.Presence(v)
}

// Run connects to the broker, publishes the outbox (while this process
// holds the publisher lease: lease.go) and ingests until ctx is done. Every goroutine it starts has ended when it returns.
func (s *Service) Run(ctx context.Context) error {
	tok := s.client.Connect()
	// The lease before the publisher starts: alone, it publishes at once;
	// the first connect refills the broker, as after every connect.
	s.renewLease(ctx)
	select {
	case <-s.gained:
	default:
	}
	var wg sync.WaitGroup
	wg.Add(7)
	go func() {
		defer wg.Done()
		// With ConnectRetry the token completes only when connected; don't
		// block start-up on it.
		select {
		case <-tok.Done():
			if tok.Error() != nil {
				s.log.Error("connect to broker", "err", tok.Error())
			}
		case <-ctx.Done():
		}
	}()
	go func() { defer wg.Done(); s.ingest(ctx) }()
	go func() { defer wg.Done(); s.ackLoop(ctx) }()
	go func() { defer wg.Done(); s.presence(ctx) }()
	go func() { defer wg.Done(); s.publisher(ctx) }()
	go func() { defer wg.Done(); s.keepLease(ctx) }()
	go func() { defer wg.Done(); s.watchOutbox(ctx) }()
	<-ctx.Done()
	close(s.done)
	s.client.Disconnect(500)
	wg.Wait()
	s.releaseLease()
	return nil
}

// Connected reports whether the broker link is up.
func (s *Service) Connected() bool { return s.client.IsConnectionOpen() }
