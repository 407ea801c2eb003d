package planner

import (
	"math"

	"github.com/cunxiang/cunxiang/playlists"
)

// Loudness gain (playlists.Item.GainDB) as the box applies it.
const (
	// gainDeadBandDB: a gain smaller than this either way is not applied.
	// Half a decibel is below what a listener can tell apart outdoors, and
	// leaving it out keeps a clip already near the target bit-exact at
	// full volume.
	gainDeadBandDB = 0.5
	// maxGainDB bounds the gain either way. The controller never asks for
	// more (it holds gains to ±20 dB when it measures a clip); the box
	// holds to it too, so a mistaken command cannot blast a village.
	maxGainDB = 20.0
)

// gainFactor is the linear factor of a gain in dB, after the dead band and
// the bound; exactly 1 for a gain inside the dead band.
func gainFactor(db float64) float64 {
	if math.IsNaN(db) || math.Abs(db) < gainDeadBandDB {
		return 1
	}
	return math.Pow(10, max(-maxGainDB, min(maxGainDB, db))/20)
}

// scale returns pcm with the clip's loudness gain (in dB) and at volume
// percent, in one step: each sample times 10^(gain/20) × volume/100,
// rounded toward zero and saturating at the int16 limits. When that
// factor is exactly 1 (a gain inside the dead band, at 100 %) it returns
// pcm itself, so such a play stays bit-exact.
func scale(pcm []int16, gainDB float64, volume int) []int16 {
	g := gainFactor(gainDB)
	if g*float64(volume)/100 == 1 {
		return pcm
	}
	// The volume is multiplied in before dividing by 100, so that without
	// a gain this is exactly the integer v×volume/100 boxes always played.
	k := g * float64(volume)
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		x := float64(v) * k / 100
		out[i] = int16(min(max(x, math.MinInt16), math.MaxInt16))
	}
	return out
}

// Test tone: what a test broadcast plays before its clips, so nobody takes
// it for a real alert.
const (
	TestToneHz       = 1000
	TestToneDBFS     = -12
	TestToneDuration = 500 // milliseconds
	testToneFadeMS   = 10  // ramps in and out, so the tone does not click
)

// TestTone is the 0.5 s, 1 kHz sine at -12 dBFS a test broadcast begins
// with, in the playback format.
func TestTone() []int16 {
	n := playlists.SampleRate * TestToneDuration / 1000
	fade := playlists.SampleRate * testToneFadeMS / 1000
	amp := math.MaxInt16 * math.Pow(10, TestToneDBFS/20.0)
	pcm := make([]int16, n)
	for i := range pcm {
		g := 1.0
		if i < fade {
			g = float64(i) / float64(fade)
		} else if n-1-i < fade {
			g = float64(n-1-i) / float64(fade)
		}
		pcm[i] = int16(math.Round(g * amp * math.Sin(2*math.Pi*TestToneHz*float64(i)/playlists.SampleRate)))
	}
	return pcm
}
