package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/demo"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestEmergencyTwoPersonInterruptAndCancel is the county's emergency
// drill with 79 real boxes: an operator's county-wide emergency waits for
// a second person; the operator cannot approve it; an approver does; it
// cuts the routine announcement that is playing (reported partial) and
// every box plays it. A second emergency is cancelled while it plays.
// Everything is in the audit log.
func TestEmergencyTwoPersonInterruptAndCancel(t *testing.T) {
	t.Parallel()
	h := startController(t, harnessOptions{})
	fl := h.county(t, h.BrokerURL)
	ctx := context.Background()

	for _, u := range [][2]string{{"zhang", "operator"}, {"li", "approver"}} {
		if _, err := h.Client.CreateUser(ctx, api.UserRequest{Username: u[0], DisplayName: u[0], Role: u[1], Village: "", Password: "correct horse battery " + u[0]}); err != nil {
			t.Fatalf("create %s: %v", u[0], err)
		}
	}
	op, err := h.Client.Login(ctx, "zhang", "correct horse battery zhang")
	if err != nil {
		t.Fatal(err)
	}
	ap, err := h.Client.Login(ctx, "li", "correct horse battery li")
	if err != nil {
		t.Fatal(err)
	}

	// A long routine announcement (the whole 11.5 s demo notice) is playing…
	long, err := op.UploadAudio(ctx, "notice.wav", "防疫通知", demo.Announcement)
	if err != nil {
		t.Fatal(err)
	}
	short, err := op.UploadAudio(ctx, "alarm.wav", "紧急", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := op.CreatePlaylist(ctx, playlists.Playlist{Name: "通知", Items: []playlists.Item{{AudioID: long.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(10 * time.Second).Truncate(time.Second)
	sid, err := op.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "routine announcement sounding on every box", func() bool {
		return time.Now().After(at.Add(2 * time.Second))
	})

	// …when the operator sends a county-wide emergency.
	br, err := op.CreateBroadcast(ctx, api.BroadcastRequest{
		AudioID: short.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: "flood", ExpiresAt: client.ExpiresAt(time.Now().Add(10 * time.Minute)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if br.State != "pending_approval" {
		t.Fatalf("county-wide emergency state %q, want pending_approval", br.State)
	}
	var apiErr *client.Error
	if _, err := op.ApproveBroadcast(ctx, br.ID); !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Fatalf("self-approval: %v, want 403", err)
	}
	if _, err := ap.ApproveBroadcast(ctx, br.ID); err != nil {
		t.Fatalf("approval by a second person: %v", err)
	}
	cov := waitBroadcast(t, op, br.ID, 30*time.Second, func(c api.BroadcastCoverage) bool { return c.PlayedByBox == 79 })
	if cov.Targeted != 81 || cov.AwaitingConfirmation != 2 || cov.Test {
		t.Fatalf("emergency coverage %s", summary(cov.CoverageDetail))
	}
	// The routine notice was cut on every box: partial, not played.
	rc := waitCoverage(t, h, sid.ID, at, 30*time.Second, func(c api.Coverage) bool { return c.Partial+c.Played == 79 })
	if rc.Partial != 79 {
		t.Fatalf("routine coverage after the emergency: %s (want 79 partial)", summary(rc.CoverageDetail))
	}

	// A second emergency, the long notice, approved and then cancelled
	// while it plays: every box stops and reports cancelled.
	br2, err := op.CreateBroadcast(ctx, api.BroadcastRequest{
		AudioID: long.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 2, EventType: "fire", ExpiresAt: client.ExpiresAt(time.Now().Add(10 * time.Minute)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ap.ApproveBroadcast(ctx, br2.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "second emergency sounding", func() bool {
		n := 0
		for _, v := range fl.Villages() {
			if st, _ := fl.BroadcastOutcome(v, br2.ID); st == "started" {
				n++
			}
		}
		return n == 79
	})
	cancelled := time.Now()
	if _, err := op.CancelBroadcast(ctx, br2.ID); err != nil {
		t.Fatal(err)
	}
	cov2 := waitBroadcast(t, op, br2.ID, 15*time.Second, func(c api.BroadcastCoverage) bool { return c.Cancelled >= 79 })
	if took := time.Since(cancelled); took > 11*time.Second {
		t.Fatalf("boxes took %s to stop; the notice would have ended by itself", took)
	}
	if cov2.PlayedByBox != 0 {
		t.Fatalf("cancelled broadcast counted as played: %s", summary(cov2.CoverageDetail))
	}

	entries, err := h.Client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"broadcast.create": false, "broadcast.approve": false, "broadcast.cancel": false, "denied": false}
	for _, e := range entries {
		if _, ok := want[e.Action]; ok {
			want[e.Action] = true
		}
	}
	for a, seen := range want {
		if !seen {
			t.Errorf("audit log has no %q entry", a)
		}
	}
}

func waitBroadcast(tb testing.TB, c *client.Client, id int64, within time.Duration, ok func(api.BroadcastCoverage) bool) api.BroadcastCoverage {
	tb.Helper()
	deadline := time.Now().Add(within)
	var cov api.BroadcastCoverage
	var err error
	for time.Now().Before(deadline) {
		if cov, err = c.BroadcastCoverage(context.Background(), id); err == nil && ok(cov) {
			return cov
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("broadcast %d coverage did not settle in %s: %s (err %v)", id, within, summary(cov.CoverageDetail), err)
	return cov
}
