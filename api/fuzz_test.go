package api_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// The fuzz targets read what arrives from outside: signed commands on a
// box, reports and presence on the controller. Seeds live in
// testdata/fuzz/<FuzzName>/: the golden messages (written by TestFuzzSeeds
// with -update) and any input a fuzzing run found to fail.
//
//	go test ./api -run '^$' -fuzz FuzzVerify -fuzztime 20s

// reasons are the errors a box may report when it refuses a command.
var reasons = []error{api.ErrMalformed, api.ErrBadSig, api.ErrExpired, api.ErrNotYetValid, api.ErrWrongTarget}

func knownReason(err error) bool {
	for _, r := range reasons {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// checkAccepted asserts what a box relies on for a command Verify accepted
// on topic at now.
func checkAccepted(t *testing.T, c api.Command, topic string, now time.Time) {
	t.Helper()
	if c.V != api.Version {
		t.Fatalf("accepted version %d", c.V)
	}
	if err := c.Check(); err != nil {
		t.Fatalf("accepted a command that fails Check: %v", err)
	}
	if g, ok := topics.GroupOfCommandTopic(topic); !ok || g != c.Target {
		t.Fatalf("accepted a command for %q on topic %q", c.Target, topic)
	}
	if !now.Before(c.ExpiresAt) {
		t.Fatalf("accepted at %v a command that expired at %v", now, c.ExpiresAt)
	}
	if c.IssuedAt.After(now.Add(api.MaxClockSkew)) {
		t.Fatalf("accepted at %v a command issued at %v", now, c.IssuedAt)
	}
	if c.ObjectKey() == "?" {
		t.Fatalf("accepted a command with no object: %+v", c)
	}
	switch c.Kind {
	case api.KindReportsAck:
		if c.Target != api.VillageGroup(c.Ack.Village) {
			t.Fatalf("ack for %s accepted on group %s", c.Ack.Village, c.Target)
		}
	case api.KindSchedulePut:
		// The box can expand what it accepted.
		if _, err := c.Schedule.Schedule.Next(now, 1); err != nil {
			t.Fatalf("accepted schedule does not expand: %v", err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"payload":"","sig":""}`), topics.Schedule(api.GroupAll, 1), verifyAt.Unix())
	otherPub := otherKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte, topic string, unix int64) {
		now := time.Unix(unix, 0).UTC()

		// As received: nothing the fuzzer makes carries a valid signature
		// unless it is a seed's, unchanged where it counts.
		c, err := api.Verify(testPub, topics, topic, data, now)
		if err != nil && !knownReason(err) {
			t.Fatalf("error with no reason to report: %v", err)
		}
		if err == nil {
			var e api.Envelope
			if json.Unmarshal(data, &e) != nil || !ed25519.Verify(testPub, e.Payload, e.Sig) {
				t.Fatalf("accepted %q without a valid signature", data)
			}
			checkAccepted(t, c, topic, now)
		}
		if _, err := api.Verify(otherPub, topics, topic, data, now); err == nil {
			t.Fatalf("accepted %q under a key that signed nothing", data)
		}

		// The same bytes as a payload the controller signed: everything
		// after the signature check sees hostile JSON.
		env := envelope(t, testKey, data)
		c, err = api.Verify(testPub, topics, topic, env, now)
		switch {
		case err == nil:
			checkAccepted(t, c, topic, now)
		case !knownReason(err):
			t.Fatalf("error with no reason to report: %v", err)
		case len(data) == 0 && !errors.Is(err, api.ErrMalformed):
			t.Fatalf("empty payload: %v, want ErrMalformed", err)
		}
		if len(data) > 0 {
			var e api.Envelope
			if err := json.Unmarshal(env, &e); err != nil {
				t.Fatal(err)
			}
			e.Payload[len(e.Payload)/2] ^= 0x20
			if _, err := api.Verify(testPub, topics, topic, mustJSON(t, e), now); !errors.Is(err, api.ErrBadSig) {
				t.Fatalf("tampered payload %q: err = %v, want ErrBadSig", e.Payload, err)
			}
		}
	})
}

func FuzzDecodeEventBatch(f *testing.F) {
	f.Add(village, []byte(`{"v":1,"village":"411421100201","events":[{"seq":1,"type":"started","at":"2026-03-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, village string, data []byte) {
		b, err := api.DecodeEventBatch(village, data)
		if err != nil {
			return
		}
		if b.V != api.Version || b.Village != village || !api.ValidVillageCode(b.Village) {
			t.Fatalf("accepted batch of version %d for %q on the topic of %q", b.V, b.Village, village)
		}
		if n := len(b.Events); n < 1 || n > api.MaxEventsPerBatch {
			t.Fatalf("accepted %d events", n)
		}
		for i, e := range b.Events {
			if e.Seq <= 0 || (i > 0 && e.Seq <= b.Events[i-1].Seq) {
				t.Fatalf("events[%d]: seq %d accepted", i, e.Seq)
			}
			switch e.Type {
			case api.EventReceived, api.EventDownloaded, api.EventStarted, api.EventFinished, api.EventFailed, api.EventRejected:
			default:
				t.Fatalf("events[%d]: type %q accepted", i, e.Type)
			}
			if e.At.IsZero() || len(e.Reason) > 500 {
				t.Fatalf("events[%d]: time %v, reason of %d bytes accepted", i, e.At, len(e.Reason))
			}
		}
		// What the controller stores it can encode, and reading that back
		// gives the same batch.
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("accepted batch does not encode: %v", err)
		}
		b2, err := api.DecodeEventBatch(village, enc)
		if err != nil {
			t.Fatalf("re-encoded batch refused: %v\n%s", err, enc)
		}
		if enc2 := mustJSON(t, b2); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the batch\n%s\n%s", enc, enc2)
		}
	})
}

func FuzzDecodePresence(f *testing.F) {
	f.Add(village, []byte(`{"v":1,"village":"411421100201","status":"online","at":"2026-03-01T00:00:00Z","clock_offset_ms":0}`))
	f.Fuzz(func(t *testing.T, village string, data []byte) {
		p, err := api.DecodePresence(village, data)
		if err != nil {
			return
		}
		if p.V != api.Version || p.Village != village || !api.ValidVillageCode(p.Village) {
			t.Fatalf("accepted presence of version %d for %q on the topic of %q", p.V, p.Village, village)
		}
		if p.Status != api.Online && p.Status != api.Offline {
			t.Fatalf("accepted status %q", p.Status)
		}
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted presence does not encode: %v", err)
		}
		p2, err := api.DecodePresence(village, enc)
		if err != nil {
			t.Fatalf("re-encoded presence refused: %v\n%s", err, enc)
		}
		if enc2 := mustJSON(t, p2); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the presence\n%s\n%s", enc, enc2)
		}
	})
}

// A seed is one input file of a fuzz target's corpus.
type seed struct {
	fuzz, name string
	args       []any
}

// seeds derives the corpus from the golden messages, plus a few near
// misses, so the fuzzers start from real traffic.
func seeds(tb testing.TB) []seed {
	var out []seed
	now := verifyAt.Unix()
	for _, g := range goldens() {
		data := g.encode(tb)
		switch {
		case strings.HasPrefix(g.name, "command_"):
			// Envelopes exercise the signature; payloads, signed in the
			// target, exercise everything after it.
			out = append(out, seed{"FuzzVerify", "golden_" + g.name, []any{data, g.topic, now}})
		case strings.HasPrefix(g.name, "event_batch"):
			out = append(out, seed{"FuzzDecodeEventBatch", "golden_" + g.name, []any{g.village, data}})
		case strings.HasPrefix(g.name, "presence_"):
			out = append(out, seed{"FuzzDecodePresence", "golden_" + g.name, []any{g.village, data}})
		}
	}
	out = append(out, liveSeeds()...)
	put := sign(tb, testKey, putCommand())
	out = append(out,
		seed{"FuzzVerify", "expired", []any{put, commandTopic(putCommand()), expires.Unix()}},
		seed{"FuzzVerify", "wrong_topic", []any{put, topics.Schedule(api.VillageGroup("411421101201"), 7), now}},
		seed{"FuzzVerify", "not_base64", []any{[]byte(`{"payload":"!!","sig":"@@"}`), commandTopic(putCommand()), now}},
		seed{"FuzzVerify", "ack_for_another_box", []any{
			mustJSON(tb, func() api.Command {
				c := ackCommand()
				c.V = api.Version
				c.Target = api.VillageGroup("411421100202")
				return c
			}()),
			topics.ReportsAck("411421100202"), now}},
		seed{"FuzzDecodeEventBatch", "out_of_order", []any{village, []byte(`{"v":1,"village":"411421100201","events":[{"seq":2,"type":"started","at":"2026-03-01T00:00:00Z"},{"seq":1,"type":"finished","at":"2026-03-01T00:01:00+08:00"}]}`)}},
		seed{"FuzzDecodeEventBatch", "other_village", []any{"411421100202", mustJSON(tb, eventBatch())}},
		seed{"FuzzDecodePresence", "bad_status", []any{village, []byte(`{"v":1,"village":"411421100201","status":"maybe","at":"2026-03-01T00:00:00Z"}`)}},
	)
	return out
}

// encodeSeed writes args in the `go test fuzz v1` corpus format.
func encodeSeed(args []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		default:
			panic(fmt.Sprintf("seed argument of type %T", a))
		}
	}
	return b.Bytes()
}

// TestFuzzSeeds keeps testdata/fuzz in step with the golden messages;
// -update rewrites the derived seeds (found crashers are left alone).
func TestFuzzSeeds(t *testing.T) {
	for _, s := range seeds(t) {
		t.Run(s.fuzz+"/"+s.name, func(t *testing.T) {
			path := filepath.Join("testdata", "fuzz", s.fuzz, s.name)
			want := encodeSeed(s.args)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is out of date with the goldens (run with -update)", path)
			}
		})
	}
}
