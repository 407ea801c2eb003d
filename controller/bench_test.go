package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// BenchmarkEmergencyFanout100 measures, with 100 real boxes on loopback
// (embedded broker, each box its own MQTT connection, null output), the
// time from the API accepting an emergency broadcast to each box's
// `started` report being received by the controller (report-*), and to
// the moment each box says it started sounding (sound-*, on its
// controller-corrected clock). It reports p50, p99 and max over all boxes
// and iterations:
//
//	go test ./controller -run '^$' -bench EmergencyFanout -benchtime 5x
func BenchmarkEmergencyFanout100(b *testing.B) {
	const boxes = 100
	h := startController(b, harnessOptions{PreApproved: "drill"})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(benchCounty(boxes))); err != nil {
		b.Fatal(err)
	}
	var bs []fleet.Box
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range vs {
		tok, err := h.Client.Enroll(ctx, v.Code)
		if err != nil {
			b.Fatal(err)
		}
		bs = append(bs, fleet.Box{Village: v.Code, EnrollToken: tok.Token})
	}
	fl, err := fleet.Start(ctx, fleet.Options{Controller: h.HTTPURL, Broker: h.BrokerURL, Dir: b.TempDir(), TopicPrefix: h.Prefix, Output: "null", Boxes: bs, Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fl.Close() })
	waitFor(b, 30*time.Second, "all boxes connected", func() bool {
		for _, v := range fl.Villages() {
			if !fl.Connected(v) {
				return false
			}
		}
		return true
	})
	clip, err := h.Client.UploadAudio(ctx, "short.wav", "bench", shortClip(b))
	if err != nil {
		b.Fatal(err)
	}
	// Boxes download a clip when they first need it; a first broadcast
	// warms every cache so the iterations measure delivery, not download.
	warm := h.emergency(b, clip.ID)
	waitFor(b, 60*time.Second, "warm-up broadcast downloaded", func() bool { return fl.ReadyForBroadcast(warm.ID) == boxes })
	h.settle(b, fl, warm.ID)

	var lat, snd []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		accepted, br := time.Now(), h.emergency(b, clip.ID)
		accepted = accepted.Add(time.Since(accepted) / 2) // midpoint of the request
		started := map[string]time.Time{}                 // when the controller received the report
		sounded := map[string]time.Time{}                 // when the box says it started (its controller-corrected clock)
		deadline := time.Now().Add(30 * time.Second)
		for len(started) < boxes {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d boxes reported started", len(started), boxes)
			}
			evs, err := h.Store.BroadcastEvents(ctx, br.ID, false)
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range evs {
				if e.Type == api.EventStarted {
					if _, ok := started[e.Village]; !ok {
						started[e.Village] = e.ReceivedAt
						sounded[e.Village] = e.At
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		for v, t := range started {
			lat = append(lat, t.Sub(accepted))
			snd = append(snd, sounded[v].Sub(accepted))
		}
		b.StopTimer()
		h.settle(b, fl, br.ID)
		b.StartTimer()
	}
	b.StopTimer()
	q := func(d []time.Duration, p float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.5), "report-p50-ms")
	b.ReportMetric(q(lat, 0.99), "report-p99-ms")
	b.ReportMetric(q(lat, 1), "report-max-ms")
	b.ReportMetric(q(snd, 0.5), "sound-p50-ms")
	b.ReportMetric(q(snd, 0.99), "sound-p99-ms")
	b.ReportMetric(q(snd, 1), "sound-max-ms")
	b.ReportMetric(0, "ns/op")
}

// emergency sends a county-wide emergency drill of the clip.
func (h *controllerHarness) emergency(tb testing.TB, audioID int64) api.Broadcast {
	tb.Helper()
	br, err := h.Client.CreateBroadcast(context.Background(), api.BroadcastRequest{
		AudioID: audioID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: "drill", ExpiresAt: client.ExpiresAt(time.Now().Add(10 * time.Minute)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return br
}

// settle cancels a broadcast and waits until no box is playing it, so the
// next one is not queued behind it (equal priority waits its turn).
func (h *controllerHarness) settle(tb testing.TB, fl *fleet.Fleet, id int64) {
	tb.Helper()
	if _, err := h.Client.CancelBroadcast(context.Background(), id); err != nil {
		tb.Fatal(err)
	}
	waitFor(tb, 30*time.Second, "boxes done with the broadcast", func() bool {
		for _, v := range fl.Villages() {
			st, err := fl.BroadcastOutcome(v, id)
			if err != nil {
				return false
			}
			switch st {
			case api.EventFinished, api.EventCancelled, api.EventExpired, api.EventFailed:
			default:
				return false
			}
		}
		return true
	})
}

// benchCounty is a county of n agent villages, ten to a township.
func benchCounty(n int) string {
	var b strings.Builder
	b.WriteString("code,name,township,lat,lon,device\n")
	for i := 0; i < n; i++ {
		t := i / 10
		fmt.Fprintf(&b, "411421%03d%03d,测试村%d,测试乡%d,34.%04d,115.%04d,agent\n", 100+t, 201+i%10, i, t, 1000+i, 1000+i)
	}
	return b.String()
}
