package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// reportLoad measures the emergency path while the heavy read path is
// busy: ReportClients clients loop GET /api/v1/reports/coverage over a
// day holding ReportBroadcasts broadcasts to ReportVillages villages,
// while an operator creates a county-wide emergency that waits for the
// two-person rule, an approver (a second person, logged in) approves it
// and the operator cancels it, ReportRounds times.
func (b *bench) reportLoad(ctx context.Context) error {
	e, err := b.startEnv(ctx, "reportload")
	if err != nil {
		return err
	}
	defer e.close()
	if _, err := e.ctl.Store.ImportVillages(ctx, ingestVillages(b.o.ReportVillages)); err != nil {
		return fmt.Errorf("import villages: %w", err)
	}
	pcm, err := tone(500 * time.Millisecond)
	if err != nil {
		return err
	}
	clip, err := e.client.UploadAudio(ctx, "bench.wav", "bench", WAV(pcm))
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	// The day's broadcasts the reports compute (pre-approved drills).
	for range b.o.ReportBroadcasts {
		if _, err := e.client.CreateBroadcast(ctx, api.BroadcastRequest{
			AudioID: clip.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Routine, Severity: 4,
			EventType: benchEventType, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour)),
		}); err != nil {
			return fmt.Errorf("broadcast: %w", err)
		}
	}
	pass := randomHex(16)
	if _, err := e.client.CreateUser(ctx, api.UserRequest{Username: "bench-approver", DisplayName: "bench-approver", Role: "approver", Village: "", Password: pass}); err != nil {
		return fmt.Errorf("approver: %w", err)
	}
	approver, err := e.client.Login(ctx, "bench-approver", pass)
	if err != nil {
		return fmt.Errorf("approver login: %w", err)
	}
	operator := *e.client
	operator.HTTP = &http.Client{Timeout: time.Minute}
	approver.HTTP = operator.HTTP

	// The report clients, each on its own connection.
	tr := &http.Transport{MaxIdleConnsPerHost: b.o.ReportClients, MaxConnsPerHost: b.o.ReportClients}
	defer tr.CloseIdleConnections()
	rc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	loc, err := time.LoadLocation(playlists.DefaultTimezone)
	if err != nil {
		return err
	}
	day := time.Now().In(loc).Format(time.DateOnly)
	url := e.ctl.HTTPURL + "/api/v1/reports/coverage?from=" + day + "&to=" + day
	lctx, stop := context.WithCancel(ctx)
	var (
		mu             sync.Mutex
		lat            []time.Duration
		ok, busy, fail atomic.Int64
		wg             sync.WaitGroup
	)
	for range b.o.ReportClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				req, _ := http.NewRequestWithContext(lctx, http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+e.ctl.AdminToken)
				t := time.Now()
				resp, err := rc.Do(req)
				if err != nil {
					if lctx.Err() == nil {
						fail.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				d := time.Since(t)
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				case http.StatusServiceUnavailable:
					busy.Add(1)
					// As a client honouring Retry-After would, but briefly.
					sleepCtx(lctx, 200*time.Millisecond)
				default:
					fail.Add(1)
				}
			}
		}()
	}
	// Let the load build up before the first emergency.
	sleepCtx(ctx, b.o.ReportWarmup)

	var create, approve, cancel []time.Duration
	timed := func(into *[]time.Duration, f func() error) error {
		t := time.Now()
		err := f()
		*into = append(*into, time.Since(t))
		return err
	}
	var runErr error
	for i := range b.o.ReportRounds {
		var br api.Broadcast
		if runErr = timed(&create, func() (err error) {
			br, err = operator.CreateBroadcast(ctx, api.BroadcastRequest{
				AudioID: clip.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
				Severity: 1, EventType: "flood", ExpiresAt: client.ExpiresAt(time.Now().Add(10 * time.Minute)),
			})
			return err
		}); runErr != nil {
			runErr = fmt.Errorf("round %d: create: %w", i+1, runErr)
			break
		}
		if br.State != "pending_approval" {
			runErr = fmt.Errorf("round %d: the county-wide emergency is %q, not waiting for a second person", i+1, br.State)
			break
		}
		if runErr = timed(&approve, func() error { _, err := approver.ApproveBroadcast(ctx, br.ID); return err }); runErr != nil {
			runErr = fmt.Errorf("round %d: approve: %w", i+1, runErr)
			break
		}
		if runErr = timed(&cancel, func() error { _, err := operator.CancelBroadcast(ctx, br.ID); return err }); runErr != nil {
			runErr = fmt.Errorf("round %d: cancel: %w", i+1, runErr)
			break
		}
	}
	stop()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if ok.Load() == 0 {
		return errors.New("no coverage report was answered")
	}
	cs := fmt.Sprintf("%d villages, %d broadcasts in the day, %d report clients", b.o.ReportVillages, b.o.ReportBroadcasts, b.o.ReportClients)
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"create", create}, {"approve (second person)", approve}, {"cancel", cancel}} {
		q := quantiles(m.d)
		b.report.Add(Row{
			Phase: "reportload", Case: cs, Metric: fmt.Sprintf("emergency %s under report load, p50/max of %d", m.name, q.N),
			Value: ms(q.P50) + " / " + ms(q.Max), Target: "≤ 1 s", Met: yesNo(q.Max <= time.Second),
		})
	}
	q := quantiles(lat)
	b.report.Add(Row{
		Phase: "reportload", Case: cs, Metric: "GET /reports/coverage answered 200: p50/p99/max; 200 · 503 · other",
		Value: fmt.Sprintf("%s; %d · %d · %d", q, ok.Load(), busy.Load(), fail.Load()),
	})
	return nil
}
