package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// contractHandler checks every request and answer passing through it
// against openapi.yaml, as env.request does.
func contractHandler(tb testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := readBody(tb, r)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		checkContract(tb, r, body, rec.Code, rec.Header(), rec.Body.Bytes())
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes()) //nolint:errcheck
	})
}

// TestClientAgainstServer drives the handlers through api/client over
// HTTP, as the demo, the simulator and the benchmark do: every method
// reaches its route, the server reads what the client sends, the client
// reads what the server answers, and both match openapi.yaml.
func TestClientAgainstServer(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewServer(contractHandler(t, e.h))
	t.Cleanup(ts.Close)
	ctx := context.Background()
	admin := &client.Client{URL: ts.URL, Token: e.admin}

	counts, err := admin.ImportVillages(ctx, []byte(villagesCSV))
	if err != nil || counts.Total != 5 {
		t.Fatalf("import: %+v, %v", counts, err)
	}
	vs, err := admin.Villages(ctx)
	if err != nil || len(vs) != 5 || vs[0].Code != "110101001001" {
		t.Fatalf("villages: %+v, %v", vs, err)
	}
	tok, err := admin.Enroll(ctx, "110101001001")
	if err != nil || tok.Token == "" || tok.Village != "110101001001" {
		t.Fatalf("enroll: %+v, %v", tok, err)
	}
	if _, err := admin.CreateUser(ctx, api.UserRequest{Username: "zhang", DisplayName: "张伟", Role: "operator", Password: "secret password zhang"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateUser(ctx, api.UserRequest{Username: "li", Role: "approver", Password: "secret password li"}); err != nil {
		t.Fatal(err)
	}
	op, err := admin.Login(ctx, "zhang", "secret password zhang")
	if err != nil {
		t.Fatal(err)
	}
	if me, err := op.Me(ctx); err != nil || me.Name != "zhang" || me.DisplayName != "张伟" || me.Role != "operator" {
		t.Fatalf("me: %+v, %v", me, err)
	}
	if _, err := admin.Login(ctx, "zhang", "wrong password"); client.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("wrong password: %v, want a 401 *client.Error", err)
	}

	wav := sine(1)
	clip, err := op.UploadAudio(ctx, "通知.wav", "通知", wav)
	if err != nil || clip.ID == 0 || clip.Source == nil || clip.Source.SampleRate == 0 {
		t.Fatalf("upload: %+v, %v", clip, err)
	}
	if list, err := op.AudioList(ctx); err != nil || len(list) != 1 || list[0].ID != clip.ID {
		t.Fatalf("audio list: %+v, %v", list, err)
	}
	if data, err := op.AudioContent(ctx, clip.ID); err != nil || len(data) < 44 || string(data[:4]) != "RIFF" {
		t.Fatalf("audio content: %d bytes, %v", len(data), err)
	}
	pl, err := op.CreatePlaylist(ctx, playlists.Playlist{Name: "早间通知", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil || pl.ID == 0 || pl.Items[0].SHA256 != clip.SHA256 {
		t.Fatalf("playlist: %+v, %v", pl, err)
	}
	at := t0.Add(2 * time.Hour)
	sc, err := op.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Townships: []string{"东镇"}}, OnceAt: &at})
	if err != nil || sc.ID == 0 || sc.OnceAt == nil || !sc.OnceAt.Equal(at) || sc.State != "active" {
		t.Fatalf("schedule: %+v, %v", sc, err)
	}
	if cal, err := op.Calendar(ctx, t0, t0.Add(24*time.Hour)); err != nil || len(cal.Occurrences) != 1 || cal.Occurrences[0].ScheduleID != sc.ID {
		t.Fatalf("calendar: %+v, %v", cal, err)
	}
	if cov, err := op.Coverage(ctx, sc.ID, at); err != nil || cov.ScheduleID != sc.ID || cov.Targeted != 2 || len(cov.Villages) != 2 {
		t.Fatalf("coverage: %+v, %v", cov, err)
	}
	if w, err := op.WithdrawSchedule(ctx, sc.ID); err != nil || w.State != "withdrawn" {
		t.Fatalf("withdraw: %+v, %v", w, err)
	}

	// An emergency to the whole county waits for a second person.
	b, err := op.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: "flood", ExpiresAt: client.ExpiresAt(t0.Add(time.Hour))})
	if err != nil || b.State != "pending_approval" {
		t.Fatalf("broadcast: %+v, %v", b, err)
	}
	if _, err := op.ApproveBroadcast(ctx, b.ID); client.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("self-approval: %v, want 403", err)
	}
	li, err := admin.Login(ctx, "li", "secret password li")
	if err != nil {
		t.Fatal(err)
	}
	if b, err = li.ApproveBroadcast(ctx, b.ID); err != nil || b.ApprovedBy != "li" || b.State != "sending" {
		t.Fatalf("approve: %+v, %v", b, err)
	}
	if got, err := op.GetBroadcast(ctx, b.ID); err != nil || got.ID != b.ID || got.CreatedByName != "张伟" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if cov, err := op.BroadcastCoverage(ctx, b.ID); err != nil || cov.BroadcastID != b.ID || cov.Targeted != 5 {
		t.Fatalf("broadcast coverage: %+v, %v", cov, err)
	}
	if c, err := op.CancelBroadcast(ctx, b.ID); err != nil || c.State != "cancelled" || c.CancelledBy != "zhang" {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	other, err := op.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Urgent,
		Severity: 3, ExpiresAt: client.ExpiresAt(t0.Add(time.Hour)), Test: true})
	if err != nil || other.State != "pending_approval" {
		t.Fatalf("second broadcast: %+v, %v", other, err)
	}
	if r, err := li.RejectBroadcast(ctx, other.ID, "范围太大"); err != nil || r.State != "rejected" || r.RejectReason != "范围太大" {
		t.Fatalf("reject: %+v, %v", r, err)
	}
	if rep, err := op.CoverageReport(ctx, "2026-03-01", "2026-03-01"); err != nil || rep.From != "2026-03-01" || len(rep.Days) != 1 {
		t.Fatalf("report: %+v, %v", rep, err)
	}

	token, err := admin.CreateToken(ctx, api.TokenRequest{Name: "weather feed", Role: "operator"})
	if err != nil || token.Token == "" {
		t.Fatalf("token: %+v, %v", token, err)
	}
	if me, err := admin.As(token.Token).Me(ctx); err != nil || me.Name != "weather feed" {
		t.Fatalf("as the token: %+v, %v", me, err)
	}
	if entries, err := admin.Audit(ctx); err != nil || len(entries) == 0 {
		t.Fatalf("audit: %d entries, %v", len(entries), err)
	}
	if ths, err := admin.LoginThrottles(ctx); err != nil || len(ths) == 0 || ths[0].Failures == 0 {
		t.Fatalf("throttles: %+v, %v", ths, err)
	}
	if n, err := admin.ClearLoginThrottles(ctx, "", "zhang"); err != nil || n == 0 {
		t.Fatalf("clear throttles: %d, %v", n, err)
	}
	e.enrollBox("110101001001")
	if v, err := admin.RevokeBox(ctx, "110101001001"); err != nil || !v.Revoked {
		t.Fatalf("revoke: %+v, %v", v, err)
	}
	// An error answer is a *client.Error with the body's reason.
	_, err = op.GetBroadcast(ctx, 999)
	var ce *client.Error
	if client.StatusOf(err) != http.StatusNotFound || !errors.As(err, &ce) || ce.Body.Error.Reason == "" {
		t.Fatalf("missing broadcast: %v", err)
	}
}
