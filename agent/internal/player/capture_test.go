package player_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/agent/internal/player/otoout"
	"github.com/cunxiang/cunxiang/playlists"
)

const (
	childEnv  = "CX_PLAYER_CHILD"  // output name the helper process plays through
	clipEnv   = "CX_PLAYER_CLIP"   // raw S16LE clip the helper plays
	otoDevEnv = "CX_PLAYER_DEVICE" // aplay -D device, for the aplay helper
)

// child plays the clip named in the environment through the output named
// there, and exits.
func child() int {
	raw, err := os.ReadFile(os.Getenv(clipEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	out, err := player.Open(os.Getenv(childEnv), player.Options{ALSADevice: os.Getenv(otoDevEnv), Oto: otoout.Open})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := out.Play(ctx, pcm); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// alsaFileConf makes ALSA's default device write everything played to
// $ALSA_CAPTURE_FILE, over a null device (there is no sound card here).
const alsaFileConf = `pcm.!default {
    type file
    slave.pcm "null"
    file { @func getenv  vars [ ALSA_CAPTURE_FILE ]  default "/tmp/capture.raw" }
    format "raw"
    perm 0644
}
`

// testClip is half a second of sweep with noise and full-scale extremes.
func testClip() []int16 {
	n := playlists.SampleRate / 2
	pcm := make([]int16, n)
	x := uint32(2463534242)
	for i := range pcm {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f := 200 + 2000*float64(i)/float64(n)
		pcm[i] = int16(20000*math.Sin(2*math.Pi*f*float64(i)/playlists.SampleRate)) + int16(x%4001) - 2000
	}
	pcm[100], pcm[101], pcm[102] = math.MaxInt16, math.MinInt16, 1
	return pcm
}

// playCaptured runs the helper process with the named output and returns
// the raw bytes the ALSA file plugin captured.
func playCaptured(t *testing.T, output string, pcm []int16) []byte {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "asound.conf")
	capture := filepath.Join(dir, "capture.raw")
	clip := filepath.Join(dir, "clip.raw")
	if err := os.WriteFile(conf, []byte(alsaFileConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clip, player.LE16(pcm), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childEnv+"="+output, clipEnv+"="+clip,
		"ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:"+conf,
		"ALSA_CAPTURE_FILE="+capture)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper playing through %s: %v\n%s", output, err, out)
	}
	raw, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestAplayCaptureIsBitExact(t *testing.T) {
	if _, err := exec.LookPath("aplay"); err != nil {
		t.Skip("aplay not installed (alsa-utils)")
	}
	pcm := testClip()
	raw := playCaptured(t, "aplay", pcm)
	got := make([]int16, len(raw)/2)
	for i := range got {
		got[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	at := find(got, pcm, func(a, b int16) bool { return a == b })
	if at < 0 {
		t.Fatalf("clip not found in %d captured samples", len(got))
	}
}

// find returns where want occurs in got (after leading silence), or -1.
func find[T any](got []T, want []int16, eq func(T, int16) bool) int {
	for off := 0; off+len(want) <= len(got); off++ {
		ok := true
		for i := range want {
			if !eq(got[off+i], want[i]) {
				ok = false
				break
			}
		}
		if ok {
			return off
		}
	}
	return -1
}

func TestNullAndWAVDirTakeTheClipsDuration(t *testing.T) {
	pcm := make([]int16, playlists.SampleRate/10) // 100 ms
	dir := t.TempDir()
	w, err := player.NewWAVDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []player.Output{player.NewNull(), w} {
		start := time.Now()
		if err := out.Play(t.Context(), pcm); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("%T returned after %s, before the clip's 100 ms", out, d)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
	if len(files) != 1 {
		t.Fatalf("wav files %v", files)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := player.NewNull().Play(ctx, pcm); err == nil {
		t.Fatal("cancelled play returned nil")
	}
}

func TestOpenNames(t *testing.T) {
	for _, bad := range []string{"", "speaker", "wav:"} {
		if _, err := player.Open(bad, player.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	// Without Options.Oto (every program but the agent's main) oto is
	// refused with a reason, not a crash.
	if _, err := player.Open("oto", player.Options{}); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("Open(oto) without Options.Oto: %v", err)
	}
}
