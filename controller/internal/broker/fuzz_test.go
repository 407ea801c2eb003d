package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cunxiang/cunxiang/api"
)

const (
	fuzzVillage = "411421100201"
	fuzzUser    = "box-" + fuzzVillage
	fuzzPass    = "pa"
)

type onePassword struct{}

func (onePassword) CheckAgentPassword(_ context.Context, user, pass string) (string, error) {
	if user == fuzzUser && pass == fuzzPass {
		return fuzzVillage, nil
	}
	return "", errors.New("unauthorized")
}

// newFuzzServer is a broker that is never served: connections are handed
// to it directly, as its listener would.
func newFuzzServer(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(Options{Listener: ln, Auth: onePassword{}, ServiceUser: "svc", ServicePassword: "svc-secret",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return s
}

// feed hands data to the broker as one client connection accepted by its
// guarded listener, closes the client's sending side, and returns once the
// broker has finished with the connection.
func (s *Server) feed(tb testing.TB, data []byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		_ = s.mq.EstablishConnection("t", c)
		c.Close()
	}()
	client, err := net.Dial("tcp", s.addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	defer client.Close()
	go io.Copy(io.Discard, client) // the broker's answers
	client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = client.Write(data)
	client.(*net.TCPConn).CloseWrite()
	<-done
}

// boxConnect is box fuzzVillage's CONNECT, with a Will when topic != "".
func boxConnect(version byte, willTopic string, willRetain bool) []byte {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: fuzzUser, Clean: true, Keepalive: 30,
			Username: []byte(fuzzUser), UsernameFlag: true, Password: []byte(fuzzPass), PasswordFlag: true,
		},
	}
	if willTopic != "" {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillRetain = true, willTopic, []byte("w"), willRetain
	}
	var b bytes.Buffer
	pk.ConnectEncode(&b)
	return b.Bytes()
}

func publish(version byte, topic string, qos byte, retain bool, id uint16, payload string) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		ProtocolVersion: version, TopicName: topic, PacketID: id, Payload: []byte(payload)}
	var b bytes.Buffer
	pk.PublishEncode(&b)
	return b.Bytes()
}

func pubrel(version byte, id uint16) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: version, PacketID: id}
	var b bytes.Buffer
	pk.PubrelEncode(&b)
	return b.Bytes()
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// FuzzConnection feeds arbitrary bytes to the broker as a client's
// connection; with login set they follow box fuzzVillage's valid CONNECT,
// so the fuzzer also reaches what a logged-in box can send. Whatever the
// bytes, nothing may be retained but the box's own presence, and nothing
// published that the box may not publish.
func FuzzConnection(f *testing.F) {
	// Seeds (testdata/fuzz/FuzzConnection): Wills on others' topics and
	// retained on a command, a delayed MQTT 5 Will, retained publishes at
	// QoS 2 with PUBREL and retained clears, a second CONNECT, topic
	// aliases, headers claiming 256 MB.
	tp := api.Topics{}
	own := tp.Presence(fuzzVillage)
	f.Add(true, publish(4, own, 1, true, 1, "online"))
	f.Fuzz(func(t *testing.T, login bool, data []byte) {
		s := newFuzzServer(t)
		var mu sync.Mutex
		var published []string
		if err := s.mq.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			mu.Lock()
			published = append(published, pk.TopicName)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		if login {
			data = cat(boxConnect(4, own, true), data)
		}
		s.feed(t, data)
		for topic := range s.mq.Topics.Retained.GetAll() {
			if topic != own {
				t.Errorf("retained on %q", topic)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, topic := range published {
			if !tp.BoxMay(fuzzVillage, topic, true) && !strings.HasPrefix(topic, "$cunxiang/") {
				t.Errorf("published on %q", topic)
			}
		}
		if n := s.ln.open(); n != 0 {
			t.Errorf("%d connections still counted open", n)
		}
	})
}

// FuzzConnectHeader: the CONNECT size check gives the same verdict
// however the bytes are split into reads.
func FuzzConnectHeader(f *testing.F) {
	f.Add([]byte{0x10, 0x20}, uint8(1))
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}, uint8(2))
	f.Add([]byte{0x10, 0x80, 0x40}, uint8(1))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		var whole connectHeader
		wantDone, wantErr := whole.feed(b)
		var parts connectHeader
		n := int(step%7) + 1
		var done bool
		var err error
		for i := 0; i < len(b) && !done && err == nil; i += n {
			done, err = parts.feed(b[i:min(i+n, len(b))])
		}
		if done != wantDone || (err == nil) != (wantErr == nil) {
			t.Fatalf("split by %d: done=%v err=%v; whole: done=%v err=%v", n, done, err, wantDone, wantErr)
		}
		if wantErr == nil && wantDone && len(b) > 1 && b[0]>>4 == 1 {
			if whole.remaining > maxConnectSize {
				t.Fatalf("CONNECT of %d bytes accepted", whole.remaining)
			}
		}
	})
}

// TestWillCheckedAgainWhenSent: a box whose access is gone by the time its
// Will goes out (revoked) has its Will dropped.
func TestWillCheckedAgainWhenSent(t *testing.T) {
	s := newFuzzServer(t)
	own := api.Topics{}.Presence(fuzzVillage)
	var got []string
	revoke := false
	if err := s.mq.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if !strings.HasPrefix(pk.TopicName, "$cunxiang/") { // where a refused Will goes
			got = append(got, pk.TopicName)
		}
		if revoke && string(pk.Payload) == "online" {
			// Runs before the broker reads on: the box loses its
			// access between this publish and its Will.
			s.auth.villages.Delete(fuzzUser)
		}
	}); err != nil {
		t.Fatal(err)
	}
	s.feed(t, cat(boxConnect(4, own, true), publish(4, own, 1, true, 1, "online")))
	if len(got) != 2 || got[0] != own || got[1] != own {
		t.Fatalf("with access: published %q, want the presence and the Will on %s", got, own)
	}
	got, revoke = nil, true
	s.feed(t, cat(boxConnect(4, own, true), publish(4, own, 1, true, 1, "online")))
	if len(got) != 1 {
		t.Errorf("after the box lost its access its Will went out: published %q", got)
	}
	if pk, ok := s.mq.Topics.Retained.Get(own); !ok || string(pk.Payload) != "online" {
		t.Errorf("retained on %s: %q, want the box's last own publish", own, pk.Payload)
	}
}
