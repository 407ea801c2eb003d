package main

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/bench"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// The tests in this file run the real binaries as separate processes: the
// agent playing through oto into ALSA's file plugin, and the controller
// killed with SIGKILL in the middle of an announcement.

var (
	buildDirOnce sync.Once
	buildRoot    string // the module root
	buildDir     string
	buildDirErr  error

	buildsMu sync.Mutex
	builds   = map[string]*build{} // by output file name
)

// build is one binary built (or being built) for this test process.
type build struct {
	once sync.Once
	path string
	err  error
}

// binaries builds the agent and the controller once per test binary and
// returns their paths.
func binaries(tb testing.TB) (agent, controller string) {
	tb.Helper()
	return built(tb, "agent", ""), built(tb, "controller", "")
}

// built builds ./name with the build tags given (comma-separated, ""
// for none) once per test binary and returns its path. The directory
// outlives the tests that share it (no TestMain here to remove it); its
// name carries the test process's pid, so the next run removes it once
// that process is gone.
func built(tb testing.TB, name, tags string) string {
	tb.Helper()
	buildDirOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			buildDirErr = fmt.Errorf("find the module root: %v (GOMOD=%q)", err, gomod)
			return
		}
		buildRoot = filepath.Dir(gomod)
		removeStaleBuilds()
		buildDir, buildDirErr = os.MkdirTemp("", fmt.Sprintf("%s%d-", buildPrefix, os.Getpid()))
	})
	if buildDirErr != nil {
		tb.Fatal(buildDirErr)
	}
	file := name
	if tags != "" {
		file += "-" + strings.ReplaceAll(tags, ",", "-")
	}
	buildsMu.Lock()
	b := builds[file]
	if b == nil {
		b = &build{path: filepath.Join(buildDir, file)}
		builds[file] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		cmd := exec.Command("go", "build", "-tags", tags, "-o", b.path, "./"+name)
		cmd.Dir = buildRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %q ./%s: %v\n%s", tags, name, err, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

const buildPrefix = "cunxiang-process-test-"

// removeStaleBuilds removes the build directories of test processes that
// have exited (or, should a pid have been reused, that are a day old).
func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildPrefix+"*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), buildPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			continue
		}
		gone := syscall.Kill(pid, 0) == syscall.ESRCH
		if fi, err := os.Stat(d); err == nil && (gone || time.Since(fi.ModTime()) > 24*time.Hour) {
			os.RemoveAll(d)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a child process to listen on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln := listen(tb)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proc is a child process whose stdout and stderr go to a log file, printed
// if the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait, once done is closed
}

// startProc starts bin with args, appending its output to logPath. The
// process is killed (SIGKILL) when the test ends if it still runs.
func startProc(tb testing.TB, name, bin string, args, env []string, logPath string) *proc {
	tb.Helper()
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "=== %s start %s: %s %s\n", name, time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.kill() })
	return p
}

// showLogOnFailure prints the log file at the end of a failed test. Call
// it before starting the processes writing there, so that it runs after
// their cleanups have stopped them.
func showLogOnFailure(tb testing.TB, name, path string) {
	tb.Helper()
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Logf("%s log: %v", name, err)
			return
		}
		tb.Logf("%s log (%s):\n%s", name, path, b)
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// stop sends SIGTERM and waits up to 15 s for a clean exit, then kills.
// It returns the process's exit error (nil for status 0).
func (p *proc) stop(tb testing.TB) error {
	tb.Helper()
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(15 * time.Second):
		tb.Errorf("%s did not exit 15 s after SIGTERM; killing it", p.name)
		p.kill()
		return p.err
	}
}

// testTone is a clip in the playback format (22,050 Hz mono 16-bit) at an
// integrated loudness of lufs: a 440 Hz sine under a tremolo and a fade,
// plus white noise so that it is not periodic, and a few samples of ±1.
// No sample is 0 before the first, so the clip's start is its first
// non-silent sample. It has no full-scale sample (the agent's player
// tests play those exactly): one would make the controller lower the
// clip's gain by at least 1 dB to keep headroom.
func testTone(tb testing.TB, d time.Duration, lufs float64) []int16 {
	tb.Helper()
	n := int(int64(playlists.SampleRate) * int64(d) / int64(time.Second))
	pcm := make([]int16, n)
	x := uint32(0x9e3779b9)
	for i := range pcm {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		t := float64(i) / playlists.SampleRate
		env := (0.35 + 0.65*math.Abs(math.Sin(math.Pi*t/0.37))) * (1 - 0.5*float64(i)/float64(n))
		v := 18000*env*math.Sin(2*math.Pi*440*t) + float64(int(x%3001)-1500)
		pcm[i] = int16(math.Round(v))
	}
	pcm = atLoudness(tb, pcm, lufs)
	pcm[0] = 1234
	if n > 1000 {
		pcm[500], pcm[501], pcm[502], pcm[503] = 1, -1, 1, -1
	}
	return pcm
}

// alsaCaptureConf makes ALSA's default device write what is played to
// $ALSA_CAPTURE_FILE over a null device (FIELD-NOTES, "Playing audio with
// no sound card"; the same as agent/internal/player's capture tests).
const alsaCaptureConf = `pcm.!default {
    type file
    slave.pcm "null"
    file { @func getenv  vars [ ALSA_CAPTURE_FILE ]  default "/tmp/capture.raw" }
    format "raw"
    perm 0644
}
`

// otoAgent runs the real agent binary for village, playing through oto
// into ALSA's file plugin; it returns the process and the capture file.
func otoAgent(tb testing.TB, bin string, h *controllerHarness, village string) (*proc, string) {
	tb.Helper()
	enroll, err := h.Client.Enroll(tb.Context(), village)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	conf := filepath.Join(dir, "asound.conf")
	capture := filepath.Join(dir, "capture.raw")
	if err := os.WriteFile(conf, []byte(alsaCaptureConf), 0o644); err != nil {
		tb.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	showLogOnFailure(tb, "agent "+village, logPath)
	p := startProc(tb, "agent "+village, bin, []string{
		"--village", village, "--controller", h.HTTPURL, "--broker", h.BrokerURL,
		"--data", filepath.Join(dir, "data"), "--enroll", enroll.Token, "--output", "oto",
	}, []string{"ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:" + conf, "ALSA_CAPTURE_FILE=" + capture}, logPath)
	return p, capture
}

// captured reads what an agent wrote to ALSA's file plugin (float32 LE);
// no file is silence.
func captured(tb testing.TB, path string) []float32 {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// TestRealAgentProcessPlaysUploadedWAVSampleExact uploads two WAVs to an
// in-process controller, schedules them for one village, and runs the real
// agent binary on oto into ALSA's file plugin. The first clip is at the
// target loudness, so its gain is inside the dead band: what reached the
// "sound card" is that clip, sample for sample, once. The second is 14 LU
// quieter: it reaches the sound card louder by its gain, at the target
// loudness too.
func TestRealAgentProcessPlaysUploadedWAVSampleExact(t *testing.T) {
	t.Parallel()
	agentBin, _ := binaries(t)
	ctx := t.Context()
	h := startController(t, harnessOptions{})

	const village, other = "110101001001", "110101001002"
	csv := "code,name,township,lat,lon,device\n" +
		village + ",东村,东镇,39.9,116.4,agent\n" +
		other + ",西村,东镇,39.91,116.41,manual\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	pcm := testTone(t, 1500*time.Millisecond, media.DefaultTargetLUFS)
	quiet := testTone(t, 1200*time.Millisecond, -30)
	lufs, peak, _ := measure(t, pcm)
	quietLUFS, quietPeak, _ := measure(t, quiet)
	if math.Abs(lufs-media.DefaultTargetLUFS) > 0.5 {
		t.Fatalf("the clip measures %.2f LUFS, not within 0.5 LU of %.0f", lufs, media.DefaultTargetLUFS)
	}
	clip, err := h.Client.UploadAudio(ctx, "tone.wav", "测试音", bench.WAV(pcm))
	if err != nil {
		t.Fatal(err)
	}
	if clip.DurationMS != 1500 {
		t.Fatalf("uploaded clip is %d ms, want 1500", clip.DurationMS)
	}
	quietClip, err := h.Client.UploadAudio(ctx, "quiet.wav", "轻声", bench.WAV(quiet))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "测试", GapMS: 500, Items: []playlists.Item{
		{AudioID: clip.ID, Repeat: 1}, {AudioID: quietClip.ID, Repeat: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The gains the box gets, as stored with the playlist's items.
	stored, err := h.Store.GetPlaylist(ctx, pl.ID)
	if err != nil {
		t.Fatal(err)
	}
	gain, quietGain := stored.Items[0].GainDB, stored.Items[1].GainDB
	if math.Abs(gain) >= 0.5 {
		t.Fatalf("the clip at %.2f LUFS has gain_db %+.2f, not inside the ±0.5 dB dead band", lufs, gain)
	}
	if quietGain < 10 {
		t.Fatalf("the clip at %.2f LUFS has gain_db %+.2f, want about +14", quietLUFS, quietGain)
	}
	at := time.Now().Add(8 * time.Second).Truncate(time.Second)
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{
		PlaylistID: pl.ID, Targets: playlists.Targets{Villages: []string{village}}, Timezone: "Asia/Shanghai", OnceAt: &at,
	})
	if err != nil {
		t.Fatal(err)
	}

	agent, capture := otoAgent(t, agentBin, h, village)

	deadline := time.Now().Add(time.Until(at) + 25*time.Second)
	var cov api.Coverage
	for {
		if agent.exited() {
			t.Fatalf("agent exited before playing: %v", agent.err)
		}
		cov, err = h.Client.Coverage(ctx, sid.ID, at)
		if err == nil && (cov.Played == 1 || cov.Failed+cov.Missed+cov.Partial > 0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("coverage did not read played by %s: %s (err %v)", deadline.Format(time.TimeOnly), summary(cov.CoverageDetail), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if cov.Targeted != 1 || cov.Played != 1 {
		t.Fatalf("coverage %s, want 1 targeted, 1 played", summary(cov.CoverageDetail))
	}
	if err := agent.stop(t); err != nil {
		t.Errorf("agent exited with %v after SIGTERM, want status 0", err)
	}

	raw, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%4 != 0 {
		t.Errorf("capture is %d bytes, not whole float32 samples", len(raw))
	}
	got := make([]float32, len(raw)/4)
	for i := range got {
		got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	first := -1
	for i, v := range got {
		if v != 0 {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("capture holds %d samples of silence and nothing else", len(got))
	}
	// pcm[0] is not 0, so the clip starts at the first non-silent sample.
	off := first
	if off+len(pcm) > len(got) {
		t.Fatalf("capture has %d samples; the clip found at %d would need %d", len(got), off, off+len(pcm))
	}
	for i, s := range pcm {
		if want := float32(s) / 32768; got[off+i] != want {
			t.Fatalf("clip sample %d (capture sample %d) is %v, want %d/32768 = %v; %d samples matched before it",
				i, off+i, got[off+i], s, want, i)
		}
	}
	// The quiet clip: next after the gap, louder by its gain.
	off2 := -1
	for i, v := range got[off+len(pcm):] {
		if v != 0 {
			off2 = off + len(pcm) + i
			break
		}
	}
	if off2 < 0 || off2+len(quiet) > len(got) {
		t.Fatalf("the quiet clip is not in the capture after the first (found at %d of %d samples)", off2, len(got))
	}
	played := make([]int16, len(quiet))
	var sumIn, sumOut float64
	for i, s := range quiet {
		v := float64(got[off2+i]) * 32768
		played[i] = int16(v)
		sumIn += float64(s) * float64(s)
		sumOut += v * v
	}
	ratio, want := math.Sqrt(sumOut/sumIn), math.Pow(10, quietGain/20)
	playedLUFS, _, err := media.Loudness(played, playlists.SampleRate)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ratio/want-1) > 0.02 {
		t.Errorf("the quiet clip played %.4f× as loud (RMS), want 10^(%+.2f/20) = %.4f within 2%%", ratio, quietGain, want)
	}
	if math.Abs(playedLUFS-media.DefaultTargetLUFS) > 0.5 {
		t.Errorf("the quiet clip played at %.2f LUFS, want within 0.5 LU of %.0f", playedLUFS, media.DefaultTargetLUFS)
	}
	tail := 0
	for _, v := range got[off2+len(quiet):] {
		if v != 0 {
			tail++
		}
	}
	if tail != 0 {
		t.Errorf("%d non-silent samples after the clips: they sounded more than once, or something else did", tail)
	}
	t.Logf("clip at %.2f LUFS (true peak %.2f dBFS), gain_db %+.2f: found at sample %d after %.3f s of silence; %d of %d samples equal int16/32768 exactly",
		lufs, peak, gain, off, float64(off)/playlists.SampleRate, len(pcm), len(pcm))
	t.Logf("quiet clip at %.2f LUFS (true peak %.2f dBFS), gain_db %+.2f: found at sample %d; RMS %.4f× the upload (10^(gain/20) = %.4f, %+.2f%%); plays at %.2f LUFS",
		quietLUFS, quietPeak, quietGain, off2, ratio, want, 100*(ratio/want-1), playedLUFS)
	t.Logf("capture: %d float32 samples (%.2f s); %d samples of silence after the clips", len(got), float64(len(got))/playlists.SampleRate, len(got)-off2-len(quiet))
}

// processController is the controller binary run as a child process with
// its embedded broker, on loopback ports and a data directory (SQLite)
// that stay the same across its restarts, as a service manager restarts
// it.
type processController struct {
	bin, data, logPath string
	httpAddr, mqttAddr string
	args               []string // more flags (an external broker, a database URL)
}

// newProcessController picks the ports and the data directory; start runs
// the controller. Its log is printed if the test fails.
func newProcessController(tb testing.TB, bin string) *processController {
	tb.Helper()
	c := &processController{bin: bin, data: tb.TempDir(), httpAddr: freeAddr(tb), mqttAddr: freeAddr(tb)}
	c.logPath = filepath.Join(tb.TempDir(), "controller.log")
	showLogOnFailure(tb, "controller", c.logPath)
	return c
}

// start runs the controller, with env added to the test's environment,
// and waits until its API answers.
func (c *processController) start(tb testing.TB, env ...string) *proc {
	tb.Helper()
	args := append([]string{"--data", c.data, "--http", c.httpAddr, "--mqtt-listen", c.mqttAddr}, c.args...)
	p := startProc(tb, "controller", c.bin, args, env, c.logPath)
	// It writes admin.token before it listens; once the API answers with
	// that token, everything is up.
	waitFor(tb, 20*time.Second, "controller to answer", func() bool {
		if p.exited() {
			tb.Fatalf("controller exited: %v", p.err)
		}
		tok, err := c.adminToken()
		if err != nil {
			return false
		}
		_, err = (&client.Client{URL: "http://" + c.httpAddr, Token: tok}).Villages(tb.Context())
		return err == nil
	})
	return p
}

func (c *processController) adminToken() (string, error) {
	tok, err := os.ReadFile(filepath.Join(c.data, "admin.token"))
	return strings.TrimSpace(string(tok)), err
}

// harness is the started controller as the in-process tests see one: its
// URLs and an admin client. It has no Store: the process owns the
// database (dbPath, once it has stopped).
func (c *processController) harness(tb testing.TB) *controllerHarness {
	tb.Helper()
	tok, err := c.adminToken()
	if err != nil {
		tb.Fatal(err)
	}
	h := &controllerHarness{
		Running: &Running{HTTPURL: "http://" + c.httpAddr, BrokerURL: "tcp://" + c.mqttAddr, AdminToken: tok},
		Prefix:  api.DefaultPrefix,
	}
	h.Client = &client.Client{URL: h.HTTPURL, Token: h.AdminToken}
	return h
}

// dbPath is the controller's SQLite file.
func (c *processController) dbPath() string { return filepath.Join(c.data, "cunxiang.db") }

// TestControllerKill9LosesNoReport SIGKILLs the controller binary (and
// its embedded broker with it) while 79 boxes are reporting an
// occurrence, restarts it on the same ports and data, and expects full
// coverage with every report stored exactly once.
func TestControllerKill9LosesNoReport(t *testing.T) {
	t.Parallel()
	_, ctrlBin := binaries(t)
	ctx := t.Context()
	pc := newProcessController(t, ctrlBin)
	start := func() *proc { return pc.start(t) }
	ctrl := start()
	h := pc.harness(t)
	fl := h.county(t, h.BrokerURL)
	at := time.Now().Add(10 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	waitFor(t, time.Until(at), "every box to hold the schedule and its clip", func() bool { return fl.ReadyFor(sid) == 79 })

	// Kill as soon as coverage shows a box playing: started reports are
	// coming in and (the clip is 1.5 s) no finished one yet, or few.
	var seen api.Coverage
	playing := 0
	for playing == 0 {
		if time.Now().After(at.Add(5 * time.Second)) {
			t.Fatalf("no box was seen playing by 5 s after the occurrence: %s", summary(seen.CoverageDetail))
		}
		cov, err := h.Client.Coverage(ctx, sid, at)
		if err == nil {
			seen, playing = cov, 0
			for _, v := range cov.Villages {
				if v.Status == "pending" && strings.HasPrefix(v.Reason, "playing since") {
					playing++
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctrl.kill() // SIGKILL
	t.Logf("SIGKILL %.3f s after the occurrence, when coverage read %d playing, %d played: %s",
		time.Since(at).Seconds(), playing, seen.Played, summary(seen.CoverageDetail))
	time.Sleep(2 * time.Second)
	restarted := time.Now()
	ctrl = start()
	t.Logf("controller restarted %.3f s after the occurrence", time.Since(at).Seconds())

	cov := waitCoverage(t, h, sid, at, 40*time.Second, countyPlayed)
	if cov.Targeted != 81 || cov.Played != 79 || cov.AwaitingConfirmation != 2 || cov.Failed+cov.Missed+cov.Partial+cov.Pending != 0 {
		t.Fatalf("coverage %s", summary(cov.CoverageDetail))
	}
	t.Logf("coverage after restart, %.1f s after the occurrence: %s", time.Since(at).Seconds(), summary(cov.CoverageDetail))

	villages := fl.Villages()
	waitReportsAcked(t, fl, 20*time.Second)
	// Read what each box numbered, then what the controller stored, with
	// both stopped so nothing moves underneath.
	if err := fl.Close(); err != nil {
		t.Errorf("stop boxes: %v", err)
	}
	boxSeq := map[string]int64{}
	for _, v := range villages {
		n, _, err := fl.Reports(v) // reads a stopped box's state file
		if err != nil {
			t.Fatalf("box %s: %v", v, err)
		}
		boxSeq[v] = n
	}
	if err := ctrl.stop(t); err != nil {
		t.Errorf("controller exited with %v after SIGTERM, want status 0", err)
	}
	checkStoredOnce(t, pc.data, sid, at, restarted, boxSeq)
	if b, err := os.ReadFile(pc.logPath); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "level=ERROR") {
				t.Logf("controller logged: %s", line)
			}
		}
	}
}

// waitReportsAcked waits until no box of the fleet holds a report the
// controller has not acknowledged: the controller has stored them all.
func waitReportsAcked(tb testing.TB, fl *fleet.Fleet, within time.Duration) {
	tb.Helper()
	waitFor(tb, within, "every box's reports acknowledged", func() bool {
		for _, v := range fl.Villages() {
			if n, err := fl.OutboxLen(v); err != nil || n != 0 {
				return false
			}
		}
		return true
	})
}

// checkStoredOnce opens the stopped controller's store and checks, for
// every box, that reports 1..N are each stored once, where N is the last
// seq the box numbered; that the controller acknowledged all of them; and
// that the occurrence has exactly one started and one finished report.
// It logs how many reports of each type arrived after restarted.
func checkStoredOnce(t *testing.T, data string, sid int64, at, restarted time.Time, boxSeq map[string]int64) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(data, "cunxiang.db") // processController.dbPath
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	acked := map[string]int64{}
	states, err := db.VillageStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Agent != nil {
			acked[s.Code] = s.Agent.AckedSeq
		}
	}
	type kinds map[string]int
	perVillage := map[string]kinds{}
	evs, err := db.ScheduleEvents(ctx, sid, playlists.OccurrenceKey(at))
	if err != nil {
		t.Fatal(err)
	}
	byType, late := kinds{}, kinds{}
	for _, e := range evs {
		byType[e.Type]++
		if !e.ReceivedAt.Before(restarted) {
			late[e.Type]++
		}
		if perVillage[e.Village] == nil {
			perVillage[e.Village] = kinds{}
		}
		perVillage[e.Village][e.Type]++
	}

	// Every stored report of each box, whatever it is about: the store has
	// no exported query for that, so read the events table itself.
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	type tally struct{ count, max, distinct int64 }
	stored := map[string]tally{}
	rows, err := raw.QueryContext(ctx, `SELECT village, COUNT(*), MAX(seq), COUNT(DISTINCT seq) FROM events GROUP BY village`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		var c tally
		if err := rows.Scan(&v, &c.count, &c.max, &c.distinct); err != nil {
			t.Fatal(err)
		}
		stored[v] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()

	var total, produced int64
	bad := 0
	for v, n := range boxSeq {
		c, k := stored[v], perVillage[v]
		total += c.count
		produced += n
		problem := ""
		switch {
		case n == 0:
			problem = "the box numbered no report"
		case c.count != n || c.max != n || c.distinct != n:
			problem = fmt.Sprintf("box numbered 1..%d, store holds %d reports (%d distinct seqs, max %d)", n, c.count, c.distinct, c.max)
		case acked[v] != n:
			problem = fmt.Sprintf("box numbered 1..%d, controller acked %d", n, acked[v])
		case k[api.EventStarted] != 1 || k[api.EventFinished] != 1:
			problem = fmt.Sprintf("occurrence reports %v, want one started and one finished", k)
		case k[api.EventReceived] != 1:
			// A restart republishes the retained schedule byte for byte; a
			// box must not take it for a new command.
			problem = fmt.Sprintf("schedule received %d times, want once (a restart must not re-issue it)", k[api.EventReceived])
		}
		if problem != "" {
			bad++
			if bad <= 10 {
				t.Errorf("village %s: %s", v, problem)
			}
		}
	}
	for v := range stored {
		if _, ok := boxSeq[v]; !ok {
			t.Errorf("store holds reports of %s, which is not one of the boxes", v)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d boxes' reports are not stored exactly once", bad, len(boxSeq))
	}
	t.Logf("exactly once: %d boxes numbered %d reports; the store holds %d, seqs 1..N each once per box, all acked; %d reports about the schedule %v, 1 started + 1 finished per box; received after the restart: %v",
		len(boxSeq), produced, total, len(evs), byType, late)
}
