package cache

import (
	"slices"
	"testing"

	"github.com/cunxiang/cunxiang/playlists"
)

// BenchmarkDecode decodes a 10 s clip, which every box does each time it
// starts to sound a broadcast or an occurrence.
//
//	go test ./agent/internal/cache -run '^$' -bench Decode -benchmem
func BenchmarkDecode(b *testing.B) {
	raw, want := clip(b, 10*playlists.SampleRate)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		pcm, err := Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		if len(pcm) != len(want) {
			b.Fatalf("%d samples, want %d", len(pcm), len(want))
		}
	}
	if pcm, _ := Decode(raw); !slices.Equal(pcm, want) {
		b.Fatal("decoded samples differ")
	}
}
