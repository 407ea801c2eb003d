// Package link is the box's MQTT connection (github.com/eclipse/paho.mqtt.golang).
// It keeps a clean session to the broker, reconnecting forever with backoff
// and jitter (a county's boxes come back from a power cut together), and
// subscribes again on every connect. Incoming messages are queued without
// blocking paho's handler, whatever the consumer is doing; publishing waits
// for the broker's PUBACK, with a timeout, never forever.
package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrNotConnected is returned by Publish while the link is down; nothing is
// queued inside paho for later.
var ErrNotConnected = errors.New("not connected to broker")

// Message is one message received on a subscribed filter.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Options configures a Link. Broker and ClientID are required.
type Options struct {
	Broker   string // tcp://host:port
	ClientID string
	Username string
	Password string
	// Filters are subscribed with QoS 1 on every connect.
	Filters []string
	// Will, when WillTopic is set, is published retained by the broker if
	// the connection is lost without a clean disconnect.
	WillTopic   string
	WillPayload []byte
	Logger      *slog.Logger

	// ConnectRetryInterval is the wait between first connection attempts
	// (default 3 s), MaxReconnectInterval the cap of paho's exponential
	// backoff after a lost connection (default 2 min); MaxJitter bounds the
	// random delay added before every attempt (default 10 s), which grows
	// from 0.5 s with consecutive failures.
	ConnectRetryInterval time.Duration
	MaxReconnectInterval time.Duration
	MaxJitter            time.Duration
	// Timeout bounds every wait for the broker (default 10 s).
	Timeout time.Duration
}

// Link is one MQTT client.
type Link struct {
	o      Options
	log    *slog.Logger
	client mqtt.Client
	stop   chan struct{}
	once   sync.Once

	failures atomic.Int32 // connection attempts since the last success

	mu      sync.Mutex
	down    chan struct{} // closed when the current connection is lost
	queue   []Message
	queued  chan struct{} // signalled when queue grows
	connect chan struct{} // signalled after each connect and subscribe
}

// New prepares a link; Start connects it.
func New(o Options) (*Link, error) {
	if o.Broker == "" || o.ClientID == "" {
		return nil, errors.New("link: broker and client id are required")
	}
	if _, err := url.Parse(o.Broker); err != nil {
		return nil, fmt.Errorf("link: broker: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnectRetryInterval <= 0 {
		o.ConnectRetryInterval = 3 * time.Second
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = 2 * time.Minute
	}
	if o.MaxJitter <= 0 {
		o.MaxJitter = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	l := &Link{
		o:       o,
		log:     o.Logger,
		stop:    make(chan struct{}),
		queued:  make(chan struct{}, 1),
		connect: make(chan struct{}, 1),
	}
	opts := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(o.Timeout).
		SetWriteTimeout(o.Timeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(o.MaxReconnectInterval).
		SetConnectRetry(true).
		SetConnectRetryInterval(o.ConnectRetryInterval).
		SetConnectionAttemptHandler(l.beforeAttempt).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			l.log.Warn("connection to broker lost", "err", err)
			l.markDown()
		}).
		SetDefaultPublishHandler(l.onMessage)
	if o.WillTopic != "" {
		opts.SetBinaryWill(o.WillTopic, o.WillPayload, 1, true)
	}
	l.client = mqtt.NewClient(opts)
	return l, nil
}

// Start begins connecting in the background; it returns at once. Connected
// is signalled once the link is up and subscribed.
func (l *Link) Start() {
	l.client.Connect() // with ConnectRetry the token completes only on success or Close
}

// beforeAttempt spreads reconnection attempts of many boxes over time.
// It runs on paho's connecting goroutine, never on a message handler.
func (l *Link) beforeAttempt(_ *url.URL, cfg *tls.Config) *tls.Config {
	n := l.failures.Add(1) - 1
	limit := min(500*time.Millisecond<<min(n, 10), l.o.MaxJitter)
	d := rand.N(limit + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.stop:
	}
	return cfg
}

// onConnect runs on its own goroutine (paho starts one per connect), so it
// may wait for the SUBACK.
func (l *Link) onConnect(c mqtt.Client) {
	l.failures.Store(0)
	l.mu.Lock()
	l.down = make(chan struct{})
	l.mu.Unlock()
	if len(l.o.Filters) > 0 {
		filters := make(map[string]byte, len(l.o.Filters))
		for _, f := range l.o.Filters {
			filters[f] = 1
		}
		tok := c.SubscribeMultiple(filters, nil)
		if !tok.WaitTimeout(l.o.Timeout) {
			l.log.Error("subscribe timed out; reconnecting", "filters", l.o.Filters)
			l.kick()
			return
		}
		if err := tok.Error(); err != nil {
			l.log.Error("subscribe failed; reconnecting", "filters", l.o.Filters, "err", err)
			l.kick()
			return
		}
		// A broker refuses a filter in the SUBACK (0x80), not with an
		// error. A box that went on would hear none of that group's
		// commands and play nothing new, silently: say which filter, and
		// try again, as for a failed subscribe.
		if st, ok := tok.(*mqtt.SubscribeToken); ok {
			for f, code := range st.Result() {
				if code >= 0x80 {
					l.log.Error("the broker refused a subscription (check its access list for this box); reconnecting",
						"filter", f, "code", code)
					l.kick()
					return
				}
			}
		}
	}
	l.log.Info("connected to broker", "broker", l.o.Broker)
	select {
	case l.connect <- struct{}{}:
	default:
	}
}

// markDown fails publishes waiting on the connection that was lost: paho
// keeps their tokens open, to resend after reconnecting.
func (l *Link) markDown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down != nil {
		select {
		case <-l.down:
		default:
			close(l.down)
		}
	}
}

// kick drops a connection that is of no use (not subscribed); paho's
// auto-reconnect cannot be triggered directly, so the link restarts it.
//
// paho refuses Connect at once (ErrInvalidState) while the client is still
// disconnecting or another connect is under way, and a refused Connect
// would leave the box off the broker for good (two of 5,000 simulated boxes
// stayed so for minutes under load), so a refusal is retried after a
// jittered pause; an accepted one goes on in the background with paho's
// own retries.
func (l *Link) kick() {
	go func() {
		l.client.Disconnect(100)
		for pause := 100 * time.Millisecond; ; pause = min(pause*2, l.o.MaxJitter) {
			select {
			case <-l.stop:
				return
			default:
			}
			tok := l.client.Connect()
			if !tok.WaitTimeout(100*time.Millisecond) || tok.Error() == nil {
				return // connecting (paho retries until it succeeds), or connected
			}
			l.log.Warn("reconnect refused; trying again", "err", tok.Error(), "after", pause)
			t := time.NewTimer(pause/2 + rand.N(pause/2+1))
			select {
			case <-l.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}

// onMessage is paho's handler: it must never block, so it only queues.
func (l *Link) onMessage(_ mqtt.Client, m mqtt.Message) {
	msg := Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()}
	l.mu.Lock()
	l.queue = append(l.queue, msg)
	l.mu.Unlock()
	select {
	case l.queued <- struct{}{}:
	default:
	}
}

// Next returns the next received message, waiting until one arrives or
// ctx ends.
func (l *Link) Next(ctx context.Context) (Message, error) {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 {
			m := l.queue[0]
			l.queue[0] = Message{}
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return m, nil
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return Message{}, ctx.Err()
		case <-l.queued:
		}
	}
}

// Connected is signalled after every (re)connection, once subscribed.
func (l *Link) Connected() <-chan struct{} { return l.connect }

// IsConnected reports whether the connection is up now.
func (l *Link) IsConnected() bool { return l.client.IsConnectionOpen() }

// Publish sends with QoS 1 and waits for the broker's PUBACK, at most
// Timeout, and no longer than ctx or the connection lasts.
func (l *Link) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	l.mu.Lock()
	down := l.down
	l.mu.Unlock()
	if down == nil || !l.client.IsConnectionOpen() {
		return ErrNotConnected
	}
	select {
	case <-down:
		return ErrNotConnected
	default:
	}
	tok := l.client.Publish(topic, 1, retained, payload)
	t := time.NewTimer(l.o.Timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		return fmt.Errorf("publish %s: no PUBACK within %s", topic, l.o.Timeout)
	case <-down:
		return fmt.Errorf("publish %s: %w (connection lost)", topic, ErrNotConnected)
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Close disconnects cleanly (the broker then does not publish the Will).
func (l *Link) Close() error {
	l.once.Do(func() {
		close(l.stop)
		l.client.Disconnect(250)
		l.markDown()
	})
	return nil
}
