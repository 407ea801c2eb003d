package store_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStoreOwnsNoDomain keeps the dependency pointing one way: the store
// keeps what the domain decides (roles and broadcast decisions live in
// api, what people see of a broadcast in broadcasts), so it imports only
// the shared leaves, never a service or the packages they share (people,
// audit, broadcasts, httpapi...): a rule written in the store could not be
// shared by the doors that call the services.
func TestStoreOwnsNoDomain(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/cunxiang/cunxiang/api":                       true,
		"github.com/cunxiang/cunxiang/playlists":                 true,
		"github.com/cunxiang/cunxiang/controller/internal/cx":    true,
		"github.com/cunxiang/cunxiang/controller/internal/store": true,
	}
	n := 0
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/cunxiang/cunxiang/") {
			continue
		}
		n++
		if !allowed[p] {
			t.Errorf("the store depends on %s; it may import only api, playlists and cx", p)
		}
	}
	if n < 3 {
		t.Fatalf("go list named only %d of the module's packages: %s", n, out)
	}
}
