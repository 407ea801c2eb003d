// Command agent is the Cunxiang loudspeaker-box daemon. It enrolls once with
// the controller, keeps the controller's signed schedules, broadcasts and
// settings for its village on disk, downloads and verifies their clips,
// plays every occurrence on the controller's time through the box's
// loudspeaker, broadcasts at once over anything of lower priority (the
// rules: playlists/RULES.md), and reports what it did, exactly once, over
// MQTT. It keeps playing when the network is gone.
//
//	agent --village 110101001001 --controller http://controller:8080 \
//	      --data /var/lib/cunxiang --enroll TOKEN      # first start
//	agent --village 110101001001 --controller http://controller:8080 \
//	      --data /var/lib/cunxiang                     # every later start
//
// Outputs: oto (the sound card; cgo builds), aplay (ALSA's aplay; works in
// CGO_ENABLED=0 builds), null (silence, paced in real time) and wav:DIR
// (each played clip written to DIR). Many boxes in one process, for demos
// and tests: package agent/fleet, and the fleet simulator:
//
//	agent sim -n 1000 --controller http://controller:8080 --token-file admin.token --import
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/peterbourgon/ff/v3"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/agent/internal/box"
	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/agent/internal/player/otoout"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(2)
	}
	if m.ShowVersion {
		fmt.Println(versionLine())
		return
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// Main is the agent program: its configuration and how to run it, apart
// from the process, so tests can run the real thing in-process.
type Main struct {
	Village     string
	Controller  string
	Broker      string
	DataDir     string
	EnrollToken string
	Output      string
	ALSADevice  string
	TopicPrefix string
	LogLevel    slog.Level
	ShowVersion bool // --version: print the build and its default output, and exit

	// Sim, if set, runs the fleet simulator (agent sim) instead of a box.
	Sim       *fleet.SimOptions
	TokenFile string // sim: file holding the admin API token
	// CPUProfile, for the sim: write a CPU profile of the whole fleet
	// process to this file.
	CPUProfile string

	Stderr io.Writer // logs; os.Stderr by default
	Stdout io.Writer // sim progress and summary; os.Stdout by default
}

// NewMain returns a Main with the defaults.
func NewMain() *Main {
	return &Main{DataDir: "data", Output: otoout.DefaultOutput, Stderr: os.Stderr, Stdout: os.Stdout}
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	if len(args) > 0 && args[0] == "sim" {
		return m.parseSimFlags(args[1:])
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.Village, "village", m.Village, "this box's 12-digit village code (required)")
	fs.StringVar(&m.Controller, "controller", m.Controller, "controller base URL, e.g. http://controller:8080 (required)")
	fs.StringVar(&m.Broker, "broker", m.Broker, "MQTT broker URL, e.g. tcp://controller:1883 (default: the one the controller gave at enrollment)")
	fs.StringVar(&m.DataDir, "data", m.DataDir, "data directory: identity, state, audio cache")
	fs.StringVar(&m.EnrollToken, "enroll", m.EnrollToken, "one-time enrollment token (first start only)")
	fs.StringVar(&m.Output, "output", m.Output, "audio output: oto, aplay, null or wav:DIR")
	fs.StringVar(&m.ALSADevice, "alsa-device", m.ALSADevice, "ALSA device for --output aplay (default: ALSA's default)")
	prefix := fs.String("topic-prefix", api.DefaultPrefix, "MQTT topic prefix (default: the one the controller gave at enrollment, else "+api.DefaultPrefix+")")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&m.ShowVersion, "version", false, "print the version, commit and default output, and exit")
	// Every flag can also come from CUNXIANG_<NAME> (the packaged service's
	// /etc/cunxiang/agent.env); the command line wins.
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("CUNXIANG")); err != nil {
		return err
	}
	if m.ShowVersion {
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "topic-prefix" {
			m.TopicPrefix = *prefix
		}
	})
	if err := m.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if !api.ValidVillageCode(m.Village) {
		return fmt.Errorf("--village must be a 12-digit village code, got %q", m.Village)
	}
	if u, err := url.Parse(m.Controller); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--controller must be an http:// or https:// URL, got %q", m.Controller)
	}
	if m.Broker != "" {
		if u, err := url.Parse(m.Broker); err != nil || u.Host == "" {
			return fmt.Errorf("--broker must be a URL such as tcp://host:1883, got %q", m.Broker)
		}
	}
	if m.DataDir == "" {
		return errors.New("--data must name a directory")
	}
	if strings.HasPrefix(m.Output, "wav:") && len(m.Output) == len("wav:") {
		return errors.New("--output wav:DIR needs a directory")
	}
	return nil
}

// parseSimFlags reads the command line of agent sim.
func (m *Main) parseSimFlags(args []string) error {
	o := &fleet.SimOptions{Dir: "sim-data"}
	fs := flag.NewFlagSet("agent sim", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.IntVar(&o.N, "n", 100, "number of boxes")
	fs.StringVar(&o.Controller, "controller", "", "controller base URL (required)")
	fs.StringVar(&m.TokenFile, "token-file", "", "file holding an admin API token")
	fs.StringVar(&o.Token, "token", "", "admin API token (prefer --token-file)")
	fs.StringVar(&o.Broker, "broker", "", "MQTT broker URL (default: the one the controller gives at enrollment)")
	fs.StringVar(&o.Dir, "data", o.Dir, "directory for the boxes' data directories (kept between runs: enrolled boxes reuse their identity)")
	fs.BoolVar(&o.Import, "import", false, "first import N synthetic villages (county 990100, ten per township)")
	fs.IntVar(&o.First, "first", 0, "skip the first FIRST villages (with --import: number the synthetic ones from FIRST), so several sims can share a county")
	fs.IntVar(&o.Offline, "offline", 0, "boxes that start offline and come up halfway through --duration")
	fs.Float64Var(&o.DisconnectsPerMin, "disconnects-per-min", 0, "stop a random box and restart it 1-10 s later, this many times a minute")
	fs.DurationVar(&o.Skew, "skew", 0, "each box's own clock is off by a uniform random amount within ±SKEW")
	fs.Float64Var(&o.ReportLoss, "report-loss", 0, "chance (0-1) that each report publish is lost on the link")
	fs.DurationVar(&o.Duration, "duration", 0, "how long to run (0: until Ctrl-C)")
	fs.BoolVar(&o.ReadyLine, "ready-line", false, "print READY N on its own line once every box is connected (for scripts)")
	fs.StringVar(&m.CPUProfile, "cpuprofile", "", "write a CPU profile of the sim process to this file")
	level := fs.String("log-level", "error", "box log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := m.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if o.N < 1 {
		return errors.New("-n must be at least 1")
	}
	if o.First < 0 {
		return errors.New("--first must not be negative")
	}
	if u, err := url.Parse(o.Controller); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--controller must be an http:// or https:// URL, got %q", o.Controller)
	}
	if (m.TokenFile == "") == (o.Token == "") {
		return errors.New("give the admin API token with --token-file PATH or --token")
	}
	if o.Offline < 0 || o.Offline > o.N {
		return fmt.Errorf("--offline must be between 0 and -n, got %d", o.Offline)
	}
	if o.ReportLoss < 0 || o.ReportLoss >= 1 {
		return fmt.Errorf("--report-loss must be in [0, 1), got %v", o.ReportLoss)
	}
	if o.DisconnectsPerMin < 0 || o.Skew < 0 || o.Duration < 0 {
		return errors.New("--disconnects-per-min, --skew and --duration must not be negative")
	}
	if o.Dir == "" {
		return errors.New("--data must name a directory")
	}
	m.Sim = o
	return nil
}

// runSim runs the fleet simulator.
func (m *Main) runSim(ctx context.Context) error {
	o := *m.Sim
	if m.TokenFile != "" {
		raw, err := os.ReadFile(m.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(raw))
	}
	o.Out = m.Stdout
	o.Logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: m.LogLevel}))
	if m.CPUProfile != "" {
		f, err := os.Create(m.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	_, err := fleet.Simulate(ctx, o)
	return err
}

// Run opens the output, enrolls if needed, and runs the box until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	if m.Sim != nil {
		return m.runSim(ctx)
	}
	logger := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: m.LogLevel}))
	out, err := player.Open(m.Output, player.Options{ALSADevice: m.ALSADevice, Logger: logger.With("component", "player"), Oto: otoout.Open})
	if err != nil {
		return err
	}
	defer out.Close()
	a, err := box.New(ctx, box.Options{
		Village:     m.Village,
		Controller:  m.Controller,
		Broker:      m.Broker,
		TopicPrefix: m.TopicPrefix,
		DataDir:     m.DataDir,
		EnrollToken: m.EnrollToken,
		Output:      out,
		Logger:      logger,
		Version:     reportedVersion(),
	})
	if err != nil {
		return err
	}
	defer a.Close()
	go notifySystemd(ctx, a.Alive, logger)
	return a.Run(ctx)
}

// versionLine is --version's answer: the build, and the output this build
// plays through by default (oto with cgo, else aplay).
func versionLine() string {
	return buildinfo.Line("cunxiang-agent") + ", default output " + otoout.DefaultOutput
}

// reportedVersion is the version the box reports to the controller: the
// release's, or box.Version in a development build.
func reportedVersion() string {
	if buildinfo.Version == "dev" {
		return ""
	}
	return buildinfo.Version
}

// notifySystemd tells systemd the agent is up (a unit with Type=notify)
// and, when the unit sets WatchdogSec, pings the watchdog every third of
// it while alive holds, so that systemd restarts a box whose scheduler is
// stuck. Outside systemd ($NOTIFY_SOCKET unset) it does nothing.
func notifySystemd(ctx context.Context, alive func() bool, log *slog.Logger) {
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("tell systemd we are ready", "err", err)
	}
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !alive() {
			log.Error("the scheduler has not gone round lately; not pinging the watchdog, so systemd restarts the agent")
			continue
		}
		if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
			log.Warn("ping systemd's watchdog", "err", err)
		}
	}
}
