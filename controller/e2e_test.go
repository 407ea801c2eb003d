package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/broker"
	"github.com/cunxiang/cunxiang/controller/internal/demo"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// testLogger logs to the test's output only when -v is given, so failures
// carry context without flooding normal runs.
func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// controllerHarness is a controller started in-process on loopback ports.
type controllerHarness struct {
	*Running
	Client *client.Client
	Prefix string
	cancel context.CancelFunc
	done   chan error
}

type harnessOptions struct {
	Broker, BrokerUser, BrokerPassword string // external broker; empty: embedded
	BrokerDynsec                       bool   // BrokerUser is a Mosquitto dynsec admin
	Prefix                             string
	DataDir                            string
	DB                                 string // postgres:// URL; empty: SQLite in DataDir
	PreApproved                        string // event types that skip the two-person rule
	CountyName                         string // --county-name
	CAPFetchAllow                      string // --cap-fetch-allow

	Logger *slog.Logger // nil: testLogger

	Tune func(*Main) // sets anything else before Run
}

func startController(tb testing.TB, o harnessOptions) *controllerHarness {
	tb.Helper()
	m := NewMain()
	m.DataDir = o.DataDir
	if m.DataDir == "" {
		m.DataDir = tb.TempDir()
	}
	m.HTTPListener = listen(tb)
	if o.Broker == "" {
		m.MQTTListener = listen(tb)
	}
	m.Broker, m.BrokerUser, m.BrokerPassword, m.BrokerDynsec = o.Broker, o.BrokerUser, o.BrokerPassword, o.BrokerDynsec
	m.DB = o.DB
	if o.Prefix != "" {
		m.TopicPrefix = o.Prefix
	}
	m.PreApproved = o.PreApproved
	m.CountyName = o.CountyName
	m.CAPFetchAllow = o.CAPFetchAllow
	m.Logger = o.Logger
	if m.Logger == nil {
		m.Logger = testLogger(tb)
	}
	m.Stdout = io.Discard
	if o.Tune != nil {
		o.Tune(m)
	}
	ready := make(chan *Running, 1)
	m.Ready = func(r *Running) { ready <- r }
	ctx, cancel := context.WithCancel(context.Background())
	h := &controllerHarness{Prefix: m.TopicPrefix, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- m.Run(ctx) }()
	select {
	case r := <-ready:
		h.Running = r
	case err := <-h.done:
		cancel()
		tb.Fatalf("controller did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		tb.Fatal("controller did not start in 20 s")
	}
	h.Client = &client.Client{URL: h.HTTPURL, Token: h.AdminToken}
	tb.Cleanup(h.Stop)
	return h
}

// Stop stops the controller and waits for it.
func (h *controllerHarness) Stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
	}
}

// county imports the demo county, enrolls every agent village and starts
// one in-process box per village on null output.
func (h *controllerHarness) county(tb testing.TB, brokerURL string) *fleet.Fleet {
	tb.Helper()
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		tb.Fatal(err)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var codes []string
	for _, v := range vs {
		if v.Device == playlists.DeviceAgent {
			codes = append(codes, v.Code)
		}
	}
	return h.boxes(tb, brokerURL, "null", codes...)
}

// boxes enrolls the villages' boxes and runs them in this process, playing
// to output ("null" or "wav:DIR"), until the test ends.
func (h *controllerHarness) boxes(tb testing.TB, brokerURL, output string, villages ...string) *fleet.Fleet {
	tb.Helper()
	ctx := context.Background()
	boxes := make([]fleet.Box, 0, len(villages))
	for _, code := range villages {
		tok, err := h.Client.Enroll(ctx, code)
		if err != nil {
			tb.Fatal(err)
		}
		boxes = append(boxes, fleet.Box{Village: code, EnrollToken: tok.Token})
	}
	fl, err := fleet.Start(ctx, fleet.Options{
		Controller: h.HTTPURL, Broker: brokerURL, Dir: tb.TempDir(), TopicPrefix: h.Prefix,
		Output: output, Boxes: boxes, Logger: testLogger(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fl.Close() })
	return fl
}

// announce uploads the demo clip, makes a playlist and schedules it once
// for the whole county at `at`.
func (h *controllerHarness) announce(tb testing.TB, at time.Time) int64 {
	tb.Helper()
	pl := h.playlist(tb, "防疫广播", "防疫")
	sid, err := h.Client.CreateSchedule(context.Background(), playlists.Schedule{PlaylistID: pl, Targets: playlists.Targets{All: true}, Timezone: "Asia/Shanghai", OnceAt: &at})
	if err != nil {
		tb.Fatal(err)
	}
	return sid.ID
}

// playlist uploads the short clip, titled title, and makes a playlist
// named name that plays it once.
func (h *controllerHarness) playlist(tb testing.TB, title, name string) int64 {
	tb.Helper()
	ctx := context.Background()
	clip, err := h.Client.UploadAudio(ctx, "announcement.wav", title, shortClip(tb))
	if err != nil {
		tb.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: name, Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		tb.Fatal(err)
	}
	return pl.ID
}

// shortClip is the first 1.5 s of the demo announcement, as a WAV file, so
// tests don't wait for the whole notice.
func shortClip(tb testing.TB) []byte {
	tb.Helper()
	const keep = playlists.SampleRate * 3 / 2 * 2 // 1.5 s of 16-bit mono
	full := demo.Announcement
	const hdr = 44
	if len(full) < hdr+keep || string(full[36:40]) != "data" {
		tb.Fatal("demo announcement is not the canonical 44-byte-header WAV this test expects")
	}
	out := append([]byte(nil), full[:hdr+keep]...)
	putLE32(out[4:], uint32(len(out)-8))
	putLE32(out[40:], keep)
	return out
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// waitCoverage polls coverage until ok accepts it or the deadline passes.
func waitCoverage(tb testing.TB, h *controllerHarness, sid int64, at time.Time, within time.Duration, ok func(api.Coverage) bool) api.Coverage {
	tb.Helper()
	deadline := time.Now().Add(within)
	var cov api.Coverage
	var err error
	for time.Now().Before(deadline) {
		cov, err = h.Client.Coverage(context.Background(), sid, at)
		if err == nil && ok(cov) {
			return cov
		}
		time.Sleep(250 * time.Millisecond)
	}
	tb.Fatalf("coverage did not settle in %s: %+v (err %v)", within, summary(cov.CoverageDetail), err)
	return cov
}

func summary(c api.CoverageDetail) string {
	var b strings.Builder
	fmt.Fprintf(&b, "targeted=%d played=%d pending=%d awaiting=%d partial=%d failed=%d missed=%d cancelled=%d expired=%d",
		c.Targeted, c.Played, c.Pending, c.AwaitingConfirmation, c.Partial, c.Failed, c.Missed, c.Cancelled, c.Expired)
	n := 0
	for _, v := range c.Villages {
		if v.Status != "played" && v.Status != "awaiting_confirmation" && n < 5 {
			fmt.Fprintf(&b, "; %s %s %s", v.Code, v.Status, v.Reason)
			n++
		}
	}
	return b.String()
}

func countyPlayed(c api.Coverage) bool {
	return c.Targeted == 81 && c.Played == 79 && c.AwaitingConfirmation == 2
}

// TestCountyAnnouncement is what a county clerk does: import 81 villages,
// enroll 79 boxes, upload, schedule once for everyone 15 s ahead; coverage
// then reads 79 played, 2 awaiting confirmation, 81 targeted.
func TestCountyAnnouncement(t *testing.T) {
	t.Parallel()
	h := startController(t, harnessOptions{})
	h.county(t, h.BrokerURL)
	at := time.Now().Add(15 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	cov := waitCoverage(t, h, sid, at, 60*time.Second, countyPlayed)
	if cov.Failed+cov.Missed+cov.Partial+cov.Pending != 0 {
		t.Fatalf("coverage %s", summary(cov.CoverageDetail))
	}
}

// TestBrokerOutageAcrossSchedule stops the broker before the scheduled
// time and brings it back after: the boxes play from what they hold, queue
// their reports, and coverage reaches 79 played with nothing lost.
func TestBrokerOutageAcrossSchedule(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	addr := ln.Addr().String()
	const user, pass = "svc", "test-service-password"
	// The broker is external to the controller here, so the test can stop
	// it; it authenticates boxes against the controller's store.
	var b *broker.Server
	startBroker := func(ln net.Listener, auth broker.Authenticator) {
		var err error
		b, err = broker.New(broker.Options{Listener: ln, Auth: auth, Topics: api.Topics{}, ServiceUser: user, ServicePassword: pass, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go b.Run(ctx)
		t.Cleanup(cancel)
	}
	lazy := &lazyAuth{}
	startBroker(ln, lazy)
	h := startController(t, harnessOptions{Broker: "tcp://" + addr, BrokerUser: user, BrokerPassword: pass})
	lazy.set(h.Store)
	fl := h.county(t, "tcp://"+addr)
	at := time.Now().Add(12 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	// Wait until every box holds the schedule and its audio.
	waitFor(t, 30*time.Second, "all boxes ready", func() bool { return fl.ReadyFor(sid) == 79 })

	b.Close()
	time.Sleep(time.Until(at.Add(5 * time.Second))) // the clip is 1.5 s: all have finished offline
	var ln2 net.Listener
	waitFor(t, 10*time.Second, "broker port free again", func() bool {
		var err error
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	})
	startBroker(ln2, lazy)
	cov := waitCoverage(t, h, sid, at, 60*time.Second, countyPlayed)
	if cov.Failed+cov.Missed+cov.Partial != 0 {
		t.Fatalf("coverage %s", summary(cov.CoverageDetail))
	}
}

// lazyAuth lets the broker start before the controller's store exists.
type lazyAuth struct{ a broker.Authenticator }

func (l *lazyAuth) set(a broker.Authenticator) { l.a = a }
func (l *lazyAuth) CheckAgentPassword(ctx context.Context, u, p string) (string, error) {
	if l.a == nil {
		return "", errors.New("not ready")
	}
	return l.a.CheckAgentPassword(ctx, u, p)
}

// TestMosquittoDelivery runs the county announcement through the
// Mosquitto server of the machine (CUNXIANG_TEST_MOSQUITTO).
func TestMosquittoDelivery(t *testing.T) {
	t.Parallel()
	url := os.Getenv("CUNXIANG_TEST_MOSQUITTO")
	if url == "" {
		t.Skip("CUNXIANG_TEST_MOSQUITTO not set (e.g. tcp://127.0.0.1:1883); .ci/run sets it")
	}
	prefix := fmt.Sprintf("cxtest/%d", time.Now().UnixNano()) // Mosquitto outlives the run: a prefix of its own
	h := startController(t, harnessOptions{Broker: url, Prefix: prefix})
	h.county(t, url)
	at := time.Now().Add(15 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	waitCoverage(t, h, sid, at, 60*time.Second, countyPlayed)
}

func waitFor(tb testing.TB, within time.Duration, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
