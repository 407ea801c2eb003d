// Package clock keeps the box on the controller's time. A box whose own
// clock is minutes off after a power cut must still play on time and judge
// command expiry as the controller does, so everything the agent plans runs
// on Clock.Now: the controller's time as last measured, carried forward on
// the box's monotonic clock (a later jump of the box's wall clock changes
// nothing until the next measurement).
package clock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// Timer is the control half of a timer. *time.Timer has both methods, and
// so has playliststest's fake: Timer aliases the same unnamed interface
// as playliststest.TimerController, so one type satisfies Local in both.
type Timer = interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// Local is the box's own clock: its wall time, and timers that wait on
// it. System is the real one; tests pass playliststest.Clock, which moves
// only when told, so that the box's timing can be tested without sleeping.
type Local interface {
	Now() time.Time
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
}

// System is the machine's clock.
type System struct{}

// Now is time.Now.
func (System) Now() time.Time { return time.Now() }

// NewTimer is time.NewTimer.
func (System) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// skewed is a local clock whose wall time is off by skew. Add keeps the
// monotonic reading, shifted alike, so differences between two readings
// stay exact.
type skewed struct {
	Local
	skew time.Duration
}

func (s skewed) Now() time.Time { return s.Local.Now().Add(s.skew) }

// Options configures a Clock; the zero Options is the system clock with
// no offset measured yet.
type Options struct {
	// Local is the box's own clock (default System).
	Local Local
	// Offset is how far the controller's clock was last measured ahead of
	// the box's (the persisted measurement, or 0).
	Offset time.Duration
	// Skew puts the box's own wall clock this far ahead of true time:
	// fleet simulations give each box a wrong clock, which the
	// measurement must correct like any real box's.
	Skew time.Duration
}

// Clock estimates the controller's current time, and gives timers that
// wait on the box's own clock.
type Clock struct {
	local Local

	mu   sync.Mutex
	base time.Time // controller time at ref
	ref  time.Time // local reading (with monotonic part) at which base held
}

// New returns a clock that assumes the controller is o.Offset ahead of
// the box's wall clock.
func New(o Options) *Clock {
	local := o.Local
	if local == nil {
		local = System{}
	}
	if o.Skew != 0 {
		local = skewed{local, o.Skew}
	}
	now := local.Now()
	return &Clock{local: local, base: now.Round(0).Add(o.Offset), ref: now}
}

// Now is the controller's time, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.local.Now().Sub(c.ref)).UTC()
}

// NewTimer returns a timer that fires after d on the box's own clock.
// A wait does not depend on the offset, so a new measurement does not
// move it; the planner, which waits for controller times, re-plans after
// every measurement.
func (c *Clock) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	return c.local.NewTimer(d)
}

// Offset is how far the controller's clock is ahead of the box's.
func (c *Clock) Offset() time.Duration {
	now := c.local.Now()
	return c.Now().Sub(now.Round(0))
}

// set records that the controller's time was server at the local instant at.
func (c *Clock) set(server, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.ref = server, at
}

// Sample is one measurement.
type Sample struct {
	Offset time.Duration // controller minus box
	RTT    time.Duration
}

// Sync measures the controller's clock with a few GET {controller}/api/v1/clock
// round trips, keeps the one with the shortest round trip (its midpoint is
// the best estimate) and moves the clock to it.
func (c *Clock) Sync(ctx context.Context, client *http.Client, controller string) (Sample, error) {
	const tries = 3
	var best Sample
	var bestServer, bestAt time.Time
	var lastErr error
	ok := false
	for i := 0; i < tries; i++ {
		server, at, rtt, err := c.measure(ctx, client, controller)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if !ok || rtt < best.RTT {
			ok = true
			best = Sample{Offset: server.Sub(at.Round(0)), RTT: rtt}
			bestServer, bestAt = server, at
		}
	}
	if !ok {
		return Sample{}, lastErr
	}
	c.set(bestServer, bestAt)
	return best, nil
}

func (c *Clock) measure(ctx context.Context, client *http.Client, controller string) (server, mid time.Time, rtt time.Duration, err error) {
	url := strings.TrimRight(controller, "/") + "/api/v1/clock"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return server, mid, 0, fmt.Errorf("clock: %w", err)
	}
	sent := c.local.Now()
	resp, err := client.Do(req)
	if err != nil {
		return server, mid, 0, fmt.Errorf("clock: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	recv := c.local.Now()
	if err != nil {
		return server, mid, 0, fmt.Errorf("clock: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return server, mid, 0, fmt.Errorf("clock: controller answered %s", resp.Status)
	}
	var cr api.ClockResponse
	if err := json.Unmarshal(body, &cr); err != nil || cr.Now.IsZero() {
		return server, mid, 0, fmt.Errorf("clock: bad answer %.80q", body)
	}
	rtt = recv.Sub(sent)
	return cr.Now, sent.Add(rtt / 2), rtt, nil
}
