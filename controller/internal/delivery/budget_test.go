package delivery

import (
	"testing"
	"time"
)

// TestReportBudget: a box's report events are stored up to its burst,
// then at its rate; another box has a budget of its own; a negative rate
// lifts the bound; the warning comes once a minute at most.
func TestReportBudget(t *testing.T) {
	o := Options{ReportRate: 2, ReportBurst: 100}
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	var r reportBudget
	steps := []struct {
		village  string
		n        int
		at       time.Duration
		ok, warn bool
	}{
		{"A", 100, 0, true, false},
		{"A", 1, 0, false, true},                       // spent
		{"A", 1, 100 * time.Millisecond, false, false}, // warned a moment ago
		{"B", 100, 10 * time.Second, true, false},      // a budget of its own
		{"A", 20, 10 * time.Second, true, false},       // 10 s at 2/s refilled 20
		{"A", 101, time.Hour, false, true},             // never more than the burst at once
	}
	for i, s := range steps {
		ok, warn := r.allow(o, s.village, s.n, t0.Add(s.at))
		if ok != s.ok || warn != s.warn {
			t.Errorf("step %d (%s, %d events at +%s): ok %v warn %v, want %v %v", i, s.village, s.n, s.at, ok, warn, s.ok, s.warn)
		}
	}
	if ok, _ := r.allow(Options{ReportRate: -1}, "A", 1_000_000, t0); !ok {
		t.Error("a negative rate must not bound the reports")
	}
}
