package broadcasts_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/delivery/deliverytest"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

type spoken struct{ db *store.DB }

func (s spoken) Speak(ctx context.Context, text, _, title, by string) (store.Audio, error) {
	a, _, err := s.db.CreateAudio(ctx, store.Audio{SHA256: "tts-" + text, Title: title, DurationMS: 2000, SampleRate: 22050, Channels: 1, CreatedBy: by}, nil)
	return a, err
}

func newService(t *testing.T) (*broadcasts.Service, *store.DB, *deliverytest.Broker) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Now = func() time.Time { return t0 }
	if _, err := db.ImportVillages(ctx, []store.Village{
		{Code: "110101001001", Name: "东村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"},
		{Code: "110101002001", Name: "南村", Township: "南镇", Lat: 39.8, Lon: 116.3, Device: "agent"},
	}); err != nil {
		t.Fatal(err)
	}
	d := &deliverytest.Broker{DB: db}
	svc, err := broadcasts.New(broadcasts.Options{Store: db, Delivery: d, Speech: spoken{db}, Now: db.Now})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db, d
}

// wide reaches two townships: over the default threshold of one, so it
// waits for a second person.
func wide() broadcasts.Draft {
	return broadcasts.Draft{Text: "山洪预警，请立即转移", Targets: playlists.Targets{Townships: []string{"东镇", "南镇"}},
		Priority: playlists.Emergency, Severity: 1, EventType: "山洪", ExpiresAt: t0.Add(time.Hour)}
}

var (
	li      = broadcasts.Person{Name: "li", Key: "user/1", Role: api.RoleOperator}
	boss    = broadcasts.Person{Name: "boss", Key: "user/2", Role: api.RoleAdmin}
	bossApi = broadcasts.Person{Name: "boss-script", Key: "user/2", Role: api.RoleAdmin} // a token boss minted: still boss
	wang    = broadcasts.Person{Name: "wang", Key: "user/3", Role: api.RoleApprover}
	viewer  = broadcasts.Person{Name: "zhao", Key: "user/4", Role: api.RoleViewer}
)

// TestTwoPersonRule: whoever creates a broadcast that needs approval may
// not approve or reject it, whatever their role and with whatever
// credentials of theirs; another approver may; roles hold at every door.
func TestTwoPersonRule(t *testing.T) {
	ctx := context.Background()
	svc, db, d := newService(t)
	code := func(err error) string { r, _ := cx.Reason(err); return cx.Code(err) + "/" + r }

	byBoss, err := svc.Create(ctx, boss, wide())
	if err != nil || byBoss.State != api.BroadcastPending || !byBoss.NeedsApproval {
		t.Fatalf("create: %+v %v", byBoss, err)
	}
	byLi, err := svc.Create(ctx, li, wide())
	if err != nil || byLi.State != api.BroadcastPending {
		t.Fatalf("create: %+v %v", byLi, err)
	}
	self := cx.EFORBIDDEN + "/" + api.ReasonSelfApproval
	role := cx.EFORBIDDEN + "/" + api.ReasonForbidden
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"an admin approves their own", func() error { _, err := svc.Approve(ctx, boss, byBoss.ID); return err }, self},
		{"an admin approves their own with a token they minted", func() error { _, err := svc.Approve(ctx, bossApi, byBoss.ID); return err }, self},
		{"an admin rejects their own", func() error { _, err := svc.Reject(ctx, boss, byBoss.ID, "不对"); return err }, self},
		{"an operator approves", func() error { _, err := svc.Approve(ctx, li, byLi.ID); return err }, role},
		{"a viewer approves", func() error { _, err := svc.Approve(ctx, viewer, byBoss.ID); return err }, role},
		{"an approver creates", func() error { _, err := svc.Create(ctx, wang, wide()); return err }, role},
		{"a viewer cancels", func() error { _, err := svc.Cancel(ctx, viewer, byLi.ID); return err }, role},
		{"no person approves", func() error {
			_, err := svc.Approve(ctx, broadcasts.Person{Role: api.RoleAdmin}, byLi.ID)
			return err
		}, self},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(tc.do()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	if b, _ := db.GetBroadcast(ctx, byBoss.ID); b.State != api.BroadcastPending || d.Sent(store.OutboxBroadcast) != 0 {
		t.Fatalf("after the refusals: %s, %d sent", b.State, d.Sent(store.OutboxBroadcast))
	}

	// A second person approves: it is released and delivered.
	b, err := svc.Approve(ctx, wang, byBoss.ID)
	if err != nil || b.State != api.BroadcastReleased || b.DecidedBy != "wang" || b.SentAt.IsZero() || d.Sent(store.OutboxBroadcast) != 1 {
		t.Fatalf("approve: %+v %v (%d sent)", b, err, d.Sent(""))
	}
	// An admin may approve someone else's.
	if b, err := svc.Approve(ctx, boss, byLi.ID); err != nil || b.State != api.BroadcastReleased {
		t.Fatalf("admin approves li's: %+v %v", b, err)
	}
	entries, err := db.AuditLog(ctx, store.AuditFilter{Action: "broadcast"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i := len(entries) - 1; i >= 0; i-- {
		actions = append(actions, entries[i].Actor+" "+entries[i].Action)
	}
	want := []string{"boss broadcast.create", "li broadcast.create", "wang broadcast.approve", "boss broadcast.approve"}
	if len(actions) != len(want) {
		t.Fatalf("audit log %q, want %q", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit log %q, want %q", actions, want)
		}
	}
}

// TestCreate: what the service checks and makes of a draft, whatever the
// door.
func TestCreate(t *testing.T) {
	ctx := context.Background()
	svc, _, d := newService(t)
	one := wide()
	one.Targets = playlists.Targets{Townships: []string{"东镇"}}
	b, err := svc.Create(ctx, li, one)
	if err != nil || b.State != api.BroadcastReleased || b.NeedsApproval || b.AudioID == 0 || b.Text != one.Text ||
		b.CreatedBy != "li" || b.CreatedByKey != "user/1" || b.SentAt.IsZero() || d.Sent(store.OutboxBroadcast) != 1 {
		t.Fatalf("one township: %+v %v", b, err)
	}
	// The rest of the county, by the same person alone: it waits, since
	// together they would sound both townships on one person's word.
	other := one
	other.Targets = playlists.Targets{Townships: []string{"南镇"}}
	if b, err := svc.Create(ctx, li, other); err != nil || b.State != api.BroadcastPending {
		t.Fatalf("the other township: %+v %v", b, err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(*broadcasts.Draft)
		reason string
	}{
		{"two sources", func(d *broadcasts.Draft) { d.AudioID = 1 }, api.ReasonContentChooseOne},
		{"no targets", func(d *broadcasts.Draft) { d.Targets = playlists.Targets{} }, api.ReasonTargetsEmpty},
		{"no expiry", func(d *broadcasts.Draft) { d.ExpiresAt = time.Time{} }, api.ReasonExpiresRequired},
		{"expired", func(d *broadcasts.Draft) { d.ExpiresAt = t0 }, api.ReasonExpiresPast},
		{"too far", func(d *broadcasts.Draft) { d.ExpiresAt = t0.Add(broadcasts.DefaultMaxTTL + time.Second) }, api.ReasonExpiresTooFar},
		{"full volume not emergency", func(d *broadcasts.Draft) { d.Priority, d.ForceFullVolume = playlists.Urgent, true }, api.ReasonFullVolumeEmergency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dr := one
			tc.edit(&dr)
			_, err := svc.Create(ctx, li, dr)
			if r, _ := cx.Reason(err); cx.Code(err) != cx.EINVALID || r != tc.reason {
				t.Fatalf("got %v, want reason %s", err, tc.reason)
			}
		})
	}
}

// TestStartsAt: a broadcast whose start is to come is held out of the
// outbox, so no box can have it, until its start; then Run (of another
// Service on the same database: a restarted controller) releases and
// delivers it. One cancelled while held, or expired, is never sent; one
// approved before its start stays held.
func TestStartsAt(t *testing.T) {
	ctx := context.Background()
	_, db, d := newService(t)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	db.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	newSvc := func() *broadcasts.Service {
		svc, err := broadcasts.New(broadcasts.Options{Store: db, Delivery: d, Speech: spoken{db}, Now: db.Now})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := newSvc()
	code := func(err error) string { r, _ := cx.Reason(err); return cx.Code(err) + "/" + r }
	start := t0.Add(10 * time.Minute)
	draft := func(text string) broadcasts.Draft {
		return broadcasts.Draft{Text: text, Targets: playlists.Targets{Townships: []string{"东镇"}},
			Priority: playlists.Emergency, Severity: 1, ExpiresAt: t0.Add(time.Hour), StartsAt: start}
	}
	unsent := func() int {
		es, err := db.UnsentOutbox(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	held, err := svc.Create(ctx, li, draft("十分钟后播"))
	if err != nil || held.State != api.BroadcastReleased || !held.Held || !held.StartsAt.Equal(start) {
		t.Fatalf("create: %+v %v", held, err)
	}
	cancelled, err := svc.Create(ctx, li, draft("取消的"))
	if err != nil || !cancelled.Held {
		t.Fatalf("create: %+v %v", cancelled, err)
	}
	if _, err := svc.Cancel(ctx, li, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	w := wide()
	w.StartsAt = start
	pending, err := svc.Create(ctx, li, w)
	if err != nil || pending.State != api.BroadcastPending {
		t.Fatalf("create wide: %+v %v", pending, err)
	}
	approved, err := svc.Approve(ctx, wang, pending.ID)
	if err != nil || approved.State != api.BroadcastReleased || !approved.Held {
		t.Fatalf("approved before its start: %+v %v", approved, err)
	}
	if n := unsent(); n != 0 || d.Sent("") != 0 {
		t.Fatalf("before the start: %d outbox entries, %d sent; want none (no cancellation either: no box had it)", n, d.Sent(""))
	}
	if _, err := svc.Resend(ctx, li, held.ID); code(err) != cx.ECONFLICT+"/"+api.ReasonNotStarted {
		t.Fatalf("resend before the start: %v, want %s", err, api.ReasonNotStarted)
	}
	if got, _, _ := db.NextHeldStart(ctx); !got.Equal(start) {
		t.Fatalf("next held start %v, want %v", got, start)
	}
	if rel, err := db.ReleaseHeld(ctx); err != nil || len(rel) != 0 {
		t.Fatalf("released before the start: %v %v", rel, err)
	}
	if _, err := svc.Create(ctx, li, broadcasts.Draft{Text: "x", Targets: playlists.Targets{Townships: []string{"东镇"}},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: start, StartsAt: start}); code(err) != cx.EINVALID+"/"+api.ReasonStartsAfterExpiry {
		t.Fatalf("a start at the expiry: %v, want %s", err, api.ReasonStartsAfterExpiry)
	}

	// The start comes; a Service that never saw them releases both.
	clock.Store(start.UnixNano())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- newSvc().Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for d.Sent(store.OutboxBroadcast) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not deliver the two held broadcasts at their start: %d sent", d.Sent(store.OutboxBroadcast))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{held.ID, approved.ID} {
		if b, _ := db.GetBroadcast(ctx, id); b.Held || b.SentAt.IsZero() {
			t.Fatalf("broadcast %d after its start: held %v, sent %v", id, b.Held, b.SentAt)
		}
	}
	if b, _ := db.GetBroadcast(ctx, cancelled.ID); !b.Held || !b.SentAt.IsZero() || d.Sent("") != 2 {
		t.Fatalf("the broadcast cancelled while held: held %v sent %v; %d entries sent in all, want 2", b.Held, b.SentAt, d.Sent(""))
	}
}
