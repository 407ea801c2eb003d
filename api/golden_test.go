package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ and the fuzz seeds in testdata/fuzz/ from the fixed values in fixtures_test.go")

// A golden message: the exact bytes one side sends, built from fixed values,
// and how the other side decodes it. Each file holds the bytes followed by
// one newline.
type golden struct {
	name string
	// encode builds the wire bytes from the fixed values.
	encode func(tb testing.TB) []byte
	// decode reads the wire bytes as the receiving side does and encodes
	// what it understood again.
	decode func(tb testing.TB, data []byte) []byte
	// village and topic are where the message travels, for fuzz seeds.
	village, topic string
}

// plain decodes into a T with encoding/json, as the HTTP handlers do.
func plain[T any]() func(testing.TB, []byte) []byte {
	return func(tb testing.TB, data []byte) []byte {
		tb.Helper()
		var v T
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			tb.Fatalf("decode: %v", err)
		}
		return mustJSON(tb, v)
	}
}

// commandGoldens returns the envelope and its payload as two goldens.
func commandGoldens(name string, c api.Command) []golden {
	topic := commandTopic(c)
	env := golden{
		name:   name,
		topic:  topic,
		encode: func(tb testing.TB) []byte { return sign(tb, testKey, c) },
		decode: func(tb testing.TB, data []byte) []byte {
			tb.Helper()
			got, err := api.Verify(testPub, topics, topic, data, verifyAt)
			if err != nil {
				tb.Fatalf("Verify: %v", err)
			}
			want := c
			want.V = api.Version
			if g, w := mustJSON(tb, got), mustJSON(tb, want); !bytes.Equal(g, w) {
				tb.Errorf("Verify returned\n%s\nwant\n%s", g, w)
			}
			var e api.Envelope
			if err := json.Unmarshal(data, &e); err != nil {
				tb.Fatal(err)
			}
			return mustJSON(tb, e)
		},
	}
	payload := golden{
		name:  name + ".payload",
		topic: topic,
		encode: func(tb testing.TB) []byte {
			var e api.Envelope
			if err := json.Unmarshal(sign(tb, testKey, c), &e); err != nil {
				tb.Fatal(err)
			}
			return e.Payload
		},
		decode: plain[api.Command](),
	}
	return []golden{env, payload}
}

// eventBatchGolden is a report message as the controller decodes it.
func eventBatchGolden(name string, batch func() api.EventBatch) golden {
	return golden{
		name: name, village: village, topic: topics.Events(village),
		encode: func(tb testing.TB) []byte { return mustJSON(tb, batch()) },
		decode: func(tb testing.TB, data []byte) []byte {
			b, err := api.DecodeEventBatch(village, data)
			if err != nil {
				tb.Fatal(err)
			}
			return mustJSON(tb, b)
		},
	}
}

func goldens() []golden {
	var gs []golden
	gs = append(gs, commandGoldens("command_schedule_put", putCommand())...)
	gs = append(gs, commandGoldens("command_schedule_put_once", onceCommand())...)
	gs = append(gs, commandGoldens("command_schedule_withdraw", withdrawCommand())...)
	gs = append(gs, commandGoldens("command_reports_ack", ackCommand())...)
	gs = append(gs, liveGoldens()...)
	gs = append(gs, eventBatchGolden("event_batch", eventBatch))
	for _, status := range []string{api.Online, api.Offline} {
		gs = append(gs, golden{
			name: "presence_" + status, village: village, topic: topics.Presence(village),
			encode: func(tb testing.TB) []byte { return mustJSON(tb, presence(status)) },
			decode: func(tb testing.TB, data []byte) []byte {
				p, err := api.DecodePresence(village, data)
				if err != nil {
					tb.Fatal(err)
				}
				return mustJSON(tb, p)
			},
		})
	}
	gs = append(gs,
		golden{name: "enroll_request", encode: func(tb testing.TB) []byte { return mustJSON(tb, enrollRequest()) }, decode: plain[api.EnrollRequest]()},
		golden{name: "enroll_response", encode: func(tb testing.TB) []byte { return mustJSON(tb, enrollResponse()) }, decode: plain[api.EnrollResponse]()},
		golden{name: "clock_response", encode: func(tb testing.TB) []byte { return mustJSON(tb, clockResponse()) }, decode: plain[api.ClockResponse]()},
		golden{name: "error_body", encode: func(tb testing.TB) []byte { return mustJSON(tb, errorBody()) }, decode: plain[api.ErrorBody]()},
	)
	return gs
}

func goldenPath(name string) string { return filepath.Join("testdata", name+".json") }

// readGolden returns a golden file's message bytes, without the newline.
func readGolden(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(goldenPath(name))
	if err != nil {
		tb.Fatalf("%v (run go test ./api -run TestGolden -update to create it)", err)
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

// TestGolden pins every message's wire form: the fixed values encode to the
// file's bytes, and the receiving side decodes the file and encodes it back
// to the same bytes. After a deliberate change to a message, run
//
//	go test ./api -run 'TestGolden|TestFuzzSeeds' -update
//
// and review the diff of testdata/.
func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			want := g.encode(t)
			if *update {
				if err := os.WriteFile(goldenPath(g.name), append(want, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data := readGolden(t, g.name)
			if !bytes.Equal(data, want) {
				t.Errorf("encoding changed (rerun with -update if intended)\n got %s\nwant %s", want, data)
			}
			if got := g.decode(t, data); !bytes.Equal(got, data) {
				t.Errorf("round trip changed the message\n got %s\nwant %s", got, data)
			}
		})
	}
}

// TestGoldenNoStrays fails on a golden file no test writes, so a renamed
// message does not leave a stale example behind.
func TestGoldenNoStrays(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, g := range goldens() {
		known[goldenPath(g.name)] = true
	}
	var stray []string
	for _, f := range files {
		if !known[f] {
			stray = append(stray, f)
		}
	}
	sort.Strings(stray)
	if len(stray) > 0 {
		t.Errorf("golden files no test writes: %s", strings.Join(stray, ", "))
	}
	if len(files) != len(known) && !*update {
		t.Errorf("%d golden files, %d goldens", len(files), len(known))
	}
}
