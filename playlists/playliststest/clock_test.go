package playliststest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// clock is what a consumer would declare: its own interface, with the timer
// control as an unnamed interface so both the fake and a real clock fit.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (interface {
		Stop() bool
		Reset(time.Duration) bool
	}, <-chan time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (playliststest.TimerController, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

var (
	_ clock = (*playliststest.Clock)(nil)
	_ clock = realClock{}
)

var epoch = time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)

// fired reports what ch holds right now, without waiting.
func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestClockNowAndAdvance(t *testing.T) {
	c := playliststest.NewClock(epoch)
	if got := c.Now(); !got.Equal(epoch) {
		t.Fatalf("Now() = %v, want %v", got, epoch)
	}
	if got := c.Advance(90 * time.Second); !got.Equal(epoch.Add(90 * time.Second)) {
		t.Errorf("Advance returned %v", got)
	}
	if got := c.Advance(-time.Hour); !got.Equal(epoch.Add(90 * time.Second)) {
		t.Errorf("Advance(-1h) moved the clock to %v", got)
	}
	if got := c.Since(epoch); got != 90*time.Second {
		t.Errorf("Since(epoch) = %v", got)
	}
}

func TestClockTimer(t *testing.T) {
	tests := []struct {
		name    string
		d       time.Duration
		steps   []time.Duration // advances, in order
		firesAt int             // index of the step after which it fires; -1 before any; len(steps) never
	}{
		{"zero fires at once", 0, []time.Duration{time.Second}, -1},
		{"negative fires at once", -time.Second, nil, -1},
		{"exactly at the deadline", time.Minute, []time.Duration{59 * time.Second, time.Second}, 1},
		{"past the deadline", time.Minute, []time.Duration{time.Hour}, 0},
		{"not yet", time.Minute, []time.Duration{59 * time.Second}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := playliststest.NewClock(epoch)
			_, ch := c.NewTimer(tt.d)
			check := func(step int) {
				t.Helper()
				v, ok := fired(ch)
				if ok != (step == tt.firesAt) {
					t.Fatalf("after step %d: fired = %v, want firing after step %d", step, ok, tt.firesAt)
				}
				if ok && !v.Equal(epoch.Add(tt.d)) {
					t.Errorf("timer sent %v, want its deadline %v", v, epoch.Add(tt.d))
				}
			}
			check(-1)
			for i, d := range tt.steps {
				c.Advance(d)
				check(i)
			}
		})
	}
}

func TestClockTimersFireInOrder(t *testing.T) {
	c := playliststest.NewClock(epoch)
	var chans []<-chan time.Time
	for _, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		_, ch := c.NewTimer(d)
		chans = append(chans, ch)
	}
	if c.Pending() != 3 {
		t.Fatalf("Pending() = %d, want 3", c.Pending())
	}
	c.Advance(2 * time.Second)
	if c.Pending() != 1 {
		t.Fatalf("after 2s Pending() = %d, want 1", c.Pending())
	}
	for i, want := range []bool{false, true, true} {
		if _, ok := fired(chans[i]); ok != want {
			t.Errorf("timer %d fired = %v, want %v", i, ok, want)
		}
	}
}

func TestClockStopReset(t *testing.T) {
	t.Run("stop before firing", func(t *testing.T) {
		c := playliststest.NewClock(epoch)
		tm, ch := c.NewTimer(time.Minute)
		if !tm.Stop() {
			t.Error("Stop() of an armed timer = false")
		}
		c.Advance(time.Hour)
		if _, ok := fired(ch); ok {
			t.Error("a stopped timer fired")
		}
		if tm.Stop() {
			t.Error("second Stop() = true")
		}
	})
	t.Run("stop after firing drops the stale time", func(t *testing.T) {
		c := playliststest.NewClock(epoch)
		tm, ch := c.NewTimer(time.Minute)
		c.Advance(time.Minute)
		if tm.Stop() {
			t.Error("Stop() of a fired timer = true")
		}
		if _, ok := fired(ch); ok {
			t.Error("value still received after Stop")
		}
	})
	t.Run("reset pushes the deadline", func(t *testing.T) {
		c := playliststest.NewClock(epoch)
		tm, ch := c.NewTimer(time.Minute)
		c.Advance(30 * time.Second)
		if !tm.Reset(time.Minute) {
			t.Error("Reset() of an armed timer = false")
		}
		c.Advance(59 * time.Second)
		if _, ok := fired(ch); ok {
			t.Fatal("fired at the old deadline")
		}
		c.Advance(time.Second)
		if v, ok := fired(ch); !ok || !v.Equal(epoch.Add(90*time.Second)) {
			t.Errorf("fired = %v, %v; want %v", v, ok, epoch.Add(90*time.Second))
		}
	})
	t.Run("reset a fired timer", func(t *testing.T) {
		c := playliststest.NewClock(epoch)
		tm, ch := c.NewTimer(time.Second)
		c.Advance(time.Second)
		if tm.Reset(time.Second) {
			t.Error("Reset() of a fired timer = true")
		}
		if _, ok := fired(ch); ok {
			t.Fatal("stale value after Reset")
		}
		c.Advance(time.Second)
		if _, ok := fired(ch); !ok {
			t.Error("reset timer did not fire again")
		}
	})
}

// TestClockConcurrent is for -race: a goroutine waits on a timer while the
// test advances the clock.
func TestClockConcurrent(t *testing.T) {
	c := playliststest.NewClock(epoch)
	var wg sync.WaitGroup
	const n = 8
	for range n {
		wg.Add(1)
		_, ch := c.NewTimer(time.Second)
		go func() {
			defer wg.Done()
			<-ch
			_ = c.Now()
		}()
	}
	c.Advance(time.Second)
	wg.Wait()
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d after all fired", c.Pending())
	}
}
