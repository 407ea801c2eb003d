package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
)

// TestReportsWaitingOnMosquittoAcrossARestart: the reports boxes send
// while the controller is down wait in its persistent session on
// Mosquitto, which sends them the moment the controller reconnects, and
// each is stored. Then the controller starts under another topic prefix
// with the same client id (its configuration changed): the session still
// holds the old subscription and its waiting messages, which no handler
// of this run matches. Each must still be acknowledged: unacknowledged,
// Mosquitto keeps them in flight (its window is 20 messages) and sends
// nothing newer until the next reconnect, so no report would arrive.
func TestReportsWaitingOnMosquittoAcrossARestart(t *testing.T) {
	url := os.Getenv("CUNXIANG_TEST_MOSQUITTO")
	if url == "" {
		t.Skip("CUNXIANG_TEST_MOSQUITTO not set (e.g. tcp://127.0.0.1:1883); .ci/run sets it")
	}
	h := newHarness(t)
	var rnd [6]byte
	rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	h.topics = api.Topics{Prefix: "cxtest/" + id}
	onMosquitto := func(o *Options) {
		o.Broker, o.Username, o.Password, o.ClientID = url, "", "", "cunxiang-test-"+id
	}
	const village, broadcast = "110101001001", 7
	box := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("box-" + id))
	if tok := box.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("box connect: %v", tok.Error())
	}
	t.Cleanup(func() { box.Disconnect(100) })
	report := func(seq int64) {
		t.Helper()
		raw, err := json.Marshal(api.EventBatch{V: api.Version, Village: village, Version: "1.0",
			Events: []api.Event{{Seq: seq, Type: api.EventStarted, At: t0, BroadcastID: broadcast}}})
		if err != nil {
			t.Fatal(err)
		}
		if tok := box.Publish(h.topics.Events(village), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("report %d: %v", seq, tok.Error())
		}
	}
	stored := func() int {
		evs, err := h.db.BroadcastEvents(t.Context(), broadcast, false)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	wait := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for stored() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d reports stored", what, stored(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The controller subscribes (its persistent session on Mosquitto).
	h.start(onMosquitto)
	deadline := time.Now().Add(20 * time.Second)
	for stored() == 0 { // sent again until the controller has subscribed
		if time.Now().After(deadline) {
			t.Fatal("the first report was never stored")
		}
		report(1)
		time.Sleep(200 * time.Millisecond)
	}
	if err := h.stopSvc(); err != nil {
		t.Fatal(err)
	}
	// While it is down, the box reports 40 times.
	const n = 40
	for seq := int64(2); seq <= n; seq++ {
		report(seq)
	}
	h.start(onMosquitto)
	wait(n, "the reports that waited on the broker")

	// Down again; the box reports more under the old prefix; the
	// controller comes back under a new one and the box follows it.
	if err := h.stopSvc(); err != nil {
		t.Fatal(err)
	}
	for seq := int64(n + 1); seq <= n+30; seq++ {
		report(seq)
	}
	h.topics = api.Topics{Prefix: "cxtest/" + id + "/new"}
	h.start(onMosquitto)
	deadline = time.Now().Add(20 * time.Second)
	for stored() < n+5 { // sent again until the controller has subscribed
		if time.Now().After(deadline) {
			t.Fatalf("the reports under the new prefix: %d of %d stored", stored(), n+5)
		}
		for seq := int64(n + 1); seq <= n+5; seq++ {
			report(seq)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
