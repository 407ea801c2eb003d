package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// footprint measures the agent: its stripped binary size, with and
// without cgo, and one real agent process (--output null) idle and while
// playing: resident memory and CPU.
func (b *bench) footprint(ctx context.Context) error {
	if b.o.Sizes {
		b.binarySizes(ctx)
	}
	e, err := b.startEnv(ctx, "footprint")
	if err != nil {
		return err
	}
	defer e.close()
	const village = "990300001001"
	pcm, err := tone(b.o.Play)
	if err != nil {
		return err
	}
	clip, err := e.client.UploadAudio(ctx, "footprint.wav", "footprint", WAV(pcm))
	if err != nil {
		return fmt.Errorf("upload clip: %w", err)
	}
	a, err := b.realAgent(ctx, e, village, "null", nil)
	if err != nil {
		return err
	}
	defer a.stop()
	pid := a.cmd.Process.Pid
	time.Sleep(2 * time.Second) // past the start-up work
	b.progress("footprint: agent idle for %s", b.o.Idle)
	idleCPU, idleRSS, err := watch(ctx, pid, b.o.Idle)
	if err != nil {
		return err
	}
	cs := "1 agent, --output null"
	b.report.Add(Row{Phase: "footprint", Case: cs, Metric: fmt.Sprintf("agent idle %s: CPU, max RSS", b.o.Idle), Value: fmt.Sprintf("%.2f%%, %s", idleCPU, mb(idleRSS))})

	br, err := e.client.CreateBroadcast(ctx, api.BroadcastRequest{
		AudioID: clip.ID, Targets: playlists.Targets{Villages: []string{village}}, Priority: playlists.Emergency,
		Severity: 1, EventType: benchEventType, ExpiresAt: client.ExpiresAt(time.Now().Add(10 * time.Minute)),
	})
	if err != nil {
		return fmt.Errorf("broadcast to the agent: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for started := false; !started; {
		evs, err := e.ctl.Store.BroadcastEvents(ctx, br.ID, false)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			started = started || ev.Type == api.EventStarted
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent did not start the broadcast within 60 s; see %s", a.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	playFor := b.o.Play - 500*time.Millisecond
	b.progress("footprint: agent playing for %s", playFor)
	playCPU, playRSS, err := watch(ctx, pid, playFor)
	if err != nil {
		return err
	}
	b.report.Add(Row{Phase: "footprint", Case: cs, Metric: fmt.Sprintf("agent playing %s: CPU, max RSS", playFor), Value: fmt.Sprintf("%.2f%%, %s", playCPU, mb(playRSS))})
	return nil
}

// watch samples a process's RSS every 500 ms for d and returns its CPU use
// over d (percent of one core) and the largest RSS seen.
func watch(ctx context.Context, pid int, d time.Duration) (cpu float64, maxRSS int64, err error) {
	t0, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	for time.Since(start) < d {
		r, err := rss(pid)
		if err != nil {
			return 0, 0, err
		}
		maxRSS = max(maxRSS, r)
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(min(500*time.Millisecond, d-time.Since(start))):
		}
	}
	t1, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	wall := time.Since(start)
	return 100 * float64(t1-t0) / clockTick / wall.Seconds(), maxRSS, nil
}

// binarySizes builds the agent stripped, with and without cgo, and
// reports the sizes; without the Go toolchain it says so.
func (b *bench) binarySizes(ctx context.Context) {
	root, err := moduleRoot(ctx)
	if err != nil {
		b.report.Skip("footprint", "agent binary size: "+err.Error())
		return
	}
	for _, cgo := range []string{"1", "0"} {
		bin := filepath.Join(b.tmp, "agent-stripped-cgo"+cgo)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./agent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		metric := "agent binary, stripped (-ldflags='-s -w'), CGO_ENABLED=" + cgo
		if out, err := cmd.CombinedOutput(); err != nil {
			b.report.Add(Row{Phase: "footprint", Metric: metric, Value: "build failed: " + oneLine(string(out))})
			continue
		}
		fi, err := os.Stat(bin)
		if err != nil {
			continue
		}
		b.report.Add(Row{Phase: "footprint", Metric: metric, Value: mb(fi.Size())})
	}
}
