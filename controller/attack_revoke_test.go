package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/dynsec/dynsectest"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// The attacks of issue 10 on revocation: a thief holds a box's
// credentials (from its identity.json) and an open session made with them;
// the county re-enrolls the village or revokes the box.

// revokeVillage is an agent village of the test county.
const revokeVillage = "411421100201"

// revokeBrokers runs an attack against the embedded broker and against a
// private Mosquitto with Dynamic Security (skipped, saying why, where
// mosquitto is missing).
func revokeBrokers(t *testing.T, attack func(t *testing.T, h *controllerHarness, brokerURL string)) {
	t.Run("embedded", func(t *testing.T) {
		h := startController(t, harnessOptions{})
		importCounty(t, h)
		attack(t, h, h.BrokerURL)
	})
	t.Run("mosquitto-dynsec", func(t *testing.T) {
		b := dynsectest.Start(t)
		h := startController(t, harnessOptions{Broker: b.URL, BrokerUser: b.AdminUser, BrokerPassword: b.AdminPassword, BrokerDynsec: true})
		importCounty(t, h)
		attack(t, h, b.URL)
	})
}

func importCounty(tb testing.TB, h *controllerHarness) {
	tb.Helper()
	if _, err := h.Client.ImportVillages(context.Background(), []byte(playliststest.VillagesCSV())); err != nil {
		tb.Fatal(err)
	}
}

// enrollVillage enrolls (or re-enrolls) the village as a box would.
func enrollVillage(tb testing.TB, h *controllerHarness, village string) api.EnrollResponse {
	tb.Helper()
	ctx := context.Background()
	tok, err := h.Client.Enroll(ctx, village)
	if err != nil {
		tb.Fatal(err)
	}
	creds, err := enrollBox(ctx, h.HTTPURL, village, tok.Token)
	if err != nil {
		tb.Fatal(err)
	}
	return creds
}

// boxSession is an MQTT session made with a box's credentials, whose TCP
// connection the attacker can drop without a DISCONNECT (so that the
// broker publishes its Will).
type boxSession struct {
	c    paho.Client
	lost chan struct{} // closed when the broker ends the session
	mu   sync.Mutex
	conn net.Conn
}

type will struct {
	topic   string
	payload []byte
	retain  bool
}

func connectBox(tb testing.TB, brokerURL string, creds api.EnrollResponse, w *will) (*boxSession, error) {
	tb.Helper()
	s := &boxSession{lost: make(chan struct{})}
	var once sync.Once
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(creds.MQTTUsername).
		SetUsername(creds.MQTTUsername).SetPassword(creds.MQTTPassword).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(s.lost) }) }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			s.mu.Lock()
			s.conn = c
			s.mu.Unlock()
			return c, err
		})
	if w != nil {
		o.SetBinaryWill(w.topic, w.payload, 1, w.retain)
	}
	s.c = paho.NewClient(o)
	tok := s.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, context.DeadlineExceeded
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	tb.Cleanup(func() { s.c.Disconnect(0) })
	return s, nil
}

// drop closes the TCP connection as a box losing power would.
func (s *boxSession) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
	}
}

// publish sends a QoS 1 message and returns whether the broker acked it.
func (s *boxSession) publish(topic string, payload []byte, retain bool) bool {
	tok := s.c.Publish(topic, 1, retain, payload)
	return tok.WaitTimeout(5*time.Second) && tok.Error() == nil
}

func reportBatch(tb testing.TB, village string, seq int64, reason string) []byte {
	tb.Helper()
	b, err := json.Marshal(api.EventBatch{V: api.Version, Village: village, Events: []api.Event{
		{Seq: seq, Type: api.EventRejected, At: time.Now().UTC(), Reason: reason},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// storedSeqs are the seqs of the village's reports in the store.
func storedSeqs(tb testing.TB, h *controllerHarness, village string) map[int64]bool {
	tb.Helper()
	es, err := h.Store.VillageEvents(context.Background(), village, 500)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int64]bool{}
	for _, e := range es {
		out[e.Seq] = true
	}
	return out
}

// until waits for ok with a deadline and says whether it came.
func until(within time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func closed(ch chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// markerReport has the village's new box publish a report with seq and
// waits until it is stored: anything the old session sent before it has
// been through the broker by then.
func markerReport(t *testing.T, h *controllerHarness, brokerURL string, creds api.EnrollResponse, seq int64) {
	t.Helper()
	box, err := connectBox(t, brokerURL, creds, nil)
	if err != nil {
		t.Fatalf("the new box cannot log in with its new credentials: %v", err)
	}
	topics := api.Topics{Prefix: h.Prefix}
	if !box.publish(topics.Events(revokeVillage), reportBatch(t, revokeVillage, seq, "marker"), false) {
		t.Fatal("the new box's report was not acked")
	}
	waitFor(t, 10*time.Second, "the new box's marker report to be stored", func() bool { return storedSeqs(t, h, revokeVillage)[seq] })
}

// villageJSON is GET /api/v1/villages/{code} as the admin sees it.
func villageJSON(tb testing.TB, h *controllerHarness, code string) map[string]any {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.HTTPURL+"/api/v1/villages/"+code, nil)
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestAttackReenrolledBoxOldSessionKeepsPublishing: a thief keeps a
// session open with a box's credentials; the county re-enrolls the
// village. The old session is disconnected at once, and a report it
// publishes after the re-enrollment is never stored.
func TestAttackReenrolledBoxOldSessionKeepsPublishing(t *testing.T) {
	revokeBrokers(t, func(t *testing.T, h *controllerHarness, brokerURL string) {
		topics := api.Topics{Prefix: h.Prefix}
		old := enrollVillage(t, h, revokeVillage)
		thief, err := connectBox(t, brokerURL, old, nil)
		if err != nil {
			t.Fatalf("login with the enrolled credentials: %v", err)
		}
		if !thief.publish(topics.Events(revokeVillage), reportBatch(t, revokeVillage, 1, "before"), false) {
			t.Fatal("report before re-enrollment not acked")
		}
		waitFor(t, 10*time.Second, "the report made before re-enrollment to be stored", func() bool { return storedSeqs(t, h, revokeVillage)[1] })

		fresh := enrollVillage(t, h, revokeVillage)
		thief.publish(topics.Events(revokeVillage), reportBatch(t, revokeVillage, 2, "forged after re-enrollment"), false)
		if !until(10*time.Second, closed(thief.lost)) {
			t.Error("the session opened with the old password is still connected 10 s after re-enrollment")
		}
		thief.c.Disconnect(0) // before the new box takes its client id
		markerReport(t, h, brokerURL, fresh, 3)
		if storedSeqs(t, h, revokeVillage)[2] {
			t.Error("a report the old session published after re-enrollment was stored")
		}
	})
}

// TestAttackRevokedBoxWillLands: the thief's session carries a Will (a
// forged report on its own village's topic) and is cut off by a
// re-enrollment or a revocation. The Will must never be published.
func TestAttackRevokedBoxWillLands(t *testing.T) {
	for _, how := range []string{"reenrolled", "revoked"} {
		t.Run(how, func(t *testing.T) {
			revokeBrokers(t, func(t *testing.T, h *controllerHarness, brokerURL string) {
				topics := api.Topics{Prefix: h.Prefix}
				old := enrollVillage(t, h, revokeVillage)
				w := &will{topic: topics.Events(revokeVillage), payload: reportBatch(t, revokeVillage, 7, "forged by a Will")}
				thief, err := connectBox(t, brokerURL, old, w)
				if err != nil {
					t.Fatalf("login with the enrolled credentials: %v", err)
				}
				var fresh api.EnrollResponse
				if how == "reenrolled" {
					fresh = enrollVillage(t, h, revokeVillage)
				} else if _, err := h.Client.RevokeBox(context.Background(), revokeVillage); err != nil {
					t.Fatalf("revoke the box: %v", err)
				}
				// If the broker kept the session, losing power now sends the Will.
				thief.drop()
				if how == "revoked" {
					fresh = enrollVillage(t, h, revokeVillage)
				}
				markerReport(t, h, brokerURL, fresh, 8)
				if storedSeqs(t, h, revokeVillage)[7] {
					t.Error("the Will of a session cut off by revocation was published and stored")
				}
			})
		})
	}
}

// TestAttackRevokedBoxReconnects: after an admin revokes a box, its
// session is disconnected at once, its credentials log in neither to the
// broker nor to the audio download, and the revocation is audited.
func TestAttackRevokedBoxReconnects(t *testing.T) {
	revokeBrokers(t, func(t *testing.T, h *controllerHarness, brokerURL string) {
		ctx := context.Background()
		creds := enrollVillage(t, h, revokeVillage)
		thief, err := connectBox(t, brokerURL, creds, nil)
		if err != nil {
			t.Fatalf("login with the enrolled credentials: %v", err)
		}
		spare, err := h.Client.Enroll(ctx, revokeVillage) // a token left in the box's paperwork
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Client.RevokeBox(ctx, revokeVillage); err != nil {
			t.Fatalf("revoke the box: %v", err)
		}
		if !until(10*time.Second, closed(thief.lost)) {
			t.Error("the revoked box's session is still connected 10 s after the revocation")
		}
		if _, err := connectBox(t, brokerURL, creds, nil); err == nil {
			t.Error("the revoked credentials logged in to the broker again")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.HTTPURL+"/api/v1/audio/1/content", nil)
		req.SetBasicAuth(creds.MQTTUsername, creds.MQTTPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("audio download with revoked credentials: %d, want 401", resp.StatusCode)
		}
		if _, err := enrollBox(ctx, h.HTTPURL, revokeVillage, spare.Token); err == nil {
			t.Error("an enrollment token issued before the revocation still enrolls")
		}
		if v := villageJSON(t, h, revokeVillage); v["revoked"] != true || v["enrolled"] != false {
			t.Errorf("the village does not show its box as revoked: %v", v)
		}
		audit, err := h.Client.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range audit {
			found = found || e.Action == "agent.revoke"
		}
		if !found {
			t.Error("the revocation is not in the audit log")
		}
		// A new box enrolls with a new token and works.
		markerReport(t, h, brokerURL, enrollVillage(t, h, revokeVillage), 1)
	})
}
