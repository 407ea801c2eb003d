package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/dynsec/dynsectest"
	"github.com/cunxiang/cunxiang/controller/internal/mqttattack"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// Attacks on the embedded broker with a stolen box's credentials (read
// from the identity.json a real agent wrote at its enrollment) and with
// no credentials at all. Each test is named after the attack.

// attackRig is a running controller on its embedded broker, the demo
// county, and real boxes enrolled for villages A and B. Village V has a
// box in the register but never enrolled one.
type attackRig struct {
	h         *controllerHarness
	broker    string // URL boxes connect to
	mosquitto bool   // the broker is Mosquitto with dynsec, not the embedded one
	fl        *fleet.Fleet
	topics    api.Topics
	A, B, V   string
	clip      int64
}

// eachBroker runs an attack on the embedded broker and on a private
// Mosquitto with Dynamic Security (skipped, saying why, without one).
func eachBroker(t *testing.T, attack func(t *testing.T, r *attackRig)) {
	t.Run("embedded", func(t *testing.T) { attack(t, startAttackRig(t, nil)) })
	t.Run("mosquitto-dynsec", func(t *testing.T) {
		b := dynsectest.Start(t)
		r := startAttackRigOn(t, harnessOptions{Broker: b.URL, BrokerUser: b.AdminUser, BrokerPassword: b.AdminPassword, BrokerDynsec: true})
		r.mosquitto = true
		attack(t, r)
	})
}

func startAttackRig(tb testing.TB, tune func(*Main)) *attackRig {
	tb.Helper()
	return startAttackRigOn(tb, harnessOptions{Tune: tune})
}

func startAttackRigOn(tb testing.TB, o harnessOptions) *attackRig {
	tb.Helper()
	o.PreApproved = "drill"
	h := startController(tb, o)
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		tb.Fatal(err)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var agents []string
	for _, v := range vs {
		if v.Device == playlists.DeviceAgent {
			agents = append(agents, v.Code)
		}
	}
	r := &attackRig{h: h, broker: h.BrokerURL, topics: api.Topics{Prefix: h.Prefix}, A: agents[0], B: agents[1], V: agents[2]}
	var boxes []fleet.Box
	for _, v := range []string{r.A, r.B} {
		tok, err := h.Client.Enroll(ctx, v)
		if err != nil {
			tb.Fatal(err)
		}
		boxes = append(boxes, fleet.Box{Village: v, EnrollToken: tok.Token})
	}
	r.fl, err = fleet.Start(ctx, fleet.Options{
		Controller: h.HTTPURL, Broker: r.broker, Dir: tb.TempDir(), Output: "null", Boxes: boxes, Logger: testLogger(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.fl.Close() })
	waitFor(tb, 20*time.Second, "both boxes connected", func() bool { return r.fl.Connected(r.A) && r.fl.Connected(r.B) })
	// The attacker holds box A: its agent is off, its disk read.
	if err := r.fl.StopBox(r.A); err != nil {
		tb.Fatal(err)
	}
	clip, err := h.Client.UploadAudio(ctx, "alarm.wav", "警报", shortClip(tb))
	if err != nil {
		tb.Fatal(err)
	}
	r.clip = clip.ID
	return r
}

// creds are the MQTT credentials on the disk of village's box.
func (r *attackRig) creds(tb testing.TB, village string) mqttattack.Connect {
	tb.Helper()
	id, err := mqttattack.LoadIdentity(r.fl.DataDir(village))
	if err != nil {
		tb.Fatal(err)
	}
	return mqttattack.Box(id)
}

func (r *attackRig) dial(tb testing.TB) *mqttattack.Conn {
	tb.Helper()
	c, err := mqttattack.Dial(r.broker)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// login connects as village's box (MQTT 3.1.1 unless version says 5).
func (r *attackRig) login(tb testing.TB, village string, version byte) *mqttattack.Conn {
	tb.Helper()
	c := r.dial(tb)
	o := r.creds(tb, village)
	o.Version = version
	if code, err := c.Connect(o); err != nil || code != 0 {
		tb.Fatalf("box %s login: code %#x, %v", village, code, err)
	}
	return c
}

// willAttack connects as box A with will and drops the connection; it
// returns the CONNACK code (0: the broker took the Will).
func (r *attackRig) willAttack(tb testing.TB, will mqttattack.Will) byte {
	tb.Helper()
	c := r.dial(tb)
	o := r.creds(tb, r.A)
	o.Will = &will
	code, err := c.Connect(o)
	if err != nil {
		tb.Fatalf("CONNECT with a Will on %s: %v", will.Topic, err)
	}
	if code == 0 {
		if err := c.Drop(10 * time.Second); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("CONNECT as box %s with a Will on %s (retain %v): CONNACK %#x", r.A, will.Topic, will.Retain, code)
	return code
}

// emergency sends a county-wide emergency (pre-approved drill type).
func (r *attackRig) emergency(tb testing.TB) int64 {
	tb.Helper()
	br, err := r.h.Client.CreateBroadcast(context.Background(), api.BroadcastRequest{
		AudioID: r.clip, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: "drill", ExpiresAt: client.ExpiresAt(time.Now().Add(30 * time.Minute)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return br.ID
}

func (r *attackRig) villageStatus(tb testing.TB, broadcast int64, village string) string {
	tb.Helper()
	cov, err := r.h.Client.BroadcastCoverage(context.Background(), broadcast)
	if err != nil {
		tb.Fatal(err)
	}
	for _, v := range cov.Villages {
		if v.Code == village {
			return v.Status
		}
	}
	return ""
}

func (r *attackRig) presence(tb testing.TB, village string) string {
	tb.Helper()
	vs, err := r.h.Client.Villages(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, v := range vs {
		if v.Code == village {
			return v.Presence
		}
	}
	return ""
}

func reports(tb testing.TB, village string, broadcast int64, first int64, types ...string) []byte {
	tb.Helper()
	b := api.EventBatch{V: api.Version, Village: village}
	for i, t := range types {
		b.Events = append(b.Events, api.Event{Seq: first + int64(i), Type: t, At: time.Now().UTC(), BroadcastID: broadcast})
	}
	raw, err := json.Marshal(b)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func refused(code byte) bool { return code == packets.Err3NotAuthorized.Code || code >= 0x80 }

// refusedWill reports whether the broker's answer to a CONNECT with a bad
// Will is right: the embedded broker refuses it. Mosquitto 2.0 accepts the
// CONNECT and checks the Will against the box's ACL only as it sends it
// (then drops it); the tests check the effect either way.
func (r *attackRig) refusedWill(tb testing.TB, code byte) bool {
	tb.Helper()
	if r.mosquitto {
		tb.Logf("Mosquitto answered CONNACK %#x; it checks the Will when it sends it", code)
		return true
	}
	return refused(code)
}

// TestAttackWillOnAnotherVillagesEvents: box A's Will carries played
// reports for village V, whose box never enrolled. The broker refuses the
// CONNECT, and V is never counted played.
func TestAttackWillOnAnotherVillagesEvents(t *testing.T) {
	eachBroker(t, func(t *testing.T, r *attackRig) {
		id := r.emergency(t)
		code := r.willAttack(t, mqttattack.Will{
			Topic: r.topics.Events(r.V), QoS: 1,
			Payload: reports(t, r.V, id, 1, api.EventReceived, api.EventStarted, api.EventFinished),
		})
		// The marker: box A's own, legitimate reports, sent after the attack.
		a := r.login(t, r.A, 4)
		if _, err := a.Publish(r.topics.Events(r.A), reports(t, r.A, id, 1, api.EventReceived, api.EventStarted, api.EventFinished), 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "box A's own reports stored", func() bool { return r.villageStatus(t, id, r.A) == "played" })
		if st := r.villageStatus(t, id, r.V); st == "played" {
			t.Errorf("village %s, which has no enrolled box, is counted played (CONNACK %#x)", r.V, code)
		}
		if !r.refusedWill(t, code) {
			t.Errorf("CONNECT with a Will on another village's reports: CONNACK %#x, want not authorized", code)
		}
	})
}

// TestAttackWillForgesAnotherBoxPresence: box A's retained Will says box
// B, which is online, went offline. The broker refuses it; B stays online.
func TestAttackWillForgesAnotherBoxPresence(t *testing.T) {
	eachBroker(t, func(t *testing.T, r *attackRig) {
		waitFor(t, 20*time.Second, "box B online", func() bool { return r.presence(t, r.B) == api.Online })
		forged, _ := json.Marshal(api.Presence{V: api.Version, Village: r.B, Status: api.Offline, At: time.Now().UTC()})
		code := r.willAttack(t, mqttattack.Will{Topic: r.topics.Presence(r.B), Payload: forged, QoS: 1, Retain: true})

		// The marker: box A says it is online, after the attack.
		a := r.login(t, r.A, 4)
		online, _ := json.Marshal(api.Presence{V: api.Version, Village: r.A, Status: api.Online, At: time.Now().UTC()})
		if _, err := a.Publish(r.topics.Presence(r.A), online, 1, true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "box A's own presence stored", func() bool { return r.presence(t, r.A) == api.Online })
		if p := r.presence(t, r.B); p != api.Online {
			t.Errorf("box B shown %q after box A's forged Will, want online", p)
		}
		if !r.refusedWill(t, code) {
			t.Errorf("CONNECT with a Will on another box's presence: CONNACK %#x, want not authorized", code)
		}
	})
}

// TestAttackWillSeq1SwallowsAnotherBoxsReport: box A's Will fills box B's
// next report numbers, so that B's real reports are dropped as repeats and
// acknowledged (the box then deletes them: lost). The broker refuses the
// Will; B's real reports are stored and acknowledged as they are.
func TestAttackWillSeq1SwallowsAnotherBoxsReport(t *testing.T) {
	eachBroker(t, func(t *testing.T, r *attackRig) {
		if err := r.fl.StopBox(r.B); err != nil {
			t.Fatal(err)
		}
		id := r.emergency(t)
		junk := make([]string, 20)
		for i := range junk {
			junk[i] = api.EventReceived
		}
		code := r.willAttack(t, mqttattack.Will{Topic: r.topics.Events(r.B), QoS: 1, Payload: reports(t, r.B, id, 1, junk...)})

		// Box B's own first reports (B's store is at seq 0), and the
		// controller's acknowledgement of them.
		b := r.login(t, r.B, 4)
		if g, err := b.Subscribe(r.topics.CommandFilter(api.VillageGroup(r.B)), 1); err != nil || g >= 0x80 {
			t.Fatalf("subscribe: %#x %v", g, err)
		}
		if _, err := b.Publish(r.topics.Events(r.B), reports(t, r.B, id, 1, api.EventReceived, api.EventStarted, api.EventFinished), 1, false); err != nil {
			t.Fatal(err)
		}
		id2, err := mqttattack.LoadIdentity(r.fl.DataDir(r.B))
		if err != nil {
			t.Fatal(err)
		}
		var acked int64
		if _, err := b.Messages(20*time.Second, func(ps []packets.Packet) bool {
			for _, p := range ps {
				if c, err := api.Verify(ed25519.PublicKey(id2.SigningKey), r.topics, p.TopicName, p.Payload, time.Now()); err == nil && c.Kind == api.KindReportsAck {
					acked = max(acked, c.Ack.Seq)
				}
			}
			return acked >= 3
		}); err != nil {
			t.Fatalf("box B's reports not acknowledged: %v", err)
		}
		if acked != 3 {
			t.Errorf("the controller acknowledged box B's reports up to %d; B sent 1..3", acked)
		}
		if st := r.villageStatus(t, id, r.B); st != "played" {
			t.Errorf("box B's reported play shows as %q, want played", st)
		}
		if !r.refusedWill(t, code) {
			t.Errorf("CONNECT with a Will on another box's reports: CONNACK %#x, want not authorized", code)
		}
	})
}

// retainedOn subscribes as village's box to the county's commands and
// returns the retained command held on topic, verified.
func (r *attackRig) retainedOn(t *testing.T, village, topic string) (api.Command, []byte) {
	t.Helper()
	c := r.login(t, village, 4)
	if g, err := c.Subscribe(r.topics.CommandFilter(api.GroupAll), 1); err != nil || g >= 0x80 {
		t.Fatalf("subscribe: %#x %v", g, err)
	}
	var got []byte
	_, err := c.Messages(10*time.Second, func(ps []packets.Packet) bool {
		for _, p := range ps {
			if p.TopicName == topic {
				got = p.Payload
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no retained message on %s: %v", topic, err)
	}
	id, err := mqttattack.LoadIdentity(r.fl.DataDir(village))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := api.Verify(ed25519.PublicKey(id.SigningKey), r.topics, topic, got, time.Now())
	if err != nil {
		t.Logf("retained message on %s does not verify: %v (%q)", topic, err, got)
	}
	c.Disconnect()
	return cmd, got
}

// TestAttackRetainedCancelledEmergencyReplayed: box A captures a genuine,
// signed county-wide emergency, the operator cancels it, and A's retained
// Will puts the signed emergency back on its topic, for a box that was
// offline through both to play. The broker refuses the Will; the topic
// keeps the cancellation.
func TestAttackRetainedCancelledEmergencyReplayed(t *testing.T) {
	eachBroker(t, func(t *testing.T, r *attackRig) {
		if err := r.fl.StopBox(r.B); err != nil {
			t.Fatal(err)
		}
		id := r.emergency(t)
		topic := r.topics.Broadcast(api.GroupAll, id)
		put, captured := r.retainedOn(t, r.A, topic)
		if put.Kind != api.KindBroadcastPut {
			t.Fatalf("captured %q, want the emergency", put.Kind)
		}
		if _, err := r.h.Client.CancelBroadcast(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "cancellation retained", func() bool {
			c, _ := r.retainedOn(t, r.A, topic)
			return c.Kind == api.KindBroadcastCancel
		})

		code := r.willAttack(t, mqttattack.Will{Topic: topic, Payload: captured, QoS: 1, Retain: true})

		// Box B comes up and reads what the broker holds for the broadcast.
		got, _ := r.retainedOn(t, r.B, topic)
		if got.Kind != api.KindBroadcastCancel {
			t.Errorf("an offline box coming up reads %q on %s, want the cancellation", got.Kind, topic)
		}
		if !r.refusedWill(t, code) {
			t.Errorf("CONNECT with a retained Will on a command topic: CONNACK %#x, want not authorized", code)
		}
	})
}

// TestAttackJunkRetainedOverLiveEmergency: box A's retained Will puts junk
// over a live emergency's retained command, so a box coming up would
// never play it. The broker refuses; the box reads the emergency.
func TestAttackJunkRetainedOverLiveEmergency(t *testing.T) {
	eachBroker(t, func(t *testing.T, r *attackRig) {
		if err := r.fl.StopBox(r.B); err != nil {
			t.Fatal(err)
		}
		id := r.emergency(t)
		topic := r.topics.Broadcast(api.GroupAll, id)
		code := r.willAttack(t, mqttattack.Will{Topic: topic, Payload: []byte("junk"), QoS: 1, Retain: true})
		got, raw := r.retainedOn(t, r.B, topic)
		if got.Kind != api.KindBroadcastPut {
			t.Errorf("a box coming up reads %q (%q) on %s, want the emergency", got.Kind, raw, topic)
		}
		if !r.refusedWill(t, code) {
			t.Errorf("CONNECT with a retained Will on a command topic: CONNACK %#x, want not authorized", code)
		}
	})
}

// TestAttackRetainedQoS2: box A retains, at QoS 2 through PUBREL, junk
// over a live emergency's command (MQTT 5 and 3), and a report on its own
// report topic, where no box has reason to retain anything. The command
// keeps the emergency; the embedded broker refuses the retained report
// (MQTT 5: "not authorized"; MQTT 3: closes). A's retained presence at
// QoS 2 still goes through the whole flow.
func TestAttackRetainedQoS2(t *testing.T) {
	eachBroker(t, func(t *testing.T, r *attackRig) {
		if err := r.fl.StopBox(r.B); err != nil {
			t.Fatal(err)
		}
		id := r.emergency(t)
		topic := r.topics.Broadcast(api.GroupAll, id)
		a := r.login(t, r.A, 5)
		online, _ := json.Marshal(api.Presence{V: api.Version, Village: r.A, Status: api.Online, At: time.Now().UTC()})
		if code, err := a.Publish(r.topics.Presence(r.A), online, 2, true); err != nil || code != 0 {
			t.Fatalf("retained presence at QoS 2: code %#x, %v", code, err)
		}
		if code, err := a.Publish(topic, []byte("junk"), 2, true); err != nil || code < 0x80 {
			t.Errorf("MQTT 5 retained junk on a command at QoS 2: reason %#x, %v; want not authorized", code, err)
		}
		for _, qos := range []byte{2, 1} {
			code, err := a.Publish(r.topics.Events(r.A), reports(t, r.A, id, 1, api.EventReceived), qos, true)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r.mosquitto:
				// Dynamic Security has no per-topic retain rule (api/README.md).
				t.Logf("Mosquitto: retained report on the box's own topic at QoS %d: reason %#x (allowed: no retain ACL)", qos, code)
			case code < 0x80:
				t.Errorf("MQTT 5 retained report at QoS %d: reason %#x, want not authorized", qos, code)
			}
		}
		a.Disconnect()
		a3 := r.login(t, r.A, 4)
		if _, err := a3.Publish(topic, nil, 2, true); err == nil && !r.mosquitto {
			t.Error("MQTT 3 retained clear of a command at QoS 2 was acknowledged")
		}
		a3.Close()
		if got, raw := r.retainedOn(t, r.B, topic); got.Kind != api.KindBroadcastPut {
			t.Errorf("a box coming up reads %q (%q) on %s, want the emergency", got.Kind, raw, topic)
		}
		if r.mosquitto {
			return
		}
		a3 = r.login(t, r.A, 4)
		if _, err := a3.Publish(r.topics.Events(r.A), reports(t, r.A, id, 1, api.EventReceived), 2, true); err == nil {
			t.Error("MQTT 3 retained report at QoS 2 was acknowledged")
		}
		if !a3.WaitClosed(5 * time.Second) {
			t.Error("the broker kept the MQTT 3 connection open after a refused retained publish")
		}
	})
}

// vmKB reads a /proc/self/status field in kB.
func vmKB(tb testing.TB, field string) int64 {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestAttackOversizedConnect: six strangers each send a CONNECT header
// claiming 256 MB, then up to 32 MB of it. The broker closes each at once
// and the controller's memory stays put (before, it allocated 256 MB for
// each and filled what was sent).
func TestAttackOversizedConnect(t *testing.T) {
	r := startAttackRig(t, nil)
	rss0, hwm0 := vmKB(t, "VmRSS"), vmKB(t, "VmHWM")
	var conns []*mqttattack.Conn
	chunk := make([]byte, 1<<20)
	for range 6 {
		c := r.dial(t)
		// 256 MB less one byte is the most MQTT's length can say.
		if _, err := c.Write(mqttattack.HugeHeader(packets.Connect, 256<<20-1)); err != nil {
			t.Fatal(err)
		}
		// Then the body, as far as the broker reads it.
		for range 32 {
			if _, err := c.Write(chunk); err != nil {
				break
			}
		}
		conns = append(conns, c)
	}
	open := 0
	for _, c := range conns {
		if !c.WaitClosed(5 * time.Second) {
			open++
		}
	}
	rss, hwm := vmKB(t, "VmRSS"), vmKB(t, "VmHWM")
	t.Logf("6 CONNECTs claiming 256 MB: RSS %d → %d MB (+%d MB), peak %d → %d MB", rss0>>10, rss>>10, (rss-rss0)>>10, hwm0>>10, hwm>>10)
	if open > 0 {
		t.Errorf("%d of 6 connections claiming a 256 MB CONNECT still open after 5 s", open)
	}
	if grew := (max(rss, hwm) - max(rss0, hwm0)) >> 10; grew > 64 {
		t.Errorf("controller memory grew by %d MB under 6 oversized CONNECTs (bound 64 MB)", grew)
	}
	// A box still logs in.
	r.login(t, r.A, 4).Disconnect()
}

// TestAttackSlowConnect: a stranger sends its CONNECT a byte at a time and
// never finishes. The broker closes it after the CONNECT deadline.
func TestAttackSlowConnect(t *testing.T) {
	const deadline = 2 * time.Second
	r := startAttackRig(t, func(m *Main) { m.MQTTConnectTimeout = deadline })
	connect := r.creds(t, r.A).Encode()
	c := r.dial(t)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		if c.WaitClosed(deadline + 8*time.Second) {
			closed <- time.Since(start)
		}
		close(closed)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(connect)-1; i++ {
		select {
		case took, ok := <-closed:
			if !ok {
				t.Fatal("connection still open")
			}
			t.Logf("slow CONNECT closed after %s (%d of %d bytes sent)", took.Round(time.Millisecond), i, len(connect))
			if took < deadline-100*time.Millisecond {
				t.Errorf("closed after %s, before the %s deadline", took, deadline)
			}
			return
		case <-tick.C:
		}
		if _, err := c.Write(connect[i : i+1]); err != nil {
			break
		}
	}
	if took, ok := <-closed; ok {
		t.Logf("slow CONNECT closed after %s", took)
		return
	}
	t.Errorf("a CONNECT that never finished was still open after %s", deadline+8*time.Second)
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestAttackConnectionFlood: a stranger at another address opens twice the
// per-address cap of connections and sends nothing. The connections over
// the cap are closed at once; a box at its own address still logs in.
func TestAttackConnectionFlood(t *testing.T) {
	const perAddr = 200
	r := startAttackRig(t, func(m *Main) { m.MQTTMaxConnsPerAddr = perAddr })
	heap0 := liveHeap()
	var conns []*mqttattack.Conn
	for range 2 * perAddr {
		c, err := mqttattack.DialFrom("127.0.0.2", r.broker)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	closed := 0
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range conns[perAddr:] {
		if c.WaitClosed(max(time.Until(deadline), time.Millisecond)) {
			closed++
		}
	}
	held := liveHeap() - heap0
	t.Logf("%d connections held before login: live heap +%d KB, %.1f KB each (both ends are in this process)", perAddr, held>>10, float64(held)/1024/perAddr)
	if closed != perAddr {
		t.Errorf("%d of the %d connections over the per-address cap were closed", closed, perAddr)
	}
	for _, c := range conns[:perAddr] {
		if c.WaitClosed(10 * time.Millisecond) {
			t.Fatal("a connection within the cap was closed before its CONNECT deadline")
		}
	}
	r.login(t, r.A, 4).Disconnect()
}
