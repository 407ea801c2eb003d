package dynsec_test

import (
	"context"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/dynsec"
	"github.com/cunxiang/cunxiang/controller/internal/dynsec/dynsectest"
)

const (
	villageA = "411421100201"
	villageB = "411421101201" // another township
)

type inbox struct {
	mu     sync.Mutex
	topics []string
}

func (i *inbox) add(_ paho.Client, m paho.Message) {
	i.mu.Lock()
	i.topics = append(i.topics, m.Topic())
	i.mu.Unlock()
}

func (i *inbox) has(topic string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, t := range i.topics {
		if t == topic {
			return true
		}
	}
	return false
}

func connect(url, id, user, pass string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, context.DeadlineExceeded
	}
	return c, tok.Error()
}

// subscribe returns the broker's granted QoS (0x80: refused).
func subscribe(t *testing.T, c paho.Client, filter string, h paho.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, h)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("subscribe %s: timed out", filter)
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func publish(t *testing.T, c paho.Client, topic string, retained bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, []byte("x"))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBoxAccountsOnMosquitto gives two boxes accounts on a real Mosquitto
// with the Dynamic Security plugin and checks what each may do: log in
// only with its own password and client id, read only its own groups'
// commands, write only its own reports, and lose its old password when
// it enrolls again.
func TestBoxAccountsOnMosquitto(t *testing.T) {
	b := dynsectest.Start(t)
	ctx := context.Background()
	topics := api.Topics{Prefix: "cxtest/dynsec"}
	ds, err := dynsec.New(ctx, dynsec.Options{Broker: b.URL, Username: b.AdminUser, Password: b.AdminPassword, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if err := ds.Setup(ctx, "cx-controller", "first", "cx-ctl"); err != nil {
		t.Fatal(err)
	}
	if err := ds.Setup(ctx, "cx-controller", "ctl-secret", "cx-ctl"); err != nil {
		t.Fatalf("Setup is not idempotent: %v", err)
	}
	if c, err := connect(b.URL, "cx-ctl", "cx-controller", "first"); err == nil {
		c.Disconnect(0)
		t.Error("the controller's previous password still works")
	}
	userA, userB := "box-"+villageA, "box-"+villageB
	if err := ds.PutBox(ctx, villageA, userA, "old-secret-a"); err != nil {
		t.Fatal(err)
	}
	if err := ds.PutBox(ctx, villageA, userA, "secret-a"); err != nil {
		t.Fatalf("re-enrollment: %v", err)
	}
	if err := ds.PutBox(ctx, villageB, userB, "secret-b"); err != nil {
		t.Fatal(err)
	}
	if err := ds.PutBox(ctx, "#", "box-x", "y"); err == nil {
		t.Error("PutBox accepted a village that is not a code")
	}

	t.Run("login", func(t *testing.T) {
		for _, tc := range []struct {
			name, id, user, pass string
			ok                   bool
		}{
			{"own credentials", userA, userA, "secret-a", true},
			{"old password after re-enrollment", userA, userA, "old-secret-a", false},
			{"wrong password", userA, userA, "secret-b", false},
			{"another box's client id", userB, userA, "secret-a", false},
			{"unknown user", "box-411421100299", "box-411421100299", "secret-a", false},
			{"anonymous", "anon", "", "", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := connect(b.URL, tc.id, tc.user, tc.pass)
				if c != nil && c.IsConnected() {
					defer c.Disconnect(0)
				}
				if got := err == nil; got != tc.ok {
					t.Errorf("connected = %v (err %v), want %v", got, err, tc.ok)
				}
			})
		}
	})

	boxA, err := connect(b.URL, userA, userA, "secret-a")
	if err != nil {
		t.Fatal(err)
	}
	defer boxA.Disconnect(0)
	ctl, err := connect(b.URL, "cx-ctl", "cx-controller", "ctl-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Disconnect(0)

	t.Run("box subscriptions", func(t *testing.T) {
		for _, tc := range []struct {
			filter string
			ok     bool
		}{
			{topics.CommandFilter(api.GroupAll), true},
			{topics.CommandFilter(api.TownshipGroup(api.TownshipCode(villageA))), true},
			{topics.CommandFilter(api.VillageGroup(villageA)), true},
			{topics.CommandFilter(api.VillageGroup(villageB)), false},
			{topics.CommandFilter(api.TownshipGroup(api.TownshipCode(villageB))), false},
			{topics.EventsFilter(), false},
			{"#", false},
			{topics.LiveFramesFilter(api.GroupAll), true},
			{topics.LiveFramesFilter(api.TownshipGroup(api.TownshipCode(villageA))), true},
			{topics.LiveFramesFilter(api.VillageGroup(villageA)), true},
			{topics.LiveFramesFilter(api.TownshipGroup(api.TownshipCode(villageB))), false},
			{"cxtest/dynsec/live/#", false},
		} {
			got := subscribe(t, boxA, tc.filter, nil)
			if ok := got < 0x80; ok != tc.ok {
				t.Errorf("subscribe %s: granted %#x, want allowed=%v", tc.filter, got, tc.ok)
			}
		}
	})

	t.Run("commands reach only their groups", func(t *testing.T) {
		var in inbox
		subscribe(t, boxA, topics.CommandFilter(api.VillageGroup(villageA)), in.add)
		subscribe(t, boxA, topics.CommandFilter(api.GroupAll), in.add)
		other := topics.Schedule(api.VillageGroup(villageB), 7)
		own := topics.Schedule(api.VillageGroup(villageA), 7)
		all := topics.Schedule(api.GroupAll, 8)
		for _, tp := range []string{other, own, all} {
			publish(t, ctl, tp, false)
		}
		waitUntil(t, "box A to receive its commands", func() bool { return in.has(own) && in.has(all) })
		if in.has(other) {
			t.Errorf("box A received %s", other)
		}
	})

	t.Run("live frames reach only their groups, from the controller only", func(t *testing.T) {
		var in inbox
		subscribe(t, boxA, topics.LiveFramesFilter(api.TownshipGroup(api.TownshipCode(villageA))), in.add)
		own := topics.LiveFrames(api.TownshipGroup(api.TownshipCode(villageA)), api.LiveSessionID{1})
		other := topics.LiveFrames(api.TownshipGroup(api.TownshipCode(villageB)), api.LiveSessionID{2})
		forged := topics.LiveFrames(api.TownshipGroup(api.TownshipCode(villageA)), api.LiveSessionID{3})
		publish(t, boxA, forged, false) // a box injecting a frame
		publish(t, ctl, other, false)
		publish(t, ctl, own, false)
		waitUntil(t, "box A to receive its township's frame", func() bool { return in.has(own) })
		if in.has(other) {
			t.Errorf("box A received %s", other)
		}
		if in.has(forged) {
			t.Errorf("box A published a live frame")
		}
	})

	t.Run("box publishes only its own reports", func(t *testing.T) {
		var reports, cmds inbox
		if got := subscribe(t, ctl, topics.EventsFilter(), reports.add); got >= 0x80 {
			t.Fatalf("controller may not read reports: %#x", got)
		}
		if got := subscribe(t, ctl, topics.CommandFilter(api.GroupAll), nil); got < 0x80 {
			t.Errorf("the controller's account may subscribe to commands (%#x); it needs only to publish them", got)
		}
		boxFilter := topics.CommandFilter(api.VillageGroup(villageA))
		subscribe(t, boxA, boxFilter, cmds.add)
		forged, own := topics.Events(villageB), topics.Events(villageA)
		commandForged := topics.Schedule(api.VillageGroup(villageA), 9)
		marker := topics.Schedule(api.VillageGroup(villageA), 10)
		publish(t, boxA, forged, false)
		publish(t, boxA, commandForged, false)
		publish(t, boxA, own, false)
		publish(t, ctl, marker, false)
		// Mosquitto delivers one publisher's messages in order, so once
		// the later ones are in, the forged ones would have been too.
		waitUntil(t, "box A's own report and the controller's command", func() bool { return reports.has(own) && cmds.has(marker) })
		if reports.has(forged) {
			t.Errorf("box A published a report as box B")
		}
		if cmds.has(commandForged) {
			t.Errorf("box A published a command")
		}
	})
}

func TestNewRefusesNonAdmin(t *testing.T) {
	b := dynsectest.Start(t)
	ctx := context.Background()
	if _, err := dynsec.New(ctx, dynsec.Options{Broker: b.URL, Username: b.AdminUser, Password: "wrong", Timeout: 3 * time.Second}); err == nil {
		t.Fatal("New accepted a wrong admin password")
	}
	ds, err := dynsec.New(ctx, dynsec.Options{Broker: b.URL, Username: b.AdminUser, Password: b.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if err := ds.PutBox(ctx, villageA, "box-"+villageA, "pw"); err != nil {
		t.Fatal(err)
	}
	// A box's account is not a dynsec admin.
	if _, err := dynsec.New(ctx, dynsec.Options{Broker: b.URL, Username: "box-" + villageA, Password: "pw", ClientID: "box-" + villageA, Timeout: 2 * time.Second}); err == nil {
		t.Fatal("New accepted a box account as dynsec admin")
	}
}
