// Package broker runs the embedded MQTT broker (mochi-mqtt) that a
// one-machine installation uses, with Cunxiang's authentication and access
// list: each box logs in with its own credentials and may read only its own
// groups' command topics and write only its own report topics; anonymous
// and wrong-password clients are refused.
//
// The access list holds on every path on which mochi publishes for a
// client: PUBLISH at any QoS (OnACLCheck; a QoS 2 message is delivered at
// its PUBLISH, not at PUBREL), retained messages and their clearing
// (OnPublish: a box retains only its own presence), and the Last Will,
// which mochi publishes without OnACLCheck (checked at CONNECT, and again
// in OnWill when it is sent). The listener bounds what a stranger can make
// the broker hold before login (limits.go).
package broker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/connlimit"
)

// Authenticator checks a box's MQTT credentials and returns its village.
type Authenticator interface {
	CheckAgentPassword(ctx context.Context, username, password string) (village string, err error)
}

// Options configure the broker. Listen defaults to ":1883".
type Options struct {
	Listen string
	// Listener, if set, is used instead of listening on Listen (tests).
	Listener net.Listener
	Auth     Authenticator
	Topics   api.Topics
	// Service credentials with full access (the controller's own client).
	ServiceUser, ServicePassword string
	Logger                       *slog.Logger
	// WritesPending is the length of each client's queue of packets to
	// send (default DefaultWritesPending). mochi allocates it up front
	// for every connection (8 bytes a slot) and drops a message, QoS 1
	// included, when it is full: the controller's own client, which
	// receives every box's reports, needs it long enough for a burst.
	WritesPending int
	// MaxConns and MaxConnsPerAddr cap open connections, logged in or
	// not, in total and from one remote IP address (0: DefaultMaxConns,
	// DefaultMaxConnsPerAddr; negative: no cap). ConnectTimeout is how
	// long a connection may take to send its CONNECT (0:
	// DefaultConnectTimeout). MaxPacketSize bounds every packet (0:
	// DefaultMaxPacketSize).
	MaxConns, MaxConnsPerAddr int
	ConnectTimeout            time.Duration
	MaxPacketSize             int
	// WriteTimeout is how long one write to a client may make no
	// progress before its connection is closed (0:
	// DefaultWriteTimeout).
	WriteTimeout time.Duration
}

// DefaultWritesPending is the default Options.WritesPending. Measured
// with `controller bench` (BENCHMARKS.md): at 256 the broker dropped 0.3-3%
// of a burst of 5,000 report messages to the controller (the boxes' outbox
// resends them, late); at 1,024 it still dropped some; at 2,048 none, for
// about 14 KB more per connected box than 256 (mochi's default, 8,192,
// costs about 60 KB more).
const DefaultWritesPending = 2048

// Server is a running embedded broker.
type Server struct {
	mq        *mqtt.Server
	ln        *guardedListener
	auth      *authHook
	closeOnce sync.Once
	closeErr  error
	addr      net.Addr
	log       *slog.Logger
	rev       *revocations // revoke.go
}

// New listens and prepares the broker; Run serves it.
func New(opts Options) (*Server, error) {
	if opts.Auth == nil || opts.ServiceUser == "" || opts.ServicePassword == "" {
		return nil, errors.New("broker: Auth and service credentials are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "broker")
	ln := opts.Listener
	if ln == nil {
		addr := opts.Listen
		if addr == "" {
			addr = ":1883"
		}
		var err error
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("MQTT listen address %s: %w", addr, err)
		}
	}
	lim := limits{maxConns: connlimit.Cap(opts.MaxConns, DefaultMaxConns), maxPerAddr: connlimit.Cap(opts.MaxConnsPerAddr, DefaultMaxConnsPerAddr),
		connectTimeout: opts.ConnectTimeout}
	if lim.connectTimeout <= 0 {
		lim.connectTimeout = DefaultConnectTimeout
	}
	if lim.writeTimeout = opts.WriteTimeout; lim.writeTimeout <= 0 {
		lim.writeTimeout = DefaultWriteTimeout
	}
	gln := newGuardedListener(ln, lim, log)
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(connlimit.Cap(opts.MaxPacketSize, DefaultMaxPacketSize))
	// A box publishes on two topics; aliases give it nothing but state.
	caps.TopicAliasMaximum = 0
	// Retained commands carry their own signed expiry; the broker must not
	// drop desired state after its default 24 h.
	caps.MaximumMessageExpiryInterval = 0
	// mochi's default write queue costs ~64 KB per connection
	// (FIELD-NOTES); boxes receive little, but the controller's own client
	// receives every report, so the queue is shorter than mochi's default
	// yet long enough for the controller's bursts (DefaultWritesPending).
	caps.MaximumClientWritesPending = DefaultWritesPending
	if opts.WritesPending > 0 {
		caps.MaximumClientWritesPending = int32(opts.WritesPending)
	}
	// The controller acknowledges a report only once it is committed, so
	// during a burst (10,000 boxes reporting started) it holds more
	// unacknowledged messages than mochi's default in-flight quota of
	// 8,192, and mochi dropped the rest ("client store quota reached":
	// 23,711 at the bench's 10,000-box warm-up). In-flight messages cost
	// memory only while they exist; 65,535 is all the packet ids there are.
	caps.MaximumInflight = 65535
	mq := mqtt.New(&mqtt.Options{
		InlineClient:             true, // Subscribe
		Capabilities:             caps,
		Logger:                   slog.New(closedConnQuiet{log.Handler()}).WithGroup("mochi"),
		ClientNetWriteBufferSize: 2048,
		ClientNetReadBufferSize:  2048,
	})
	rev := newRevocations()
	h := &authHook{auth: opts.Auth, topics: opts.Topics, user: opts.ServiceUser, pass: opts.ServicePassword, log: log, srv: mq, rev: rev}
	if err := mq.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	s := &Server{mq: mq, ln: gln, auth: h, addr: ln.Addr(), log: log, rev: rev}
	if err := mq.AddHook(&revokeHook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := mq.AddListener(listeners.NewNet("tcp", gln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return s, nil
}

// Subscribe calls fn with every message published to filter, inside the
// broker (mochi's inline client): no socket and no write queue, so nothing
// is dropped however large the burst. fn runs on the publishing client's
// goroutine, so a slow fn slows that client rather than losing its
// messages. Subscribing the same filter again replaces fn.
func (s *Server) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	return s.mq.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, append([]byte(nil), pk.Payload...))
	})
}

// Addr is the address the broker listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// URL is a tcp:// URL for clients on this machine.
func (s *Server) URL() string {
	_, port, _ := net.SplitHostPort(s.addr.String())
	return "tcp://127.0.0.1:" + port
}

// Run serves until ctx is done, then closes the broker.
func (s *Server) Run(ctx context.Context) error {
	if err := s.mq.Serve(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	<-ctx.Done()
	return s.Close()
}

// Dropped is how many messages the broker has dropped since it started:
// a client's write queue was full, or its in-flight quota reached. A
// dropped QoS 1 message reaches its subscriber only if its publisher
// sends it again.
func (s *Server) Dropped() (queueFull, quota int64) {
	return atomic.LoadInt64(&s.mq.Info.MessagesDropped), atomic.LoadInt64(&s.mq.Info.InflightDropped)
}

// Close stops the broker and disconnects every client.
// It is safe to call more than once.
//
// mochi's Close stops listening and disconnects the clients, then waits
// for every client's goroutines; with thousands of boxes connecting while
// it closes, that wait was seen never to end (its count of clients went
// wrong: no client goroutine was left). Close waits at most closeWait for
// it, so that a restart can listen again.
//
// It stops listening first: mochi stops its accept loop before it closes
// the listener, and drops a connection accepted in between without closing
// it, so a box reconnecting then waited for its CONNACK until its own
// timeout (paho's 30 s) instead of trying the restarted broker at once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("stop listening", "err", err)
		}
		done := make(chan error, 1)
		go func() { done <- s.mq.Close() }()
		t := time.NewTimer(closeWait)
		defer t.Stop()
		select {
		case s.closeErr = <-done:
		case <-t.C:
			s.log.Warn("broker still closing its clients; going on without waiting", "after", closeWait)
		}
	})
	return s.closeErr
}

// closeWait bounds how long Close waits for mochi to finish closing.
const closeWait = 10 * time.Second

// authHook is the broker's authentication and access list.
type authHook struct {
	mqtt.HookBase
	auth       Authenticator
	topics     api.Topics
	user, pass string
	log        *slog.Logger
	villages   sync.Map // client id → village code, for ACL checks
	srv        *mqtt.Server
	rev        *revocations
	overQuota  sync.Map // *mqtt.Client → struct{}: being cut for holding MaxBoxInflight
}

func (h *authHook) ID() string { return "cunxiang-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnWill || b == mqtt.OnPublish ||
		b == mqtt.OnSubscribe || b == mqtt.OnDisconnect
}

// isService reports whether cl is the controller's own login.
func (h *authHook) isService(cl *mqtt.Client) bool {
	return string(cl.Properties.Username) == h.user && !strings.HasPrefix(cl.ID, "box-")
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := string(pk.Connect.Username), string(pk.Connect.Password)
	if user == "" {
		h.log.Warn("refused anonymous client", "remote", cl.Net.Remote)
		return false
	}
	if user == h.user {
		ok := subtle.ConstantTimeCompare([]byte(pass), []byte(h.pass)) == 1
		if !ok {
			h.log.Warn("refused service login with wrong password", "remote", cl.Net.Remote)
		}
		return ok
	}
	started := h.rev.start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	village, err := h.auth.CheckAgentPassword(ctx, user, pass)
	if err != nil {
		h.log.Warn("refused box login", "user", user, "remote", cl.Net.Remote, "err", err)
		return false
	}
	// A box must use its username as client id, so no box can take over
	// (and silence) another box's session.
	if cl.ID != user {
		h.log.Warn("refused box login: client id must equal username", "user", user, "client", cl.ID)
		return false
	}
	// mochi publishes the Will without OnACLCheck: refuse (CONNACK "not
	// authorized" to an MQTT 3 client) a box whose Will it could not
	// publish itself. Refusing, rather than the broker setting every
	// box's Will, keeps the agent's own offline presence (its time and
	// version) and shows a tampered box in the log instead of hiding it.
	// mochi keeps a persistent session, and every QoS 1 command sent to
	// its filters while the box is away, until the box comes back: for
	// ever, and after a revocation too. The agent always starts clean.
	if (pk.ProtocolVersion < 5 && !pk.Connect.Clean) || pk.Properties.SessionExpiryInterval > 0 {
		h.log.Warn("refused box login: persistent session", "user", user, "village", village, "remote", cl.Net.Remote)
		return false
	}
	if c := pk.Connect; c.WillFlag {
		if reason := h.willRefused(village, c.WillTopic, c.WillRetain); reason != "" {
			h.log.Warn("refused box login: "+reason, "user", user, "village", village, "topic", c.WillTopic, "retain", c.WillRetain, "remote", cl.Net.Remote)
			return false
		}
		if c.WillProperties.WillDelayInterval > 0 {
			// mochi sends a delayed Will later without any hook.
			h.log.Warn("refused box login: delayed Will", "user", user, "village", village, "remote", cl.Net.Remote)
			return false
		}
	}
	if !h.rev.admit(cl, village, started, &h.villages) {
		h.log.Warn("refused box login: the box was revoked while its password was checked", "user", user)
		return false
	}
	return true
}

// willRefused says why a box of village may not have a Will on topic
// (retained or not), or "" if it may.
func (h *authHook) willRefused(village, topic string, retain bool) string {
	switch {
	case !h.topics.BoxMay(village, topic, true):
		return "Will on a topic the box may not publish"
	case retain && !h.topics.BoxMayRetain(village, topic):
		return "retained Will outside the box's presence"
	}
	return ""
}

// refusedWill is what a Will refused as it is sent becomes: mochi gives
// OnWill no way to drop it, so it goes, empty and not retained, to a $
// topic that no box may subscribe to and no # or + filter matches.
var refusedWill = mqtt.Will{TopicName: "$cunxiang/refused-will"}

// OnWill checks the Will again as mochi sends it, against the box's access
// as it is then (it may have been revoked since CONNECT).
func (h *authHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.isService(cl) {
		return will, nil
	}
	if !h.OnACLCheck(cl, will.TopicName, true) || (will.Retain && !h.mayRetain(cl, will.TopicName)) {
		h.log.Warn("dropped a box's Will", "client", cl.ID, "topic", will.TopicName, "retain", will.Retain)
		return refusedWill, nil
	}
	return will, nil
}

func (h *authHook) mayRetain(cl *mqtt.Client, topic string) bool {
	v, ok := h.villages.Load(cl.ID)
	return ok && h.topics.BoxMayRetain(v.(string), topic)
}

// OnPublish refuses a box's retained publish (or retained clear) outside
// its own presence, once OnACLCheck has allowed the topic. As for a topic
// refused there, a QoS 0 message is dropped and a QoS 1 or 2 one answered
// "not authorized" (MQTT 5) or its connection closed (MQTT 3).
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || cl.Net.Inline || h.isService(cl) || h.mayRetain(cl, pk.TopicName) {
		return pk, nil
	}
	h.log.Warn("denied box retained publish", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos)
	if pk.FixedHeader.Qos > 0 {
		if cl.Properties.ProtocolVersion == 5 {
			ack := packets.Puback
			if pk.FixedHeader.Qos == 2 {
				ack = packets.Pubrec
			}
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: ack}, PacketID: pk.PacketID, ReasonCode: packets.ErrNotAuthorized.Code})
		} else {
			_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
	return pk, packets.ErrRejectPacket
}

// OnSubscribe bounds the filters a box holds (MaxBoxSubscriptions; mochi
// keeps each one in its topic tree while the session lives) and refuses a
// filter repeated in one SUBSCRIBE (each would send every retained message
// matching it once more). A refused filter is made invalid, which mochi
// answers in the SUBACK (0x8F in MQTT 5, 0x80 in MQTT 3).
func (h *authHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline || h.isService(cl) {
		return pk
	}
	held := cl.State.Subscriptions.Len()
	seen := make(map[string]bool, len(pk.Filters))
	filters := make(packets.Subscriptions, len(pk.Filters))
	copy(filters, pk.Filters)
	refused := 0
	for i, f := range filters {
		_, holds := cl.State.Subscriptions.Get(f.Filter)
		switch {
		case seen[f.Filter]:
		case holds:
			seen[f.Filter] = true
			continue
		case held < MaxBoxSubscriptions:
			seen[f.Filter] = true
			held++
			continue
		}
		filters[i].Filter = "" // invalid: refused
		refused++
	}
	if refused > 0 {
		h.log.Warn("refused box subscriptions over the cap or repeated", "client", cl.ID, "refused", refused, "max", MaxBoxSubscriptions)
	}
	pk.Filters = filters
	return pk
}

// OnDisconnect forgets a client cut for its quota.
func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.overQuota.Delete(cl) }

// overInflight reports whether a box holds MaxBoxInflight unacknowledged
// messages (mochi keeps each, payload copied, until it is acknowledged, up
// to 65,535 a client). Such a box is not handling its commands: nothing
// more is sent to it, and it is disconnected (its clean session and all
// it holds are then dropped); it gets every retained command again when
// it logs in.
func (h *authHook) overInflight(cl *mqtt.Client) bool {
	if cl.State.Inflight.Len() < MaxBoxInflight {
		return false
	}
	if _, cutting := h.overQuota.LoadOrStore(cl, struct{}{}); !cutting {
		h.log.Warn("disconnected a box holding too many unacknowledged messages", "client", cl.ID, "max", MaxBoxInflight, "remote", cl.Net.Remote)
		// Not on this goroutine: it may be the publisher's.
		go func() { _ = h.srv.DisconnectClient(cl, packets.ErrQuotaExceeded) }()
	}
	return true
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.isService(cl) {
		return true
	}
	if !write && h.overInflight(cl) {
		return false
	}
	v, ok := h.villages.Load(cl.ID)
	if !ok {
		return false
	}
	allowed := h.topics.BoxMay(v.(string), topic, write)
	if !allowed {
		h.log.Warn("denied box topic access", "village", v, "topic", topic, "write", write)
	}
	return allowed
}

// closedConnQuiet lowers to debug mochi's warnings about a connection
// that was closed (net.ErrClosed): they are what every client's read says
// when the broker closes, not something wrong, and the demo's terminal
// shows warnings.
type closedConnQuiet struct{ slog.Handler }

func (h closedConnQuiet) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		closed := false
		r.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && (errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")) {
				closed = true
			}
			return !closed
		})
		if closed {
			if !h.Handler.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
			r.Level = slog.LevelDebug
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h closedConnQuiet) WithAttrs(as []slog.Attr) slog.Handler {
	return closedConnQuiet{h.Handler.WithAttrs(as)}
}

func (h closedConnQuiet) WithGroup(name string) slog.Handler {
	return closedConnQuiet{h.Handler.WithGroup(name)}
}
