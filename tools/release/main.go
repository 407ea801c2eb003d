// Command release builds what a county installs, into dist/:
//
//		./release.sh [-version 1.2.0] [-out dist] [-only amd64] [-programs controller]
//
//	  - the controller for linux amd64 and arm64: static (CGO_ENABLED=0);
//	  - the agent for linux amd64, arm64 and armhf: with the sound card
//	    through oto (cgo) where this machine can build it (the host's
//	    architecture with gcc and ALSA's headers, or a cross gcc), else
//	    without cgo, playing through ALSA's aplay. The file name says which
//	    (…_oto or …_aplay);
//	  - a .deb of each, with its systemd unit, its settings file in
//	    /etc/cunxiang and its own unprivileged user, made with
//	    github.com/goreleaser/nfpm;
//	  - MANIFEST.txt: every artifact with its build and SHA-256.
//
// Every binary's --version names the version and commit. This program is
// a module of its own (tools/release/go.mod), so the packager's
// dependencies are in neither the controller nor the agent.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

const module = "github.com/cunxiang/cunxiang"

// target is one architecture a binary is built for.
type target struct {
	goarch, goarm string
	deb           string // Debian's name of the architecture
	crossCC       string // the cross gcc that would allow cgo (oto)
}

var (
	amd64 = target{goarch: "amd64", deb: "amd64", crossCC: "x86_64-linux-gnu-gcc"}
	arm64 = target{goarch: "arm64", deb: "arm64", crossCC: "aarch64-linux-gnu-gcc"}
	armhf = target{goarch: "arm", goarm: "7", deb: "armhf", crossCC: "arm-linux-gnueabihf-gcc"}
)

// build is one binary that was built.
type build struct {
	program string // cunxiang-controller or cunxiang-agent
	t       target
	cgo     bool
	output  string // the agent's default output: oto or aplay
	path    string
	why     string // why an agent has no cgo
}

type options struct {
	root, out, version, commit string
	only                       []string // Debian architectures to build; all if empty
	programs                   []string // controller, agent; both if empty
	stderr                     io.Writer
}

func main() {
	o := options{stderr: os.Stderr}
	flag.StringVar(&o.root, "root", "", "the repository (default: the git top level of the working directory)")
	flag.StringVar(&o.out, "out", "dist", "output directory, relative to the repository")
	flag.StringVar(&o.version, "version", "", "release version, e.g. 1.2.0 (default: the tag on HEAD, else 0.0.0~git<commit time>.<commit>)")
	only := flag.String("only", "", "comma-separated Debian architectures to build (amd64, arm64, armhf; default all)")
	programs := flag.String("programs", "", "comma-separated programs to build (controller, agent; default both)")
	flag.Parse()
	if *only != "" {
		o.only = strings.Split(*only, ",")
	}
	if *programs != "" {
		o.programs = strings.Split(*programs, ",")
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.root == "" {
		top, err := git("", "rev-parse", "--show-toplevel")
		if err != nil {
			return fmt.Errorf("find the repository (or give -root): %w", err)
		}
		o.root = top
	}
	commit, err := git(o.root, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if dirty, _ := git(o.root, "status", "--porcelain", "--untracked-files=no"); dirty != "" {
		commit += "-dirty"
	}
	o.commit = commit
	if o.version == "" {
		if o.version, err = defaultVersion(o.root); err != nil {
			return err
		}
	}
	o.version = strings.TrimPrefix(o.version, "v")
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(o.root, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	o.out = out
	var builds []build
	for _, t := range []target{amd64, arm64} {
		if o.wants(t) && o.builds("controller") {
			b, err := o.buildController(t)
			if err != nil {
				return err
			}
			builds = append(builds, b)
		}
	}
	for _, t := range []target{amd64, arm64, armhf} {
		if o.wants(t) && o.builds("agent") {
			b, err := o.buildAgent(t)
			if err != nil {
				return err
			}
			builds = append(builds, b)
		}
	}
	var manifest bytes.Buffer
	fmt.Fprintf(&manifest, "Cunxiang %s, commit %s, built %s with %s\n\n", o.version, o.commit, time.Now().UTC().Format(time.RFC3339), runtime.Version())
	for _, b := range builds {
		deb, err := o.pack(b)
		if err != nil {
			return fmt.Errorf("package %s %s: %w", b.program, b.t.deb, err)
		}
		for _, f := range []string{b.path, deb} {
			sum, err := sha256File(f)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("%s  %s  %s", sum, filepath.Base(f), b.describe())
			fmt.Fprintln(&manifest, line)
			fmt.Fprintln(o.stderr, filepath.Base(f)+": "+b.describe())
		}
	}
	return os.WriteFile(filepath.Join(o.out, "MANIFEST.txt"), manifest.Bytes(), 0o644)
}

func (o options) wants(t target) bool { return len(o.only) == 0 || slices.Contains(o.only, t.deb) }

func (o options) builds(program string) bool {
	return len(o.programs) == 0 || slices.Contains(o.programs, program)
}

func (b build) describe() string {
	s := fmt.Sprintf("%s linux/%s", b.program, b.t.deb)
	if b.cgo {
		s += ", cgo"
	} else {
		s += ", static (CGO_ENABLED=0)"
	}
	if b.output != "" {
		s += ", default output " + b.output
	}
	if b.why != "" {
		s += " (" + b.why + ")"
	}
	return s
}

// defaultVersion is the tag on HEAD (v1.2.0 → 1.2.0), or a version that
// sorts by commit time below any release: 0.0.0~git20261204171500.abcdef1.
func defaultVersion(root string) (string, error) {
	if tag, err := git(root, "describe", "--tags", "--exact-match", "HEAD"); err == nil && tag != "" {
		return tag, nil
	}
	info, err := git(root, "log", "-1", "--format=%ct %h")
	if err != nil {
		return "", err
	}
	var sec int64
	var short string
	if _, err := fmt.Sscanf(info, "%d %s", &sec, &short); err != nil {
		return "", fmt.Errorf("git log: %q: %w", info, err)
	}
	return "0.0.0~git" + time.Unix(sec, 0).UTC().Format("20060102150405") + "." + short, nil
}

func (o options) ldflags() string {
	return fmt.Sprintf("-s -w -X %s/buildinfo.Version=%s -X %s/buildinfo.Commit=%s", module, o.version, module, o.commit)
}

// goBuild builds pkg for t into dir/name.
func (o options) goBuild(pkg string, t target, cgo bool, cc, name string) (string, []byte, error) {
	path := filepath.Join(o.out, name)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", o.ldflags(), "-o", path, "./"+pkg)
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm, "CGO_ENABLED=0")
	if cgo {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
		if cc != "" {
			// The target's ALSA (libasound2-dev:<arch>), not the host's.
			triplet := strings.TrimSuffix(t.crossCC, "-gcc")
			cmd.Env = append(cmd.Env, "CC="+cc, "PKG_CONFIG_LIBDIR=/usr/lib/"+triplet+"/pkgconfig:/usr/share/pkgconfig")
		}
	} else {
		cmd.Env = append(cmd.Env, "PKG_CONFIG=false") // nothing may ask for C libraries
	}
	out, err := cmd.CombinedOutput()
	return path, out, err
}

func (o options) buildController(t target) (build, error) {
	b := build{program: "cunxiang-controller", t: t}
	path, out, err := o.goBuild("controller", t, false, "", fmt.Sprintf("%s_%s_linux_%s", b.program, o.version, t.deb))
	if err != nil {
		return b, fmt.Errorf("build the controller for %s: %v\n%s", t.deb, err, out)
	}
	b.path = path
	return b, nil
}

// buildAgent builds the agent with oto if this machine can (cgo for the
// host's architecture, or a cross gcc), else with aplay.
func (o options) buildAgent(t target) (build, error) {
	b := build{program: "cunxiang-agent", t: t}
	name := func(output string) string {
		return fmt.Sprintf("%s_%s_linux_%s_%s", b.program, o.version, t.deb, output)
	}
	cc := ""
	native := t.goarch == runtime.GOARCH && runtime.GOOS == "linux"
	if !native {
		if p, err := exec.LookPath(t.crossCC); err == nil {
			cc = p
		}
	}
	if native || cc != "" {
		path, out, err := o.goBuild("agent", t, true, cc, name("oto"))
		if err == nil {
			b.cgo, b.output, b.path = true, "oto", path
			return b, nil
		}
		b.why = "the cgo build failed: " + lastLine(string(out))
	} else {
		b.why = "no cross compiler " + t.crossCC + " for oto"
	}
	path, out, err := o.goBuild("agent", t, false, "", name("aplay"))
	if err != nil {
		return b, fmt.Errorf("build the agent for %s: %v\n%s", t.deb, err, out)
	}
	b.output, b.path = "aplay", path
	return b, nil
}

// pack makes the .deb of b.
func (o options) pack(b build) (string, error) {
	deb := filepath.Join(o.root, "tools", "release", "deb")
	role := strings.TrimPrefix(b.program, "cunxiang-")
	info := &nfpm.Info{
		Name:          b.program,
		Arch:          b.t.goarch,
		Platform:      "linux",
		Version:       o.version,
		VersionSchema: "none",
		Release:       "1",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "Cunxiang maintainers <cunxiang@example.org>",
		Homepage:      "https://github.com/cunxiang/cunxiang",
		License:       "Apache-2.0",
		MTime:         time.Now().UTC().Truncate(time.Second),
	}
	info.Deb.Arch = b.t.deb
	info.Overridables.Contents = files.Contents{
		{Source: b.path, Destination: "/usr/bin/" + b.program, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Source: filepath.Join(deb, b.program+".service"), Destination: "/usr/lib/systemd/system/" + b.program + ".service", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		// Read by systemd (as root) before it drops to the service user;
		// it may hold a database or broker password.
		{Source: filepath.Join(deb, role+".env"), Destination: "/etc/cunxiang/" + role + ".env", Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o600}},
		{Source: filepath.Join(o.root, "README.md"), Destination: "/usr/share/doc/" + b.program + "/README.md", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}
	info.Overridables.Scripts = nfpm.Scripts{
		PostInstall: filepath.Join(deb, role+".postinst"),
		PreRemove:   filepath.Join(deb, role+".prerm"),
		PostRemove:  filepath.Join(deb, role+".postrm"),
	}
	switch {
	case b.program == "cunxiang-controller":
		info.Description = "Cunxiang village emergency broadcast: controller\n" +
			" The county's service: HTTP API and web console, the embedded MQTT broker\n" +
			" the village boxes connect to, signed schedules and broadcasts, reports."
		info.Overridables.Depends = []string{"passwd"}
		info.Overridables.Recommends = []string{"espeak-ng"} // text to speech
	default:
		info.Description = "Cunxiang village emergency broadcast: loudspeaker box agent\n" +
			" Keeps the controller's signed schedules and broadcasts for its village,\n" +
			" plays them on time through the box's loudspeaker, and reports.\n" +
			" This build's default output: " + b.output + "."
		info.Overridables.Depends = []string{"passwd"}
		if b.output == "oto" {
			info.Overridables.Depends = append(info.Overridables.Depends, "libasound2 | libasound2t64")
			info.Overridables.Recommends = []string{"alsa-utils"}
		} else {
			info.Overridables.Depends = append(info.Overridables.Depends, "alsa-utils")
		}
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	p, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s_%s-1_%s", b.program, o.version, b.t.deb)
	if b.output != "" {
		name += "_" + b.output
	}
	path := filepath.Join(o.out, name+".deb")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
