package fleet_test

// A stand-in controller for end-to-end tests of real agents: an embedded
// mochi-mqtt broker on a loopback port (never 1883), and httptest serving
// enroll, clock and audio content (with Range support). It signs commands
// with its own Ed25519 key and records every report batch it receives.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
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

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

type controllerOptions struct {
	skew    time.Duration // controller clock minus real time
	autoAck bool          // ack every batch as soon as it arrives
	// contiguousAck makes autoAck ack, as the real controller does, only
	// up to the highest seq N with 1..N all received (not a batch's last
	// seq), so a lost batch is not acked by a later one.
	contiguousAck bool
	adminToken    string // serves the admin API the fleet simulator uses, with this bearer token
}

type testController struct {
	tb        testing.TB
	o         controllerOptions
	key       ed25519.PrivateKey
	topics    api.Topics
	broker    *mqtt.Server
	brokerURL string
	http      *httptest.Server
	seq       atomic.Int64
	acks      chan [2]any // village, seq: published off the broker's goroutine

	mu       sync.Mutex
	clips    map[int64][]byte
	tokens   map[string]string
	batches  map[string][][]api.Event // every batch received, per village, in arrival order
	presence map[string][]api.Presence
	received map[string]map[int64]bool // contiguousAck: seqs received beyond acked
	acked    map[string]int64
	villages []string // imported through the admin API (all device agent)
	// checks answer GET /api/v1/box/broadcasts/{id} (late_test.go);
	// a broadcast not listed is active.
	checks map[int64]string
}

func newController(tb testing.TB, o controllerOptions) *testController {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var p [4]byte
	rand.Read(p[:])
	c := &testController{
		tb:       tb,
		o:        o,
		key:      key,
		topics:   api.Topics{Prefix: "test" + hex.EncodeToString(p[:]) + "/v1"},
		clips:    map[int64][]byte{},
		tokens:   map[string]string{},
		batches:  map[string][][]api.Event{},
		presence: map[string][]api.Presence{},
		received: map[string]map[int64]bool{},
		acked:    map[string]int64{},
		acks:     make(chan [2]any, 1000),
	}

	c.startBroker("127.0.0.1:0")
	done := make(chan struct{})
	go func() {
		for {
			select {
			case a := <-c.acks:
				c.Ack(a[0].(string), a[1].(int64))
			case <-done:
				return
			}
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/enroll", c.enroll)
	mux.HandleFunc("GET /api/v1/clock", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.ClockResponse{Now: c.Now()})
	})
	mux.HandleFunc("GET /api/v1/audio/{id}/content", c.audio)
	mux.HandleFunc("GET /api/v1/box/broadcasts/{id}", c.boxBroadcast)
	if o.adminToken != "" {
		mux.HandleFunc("POST /api/v1/villages/import", c.admin(c.importVillages))
		mux.HandleFunc("GET /api/v1/villages", c.admin(c.listVillages))
		mux.HandleFunc("POST /api/v1/villages/{code}/enroll", c.admin(c.issueToken))
	}
	c.http = httptest.NewServer(mux)

	tb.Cleanup(func() {
		c.http.Close()
		close(done)
		c.StopBroker()
	})
	return c
}

// startBroker starts an embedded broker (allow-all) on addr.
func (c *testController) startBroker(addr string) {
	c.tb.Helper()
	b := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		c.tb.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "test", Address: addr})
	if err := b.AddListener(tcp); err != nil {
		c.tb.Fatal(err)
	}
	go b.Serve()
	if err := b.Subscribe(c.topics.EventsFilter(), 1, c.onEvents); err != nil {
		c.tb.Fatal(err)
	}
	if err := b.Subscribe(c.topics.PresenceFilter(), 2, c.onPresence); err != nil {
		c.tb.Fatal(err)
	}
	c.mu.Lock()
	c.broker = b
	c.brokerURL = "tcp://" + tcp.Address()
	c.mu.Unlock()
}

// RestartBroker drops every connection and every retained message (as a
// restart of the embedded broker does), then listens on the same port.
func (c *testController) RestartBroker() {
	c.tb.Helper()
	addr := strings.TrimPrefix(c.brokerURL, "tcp://")
	c.broker.Close()
	c.startBroker(addr)
}

// StopBroker stops the broker for good.
func (c *testController) StopBroker() {
	c.mu.Lock()
	b := c.broker
	c.broker = nil
	c.mu.Unlock()
	if b != nil {
		b.Close()
	}
}

// Now is the controller's clock.
func (c *testController) Now() time.Time { return time.Now().Add(c.o.skew).UTC() }

func (c *testController) AllowEnroll(village, token string) {
	c.mu.Lock()
	c.tokens[village] = token
	c.mu.Unlock()
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

func (c *testController) enroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "invalid", "bad JSON")
		return
	}
	c.mu.Lock()
	want, ok := c.tokens[req.Village]
	c.mu.Unlock()
	if !ok || req.Token != want {
		writeError(w, http.StatusForbidden, "forbidden", "enrollment token for village "+req.Village+" is wrong or already used")
		return
	}
	json.NewEncoder(w).Encode(api.EnrollResponse{
		Village:      req.Village,
		MQTTUsername: "box-" + req.Village,
		MQTTPassword: "pw-" + req.Village,
		SigningKey:   c.key.Public().(ed25519.PublicKey),
		TopicPrefix:  c.topics.Prefix,
		Broker:       c.brokerURL,
	})
}

// admin guards the admin API with the bearer token.
func (c *testController) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+c.o.adminToken {
			writeError(w, http.StatusUnauthorized, "unauthorized", "bad token")
			return
		}
		h(w, r)
	}
}

// importVillages takes a villages CSV; it keeps the codes of agent rows.
func (c *testController) importVillages(w http.ResponseWriter, r *http.Request) {
	rows, err := csv.NewReader(r.Body).ReadAll()
	if err != nil || len(rows) == 0 || strings.Join(rows[0], ",") != "code,name,township,lat,lon,device" {
		writeError(w, 400, "invalid", fmt.Sprintf("bad CSV: %v", err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, row := range rows[1:] {
		if !api.ValidVillageCode(row[0]) || row[2] == "" || row[5] != "agent" {
			writeError(w, 400, "invalid", fmt.Sprintf("bad row %v", row))
			return
		}
		c.villages = append(c.villages, row[0])
	}
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("{}"))
}

func (c *testController) listVillages(w http.ResponseWriter, r *http.Request) {
	type village struct {
		Code   string `json:"code"`
		Device string `json:"device"`
	}
	var out struct {
		Villages []village `json:"villages"`
	}
	c.mu.Lock()
	for _, v := range c.villages {
		out.Villages = append(out.Villages, village{v, "agent"})
	}
	c.mu.Unlock()
	json.NewEncoder(w).Encode(out)
}

func (c *testController) issueToken(w http.ResponseWriter, r *http.Request) {
	v := r.PathValue("code")
	var b [8]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	c.AllowEnroll(v, tok)
	json.NewEncoder(w).Encode(map[string]string{"token": tok})
}

func (c *testController) audio(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	user, pass, ok := r.BasicAuth()
	if !ok || pass != "pw-"+user[len("box-"):] {
		writeError(w, http.StatusUnauthorized, "unauthorized", "bad credentials")
		return
	}
	c.mu.Lock()
	data, ok := c.clips[id]
	c.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such audio")
		return
	}
	http.ServeContent(w, r, "clip.wav", time.Unix(0, 0), bytes.NewReader(data))
}

func (c *testController) onEvents(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	village, ok := c.topics.VillageOfTopic(pk.TopicName)
	if !ok {
		return
	}
	b, err := api.DecodeEventBatch(village, pk.Payload)
	if err != nil {
		c.tb.Errorf("bad batch from %s: %v", village, err)
		return
	}
	c.mu.Lock()
	c.batches[village] = append(c.batches[village], b.Events)
	ack := b.Events[len(b.Events)-1].Seq
	if c.o.contiguousAck {
		got := c.received[village]
		if got == nil {
			got = map[int64]bool{}
			c.received[village] = got
		}
		for _, e := range b.Events {
			got[e.Seq] = true
		}
		for got[c.acked[village]+1] {
			delete(got, c.acked[village]+1)
			c.acked[village]++
		}
		ack = c.acked[village]
	}
	c.mu.Unlock()
	if c.o.autoAck && ack > 0 {
		c.acks <- [2]any{village, ack}
	}
}

func (c *testController) onPresence(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	village, ok := c.topics.VillageOfTopic(pk.TopicName)
	if !ok || len(pk.Payload) == 0 {
		return
	}
	p, err := api.DecodePresence(village, pk.Payload)
	if err != nil {
		c.tb.Errorf("bad presence from %s: %v", village, err)
		return
	}
	c.mu.Lock()
	c.presence[village] = append(c.presence[village], p)
	c.mu.Unlock()
}

// Batches returns every batch a village sent, in arrival order.
func (c *testController) Batches(village string) [][]api.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]api.Event(nil), c.batches[village]...)
}

// Events returns the distinct events of a village by seq (resends folded).
func (c *testController) Events(village string) []api.Event {
	byseq := map[int64]api.Event{}
	var max int64
	for _, b := range c.Batches(village) {
		for _, e := range b {
			byseq[e.Seq] = e
			if e.Seq > max {
				max = e.Seq
			}
		}
	}
	var out []api.Event
	for s := int64(1); s <= max; s++ {
		if e, ok := byseq[s]; ok {
			out = append(out, e)
		}
	}
	return out
}

// Find returns the village's events of a type (and schedule, if not 0).
func (c *testController) Find(village, typ string, schedule int64) []api.Event {
	var out []api.Event
	for _, e := range c.Events(village) {
		if e.Type == typ && (schedule == 0 || e.ScheduleID == schedule) {
			out = append(out, e)
		}
	}
	return out
}

func (c *testController) LastPresence(village string) (api.Presence, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.presence[village]
	if len(ps) == 0 {
		return api.Presence{}, false
	}
	return ps[len(ps)-1], true
}

// AddClip serves pcm as audio id and returns the playlist item for it.
func (c *testController) AddClip(id int64, pcm []int16) playlists.Item {
	c.tb.Helper()
	path := filepath.Join(c.tb.TempDir(), "clip.wav")
	if err := player.WriteWAV(path, pcm); err != nil {
		c.tb.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		c.tb.Fatal(err)
	}
	sum := sha256.Sum256(data)
	c.mu.Lock()
	c.clips[id] = data
	c.mu.Unlock()
	return playlists.Item{AudioID: id, SHA256: hex.EncodeToString(sum[:]), DurationMS: int64(len(pcm)) * 1000 / playlists.SampleRate, Repeat: 1}
}

// Command builds a command valid for a day on the controller's clock.
func (c *testController) Command(kind string, target api.Group) api.Command {
	now := c.Now()
	return api.Command{V: api.Version, ID: api.NewCommandID(), Kind: kind, Target: target, Seq: c.seq.Add(1), IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
}

// Sign signs with the controller's key (or another, for forgeries).
func (c *testController) Sign(cmd api.Command, key ed25519.PrivateKey) []byte {
	c.tb.Helper()
	if key == nil {
		key = c.key
	}
	raw, err := api.Sign(key, cmd)
	if err != nil {
		c.tb.Fatal(err)
	}
	return raw
}

// Publish retains payload on topic, as the controller does with commands.
func (c *testController) Publish(topic string, payload []byte) {
	c.tb.Helper()
	c.mu.Lock()
	b := c.broker
	c.mu.Unlock()
	if err := b.Publish(topic, payload, true, 1); err != nil {
		c.tb.Fatal(err)
	}
}

// PutSchedule signs and publishes a schedule.put for the group; it returns
// the topic and the exact bytes published (for replaying them).
func (c *testController) PutSchedule(g api.Group, st api.ScheduleState) (string, []byte) {
	cmd := c.Command(api.KindSchedulePut, g)
	cmd.Schedule = &st
	topic := c.topics.Schedule(g, st.Schedule.ID)
	raw := c.Sign(cmd, nil)
	c.Publish(topic, raw)
	return topic, raw
}

func (c *testController) Withdraw(g api.Group, id int64) {
	cmd := c.Command(api.KindScheduleWithdraw, g)
	cmd.Withdraw = &api.Withdrawal{ScheduleID: id}
	c.Publish(c.topics.Schedule(g, id), c.Sign(cmd, nil))
}

// PutBroadcast signs and publishes a broadcast.put for the group. Like the
// controller, it signs it until a day after the broadcast expires, so a box
// that hears of it late can still verify it and report it expired.
func (c *testController) PutBroadcast(g api.Group, b api.BroadcastState) {
	cmd := c.Command(api.KindBroadcastPut, g)
	cmd.Broadcast = &b
	cmd.ExpiresAt = b.ExpiresAt.Add(24 * time.Hour)
	c.Publish(c.topics.Broadcast(g, b.ID), c.Sign(cmd, nil))
}

// CancelBroadcast replaces the group's broadcast with its cancellation.
func (c *testController) CancelBroadcast(g api.Group, id int64) {
	cmd := c.Command(api.KindBroadcastCancel, g)
	cmd.Cancel = &api.Cancellation{BroadcastID: id}
	c.Publish(c.topics.Broadcast(g, id), c.Sign(cmd, nil))
}

// PutConfig publishes a township's or village's config.
func (c *testController) PutConfig(g api.Group, cfg api.BoxConfig) {
	cmd := c.Command(api.KindConfigPut, g)
	cmd.Config = &cfg
	c.Publish(c.topics.Config(g), c.Sign(cmd, nil))
}

// FindBroadcast returns the village's events of a type about a broadcast.
func (c *testController) FindBroadcast(village, typ string, id int64) []api.Event {
	var out []api.Event
	for _, e := range c.Events(village) {
		if e.Type == typ && e.BroadcastID == id {
			out = append(out, e)
		}
	}
	return out
}

func (c *testController) Ack(village string, seq int64) {
	cmd := c.Command(api.KindReportsAck, api.VillageGroup(village))
	cmd.Ack = &api.ReportsAck{Village: village, Seq: seq}
	c.Publish(c.topics.ReportsAck(village), c.Sign(cmd, nil))
}

// onceAt is a one-off schedule of one playlist at controller time at.
func onceAt(id int64, village string, at time.Time, items ...playlists.Item) api.ScheduleState {
	at = at.Truncate(time.Second)
	return api.ScheduleState{
		Schedule: playlists.Schedule{ID: id, PlaylistID: id, Targets: playlists.Targets{Villages: []string{village}}, Timezone: "Asia/Shanghai", OnceAt: &at},
		Playlist: playlists.Playlist{ID: id, Name: fmt.Sprintf("playlist %d", id), Items: items, GapMS: 50},
	}
}

// tone is a short test clip: a sine sweep with some noise, never silent.
func tone(ms int, seed uint64) []int16 {
	n := playlists.SampleRate * ms / 1000
	pcm := make([]int16, n)
	x := seed | 1
	for i := range pcm {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		f := 300 + 500*float64(i)/float64(n)
		v := 12000*math.Sin(2*math.Pi*f*float64(i)/playlists.SampleRate) + float64(int64(x%2001)-1000)
		pcm[i] = int16(v)
	}
	return pcm
}

// startFleet runs the given villages against the controller.
func startFleet(tb testing.TB, c *testController, villages ...string) *fleet.Fleet {
	tb.Helper()
	return startFleetTo(tb, c, "null", villages...)
}

// startFleetTo runs the given villages with an output: "null" or "wav:DIR".
func startFleetTo(tb testing.TB, c *testController, output string, villages ...string) *fleet.Fleet {
	tb.Helper()
	return startFleetWith(tb, c, fleet.Options{Output: output}, villages...)
}

// startFleetWith runs the given villages with options o (Controller, Dir,
// Boxes and Logger are filled in).
func startFleetWith(tb testing.TB, c *testController, o fleet.Options, villages ...string) *fleet.Fleet {
	tb.Helper()
	var boxes []fleet.Box
	for _, v := range villages {
		tok := "token-" + v
		c.AllowEnroll(v, tok)
		boxes = append(boxes, fleet.Box{Village: v, EnrollToken: tok})
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o.Controller, o.Dir, o.Boxes, o.Logger = c.http.URL, tb.TempDir(), boxes, logger
	f, err := fleet.Start(tb.Context(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	for _, v := range villages {
		waitFor(tb, 10*time.Second, "box "+v+" connected", func() bool { return f.Connected(v) })
	}
	return f
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
