package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-audio/wav"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

const contentVillage = "110101001001"

// oneBox imports a one-village county and starts its box writing what it
// plays to a directory, which the test reads as the loudspeaker's capture.
func oneBox(t *testing.T, h *controllerHarness) string {
	t.Helper()
	out, _ := oneBoxFleet(t, h)
	return out
}

// oneBoxFleet is oneBox, with the fleet that runs the box.
func oneBoxFleet(t *testing.T, h *controllerHarness) (string, *fleet.Fleet) {
	t.Helper()
	ctx := context.Background()
	csv := "code,name,township,lat,lon,device\n" + contentVillage + ",测试村,测试乡,39.9,116.4,agent\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	return out, h.boxes(t, h.BrokerURL, "wav:"+out, contentVillage)
}

// playToCapture broadcasts req to the one box, waits until it played, and
// returns the samples the box wrote.
func playToCapture(t *testing.T, h *controllerHarness, out string, req api.BroadcastRequest) []int {
	t.Helper()
	req.Targets = playlists.Targets{Villages: []string{contentVillage}}
	req.Priority, req.Severity, req.ExpiresAt = playlists.Urgent, 3, client.ExpiresAt(time.Now().Add(10*time.Minute))
	br, err := h.Client.CreateBroadcast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	waitBroadcast(t, h.Client, br.ID, 60*time.Second, func(c api.BroadcastCoverage) bool { return c.PlayedByBox == 1 })
	files, _ := filepath.Glob(filepath.Join(out, contentVillage, "*.wav"))
	if len(files) == 0 {
		t.Fatal("the box wrote nothing")
	}
	sort.Strings(files)
	raw, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	return samples(t, raw)
}

func samples(t *testing.T, wavBytes []byte) []int {
	t.Helper()
	buf, err := wav.NewDecoder(bytes.NewReader(wavBytes)).FullPCMBuffer()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Data
}

// sameSound checks the capture is the library clip as played: the same
// length and, allowing for the loudness gain, the same waveform
// (normalised correlation ≥ 0.999).
func sameSound(t *testing.T, clip, capture []int) {
	t.Helper()
	if len(clip) == 0 || len(clip) != len(capture) {
		t.Fatalf("capture has %d samples, the clip %d", len(capture), len(clip))
	}
	var xy, xx, yy float64
	for i := range clip {
		x, y := float64(clip[i]), float64(capture[i])
		xy, xx, yy = xy+x*y, xx+x*x, yy+y*y
	}
	if xx == 0 || yy == 0 {
		t.Fatal("silent clip or capture")
	}
	r := xy / math.Sqrt(xx*yy)
	t.Logf("%d samples, correlation %.6f, level ratio %.3f", len(clip), r, math.Sqrt(yy/xx))
	if r < 0.999 {
		t.Fatalf("capture differs from the clip: correlation %.6f", r)
	}
}

func newestClip(t *testing.T, h *controllerHarness) []int {
	t.Helper()
	list, err := h.Client.AudioList(context.Background())
	if err != nil || len(list) == 0 {
		t.Fatalf("audio list: %v (%d clips)", err, len(list))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	raw, err := h.Client.AudioContent(context.Background(), list[len(list)-1].ID)
	if err != nil {
		t.Fatal(err)
	}
	return samples(t, raw)
}

// TestMP3UploadPlays uploads an MP3 and hears it on a box.
func TestMP3UploadPlays(t *testing.T) {
	t.Parallel()
	h := startController(t, harnessOptions{})
	out := oneBox(t, h)
	mp3, err := os.ReadFile("internal/media/testdata/tone-44100-stereo.mp3")
	if err != nil {
		t.Fatal(err)
	}
	clip, err := h.Client.UploadAudio(context.Background(), "tone.mp3", "MP3 tone", mp3)
	if err != nil {
		t.Fatal(err)
	}
	capture := playToCapture(t, h, out, api.BroadcastRequest{AudioID: clip.ID})
	sameSound(t, newestClip(t, h), capture)
}

// TestTextBroadcastSpeaks sends a text broadcast: espeak-ng speaks it in
// Mandarin into the library and the box plays that speech.
func TestTextBroadcastSpeaks(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (test.sh installs it): apt-get install espeak-ng")
	}
	h := startController(t, harnessOptions{})
	out := oneBox(t, h)
	capture := playToCapture(t, h, out, api.BroadcastRequest{Text: "村民请注意，今晚有暴雨，请远离河道。"})
	clip := newestClip(t, h)
	if d := time.Duration(len(clip)) * time.Second / playlists.SampleRate; d < time.Second {
		t.Fatalf("speech lasts only %s", d)
	}
	sameSound(t, clip, capture)
}

// TestWithdrawnScheduleNeverPlays withdraws a schedule through the real
// delivery path before its time: the box hears the signed withdrawal and
// never sounds it.
func TestWithdrawnScheduleNeverPlays(t *testing.T) {
	t.Parallel()
	h := startController(t, harnessOptions{})
	out, fl := oneBoxFleet(t, h)
	ctx := context.Background()
	clip, err := h.Client.UploadAudio(ctx, "a.wav", "withdrawn", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "w", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(8 * time.Second).Truncate(time.Second)
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Villages: []string{contentVillage}}, OnceAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	// The box holds the schedule and its audio first, so that only the
	// withdrawal can keep it silent.
	waitFor(t, 5*time.Second, "the box ready for the schedule", func() bool { return fl.ReadyFor(sid.ID) == 1 })
	if _, err := h.Client.WithdrawSchedule(ctx, sid.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(at.Add(4 * time.Second)))
	if files, _ := filepath.Glob(filepath.Join(out, contentVillage, "*.wav")); len(files) != 0 {
		t.Fatalf("the box played a withdrawn schedule: %v", files)
	}
	cov, err := h.Client.Coverage(ctx, sid.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	if cov.Played != 0 {
		t.Fatalf("withdrawn schedule counted as played: %s", summary(cov.CoverageDetail))
	}
}
