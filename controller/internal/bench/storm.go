package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// storm restarts the broker under n connected boxes and times how long
// until the controller has heard every box online again. A box publishes
// its (retained) online presence only after it has reconnected and
// subscribed again to its command topics, so that is also the moment it
// can receive the desired state the controller republishes. The times
// are the boxes' last_seen as stored, minus the moment the new broker
// listened.
func (b *bench) storm(ctx context.Context, e *env, n int) error {
	states, err := e.ctl.Store.VillageStates(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, s := range states {
		if s.Agent != nil && s.Agent.Presence == api.Online {
			want[s.Code] = true
		}
	}
	if len(want) == 0 {
		return fmt.Errorf("none of the %d boxes is online before the restart", n)
	}
	if len(want) < n {
		b.report.Add(Row{Phase: "storm", Case: fmt.Sprintf("N=%d", n), Metric: "boxes offline before the restart (left out)",
			Value: fmt.Sprintf("%d of %d", n-len(want), n)})
	}
	b.progress("N=%d: restarting the broker under %d connected boxes", n, len(want))
	t0, err := e.restartBroker(ctx)
	if err != nil {
		return err
	}
	const within = 3 * time.Minute
	deadline := time.Now().Add(within)
	since := t0.UTC().Format("2006-01-02T15:04:05.000000Z") // the store's time layout
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		got, err := e.count(ctx, `SELECT COUNT(*) FROM agents WHERE presence = $1 AND last_seen >= $2`, api.Online, since)
		if err != nil {
			return err
		}
		if got >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			b.report.Add(Row{Phase: "storm", Case: fmt.Sprintf("N=%d", len(want)), Metric: "boxes not heard online again",
				Value: fmt.Sprintf("%d of %d after %s", len(want)-got, len(want), within), Target: "0", Met: "NO"})
			break
		}
	}
	states, err = e.ctl.Store.VillageStates(ctx)
	if err != nil {
		return err
	}
	var back []time.Duration
	for _, s := range states {
		if want[s.Code] && s.Agent != nil && s.Agent.Presence == api.Online && !s.Agent.LastSeen.Before(t0) {
			back = append(back, s.Agent.LastSeen.Sub(t0))
		}
	}
	q := quantiles(back)
	d := e.dropped()
	b.report.Add(Row{Phase: "storm", Case: fmt.Sprintf("N=%d", len(want)), Metric: "messages the restarted broker dropped",
		Value: d, Target: "0", Met: yesNo(d == "0")})
	b.report.Add(Row{
		Phase: "storm", Case: fmt.Sprintf("N=%d", len(want)),
		Metric: "broker restart → box online and subscribed again (presence stored), p50/p99/max of those back",
		Value:  q.String(), Target: "all back, max ≤ 30 s", Met: yesNo(len(back) == len(want) && q.Max <= 30*time.Second),
	})
	return nil
}
