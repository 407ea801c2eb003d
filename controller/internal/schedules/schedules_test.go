package schedules_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/delivery/deliverytest"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/schedules"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func newService(t *testing.T) (*schedules.Service, *store.DB, *deliverytest.Broker, int64) {
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
	}); err != nil {
		t.Fatal(err)
	}
	au, _, err := db.CreateAudio(ctx, store.Audio{SHA256: "aa", DurationMS: 3000, SampleRate: 22050, Channels: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "早间新闻", Items: []playlists.Item{{AudioID: au.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	d := &deliverytest.Broker{DB: db}
	svc, err := schedules.New(schedules.Options{Store: db, Delivery: d, DeliverWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db, d, pl.ID
}

var clerk = people.Person{Name: "clerk", Key: "user/2", Role: api.RoleOperator, From: "10.0.0.7"}

func auditOf(t *testing.T, db *store.DB, object string) []store.AuditEntry {
	t.Helper()
	es, err := db.AuditLog(context.Background(), store.AuditFilter{Object: object})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// A schedule is made and withdrawn in the person's name, each step on
// the audit log, and withdrawing it again repeats the withdrawal on the
// boxes through the outbox.
func TestCreateAndWithdraw(t *testing.T) {
	ctx := context.Background()
	svc, db, d, pl := newService(t)
	at := t0.Add(time.Hour)
	sc, pending, err := svc.Create(ctx, clerk, schedules.Draft{PlaylistID: pl, Targets: playlists.Targets{Townships: []string{"东镇"}}, OnceAt: &at})
	if err != nil || pending {
		t.Fatalf("create: %v, pending %v", err, pending)
	}
	if sc.CreatedBy != "clerk" || sc.Timezone != playlists.DefaultTimezone || d.Sent(store.OutboxSchedule) != 1 {
		t.Fatalf("created %+v, delivered %d", sc, d.Sent(""))
	}
	object := schedules.Object(sc)
	if es := auditOf(t, db, object); len(es) != 1 || es[0].Action != "schedule.create" || es[0].Actor != "clerk" || es[0].RemoteAddr != "10.0.0.7" || es[0].Params["groups"] == "" {
		t.Fatalf("audit after create = %+v", es)
	}
	for i := 1; i <= 2; i++ {
		w, pending, err := svc.Withdraw(ctx, clerk, sc.ID)
		if err != nil || pending || w.WithdrawnAt.IsZero() {
			t.Fatalf("withdrawal %d: %+v, %v, pending %v", i, w, err, pending)
		}
		if d.Sent(store.OutboxWithdraw) != i {
			t.Fatalf("after withdrawal %d the boxes were told %d times", i, d.Sent(store.OutboxWithdraw))
		}
	}
	withdrawals := 0
	for _, e := range auditOf(t, db, object) {
		if e.Action == "schedule.withdraw" && e.Actor == "clerk" {
			withdrawals++
		}
	}
	if withdrawals != 2 {
		t.Fatalf("audit has %d withdrawals, want 2", withdrawals)
	}
}

// A broker that does not take the change leaves it stored and pending.
func TestPending(t *testing.T) {
	ctx := context.Background()
	svc, db, d, pl := newService(t)
	d.SetDown(true)
	at := t0.Add(time.Hour)
	sc, pending, err := svc.Create(ctx, clerk, schedules.Draft{PlaylistID: pl, Targets: playlists.Targets{All: true}, OnceAt: &at})
	if err != nil || !pending {
		t.Fatalf("create: %v, pending %v", err, pending)
	}
	if unsent, _, err := db.OutboxUnsentFor(ctx, store.OutboxSchedule, store.IDRef(sc.ID)); err != nil || !unsent {
		t.Fatalf("outbox unsent %v, %v", unsent, err)
	}
	if _, pending, err := svc.Withdraw(ctx, clerk, sc.ID); err != nil || !pending {
		t.Fatalf("withdraw: %v, pending %v", err, pending)
	}
}

func TestRefused(t *testing.T) {
	ctx := context.Background()
	svc, db, _, pl := newService(t)
	at := t0.Add(time.Hour)
	ok := schedules.Draft{PlaylistID: pl, Targets: playlists.Targets{All: true}, OnceAt: &at}
	tests := []struct {
		name   string
		p      people.Person
		d      func(d *schedules.Draft)
		code   string
		field  string
		reason string
	}{
		{"viewer", people.Person{Name: "v", Role: api.RoleViewer}, func(*schedules.Draft) {}, cx.EFORBIDDEN, "", api.ReasonForbidden},
		{"approver", people.Person{Name: "a", Role: api.RoleApprover}, func(*schedules.Draft) {}, cx.EFORBIDDEN, "", api.ReasonForbidden},
		{"no playlist", clerk, func(d *schedules.Draft) { d.PlaylistID = 0 }, cx.EINVALID, "playlist_id", playlists.ReasonPlaylistRequired},
		{"no targets", clerk, func(d *schedules.Draft) { d.Targets = playlists.Targets{} }, cx.EINVALID, "targets", playlists.ReasonTargetsEmpty},
		{"unknown zone", clerk, func(d *schedules.Draft) { d.Timezone = "Mars/Olympus" }, cx.EINVALID, "timezone", playlists.ReasonTimezoneUnknown},
		{"machine's zone", clerk, func(d *schedules.Draft) { d.Timezone = "Local" }, cx.EINVALID, "timezone", playlists.ReasonTimezoneUnknown},
		{"no time", clerk, func(d *schedules.Draft) { d.OnceAt = nil }, cx.EINVALID, "once_at", playlists.ReasonScheduleWhen},
		{"once in the past", clerk, func(d *schedules.Draft) { d.OnceAt = ptr(t0.Add(-time.Hour)) }, cx.EINVALID, "once_at", api.ReasonOnceInPast},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			tt.d(&d)
			_, _, err := svc.Create(ctx, tt.p, d)
			var ce *cx.Error
			var fe *playlists.FieldError
			switch {
			case errors.As(err, &ce) && ce.Code == tt.code && ce.Field == tt.field && ce.Reason == tt.reason:
			case errors.As(err, &fe) && tt.code == cx.EINVALID && fe.Field == tt.field && fe.Reason == tt.reason:
			default:
				t.Fatalf("err = %#v, want %s %s %s", err, tt.code, tt.field, tt.reason)
			}
		})
	}
	if _, _, err := svc.Withdraw(ctx, people.Person{Name: "v", Role: api.RoleViewer}, 1); cx.Code(err) != cx.EFORBIDDEN {
		t.Fatalf("viewer withdrew: %v", err)
	}
	if es := auditOf(t, db, "schedule"); len(es) != 0 {
		t.Fatalf("refusals were audited as changes: %+v", es)
	}
}

func ptr[T any](v T) *T { return &v }
