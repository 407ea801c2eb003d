package planner

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// bc is a broadcast issued at issued, valid for an hour.
func bc(id int64, p playlists.Priority, issued time.Time, items ...playlists.Item) api.BroadcastState {
	issued = issued.UTC()
	return api.BroadcastState{
		ID: id, Priority: p, Severity: 2, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
		Playlist: playlists.Playlist{ID: id, Name: "b", Items: items, GapMS: 100},
	}
}

// put hands the planner a broadcast the way the box does: stored first.
func (r *rig) put(b api.BroadcastState, receivedAt time.Time) {
	r.j.heard(b.ID)
	r.p.PutBroadcast(b, receivedAt)
}

// startTimes lists when each clip started, relative to t0.
func (r *rig) startTimes(t0 time.Time) string {
	var s []string
	for _, p := range r.out.list() {
		s = append(s, p.start.Sub(t0).String())
	}
	return strings.Join(s, " ")
}

func TestEmergencyCutsRoutineOccurrenceWhichIsNotResumed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(10), item(2, 0).SHA256: seconds(2)})
		defer r.stop()
		r.p.Put(once(1, t0.Add(time.Second), 0, item(1, 1)), t0)
		time.Sleep(3 * time.Second)
		r.put(bc(9, playlists.Emergency, time.Now(), item(2, 1)), time.Now())
		time.Sleep(time.Minute)
		synctest.Wait()
		plays := r.out.list()
		if len(plays) != 2 || plays[0].err == nil || plays[0].end.Sub(t0) != 3*time.Second || plays[1].start.Sub(t0) != 3*time.Second || plays[1].err != nil {
			t.Fatalf("plays %+v: want the routine clip cut at +3 s and the emergency at once", plays)
		}
		want := "started:1 partial:1:interrupted by broadcast 9 (emergency) started:b9 finished:b9"
		if got := r.j.summary(); got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
	})
}

func TestUrgentCutByEmergencyPlaysAgainFromTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(5), item(2, 0).SHA256: seconds(1)})
		defer r.stop()
		r.put(bc(1, playlists.Urgent, t0, item(1, 1)), t0)
		time.Sleep(2 * time.Second)
		r.put(bc(2, playlists.Emergency, time.Now(), item(2, 1)), time.Now())
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.startTimes(t0), "0s 2s 3s"; got != want {
			t.Fatalf("clips started at %s, want %s", got, want)
		}
		if p := r.out.list()[2]; p.samples != len(seconds(5)) || p.err != nil {
			t.Fatalf("urgent played again %+v, want all of it", p)
		}
		want := "started:b1 partial:b1:interrupted by broadcast 2 (emergency) started:b2 finished:b2 started:b1 finished:b1"
		if got := r.j.summary(); got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
	})
}

func TestEqualPriorityWaitsFirstIssuedFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(3), item(2, 0).SHA256: seconds(1), item(3, 0).SHA256: seconds(1)})
		defer r.stop()
		r.put(bc(1, playlists.Urgent, t0, item(1, 1)), t0)
		time.Sleep(time.Second)
		// Heard in the other order than issued: issue time decides.
		r.put(bc(3, playlists.Urgent, t0.Add(500*time.Millisecond), item(3, 1)), time.Now())
		r.put(bc(2, playlists.Urgent, t0.Add(200*time.Millisecond), item(2, 1)), time.Now())
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.startTimes(t0), "0s 3s 4s"; got != want {
			t.Fatalf("clips started at %s, want %s", got, want)
		}
		if got, want := r.j.summary(), "started:b1 finished:b1 started:b2 finished:b2 started:b3 finished:b3"; got != want {
			t.Fatalf("events %s, want %s", got, want)
		}
	})
}

func TestCancelStopsPlaybackAndAWaitingBroadcastNeverStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(10), item(2, 0).SHA256: seconds(1)})
		defer r.stop()
		r.put(bc(1, playlists.Urgent, t0, item(1, 1)), t0)
		r.put(bc(2, playlists.Urgent, t0.Add(time.Millisecond), item(2, 1)), t0)
		time.Sleep(2 * time.Second)
		cancel := func(id int64) { // as the box does: the store first
			r.j.mu.Lock()
			r.j.bcasts[id] = api.EventCancelled
			r.j.mu.Unlock()
			r.p.CancelBroadcast(id)
		}
		cancel(2)
		cancel(1)
		time.Sleep(time.Minute)
		synctest.Wait()
		plays := r.out.list()
		if len(plays) != 1 || plays[0].err == nil || plays[0].end.Sub(t0) != 2*time.Second {
			t.Fatalf("plays %+v: want broadcast 1 stopped at +2 s, broadcast 2 never", plays)
		}
		if got := r.j.summary(); got != "started:b1" {
			t.Fatalf("events %s", got)
		}
	})
}

func TestExpiredBroadcastsNeverPlay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(20), item(2, 0).SHA256: seconds(1)})
		defer r.stop()
		late := bc(1, playlists.Emergency, t0.Add(-2*time.Hour), item(2, 1)) // expired an hour ago
		r.put(late, t0)
		r.put(bc(2, playlists.Urgent, t0, item(1, 1)), t0)
		short := bc(3, playlists.Urgent, t0.Add(time.Second), item(2, 1))
		short.ExpiresAt = t0.Add(10 * time.Second) // expires while 2 plays
		r.put(short, t0)
		missing := bc(4, playlists.Emergency, t0, item(8, 1))
		missing.ExpiresAt = t0.Add(30 * time.Second) // its clip never arrives
		r.put(missing, t0)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got, want := r.startTimes(t0), "0s"; got != want {
			t.Fatalf("clips started at %s, want only broadcast 2's", got)
		}
		want := []string{
			"expired:b1:expired at " + late.ExpiresAt.Format(time.RFC3339) + ", before the box received it",
			"started:b2",
			"expired:b3:expired at " + short.ExpiresAt.Format(time.RFC3339) + " while waiting for the loudspeaker",
			"finished:b2",
			"expired:b4:expired at " + missing.ExpiresAt.Format(time.RFC3339) + " before its audio was downloaded",
		}
		if got := r.j.summary(); got != strings.Join(want, " ") {
			t.Fatalf("events\n%s\nwant\n%s", got, strings.Join(want, " "))
		}
		for _, e := range r.j.list() {
			if e.Type == api.EventExpired && e.BroadcastID == 3 && !e.At.Equal(short.ExpiresAt) {
				t.Errorf("broadcast 3 reported expired at %s, want at its expiry %s", e.At, short.ExpiresAt)
			}
		}
	})
}

func TestQuietHoursSkipRoutineOccurrencesAndHoldRoutineBroadcasts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble starts at 2000-01-01 00:00 UTC = 08:00 in Shanghai.
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(1)})
		defer r.stop()
		r.p.SetConfig(api.BoxConfig{QuietHours: []playlists.QuietWindow{{From: "07:00", To: "08:30"}}})
		r.p.Put(once(1, t0.Add(5*time.Second), 0, item(1, 1)), t0)
		r.put(bc(2, playlists.Urgent, t0.Add(2*time.Second), item(1, 1)), t0)
		routine := bc(3, playlists.Routine, t0.Add(3*time.Second), item(1, 1))
		routine.ExpiresAt = t0.Add(2 * time.Hour)
		r.put(routine, t0)
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if got, want := r.startTimes(t0), "0s 30m0s"; got != want {
			t.Fatalf("clips started at %s: want the urgent at once, the routine broadcast at 08:30", got)
		}
		want := "started:b2 finished:b2 failed:1:skipped: quiet hours 07:00–08:30 started:b3 finished:b3"
		if got := r.j.summary(); got != want {
			t.Fatalf("events\n%s\nwant\n%s", got, want)
		}
	})
}

func TestQuietHoursReadInTheConfigZone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 00:00 UTC: 08:00 in Shanghai (the schedule's zone), 19:00 in New York.
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(1)})
		defer r.stop()
		r.p.SetConfig(api.BoxConfig{QuietHours: []playlists.QuietWindow{{From: "07:00", To: "09:00"}}, Timezone: "America/New_York"})
		st := once(1, t0.Add(time.Second), 0, item(1, 1))
		st.Schedule.Timezone = "Asia/Shanghai"
		r.p.Put(st, t0)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := r.j.summary(); got != "started:1 finished:1" {
			t.Fatalf("events %s: quiet hours read in New York do not cover 19:00", got)
		}
	})
}

func TestVolume(t *testing.T) {
	clip := make([]int16, playlists.SampleRate/10)
	for i := range clip {
		clip[i] = int16(i*331%60000 - 30000)
	}
	tests := []struct {
		name   string
		config int
		b      func(*api.BroadcastState)
		want   int // percent
	}{
		{"unset: full volume", 0, nil, 100},
		{"box volume", 50, nil, 50},
		{"broadcast volume overrides the box's", 50, func(b *api.BroadcastState) { b.Volume = 80 }, 80},
		{"forced full volume", 30, func(b *api.BroadcastState) { b.Volume = 40; b.ForceFullVolume = true }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				r := start(t, audio{item(1, 0).SHA256: clip})
				defer r.stop()
				r.p.SetConfig(api.BoxConfig{Volume: tt.config})
				b := bc(1, playlists.Emergency, t0, item(1, 1))
				if tt.b != nil {
					tt.b(&b)
				}
				r.put(b, t0)
				r.p.Put(once(2, t0.Add(time.Second), 0, item(1, 1)), t0)
				time.Sleep(time.Minute)
				synctest.Wait()
				plays := r.out.list()
				if len(plays) != 2 {
					t.Fatalf("%d plays", len(plays))
				}
				check := func(what string, got []int16, pct int) {
					t.Helper()
					for i, v := range clip {
						if want := int16(int32(v) * int32(pct) / 100); got[i] != want {
							t.Fatalf("%s sample %d = %d, want %d (%d%%)", what, i, got[i], want, pct)
						}
					}
				}
				check("broadcast", plays[0].pcm, tt.want)
				schedPct := tt.config
				if schedPct == 0 {
					schedPct = 100
				}
				check("schedule", plays[1].pcm, schedPct)
				if tt.want == 100 && &plays[0].pcm[0] != &clip[0] {
					t.Error("a full-volume play was copied, not played as loaded")
				}
			})
		})
	}
}

func TestScaleSaturates(t *testing.T) {
	tests := []struct {
		name   string
		in     []int16
		volume int
		want   []int16
	}{
		{"100 leaves samples alone", []int16{-32768, -1, 0, 1, 32767}, 100, []int16{-32768, -1, 0, 1, 32767}},
		{"50 halves toward zero", []int16{-32768, -3, 0, 3, 32767}, 50, []int16{-16384, -1, 0, 1, 16383}},
		{"1 percent", []int16{-32768, 32767}, 1, []int16{-327, 327}},
		{"above 100 saturates", []int16{-30000, -100, 100, 30000}, 200, []int16{-32768, -200, 200, 32767}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scale(tt.in, 0, tt.volume); !slices.Equal(got, tt.want) {
				t.Fatalf("scale = %v, want %v", got, tt.want)
			}
		})
	}
}

// sixDB is the gain that doubles amplitude: 20·log10(2) ≈ 6.02 dB.
var sixDB = 20 * math.Log10(2)

func TestScaleWithGain(t *testing.T) {
	full := []int16{-32768, -20000, -16384, -1001, -3, -1, 0, 1, 3, 1001, 16383, 16384, 20000, 32767}
	tests := []struct {
		name   string
		in     []int16
		gainDB float64
		volume int
		want   []int16
	}{
		{"+6 dB doubles, saturating", full, sixDB, 100,
			[]int16{-32768, -32768, -32768, -2002, -6, -2, 0, 2, 6, 2002, 32766, 32767, 32767, 32767}},
		{"-6 dB halves toward zero", []int16{-32768, -3, 0, 3, 32767}, -sixDB, 100, []int16{-16384, -1, 0, 1, 16383}},
		{"gain and volume in one step", []int16{-20000, -1001, 1001, 20000}, sixDB, 50, []int16{-20000, -1001, 1001, 20000}},
		{"+6 dB at 80 %", []int16{-10000, 10000, 30000}, sixDB, 80, []int16{-16000, 16000, 32767}},
		{"+0.49 dB is inside the dead band", full, 0.49, 100, full},
		{"-0.49 dB is inside the dead band", full, -0.49, 100, full},
		{"dead band at 50 % is volume alone", []int16{-32768, -3, 0, 3, 32767}, 0.3, 50, []int16{-16384, -1, 0, 1, 16383}},
		{"+0.5 dB is applied", []int16{10000, -10000}, 0.5, 100, []int16{10592, -10592}},
		{"held to +20 dB", []int16{100, -100}, 60, 100, []int16{1000, -1000}},
		{"held to -20 dB", []int16{1000, -1000}, -60, 100, []int16{100, -100}},
		{"NaN is no gain", full, math.NaN(), 100, full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scale(tt.in, tt.gainDB, tt.volume)
			if len(got) != len(tt.want) {
				t.Fatalf("%d samples, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !nearly(int(got[i]), int(tt.want[i])) {
					t.Fatalf("scale(%v dB, %d%%) = %v, want %v", tt.gainDB, tt.volume, got, tt.want)
				}
			}
		})
	}
}

// nearly reports whether got is want or one step nearer zero: 10^(6.02/20)
// is 2 only to within the rounding of a float, and samples are rounded
// toward zero, so a product meant to be whole may land one below it.
func nearly(got, want int) bool {
	switch {
	case want > 0:
		return got == want || got == want-1
	case want < 0:
		return got == want || got == want+1
	}
	return got == 0
}

func TestScaleInsideTheDeadBandIsTheClipItself(t *testing.T) {
	clip := []int16{-32768, -1, 0, 1, 32767}
	for _, g := range []float64{0, 0.2, -0.2, 0.499, -0.499} {
		if got := scale(clip, g, 100); &got[0] != &clip[0] {
			t.Errorf("gain %v dB at 100 %%: the clip was copied, not played as loaded", g)
		}
	}
	if got := scale(clip, 0.5, 100); &got[0] == &clip[0] {
		t.Error("gain 0.5 dB at 100 %: the clip was played as loaded, without its gain")
	}
}

// TestGainOfEachItem plays a schedule of three items of one clip's sound
// under different sha256s and gains, and a broadcast of the +6 dB one at
// 50 %: each sounds at its own gain, and the near-target one as loaded.
func TestGainOfEachItem(t *testing.T) {
	clip := make([]int16, playlists.SampleRate/10)
	for i := range clip {
		clip[i] = int16(i*331%40000 - 20000)
	}
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		near, loud, soft := item(1, 1), item(2, 1), item(3, 1)
		near.GainDB, loud.GainDB, soft.GainDB = -0.4, sixDB, -sixDB
		r := start(t, audio{near.SHA256: clip, loud.SHA256: clip, soft.SHA256: clip})
		defer r.stop()
		r.p.Put(once(1, t0.Add(time.Second), 0, near, loud, soft), t0)
		time.Sleep(10 * time.Second)
		b := bc(2, playlists.Routine, time.Now(), loud)
		b.Volume = 50
		r.put(b, time.Now())
		time.Sleep(time.Minute)
		synctest.Wait()
		plays := r.out.list()
		if len(plays) != 4 {
			t.Fatalf("%d plays, want 4", len(plays))
		}
		if &plays[0].pcm[0] != &clip[0] {
			t.Error("the item at -0.4 dB was copied, not played as loaded (bit-exact)")
		}
		for i, v := range clip {
			double := min(max(2*int(v), math.MinInt16), math.MaxInt16)
			if got := int(plays[1].pcm[i]); !nearly(got, double) {
				t.Fatalf("+6 dB sample %d = %d, want %d (doubled, saturating)", i, got, double)
			}
			if got, want := int(plays[2].pcm[i]), int(v)/2; !nearly(got, want) {
				t.Fatalf("-6 dB sample %d = %d, want %d (halved)", i, got, want)
			}
			if got := int(plays[3].pcm[i]); !nearly(got, int(v)) {
				t.Fatalf("+6 dB at 50 %% sample %d = %d, want %d", i, got, v)
			}
		}
	})
}

func TestTestBroadcastBeginsWithTheToneAndIsMarked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := start(t, audio{item(1, 0).SHA256: seconds(1)})
		defer r.stop()
		b := bc(1, playlists.Urgent, t0, item(1, 1))
		b.Test, b.Repeat = true, 2
		r.put(b, t0)
		time.Sleep(time.Minute)
		synctest.Wait()
		plays := r.out.list()
		if len(plays) != 3 || !slices.Equal(plays[0].pcm, TestTone()) {
			t.Fatalf("%d plays; want the test tone then the clip twice", len(plays))
		}
		if got, want := r.startTimes(t0), "0s 800ms 1.9s"; got != want {
			t.Fatalf("started at %s, want %s (tone, 300 ms, clip, 100 ms gap, clip)", got, want)
		}
		for _, e := range r.j.list() {
			if !e.Test {
				t.Errorf("report %+v of a test broadcast without test=true", e)
			}
		}
		if got := r.j.summary(); got != "started:b1 finished:b1" {
			t.Fatalf("events %s", got)
		}
	})
}

func TestToneLevel(t *testing.T) {
	tone := TestTone()
	if len(tone) != playlists.SampleRate/2 {
		t.Fatalf("%d samples, want 0.5 s", len(tone))
	}
	peak := 0
	for _, v := range tone {
		peak = max(peak, int(v), -int(v))
	}
	if want := 8231; peak < want-80 || peak > want { // 32767 × 10^(-12/20)
		t.Fatalf("peak %d, want about %d (-12 dBFS)", peak, want)
	}
}

// lockedAudio is audio that a test adds clips to while the planner runs.
type lockedAudio struct {
	mu sync.Mutex
	m  audio
}

func (a *lockedAudio) Load(sum string) ([]int16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Load(sum)
}

func (a *lockedAudio) Has(sum string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.Has(sum)
}

func TestBroadcastWaitsForItsAudioAndStopsResumeLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		clips := &lockedAudio{m: audio{}}
		r := start(t, clips)
		r.put(bc(1, playlists.Urgent, t0, item(1, 1)), t0)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(r.out.list()); n != 0 {
			t.Fatalf("%d plays before the clip was downloaded", n)
		}
		clips.mu.Lock()
		clips.m[item(1, 0).SHA256] = seconds(5)
		clips.mu.Unlock()
		r.p.Wake() // as the box does after a download
		time.Sleep(2 * time.Second)
		r.stop() // the agent stops mid-broadcast
		if got := r.j.summary(); got != "started:b1 partial:b1:"+ErrStopped.Error() {
			t.Fatalf("events %s", got)
		}
		if s := r.j.status(1); s != api.EventPartial {
			t.Fatalf("status %q: want partial, to play again after the restart", s)
		}
	})
}
