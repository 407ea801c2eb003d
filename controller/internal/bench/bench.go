// Package bench is `controller bench`: one command that starts what it
// needs (a controller in this process on free ports, its embedded broker,
// a temporary data directory; the simulated boxes and the baseline MQTT
// subscribers in child processes), measures the province-scale phases —
// emergency fan-out, report ingest, coverage, reconnect storm, footprint
// and on-time playback — each next to a baseline measured in the same run,
// and prints one table.
//
//	go run -tags bench ./controller bench                      # 1,000, 5,000 and 10,000 boxes
//	go run -tags bench ./controller bench -quick               # a smoke test in about a minute
//	go run -tags bench ./controller bench -n 10000 -phases fanout,storm -out bench.md
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/delivery"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Phases, in the order they run.
var Phases = []string{"coverage", "ingest", "reportload", "fanout", "ontime", "storm", "footprint"}

// ControllerConfig is how the bench wants a controller started: on its
// own data directory and HTTP listener, using the bench's broker (which
// the bench can stop and start again) with service credentials.
type ControllerConfig struct {
	DataDir                            string
	HTTPListener                       net.Listener
	Broker, BrokerUser, BrokerPassword string
	// PreApproved are event types exempt from the two-person rule.
	PreApproved string
	Logger      *slog.Logger
	// Inbound brings the boxes' reports from the bench's broker to the
	// controller in process, as the embedded broker does
	// (delivery.Options.Inbound); nil measures the MQTT connection instead.
	Inbound delivery.Inbound
}

// Controller is a running controller.
type Controller struct {
	HTTPURL    string
	AdminToken string
	Store      *store.DB
	// Done receives what the controller's Run returned, once it returns.
	Done <-chan error
}

// StartFunc starts a controller that runs until ctx is done. Package main
// provides it, since the controller's wiring lives there.
type StartFunc func(ctx context.Context, c ControllerConfig) (*Controller, error)

// Options configure a bench run.
type Options struct {
	N          []int           // box counts for fanout (storm and ontime use the largest)
	Phases     map[string]bool // which phases to run
	Quick      bool
	Iterations int           // broadcasts (and baseline messages) per box count
	Idle, Play time.Duration // footprint: how long to watch the agent idle, and playing
	// Ingest: boxes publishing, and report messages of 100 events each per box.
	IngestBoxes, IngestMessages int
	CoverageRuns                int
	Sizes                       bool   // footprint: build the agent stripped to report its size
	WritesPending               int    // broker: each client's write queue (0: the broker's default)
	AgentBin                    string // built from source into a temporary directory if empty
	OutFile                     string // Markdown copy of the table
	CPUProfile, MemProfile      string
	Keep                        bool // keep the temporary directory (logs, data)
	LogLevel                    slog.Level

	// Reportload: villages and broadcasts the coverage report computes,
	// clients looping on it, emergency rounds, and the load's head start.
	ReportVillages, ReportBroadcasts int
	ReportClients, ReportRounds      int
	ReportWarmup                     time.Duration

	Start StartFunc
	Out   io.Writer
}

// ParseFlags reads the command line of `controller bench`.
func ParseFlags(args []string, start StartFunc, out io.Writer) (*Options, error) {
	o := &Options{Start: start, Out: out}
	fs := flag.NewFlagSet("controller bench", flag.ContinueOnError)
	fs.SetOutput(out)
	ns := fs.String("n", "1000,5000,10000", "comma-separated box counts for the fan-out phase; storm and ontime use the largest")
	phases := fs.String("phases", strings.Join(Phases, ","), "comma-separated phases to run: "+strings.Join(Phases, ", "))
	fs.BoolVar(&o.Quick, "quick", false, "smoke test: 20 boxes, short windows, few iterations (overrides -n unless given)")
	fs.IntVar(&o.Iterations, "iterations", 3, "emergency broadcasts (and baseline messages) per box count")
	fs.DurationVar(&o.Idle, "idle", 60*time.Second, "footprint: how long to measure the idle agent")
	fs.DurationVar(&o.Play, "play", 10*time.Second, "footprint: length of the clip the agent plays while measured")
	fs.IntVar(&o.IngestBoxes, "ingest-boxes", 200, "ingest: boxes publishing reports")
	fs.IntVar(&o.IngestMessages, "ingest-messages", 25, "ingest: report messages (100 events each) per box")
	fs.IntVar(&o.CoverageRuns, "coverage-runs", 200, "coverage: computations over 20,000 villages")
	fs.IntVar(&o.ReportVillages, "report-villages", 1000, "reportload: villages")
	fs.IntVar(&o.ReportBroadcasts, "report-broadcasts", 40, "reportload: broadcasts to every village in the day the report covers")
	fs.IntVar(&o.ReportClients, "report-clients", 200, "reportload: concurrent clients looping GET /api/v1/reports/coverage")
	fs.IntVar(&o.ReportRounds, "report-rounds", 10, "reportload: county-wide emergencies created, approved and cancelled under the load")
	fs.DurationVar(&o.ReportWarmup, "report-warmup", 3*time.Second, "reportload: how long the load runs before the first emergency")
	fs.IntVar(&o.WritesPending, "broker-writes-pending", 0, "broker: packets queued per client before it drops messages (0: the embedded broker's default)")
	fs.BoolVar(&o.Sizes, "sizes", true, "footprint: build the agent stripped, with and without cgo, to report its size")
	fs.StringVar(&o.AgentBin, "agent-bin", "", "agent binary to run (default: go build ./agent into a temporary directory)")
	fs.StringVar(&o.OutFile, "out", "", "also write the table as Markdown to this file")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (controller and broker) to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile of this process, taken at the largest box count, to this file")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory with the logs and data")
	level := fs.String("log-level", "warn", "controller and broker log level (logs go to files in the temporary directory)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if o.Quick {
		if !given["n"] {
			*ns = "20"
		}
		if !given["iterations"] {
			o.Iterations = 1
		}
		if !given["idle"] {
			o.Idle = 2 * time.Second
		}
		if !given["play"] {
			o.Play = 2 * time.Second
		}
		if !given["ingest-boxes"] {
			o.IngestBoxes = 10
		}
		if !given["ingest-messages"] {
			o.IngestMessages = 5
		}
		if !given["coverage-runs"] {
			o.CoverageRuns = 10
		}
		if !given["report-villages"] {
			o.ReportVillages = 100
		}
		if !given["report-broadcasts"] {
			o.ReportBroadcasts = 5
		}
		if !given["report-clients"] {
			o.ReportClients = 20
		}
		if !given["report-rounds"] {
			o.ReportRounds = 2
		}
		if !given["report-warmup"] {
			o.ReportWarmup = 500 * time.Millisecond
		}
	}
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 15000 {
			return nil, fmt.Errorf("-n: %q is not a box count between 1 and 15000", f)
		}
		o.N = append(o.N, n)
	}
	slices.Sort(o.N)
	o.Phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(Phases, p) {
			return nil, fmt.Errorf("-phases: unknown phase %q (choose from %s)", p, strings.Join(Phases, ", "))
		}
		o.Phases[p] = true
	}
	switch {
	case o.Iterations < 1:
		return nil, errors.New("-iterations must be at least 1")
	case o.Idle <= 0 || o.Play < time.Second:
		return nil, errors.New("-idle must be positive and -play at least 1s")
	case o.IngestBoxes < 1 || o.IngestMessages < 1:
		return nil, errors.New("-ingest-boxes and -ingest-messages must be at least 1")
	case o.CoverageRuns < 1:
		return nil, errors.New("-coverage-runs must be at least 1")
	case o.ReportVillages < 20 || o.ReportBroadcasts < 1 || o.ReportClients < 1 || o.ReportRounds < 1 || o.ReportWarmup < 0:
		return nil, errors.New("-report-villages must be at least 20 (two townships), -report-broadcasts, -report-clients and -report-rounds at least 1")
	}
	return o, nil
}

// bench is one run.
type bench struct {
	o        *Options
	tmp      string // temporary directory: data, logs
	boxDir   string // the simulated boxes' data (tmpfs when there is one)
	agentBin string
	log      *slog.Logger // to tmp/bench.log
	report   *Report
	self     string // this executable, for the baseline subscribers
}

// Run runs the phases, prints the table to o.Out and writes o.OutFile.
func Run(ctx context.Context, o *Options) (err error) {
	if o.Start == nil {
		return errors.New("bench: no controller to start")
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	raiseFileLimit()
	b := &bench{o: o, report: newReport()}
	if b.self, err = os.Executable(); err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	if b.tmp, err = os.MkdirTemp("", "cunxiang-bench-"); err != nil {
		return err
	}
	if o.Keep {
		fmt.Fprintf(o.Out, "logs and data in %s\n", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}
	b.boxDir = filepath.Join(b.tmp, "boxes")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "cunxiang-bench-boxes-"); err == nil {
			b.boxDir = d
			defer os.RemoveAll(d)
		}
	}
	logf, err := os.Create(filepath.Join(b.tmp, "bench.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	b.log = slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: o.LogLevel}))

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	needAgent := o.Phases["fanout"] || o.Phases["storm"] || o.Phases["ontime"] || o.Phases["footprint"]
	if needAgent {
		if b.agentBin, err = b.buildAgent(ctx); err != nil {
			return err
		}
	}
	started := time.Now()
	b.progress("cunxiang bench: %s, phases %s, box counts %v", machine(), strings.Join(b.phaseList(), ","), o.N)
	if o.Phases["coverage"] {
		b.phase("coverage", b.coverage)
	}
	if o.Phases["ingest"] {
		b.phase("ingest", func() error { return b.ingest(ctx) })
	}
	if o.Phases["reportload"] {
		b.phase("reportload", func() error { return b.reportLoad(ctx) })
	}
	if o.Phases["fanout"] || o.Phases["storm"] || o.Phases["ontime"] {
		name := "fanout"
		if !o.Phases["fanout"] {
			name = "fleet" // the boxes for storm and ontime
		}
		b.phase(name, func() error { return b.fleets(ctx) })
	}
	if o.Phases["footprint"] {
		b.phase("footprint", func() error { return b.footprint(ctx) })
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.progress("done in %s", time.Since(started).Round(time.Second))
	text := b.report.Text(machine())
	fmt.Fprint(o.Out, "\n"+text)
	if o.OutFile != "" {
		if err := os.WriteFile(o.OutFile, []byte(b.report.Markdown(machine())), 0o644); err != nil {
			return fmt.Errorf("-out: %w", err)
		}
	}
	if b.report.Failed() {
		return errors.New("some phases could not run; see the table")
	}
	return nil
}

func (b *bench) phaseList() []string {
	var out []string
	for _, p := range Phases {
		if b.o.Phases[p] {
			out = append(out, p)
		}
	}
	return out
}

// phase runs one phase; an error becomes a row of the table, and the
// other phases still run.
func (b *bench) phase(name string, run func() error) {
	b.progress("phase %s", name)
	if err := run(); err != nil {
		b.progress("phase %s failed: %v", name, err)
		b.report.Fail(name, err)
	}
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.o.Out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// buildAgent returns the agent binary: -agent-bin, or a fresh build.
func (b *bench) buildAgent(ctx context.Context) (string, error) {
	if b.o.AgentBin != "" {
		if _, err := os.Stat(b.o.AgentBin); err != nil {
			return "", fmt.Errorf("-agent-bin: %w", err)
		}
		return b.o.AgentBin, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("build the agent (or give -agent-bin): %w", err)
	}
	bin := filepath.Join(b.tmp, "agent")
	b.progress("building the agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./agent")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err == nil {
		return bin, nil
	}
	// The oto output needs cgo and libasound2-dev; without them the agent
	// still builds with CGO_ENABLED=0 (aplay and null outputs), and the
	// ontime phase says why it is skipped.
	b.progress("go build ./agent failed (%s); building with CGO_ENABLED=0", oneLine(lastLine(string(out))))
	cmd = exec.CommandContext(ctx, "go", "build", "-o", bin, "./agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out2, err2 := cmd.CombinedOutput(); err2 != nil {
		return "", fmt.Errorf("go build ./agent: %v\n%s\nwith CGO_ENABLED=0: %v\n%s", err, out, err2, out2)
	}
	return bin, nil
}

// moduleRoot is the directory of the Cunxiang go.mod, found from the
// working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run it inside the source tree with Go installed (go env GOMOD: %q, %v)", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

// raiseFileLimit raises the soft open-file limit to the hard one: each
// connected box costs the broker a descriptor.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// machine describes where the numbers were measured.
func machine() string {
	kernel := "unknown kernel"
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(raw))
	}
	model := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = ", " + strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s; NumCPU %d, GOMAXPROCS %d%s; %s; %s %s/%s",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.GOMAXPROCS(0), model,
		kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
