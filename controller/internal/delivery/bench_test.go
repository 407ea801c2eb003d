package delivery

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// message is a report message as paho hands it over.
type message struct {
	topic    string
	payload  []byte
	retained bool
	acked    bool
}

func (m *message) Duplicate() bool   { return false }
func (m *message) Qos() byte         { return 1 }
func (m *message) Retained() bool    { return m.retained }
func (m *message) Topic() string     { return m.topic }
func (m *message) MessageID() uint16 { return 1 }
func (m *message) Payload() []byte   { return m.payload }
func (m *message) Ack()              { m.acked = true }

// benchService is a Service on a real store with boxes enrolled, whose
// broker link is down: publishing the signed acks fails at once, so the
// benchmark measures decode, store and sign, not the network.
func benchService(tb testing.TB, boxes int) (*Service, []string) {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(tb.TempDir(), "cx.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	vs := make([]store.Village, boxes)
	codes := make([]string, boxes)
	for i := range vs {
		codes[i] = fmt.Sprintf("4114%04d%04d", 100+i/100, i%100)
		vs[i] = store.Village{Code: codes[i], Name: "v", Township: "t", Device: "agent"}
	}
	if _, err := db.ImportVillages(ctx, vs); err != nil {
		tb.Fatal(err)
	}
	for _, v := range codes {
		et, err := db.CreateEnrollToken(ctx, v, 0, "bench")
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := db.Enroll(ctx, api.EnrollRequest{Village: v, Token: et.Token, AgentVersion: "1.0"}); err != nil {
			tb.Fatal(err)
		}
	}
	s, err := New(Options{Store: db, Broker: "tcp://127.0.0.1:1", SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	return s, codes
}

// BenchmarkIngestPath commits one delivery batch of report messages, one
// from each box, perMsg events each: decode, store in one transaction,
// acknowledge to the broker, sign an ack per box. (Before the acks were
// pipelined, commit signed them itself; the timing covers them either way.)
//
//	go test ./controller/internal/delivery -run '^$' -bench IngestPath -benchmem
func BenchmarkIngestPath(b *testing.B) {
	for _, tc := range []struct{ msgs, perMsg int }{{100, 1}, {1000, 1}, {1000, 10}} {
		b.Run(fmt.Sprintf("msgs=%d/events=%d", tc.msgs, tc.perMsg), func(b *testing.B) {
			ctx := context.Background()
			s, codes := benchService(b, tc.msgs)
			seq := map[string]int64{}
			at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			batch := func() []*message {
				out := make([]*message, len(codes))
				for i, v := range codes {
					eb := api.EventBatch{V: api.Version, Village: v, Version: "1.0"}
					for range tc.perMsg {
						seq[v]++
						eb.Events = append(eb.Events, api.Event{Seq: seq[v], Type: api.EventStarted, At: at, BroadcastID: 7})
					}
					raw, err := json.Marshal(eb)
					if err != nil {
						b.Fatal(err)
					}
					out[i] = &message{topic: s.opts.Topics.Events(v), payload: raw}
				}
				return out
			}
			// Acks are signed and sent beside the ingest loop, as in Run.
			actx, stopAcks := context.WithCancel(ctx)
			acksDone := make(chan struct{})
			go func() { s.ackLoop(actx); close(acksDone) }()
			b.ReportAllocs()
			events := 0
			for b.Loop() {
				b.StopTimer()
				ms := batch()
				b.StartTimer()
				s.commit(ctx, asMessages(ms))
				for _, m := range ms {
					if !m.acked {
						b.Fatal("message not acknowledged")
					}
				}
				events += tc.msgs * tc.perMsg
			}
			stopAcks()
			<-acksDone
			s.flushAcks(ctx) // the last commits' acks count too
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func asMessages(ms []*message) []paho.Message {
	out := make([]paho.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
