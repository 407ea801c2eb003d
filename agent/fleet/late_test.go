package fleet_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// boxBroadcast answers a box that asks whether a late broadcast is still
// active, as the controller's GET /api/v1/box/broadcasts/{id} does.
func (c *testController) boxBroadcast(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if u, _, ok := r.BasicAuth(); err != nil || !ok || !strings.HasPrefix(u, "box-") {
		writeError(w, http.StatusUnauthorized, "unauthorized", "box credentials needed")
		return
	}
	c.mu.Lock()
	status, ok := c.checks[id]
	c.mu.Unlock()
	if !ok {
		status = api.CheckActive
	}
	json.NewEncoder(w).Encode(api.BroadcastCheck{ID: id, Status: status})
}

// SetCheck makes the controller answer status about broadcast id.
func (c *testController) SetCheck(id int64, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[int64]string{}
	}
	c.checks[id] = status
}

// PublishLate publishes a genuinely signed broadcast.put issued `ago`
// (a stale or replayed copy, as a broker might serve it).
func (c *testController) PublishLate(g api.Group, b api.BroadcastState, ago time.Duration) {
	cmd := c.Command(api.KindBroadcastPut, g)
	cmd.IssuedAt = cmd.IssuedAt.Add(-ago)
	b.IssuedAt = cmd.IssuedAt
	cmd.Broadcast = &b
	cmd.ExpiresAt = b.ExpiresAt.Add(24 * time.Hour)
	c.Publish(c.topics.Broadcast(g, b.ID), c.Sign(cmd, nil))
}

func rejectedWith(c *testController, id int64, words string) bool {
	for _, e := range c.FindBroadcast(villageA, api.EventRejected, id) {
		if strings.Contains(e.Reason, words) {
			return true
		}
	}
	return false
}

// TestAttackStaleRetainedCancelledBroadcastPlays: a broker serves a box a
// genuinely signed emergency that an operator has since cancelled (stale
// retained state, or a captured copy replayed). The box received it long
// after it was issued, asks the controller, and does not play it; a late
// broadcast the controller confirms still plays.
func TestAttackStaleRetainedCancelledBroadcastPlays(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	f := startFleet(t, c, villageA)
	alarm := c.AddClip(1, tone(300, 31))
	g := api.VillageGroup(villageA)

	c.SetCheck(1, api.CheckCancelled)
	c.PublishLate(g, broadcastOf(c, 1, playlists.Emergency, time.Hour, alarm), 10*time.Minute)
	waitFor(t, 10*time.Second, "the box to refuse the cancelled broadcast", func() bool { return rejectedWith(c, 1, "the controller says it is cancelled") })

	// The marker: a late broadcast the controller confirms plays.
	c.PublishLate(g, broadcastOf(c, 2, playlists.Emergency, time.Hour, alarm), 10*time.Minute)
	waitFor(t, 10*time.Second, "the confirmed late broadcast to finish", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 2)) == 1 })
	if got := c.FindBroadcast(villageA, api.EventStarted, 1); len(got) != 0 {
		t.Fatalf("the cancelled broadcast sounded: %+v", got)
	}
	outcome(t, f, villageA, 1, api.EventCancelled, 0)

	// Served again (a reconnect), it is not even asked about: it is over.
	c.SetCheck(1, api.CheckActive)
	c.PublishLate(g, broadcastOf(c, 1, playlists.Emergency, time.Hour, alarm), 10*time.Minute)
	c.PublishLate(g, broadcastOf(c, 3, playlists.Emergency, time.Hour, alarm), 10*time.Minute)
	waitFor(t, 10*time.Second, "the next late broadcast to finish", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 3)) == 1 })
	if got := c.FindBroadcast(villageA, api.EventStarted, 1); len(got) != 0 {
		t.Fatalf("the cancelled broadcast sounded on a later copy: %+v", got)
	}
}

// TestLateEmergencyPlaysWithControllerDown: the controller cannot be
// reached; a valid unexpired emergency received late plays all the same
// (availability beats doubt), a late routine broadcast waits.
func TestLateEmergencyPlaysWithControllerDown(t *testing.T) {
	t.Parallel()
	c := newController(t, controllerOptions{autoAck: true})
	startFleet(t, c, villageA)
	alarm := c.AddClip(1, tone(300, 41))
	g := api.VillageGroup(villageA)
	// The clip is on the box from an earlier broadcast.
	c.PutBroadcast(g, broadcastOf(c, 1, playlists.Emergency, time.Hour, alarm))
	waitFor(t, 10*time.Second, "broadcast 1 to finish", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 1)) == 1 })

	c.http.Close() // the controller is unreachable; the broker is up
	c.SetCheck(2, api.CheckCancelled)
	c.PublishLate(g, broadcastOf(c, 3, playlists.Routine, time.Hour, alarm), 10*time.Minute)
	waitFor(t, 15*time.Second, "the late routine broadcast to wait for confirmation", func() bool { return rejectedWith(c, 3, "could not confirm") })
	c.PublishLate(g, broadcastOf(c, 2, playlists.Emergency, time.Hour, alarm), 10*time.Minute)
	waitFor(t, 15*time.Second, "the late emergency to finish", func() bool { return len(c.FindBroadcast(villageA, api.EventFinished, 2)) == 1 })
	if got := c.FindBroadcast(villageA, api.EventStarted, 3); len(got) != 0 {
		t.Fatalf("the unconfirmed routine broadcast sounded: %+v", got)
	}
}
