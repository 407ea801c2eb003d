package bench

import (
	"context"
	"debug/buildinfo"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// realAgent imports one village, enrolls it, and runs the real agent
// binary for it as a child process until it is online.
func (b *bench) realAgent(ctx context.Context, e *env, village, output string, env []string) (*child, error) {
	csv := "code,name,township,lat,lon,device\n" + village + ",Bench village,Bench township,30.5,110.5,agent\n"
	if _, err := e.client.ImportVillages(ctx, []byte(csv)); err != nil {
		return nil, fmt.Errorf("import the agent's village: %w", err)
	}
	tok, err := e.client.Enroll(ctx, village)
	if err != nil {
		return nil, fmt.Errorf("enrollment token: %w", err)
	}
	dir := filepath.Join(e.dir, "agent-"+village)
	a, err := b.startChild("agent", b.agentBin, []string{
		"--village", village, "--controller", e.ctl.HTTPURL, "--data", dir, "--enroll", tok.Token, "--output", output,
		"--log-level", "warn",
	}, env, dir+".log")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := e.ctl.Store.VillageState(ctx, village)
		if err == nil && st.Agent != nil && st.Agent.Presence == api.Online {
			return a, nil
		}
		select {
		case <-a.done:
			return nil, fmt.Errorf("agent exited (%v) before coming online; see %s", a.err, a.log)
		case <-ctx.Done():
			a.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("agent not online within 60 s; see %s", a.log)
		}
	}
}

// ontime runs one real agent on oto into ALSA's file plugin (FIELD-NOTES)
// while the n simulated boxes are connected, schedules a clip for its
// village, and reports how late it started and whether the "sound card"
// received the clip sample for sample.
func (b *bench) ontime(ctx context.Context, e *env, n int) error {
	if why := otoUnavailable(b.agentBin); why != "" {
		b.report.Skip("ontime", why)
		b.progress("ontime skipped: %s", why)
		return nil
	}
	const village = "990200001001"
	pcm, err := tone(1500 * time.Millisecond)
	if err != nil {
		return err
	}
	clip, err := e.client.UploadAudio(ctx, "ontime.wav", "ontime", WAV(pcm))
	if err != nil {
		return fmt.Errorf("upload clip: %w", err)
	}
	pl, err := e.client.CreatePlaylist(ctx, playlists.Playlist{Name: "bench ontime", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		return fmt.Errorf("playlist: %w", err)
	}
	conf := filepath.Join(e.dir, "asound.conf")
	capture := filepath.Join(e.dir, "capture.raw")
	if err := os.WriteFile(conf, []byte(alsaCaptureConf), 0o644); err != nil {
		return err
	}
	a, err := b.realAgent(ctx, e, village, "oto", []string{
		"ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:" + conf, "ALSA_CAPTURE_FILE=" + capture,
	})
	if err != nil {
		return err
	}
	defer a.stop()
	at := time.Now().Add(10 * time.Second).Truncate(time.Second)
	sid, err := e.client.CreateSchedule(ctx, playlists.Schedule{
		PlaylistID: pl.ID, Targets: playlists.Targets{Villages: []string{village}}, Timezone: "Asia/Shanghai", OnceAt: &at,
	})
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	key := playlists.OccurrenceKey(at)
	var started, finished *time.Time
	var startedRecv time.Time
	deadline := at.Add(30 * time.Second)
	for finished == nil {
		evs, err := e.ctl.Store.ScheduleEvents(ctx, sid.ID, key)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch ev.Type {
			case api.EventStarted:
				started, startedRecv = &ev.At, ev.ReceivedAt
			case api.EventFinished:
				finished = &ev.At
			case api.EventFailed, api.EventPartial:
				return fmt.Errorf("the agent reported %s: %s", ev.Type, ev.Reason)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no started and finished report 30 s after the scheduled time; see %s", a.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if started == nil {
		return fmt.Errorf("finished reported without started")
	}
	a.stop()
	cs := fmt.Sprintf("N=%d + 1 real agent (oto)", n)
	b.report.Add(Row{Phase: "ontime", Case: cs, Metric: "lateness: started (box clock) − scheduled time", Value: ms(started.Sub(at))})
	b.report.Add(Row{Phase: "ontime", Case: cs, Metric: "started report received − scheduled time", Value: ms(startedRecv.Sub(at))})
	verdict := checkCapture(capture, pcm)
	b.report.Add(Row{Phase: "ontime", Case: cs, Metric: "ALSA capture holds the clip", Value: verdict, Target: "sample-exact, once", Met: yesNo(verdict == "sample-exact, once")})
	return nil
}

// checkCapture compares what reached ALSA's file plugin (float32 LE) with
// the clip: the clip's samples from the first non-silent one on, and
// nothing after.
func checkCapture(path string, pcm []int16) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "no capture: " + err.Error()
	}
	got := make([]float32, len(raw)/4)
	for i := range got {
		got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	first := -1
	for i, v := range got {
		if v != 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return fmt.Sprintf("%d samples of silence", len(got))
	}
	if first+len(pcm) > len(got) {
		return fmt.Sprintf("only %d samples after the start of the clip, want %d", len(got)-first, len(pcm))
	}
	for i, s := range pcm {
		if want := float32(s) / 32768; got[first+i] != want {
			return fmt.Sprintf("sample %d is %v, want %v", i, got[first+i], want)
		}
	}
	for _, v := range got[first+len(pcm):] {
		if v != 0 {
			return "sound after the clip"
		}
	}
	return "sample-exact, once"
}

// otoUnavailable says why the agent cannot play through oto here, or "".
func otoUnavailable(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "cannot read the agent's build settings: " + err.Error()
	}
	cgo := false
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" && s.Value == "1" {
			cgo = true
		}
	}
	if !cgo {
		return "the agent was built without cgo, so it has no oto output (needs gcc and libasound2-dev)"
	}
	if _, err := os.Stat("/usr/share/alsa/alsa.conf"); err != nil {
		return "no ALSA configuration (/usr/share/alsa/alsa.conf): install the ALSA runtime"
	}
	return ""
}

// alsaCaptureConf makes ALSA's default device write what is played to
// $ALSA_CAPTURE_FILE over a null device (FIELD-NOTES).
const alsaCaptureConf = `pcm.!default {
    type file
    slave.pcm "null"
    file { @func getenv  vars [ ALSA_CAPTURE_FILE ]  default "/tmp/capture.raw" }
    format "raw"
    perm 0644
}
`
