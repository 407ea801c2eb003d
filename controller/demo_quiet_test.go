package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoTerminalShowsOnlyBannerAndCoverage runs `controller --demo` as a
// real process, waits for its first coverage line, stops it with Ctrl-C
// (SIGINT) and reads everything it wrote to the terminal: the banner and
// the coverage lines, and not one log record: the 79 enrollment requests
// and the rest of the log are in <data>/controller.log, and stopping (the
// boxes say goodbye before the broker closes) warns about nothing.
func TestDemoTerminalShowsOnlyBannerAndCoverage(t *testing.T) {
	_, controllerBin := binaries(t)
	dir := t.TempDir()
	term := filepath.Join(dir, "terminal.txt")
	data := filepath.Join(dir, "data")
	showLogOnFailure(t, "demo terminal", term)
	p := startProc(t, "controller --demo", controllerBin, []string{"--demo", "--http", freeAddr(t), "--mqtt-listen", freeAddr(t), "--data", data}, nil, term)
	waitFor(t, 90*time.Second, "the demo's first coverage line", func() bool {
		b, _ := os.ReadFile(term)
		return strings.Contains(string(b), "\ncoverage of ") || p.exited()
	})
	if p.exited() {
		t.Fatalf("the demo exited early: %v", p.err)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not exit 30 s after Ctrl-C")
	}
	if p.err != nil {
		t.Errorf("the demo exited with %v after Ctrl-C", p.err)
	}
	b, err := os.ReadFile(term)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if !strings.Contains(out, "村响 Cunxiang demo is running.") || !strings.Contains(out, DemoLogName) {
		t.Errorf("no banner naming the log file")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=") {
			t.Errorf("a log record on the demo's terminal: %.300s", line)
		}
	}
	log, err := os.ReadFile(filepath.Join(data, DemoLogName))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "/enroll status=201"); n != 79 {
		t.Errorf("the log file has %d enrollment requests, want 79", n)
	}
}
