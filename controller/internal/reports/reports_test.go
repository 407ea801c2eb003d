package reports_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/delivery/deliverytest"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/reports"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// t0 is 2026-03-01 10:00 in county time.
var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

var (
	viewer  = people.Person{Name: "zhao", Key: "user/4", Role: api.RoleViewer}
	village = people.Person{Name: "cun", Key: "user/5", Role: api.RoleVillage}
)

// fixture is a county of three villages in two townships: 东村 (a box)
// and 西村 (no box) in 东镇, 南村 (a box that never enrolled) in 南镇;
// a broadcast to all that 东村's box played and 西村 confirmed by hand, a
// test broadcast, and a schedule that played once at 10:30.
type fixture struct {
	db                *store.DB
	svc               *reports.Service
	now               time.Time
	real, test, sched int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, now: t0}
	db.Now = func() time.Time { return f.now }
	if _, err := db.ImportVillages(ctx, []store.Village{
		{Code: "110101001001", Name: "东村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"},
		{Code: "110101001002", Name: "西村", Township: "东镇", Lat: 39.9, Lon: 116.3, Device: "manual"},
		{Code: "110101002001", Name: "南村", Township: "南镇", Lat: 39.8, Lon: 116.3, Device: "agent"},
	}); err != nil {
		t.Fatal(err)
	}
	a, _, err := db.CreateAudio(ctx, store.Audio{SHA256: "clip", Title: "防汛通知", DurationMS: 60_000, SampleRate: 22050, Channels: 1, CreatedBy: "li"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := playlists.Targets{All: true}
	for _, test := range []bool{false, true} {
		b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: all, Priority: playlists.Routine, Severity: 4, Repeat: 1, Volume: 80, Test: test,
			ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if test {
			f.test = b.ID
		} else {
			f.real = b.ID
		}
	}
	pl, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "早间新闻", Items: []playlists.Item{{AudioID: a.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(30 * time.Minute)
	sc, err := db.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: all, Timezone: playlists.DefaultTimezone, OnceAt: &at}, "li")
	if err != nil {
		t.Fatal(err)
	}
	f.sched = sc.ID
	if err := (&deliverytest.Broker{DB: db}).Deliver(ctx, "", ""); err != nil { // sent
		t.Fatal(err)
	}
	f.now = t0.Add(5 * time.Minute)
	started := t0.Add(time.Minute)
	if _, err := db.IngestEvents(ctx, []store.IngestBatch{{Village: "110101001001", ReceivedAt: f.now, Events: []api.Event{
		{Seq: 1, Type: api.EventStarted, At: started, BroadcastID: f.real},
		{Seq: 2, Type: api.EventFinished, At: started.Add(time.Minute), BroadcastID: f.real},
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateConfirmation(ctx, store.Confirmation{Village: "110101001002", BroadcastID: f.real, PlayedAt: started, CreatedBy: "cun"}); err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(3 * time.Hour) // every window is over
	if f.svc, err = reports.New(reports.Options{Store: db, Now: func() time.Time { return f.now }}); err != nil {
		t.Fatal(err)
	}
	return f
}

func reason(err error) string { r, _ := cx.Reason(err); return r }

// TestCheck: who may read a report and what range it may cover are the
// service's rules, whatever the door.
func TestCheck(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		p        people.Person
		q        reports.Query
		reason   string // "" for accepted
		from, to string
	}{
		{"today by default", viewer, reports.Query{}, "", "2026-03-01", "2026-03-01"},
		{"to defaults to from", viewer, reports.Query{From: "2026-02-27"}, "", "2026-02-27", "2026-02-27"},
		{"a month", viewer, reports.Query{From: "2026-01-01", To: "2026-01-31"}, "", "2026-01-01", "2026-01-31"},
		{"village account", village, reports.Query{}, api.ReasonForbidden, "", ""},
		{"not a date", viewer, reports.Query{From: "1 March"}, api.ReasonDateInvalid, "", ""},
		{"backwards", viewer, reports.Query{From: "2026-03-02", To: "2026-03-01"}, api.ReasonRangeOrder, "", ""},
		{"too long", viewer, reports.Query{From: "2026-01-01", To: "2026-02-01"}, api.ReasonRangeTooLong, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := f.svc.Check(tt.p, tt.q)
			if reason(err) != tt.reason {
				t.Fatalf("err = %v, want reason %q", err, tt.reason)
			}
			loc := f.svc.Location()
			day := func(d string) time.Time { t, _ := time.ParseInLocation(time.DateOnly, d, loc); return t }
			if tt.reason == "" && (r.From != tt.from || r.To != tt.to || !r.Start.Equal(day(tt.from)) || !r.End.Equal(day(tt.to).AddDate(0, 0, 1))) {
				t.Fatalf("range = %+v", r)
			}
		})
	}
}

// TestCoverage: a report counts every released, non-test broadcast and
// every begun occurrence, village by village, and names who did not play.
func TestCoverage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.svc.Check(viewer, reports.Query{From: "2026-03-01"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.svc.Coverage(ctx, r, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 3 {
		t.Fatalf("items = %+v", rep.Items)
	}
	byKind := map[string]api.ReportItem{}
	for _, it := range rep.Items {
		if it.Kind == "broadcast" && it.Test {
			byKind["test"] = it
		} else {
			byKind[it.Kind] = it
		}
	}
	b, test, sc := byKind["broadcast"], byKind["test"], byKind["schedule"]
	if b.ID != f.real || !b.Counted || b.Targeted != 3 || b.Played != 2 || b.PlayedByBox != 1 || b.PlayedByHand != 1 || b.State != "done" {
		t.Errorf("broadcast = %+v", b)
	}
	if len(b.NotPlayed) != 1 || b.NotPlayed[0].Code != "110101002001" || b.NotPlayed[0].ReasonCode != coverage.ReasonNeverEnrolled {
		t.Errorf("not played = %+v", b.NotPlayed)
	}
	if test.ID != f.test || test.Counted {
		t.Errorf("a test broadcast counted: %+v", test)
	}
	if sc.ID != f.sched || !sc.Counted || sc.Title != "早间新闻" || sc.Targeted != 3 || sc.Played != 0 || len(sc.NotPlayed) != 3 {
		t.Errorf("schedule = %+v", sc)
	}
	// Totals: the counted items only (the broadcast and the occurrence).
	if rep.Totals.Targeted != 6 || rep.Totals.Played != 2 || len(rep.Days) != 1 || rep.Days[0].Items != 2 || len(rep.Townships) != 2 {
		t.Errorf("totals = %+v, days %+v, townships %+v", rep.Totals, rep.Days, rep.Townships)
	}

	// One township: only its villages.
	r, err = f.svc.Check(viewer, reports.Query{From: "2026-03-01", Township: " 东镇 "})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err = f.svc.Coverage(ctx, r, f.now); err != nil {
		t.Fatal(err)
	}
	if rep.Township != "东镇" || rep.Totals.Targeted != 4 || rep.Totals.Played != 2 || len(rep.Townships) != 1 {
		t.Errorf("东镇 = %+v, townships %+v", rep.Totals, rep.Townships)
	}
	// A day before anything: empty, with its day.
	r, _ = f.svc.Check(viewer, reports.Query{From: "2026-02-28"})
	if rep, err = f.svc.Coverage(ctx, r, f.now); err != nil || len(rep.Items) != 0 || len(rep.Days) != 1 || rep.Totals.Targeted != 0 {
		t.Errorf("2026-02-28 = %+v, %v", rep, err)
	}
	// An occurrence not yet begun is not in the report.
	r, _ = f.svc.Check(viewer, reports.Query{From: "2026-03-01"})
	if rep, err = f.svc.Coverage(ctx, r, t0.Add(10*time.Minute)); err != nil || len(rep.Items) != 2 {
		t.Errorf("at 10:10: %d items, %v", len(rep.Items), err)
	}

	r, _ = f.svc.Check(viewer, reports.Query{Township: "北镇"})
	if _, err := f.svc.Coverage(ctx, r, f.now); reason(err) != api.ReasonTownshipUnknown {
		t.Errorf("unknown township: %v", err)
	}
}

// TestCoveragePages: a broadcast's and a schedule occurrence's coverage
// are the same computation as a report's items.
func TestCoveragePages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bc, err := f.svc.Broadcast(ctx, viewer, f.real)
	if err != nil || bc.State != "done" || bc.Targeted != 3 || bc.Played != 2 {
		t.Fatalf("broadcast coverage = %+v, %v", bc, err)
	}
	if _, err := f.svc.Broadcast(ctx, village, f.real); reason(err) != api.ReasonForbidden {
		t.Errorf("village account: %v", err)
	}
	sc, err := f.svc.Schedule(ctx, viewer, f.sched, time.Time{})
	if err != nil || !sc.Occurrence.Equal(t0.Add(30*time.Minute)) || sc.Targeted != 3 {
		t.Fatalf("schedule coverage = %+v, %v", sc, err)
	}
	if _, err := f.svc.Schedule(ctx, viewer, f.sched, t0); reason(err) != api.ReasonNotOccurrence {
		t.Errorf("not an occurrence: %v", err)
	}
}

func TestTitle(t *testing.T) {
	long := "山洪预警山洪预警山洪预警山洪预警山洪预警山洪预警山洪预警山洪预警山洪预警山洪预警山洪预警"
	for _, tt := range []struct {
		b    store.Broadcast
		want string
	}{
		{store.Broadcast{Text: "停水通知"}, "停水通知"},
		{store.Broadcast{Text: long}, string([]rune(long)[:40]) + "…"},
		{store.Broadcast{Playlist: playlists.Playlist{Name: "早间新闻"}, PlaylistID: 3}, "早间新闻"},
		{store.Broadcast{AudioID: 7}, "audio 7"},
		{store.Broadcast{PlaylistID: 3}, "playlist 3"},
	} {
		if got := reports.Title(tt.b); got != tt.want {
			t.Errorf("Title(%+v) = %q, want %q", tt.b, got, tt.want)
		}
	}
}
