package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// fakeSpeaker "speaks" a half-second tone and remembers what it was asked.
type fakeSpeaker struct{ said, voices []string }

func (f *fakeSpeaker) Speak(_ context.Context, text, voice string) ([]byte, error) {
	f.said, f.voices = append(f.said, text), append(f.voices, voice)
	return sine(0.5), nil
}

// in is a time from now, as sent in a request.
func (e *env) in(d time.Duration) string { return e.clk.Now().Add(d).Format(time.RFC3339) }

// bcast is a valid broadcast request of an uploaded clip to 东镇; edit
// changes it.
func (e *env) bcast(audioID int64, edit func(m map[string]any)) map[string]any {
	m := map[string]any{
		"audio_id": audioID, "targets": map[string]any{"townships": []string{"东镇"}},
		"priority": "emergency", "severity": 1, "event_type": "flood", "expires_at": e.in(time.Hour),
	}
	if edit != nil {
		edit(m)
	}
	return m
}

func TestBroadcastValidation(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, pl := e.setupLibrary()
	a := audio[0].ID
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		field string
		msg   string
	}{
		{"nothing to play", func(m map[string]any) { delete(m, "audio_id") }, "audio_id", "give exactly one of audio_id, playlist_id and text"},
		{"two things to play", func(m map[string]any) { m["playlist_id"] = pl.ID }, "audio_id", "exactly one"},
		{"unknown clip", func(m map[string]any) { m["audio_id"] = 999 }, "audio_id", "there is no audio clip with id 999"},
		{"unknown playlist", func(m map[string]any) { delete(m, "audio_id"); m["playlist_id"] = 999 }, "playlist_id", "there is no playlist"},
		{"text too long", func(m map[string]any) { delete(m, "audio_id"); m["text"] = strings.Repeat("村", 2001) }, "text", "at most 2000"},
		{"no targets", func(m map[string]any) { m["targets"] = map[string]any{} }, "targets", "choose who hears it"},
		{"unknown township", func(m map[string]any) { m["targets"] = map[string]any{"townships": []string{"西镇"}} }, "targets.townships[0]", "西镇"},
		{"unknown village", func(m map[string]any) { m["targets"] = map[string]any{"villages": []string{"110101009999"}} }, "targets.villages[0]", "no village"},
		{"no priority", func(m map[string]any) { delete(m, "priority") }, "priority", "emergency"},
		{"bad priority", func(m map[string]any) { m["priority"] = "critical" }, "priority", "emergency"},
		{"severity 0", func(m map[string]any) { m["severity"] = 0 }, "severity", "1 (I, red)"},
		{"severity 5", func(m map[string]any) { m["severity"] = 5 }, "severity", "4 (IV, blue)"},
		{"repeat", func(m map[string]any) { m["repeat"] = 101 }, "repeat", "100"},
		{"volume", func(m map[string]any) { m["volume"] = 101 }, "volume", "percentage"},
		{"full volume, not an emergency", func(m map[string]any) { m["priority"] = "urgent"; m["force_full_volume"] = true }, "force_full_volume", "only an emergency"},
		{"no expiry", func(m map[string]any) { delete(m, "expires_at") }, "expires_at", "give the time"},
		{"expiry in the past", func(m map[string]any) { m["expires_at"] = e.in(-time.Minute) }, "expires_at", "is not in the future"},
		{"expiry now", func(m map[string]any) { m["expires_at"] = e.in(0) }, "expires_at", "is not in the future"},
		{"expiry too far", func(m map[string]any) { m["expires_at"] = e.in(8 * 24 * time.Hour) }, "expires_at", "more than 7 days ahead"},
		{"malformed expiry", func(m map[string]any) { m["expires_at"] = "in an hour" }, "expires_at", "is not a time"},
		{"misspelt field", func(m map[string]any) { m["prio"] = "urgent" }, "prio", "is not a field"},
		{"wrong type", func(m map[string]any) { m["test"] = "yes" }, "test", "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(a, tt.edit))
			b := got.errBody(t)
			if got.Status != http.StatusBadRequest || b.Error.Code != cx.EINVALID || !strings.HasPrefix(b.Error.Message, tt.field+": ") || !strings.Contains(b.Error.Message, tt.msg) {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
	t.Run("text without text-to-speech", func(t *testing.T) {
		got := e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(a, func(m map[string]any) { delete(m, "audio_id"); m["text"] = "请注意" }))
		if got.Status != http.StatusServiceUnavailable || got.errBody(t).Error.Message != "text-to-speech is not available: install espeak-ng (apt-get install espeak-ng)" {
			t.Fatalf("%d %s", got.Status, got.Body)
		}
	})
	var list struct{ Broadcasts []api.Broadcast }
	e.must(http.StatusOK, e.do("GET", "/api/v1/broadcasts", e.staff, nil), &list)
	if len(list.Broadcasts) != 0 || len(e.pub.broadcasts) != 0 {
		t.Fatalf("rejected broadcasts were stored or sent: %+v", list.Broadcasts)
	}
}

func TestTwoPersonRule(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PreApprovedEventTypes = []string{"drill"} })
	e.importVillages(villagesCSV)
	audio, _ := e.setupLibrary()
	a := audio[0].ID
	li := e.user("li", "operator", "")
	wang := e.user("wang", "approver", "")

	create := func(tok string, edit func(m map[string]any)) api.Broadcast {
		t.Helper()
		var b api.Broadcast
		e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", tok, e.bcast(a, edit)), &b)
		return b
	}
	twoTowns := func(m map[string]any) {
		m["targets"] = map[string]any{"villages": []string{"110101001001", "110101002001"}}
	}
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		state string
	}{
		{"one township", nil, stateSending},
		{"villages of one township", func(m map[string]any) {
			m["targets"] = map[string]any{"villages": []string{"110101001001", "110101001002"}}
		}, stateSending},
		{"villages of two townships", twoTowns, statePending},
		{"two townships", func(m map[string]any) { m["targets"] = map[string]any{"townships": []string{"东镇", "南镇"}} }, statePending},
		{"all", func(m map[string]any) { m["targets"] = map[string]any{"all": true} }, statePending},
		{"urgent, all", func(m map[string]any) { m["priority"] = "urgent"; m["targets"] = map[string]any{"all": true} }, statePending},
		{"routine, all", func(m map[string]any) { m["priority"] = "routine"; m["targets"] = map[string]any{"all": true} }, stateSending},
		{"a drill, all", func(m map[string]any) { m["event_type"] = "Drill"; m["targets"] = map[string]any{"all": true} }, stateSending},
		{"a test, all", func(m map[string]any) { m["test"] = true; m["targets"] = map[string]any{"all": true} }, statePending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := len(e.pub.broadcasts)
			b := create(li, tt.edit)
			if b.State != tt.state || b.NeedsApproval != (tt.state == statePending) {
				t.Fatalf("state %s, needs approval %v", b.State, b.NeedsApproval)
			}
			if published := len(e.pub.broadcasts) - sent; published != map[bool]int{true: 0, false: 1}[tt.state == statePending] {
				t.Fatalf("published %d", published)
			}
		})
	}

	b := create(li, twoTowns)
	path := fmt.Sprintf("/api/v1/broadcasts/%d", b.ID)

	// li may not approve their own broadcast, even after becoming an
	// approver, nor may an admin approve one they created.
	var users struct{ Users []api.User }
	e.must(http.StatusOK, e.do("GET", "/api/v1/users", e.admin, nil), &users)
	e.must(http.StatusOK, e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", users.Users[0].ID), e.admin, map[string]string{"role": "approver"}), nil)
	got := e.do("POST", path+"/approve", li, nil)
	if got.Status != http.StatusForbidden || !strings.Contains(got.errBody(t).Error.Message, "you created broadcast") || !strings.Contains(string(got.Body), "two-person rule") {
		t.Fatalf("self-approval: %d %s", got.Status, got.Body)
	}
	e.must(http.StatusOK, e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", users.Users[0].ID), e.admin, map[string]string{"role": "operator"}), nil)
	own := create(e.admin, twoTowns)
	if got := e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/approve", own.ID), e.admin, nil); got.Status != http.StatusForbidden {
		t.Fatalf("admin approving their own: %d %s", got.Status, got.Body)
	}
	if len(e.pub.broadcasts) != 4 {
		t.Fatalf("a self-approved broadcast was sent: %d", len(e.pub.broadcasts))
	}

	var ok api.Broadcast
	e.must(http.StatusOK, e.do("POST", path+"/approve", wang, nil), &ok)
	if ok.State != stateSending || ok.ApprovedBy != "wang" || ok.SentAt == nil {
		t.Fatalf("approved %+v", ok)
	}
	last := e.pub.broadcasts[len(e.pub.broadcasts)-1]
	if last.B.ID != b.ID || !reflect.DeepEqual(last.Groups, []api.Group{"v/110101001001", "t/110101002"}) || last.B.Priority != playlists.Emergency {
		t.Fatalf("published %+v", last)
	}
	if got := e.do("POST", path+"/approve", wang, nil); got.Status != http.StatusConflict || !strings.Contains(got.errBody(t).Error.Message, "already approved") {
		t.Fatalf("approving twice: %d %s", got.Status, got.Body)
	}

	// Rejection needs a reason; a rejected broadcast is never sent or cancelled.
	r := create(li, twoTowns)
	rpath := fmt.Sprintf("/api/v1/broadcasts/%d", r.ID)
	if got := e.do("POST", rpath+"/reject", wang, map[string]string{}); got.Status != 400 || !strings.HasPrefix(got.errBody(t).Error.Message, "reason: ") {
		t.Fatalf("reject without reason: %d %s", got.Status, got.Body)
	}
	var rej api.Broadcast
	e.must(http.StatusOK, e.do("POST", rpath+"/reject", wang, map[string]string{"reason": "南村 is not flooded"}), &rej)
	if rej.State != stateRejected || rej.RejectedBy != "wang" || rej.RejectReason != "南村 is not flooded" {
		t.Fatalf("rejected %+v", rej)
	}
	for _, call := range []struct{ method, path, tok string }{{"POST", rpath + "/approve", wang}, {"DELETE", rpath, li}, {"POST", rpath + "/resend", li}} {
		if got := e.do(call.method, call.path, call.tok, nil); got.Status != http.StatusConflict {
			t.Fatalf("%s %s of a rejected broadcast: %d %s", call.method, call.path, got.Status, got.Body)
		}
	}

	// A broadcast waiting for approval expires unapproved.
	late := create(li, twoTowns)
	e.clk.Advance(2 * time.Hour)
	if got := e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/approve", late.ID), wang, nil); got.Status != http.StatusConflict || !strings.Contains(string(got.Body), "expired") {
		t.Fatalf("approving an expired broadcast: %d %s", got.Status, got.Body)
	}
	var exp api.Broadcast
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d", late.ID), wang, nil), &exp)
	if exp.State != stateExpired {
		t.Fatalf("state %s", exp.State)
	}

	all := e.auditLog("?object=broadcast/" + fmt.Sprint(b.ID))
	wantB := []string{
		"wang broadcast.approve broadcast/" + fmt.Sprint(b.ID),
		"li broadcast.create broadcast/" + fmt.Sprint(b.ID),
	}
	if !reflect.DeepEqual(all, wantB) {
		t.Fatalf("audit of broadcast %d: %v", b.ID, all)
	}
	rlog := e.auditLog("?object=broadcast/" + fmt.Sprint(r.ID))
	if !reflect.DeepEqual(rlog, []string{"wang broadcast.reject broadcast/" + fmt.Sprint(r.ID), "li broadcast.create broadcast/" + fmt.Sprint(r.ID)}) {
		t.Fatalf("audit of broadcast %d: %v", r.ID, rlog)
	}
	// Only the 403s are denials; the 409s above are not.
	denied := e.auditLog("?action=denied")
	if len(denied) != 2 || denied[0] != fmt.Sprintf("admin denied POST /api/v1/broadcasts/%d/approve", own.ID) || denied[1] != "li denied POST "+path+"/approve" {
		t.Fatalf("denials %v", denied)
	}
}

// report stores box reports as delivery would.
func (e *env) report(village string, events ...api.Event) {
	e.t.Helper()
	if _, err := e.db.IngestEvents(context.Background(), []store.IngestBatch{{Village: village, Events: events}}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) getBroadcast(id int64) api.Broadcast {
	e.t.Helper()
	var b api.Broadcast
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d", id), e.staff, nil), &b)
	return b
}

func TestBroadcastLifecycle(t *testing.T) {
	sp := &fakeSpeaker{}
	e := newEnv(t, func(o *Options) { o.Speaker = sp; o.Voice = "cmn" })
	e.importVillages(villagesCSV)
	for _, v := range []string{"110101001001", "110101001002"} {
		e.enrollBox(v)
		e.db.SetPresence(context.Background(), v, api.Presence{V: 1, Village: v, Status: api.Online}, t0)
	}
	audio, _ := e.setupLibrary()

	// Text is spoken into a clip of the library, as if uploaded.
	var b api.Broadcast
	e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(0, func(m map[string]any) {
		delete(m, "audio_id")
		m["text"], m["repeat"], m["volume"], m["force_full_volume"] = " 东镇村民请注意，河水上涨，请立即撤离。 ", 2, 80, true
	})), &b)
	if !reflect.DeepEqual(sp.said, []string{"东镇村民请注意，河水上涨，请立即撤离。"}) || sp.voices[0] != "cmn" {
		t.Fatalf("spoken %q in %q", sp.said, sp.voices)
	}
	var clip api.Audio
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/audio/%d", b.AudioID), e.staff, nil), &clip)
	if clip.DurationMS != 500 || !strings.HasPrefix(clip.Title, "TTS: 东镇村民请注意") || b.Text == "" {
		t.Fatalf("clip %+v of broadcast %+v", clip, b)
	}
	if b.State != stateSending || b.Test || b.SentAt == nil || b.Progress.Boxes != 0 {
		t.Fatalf("broadcast %+v", b)
	}
	sent := e.pub.broadcasts[0]
	want := api.BroadcastState{ID: b.ID, Priority: playlists.Emergency, Severity: 1, EventType: "flood", Repeat: 2, Volume: 80, ForceFullVolume: true,
		Playlist: playlists.Playlist{Name: clip.Title, Items: []playlists.Item{{AudioID: clip.ID, SHA256: clip.SHA256, DurationMS: 500, GainDB: *clip.GainDB, Repeat: 1}}},
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if !reflect.DeepEqual(sent.B, want) || !reflect.DeepEqual(sent.Groups, []api.Group{"t/110101001"}) {
		t.Fatalf("sent %+v to %v\nwant %+v", sent.B, sent.Groups, want)
	}

	// The state follows the boxes' reports.
	if got := e.getBroadcast(b.ID); got.State != stateSending || got.Progress.Boxes != 2 {
		t.Fatalf("before reports: %s %+v", got.State, got.Progress)
	}
	e.report("110101001001", api.Event{Seq: 1, Type: api.EventStarted, At: t0, BroadcastID: b.ID})
	if got := e.getBroadcast(b.ID); got.State != stateInProgress || got.Progress.Started != 1 {
		t.Fatalf("one started: %s %+v", got.State, got.Progress)
	}
	e.report("110101001001", api.Event{Seq: 2, Type: api.EventFinished, At: t0.Add(time.Second), BroadcastID: b.ID})
	e.report("110101001002", api.Event{Seq: 1, Type: api.EventPartial, At: t0.Add(time.Second), BroadcastID: b.ID, Reason: "power cut"})
	if got := e.getBroadcast(b.ID); got.State != stateDone || got.Progress != (api.BroadcastProgress{Boxes: 2, Started: 2, Reported: 2, Played: 1}) {
		t.Fatalf("all reported: %s %+v", got.State, got.Progress)
	}
	var cov api.BroadcastCoverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d/coverage", b.ID), e.staff, nil), &cov)
	if cov.Test || cov.State != stateDone || cov.Targeted != 2 || cov.Played != 1 || cov.PlayedByBox != 1 || cov.Partial != 1 || cov.Villages[1].Reason != "cut off: power cut" {
		t.Fatalf("coverage %+v", cov)
	}

	// Cancelling a sent broadcast tells its groups; again, tells them again.
	c := e.bcastOK(audio[0].ID, nil)
	var cb api.Broadcast
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", c.ID), e.staff, nil), &cb)
	if cb.State != stateCancelled || cb.CancelledBy != "clerk" || len(e.pub.cancelled) != 1 || !reflect.DeepEqual(e.pub.cancelled[0], withdrawal{c.ID, []api.Group{"t/110101001"}}) {
		t.Fatalf("cancelled %+v, publisher %+v", cb, e.pub.cancelled)
	}
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", c.ID), e.staff, nil), nil)
	if len(e.pub.cancelled) != 2 {
		t.Fatalf("cancellation not repeated: %+v", e.pub.cancelled)
	}
	if got := e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/resend", c.ID), e.staff, nil); got.Status != http.StatusConflict {
		t.Fatalf("resending a cancelled broadcast: %d %s", got.Status, got.Body)
	}
	// A broadcast cancelled while it waited for approval was never sent.
	p := e.bcastOK(audio[0].ID, func(m map[string]any) { m["targets"] = map[string]any{"all": true} })
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", p.ID), e.staff, nil), &cb)
	if cb.State != stateCancelled || len(e.pub.cancelled) != 2 {
		t.Fatalf("cancelled while pending: %+v, publisher %+v", cb, e.pub.cancelled)
	}

	// A delivery failure keeps it released, says so, and can be resent.
	e.pub.fail = errors.New("broker down")
	got := e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(audio[0].ID, nil))
	if got.Status != http.StatusInternalServerError || got.errBody(t).Error.Reason != api.ReasonBroadcastNotDelivered || !strings.Contains(got.errBody(t).Error.Message, "keeps sending") {
		t.Fatalf("delivery failure: %d %s", got.Status, got.Body)
	}
	var list struct{ Broadcasts []api.Broadcast }
	e.must(http.StatusOK, e.do("GET", "/api/v1/broadcasts", e.staff, nil), &list)
	f := list.Broadcasts[0]
	if f.State != stateSending || f.SendError == "" || f.SentAt != nil || strings.Contains(f.SendError, "broker down") {
		t.Fatalf("failed broadcast %+v", f)
	}
	if log := e.auditLog(fmt.Sprintf("?object=broadcast/%d", f.ID)); len(log) != 1 || log[0] != fmt.Sprintf("clerk broadcast.create broadcast/%d", f.ID) {
		t.Fatalf("a broadcast created but not delivered is not audited: %v", log)
	}
	e.pub.fail = nil
	var rs api.Broadcast
	e.must(http.StatusOK, e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/resend", f.ID), e.staff, nil), &rs)
	if rs.SentAt == nil || rs.SendError != "" || rs.State != stateSending {
		t.Fatalf("resent %+v", rs)
	}

	// Nobody reported until it expired and the last start would be over.
	e.clk.Advance(time.Hour + 2*time.Second)
	if got := e.getBroadcast(rs.ID); got.State != stateExpired {
		t.Fatalf("state %s", got.State)
	}
	if got := e.getBroadcast(b.ID); got.State != stateDone {
		t.Fatalf("state %s", got.State)
	}
	if got := e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", rs.ID), e.staff, nil); got.Status != http.StatusConflict || !strings.Contains(string(got.Body), "expired") {
		t.Fatalf("cancelling an expired broadcast: %d %s", got.Status, got.Body)
	}
}

func (e *env) bcastOK(audioID int64, edit func(m map[string]any)) api.Broadcast {
	e.t.Helper()
	var b api.Broadcast
	e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(audioID, edit)), &b)
	return b
}

// TestTestBroadcasts: a test broadcast says so everywhere, and its
// reports are never counted as real coverage.
func TestTestBroadcasts(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	e.enrollBox("110101001001")
	audio, pl := e.setupLibrary()

	tb := e.bcastOK(audio[0].ID, func(m map[string]any) { m["test"] = true })
	real := e.bcastOK(audio[0].ID, nil)
	if !tb.Test || !e.pub.broadcasts[0].B.Test || e.pub.broadcasts[1].B.Test || !strings.Contains(string(e.do("GET", "/api/v1/broadcasts", e.staff, nil).Body), `"test":true`) {
		t.Fatalf("test broadcast %+v, sent %+v", tb, e.pub.broadcasts)
	}
	var sc api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, map[string]any{
		"playlist_id": pl.ID, "targets": map[string]any{"villages": []string{"110101001001"}}, "once_at": e.in(time.Minute)}), &sc)
	occ := *sc.OnceAt
	e.report("110101001001",
		api.Event{Seq: 1, Type: api.EventFinished, At: t0, BroadcastID: tb.ID, Test: true},
		api.Event{Seq: 2, Type: api.EventFinished, At: t0, BroadcastID: real.ID, Test: true}, // a test report can never make a real broadcast played
		api.Event{Seq: 3, Type: api.EventFinished, At: occ, ScheduleID: sc.ID, Occurrence: &occ, Test: true},
	)
	e.clk.Advance(2 * time.Hour)

	var tcov, rcov api.BroadcastCoverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d/coverage", tb.ID), e.staff, nil), &tcov)
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d/coverage", real.ID), e.staff, nil), &rcov)
	if !tcov.Test || tcov.Played != 1 || tcov.State != stateDone {
		t.Fatalf("test coverage %+v", tcov)
	}
	if rcov.Test || rcov.Played != 0 || rcov.Missed != 2 || rcov.State != stateExpired {
		t.Fatalf("real coverage %+v", rcov)
	}
	var scov api.Coverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage", sc.ID), e.staff, nil), &scov)
	if scov.Played != 0 || scov.Missed != 1 {
		t.Fatalf("schedule coverage counted a test report: %+v", scov.Counts)
	}
	if got := e.getBroadcast(real.ID); got.Progress.Played != 0 {
		t.Fatalf("real broadcast progress %+v", got.Progress)
	}
}
