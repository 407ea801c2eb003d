package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/dynsec/dynsectest"
)

// TestMosquittoDynsecDelivery runs the county announcement through a
// private Mosquitto with the Dynamic Security plugin: the controller logs
// in as its admin, makes itself a limited account, and creates each box's
// account as the box enrolls. All 79 boxes play. The broker, not the
// controller, then refuses a box that reaches for another village's
// commands.
func TestMosquittoDynsecDelivery(t *testing.T) {
	t.Parallel()
	b := dynsectest.Start(t)
	h := startController(t, harnessOptions{Broker: b.URL, BrokerUser: b.AdminUser, BrokerPassword: b.AdminPassword, BrokerDynsec: true})
	h.county(t, b.URL)
	at := time.Now().Add(15 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	waitCoverage(t, h, sid, at, 60*time.Second, countyPlayed)

	// A fresh enrollment yields credentials only the broker checks.
	ctx := context.Background()
	const village, other = "411421100201", "411421101201"
	tok, err := h.Client.Enroll(ctx, village)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := enrollBox(ctx, h.HTTPURL, village, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL).SetClientID(creds.MQTTUsername).
		SetUsername(creds.MQTTUsername).SetPassword(creds.MQTTPassword).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("box login with its enrolled credentials: %v", tok.Error())
	}
	defer c.Disconnect(0)
	topics := api.Topics{Prefix: h.Prefix}
	for filter, want := range map[string]bool{
		topics.CommandFilter(api.VillageGroup(village)): true,
		topics.CommandFilter(api.VillageGroup(other)):   false,
		topics.EventsFilter():                           false,
	} {
		st := c.Subscribe(filter, 1, nil)
		if !st.WaitTimeout(10 * time.Second) {
			t.Fatalf("subscribe %s timed out", filter)
		}
		if got := st.(*paho.SubscribeToken).Result()[filter] < 0x80; got != want {
			t.Errorf("subscribe %s: allowed=%v, want %v", filter, got, want)
		}
	}
}

// enrollBox enrolls as a box would, with the one-time token.
func enrollBox(ctx context.Context, controller, village, token string) (api.EnrollResponse, error) {
	var out api.EnrollResponse
	body, err := json.Marshal(api.EnrollRequest{Village: village, Token: token, AgentVersion: "test"})
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, controller+"/api/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return out, fmt.Errorf("enroll: %s: %s", resp.Status, msg)
	}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}
