package planner

import (
	"math"

	"github.com/cunxiang/cunxiang/playlists"
)

// scale returns pcm at volume percent, saturating at the int16 limits. At
// 100 it returns pcm itself, so a full-volume play stays bit-exact.
func scale(pcm []int16, volume int) []int16 {
	if volume == 100 {
		return pcm
	}
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		x := int32(v) * int32(volume) / 100
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
