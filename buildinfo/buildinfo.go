// Package buildinfo says which build of a Cunxiang program is running:
// the release version (set by the release build with
// -ldflags "-X github.com/cunxiang/cunxiang/buildinfo.Version=v1.2.3") and
// the commit it was built from (the Go toolchain's VCS stamp, or
// -X ...buildinfo.Commit=... where the build had no .git). Both binaries'
// --version print Line.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the release build; "dev" and "" otherwise.
var (
	Version = "dev"
	Commit  = ""
)

// Info is what a build knows about itself.
type Info struct {
	Version  string
	Commit   string // full hash, or "unknown"
	Time     string // commit time, RFC 3339, if known
	Modified bool   // built from a tree with uncommitted changes
	Go       string
	CGO      bool
}

// Read returns this binary's Info.
func Read() Info {
	i := Info{Version: Version, Commit: Commit, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			case "CGO_ENABLED":
				i.CGO = s.Value == "1"
			}
		}
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// Line is one line for --version: program, version, commit and how it was
// built.
func Line(program string) string {
	i := Read()
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if i.Modified {
		commit += "+modified"
	}
	cgo := "no cgo"
	if i.CGO {
		cgo = "cgo"
	}
	s := fmt.Sprintf("%s %s (commit %s", program, i.Version, commit)
	if i.Time != "" {
		s += ", " + i.Time
	}
	return s + fmt.Sprintf(", %s, %s/%s, %s)", i.Go, runtime.GOOS, runtime.GOARCH, cgo)
}
