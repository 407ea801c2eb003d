package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// The hot paths of the wire contract: every emergency is signed once per
// group by the controller and verified by every box before it sounds;
// every report message is decoded by the controller's ingest.
//
//	go test ./api -run '^$' -bench . -benchmem

// broadcastCommand is a county-wide emergency as the controller sends it.
func broadcastCommand() api.Command {
	return api.Command{
		ID:        "4d5e6f708192a3b4c5d6e7f8091a2b3c",
		Kind:      api.KindBroadcastPut,
		Target:    api.TownshipGroup(township),
		Seq:       45,
		IssuedAt:  issued,
		ExpiresAt: issued.Add(25 * time.Hour),
		Broadcast: &api.BroadcastState{
			ID: 9, Priority: playlists.Emergency, Severity: 1, EventType: "flood",
			Playlist: playlists.Playlist{ID: 4, Name: "洪水紧急转移", Items: []playlists.Item{
				{AudioID: 21, SHA256: sha('c'), DurationMS: 30000, Repeat: 3},
			}},
			Repeat: 2, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), ForceFullVolume: true,
		},
	}
}

func BenchmarkSign(b *testing.B) {
	c := broadcastCommand()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := api.Sign(testKey, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name string
		c    api.Command
	}{
		{"broadcast", broadcastCommand()},
		{"schedule", putCommand()},
		{"ack", ackCommand()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			data := sign(b, testKey, tc.c)
			topic := topics.Broadcast(tc.c.Target, 9)
			if tc.c.Kind != api.KindBroadcastPut {
				topic = commandTopic(tc.c)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := api.Verify(testPub, topics, topic, data, verifyAt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchBatch is a full report message: MaxEventsPerBatch reports.
func benchBatch(tb testing.TB) []byte {
	tb.Helper()
	occ := time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC)
	bt := api.EventBatch{V: api.Version, Village: village, Version: "0.1.0"}
	for i := range api.MaxEventsPerBatch {
		e := api.Event{Seq: int64(i + 1), At: occ.Add(time.Duration(i) * time.Second)}
		switch i % 3 {
		case 0:
			e.Type, e.BroadcastID = api.EventStarted, 9
		case 1:
			e.Type, e.ScheduleID, e.Occurrence = api.EventFinished, 7, &occ
		default:
			e.Type, e.ScheduleID, e.AudioID, e.Reason = api.EventFailed, 7, 12, "audio not downloaded"
		}
		bt.Events = append(bt.Events, e)
	}
	return mustJSON(tb, bt)
}

func BenchmarkDecodeEventBatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"events=1", mustJSON(b, api.EventBatch{V: api.Version, Village: village, Version: "0.1.0", Events: eventBatch().Events[2:3]})},
		{"events=6", mustJSON(b, eventBatch())},
		{"events=100", benchBatch(b)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := api.DecodeEventBatch(village, tc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeEventBatch is the box's side of a report message.
func BenchmarkEncodeEventBatch(b *testing.B) {
	var bt api.EventBatch
	if err := json.Unmarshal(benchBatch(b), &bt); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(bt); err != nil {
			b.Fatal(err)
		}
	}
}
