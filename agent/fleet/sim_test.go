package fleet_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/fleet"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// syncBuffer is a bytes.Buffer safe to write from Simulate while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The simulator imports and enrolls its villages through the admin API,
// and its boxes, each with a clock up to 5 minutes wrong and losing 30% of
// their report publishes, all play a scheduled occurrence on controller
// time, and every report ends up acked.
func TestSimulatorSkewedLossyFleetPlaysOnTimeAndRepairsLostReports(t *testing.T) {
	t.Parallel()
	const n = 20
	c := newController(t, controllerOptions{autoAck: true, contiguousAck: true, adminToken: "admin-secret"})

	// The schedule is retained before the boxes exist: each box hears it
	// on connecting, downloads the clip, and plays at the occurrence.
	item := c.AddClip(5, tone(300, 5))
	at := c.Now().Add(6 * time.Second).Truncate(time.Second)
	st := onceAt(9, "", at, item)
	st.Schedule.Targets = playlists.Targets{All: true}
	c.PutSchedule(api.GroupAll, st)

	out := &syncBuffer{}
	res, err := fleet.Simulate(t.Context(), fleet.SimOptions{
		Controller:  c.http.URL,
		Token:       "admin-secret",
		Dir:         t.TempDir(),
		N:           n,
		Import:      true,
		Skew:        5 * time.Minute,
		ReportLoss:  0.3,
		Duration:    16 * time.Second,
		ResendAfter: time.Second,
		StatusEvery: 2 * time.Second,
		ReadyLine:   true,
		Out:         out,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Boxes != n || res.Connected != n {
		t.Errorf("boxes %d, connected %d at the end; want %d", res.Boxes, res.Connected, n)
	}
	if !strings.Contains(out.String(), "connected 20/20") {
		t.Errorf("no connect progress reaching 20/20")
	}
	if !strings.Contains(out.String(), "\nREADY 20\n") {
		t.Errorf("no READY 20 line for scripts")
	}
	if res.Occurrences[api.EventStarted] != n || res.Played != n {
		t.Errorf("occurrences %v, played %d; want %d started", res.Occurrences, res.Played, n)
	}
	if res.Lost == 0 {
		t.Errorf("no report publish was lost (%d published): the loss knob did nothing", res.Publishes)
	}
	if res.ReportsPending != 0 || res.ReportsMade == 0 {
		t.Errorf("reports made %d, still pending %d; want all acked", res.ReportsMade, res.ReportsPending)
	}
	c.mu.Lock()
	villages := append([]string(nil), c.villages...)
	c.mu.Unlock()
	if len(villages) != n {
		t.Fatalf("imported %d villages, want %d", len(villages), n)
	}
	skewed := 0
	for _, v := range villages {
		if p, ok := c.LastPresence(v); ok && (p.ClockOffsetMS > 5000 || p.ClockOffsetMS < -5000) {
			skewed++
		}
		started := c.Find(v, api.EventStarted, 9)
		if len(started) != 1 {
			t.Errorf("village %s: %d started reports reached the controller, want 1", v, len(started))
			continue
		}
		// Started on controller time despite the box's own clock being
		// up to 5 minutes off.
		if late := started[0].At.Sub(at); late < -200*time.Millisecond || late > 1500*time.Millisecond {
			t.Errorf("village %s started at %s (controller time), occurrence %s: %s off", v, started[0].At, at, late)
		}
		if len(c.Find(v, api.EventFinished, 9)) != 1 {
			t.Errorf("village %s: no finished report reached the controller", v)
		}
	}
	// Uniform in ±5 min: a box within 5 s of true time is 1 in 60.
	if skewed < n/2 {
		t.Errorf("only %d of %d boxes measured a clock offset beyond 5 s: the skew knob did nothing", skewed, n)
	}
}
