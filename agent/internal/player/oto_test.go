//go:build cgo

package player_test

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestOtoCaptureIsSampleExact plays a clip through real oto into ALSA's
// file plugin (in a helper process) and finds it, sample for sample, in
// what was captured: oto hands ALSA float32 samples, int16/32768.
func TestOtoCaptureIsSampleExact(t *testing.T) {
	pcm := testClip()
	raw := playCaptured(t, "oto", pcm)
	got := make([]float32, len(raw)/4)
	for i := range got {
		got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	at := find(got, pcm, func(a float32, b int16) bool { return a == float32(b)/32768 })
	if at < 0 {
		t.Fatalf("clip not found in %d captured samples", len(got))
	}
	for i := 0; i < at; i++ {
		if got[i] != 0 {
			t.Fatalf("captured sample %d before the clip is %v, not silence", i, got[i])
		}
	}
	for i := at + len(pcm); i < len(got); i++ {
		if got[i] != 0 {
			t.Fatalf("captured sample %d after the clip is %v, not silence", i, got[i])
		}
	}
	t.Logf("clip found at sample %d of %d captured", at, len(got))
}
