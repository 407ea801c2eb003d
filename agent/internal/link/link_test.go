package link_test

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cunxiang/cunxiang/agent/internal/link"
)

// denyHook lets everyone in and refuses subscriptions to one filter.
type denyHook struct {
	mqtt.HookBase
	deny string
}

func (h *denyHook) ID() string { return "deny" }
func (h *denyHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (h *denyHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *denyHook) OnACLCheck(_ *mqtt.Client, topic string, write bool) bool {
	return write || topic != h.deny
}

func startBroker(t *testing.T, deny string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := b.AddHook(&denyHook{deny: deny}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go b.Serve()
	t.Cleanup(func() { b.Close() })
	return "tcp://" + addr
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestRefusedSubscriptionIsNotConnected: a broker that refuses one of the
// box's filters in its SUBACK leaves the link not connected, saying which
// filter, and trying again; with every filter granted it connects.
func TestRefusedSubscriptionIsNotConnected(t *testing.T) {
	for _, tc := range []struct {
		name, deny string
		connected  bool
	}{
		{"all granted", "", true},
		{"one refused", "cx/v1/cmd/v/411421100201/#", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startBroker(t, tc.deny)
			var logs logBuf
			l, err := link.New(link.Options{
				Broker: url, ClientID: "box-411421100201",
				Filters:              []string{"cx/v1/cmd/all/#", "cx/v1/cmd/v/411421100201/#"},
				Logger:               slog.New(slog.NewTextHandler(&logs, nil)),
				ConnectRetryInterval: 100 * time.Millisecond, MaxJitter: 200 * time.Millisecond, Timeout: 2 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			l.Start()
			defer l.Close()
			select {
			case <-l.Connected():
				if !tc.connected {
					t.Fatalf("connected although the broker refused %s", tc.deny)
				}
			case <-time.After(3 * time.Second):
				if tc.connected {
					t.Fatal("not connected in 3 s")
				}
				if !strings.Contains(logs.String(), "refused a subscription") || !strings.Contains(logs.String(), tc.deny) {
					t.Errorf("the log does not name the refused filter:\n%s", logs.String())
				}
				if n := strings.Count(logs.String(), "refused a subscription"); n < 2 {
					t.Errorf("tried %d times in 3 s, want it to keep trying", n)
				}
			}
		})
	}
}
