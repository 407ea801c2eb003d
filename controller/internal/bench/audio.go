package bench

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/playlists"
)

// tone is a clip in the playback format (mono 16-bit at
// playlists.SampleRate) at the controller's target loudness, so its gain
// falls inside the dead band and a box plays it sample for sample: a
// 440 Hz sine under a tremolo, plus noise so that it is not periodic. No
// sample is 0, so the clip's first sample is the first non-silent one.
func tone(d time.Duration) ([]int16, error) {
	n := int(int64(playlists.SampleRate) * int64(d) / int64(time.Second))
	f := make([]float64, n)
	x := uint32(0x9e3779b9)
	for i := range f {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		t := float64(i) / playlists.SampleRate
		env := 0.35 + 0.65*math.Abs(math.Sin(math.Pi*t/0.37))
		f[i] = 12000*env*math.Sin(2*math.Pi*440*t) + float64(int(x%3001)-1500)
	}
	pcm := make([]int16, n)
	scale := 1.0
	for range 3 { // loudness is not quite linear in the scale after rounding
		for i, v := range f {
			s := math.Round(v * scale)
			if s == 0 {
				s = 1
			}
			pcm[i] = int16(max(min(s, 30000), -30000))
		}
		lufs, _, err := media.Loudness(pcm, playlists.SampleRate)
		if err != nil {
			return nil, fmt.Errorf("measure the test tone: %w", err)
		}
		scale *= math.Pow(10, (media.DefaultTargetLUFS-lufs)/20)
	}
	return pcm, nil
}

// WAV wraps mono 16-bit samples at the playback rate in a canonical
// 44-byte-header WAV (the controller's end-to-end tests use it too).
func WAV(pcm []int16) []byte {
	le := binary.LittleEndian
	b := make([]byte, 44+2*len(pcm))
	copy(b[0:], "RIFF")
	le.PutUint32(b[4:], uint32(len(b)-8))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1) // PCM
	le.PutUint16(b[22:], playlists.Channels)
	le.PutUint32(b[24:], playlists.SampleRate)
	le.PutUint32(b[28:], playlists.SampleRate*2)
	le.PutUint16(b[32:], 2)
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*len(pcm)))
	for i, s := range pcm {
		le.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}
