package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// fleets runs, for each box count, a fresh controller with that many
// simulated boxes (`agent sim` in a child process): the broker's memory
// per box, the baseline fan-out, the emergency fan-out, and at the largest
// count the ontime and storm phases.
func (b *bench) fleets(ctx context.Context) error {
	ns := b.o.N
	if !b.o.Phases["fanout"] {
		ns = ns[len(ns)-1:]
	}
	for i, n := range ns {
		last := i == len(ns)-1
		if err := b.fleet(ctx, n, last); err != nil {
			return fmt.Errorf("%d boxes: %w", n, err)
		}
	}
	return nil
}

func (b *bench) fleet(ctx context.Context, n int, last bool) error {
	e, err := b.startEnv(ctx, fmt.Sprintf("fleet-%d", n))
	if err != nil {
		return err
	}
	defer e.close()
	cs := fmt.Sprintf("N=%d", n)

	var base stats
	if b.o.Phases["fanout"] {
		b.progress("%s: baseline: %d plain MQTT subscribers", cs, n)
		if base, err = b.baselineFanout(ctx, e, n); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}

	// The broker's memory per connected box: this process before and
	// after the boxes connect (the boxes live in the sim's process).
	heap0, rss0, gor0 := memNow()
	b.progress("%s: starting %d simulated boxes", cs, n)
	sim, err := b.startSim(ctx, e, n)
	if err != nil {
		return err
	}
	defer sim.stop()
	time.Sleep(3 * time.Second) // let the enrollment garbage go
	heap1, rss1, gor1 := memNow()
	b.report.Add(Row{Phase: "footprint", Case: cs, Metric: "controller+broker heap per connected box",
		Value: fmt.Sprintf("%.1f KB", float64(heap1-heap0)/float64(n)/1024)})
	b.report.Add(Row{Phase: "footprint", Case: cs, Metric: "controller+broker RSS per connected box",
		Value: fmt.Sprintf("%.1f KB", float64(rss1-rss0)/float64(n)/1024)})
	b.report.Add(Row{Phase: "footprint", Case: cs, Metric: "goroutines per connected box",
		Value: fmt.Sprintf("%.1f", float64(gor1-gor0)/float64(n))})
	if last && b.o.MemProfile != "" {
		if err := writeHeapProfile(b.o.MemProfile); err != nil {
			return err
		}
	}

	if b.o.Phases["fanout"] {
		if err := b.fanout(ctx, e, n, base, sim); err != nil {
			return err
		}
	}
	if last && b.o.Phases["ontime"] {
		b.phase("ontime", func() error { return b.ontime(ctx, e, n) })
	}
	if last && b.o.Phases["storm"] {
		b.phase("storm", func() error { return b.storm(ctx, e, n) })
	}
	return nil
}

// boxesPerSim bounds the boxes of one `agent sim` process: each box holds
// a socket and its own files open, and the hard limit here is 20,000
// descriptors a process.
const boxesPerSim = 4000

// sims are the `agent sim` processes of one fleet.
type sims []*child

func (s sims) stop() {
	for _, c := range s {
		c.stop()
	}
}

// startSim runs n boxes in `agent sim` processes of at most boxesPerSim
// each, and waits until all are connected.
func (b *bench) startSim(ctx context.Context, e *env, n int) (sims, error) {
	tok, err := e.writeToken()
	if err != nil {
		return nil, err
	}
	var all sims
	for first := 0; first < n; first += boxesPerSim {
		part := min(boxesPerSim, n-first)
		name := fmt.Sprintf("agent sim %d-%d", first+1, first+part)
		args := []string{
			"sim", "-n", strconv.Itoa(part), "--first", strconv.Itoa(first), "--import",
			"--controller", e.ctl.HTTPURL, "--token-file", tok,
			"--data", filepath.Join(b.boxDir, e.name), "--ready-line", "--log-level", "error",
		}
		if b.o.CPUProfile != "" {
			// Each sim process profiles itself beside the controller's.
			args = append(args, "--cpuprofile", fmt.Sprintf("%s.%s-sim-%d", b.o.CPUProfile, e.name, first/boxesPerSim+1))
		}
		sim, err := b.startChild(name, b.agentBin, args, nil, filepath.Join(e.dir, fmt.Sprintf("sim-%d.log", first/boxesPerSim+1)))
		if err != nil {
			all.stop()
			return nil, err
		}
		all = append(all, sim)
	}
	for _, sim := range all {
		if _, err := sim.wait(ctx, "READY ", 2*time.Minute+time.Duration(n)*40*time.Millisecond); err != nil {
			all.stop()
			return nil, err
		}
	}
	return all, nil
}

// baselineFanout publishes Iterations QoS 1 messages to a topic n plain
// subscribers (in a child process) listen on, on the same broker.
func (b *bench) baselineFanout(ctx context.Context, e *env, n int) (stats, error) {
	const topic = "bench/baseline"
	sub, err := b.startChild("subscribers", b.self, []string{
		SubscribersCommand, "-broker", e.brokerURL, "-user", e.user, "-n", strconv.Itoa(n),
		"-topic", topic, "-count", strconv.Itoa(b.o.Iterations), "-timeout", "60s",
	}, []string{subscribersPasswordEnv + "=" + e.pass}, filepath.Join(e.dir, "subscribers.log"))
	if err != nil {
		return stats{}, err
	}
	defer sub.stop()
	if _, err := sub.wait(ctx, "READY ", 2*time.Minute+time.Duration(n)*20*time.Millisecond); err != nil {
		return stats{}, err
	}
	pub, err := e.serviceClient("bench-publisher")
	if err != nil {
		return stats{}, err
	}
	defer pub.Disconnect(100)
	var per []stats
	for i := range b.o.Iterations {
		time.Sleep(500 * time.Millisecond)
		payload := fmt.Sprintf("%d %d", i, time.Now().UnixNano())
		if err := wait(pub.Publish(topic, 1, false, payload), 30*time.Second, "publish"); err != nil {
			return stats{}, err
		}
		line, err := sub.wait(ctx, "RESULT ", 90*time.Second)
		if err != nil {
			return stats{}, err
		}
		var idx, got int
		var p50, p99, mx int64
		if _, err := fmt.Sscanf(line, "RESULT %d %d %d %d %d", &idx, &got, &p50, &p99, &mx); err != nil {
			return stats{}, fmt.Errorf("subscribers said %q: %w", line, err)
		}
		if got != n {
			return stats{}, fmt.Errorf("message %d reached %d of %d subscribers within 60 s", idx, got, n)
		}
		per = append(per, stats{N: got, P50: time.Duration(p50), P99: time.Duration(p99), Max: time.Duration(mx)})
	}
	return combine(per), nil
}

// combine merges per-message quantiles: the median p50, the largest p99
// and the largest max.
func combine(per []stats) stats {
	var out stats
	p50s := make([]time.Duration, len(per))
	for i, s := range per {
		out.N += s.N
		p50s[i] = s.P50
		out.P99 = max(out.P99, s.P99)
		out.Max = max(out.Max, s.Max)
	}
	slices.Sort(p50s)
	if len(p50s) > 0 {
		out.P50 = p50s[len(p50s)/2]
	}
	return out
}

// fanout sends Iterations county-wide emergency broadcasts and measures,
// for every box, the time from the API accepting each one to the
// controller receiving the box's `started` report (and to the moment the
// box says it started sounding, on its controller-corrected clock).
func (b *bench) fanout(ctx context.Context, e *env, n int, base stats, fleet sims) error {
	cs := fmt.Sprintf("N=%d", n)
	pcm, err := tone(500 * time.Millisecond)
	if err != nil {
		return err
	}
	clip, err := e.client.UploadAudio(ctx, "bench.wav", "bench", WAV(pcm))
	if err != nil {
		return fmt.Errorf("upload clip: %w", err)
	}
	// Boxes download a clip when they first need it: a first broadcast
	// warms every cache so the iterations measure delivery, not download.
	b.progress("%s: warm-up broadcast (every box downloads the clip)", cs)
	warm, _, err := b.emergency(ctx, e, clip.ID)
	if err != nil {
		return err
	}
	r, _, err := b.waitStarted(ctx, e, warm.ID, time.Time{}, n, 2*time.Minute+time.Duration(n)*20*time.Millisecond)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if len(r) < n/2 {
		return fmt.Errorf("warm-up: only %d of %d boxes started the broadcast; see the sim logs in %s", len(r), n, e.dir)
	}
	// A box that did not start the warm-up (it lost its connection and
	// has not come back) cannot start the next ones either: measure the
	// boxes that did, and say how many did not.
	if len(r) < n {
		b.report.Add(Row{Phase: "fanout", Case: cs, Metric: "boxes that did not start the warm-up broadcast (left out)",
			Value: fmt.Sprintf("%d of %d; see the sim logs", n-len(r), n), Target: "0", Met: "NO"})
	}
	n = len(r)
	b.settle(ctx, e, warm.ID, n)

	// What the fleet and the controller cost with nothing happening, so
	// that the per-broadcast figures below can be read against it.
	idleFor := 10 * time.Second
	if b.o.Quick {
		idleFor = 2 * time.Second
	}
	i0, t0 := fleet.cpu(), time.Now()
	if !sleepCtx(ctx, idleFor) {
		return ctx.Err()
	}
	idle, secs := fleet.cpu().sub(i0), time.Since(t0).Seconds()
	b.report.Add(Row{Phase: "fanout", Case: cs, Metric: "CPU while idle, all boxes connected: boxes / controller+broker (% of one core)",
		Value: fmt.Sprintf("%.1f %% / %.1f %%", 100*float64(idle.boxes)/clockTick/secs, 100*float64(idle.controller)/clockTick/secs)})

	// Per broadcast quantiles, combined as the baseline's are (median
	// p50, largest p99, largest max), so the two compare like for like.
	var report, sound []stats
	var toStart, cycle cpuSplit // summed over the broadcasts
	missed := 0
	for i := range b.o.Iterations {
		c0 := fleet.cpu()
		br, accepted, err := b.emergency(ctx, e, clip.ID)
		if err != nil {
			return err
		}
		r, s, err := b.waitStarted(ctx, e, br.ID, accepted, n, 60*time.Second)
		if err != nil {
			return fmt.Errorf("broadcast %d: %w", i+1, err)
		}
		c1 := fleet.cpu()
		if len(r) < n {
			missed += n - len(r)
		}
		report, sound = append(report, quantiles(r)), append(sound, quantiles(s))
		b.progress("%s: broadcast %d: started report p50/p99/max %s", cs, i+1, quantiles(r))
		b.settle(ctx, e, br.ID, n)
		c2 := fleet.cpu()
		toStart, cycle = toStart.add(c1.sub(c0)), cycle.add(c2.sub(c0))
	}
	rq, sq := combine(report), combine(sound)
	if missed > 0 {
		b.report.Add(Row{Phase: "fanout", Case: cs, Metric: "started reports missing 60 s after a broadcast",
			Value: fmt.Sprintf("%d of %d", missed, n*b.o.Iterations), Target: "0", Met: "NO"})
	}
	row := Row{Phase: "fanout", Case: cs, Metric: "API accept → started report stored, p50/p99/max", Value: rq.String()}
	if base.N > 0 {
		row.Baseline = base.String() + " (1 QoS1 msg → N subscribers)"
		row.Ratio = ratio(float64(rq.P99), float64(base.P99)) + " p99, " + ratio(float64(rq.Max), float64(base.Max)) + " max"
		row.Target = "p99 ratio ≤ 1.3"
		row.Met = yesNo(float64(rq.P99) <= 1.3*float64(base.P99))
	}
	b.report.Add(row)
	srow := Row{Phase: "fanout", Case: cs, Metric: "API accept → box starts sounding (box clock), p50/p99/max", Value: sq.String()}
	if n >= 10000 {
		srow.Target, srow.Met = "max ≤ 1 s at 10,000", yesNo(sq.Max <= time.Second)
	}
	b.report.Add(srow)
	d := e.dropped()
	b.report.Add(Row{Phase: "fanout", Case: cs, Metric: "messages the broker dropped (warm-up and broadcasts)", Value: d, Target: "0", Met: yesNo(d == "0")})
	per := float64(n * b.o.Iterations)
	b.report.Add(Row{Phase: "fanout", Case: cs, Metric: "CPU per box per broadcast until all reported started: boxes / controller+broker",
		Value: toStart.perBox(per)})
	b.report.Add(Row{Phase: "fanout", Case: cs, Metric: "CPU per box per broadcast, whole cycle (to finished, cancel and acks): boxes / controller+broker",
		Value: cycle.perBox(per)})
	return nil
}

// cpuSplit is CPU time used by the simulated boxes and by this process
// (the controller and the embedded broker), in clock ticks.
type cpuSplit struct{ boxes, controller int64 }

func (c cpuSplit) add(d cpuSplit) cpuSplit {
	return cpuSplit{c.boxes + d.boxes, c.controller + d.controller}
}

func (c cpuSplit) sub(d cpuSplit) cpuSplit {
	return cpuSplit{c.boxes - d.boxes, c.controller - d.controller}
}

// perBox formats the split per box and broadcast, in ms.
func (c cpuSplit) perBox(n float64) string {
	ms := func(ticks int64) float64 { return float64(ticks) * 1000 / clockTick / n }
	return fmt.Sprintf("%.2f ms / %.2f ms", ms(c.boxes), ms(c.controller))
}

// cpu is the CPU time the sim processes and this process have used.
func (s sims) cpu() cpuSplit {
	var c cpuSplit
	for _, ch := range s {
		if t, err := cpuTicks(ch.cmd.Process.Pid); err == nil {
			c.boxes += t
		}
	}
	if t, err := cpuTicks(os.Getpid()); err == nil {
		c.controller = t
	}
	return c
}

// emergency sends a county-wide emergency broadcast of the clip and
// returns it with the moment it was sent: the request's start. (Since the
// outbox, the answer waits until the broker has the commands, so the
// request's midpoint, used before, would hide half the publishing.)
func (b *bench) emergency(ctx context.Context, e *env, audioID int64) (api.Broadcast, time.Time, error) {
	t0 := time.Now()
	br, err := e.client.CreateBroadcast(ctx, api.BroadcastRequest{
		AudioID: audioID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: benchEventType, ExpiresAt: client.ExpiresAt(time.Now().Add(10 * time.Minute)),
	})
	accepted := t0
	if err != nil {
		return br, accepted, fmt.Errorf("emergency broadcast: %w", err)
	}
	if strings.Contains(br.State, "approval") || br.State == "pending" {
		return br, accepted, fmt.Errorf("the emergency broadcast waits for approval (state %q)", br.State)
	}
	return br, accepted, nil
}

// waitStarted waits until n villages have reported started for the
// broadcast, or within has passed, and returns, per village that did,
// when the controller received the report and when the box says it
// started, both after accepted.
func (b *bench) waitStarted(ctx context.Context, e *env, id int64, accepted time.Time, n int, within time.Duration) (report, sound []time.Duration, err error) {
	deadline := time.Now().Add(within)
	for {
		// The times come from the stored reports, so polling slowly costs
		// no precision.
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		got, err := e.count(ctx, `SELECT COUNT(DISTINCT village) FROM events WHERE broadcast_id = $1 AND type = $2`, id, api.EventStarted)
		if err != nil {
			return nil, nil, err
		}
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			b.progress("only %d of %d boxes reported started within %s", got, n, within)
			break
		}
	}
	evs, err := e.ctl.Store.BroadcastEvents(ctx, id, false)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == api.EventStarted && !seen[ev.Village] {
			seen[ev.Village] = true
			report = append(report, ev.ReceivedAt.Sub(accepted))
			sound = append(sound, ev.At.Sub(accepted))
		}
	}
	return report, sound, nil
}

// settle cancels a broadcast and waits until every box has reported it
// over, then until the fleet is idle again (see quiet), so that the next
// one is neither queued behind it nor slowed by its aftermath.
func (b *bench) settle(ctx context.Context, e *env, id int64, n int) {
	b.over(ctx, e, id, n)
	b.quiet(ctx, e, n)
}

// quiet waits until what the last broadcast set off is done: every box
// has verified and journaled its cancellation (most had finished it, and
// say nothing) and taken the signed acks of its reports, and no report
// has been stored for two seconds. The next broadcast then starts from an
// idle fleet, as each of the baseline's messages starts from idle
// subscribers.
func (b *bench) quiet(ctx context.Context, e *env, n int) {
	// Verifying a signature and syncing a journal take each simulated
	// box well under 0.5 ms of this machine's CPU.
	if !sleepCtx(ctx, max(2*time.Second, time.Duration(n)*500*time.Microsecond)) {
		return
	}
	last := -1
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		got, err := e.count(ctx, `SELECT COUNT(*) FROM events`)
		if err != nil {
			b.log.Warn("count events", "err", err)
			return
		}
		if got == last {
			return
		}
		last = got
		if !sleepCtx(ctx, 2*time.Second) {
			return
		}
	}
	b.log.Warn("boxes still reporting 60 s after a broadcast")
}

// sleepCtx sleeps for d, or until ctx ends; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// over cancels a broadcast and waits until every box has reported it
// over (finished, cancelled, ...).
func (b *bench) over(ctx context.Context, e *env, id int64, n int) {
	if _, err := e.client.CancelBroadcast(ctx, id); err != nil {
		b.log.Warn("cancel broadcast", "broadcast", id, "err", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		over, err := e.count(ctx, `SELECT COUNT(DISTINCT village) FROM events WHERE broadcast_id = $1 AND type IN ($2, $3, $4, $5, $6)`,
			id, api.EventFinished, api.EventCancelled, api.EventExpired, api.EventFailed, api.EventPartial)
		if err != nil {
			b.log.Warn("broadcast events", "err", err)
			return
		}
		if over >= n {
			return
		}
		time.Sleep(time.Second)
	}
	b.log.Warn("boxes not done with a broadcast after 60 s", "broadcast", id)
}

// memNow is this process's live heap (after a collection), RSS and
// goroutine count.
func memNow() (heap, rssBytes int64, goroutines int) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r, _ := rss(0)
	return int64(m.HeapInuse + m.StackInuse), r, runtime.NumGoroutine()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	return nil
}
