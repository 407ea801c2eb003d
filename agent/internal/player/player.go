// Package player turns clips into sound. Every output takes PCM in the one
// playback format (playlists.SampleRate Hz, mono, signed 16-bit) and
// returns from Play no earlier than the clip's duration after it began, so
// the planner's idea of "busy" matches what the village hears even on
// outputs that do not pace themselves.
//
// Outputs, chosen by name (Open):
//
//	oto      the sound card through github.com/hajimehoshi/oto/v2, when the
//	         program links it (Options.Oto: package otoout, which only the
//	         agent's main imports, so that the controller's demo boxes and
//	         fleets, which run this package, need no cgo and no ALSA)
//	aplay    raw PCM piped to ALSA's aplay; works in CGO_ENABLED=0 builds
//	null     discards the sound, paced in real time (tests, fleets)
//	wav:DIR  writes each played clip to DIR as a WAV file, paced in real time
package player

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Output plays one clip at a time.
type Output interface {
	Play(ctx context.Context, pcm []int16) error
	Close() error
}

// Options configures Open.
type Options struct {
	ALSADevice string // aplay's -D device; empty for ALSA's default
	Logger     *slog.Logger
	// Oto opens the sound card through oto (otoout.Open). Nil in programs
	// that do not link oto: there, output oto is refused.
	Oto func(Options) (Output, error)
}

// Open returns the output named by spec: "oto", "aplay", "null" or "wav:DIR".
func Open(spec string, o Options) (Output, error) {
	switch {
	case spec == "oto":
		if o.Oto == nil {
			return nil, errors.New("output oto is not available in this program; use aplay, null or wav:DIR")
		}
		return o.Oto(o)
	case spec == "aplay":
		return NewAplay(o.ALSADevice)
	case spec == "null":
		return NewNull(), nil
	case strings.HasPrefix(spec, "wav:"):
		return NewWAVDir(strings.TrimPrefix(spec, "wav:"))
	case spec == "":
		return nil, errors.New("no output given (oto, aplay, null or wav:DIR)")
	}
	return nil, fmt.Errorf("unknown output %q (oto, aplay, null or wav:DIR)", spec)
}

// Duration is how long pcm sounds at the playback rate.
func Duration(pcm []int16) time.Duration {
	return time.Duration(len(pcm)) * time.Second / playlists.SampleRate
}

// Pace waits until d has passed since start, or ctx ends: outputs that
// do not pace themselves (a null ALSA device plays at once) call it last.
func Pace(ctx context.Context, start time.Time, d time.Duration) error {
	left := d - time.Since(start)
	if left <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// LE16 is pcm as little-endian bytes.
func LE16(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// Null discards sound, taking the clip's duration.
type Null struct{}

// NewNull returns the silent output.
func NewNull() *Null { return &Null{} }

// Play waits the clip's duration.
func (*Null) Play(ctx context.Context, pcm []int16) error {
	return Pace(ctx, time.Now(), Duration(pcm))
}

// Close does nothing.
func (*Null) Close() error { return nil }
