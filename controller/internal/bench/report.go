package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Row is one line of the table.
type Row struct {
	Phase, Case, Metric string
	Value, Baseline     string
	Ratio               string
	Target              string
	Met                 string // "yes", "NO", or "" when there is no target
}

// Report collects the rows of a run.
type Report struct {
	mu     sync.Mutex
	rows   []Row
	failed bool
}

func newReport() *Report { return &Report{} }

// Add appends a row.
func (r *Report) Add(row Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row)
}

// Fail records that a phase could not run.
func (r *Report) Fail(phase string, err error) {
	r.Add(Row{Phase: phase, Metric: "ERROR", Value: oneLine(err.Error())})
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

// Skip records that a phase was skipped, and why.
func (r *Report) Skip(phase, why string) {
	r.Add(Row{Phase: phase, Metric: "skipped", Value: why})
}

// Failed reports whether some phase failed.
func (r *Report) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Rows returns a copy of the rows.
func (r *Report) Rows() []Row {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rows)
}

var header = []string{"phase", "case", "metric", "value", "baseline", "ratio", "target", "met"}

func (row Row) cells() []string {
	return []string{row.Phase, row.Case, row.Metric, row.Value, row.Baseline, row.Ratio, row.Target, row.Met}
}

// Text is the table for a terminal.
func (r *Report) Text(machine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %s\n\n", machine)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range r.Rows() {
		fmt.Fprintln(tw, strings.Join(row.cells(), "\t"))
	}
	tw.Flush()
	return b.String()
}

// Markdown is the table as a Markdown document.
func (r *Report) Markdown(machine string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n", machine)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, row := range r.Rows() {
		cells := row.cells()
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// stats are the quantiles of a sample of durations.
type stats struct {
	N             int
	P50, P99, Max time.Duration
}

func quantiles(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	d = slices.Clone(d)
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[int(math.Ceil(p*float64(len(d))))-1] }
	return stats{N: len(d), P50: at(0.5), P99: at(0.99), Max: d[len(d)-1]}
}

func (s stats) String() string {
	return fmt.Sprintf("%s / %s / %s", ms(s.P50), ms(s.P99), ms(s.Max))
}

// ms formats a duration in milliseconds, with a sensible precision.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.3f ms", v)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
