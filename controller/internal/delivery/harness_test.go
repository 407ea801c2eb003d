package delivery

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/broker"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// The publisher's tests run the real parts: a SQLite store in a temp dir,
// the embedded broker on a loopback port, paho clients that read what the
// broker retains, and real signatures. Only the clock is fake (the store's
// and the service's Now), so a month passes at once.

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const (
	serviceUser, servicePass = "controller", "service-secret"
	waitFor                  = 20 * time.Second // paho reconnects within a few seconds
)

// hookStore is the real store with hooks where a test must stop the
// publisher at a given point, and a guard: after Run has returned, no
// call may reach the database (main closes it then).
type hookStore struct {
	*store.DB
	stopped  atomic.Bool
	dueReads atomic.Int64 // RetainedDue calls: one per page a refresh reads
	late     atomic.Value // string: the first call after Run returned

	mu            sync.Mutex
	retainedAfter func(after int64) // called before each refill page is read
	ingest        func(ctx context.Context) error
}

func (h *hookStore) touch(name string) {
	if h.stopped.Load() {
		h.late.CompareAndSwap(nil, name)
	}
}

func (h *hookStore) setHooks(retainedAfter func(after int64), ingest func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.retainedAfter, h.ingest = retainedAfter, ingest
}

func (h *hookStore) hooks() (func(int64), func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.retainedAfter, h.ingest
}

func (h *hookStore) RetainedAfter(ctx context.Context, seq int64, limit int) ([]store.Retained, error) {
	h.touch("RetainedAfter")
	if f, _ := h.hooks(); f != nil {
		f(seq)
	}
	return h.DB.RetainedAfter(ctx, seq, limit)
}

func (h *hookStore) IngestEvents(ctx context.Context, bs []store.IngestBatch) (map[string]int64, error) {
	h.touch("IngestEvents")
	if _, f := h.hooks(); f != nil {
		if err := f(ctx); err != nil {
			return nil, err
		}
	}
	return h.DB.IngestEvents(ctx, bs)
}

func (h *hookStore) NextCommandSeq(ctx context.Context) (int64, error) {
	h.touch("NextCommandSeq")
	return h.DB.NextCommandSeq(ctx)
}

func (h *hookStore) PutRetained(ctx context.Context, r store.Retained) error {
	h.touch("PutRetained")
	return h.DB.PutRetained(ctx, r)
}

func (h *hookStore) RetainedDue(ctx context.Context, now, before time.Time, seq int64, limit int) ([]store.Retained, error) {
	h.touch("RetainedDue")
	h.dueReads.Add(1)
	return h.DB.RetainedDue(ctx, now, before, seq, limit)
}

func (h *hookStore) UnsentOutbox(ctx context.Context, limit int) ([]store.OutboxEntry, error) {
	h.touch("UnsentOutbox")
	return h.DB.UnsentOutbox(ctx, limit)
}

func (h *hookStore) SignOutbox(ctx context.Context, seq int64, rs []store.Retained) error {
	h.touch("SignOutbox")
	return h.DB.SignOutbox(ctx, seq, rs)
}

func (h *hookStore) OutboxSent(ctx context.Context, e store.OutboxEntry) error {
	h.touch("OutboxSent")
	return h.DB.OutboxSent(ctx, e)
}

func (h *hookStore) OutboxFailed(ctx context.Context, e store.OutboxEntry, cause, sendErr string) error {
	h.touch("OutboxFailed")
	return h.DB.OutboxFailed(ctx, e, cause, sendErr)
}

func (h *hookStore) OutboxDrop(ctx context.Context, e store.OutboxEntry, cause string) error {
	h.touch("OutboxDrop")
	return h.DB.OutboxDrop(ctx, e, cause)
}

func (h *hookStore) SetPresences(ctx context.Context, ups []store.PresenceUpdate) ([]string, error) {
	h.touch("SetPresences")
	return h.DB.SetPresences(ctx, ups)
}

// syncBuffer collects the logs of a test, shown if it fails (always with
// CUNXIANG_TEST_LOGS=1).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// harness is a store with a county, a broker and (once started) a service.
type harness struct {
	tb     testing.TB
	db     *store.DB
	hs     *hookStore
	path   string
	clk    *playliststest.Clock
	key    ed25519.PrivateKey
	topics api.Topics
	logs   *syncBuffer
	log    *slog.Logger

	addr   string // the broker's host:port, kept across restarts
	broker *runningBroker

	playlist int64 // a playlist of one 3 s clip
	clip     int64
	svc      *Service
	stopSvc  func() error
}

// runningBroker is an embedded broker serving in the background.
type runningBroker struct {
	srv    *broker.Server
	ln     net.Listener
	cancel context.CancelFunc
	done   chan error
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	ctx := context.Background()
	h := &harness{tb: tb, clk: playliststest.NewClock(t0), topics: api.Topics{Prefix: "cxt"},
		key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), logs: &syncBuffer{}}
	h.log = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb.Cleanup(func() {
		if tb.Failed() || os.Getenv("CUNXIANG_TEST_LOGS") != "" {
			tb.Logf("logs:\n%s", h.logs.String())
		}
	})
	h.path = filepath.Join(tb.TempDir(), "cx.db")
	db, err := store.Open(ctx, h.path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	db.Now = h.clk.Now
	h.db, h.hs = db, &hookStore{DB: db}
	if _, err := db.ImportVillages(ctx, []store.Village{
		{Code: "110101001001", Name: "东村", Township: "东镇", Device: "agent"},
		{Code: "110101001002", Name: "西村", Township: "东镇", Device: "agent"},
		{Code: "110101002001", Name: "南村", Township: "南镇", Device: "agent"},
	}); err != nil {
		tb.Fatal(err)
	}
	a, _, err := db.CreateAudio(ctx, store.Audio{SHA256: strings.Repeat("ab", 32), Title: "警报", DurationMS: 3000, SampleRate: 22050, Channels: 1}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	pl, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "早间", Items: []playlists.Item{{AudioID: a.ID, Repeat: 1}}})
	if err != nil {
		tb.Fatal(err)
	}
	h.clip, h.playlist = a.ID, pl.ID
	return h
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startBroker starts an embedded broker, empty, on h.addr (a free port the
// first time).
func (h *harness) startBroker() {
	h.tb.Helper()
	if h.addr == "" {
		h.addr = freeAddr(h.tb)
	}
	var ln net.Listener
	deadline := time.Now().Add(waitFor)
	for {
		var err error
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			h.tb.Fatalf("listen again on %s: %v", h.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the last broker's socket is closing
	}
	srv, err := broker.New(broker.Options{Listener: ln, Auth: h.db, Topics: h.topics,
		ServiceUser: serviceUser, ServicePassword: servicePass, Logger: h.log})
	if err != nil {
		h.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &runningBroker{srv: srv, ln: ln, cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- srv.Run(ctx) }()
	h.broker = b
	h.tb.Cleanup(h.stopBroker)
}

// stopBroker stops the broker, which forgets all it retained.
func (h *harness) stopBroker() {
	b := h.broker
	if b == nil {
		return
	}
	h.broker = nil
	// Stop listening first: mochi disconnects its clients before it
	// closes its listener, and a connection it accepts in between is
	// never served nor closed, so paho's immediate reconnect would wait
	// its 30 s connect timeout for a CONNACK.
	b.ln.Close()
	b.cancel()
	<-b.done
}

// start runs a service on the store and the broker's address.
func (h *harness) start(change ...func(*Options)) *Service {
	h.tb.Helper()
	s := h.newService(change...)
	h.run(s)
	return s
}

// newService makes a service on the store and the broker's address,
// RetryEvery 50 ms, the fake clock; change edits the options.
func (h *harness) newService(change ...func(*Options)) *Service {
	h.tb.Helper()
	if h.addr == "" {
		h.addr = freeAddr(h.tb)
	}
	o := Options{Store: h.hs, Broker: "tcp://" + h.addr, Username: serviceUser, Password: servicePass,
		ClientID: "cunxiang-controller-test", Topics: h.topics, SigningKey: h.key, Logger: h.log,
		Now: h.clk.Now, RetryEvery: 50 * time.Millisecond}
	for _, c := range change {
		c(&o)
	}
	s, err := New(o)
	if err != nil {
		h.tb.Fatal(err)
	}
	return s
}

// run runs s until the test ends or stop is called.
func (h *harness) run(s *Service) {
	h.tb.Helper()
	if late := h.hs.late.Load(); late != nil {
		h.tb.Fatalf("the store was called (%s) after Run returned", late)
	}
	h.hs.stopped.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	h.svc = s
	h.stopSvc = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
				h.hs.stopped.Store(true)
			case <-time.After(waitFor):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	h.tb.Cleanup(func() {
		if err := h.stopSvc(); err != nil {
			h.tb.Error(err)
		}
		if late := h.hs.late.Load(); late != nil {
			h.tb.Errorf("the store was called (%s) after Run returned", late)
		}
	})
}

// deliver waits, up to waitFor, until the outbox entries of kind for ref
// are on the broker.
func (h *harness) deliver(kind, ref string) {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.svc.Deliver(ctx, kind, ref); err != nil {
		h.tb.Fatalf("deliver %s %s: %v", kind, ref, err)
	}
}

// schedule stores a daily 07:30 schedule of h.playlist for all villages,
// from the clock's day to its last day (none: for ever).
func (h *harness) schedule(last time.Time) store.Schedule {
	h.tb.Helper()
	r := &playlists.Recurrence{Times: []string{"07:30"}, StartDate: h.clk.Now().Format("2006-01-02")}
	if !last.IsZero() {
		r.EndDate = last.Format("2006-01-02")
	}
	sc, err := h.db.CreateSchedule(context.Background(), playlists.Schedule{PlaylistID: h.playlist,
		Targets: playlists.Targets{All: true}, Timezone: "Asia/Shanghai", Recurring: r}, "li")
	if err != nil {
		h.tb.Fatal(err)
	}
	return sc
}

// once stores a one-off schedule at at.
func (h *harness) once(at time.Time) store.Schedule {
	h.tb.Helper()
	sc, err := h.db.CreateSchedule(context.Background(), playlists.Schedule{PlaylistID: h.playlist,
		Targets: playlists.Targets{All: true}, Timezone: "Asia/Shanghai", OnceAt: &at}, "li")
	if err != nil {
		h.tb.Fatal(err)
	}
	return sc
}

// broadcast stores a released broadcast of the clip to targets.
func (h *harness) broadcast(targets playlists.Targets, expiresIn time.Duration) store.Broadcast {
	h.tb.Helper()
	b, err := h.db.CreateBroadcast(context.Background(), store.Broadcast{AudioID: h.clip, Targets: targets,
		Priority: playlists.Routine, Severity: 4, ExpiresAt: h.clk.Now().Add(expiresIn), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		h.tb.Fatal(err)
	}
	return b
}

// outbox returns every outbox entry, sent or not, by seq.
func (h *harness) outbox() []outboxRow {
	h.tb.Helper()
	db, err := sql.Open("sqlite", h.path)
	if err != nil {
		h.tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT seq, kind, ref, sent_at IS NOT NULL, attempts, last_error FROM outbox ORDER BY seq`)
	if err != nil {
		h.tb.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.Seq, &r.Kind, &r.Ref, &r.Sent, &r.Attempts, &r.LastError); err != nil {
			h.tb.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		h.tb.Fatal(err)
	}
	return out
}

type outboxRow struct {
	Seq       int64
	Kind, Ref string
	Sent      bool
	Attempts  int
	LastError string
}

// exec runs a statement on the database file, beside the store (as an
// older controller or a damaged row would leave it).
func (h *harness) exec(query string, args ...any) {
	h.tb.Helper()
	db, err := sql.Open("sqlite", h.path)
	if err != nil {
		h.tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		h.tb.Fatal(err)
	}
}

// stored returns the retained command the store holds on topic.
func (h *harness) stored(topic string) store.Retained {
	h.tb.Helper()
	rs, err := h.db.RetainedOn(context.Background(), []string{topic})
	if err != nil {
		h.tb.Fatal(err)
	}
	if len(rs) != 1 {
		h.tb.Fatalf("the store retains %d commands on %s", len(rs), topic)
	}
	return rs[0]
}

func (h *harness) pub() ed25519.PublicKey { return h.key.Public().(ed25519.PublicKey) }

// verify checks a payload as a box would at the clock's time.
func (h *harness) verify(topic string, payload []byte) api.Command {
	h.tb.Helper()
	c, err := api.Verify(h.pub(), h.topics, topic, payload, h.clk.Now())
	if err != nil {
		h.tb.Fatalf("%s: %v", topic, err)
	}
	return c
}

var observers atomic.Int64

// watcher is a paho client subscribed to every command topic: it follows
// what the broker retains (the retained messages sent on subscribing,
// then every publication after) and logs every message in order.
type watcher struct {
	c    paho.Client
	mu   sync.Mutex
	held map[string][]byte
	seen []seenMsg
}

type seenMsg struct {
	topic   string
	payload []byte
}

func (h *harness) watch() *watcher {
	h.tb.Helper()
	w := &watcher{held: map[string][]byte{}}
	id := fmt.Sprintf("observer-%d", observers.Add(1))
	o := paho.NewClientOptions().AddBroker("tcp://" + h.addr).SetClientID(id).
		SetUsername(serviceUser).SetPassword(servicePass).SetCleanSession(true).SetAutoReconnect(false)
	w.c = paho.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		h.tb.Fatalf("observer connect: %v", tok.Error())
	}
	h.tb.Cleanup(func() { w.c.Disconnect(0) })
	tok := w.c.Subscribe(h.topics.CommandFilter("+"), 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		defer w.mu.Unlock()
		p := append([]byte(nil), m.Payload()...)
		w.seen = append(w.seen, seenMsg{m.Topic(), p})
		if len(p) == 0 {
			delete(w.held, m.Topic())
		} else {
			w.held[m.Topic()] = p
		}
	})
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		h.tb.Fatalf("observer subscribe: %v", tok.Error())
	}
	return w
}

// until waits up to waitFor for cond to hold of what the broker retains
// and returns that, or fails the test saying what.
func (w *watcher) until(tb testing.TB, what string, cond func(held map[string][]byte) bool) map[string][]byte {
	tb.Helper()
	snap, ok := w.poll(cond, waitFor)
	if !ok {
		tb.Fatalf("the broker never had %s; it retains %d topics", what, len(snap))
	}
	return snap
}

// poll waits up to d for cond to hold of what the broker retains.
func (w *watcher) poll(cond func(held map[string][]byte) bool, d time.Duration) (map[string][]byte, bool) {
	deadline := time.Now().Add(d)
	for {
		w.mu.Lock()
		snap := make(map[string][]byte, len(w.held))
		for k, v := range w.held {
			snap[k] = v
		}
		w.mu.Unlock()
		if cond(snap) {
			return snap, true
		}
		if time.Now().After(deadline) {
			return snap, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retained waits up to waitFor for cond to hold of what the broker
// retains as a client subscribing afresh gets it, and returns that. Each
// try subscribes anew: mochi can miss a retained message for a
// subscription it takes while the same topic is being published.
func (h *harness) retained(what string, cond func(held map[string][]byte) bool) map[string][]byte {
	h.tb.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		w := h.watch()
		snap, ok := w.poll(cond, time.Second)
		w.c.Disconnect(0)
		if ok {
			return snap
		}
		if time.Now().After(deadline) {
			h.tb.Fatalf("the broker never had %s; it retains %d topics", what, len(snap))
		}
	}
}

// messages returns what was seen on topic, in order.
func (w *watcher) messages(topic string) [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out [][]byte
	for _, m := range w.seen {
		if m.topic == topic {
			out = append(out, m.payload)
		}
	}
	return out
}

// settled waits until the refill after each connect has ended, so that
// stopping the broker does not leave the publisher waiting up to
// publishWait for acknowledgements of the refill.
func (h *harness) settled() {
	h.tb.Helper()
	waitUntil(h.tb, "the refill after connecting", func() bool {
		l := h.logs.String()
		n := strings.Count(l, "connected to broker")
		return n > 0 && strings.Count(l, "republished retained state") >= n
	})
}

// waitUntil polls cond up to waitFor.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
