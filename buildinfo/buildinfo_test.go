package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestLineNamesVersionAndCommit(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	Version, Commit = "v1.2.3", "0123456789abcdef0123"
	l := Line("cunxiang-agent")
	for _, want := range []string{"cunxiang-agent v1.2.3", "commit 0123456789ab", runtime.GOOS + "/"} {
		if !strings.Contains(l, want) {
			t.Errorf("%q lacks %q", l, want)
		}
	}
}
