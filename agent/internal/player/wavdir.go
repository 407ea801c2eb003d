package player

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// WAVDir writes every clip it plays to a directory as
// <unix-nanos>-<n>.wav. The file is written at once; Play still returns
// only after the clip's duration, so scheduling (one occurrence at a time,
// gaps, overlap) behaves exactly as on a loudspeaker.
type WAVDir struct {
	dir string
	mu  sync.Mutex
	n   int
}

// NewWAVDir creates dir if needed.
func NewWAVDir(dir string) (*WAVDir, error) {
	if dir == "" {
		return nil, fmt.Errorf("wav output: no directory (use wav:DIR)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wav output: %w", err)
	}
	return &WAVDir{dir: dir}, nil
}

// Play writes the clip, then waits out its duration.
func (w *WAVDir) Play(ctx context.Context, pcm []int16) error {
	start := time.Now()
	w.mu.Lock()
	w.n++
	name := filepath.Join(w.dir, fmt.Sprintf("%d-%04d.wav", start.UnixNano(), w.n))
	w.mu.Unlock()
	if err := WriteWAV(name, pcm); err != nil {
		return err
	}
	return Pace(ctx, start, Duration(pcm))
}

// Close does nothing.
func (*WAVDir) Close() error { return nil }

// WriteWAV writes pcm as a WAV file in the playback format.
func WriteWAV(path string, pcm []int16) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write wav: %w", err)
	}
	enc := wav.NewEncoder(f, playlists.SampleRate, playlists.BitsPerSample, playlists.Channels, 1)
	data := make([]int, len(pcm))
	for i, v := range pcm {
		data[i] = int(v)
	}
	buf := &audio.IntBuffer{
		Format:         &audio.Format{NumChannels: playlists.Channels, SampleRate: playlists.SampleRate},
		Data:           data,
		SourceBitDepth: playlists.BitsPerSample,
	}
	if err := enc.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("write wav %s: %w", path, err)
	}
	if err := enc.Close(); err != nil {
		f.Close()
		return fmt.Errorf("write wav %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write wav %s: %w", path, err)
	}
	return nil
}
