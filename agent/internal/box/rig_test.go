package box

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/identity"
	"github.com/cunxiang/cunxiang/agent/internal/link"
	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/agent/internal/store"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// The box under test, and when its fake clock starts.
const village = "110101001001"

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// rig is one box, the real Agent with its real store, cache, planner and
// clock measurement, on a fake clock (playliststest.Clock), with a fake
// MQTT link through which the test plays the controller, an httptest
// controller for the clock, clips and broadcast checks, and an output that
// records what sounds.
type rig struct {
	t      *testing.T
	dir    string
	key    ed25519.PrivateKey
	topics api.Topics
	clock  *playliststest.Clock
	ctrl   *controller
	out    *output
	seq    atomic.Int64

	// The running box; start and stop replace them.
	a      *Agent
	link   *fakeLink
	cancel context.CancelFunc
	done   chan error

	// options, if set, adjusts the box's options at each start.
	options func(*Options)
	// beforeRun, if set, runs between New and Run at each start.
	beforeRun func(*Agent)
}

// newRig makes an enrolled box's data directory; start runs the box.
func newRig(t *testing.T) *rig {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: t.TempDir(), key: key, topics: api.Topics{Prefix: "test"}, clock: playliststest.NewClock(t0)}
	r.out = &output{clock: r.clock}
	r.ctrl = newController(t, r.clock)
	id := identity.Identity{EnrolledAt: t0, EnrollResponse: api.EnrollResponse{
		Village: village, MQTTUsername: "box-" + village, MQTTPassword: "secret",
		SigningKey: pub, TopicPrefix: r.topics.Prefix, Broker: "tcp://127.0.0.1:1",
	}}
	if err := identity.Save(r.dir, id); err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs the box until the test ends (or stop), and waits until it has
// connected and said it is online.
func (r *rig) start() {
	r.t.Helper()
	r.link = newFakeLink()
	o := Options{
		Village: village, Controller: r.ctrl.URL, DataDir: r.dir, Output: r.out,
		HTTPClient: r.ctrl.Client(), Clock: r.clock,
		newLink: func(link.Options) (mqttLink, error) { return r.link, nil },
	}
	if r.options != nil {
		r.options(&o)
	}
	a, err := New(context.Background(), o)
	if err != nil {
		r.t.Fatal(err)
	}
	if r.beforeRun != nil {
		r.beforeRun(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.a, r.cancel, r.done = a, cancel, make(chan error, 1)
	go func() { r.done <- a.Run(ctx) }()
	r.t.Cleanup(r.stop)
	waitFor(r.t, "online presence", func() bool { return len(r.link.published(r.topics.Presence(village))) > 0 })
}

// stop stops the box as a clean shutdown does; start brings it back.
func (r *rig) stop() {
	if r.a == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
	if err := r.a.Close(); err != nil {
		r.t.Errorf("Close: %v", err)
	}
	r.a = nil
}

// command is a command valid for a day from now, with the next seq.
func (r *rig) command(kind string, target api.Group) api.Command {
	now := r.clock.Now()
	return api.Command{V: api.Version, ID: api.NewCommandID(), Kind: kind, Target: target, Seq: r.seq.Add(1), IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
}

// message signs c and addresses it to its retained topic, as the
// controller publishes it.
func (r *rig) message(c api.Command) link.Message {
	r.t.Helper()
	raw, err := api.Sign(r.key, c)
	if err != nil {
		r.t.Fatal(err)
	}
	var topic string
	switch {
	case c.Schedule != nil:
		topic = r.topics.Schedule(c.Target, c.Schedule.Schedule.ID)
	case c.Withdraw != nil:
		topic = r.topics.Schedule(c.Target, c.Withdraw.ScheduleID)
	case c.Broadcast != nil:
		topic = r.topics.Broadcast(c.Target, c.Broadcast.ID)
	case c.Cancel != nil:
		topic = r.topics.Broadcast(c.Target, c.Cancel.BroadcastID)
	case c.Live != nil:
		topic = r.topics.Broadcast(c.Target, c.Live.BroadcastID)
	case c.LiveStop != nil:
		topic = r.topics.Broadcast(c.Target, c.LiveStop.BroadcastID)
	case c.Config != nil:
		topic = r.topics.Config(c.Target)
	case c.Ack != nil:
		topic = r.topics.ReportsAck(c.Ack.Village)
	}
	return link.Message{Topic: topic, Payload: raw, Retained: true}
}

// apply hands the box a command as its command loop does, and returns
// once it is applied.
func (r *rig) apply(c api.Command) { r.a.handle(r.message(c)) }

// send puts a message on the link, for the box's command loop to take.
func (r *rig) send(m link.Message) { r.link.in <- m }

func (r *rig) putSchedule(st api.ScheduleState) api.Command {
	c := r.command(api.KindSchedulePut, api.VillageGroup(village))
	c.Schedule = &st
	return c
}

func (r *rig) withdraw(id int64) api.Command {
	c := r.command(api.KindScheduleWithdraw, api.VillageGroup(village))
	c.Withdraw = &api.Withdrawal{ScheduleID: id}
	return c
}

func (r *rig) putBroadcast(b api.BroadcastState) api.Command {
	c := r.command(api.KindBroadcastPut, api.TownshipGroup(api.TownshipCode(village)))
	c.Broadcast = &b
	c.ExpiresAt = b.ExpiresAt.Add(24 * time.Hour)
	return c
}

func (r *rig) cancelBroadcast(id int64) api.Command {
	c := r.command(api.KindBroadcastCancel, api.TownshipGroup(api.TownshipCode(village)))
	c.Cancel = &api.Cancellation{BroadcastID: id}
	return c
}

func (r *rig) putConfig(g api.Group, cfg api.BoxConfig) api.Command {
	c := r.command(api.KindConfigPut, g)
	c.Config = &cfg
	return c
}

// once is a schedule that plays the items once at at.
func once(id int64, at time.Time, items ...playlists.Item) api.ScheduleState {
	at = at.UTC()
	return api.ScheduleState{
		Schedule: playlists.Schedule{ID: id, PlaylistID: id, Targets: playlists.Targets{All: true}, OnceAt: &at},
		Playlist: playlists.Playlist{ID: id, Name: fmt.Sprint("playlist ", id), Items: items},
	}
}

// broadcast is a broadcast issued now that expires in an hour.
func (r *rig) broadcast(id int64, prio playlists.Priority, items ...playlists.Item) api.BroadcastState {
	now := r.clock.Now()
	return api.BroadcastState{ID: id, Priority: prio, Severity: 1, Playlist: playlists.Playlist{ID: id, Name: "b", Items: items}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// clip makes a clip of ms milliseconds of the constant sample level. The
// controller serves it; cached also puts it in the box's cache before the
// box starts.
func (r *rig) clip(id int64, ms int, level int16, cached bool) playlists.Item {
	r.t.Helper()
	pcm := make([]int16, ms*playlists.SampleRate/1000)
	for i := range pcm {
		pcm[i] = level
	}
	path := filepath.Join(r.t.TempDir(), "clip.wav")
	if err := player.WriteWAV(path, pcm); err != nil {
		r.t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	r.ctrl.addClip(id, data)
	if cached {
		dir := filepath.Join(r.dir, "audio")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, hexSum+".wav"), data, 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	return playlists.Item{AudioID: id, SHA256: hexSum, DurationMS: int64(ms), Repeat: 1}
}

// events is every report in the box's outbox (none is acked unless the
// test acks), read from its state file when it is stopped.
func (r *rig) events() []api.Event {
	r.t.Helper()
	var db *store.DB
	if r.a != nil {
		db = r.a.db
	} else {
		var err error
		if db, err = store.OpenReadOnly(filepath.Join(r.dir, StateFile)); err != nil {
			r.t.Fatal(err)
		}
		defer db.Close()
	}
	evs, err := db.Pending(0, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

// find returns the reports of type typ about schedule or broadcast id
// (by is "s" or "b").
func (r *rig) find(typ, by string, id int64) []api.Event {
	var out []api.Event
	for _, e := range r.events() {
		if e.Type == typ && ((by == "s" && e.ScheduleID == id) || (by == "b" && e.BroadcastID == id)) {
			out = append(out, e)
		}
	}
	return out
}

// waitReport waits until the box has made a report of type typ about
// schedule or broadcast id, and returns it.
func (r *rig) waitReport(typ, by string, id int64) api.Event {
	r.t.Helper()
	var got []api.Event
	waitFor(r.t, fmt.Sprintf("%s report of %s%d", typ, by, id), func() bool { got = r.find(typ, by, id); return len(got) > 0 })
	return got[0]
}

// advanceUntil moves the fake clock on by d, then a second at a time
// while cond does not hold: the box's loops arm their timers after they
// read the time, so one step can land before a loop has armed its next.
func (r *rig) advanceUntil(d time.Duration, what string, cond func() bool) {
	r.t.Helper()
	r.clock.Advance(d)
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s (clock at %s)", what, r.clock.Now().Format(time.TimeOnly))
		}
		if !pollFor(20*time.Millisecond, cond) {
			r.clock.Advance(time.Second)
		}
	}
}

// waitFor waits, in real time, until cond holds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	if !pollFor(10*time.Second, cond) {
		tb.Fatalf("timed out waiting for %s", what)
	}
}

// pollFor reports whether cond holds within d.
func pollFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeLink is the box's MQTT link with no broker: the test puts commands
// in, and reads what the box published.
type fakeLink struct {
	in        chan link.Message
	connected chan struct{}
	up        atomic.Bool

	mu   sync.Mutex
	sent []link.Message
}

func newFakeLink() *fakeLink {
	return &fakeLink{in: make(chan link.Message, 16), connected: make(chan struct{}, 1)}
}

func (l *fakeLink) Start() { l.connect() }

// connect brings the link up, as a (re)connection does.
func (l *fakeLink) connect() {
	l.up.Store(true)
	select {
	case l.connected <- struct{}{}:
	default:
	}
}

func (l *fakeLink) Close() error { l.up.Store(false); return nil }

func (l *fakeLink) Next(ctx context.Context) (link.Message, error) {
	select {
	case m := <-l.in:
		return m, nil
	case <-ctx.Done():
		return link.Message{}, ctx.Err()
	}
}

func (l *fakeLink) Publish(_ context.Context, topic string, payload []byte, retained bool) error {
	if !l.up.Load() {
		return link.ErrNotConnected
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, link.Message{Topic: topic, Payload: payload, Retained: retained})
	return nil
}

func (l *fakeLink) Connected() <-chan struct{} { return l.connected }
func (l *fakeLink) IsConnected() bool          { return l.up.Load() }

// published lists the payloads published on topic.
func (l *fakeLink) published(topic string) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	for _, m := range l.sent {
		if m.Topic == topic {
			out = append(out, m.Payload)
		}
	}
	return out
}

// output records every clip the box plays. While held, a clip sounds
// until release (or until the box stops it).
type output struct {
	clock *playliststest.Clock

	mu    sync.Mutex
	plays []*played
	hold  chan struct{}
}

type played struct {
	at    time.Time // the fake clock's reading when it began
	pcm   []int16
	ended bool
	err   error // why it stopped early
}

func (o *output) Play(ctx context.Context, pcm []int16) error {
	p := &played{at: o.clock.Now(), pcm: pcm}
	o.mu.Lock()
	o.plays = append(o.plays, p)
	hold := o.hold
	o.mu.Unlock()
	var err error
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	o.mu.Lock()
	p.ended, p.err = true, err
	o.mu.Unlock()
	return err
}

// holdAll makes clips sound until release.
func (o *output) holdAll() {
	o.mu.Lock()
	o.hold = make(chan struct{})
	o.mu.Unlock()
}

func (o *output) release() {
	o.mu.Lock()
	if o.hold != nil {
		close(o.hold)
		o.hold = nil
	}
	o.mu.Unlock()
}

// list returns a copy of what was played so far.
func (o *output) list() []played {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]played, len(o.plays))
	for i, p := range o.plays {
		out[i] = *p
	}
	return out
}

func (o *output) count() int { return len(o.list()) }

// controller is the part of the controller a box talks to over HTTP: the
// clock (offset ahead of the fake clock), clip downloads and the status of
// broadcasts a late box asks about.
type controller struct {
	*httptest.Server
	clock *playliststest.Clock

	mu        sync.Mutex
	offset    time.Duration
	clockErr  bool                    // the clock answers 503
	clips     map[int64][]byte        // audio id → WAV bytes
	gates     map[int64]chan struct{} // a download of that clip waits until closed
	status    map[int64]string        // broadcast id → its status; absent: 503
	asked     map[int64]int           // broadcast checks per id
	served    map[int64]int           // downloads asked for, per clip
	cancelled map[int64]int           // downloads the box gave up while they waited
}

func newController(tb testing.TB, clock *playliststest.Clock) *controller {
	c := &controller{clock: clock, clips: map[int64][]byte{}, gates: map[int64]chan struct{}{}, status: map[int64]string{}, asked: map[int64]int{}, served: map[int64]int{}, cancelled: map[int64]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/clock", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		fail, off := c.clockErr, c.offset
		c.mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(api.ClockResponse{Now: c.clock.Now().Add(off)})
	})
	mux.HandleFunc("GET /api/v1/audio/{id}/content", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		c.mu.Lock()
		data, ok := c.clips[id]
		gate := c.gates[id]
		c.served[id]++
		c.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				c.mu.Lock()
				c.cancelled[id]++
				c.mu.Unlock()
				return
			}
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("GET /api/v1/box/broadcasts/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if u, _, _ := r.BasicAuth(); !strings.HasPrefix(u, "box-") {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		c.mu.Lock()
		st, ok := c.status[id]
		c.asked[id]++
		c.mu.Unlock()
		if !ok {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(api.BroadcastCheck{ID: id, Status: st})
	})
	c.Server = httptest.NewServer(mux)
	tb.Cleanup(c.Close)
	return c
}

func (c *controller) addClip(id int64, data []byte) {
	c.mu.Lock()
	c.clips[id] = data
	c.mu.Unlock()
}

// gate makes downloads of the clip wait; the returned func lets them go.
func (c *controller) gate(id int64) func() {
	ch := make(chan struct{})
	c.mu.Lock()
	c.gates[id] = ch
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (c *controller) set(f func(c *controller)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// counts tells how often the box came for clip or broadcast id: downloads
// asked for, downloads given up while they waited, broadcast checks.
func (c *controller) counts(id int64) (served, cancelled, asked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[id], c.cancelled[id], c.asked[id]
}
