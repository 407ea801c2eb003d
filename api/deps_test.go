package api_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly: both binaries link api and api/client (the
// agent's sim too), so they import nothing but the standard library and
// the module's own shared leaves. kin-openapi is for tests (api/apitest).
func TestStandardLibraryOnly(t *testing.T) {
	for _, pkg := range []string{".", "./client"} {
		cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard", pkg)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("go list %s: %v\n%s", pkg, err, ee.Stderr)
			}
			t.Fatalf("go list %s: %v", pkg, err)
		}
		allowed := []string{"github.com/cunxiang/cunxiang/api", "github.com/cunxiang/cunxiang/playlists"}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		n := 0
		for {
			var p struct {
				ImportPath string
				Standard   bool
			}
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			n++
			ok := p.Standard
			for _, a := range allowed {
				ok = ok || p.ImportPath == a || strings.HasPrefix(p.ImportPath, a+"/")
			}
			if !ok || strings.HasPrefix(p.ImportPath, "github.com/cunxiang/cunxiang/api/apitest") {
				t.Errorf("%s links %s", pkg, p.ImportPath)
			}
		}
		if n < 10 {
			t.Fatalf("go list %s named only %d packages", pkg, n)
		}
	}
}
