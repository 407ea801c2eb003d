package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchCommandQuick runs `controller bench -quick` (built with -tags
// bench: the service binary does not carry it) as a real process
// (it starts its baseline subscribers by re-executing itself), with every
// phase, and checks that each phase produced its rows and that the ones
// about correctness hold: every ingested event stored and acked exactly
// once, the oto capture sample-exact (or skipped with a reason). Speed
// targets are reported, never asserted.
func TestBenchCommandQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole bench in -quick mode (about a minute); skipped with -short")
	}
	t.Parallel() // a smoke test: its figures are reported, never asserted
	agentBin, _ := binaries(t)
	controllerBin := filepath.Join(t.TempDir(), "controller-bench")
	if out, err := exec.Command("go", "build", "-tags", "bench", "-o", controllerBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags bench ./controller: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "bench.md")
	cmd := exec.Command(controllerBin, "bench", "-quick", "-sizes=false", "-idle", "1s", "-play", "1s",
		"-agent-bin", agentBin, "-out", out)
	start := time.Now()
	stdout, err := cmd.CombinedOutput()
	t.Logf("controller bench -quick took %s:\n%s", time.Since(start).Round(time.Second), stdout)
	if err != nil {
		t.Fatalf("controller bench -quick: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(raw)
	if !strings.Contains(md, "| phase | case | metric |") || !strings.Contains(md, "NumCPU") {
		t.Fatalf("-out file lacks the table header or the machine line:\n%s", md)
	}
	rows := map[string][]string{} // phase → its rows
	for _, line := range strings.Split(md, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) < 8 || !strings.HasPrefix(line, "| ") {
			continue
		}
		phase := strings.TrimPrefix(cells[0], "| ")
		rows[phase] = append(rows[phase], line)
		if strings.Contains(line, "| ERROR |") {
			t.Errorf("a phase failed: %s", line)
		}
	}
	for _, phase := range []string{"coverage", "ingest", "reportload", "fanout", "ontime", "storm", "footprint"} {
		if len(rows[phase]) == 0 {
			t.Errorf("no row for phase %s", phase)
		}
	}
	for _, line := range rows["ingest"] {
		if strings.Contains(line, "none lost") && !strings.Contains(line, "| yes |") {
			t.Errorf("ingest lost or doubled events: %s", line)
		}
	}
	for _, line := range rows["fanout"] {
		if strings.Contains(line, "started report stored") && !strings.Contains(line, "QoS1 msg → N subscribers") {
			t.Errorf("fan-out row without its baseline: %s", line)
		}
	}
	cpuRow := regexp.MustCompile(`CPU per box per broadcast until all reported started: boxes / controller\+broker \| [0-9]+\.[0-9]+ ms / [0-9]+\.[0-9]+ ms \|`)
	if !cpuRow.MatchString(md) {
		t.Errorf("no fan-out row with the CPU each box cost:\n%s", strings.Join(rows["fanout"], "\n"))
	}
	for _, line := range rows["ontime"] {
		if strings.Contains(line, "ALSA capture") && !strings.Contains(line, "| yes |") {
			t.Errorf("the oto capture is not the clip: %s", line)
		}
	}
	if !strings.Contains(md, "agent idle") || !strings.Contains(md, "agent playing") || !strings.Contains(md, "per connected box") {
		t.Errorf("footprint rows missing:\n%s", md)
	}
}
