package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// DemoLogName is the demo's log file in the data directory.
const DemoLogName = "controller.log"

// newLogger builds the controller's logger at --log-level. In a demo the
// terminal is for the banner and the coverage lines: the whole log (every
// request, the broker's chatter) goes to <data>/controller.log and only
// warnings and errors also reach stderr. It returns the log file's path
// ("" when everything goes to stderr) and a function closing it.
func (m *Main) newLogger(stderr io.Writer) (*slog.Logger, string, func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(m.LogLevel)); err != nil {
		return nil, "", nil, fmt.Errorf("--log-level: %w", err)
	}
	if !m.Demo {
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})), "", func() {}, nil
	}
	path := filepath.Join(m.DataDir, DemoLogName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, "", nil, fmt.Errorf("demo log: %w", err)
	}
	termLvl := max(lvl, slog.LevelWarn)
	h := slog.NewMultiHandler(
		slog.NewTextHandler(f, &slog.HandlerOptions{Level: lvl}),
		slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: termLvl}),
	)
	return slog.New(h), path, func() { f.Close() }, nil
}
