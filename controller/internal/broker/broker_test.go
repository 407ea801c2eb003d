package broker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/broker"
)

// passwords is an Authenticator over a fixed table of box logins.
type passwords map[string][2]string // username → {password, village}

func (p passwords) CheckAgentPassword(_ context.Context, user, pass string) (string, error) {
	if e, ok := p[user]; ok && e[0] == pass {
		return e[1], nil
	}
	return "", errors.New("unauthorized")
}

const (
	villageA = "411421100201"
	villageB = "411421101201" // another township
	svcUser  = "svc"
	svcPass  = "svc-secret"
)

func startBroker(t *testing.T) string {
	t.Helper()
	return startBrokerWith(t, 0).URL()
}

func startBrokerWith(t *testing.T, writesPending int) *broker.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{
		Listener: ln,
		Auth: passwords{
			"box-" + villageA: {"pa", villageA},
			"box-" + villageB: {"pb", villageB},
		},
		ServiceUser: svcUser, ServicePassword: svcPass, WritesPending: writesPending,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go b.Run(ctx)
	t.Cleanup(cancel)
	return b
}

func connect(t *testing.T, url, id, user, pass string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(3 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func TestLogin(t *testing.T) {
	url := startBroker(t)
	tests := []struct {
		name, id, user, pass string
		ok                   bool
	}{
		{"anonymous", "anon", "", "", false},
		{"wrong password", "box-" + villageA, "box-" + villageA, "nope", false},
		{"unknown user", "box-x", "box-x", "pa", false},
		{"box with another box's client id", "box-" + villageB, "box-" + villageA, "pa", false},
		{"service with wrong password", "c", svcUser, "wrong", false},
		{"box", "box-" + villageA, "box-" + villageA, "pa", true},
		{"service", "c", svcUser, svcPass, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connect(t, url, tt.id, tt.user, tt.pass)
			if (err == nil) != tt.ok {
				t.Fatalf("connect error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestBoxSeesOnlyItsOwnTopics publishes on every kind of topic with the
// service login and checks what box A receives: its groups' commands only.
// It also checks that a box cannot publish commands or another box's reports.
func TestBoxSeesOnlyItsOwnTopics(t *testing.T) {
	url := startBroker(t)
	tp := api.Topics{}
	svc, err := connect(t, url, "svc", svcUser, svcPass)
	if err != nil {
		t.Fatal(err)
	}
	a, err := connect(t, url, "box-"+villageA, "box-"+villageA, "pa")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 100)
	// Box A asks for everything; the broker must only grant its own filters.
	for _, f := range []string{"cx/v1/#", tp.CommandFilter(api.VillageGroup(villageB)), tp.EventsFilter(), "cx/v1/live/#",
		tp.LiveFramesFilter(api.TownshipGroup(api.TownshipCode(villageB)))} {
		tok := a.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
		tok.WaitTimeout(3 * time.Second)
	}
	for _, g := range api.GroupsOf(villageA) {
		for _, f := range []string{tp.CommandFilter(g), tp.LiveFramesFilter(g)} {
			tok := a.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
			if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe own group %s: %v", f, tok.Error())
			}
		}
	}
	spy := make(chan string, 100)
	svc.Subscribe("cx/v1/#", 1, func(_ paho.Client, m paho.Message) { spy <- m.Topic() }).WaitTimeout(3 * time.Second)

	forgedFrame := tp.LiveFrames(api.TownshipGroup(api.TownshipCode(villageA)), api.LiveSessionID{9})
	// Box B tries to publish a command to A and a report as A: the broker
	// refuses (and, for an MQTT 3.1.1 client, disconnects it).
	// Nor may it inject a live frame into A's township.
	for _, topic := range []string{tp.Schedule(api.VillageGroup(villageA), 99), tp.Events(villageA), forgedFrame} {
		b, err := connect(t, url, "box-"+villageB, "box-"+villageB, "pb")
		if err != nil {
			t.Fatal(err)
		}
		b.Publish(topic, 1, false, "forged").WaitTimeout(2 * time.Second)
	}

	want := map[string]bool{
		tp.Schedule(api.GroupAll, 1):                                    true,
		tp.Schedule(api.TownshipGroup(api.TownshipCode(villageA)), 2):   true,
		tp.Schedule(api.VillageGroup(villageA), 3):                      true,
		tp.ReportsAck(villageA):                                         true,
		tp.LiveFrames(api.GroupAll, api.LiveSessionID{1}):               true,
		tp.LiveFrames(api.VillageGroup(villageA), api.LiveSessionID{2}): true,
	}
	notWant := []string{
		tp.Schedule(api.TownshipGroup(api.TownshipCode(villageB)), 4),
		tp.Schedule(api.VillageGroup(villageB), 5),
		tp.ReportsAck(villageB),
		tp.Events(villageB),
		tp.LiveFrames(api.TownshipGroup(api.TownshipCode(villageB)), api.LiveSessionID{3}),
		tp.LiveFrames(api.VillageGroup(villageB), api.LiveSessionID{4}),
	}
	for topic := range want {
		svc.Publish(topic, 1, false, "x").WaitTimeout(3 * time.Second)
	}
	for _, topic := range notWant {
		svc.Publish(topic, 1, false, "x").WaitTimeout(3 * time.Second)
	}
	a.Publish(tp.Events(villageA), 1, false, "own report").WaitTimeout(3 * time.Second)

	deadline := time.After(3 * time.Second)
	seen := map[string]bool{}
	spied := map[string]int{}
collect:
	for {
		select {
		case topic := <-got:
			seen[topic] = true
		case topic := <-spy:
			spied[topic]++
		case <-deadline:
			break collect
		}
	}
	for topic := range want {
		if !seen[topic] {
			t.Errorf("box A did not receive %s", topic)
		}
	}
	for topic := range seen {
		if !want[topic] {
			t.Errorf("box A received %s, which is not its own", topic)
		}
	}
	if spied[tp.Schedule(api.VillageGroup(villageA), 99)] != 0 {
		t.Error("a box published a command")
	}
	if spied[forgedFrame] != 0 {
		t.Error("a box published a live frame")
	}
	if spied[tp.Events(villageB)] != 1 { // only the service's own publish
		t.Errorf("box B's report topic saw %d messages, want 1 (the service's)", spied[tp.Events(villageB)])
	}
	if spied[tp.Events(villageA)] != 1 {
		t.Errorf("box A's report topic saw %d messages, want 1 (its own, not box B's)", spied[tp.Events(villageA)])
	}
}

// TestInlineSubscribeDropsNothing: a burst of reports larger than a
// connection's write queue reaches an in-process subscriber whole, where
// the broker drops what overflows a slow MQTT subscriber's queue.
func TestInlineSubscribeDropsNothing(t *testing.T) {
	const burst = 3000
	b := startBrokerWith(t, 16)
	topics := api.Topics{}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	if err := b.Subscribe(topics.EventsFilter(), func(topic string, payload []byte) {
		mu.Lock()
		seen[string(payload)]++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	box, err := connect(t, b.URL(), "box-"+villageA, "box-"+villageA, "pa")
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]paho.Token, 0, burst)
	for i := range burst {
		toks = append(toks, box.Publish(topics.Events(villageA), 1, false, []byte(strconv.Itoa(i))))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// mochi acknowledges a publish before it hands it to in-process
	// subscribers: wait (with a deadline) for all of them to arrive.
	got := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	deadline := time.Now().Add(10 * time.Second)
	for got() < burst && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != burst {
		t.Fatalf("the in-process subscriber got %d of %d reports", len(seen), burst)
	}
	for p, n := range seen {
		if n != 1 {
			t.Fatalf("report %s arrived %d times", p, n)
		}
	}
	if q, i := b.Dropped(); q+i != 0 {
		t.Errorf("broker dropped %d+%d messages", q, i)
	}
}
