package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// clock is a settable time source for DB.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func openDB(tb testing.TB) (*store.DB, *clock, string) {
	tb.Helper()
	path := testDSN(tb)
	db, err := store.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	c := &clock{t: t0}
	db.Now = c.Now
	return db, c, path
}

func seedVillages(tb testing.TB, db *store.DB) {
	tb.Helper()
	_, err := db.ImportVillages(context.Background(), []store.Village{
		{Code: "110101001001", Name: "东村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"},
		{Code: "110101001002", Name: "西村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"},
		{Code: "110101002001", Name: "南村", Township: "南镇", Lat: 39.8, Lon: 116.3, Device: "manual"},
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func enroll(tb testing.TB, db *store.DB, village string) store.AgentCredentials {
	tb.Helper()
	ctx := context.Background()
	et, err := db.CreateEnrollToken(ctx, village, 0, "test")
	if err != nil {
		tb.Fatal(err)
	}
	creds, err := db.Enroll(ctx, api.EnrollRequest{Village: village, Token: et.Token, AgentVersion: "1.0"})
	if err != nil {
		tb.Fatal(err)
	}
	return creds
}

func code(err error) string { return cx.Code(err) }

func TestOpenTwiceKeepsDataAndSeq(t *testing.T) {
	ctx := context.Background()
	db, _, path := openDB(t)
	seedVillages(t, db)
	a, err := db.NextCommandSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := db.NextCommandSeq(ctx)
	if a != 1 || b != 2 {
		t.Fatalf("seq = %d, %d; want 1, 2", a, b)
	}
	db.Close()
	db2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	c, err := db2.NextCommandSeq(ctx)
	if err != nil || c != 3 {
		t.Fatalf("after reopen seq = %d, %v; want 3", c, err)
	}
	vs, err := db2.Villages(ctx)
	if err != nil || len(vs) != 3 {
		t.Fatalf("villages after reopen = %d, %v", len(vs), err)
	}
}

func TestImportVillagesCounts(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	c, err := db.ImportVillages(ctx, []store.Village{
		{Code: "110101001001", Name: "东村二", Township: "东镇", Device: "manual"},
		{Code: "110101003001", Name: "北村", Township: "北镇", Device: "agent"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.ImportCounts{Created: 1, Updated: 1, Total: 2}); c != want {
		t.Fatalf("counts = %+v, want %+v", c, want)
	}
	vs, _ := db.Villages(ctx)
	want := []playlists.Village{
		{Code: "110101001001", Name: "东村二", Township: "东镇", Device: "manual"},
		{Code: "110101001002", Name: "西村", Township: "东镇", Device: "agent"},
		{Code: "110101002001", Name: "南村", Township: "南镇", Device: "manual"},
		{Code: "110101003001", Name: "北村", Township: "北镇", Device: "agent"},
	}
	if !reflect.DeepEqual(vs, want) {
		t.Fatalf("villages = %+v", vs)
	}
}

func TestEnsureAdminToken(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	tok, created, err := db.EnsureAdminToken(ctx)
	if err != nil || !created || tok == "" {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	tok2, created2, err := db.EnsureAdminToken(ctx)
	if err != nil || created2 || tok2 != "" {
		t.Fatalf("second: %q %v %v", tok2, created2, err)
	}
	got, err := db.Authenticate(ctx, tok)
	if err != nil || got.Role != api.RoleAdmin || got.Name != "admin" {
		t.Fatalf("authenticate = %+v, %v", got, err)
	}
	if _, err := db.Authenticate(ctx, tok+"x"); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := db.RevokeToken(ctx, got.ID); code(err) != cx.ECONFLICT {
		t.Fatalf("revoking the last admin: %v", err)
	}
	staff, secret, err := db.CreateToken(ctx, "clerk", api.RoleOperator, "", store.Token{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeToken(ctx, staff.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, secret); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("revoked token still works: %v", err)
	}
}

func TestEnrollAndCheckAgentPassword(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)

	if _, err := db.CreateEnrollToken(ctx, "110101002001", 0, "t"); code(err) != cx.ECONFLICT {
		t.Fatalf("manual village: %v", err)
	}
	if _, err := db.CreateEnrollToken(ctx, "999999999999", 0, "t"); code(err) != cx.ENOTFOUND {
		t.Fatalf("unknown village: %v", err)
	}
	et, err := db.CreateEnrollToken(ctx, "110101001001", time.Hour, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enroll(ctx, api.EnrollRequest{Village: "110101001002", Token: et.Token}); code(err) != cx.EUNAUTHORIZED {
		t.Fatalf("token of another village: %v", err)
	}
	creds, err := db.Enroll(ctx, api.EnrollRequest{Village: "110101001001", Token: et.Token, AgentVersion: "1.2"})
	if err != nil {
		t.Fatal(err)
	}
	if creds.Username != "box-110101001001" || len(creds.Password) < 40 {
		t.Fatalf("creds = %+v", creds)
	}
	if _, err := db.Enroll(ctx, api.EnrollRequest{Village: "110101001001", Token: et.Token}); code(err) != cx.EUNAUTHORIZED {
		t.Fatalf("second use: %v", err)
	}

	tests := []struct {
		name, user, pass string
		want             string
	}{
		{"right", creds.Username, creds.Password, "110101001001"},
		{"wrong password", creds.Username, creds.Password + "x", ""},
		{"empty password", creds.Username, "", ""},
		{"unknown user", "box-110101001002", creds.Password, ""},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := db.CheckAgentPassword(ctx, tt.user, tt.pass)
			if tt.want == "" {
				if !errors.Is(err, store.ErrUnauthorized) || v != "" {
					t.Fatalf("got %q, %v; want ErrUnauthorized", v, err)
				}
				return
			}
			if err != nil || v != tt.want {
				t.Fatalf("got %q, %v; want %q", v, err, tt.want)
			}
		})
	}

	// An expired token fails; re-enrolling replaces the password.
	et2, _ := db.CreateEnrollToken(ctx, "110101001001", time.Hour, "t")
	clk.Advance(2 * time.Hour)
	if _, err := db.Enroll(ctx, api.EnrollRequest{Token: et2.Token}); code(err) != cx.EUNAUTHORIZED {
		t.Fatalf("expired: %v", err)
	}
	et3, _ := db.CreateEnrollToken(ctx, "110101001001", time.Hour, "t")
	creds2, err := db.Enroll(ctx, api.EnrollRequest{Token: et3.Token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckAgentPassword(ctx, creds.Username, creds.Password); !errors.Is(err, store.ErrUnauthorized) {
		t.Fatalf("old password still works after re-enrollment: %v", err)
	}
	if v, err := db.CheckAgentPassword(ctx, creds2.Username, creds2.Password); err != nil || v != "110101001001" {
		t.Fatalf("new password: %q %v", v, err)
	}
	if creds2.LastSeq != 0 {
		t.Fatalf("LastSeq = %d before any report", creds2.LastSeq)
	}

	// A replacement box learns the last seq stored for its village, so its
	// first report is not mistaken for a duplicate.
	if _, err := db.IngestEvents(ctx, []store.IngestBatch{{Village: "110101001001", Events: []api.Event{ev(1, api.EventReceived), ev(2, api.EventStarted), ev(7, api.EventFinished)}, ReceivedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	et4, _ := db.CreateEnrollToken(ctx, "110101001001", time.Hour, "t")
	creds3, err := db.Enroll(ctx, api.EnrollRequest{Token: et4.Token})
	if err != nil {
		t.Fatal(err)
	}
	if creds3.LastSeq != 7 {
		t.Fatalf("LastSeq = %d, want 7", creds3.LastSeq)
	}
}

func ev(seq int64, typ string) api.Event {
	return api.Event{Seq: seq, Type: typ, At: t0.Add(time.Duration(seq) * time.Second)}
}

func TestIngestEvents(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	enroll(t, db, "110101001001")
	enroll(t, db, "110101001002")
	const a, b = "110101001001", "110101001002"
	occ := t0.Add(time.Hour)
	recv := t0.Add(5 * time.Minute)

	steps := []struct {
		name    string
		batches []store.IngestBatch
		want    map[string]int64
	}{
		{"in order", []store.IngestBatch{{Village: a, Version: "1.1", ReceivedAt: recv, Events: []api.Event{ev(1, "received"), ev(2, "downloaded")}}}, map[string]int64{a: 2}},
		{"gap holds the ack", []store.IngestBatch{{Village: a, ReceivedAt: recv, Events: []api.Event{ev(4, "started")}}}, map[string]int64{a: 2}},
		{"redelivery is a no-op", []store.IngestBatch{{Village: a, ReceivedAt: recv, Events: []api.Event{ev(1, "failed"), ev(2, "failed")}}}, map[string]int64{a: 2}},
		{"gap filled, two villages, two batches of one village", []store.IngestBatch{
			{Village: a, ReceivedAt: recv, Events: []api.Event{ev(3, "received")}},
			{Village: b, ReceivedAt: recv, Events: []api.Event{ev(1, "received")}},
			{Village: a, ReceivedAt: recv.Add(time.Second), Events: []api.Event{ev(5, "finished")}},
		}, map[string]int64{a: 5, b: 1}},
		{"village without a box", []store.IngestBatch{{Village: "110101002001", ReceivedAt: recv, Events: []api.Event{ev(2, "received")}}}, map[string]int64{"110101002001": 0}},
	}
	for _, s := range steps {
		got, err := db.IngestEvents(ctx, s.batches)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: acks = %v, want %v", s.name, got, s.want)
		}
	}
	vs, err := db.VillageState(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if vs.Agent.AckedSeq != 5 || vs.Agent.AgentVersion != "1.1" || !vs.Agent.LastSeen.Equal(recv.Add(time.Second)) {
		t.Fatalf("agent = %+v", vs.Agent)
	}
	// The first stored copy of seq 1 won.
	o := occ
	if _, err := db.IngestEvents(ctx, []store.IngestBatch{{Village: b, ReceivedAt: recv, Events: []api.Event{
		{Seq: 2, Type: "started", At: occ, ScheduleID: 7, Occurrence: &o},
		{Seq: 3, Type: "finished", At: occ.Add(time.Minute), ScheduleID: 7, Occurrence: &o},
		{Seq: 4, Type: "received", At: occ, ScheduleID: 7},
		{Seq: 5, Type: "finished", At: occ, ScheduleID: 8, Occurrence: &o},
	}}}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.ScheduleEvents(ctx, 7, playlists.OccurrenceKey(occ))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].Type != "started" || evs[0].Occurrence != "2026-03-01T09:00:00Z" || evs[2].Occurrence != "" {
		t.Fatalf("schedule events = %+v", evs)
	}
}

func TestSetPresence(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	const a = "110101001001"
	if err := db.SetPresence(ctx, a, api.Presence{Status: api.Online}, t0); code(err) != cx.ENOTFOUND {
		t.Fatalf("not enrolled: %v", err)
	}
	enroll(t, db, a)
	steps := []struct {
		status string
		at     time.Time
		wantAt time.Time
	}{
		{api.Online, t0, t0},
		{api.Offline, t0.Add(time.Hour), t0.Add(time.Hour)},
		// The retained offline again after a controller restart: still
		// offline since the first time.
		{api.Offline, t0.Add(3 * time.Hour), t0.Add(time.Hour)},
		{api.Online, t0.Add(4 * time.Hour), t0.Add(4 * time.Hour)},
	}
	for i, s := range steps {
		if err := db.SetPresence(ctx, a, api.Presence{V: 1, Village: a, Status: s.status, ClockOffsetMS: int64(i), Version: "2.0"}, s.at); err != nil {
			t.Fatal(err)
		}
		vs, _ := db.VillageState(ctx, a)
		if vs.Agent.Presence != s.status || !vs.Agent.PresenceAt.Equal(s.wantAt) || vs.Agent.ClockOffsetMS != int64(i) || vs.Agent.AgentVersion != "2.0" {
			t.Fatalf("step %d: agent = %+v", i, vs.Agent)
		}
	}
}

// SetPresences applies a batch in one transaction, in order, as
// SetPresence would one by one, and names the villages with no box.
func TestSetPresencesInOneBatch(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	const a, b, none = "110101001001", "110101001002", "110101002001"
	enroll(t, db, a)
	enroll(t, db, b)
	on := func(v, status string, at time.Time) store.PresenceUpdate {
		return store.PresenceUpdate{Village: v, Presence: api.Presence{V: 1, Village: v, Status: status, Version: "2.1"}, ReceivedAt: at}
	}
	unknown, err := db.SetPresences(ctx, []store.PresenceUpdate{
		on(a, api.Online, t0),
		on(none, api.Online, t0),
		on(b, api.Offline, t0),
		on(a, api.Offline, t0.Add(time.Minute)), // later in the batch wins
		on(a, api.Offline, t0.Add(2*time.Minute)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(unknown, []string{none}) {
		t.Fatalf("unknown = %v, want [%s]", unknown, none)
	}
	va, _ := db.VillageState(ctx, a)
	if va.Agent.Presence != api.Offline || !va.Agent.PresenceAt.Equal(t0.Add(time.Minute)) || !va.Agent.LastSeen.Equal(t0) || va.Agent.AgentVersion != "2.1" {
		t.Fatalf("a: %+v (offline since the first offline, last seen online at t0)", va.Agent)
	}
	vb, _ := db.VillageState(ctx, b)
	if vb.Agent.Presence != api.Offline || !vb.Agent.PresenceAt.Equal(t0) {
		t.Fatalf("b: %+v", vb.Agent)
	}
	if unknown, err := db.SetPresences(ctx, nil); err != nil || len(unknown) != 0 {
		t.Fatalf("empty batch: %v %v", unknown, err)
	}
}

func TestRetained(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	r1 := store.Retained{Topic: "cx/v1/cmd/all/sched/1", Payload: []byte(`{"a":1}`), Seq: 1, Kind: api.KindSchedulePut, ScheduleID: 1, ExpiresAt: t0.Add(time.Hour)}
	r2 := store.Retained{Topic: "cx/v1/cmd/v/110101001001/ack", Payload: []byte(`{"b":2}`), Seq: 2, Kind: api.KindReportsAck, ExpiresAt: t0.Add(2 * time.Hour)}
	for _, r := range []store.Retained{r1, r2} {
		if err := db.PutRetained(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	r1b := r1
	r1b.Payload, r1b.Seq, r1b.Kind = []byte(`{"w":1}`), 3, api.KindScheduleWithdraw
	if err := db.PutRetained(ctx, r1b); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListRetained(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.Retained{r2, r1b}; !reflect.DeepEqual(got, want) {
		t.Fatalf("retained = %+v\nwant %+v", got, want)
	}
}

func TestCreateAudioCommitFailureStoresNothing(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	a := store.Audio{SHA256: "ab", Title: "x", DurationMS: 1000, SampleRate: 22050, Channels: 1, SizeBytes: 10}
	boom := errors.New("rename failed")
	if _, _, err := db.CreateAudio(ctx, a, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n, _ := db.AudioCount(ctx); n != 0 {
		t.Fatalf("%d rows after a failed commit", n)
	}
	calls := 0
	first, created, err := db.CreateAudio(ctx, a, func() error { calls++; return nil })
	if err != nil || !created || first.ID == 0 {
		t.Fatalf("create: %+v %v %v", first, created, err)
	}
	again, created, err := db.CreateAudio(ctx, a, func() error { calls++; return nil })
	if err != nil || created || again.ID != first.ID || calls != 1 {
		t.Fatalf("duplicate: %+v %v %v calls=%d", again, created, err, calls)
	}
}

func TestAuditIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	if err := db.Audit(ctx, store.AuditEntry{Actor: "admin", Action: "test", Object: "x", RemoteAddr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	log, err := db.AuditLog(ctx, store.AuditFilter{Limit: 10})
	if err != nil || len(log) != 1 || log[0].Actor != "admin" || !log[0].At.Equal(t0) {
		t.Fatalf("log = %+v, %v", log, err)
	}
	if err := store.TamperAuditForTest(db); err == nil {
		t.Fatal("updating the audit log succeeded")
	}
}

func TestSchedules(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openDB(t)
	seedVillages(t, db)
	au, _, err := db.CreateAudio(ctx, store.Audio{SHA256: "aa", DurationMS: 3000, SampleRate: 22050, Channels: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "p", Items: []playlists.Item{{AudioID: au.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	if pl.Items[0].Repeat != 1 || pl.Items[0].SHA256 != "aa" || pl.Items[0].DurationMS != 3000 {
		t.Fatalf("items = %+v", pl.Items)
	}
	if _, err := db.CreatePlaylist(ctx, playlists.Playlist{Name: "p", Items: []playlists.Item{{AudioID: au.ID}, {AudioID: 99}}}); err == nil || err.Error() != "invalid: items[1].audio_id: there is no audio clip with id 99; upload it first or pick one from the audio list" {
		t.Fatalf("unknown audio: %v", err)
	}
	at := t0.Add(time.Hour)
	tests := []struct {
		name      string
		s         playlists.Schedule
		wantField string
		wantGroup []api.Group
	}{
		{"township", playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Townships: []string{"东镇"}}, OnceAt: &at}, "", []api.Group{"t/110101001"}},
		{"all", playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: &at}, "", []api.Group{api.GroupAll}},
		{"unknown playlist", playlists.Schedule{PlaylistID: 42, Targets: playlists.Targets{All: true}, OnceAt: &at}, "playlist_id", nil},
		{"unknown township", playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Townships: []string{"西镇"}}, OnceAt: &at}, "targets.townships[0]", nil},
		{"unknown village", playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Villages: []string{"110101001001", "110101009009"}}, OnceAt: &at}, "targets.villages[1]", nil},
		{"past", playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: ptr(t0.Add(-2 * time.Minute))}, "once_at", nil},
		{"ended", playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, Recurring: &playlists.Recurrence{Times: []string{"07:00"}, StartDate: "2026-01-01", EndDate: "2026-02-01"}}, "recurring.end_date", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.CreateSchedule(ctx, tt.s, "clerk")
			if tt.wantField != "" {
				var fe *playlists.FieldError
				var ce *cx.Error
				switch {
				case errors.As(err, &ce) && ce.Field == tt.wantField:
				case errors.As(err, &fe) && fe.Field == tt.wantField:
				default:
					t.Fatalf("err = %v, want field %s", err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Groups, tt.wantGroup) || got.Timezone != playlists.DefaultTimezone {
				t.Fatalf("schedule = %+v", got)
			}
			back, err := db.GetSchedule(ctx, got.ID)
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("read back %+v, %v\nwant %+v", back, err, got)
			}
		})
	}
	w, err := db.WithdrawSchedule(ctx, 1)
	if err != nil || w.WithdrawnAt.IsZero() {
		t.Fatalf("withdraw: %+v %v", w, err)
	}
	live, _ := db.Schedules(ctx, false)
	all, _ := db.Schedules(ctx, true)
	if len(live) != 1 || len(all) != 2 {
		t.Fatalf("live %d, all %d", len(live), len(all))
	}
	if _, err := db.WithdrawSchedule(ctx, 99); code(err) != cx.ENOTFOUND {
		t.Fatalf("withdraw unknown: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkIngestEvents stores 100 boxes' reports of 10 events each per
// transaction, the shape of one delivery batch.
func BenchmarkIngestEvents(b *testing.B) {
	ctx := context.Background()
	db, _, _ := openDB(b)
	var vs []store.Village
	for i := range 100 {
		vs = append(vs, store.Village{Code: fmt.Sprintf("110101%06d", i), Name: "v", Township: "t", Device: "agent"})
	}
	if _, err := db.ImportVillages(ctx, vs); err != nil {
		b.Fatal(err)
	}
	seq := int64(0)
	b.ResetTimer()
	for b.Loop() {
		batches := make([]store.IngestBatch, 0, len(vs))
		for _, v := range vs {
			evs := make([]api.Event, 10)
			for k := range evs {
				evs[k] = api.Event{Seq: seq + int64(k) + 1, Type: api.EventReceived, At: t0}
			}
			batches = append(batches, store.IngestBatch{Village: v.Code, Events: evs, ReceivedAt: t0})
		}
		seq += 10
		if _, err := db.IngestEvents(ctx, batches); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
