package api_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

func TestSignVerify(t *testing.T) {
	put := putCommand()
	putTopic := commandTopic(put)
	signedPut := sign(t, testKey, put)
	// tamper changes the signed payload after signing.
	tamper := func(f func(e *api.Envelope)) []byte {
		var e api.Envelope
		if err := json.Unmarshal(signedPut, &e); err != nil {
			t.Fatal(err)
		}
		f(&e)
		return mustJSON(t, e)
	}
	// signedAs signs put after changing it, bypassing Sign's own checks.
	signedAs := func(f func(c *api.Command)) []byte {
		c := putCommand()
		c.V = api.Version
		f(&c)
		return envelope(t, testKey, mustJSON(t, c))
	}
	tests := []struct {
		name  string
		pub   []byte
		topic string
		data  []byte
		now   time.Time
		want  error // nil: accepted
	}{
		{"good put", testPub, putTopic, signedPut, verifyAt, nil},
		{"good once", testPub, commandTopic(onceCommand()), sign(t, testKey, onceCommand()), verifyAt, nil},
		{"good withdraw", testPub, commandTopic(withdrawCommand()), sign(t, testKey, withdrawCommand()), verifyAt, nil},
		{"good ack", testPub, commandTopic(ackCommand()), sign(t, testKey, ackCommand()), verifyAt, nil},

		{"forged key", testPub, putTopic, sign(t, otherKey, put), verifyAt, api.ErrBadSig},
		{"verified with the wrong key", otherKey.Public().(ed25519.PublicKey), putTopic, signedPut, verifyAt, api.ErrBadSig},
		{"no public key", nil, putTopic, signedPut, verifyAt, api.ErrBadSig},
		{"short public key", testPub[:31], putTopic, signedPut, verifyAt, api.ErrBadSig},
		{"tampered payload", testPub, putTopic, tamper(func(e *api.Envelope) {
			e.Payload = bytes.Replace(e.Payload, []byte(`"seq":41`), []byte(`"seq":99`), 1)
		}), verifyAt, api.ErrBadSig},
		{"extended expiry", testPub, putTopic, tamper(func(e *api.Envelope) {
			e.Payload = bytes.Replace(e.Payload, []byte(`2026-03-31`), []byte(`2036-03-31`), 1)
		}), verifyAt, api.ErrBadSig},
		{"tampered signature", testPub, putTopic, tamper(func(e *api.Envelope) { e.Sig[0] ^= 1 }), verifyAt, api.ErrBadSig},
		{"short signature", testPub, putTopic, tamper(func(e *api.Envelope) { e.Sig = e.Sig[:63] }), verifyAt, api.ErrBadSig},
		{"unsigned", testPub, putTopic, tamper(func(e *api.Envelope) { e.Sig = nil }), verifyAt, api.ErrBadSig},
		{"forged and malformed", testPub, putTopic, tamper(func(e *api.Envelope) { e.Payload = []byte("{") }), verifyAt, api.ErrBadSig},

		{"township command on a village topic", testPub, topics.Schedule(api.VillageGroup(village), 7), signedPut, verifyAt, api.ErrWrongTarget},
		{"township command on another township", testPub, topics.Schedule(api.TownshipGroup("411421101"), 7), signedPut, verifyAt, api.ErrWrongTarget},
		{"township command on the county topic", testPub, topics.Schedule(api.GroupAll, 7), signedPut, verifyAt, api.ErrWrongTarget},
		{"ack on another box's topic", testPub, topics.ReportsAck("411421100202"), sign(t, testKey, ackCommand()), verifyAt, api.ErrWrongTarget},
		{"other prefix", testPub, "cx/v2/cmd/t/411421100/sched/7", signedPut, verifyAt, api.ErrWrongTarget},
		{"events topic", testPub, topics.Events(village), signedPut, verifyAt, api.ErrWrongTarget},

		{"a second before expiry", testPub, putTopic, signedPut, expires.Add(-time.Second), nil},
		{"at expiry", testPub, putTopic, signedPut, expires, api.ErrExpired},
		{"long expired", testPub, putTopic, signedPut, expires.AddDate(1, 0, 0), api.ErrExpired},
		{"issued within the allowed skew", testPub, putTopic, signedPut, issued.Add(-api.MaxClockSkew), nil},
		{"issued in the future", testPub, putTopic, signedPut, issued.Add(-api.MaxClockSkew - time.Second), api.ErrNotYetValid},

		{"malformed JSON", testPub, putTopic, []byte(`{"payload":`), verifyAt, api.ErrMalformed},
		{"JSON null", testPub, putTopic, []byte(`null`), verifyAt, api.ErrMalformed},
		{"empty", testPub, putTopic, nil, verifyAt, api.ErrMalformed},
		{"empty payload", testPub, putTopic, []byte(`{"payload":"","sig":""}`), verifyAt, api.ErrMalformed},
		{"payload not base64", testPub, putTopic, []byte(`{"payload":"not base64!","sig":"AAAA"}`), verifyAt, api.ErrMalformed},
		{"signature not base64", testPub, putTopic, []byte(`{"payload":"e30=","sig":"%%%"}`), verifyAt, api.ErrMalformed},
		{"signed non-JSON", testPub, putTopic, envelope(t, testKey, []byte("play everything")), verifyAt, api.ErrMalformed},
		{"signed wrong version", testPub, putTopic, signedAs(func(c *api.Command) { c.V = 2 }), verifyAt, api.ErrMalformed},
		{"signed unknown kind", testPub, putTopic, signedAs(func(c *api.Command) { c.Kind = "siren.on" }), verifyAt, api.ErrMalformed},
		{"signed without seq", testPub, putTopic, signedAs(func(c *api.Command) { c.Seq = 0 }), verifyAt, api.ErrMalformed},
		{"signed wildcard target", testPub, "cx/v1/cmd/t/+/sched/7", signedAs(func(c *api.Command) { c.Target = "t/+" }), verifyAt, api.ErrMalformed},
		{"signed target with a path", testPub, putTopic, signedAs(func(c *api.Command) { c.Target = "t/411421100/sched" }), verifyAt, api.ErrMalformed},
		{"signed invalid schedule", testPub, putTopic, signedAs(func(c *api.Command) { c.Schedule.Schedule.Timezone = "Nowhere" }), verifyAt, api.ErrMalformed},
		{"signed clip without sha256", testPub, putTopic, signedAs(func(c *api.Command) { c.Schedule.Playlist.Items[0].SHA256 = "" }), verifyAt, api.ErrMalformed},
	}
	t.Run("custom prefix", func(t *testing.T) {
		tp := api.Topics{Prefix: "test/r1"}
		if _, err := api.Verify(testPub, tp, tp.Schedule(put.Target, 7), signedPut, verifyAt); err != nil {
			t.Errorf("under its own prefix: %v", err)
		}
		if _, err := api.Verify(testPub, tp, putTopic, signedPut, verifyAt); !errors.Is(err, api.ErrWrongTarget) {
			t.Errorf("under the default prefix: %v, want ErrWrongTarget", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := api.Verify(tt.pub, topics, tt.topic, tt.data, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want accepted", err)
				}
				if c.V != api.Version || c.Seq <= 0 {
					t.Errorf("accepted %+v", c)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSign(t *testing.T) {
	t.Run("sets the version", func(t *testing.T) {
		c := withdrawCommand()
		c.V = 0
		got, err := api.Verify(testPub, topics, commandTopic(c), sign(t, testKey, c), verifyAt)
		if err != nil || got.V != api.Version {
			t.Fatalf("Verify = %+v, %v", got, err)
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		if a, b := sign(t, testKey, putCommand()), sign(t, testKey, putCommand()); !bytes.Equal(a, b) {
			t.Error("two signatures of one command differ")
		}
	})
	refuse := []struct {
		name   string
		change func(*api.Command)
	}{
		{"no id", func(c *api.Command) { c.ID = "" }},
		{"no seq", func(c *api.Command) { c.Seq = 0 }},
		{"no issue time", func(c *api.Command) { c.IssuedAt = time.Time{} }},
		{"no expiry", func(c *api.Command) { c.ExpiresAt = time.Time{} }},
		{"empty target", func(c *api.Command) { c.Target = "" }},
		{"all with a path", func(c *api.Command) { c.Target = "all/x" }},
		{"short township", func(c *api.Command) { c.Target = "t/4114211" }},
		{"township of a village code", func(c *api.Command) { c.Target = "t/411421100201" }},
		{"village of a township code", func(c *api.Command) { c.Target = "v/411421100" }},
		{"wildcard", func(c *api.Command) { c.Target = "v/#" }},
		{"unknown kind", func(c *api.Command) { c.Kind = "" }},
		{"put without schedule", func(c *api.Command) { c.Schedule = nil }},
		{"put with empty playlist", func(c *api.Command) { c.Schedule.Playlist.Items = nil }},
		{"clip without duration", func(c *api.Command) { c.Schedule.Playlist.Items[1].DurationMS = 0 }},
		{"withdraw without id", func(c *api.Command) { c.Kind = api.KindScheduleWithdraw; c.Withdraw = &api.Withdrawal{} }},
		{"ack without village", func(c *api.Command) { c.Kind = api.KindReportsAck; c.Ack = &api.ReportsAck{Seq: 1} }},
		{"ack with negative seq", func(c *api.Command) {
			c.Kind, c.Target, c.Ack = api.KindReportsAck, api.VillageGroup(village), &api.ReportsAck{Village: village, Seq: -1}
		}},
		{"ack for another box's group", func(c *api.Command) {
			c.Kind, c.Target, c.Ack = api.KindReportsAck, api.VillageGroup("411421100202"), &api.ReportsAck{Village: village, Seq: 1}
		}},
		{"ack to a township", func(c *api.Command) { c.Kind, c.Ack = api.KindReportsAck, &api.ReportsAck{Village: village, Seq: 1} }},
	}
	for _, tt := range refuse {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			c := putCommand()
			tt.change(&c)
			if b, err := api.Sign(testKey, c); err == nil {
				t.Fatalf("Sign accepted it: %s", b)
			}
		})
	}
}

func TestObjectKey(t *testing.T) {
	tests := []struct {
		name string
		c    api.Command
		want string
	}{
		{"put", putCommand(), "sched/7"},
		{"withdraw", withdrawCommand(), "sched/7"},
		{"ack", ackCommand(), "ack/411421100201"},
		{"put without schedule", api.Command{Kind: api.KindSchedulePut}, "?"},
		{"unknown", api.Command{Kind: "x"}, "?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.ObjectKey(); got != tt.want {
				t.Errorf("ObjectKey() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewCommandID(t *testing.T) {
	a, b := api.NewCommandID(), api.NewCommandID()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a) || a == b {
		t.Errorf("NewCommandID() = %q, %q", a, b)
	}
}
