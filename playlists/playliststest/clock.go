// Package playliststest provides a fake clock and fixtures for testing code
// built on package playlists, the way net/http/httptest serves net/http:
// a Clock that moves only when told, and a deterministic sample county.
package playliststest

import (
	"sort"
	"sync"
	"time"
)

// TimerController is the control half of a timer; *time.Timer has both
// methods. It aliases an unnamed interface type, so a consumer may declare
// its own Clock interface with a method
//
//	NewTimer(d time.Duration) (interface{ Reset(time.Duration) bool; Stop() bool }, <-chan time.Time)
//
// and both *Clock and a small adapter around time.NewTimer satisfy it.
type TimerController = interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// Clock is a fake clock, after tailscale's tstest.Clock: Now stands still
// until Advance moves it, and timers fire during Advance, in deadline
// order. It is safe for concurrent use. The zero Clock is not usable; call
// NewClock.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer // armed, unordered
}

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Since is Now().Sub(t).
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Advance moves the clock forward by d (a negative d is treated as zero),
// fires every timer whose deadline is reached, earliest first, and returns
// the new time. A timer's channel receives its deadline, as a real timer's
// receives about the time it fired.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	var due, keep []*fakeTimer
	for _, t := range c.timers {
		if t.when.After(c.now) {
			keep = append(keep, t)
		} else {
			due = append(due, t)
		}
	}
	c.timers = keep
	sort.SliceStable(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	for _, t := range due {
		t.fire()
	}
	return c.now
}

// Pending is the number of armed timers, so a test can wait until the code
// under test has armed one before it calls Advance.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// NewTimer returns a timer that fires once the clock has advanced by d;
// a d of zero or less fires at once. Like a Go 1.23 timer, Stop and Reset
// guarantee that no stale time is received afterwards.
func (c *Clock) NewTimer(d time.Duration) (TimerController, <-chan time.Time) {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm(t, d)
	return t, t.ch
}

// arm schedules t to fire d after now; c.mu is held.
func (c *Clock) arm(t *fakeTimer, d time.Duration) {
	t.when = c.now.Add(d)
	if d <= 0 {
		t.fire()
		return
	}
	c.timers = append(c.timers, t)
}

// disarm removes t and reports whether it was armed; c.mu is held.
func (c *Clock) disarm(t *fakeTimer) bool {
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

type fakeTimer struct {
	c    *Clock
	ch   chan time.Time
	when time.Time
}

// fire delivers the deadline without blocking; the buffer holds one.
func (t *fakeTimer) fire() {
	select {
	case t.ch <- t.when:
	default:
	}
}

func (t *fakeTimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}

// Stop disarms the timer and reports whether it was armed.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	return t.c.disarm(t)
}

// Reset re-arms the timer to fire d from now and reports whether it was
// armed before.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	was := t.c.disarm(t)
	t.c.arm(t, d)
	return was
}
