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
// and tests: package agent/fleet.
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
	"strings"
	"syscall"

	"github.com/cunxiang/cunxiang/agent/internal/box"
	"github.com/cunxiang/cunxiang/agent/internal/player"
	"github.com/cunxiang/cunxiang/api"
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

	Stderr io.Writer // logs; os.Stderr by default
}

// NewMain returns a Main with the defaults.
func NewMain() *Main {
	return &Main{DataDir: "data", Output: player.DefaultOutput, Stderr: os.Stderr}
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	if len(args) > 0 && args[0] == "sim" {
		return errors.New("agent sim is not built yet; run many boxes with package github.com/cunxiang/cunxiang/agent/fleet")
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
	if err := fs.Parse(args); err != nil {
		return err
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

// Run opens the output, enrolls if needed, and runs the box until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	logger := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: m.LogLevel}))
	out, err := player.Open(m.Output, player.Options{ALSADevice: m.ALSADevice, Logger: logger.With("component", "player")})
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
	})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}
