package bench

import (
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/playlists"
)

// coverage times the coverage of one occurrence over 20,000 villages
// with three reports each, as coverage's BenchmarkCompute20k sets it up.
func (b *bench) coverage() error {
	const villages = 20000
	occ := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	key := playlists.OccurrenceKey(occ)
	vs := make([]coverage.Village, 0, villages)
	evs := make([]coverage.Event, 0, 3*villages)
	for i := range villages {
		code := fmt.Sprintf("1101010%05d", i)
		vs = append(vs, coverage.Village{
			Village:  playlists.Village{Code: code, Name: "v" + code[10:], Township: code[:9], Device: playlists.DeviceAgent},
			Enrolled: true, Presence: "online", PresenceAt: occ.Add(-time.Hour),
		})
		evs = append(evs,
			coverage.Event{Village: code, Type: "received", At: occ.Add(-time.Hour)},
			coverage.Event{Village: code, Type: "started", At: occ, Occurrence: key},
			coverage.Event{Village: code, Type: "finished", At: occ.Add(time.Minute), Occurrence: key})
	}
	in := coverage.Input{Occurrence: occ, Duration: time.Minute, Now: occ.Add(time.Hour), Villages: vs, Events: evs}
	var d []time.Duration
	for range b.o.CoverageRuns {
		t := time.Now()
		r := coverage.Compute(in)
		d = append(d, time.Since(t))
		if r.Counts.Played != villages {
			return fmt.Errorf("coverage counted %d of %d villages played", r.Counts.Played, villages)
		}
	}
	q := quantiles(d)
	b.report.Add(Row{
		Phase: "coverage", Case: fmt.Sprintf("%d villages, %d runs", villages, len(d)),
		Metric: "coverage.Compute of one occurrence, p50/p99/max", Value: q.String(),
		Target: "p99 ≤ 50 ms", Met: yesNo(q.P99 <= 50*time.Millisecond),
	})
	return nil
}
