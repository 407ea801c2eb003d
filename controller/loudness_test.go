package main

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/bench"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/playlists"
)

// atLoudness returns pcm scaled to an integrated loudness of lufs (BS.1770,
// as the controller measures uploads), to within 0.05 LU.
func atLoudness(tb testing.TB, pcm []int16, lufs float64) []int16 {
	tb.Helper()
	out := make([]int16, len(pcm))
	copy(out, pcm)
	for range 3 { // rounding to whole samples moves it a little; converge
		got, _, err := media.Loudness(out, playlists.SampleRate)
		if err != nil {
			tb.Fatal(err)
		}
		if math.Abs(got-lufs) < 0.05 {
			return out
		}
		k := math.Pow(10, (lufs-got)/20)
		for i, v := range out {
			out[i] = int16(max(math.MinInt16, min(math.MaxInt16, math.Round(float64(v)*k))))
		}
	}
	got, _, _ := media.Loudness(out, playlists.SampleRate)
	tb.Fatalf("could not bring the clip to %.2f LUFS: it measures %.2f", lufs, got)
	return nil
}

// measure returns a clip's loudness, true peak and the gain the controller
// gives it.
func measure(tb testing.TB, pcm []int16) (lufs, peak, gain float64) {
	tb.Helper()
	lufs, peak, err := media.Loudness(pcm, playlists.SampleRate)
	if err != nil {
		tb.Fatal(err)
	}
	return lufs, peak, media.Gain(lufs, peak, media.DefaultTargetLUFS)
}

// TestPublishedCommandsCarryTheClipGain uploads a quiet clip, schedules
// and broadcasts it, and reads the signed commands the controller
// published: every item carries the gain_db stored in the clip's audio row.
func TestPublishedCommandsCarryTheClipGain(t *testing.T) {
	ctx := t.Context()
	h := startController(t, harnessOptions{})
	const village = "110101001001"
	csv := "code,name,township,lat,lon,device\n" + village + ",东村,东镇,39.9,116.4,agent\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	pcm := testTone(t, time.Second, -30)
	_, _, want := measure(t, pcm)
	clip, err := h.Client.UploadAudio(ctx, "quiet.wav", "轻声", bench.WAV(pcm))
	if err != nil {
		t.Fatal(err)
	}
	row, err := h.Store.Audio(ctx, clip.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.GainDB == nil || math.Abs(*row.GainDB-want) > 0.011 {
		t.Fatalf("audio row gain_db = %v, want %.2f (the clip measures -30 LUFS)", row.GainDB, want)
	}
	stored := *row.GainDB

	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "轻声", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1, GainDB: -7}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{
		PlaylistID: pl.ID, Targets: playlists.Targets{Villages: []string{village}}, Timezone: "Asia/Shanghai", OnceAt: &at,
	})
	if err != nil {
		t.Fatal(err)
	}
	br, err := h.Client.CreateBroadcast(ctx, api.BroadcastRequest{
		AudioID: clip.ID, Targets: playlists.Targets{Villages: []string{village}},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}

	var sched, bcast *api.Command
	waitFor(t, 10*time.Second, "the schedule and the broadcast to be published", func() bool {
		rs, err := h.Store.ListRetained(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			var env api.Envelope
			var c api.Command
			if err := json.Unmarshal(r.Payload, &env); err != nil {
				t.Fatalf("retained %s: %v", r.Topic, err)
			}
			if err := json.Unmarshal(env.Payload, &c); err != nil {
				t.Fatalf("retained %s payload: %v", r.Topic, err)
			}
			switch {
			case c.Kind == api.KindSchedulePut && c.Schedule != nil && c.Schedule.Schedule.ID == sid.ID:
				sched = &c
			case c.Kind == api.KindBroadcastPut && c.Broadcast != nil && c.Broadcast.ID == br.ID:
				bcast = &c
			}
		}
		return sched != nil && bcast != nil
	})
	for what, items := range map[string][]playlists.Item{
		"schedule.put":  sched.Schedule.Playlist.Items,
		"broadcast.put": bcast.Broadcast.Playlist.Items,
	} {
		if len(items) != 1 || items[0].GainDB != stored {
			t.Errorf("%s items %+v, want one with gain_db %v from the audio row", what, items, stored)
		}
	}
	t.Logf("clip at -30 LUFS: audio row gain_db %+.2f dB; schedule.put and broadcast.put items carry it", stored)
}
