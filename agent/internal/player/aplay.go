package player

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Aplay pipes raw PCM into ALSA's aplay, one process per clip. It needs no
// cgo, so it is the output of CGO_ENABLED=0 builds and of boxes where oto
// cannot be built; it is selectable (--output aplay) in cgo builds too.
type Aplay struct {
	path   string
	device string
	mu     sync.Mutex
}

// NewAplay finds aplay on PATH. device is passed as -D when not empty.
func NewAplay(device string) (*Aplay, error) {
	path, err := exec.LookPath("aplay")
	if err != nil {
		return nil, fmt.Errorf("aplay output: %w (install alsa-utils)", err)
	}
	return &Aplay{path: path, device: device}, nil
}

// Play runs aplay on the clip and waits for it (and at least the clip's
// duration: a null ALSA device does not pace).
func (a *Aplay) Play(ctx context.Context, pcm []int16) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	args := []string{"-q", "-t", "raw", "-f", "S16_LE", "-r", strconv.Itoa(playlists.SampleRate), "-c", strconv.Itoa(playlists.Channels)}
	if a.device != "" {
		args = append(args, "-D", a.device)
	}
	args = append(args, "-")
	cmd := exec.CommandContext(ctx, a.path, args...)
	cmd.Stdin = bytes.NewReader(LE16(pcm))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("aplay: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return Pace(ctx, start, Duration(pcm))
}

// Close does nothing: no process outlives Play.
func (*Aplay) Close() error { return nil }
