package media_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/media/mediatest"
)

// FuzzDecode feeds arbitrary bytes to the upload decoder (WAV and MP3):
// it must never panic, and whatever it accepts must come out as a
// canonical WAV in the playback format. Seeds are in
// testdata/fuzz/FuzzDecode, plus the tiny MP3s of testdata.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"tiny-22050-mono.mp3", "tiny-44100-stereo.mp3"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []mediatest.Spec{
		{Rate: 22050, Channels: 1, Bits: 16, Seconds: 0.001, Freq: 440},
		{Rate: 8000, Channels: 2, Bits: 8, Seconds: 0.002, Freq: 440},
		{Rate: 48000, Channels: 1, Bits: 24, Seconds: 0.001, Freq: 440, Extensible: true},
	} {
		f.Add(mediatest.Sine(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out mediatest.MemFile
		_, d, err := media.Convert(context.Background(), data, &out, time.Minute)
		if err != nil {
			return
		}
		b := out.Bytes()
		if d <= 0 || len(b) < 46 || string(b[:4]) != "RIFF" || string(b[36:40]) != "data" {
			t.Fatalf("accepted, but produced %d bytes lasting %v", len(b), d)
		}
		if n := binary.LittleEndian.Uint32(b[40:]); int(n) != len(b)-44 {
			t.Fatalf("data size %d in a file of %d bytes", n, len(b))
		}
	})
}
