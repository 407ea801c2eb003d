package media_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/media/mediatest"
)

// segment is a stretch of sine (or silence, amp 0) in a test signal.
type segment struct {
	seconds, freq, dbfs float64 // dbfs is the sine's peak; -Inf for silence
}

func tone(rate int, segs ...segment) []int16 {
	var out []int16
	var t int
	for _, s := range segs {
		amp := math.Pow(10, s.dbfs/20)
		for range int(math.Round(s.seconds * float64(rate))) {
			v := amp * math.Sin(2*math.Pi*s.freq*float64(t)/float64(rate))
			out = append(out, int16(max(-32768, min(32767, math.Round(v*32768)))))
			t++
		}
	}
	return out
}

var silence = math.Inf(-1)

// Known values: BS.1770 calibrates a 997 Hz sine in one channel to read
// its RMS level, -3.01 LUFS at 0 dBFS peak; EBU Tech 3341's minimum
// requirements (its cases 1, 3 and 5, which are stereo, read 3.01 dB
// lower here in mono) allow ±0.1 LU.
func TestLoudnessKnownValues(t *testing.T) {
	tests := []struct {
		name string
		segs []segment
		want float64
	}{
		{"997 Hz at 0 dBFS", []segment{{20, 997, -0.0001}}, -3.01},
		{"997 Hz at -20 dBFS", []segment{{20, 997, -20}}, -23.01},
		{"1 kHz at -23 dBFS", []segment{{20, 1000, -23}}, -26.01},
		// Tech 3341 case 3: the quiet ends fall under the relative gate.
		{"-36/-23/-36 dBFS, relative gate", []segment{{10, 1000, -36}, {60, 1000, -23}, {10, 1000, -36}}, -26.01},
		// Tech 3341 case 5: all of it is within 10 LU, so all of it counts.
		{"-26/-20/-26 dBFS", []segment{{20, 1000, -26}, {20.1, 1000, -20}, {20, 1000, -26}}, -26.01},
		// Silence is below the absolute gate; only the three blocks that
		// straddle the edge lower the result, by 0.13 LU.
		{"-20 dBFS then silence", []segment{{5, 1000, -20}, {5, 1000, silence}}, -23.14},
		{"shorter than a block", []segment{{0.3, 997, -20}}, -23.01},
	}
	for _, rate := range []int{22050, 8000, 16000, 44100, 48000} {
		for _, tt := range tests {
			t.Run(tt.name+"/"+itoa(rate), func(t *testing.T) {
				lufs, _, err := media.Loudness(tone(rate, tt.segs...), rate)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(lufs-tt.want) > 0.1 {
					t.Fatalf("%.3f LUFS, want %.2f ± 0.1", lufs, tt.want)
				}
			})
		}
	}
}

func itoa(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// Low-level hiss between announcements must not drag the measure down.
func TestLoudnessGatesNoise(t *testing.T) {
	const rate = 22050
	sig := tone(rate, segment{4, 1000, -20}, segment{8, 1000, silence}, segment{4, 1000, -20})
	r := rand.New(rand.NewPCG(1, 2))
	for i := 4 * rate; i < 12*rate; i++ {
		sig[i] = int16(r.IntN(7) - 3) // about -80 dBFS of noise
	}
	lufs, _, err := media.Loudness(sig, rate)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lufs-(-23.2)) > 0.15 {
		t.Fatalf("%.3f LUFS; the tone alone reads -23.01, less its four edge blocks", lufs)
	}
}

func TestLoudnessSilence(t *testing.T) {
	tests := []struct {
		name     string
		pcm      []int16
		peakInf  bool
		wantErr  error
		contains string
	}{
		{"digital silence", make([]int16, 22050), true, media.ErrSilent, "silent"},
		{"faint hiss", tone(22050, segment{2, 3000, -85}), false, media.ErrSilent, "silent"},
		{"empty", nil, true, nil, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lufs, peak, err := media.Loudness(tt.pcm, 22050)
			if err == nil || !strings.Contains(cx.Message(err), tt.contains) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("err = %v", err)
			}
			if !math.IsInf(lufs, -1) || math.IsInf(peak, -1) != tt.peakInf {
				t.Fatalf("lufs %v, peak %v", lufs, peak)
			}
		})
	}
	if _, _, err := media.Loudness(make([]int16, 100), 1000); cx.Code(err) != cx.EINVALID {
		t.Fatalf("rate 1000: %v", err)
	}
}

// A sine at a quarter of the rate, sampled 45° off its crests, peaks 3 dB
// above its samples; the true-peak meter must see that.
func TestTruePeak(t *testing.T) {
	const rate = 22050
	pcm := make([]int16, rate)
	for i := range pcm {
		pcm[i] = int16(math.Round(0.5 * 32768 * math.Sin(math.Pi/2*float64(i)+math.Pi/4)))
	}
	_, peak, err := media.Loudness(pcm, rate)
	if err != nil {
		t.Fatal(err)
	}
	// Samples peak at -9.03 dBFS; the waveform at -6.02.
	if math.Abs(peak-(-6.02)) > 0.3 {
		t.Fatalf("true peak %.2f dBFS, want -6.02", peak)
	}
	_, peak, _ = media.Loudness(tone(rate, segment{1, 100, -12}), rate)
	if math.Abs(peak-(-12)) > 0.05 {
		t.Fatalf("a 100 Hz sine's true peak is its sample peak: %.2f dBFS, want -12", peak)
	}
}

func TestGain(t *testing.T) {
	tests := []struct {
		name             string
		lufs, peak, want float64
	}{
		{"quiet speech is raised", -30, -18, 14},
		{"loud clip is lowered", -8, -0.5, -8},
		{"raised at most 20 dB", -45, -30, 20},
		{"lowered at most 20 dB", 5, 0, -20},
		{"held by its peaks", -30, -4, 3},
		{"already at target", -16, -6, 0},
		{"silence", math.Inf(-1), math.Inf(-1), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := media.Gain(tt.lufs, tt.peak, media.DefaultTargetLUFS); got != tt.want {
				t.Fatalf("Gain(%v, %v) = %v, want %v", tt.lufs, tt.peak, got, tt.want)
			}
		})
	}
	// Whatever the clip, applying the gain keeps the peak 1 dB below full scale.
	for lufs := -60.0; lufs <= 0; lufs += 2.5 {
		for peak := -40.0; peak <= 3; peak += 1.5 {
			if g := media.Gain(lufs, peak, media.DefaultTargetLUFS); peak+g > -media.HeadroomDB+1e-9 || math.Abs(g) > media.MaxGainDB {
				t.Fatalf("Gain(%v, %v) = %v", lufs, peak, g)
			}
		}
	}
}

func TestClipCarriesLoudness(t *testing.T) {
	l, _ := newLib(t, media.Options{})
	in := mediatest.Sine(mediatest.Spec{Rate: 44100, Channels: 2, Bits: 16, Seconds: 3, Freq: 997, Amp: 0.1})
	p, err := l.Prepare(context.Background(), bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Discard()
	// -20 dBFS: -23.01 LUFS, raised 7 dB to -16.
	if math.Abs(p.LoudnessLUFS-(-23.01)) > 0.1 || math.Abs(p.PeakDBFS-(-20)) > 0.1 || math.Abs(p.GainDB-7) > 0.1 {
		t.Fatalf("clip = %+v", p.Clip)
	}
	l2, _ := newLib(t, media.Options{TargetLUFS: -23})
	p2, err := l2.Prepare(context.Background(), bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Discard()
	if math.Abs(p2.GainDB) > 0.1 {
		t.Fatalf("at a -23 LUFS target the gain is %v", p2.GainDB)
	}
}

func TestSilentUploadIsRefused(t *testing.T) {
	l, dir := newLib(t, media.Options{})
	in := mediatest.Sine(mediatest.Spec{Rate: 22050, Channels: 1, Bits: 16, Seconds: 2}) // frequency 0: all zeros
	p, err := l.Prepare(context.Background(), bytes.NewReader(in))
	if err == nil {
		p.Discard()
		t.Fatal("accepted a silent recording")
	}
	if !errors.Is(err, media.ErrSilent) || cx.Code(err) != cx.EINVALID {
		t.Fatalf("err = %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left behind %v", names)
	}
}

// BenchmarkLoudness measures a minute of playback-format audio.
func BenchmarkLoudness(b *testing.B) {
	pcm := tone(22050, segment{60, 440, -20})
	b.SetBytes(int64(2 * len(pcm)))
	for b.Loop() {
		media.Loudness(pcm, 22050)
	}
}
