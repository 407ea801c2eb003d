package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/broker"
	"github.com/cunxiang/cunxiang/controller/internal/mqttattack"
	"github.com/cunxiang/cunxiang/playlists"
)

// Attacks found by the adversarial review of issue 10's fixes: what a
// thief holding one box's credentials can still make the embedded broker
// hold, once logged in.

// subscribe sends one SUBSCRIBE of filters at qos without waiting.
func subscribe(tb testing.TB, c *mqttattack.Conn, id uint16, qos byte, filters ...string) {
	tb.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	if err := c.Send(pk); err != nil {
		tb.Fatal(err)
	}
}

// TestAttackUnackedRetainedFlood: box A subscribes to its county-wide
// command filter at QoS 1 again and again and never acknowledges. Each
// SUBSCRIBE makes the broker send every retained command once more, and
// mochi keeps each unacknowledged one (payload copied) for the client, up
// to 65,535: megabytes to gigabytes held for one stolen box. The broker
// must stop at broker.MaxBoxInflight unacknowledged messages and
// disconnect the box.
func TestAttackUnackedRetainedFlood(t *testing.T) {
	r := startAttackRig(t, nil)
	r.emergency(t) // a retained command on cmd/all
	c := r.login(t, r.A, 4)
	filter := r.topics.CommandFilter(api.GroupAll)
	heap0 := liveHeap()
	const subscribes = 3 * broker.MaxBoxInflight
	// The emergency's retained command reaches the box first, so that the
	// flood below really makes the broker send it again and again.
	subscribe(t, c, 1, 1, filter)
	publishes := 0
	for publishes == 0 {
		pk, err := c.Read(20 * time.Second)
		if err != nil {
			t.Fatalf("the retained emergency never came: %v", err)
		}
		if pk.FixedHeader.Type == packets.Publish {
			publishes++
		}
	}
	go func() {
		for i := 1; i < subscribes; i++ {
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: uint16(i + 1),
				Filters: []packets.Subscription{{Filter: filter, Qos: 1}}}
			if c.Send(pk) != nil {
				return // the broker cut the box off, as it must
			}
		}
	}()
	for publishes <= broker.MaxBoxInflight {
		pk, err := c.Read(20 * time.Second)
		if err != nil {
			break // closed by the broker (or a timeout, told below)
		}
		if pk.FixedHeader.Type == packets.Publish {
			publishes++
		}
	}
	held := liveHeap() - heap0
	t.Logf("%d SUBSCRIBEs of %s, nothing acknowledged: %d PUBLISHes received, live heap +%d KB", subscribes, filter, publishes, held>>10)
	if publishes > broker.MaxBoxInflight {
		t.Fatalf("the broker sent more than %d unacknowledged messages to one box", broker.MaxBoxInflight)
	}
	if !c.WaitClosed(10 * time.Second) {
		t.Fatal("the box holding the most unacknowledged messages allowed was not disconnected")
	}
	// The real box B is not affected.
	waitFor(t, 10*time.Second, "box B still connected", func() bool { return r.fl.Connected(r.B) })
}

// TestAttackManySubscriptions: box A subscribes to tens of thousands of
// distinct filters under its own command topics (each one allowed by the
// access list). mochi keeps every one in its topic tree for as long as the
// session lives: memory without bound from one stolen box. A box holds at
// most broker.MaxBoxSubscriptions.
func TestAttackManySubscriptions(t *testing.T) {
	r := startAttackRig(t, nil)
	c := r.login(t, r.A, 4)
	root := fmt.Sprintf("%s/cmd/v/%s/", r.h.Prefix, r.A)
	heap0 := liveHeap()
	const packetsSent, perPacket = 10, 5000
	granted := 0
	for p := range packetsSent {
		var filters []string
		for i := range perPacket {
			filters = append(filters, fmt.Sprintf("%sx%d-%d", root, p, i))
		}
		subscribe(t, c, uint16(p+1), 1, filters...)
		for {
			pk, err := c.Read(20 * time.Second)
			if err != nil {
				t.Fatalf("SUBACK %d: %v", p+1, err)
			}
			if pk.FixedHeader.Type != packets.Suback {
				continue
			}
			for _, code := range pk.ReasonCodes {
				if code < 0x80 {
					granted++
				}
			}
			break
		}
	}
	held := liveHeap() - heap0
	t.Logf("%d distinct filters asked: %d granted, live heap +%d KB", packetsSent*perPacket, granted, held>>10)
	if granted > broker.MaxBoxSubscriptions {
		t.Fatalf("one box holds %d subscriptions (at most %d allowed)", granted, broker.MaxBoxSubscriptions)
	}
	// Its own command filters still come first: a fresh login gets them.
	c.Disconnect()
	c2 := r.login(t, r.A, 4)
	for _, g := range api.GroupsOf(r.A) {
		if code, err := c2.Subscribe(r.topics.CommandFilter(g), 1); err != nil || refused(code) {
			t.Fatalf("box A's own filter %s: code %#x, %v", r.topics.CommandFilter(g), code, err)
		}
	}
}

// TestAttackPersistentBoxSession: box A logs in asking the broker to keep
// its session (MQTT 3 Clean Session 0; MQTT 5 a Session Expiry Interval).
// mochi then keeps the session, with every QoS 1 command sent to its
// filters while it is away, for ever: after the box is revoked too, since
// a revocation only disconnects. The agent always starts clean, so the
// broker refuses a box a persistent session.
func TestAttackPersistentBoxSession(t *testing.T) {
	r := startAttackRig(t, nil)
	for _, version := range []byte{4, 5} {
		c := r.dial(t)
		o := r.creds(t, r.A)
		o.Version, o.Persistent = version, true
		code, err := c.Connect(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("MQTT %d persistent session as box A: CONNACK %#x", version, code)
		if code == 0 {
			t.Errorf("MQTT %d: the broker kept a persistent session for a box (CONNACK %#x)", version, code)
		}
		c.Close()
	}
	r.login(t, r.A, 4).Disconnect()
}

// TestAttackStalledReaderHoldsBoxSession: with box A's credentials, a
// thief logs in, subscribes to the county's commands again and again and
// never reads, so the broker's writes to it block. mochi writes without a
// deadline, and it writes a DISCONNECT to the old session before it lets
// a new one with the same client id in: the real box A (or a re-enrolled
// one) then waits for its CONNACK for ever, and a revocation that
// disconnects the thief waits as long. A write that makes no progress for
// the broker's write timeout ends the connection.
func TestAttackStalledReaderHoldsBoxSession(t *testing.T) {
	const writeTimeout = 2 * time.Second
	r := startAttackRig(t, func(m *Main) { m.MQTTWriteTimeout = writeTimeout })
	r.emergency(t) // a retained command on cmd/all, re-sent at every SUBSCRIBE
	thief := r.login(t, r.A, 4)
	if err := thief.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	filter := r.topics.CommandFilter(api.GroupAll)
	// QoS 0: nothing held in flight, only the write queue and the socket.
	// The sending stops once the broker no longer reads (its read
	// goroutine waits to write a SUBACK), at this side's write deadline.
	sent := 0
	for i := range 20000 {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: uint16(i + 1),
			Filters: packets.Subscriptions{{Filter: filter, Qos: 0}}}
		if err := thief.Send(pk); err != nil {
			break
		}
		sent++
	}
	t.Logf("thief sent %d SUBSCRIBEs without reading", sent)
	start := time.Now()
	c := r.dial(t)
	code, err := c.Connect(r.creds(t, r.A))
	if err != nil || code != 0 {
		t.Fatalf("the real box A could not log in while a stalled session held its client id: code %#x, %v (after %s)", code, err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("the real box A logged in after %s", time.Since(start).Round(time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := r.h.Client.RevokeBox(context.Background(), r.A); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(writeTimeout + 10*time.Second):
		t.Fatal("revoking box A did not return")
	}
}

// TestAttackSplitCountyEmergencyByTownship: an operator who may not sound
// more than one township alone (the default --approval-townships 1) sends
// the same emergency once per township, each alone under the threshold:
// the whole county sounds on one person's word. The townships a person
// has sounded alone, still live, count with each new broadcast: past the
// threshold it waits for a second person.
func TestAttackSplitCountyEmergencyByTownship(t *testing.T) {
	h, clip := peopleHarness(t)
	ctx := context.Background()
	wang := person(t, h, "127.0.0.1", "wang", "operator")
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var towns []string
	seen := map[string]bool{}
	for _, v := range vs {
		if !seen[v.Township] {
			seen[v.Township] = true
			towns = append(towns, v.Township)
		}
	}
	if len(towns) < 2 {
		t.Fatalf("the sample county has %d townships", len(towns))
	}
	var states []string
	for _, town := range towns {
		b, err := wang.CreateBroadcast(ctx, api.BroadcastRequest{
			AudioID: clip, Targets: playlists.Targets{Townships: []string{town}}, Priority: playlists.Emergency,
			Severity: 1, EventType: "missile", ExpiresAt: client.ExpiresAt(time.Now().Add(30 * time.Minute)),
		})
		if err != nil {
			t.Fatalf("emergency for %s: %v", town, err)
		}
		states = append(states, b.State)
	}
	t.Logf("one emergency per township (%d) by one operator: %v", len(towns), states)
	if states[0] == "pending_approval" {
		t.Fatal("one township alone waits for approval; the threshold is 1 township")
	}
	for i, s := range states[1:] {
		if s != "pending_approval" {
			t.Fatalf("the emergency for a %d. township by the same person is %s, want pending_approval", i+2, s)
		}
	}
	// Another person may still sound one township alone.
	zhao := person(t, h, "127.0.0.2", "zhao", "operator")
	b, err := zhao.CreateBroadcast(ctx, api.BroadcastRequest{
		AudioID: clip, Targets: playlists.Targets{Townships: []string{towns[1]}}, Priority: playlists.Emergency,
		Severity: 1, EventType: "flood", ExpiresAt: client.ExpiresAt(time.Now().Add(30 * time.Minute)),
	})
	if err != nil || b.State == "pending_approval" {
		t.Fatalf("another operator's emergency for one township: %+v %v", b, err)
	}
}

// TestAttackSlowUploadsHoldEverySlot: an operator's token (or a careless
// operator on a bad link) starts as many uploads as the controller
// processes at once and sends their bodies a byte every two seconds. Each
// holds its slot until its read deadline, which assumes the whole declared
// size at the slowest supported link (50 MB: 54 minutes), so every other
// upload and text-to-speech request is answered 503 for as long. An upload
// that falls behind the slowest supported pace (a minute, then 16 KB/s)
// is cut and frees its slot.
func TestAttackSlowUploadsHoldEverySlot(t *testing.T) {
	t.Parallel()
	const slots = 2
	// The cut comes after the grace (a minute in service); a few seconds
	// here keep the test short and far from its deadlines on a busy machine.
	h := startController(t, harnessOptions{Tune: func(m *Main) { m.MaxConcurrentUploads = slots; m.SlowClientGrace = 4 * time.Second }})
	hostport := strings.TrimPrefix(h.HTTPURL, "http://")
	body, ctype := multipartUpload(t, "slow", longWAV(t, 10<<20))
	slow := func() net.Conn {
		conn, err := net.Dial("tcp", hostport)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		head := fmt.Sprintf("POST /api/v1/audio HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			hostport, h.Client.Token, ctype, len(body))
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := 0; i < len(body); i++ {
				if _, err := conn.Write(body[i : i+1]); err != nil {
					return
				}
				time.Sleep(2 * time.Second) // the attack's pace, not a wait for a result
			}
		}()
		return conn
	}
	// answered reports whether a slow upload was already answered (it
	// came while a probe below held a slot): it is started again.
	answered := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		n, err := c.Read(make([]byte, 512))
		var ne net.Error
		return n > 0 || (err != nil && !(errors.As(err, &ne) && ne.Timeout()))
	}
	var attackers []net.Conn
	for range slots {
		attackers = append(attackers, slow())
	}
	ctx := context.Background()
	upload := func() (busy bool) {
		_, err := h.Client.UploadAudio(ctx, "ok.wav", "正常上传", shortClip(t))
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	waitFor(t, 50*time.Second, "the slow uploads hold every slot", func() bool {
		if upload() {
			return true
		}
		for i, c := range attackers {
			if answered(c) {
				c.Close()
				attackers[i] = slow()
			}
		}
		return false
	})
	start := time.Now()
	busy := 0
	waitFor(t, 70*time.Second, "a slot taken by a slow upload is freed (slow uploads cut)", func() bool {
		if upload() {
			busy++
			return false
		}
		return true
	})
	t.Logf("a normal upload got through %s after the slots were taken (%d answers 503 meanwhile)", time.Since(start).Round(time.Second), busy)
}

// apiStatus sends a bodiless request as c and returns the status.
func apiStatus(t *testing.T, c *client.Client, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, c.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAttackRevokedTokensMintedTokenActs: someone who got hold of the
// installation's first admin token (printed at the first start, bound to
// no person) mints an admin token of their own with it. When the leaked
// token is revoked, the token minted with it must stop working too: it
// acts as the same credential.
func TestAttackRevokedTokensMintedTokenActs(t *testing.T) {
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	child, err := h.Client.CreateToken(ctx, api.TokenRequest{Name: "backdoor", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if child.OwnerTokenID == 0 {
		t.Fatalf("the harness's token is bound to a person (%+v): this attack needs the first admin token", child)
	}
	grandchild, err := h.Client.As(child.Token).CreateToken(ctx, api.TokenRequest{Name: "backdoor 2", Role: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if got := apiStatus(t, h.Client, http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", child.OwnerTokenID)); got != http.StatusNoContent {
		t.Fatalf("revoking the leaked token: %d", got)
	}
	if got := apiStatus(t, h.Client, http.MethodGet, "/api/v1/me"); got != http.StatusUnauthorized {
		t.Fatalf("the revoked token itself: %d, want 401", got)
	}
	for _, tok := range []api.Token{child, grandchild} {
		if got := apiStatus(t, h.Client.As(tok.Token), http.MethodGet, "/api/v1/me"); got != http.StatusUnauthorized {
			t.Errorf("token %q minted with the revoked token: GET /api/v1/me answered %d, want 401", tok.Name, got)
		}
	}
}

// TestAttackHTTPConnectionFlood: a LAN neighbour opens connections to the
// HTTP port and sends half a request line on each (slowloris), then more.
// Each holds a file descriptor the broker and the database share, for the
// header timeout, again and again. Connections over the per-address cap
// are closed at once; a client at another address is still served.
func TestAttackHTTPConnectionFlood(t *testing.T) {
	const perAddr = 50
	h := startController(t, harnessOptions{Tune: func(m *Main) { m.HTTPMaxConnsPerAddr = perAddr }})
	hostport := strings.TrimPrefix(h.HTTPURL, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
	var conns []net.Conn
	for range 2 * perAddr {
		c, err := d.Dial("tcp", hostport)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte("GET /api/v1/clock HTTP/1.1\r\nHost: x\r\n")) // never finished
		conns = append(conns, c)
	}
	closed := 0
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 1)
	for _, c := range conns {
		// A passed deadline would hide a close already received.
		c.SetReadDeadline(later(deadline, time.Now().Add(100*time.Millisecond)))
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				closed++
			}
		}
	}
	t.Logf("%d half-open requests from one address: %d closed by the controller", len(conns), closed)
	if closed < perAddr {
		t.Fatalf("only %d of the %d connections over the per-address cap (%d) were closed", closed, perAddr, perAddr)
	}
	resp, err := fromAddr(h, "127.0.0.4").HTTP.Get(h.HTTPURL + "/api/v1/clock")
	if err != nil {
		t.Fatalf("a client at another address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a client at another address: %s", resp.Status)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
