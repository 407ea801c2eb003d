package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestControllerLinksOnlyProductionCode keeps the service binary buildable
// on a plain server (no C compiler, no ALSA headers, CGO_ENABLED=0): no
// package outside the standard library that it links may use cgo, oto
// (the agent's sound card) must not be among them, and neither may the
// benchmark harness, which builds the agent at run time (it is linked only
// with -tags bench).
func TestControllerLinksOnlyProductionCode(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,CgoFiles", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1") // see cgo files even where the build would drop them
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	banned := []string{
		"github.com/hajimehoshi/oto",
		"github.com/ebitengine/",
		"github.com/cunxiang/cunxiang/agent/internal/player/otoout",
		"github.com/cunxiang/cunxiang/controller/internal/bench",
		"github.com/cunxiang/cunxiang/api/apitest", // OpenAPI checks are for tests
		"github.com/getkin/",
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for {
		var p struct {
			ImportPath string
			Standard   bool
			CgoFiles   []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		if !p.Standard && len(p.CgoFiles) > 0 {
			t.Errorf("the controller links %s, a cgo package (%s)", p.ImportPath, strings.Join(p.CgoFiles, ", "))
		}
		for _, b := range banned {
			if strings.HasPrefix(p.ImportPath, b) {
				t.Errorf("the controller links %s", p.ImportPath)
			}
		}
	}
	if n < 50 {
		t.Fatalf("go list named only %d packages", n)
	}
}

// TestServiceBinaryPointsToTheBench: `controller bench` in the service
// binary says how to run the benchmark instead of starting a server.
func TestServiceBinaryPointsToTheBench(t *testing.T) {
	_, controllerBin := binaries(t)
	out, err := exec.Command(controllerBin, "bench", "-quick").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "go run -tags bench ./controller bench") {
		t.Fatalf("controller bench: %v\n%s", err, out)
	}
}

// TestOnlyTheHTTPLayerImportsGin keeps the web framework at the door: the
// rules (services, store, delivery) take a context and a person, never a
// *gin.Context, so CAP, the province's EBD packets and live voice can call
// them as the API does.
func TestOnlyTheHTTPLayerImportsGin(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const door = "github.com/cunxiang/cunxiang/controller/internal/httpapi"
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		n++
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "github.com/gin-gonic/") && f[0] != door {
				t.Errorf("%s imports %s; only %s may", f[0], imp, door)
			}
		}
	}
	if n < 30 {
		t.Fatalf("go list named only %d packages", n)
	}
}
