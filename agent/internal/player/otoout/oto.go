//go:build cgo

// Package otoout is the player's sound-card output through
// github.com/hajimehoshi/oto/v2. It is the one cgo package of the agent
// (oto links ALSA's libasound), kept out of package player so that only
// the agent's main links it: the controller's demo boxes and the fleet
// simulator run the agent's real code on the null and WAV outputs, and
// build with CGO_ENABLED=0 on a server with no ALSA headers. Without cgo
// this package still builds and Open says why oto is missing.
package otoout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/hajimehoshi/oto/v2"
)

// DefaultOutput is the output a cgo build uses unless told otherwise.
const DefaultOutput = "oto"

// oto supports one context per process (a second one silently opens a
// second PCM and corrupts output), at one fixed rate and channel count, so
// the context is process-wide and opened once, whoever asks.
var (
	otoOnce sync.Once
	otoCtx  *oto.Context
	otoErr  error
	otoMu   sync.Mutex // one clip at a time through the one context
)

func sharedOto() (*oto.Context, error) {
	otoOnce.Do(func() {
		c, ready, err := oto.NewContext(playlists.SampleRate, playlists.Channels, oto.FormatSignedInt16LE)
		if err != nil {
			otoErr = fmt.Errorf("oto output: %w", err)
			return
		}
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			otoErr = errors.New("oto output: audio device not ready after 10 s")
			return
		}
		// With no device NewContext succeeds; the failure shows only here.
		if err := c.Err(); err != nil {
			otoErr = fmt.Errorf("oto output: no usable audio device: %w", err)
			return
		}
		// An idle context writes silence as fast as the device takes it.
		if err := c.Suspend(); err != nil {
			otoErr = fmt.Errorf("oto output: %w", err)
			return
		}
		otoCtx = c
	})
	return otoCtx, otoErr
}

// Oto plays through the process's one oto context.
type Oto struct {
	ctx *oto.Context
}

// NewOto opens (once per process) the default audio device.
func NewOto() (*Oto, error) {
	c, err := sharedOto()
	if err != nil {
		return nil, err
	}
	return &Oto{ctx: c}, nil
}

// Open is player.Options.Oto: the agent's main passes it to player.Open.
func Open(player.Options) (player.Output, error) { return NewOto() }

// Play resumes the context, plays the clip through a player whose buffer
// holds the whole clip (smaller buffers drop samples on unpaced devices),
// waits until it has been handed to the device and at least its duration
// has passed, and suspends the context again.
func (o *Oto) Play(ctx context.Context, pcm []int16) error {
	otoMu.Lock()
	defer otoMu.Unlock()
	if err := o.ctx.Resume(); err != nil {
		return fmt.Errorf("oto: resume: %w", err)
	}
	suspended := false
	suspend := func() {
		if !suspended {
			suspended = true
			o.ctx.Suspend()
		}
	}
	defer suspend()
	start := time.Now()
	data := player.LE16(pcm)
	p := o.ctx.NewPlayer(bytes.NewReader(data))
	defer p.Close()
	if bs, ok := p.(oto.BufferSizeSetter); ok {
		bs.SetBufferSize(len(data))
	}
	p.Play()
	// oto has no completion callback: watch the player.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.IsPlaying() {
		select {
		case <-ctx.Done():
			p.Pause()
			return ctx.Err()
		case <-tick.C:
		}
		if err := p.Err(); err != nil {
			return fmt.Errorf("oto: %w", err)
		}
		if err := o.ctx.Err(); err != nil {
			return fmt.Errorf("oto: device: %w", err)
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("oto: %w", err)
	}
	// Everything is with the device (Suspend waits for the write under
	// way): stop feeding it silence while the tail sounds.
	suspend()
	return player.Pace(ctx, start, player.Duration(pcm))
}

// Close leaves the process's context open: oto cannot close and reopen it.
func (*Oto) Close() error { return nil }
