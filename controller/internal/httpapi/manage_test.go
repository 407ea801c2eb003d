package httpapi

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
)

// TestDeleteClipInUse: a clip in a playlist, or in a broadcast that may
// still sound, cannot be deleted; the 409 names every use; once the uses
// are gone it is deleted, leaves the list, cannot be used again, and its
// content stays for the boxes. Only operators and admins may.
func TestDeleteClipInUse(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, pl := e.setupLibrary()
	clip := fmt.Sprintf("/api/v1/audio/%d", audio[0].ID)
	b := e.bcastOK(audio[0].ID, nil)

	viewer := e.token("v", "viewer", "")
	approver := e.token("a", "approver", "")
	for _, tok := range []string{viewer, approver} {
		if r := e.do("DELETE", clip, tok, nil); r.Status != http.StatusForbidden {
			t.Fatalf("delete as a reader: %d %s", r.Status, r.Body)
		}
	}

	r := e.do("DELETE", clip, e.staff, nil)
	if r.Status != http.StatusConflict {
		t.Fatalf("delete a clip in use: %d %s", r.Status, r.Body)
	}
	body := r.errBody(t)
	want := []api.RowError{{Line: int(pl.ID), Field: "playlist", Reason: "早间通知"}, {Line: int(b.ID), Field: "broadcast", Reason: "flood"}}
	if body.Error.Code != "conflict" || !slices.Equal(body.Error.Details, want) || !strings.Contains(body.Error.Message, `playlist 1 ("早间通知")`) {
		t.Fatalf("409 body %+v, want details %+v", body.Error, want)
	}

	// The broadcast ends (cancelled), the playlist goes: now it may go.
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", b.ID), e.staff, nil), nil)
	r = e.do("DELETE", clip, e.staff, nil)
	if r.Status != http.StatusConflict || len(r.errBody(t).Error.Details) != 1 {
		t.Fatalf("after the broadcast is cancelled: %d %s", r.Status, r.Body)
	}
	e.must(http.StatusNoContent, e.do("DELETE", fmt.Sprintf("/api/v1/playlists/%d", pl.ID), e.staff, nil), nil)
	e.must(http.StatusNoContent, e.do("DELETE", clip, e.staff, nil), nil)

	var lib struct{ Audio []api.Audio }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audio", e.staff, nil), &lib)
	if len(lib.Audio) != 1 || lib.Audio[0].ID != audio[1].ID {
		t.Fatalf("library after delete: %+v", lib.Audio)
	}
	var got api.Audio
	e.must(http.StatusOK, e.do("GET", clip, e.staff, nil), &got)
	if got.DeletedAt == nil {
		t.Fatalf("deleted clip by id: %+v", got)
	}
	if r := e.do("GET", clip+"/content", e.staff, nil); r.Status != http.StatusOK {
		t.Fatalf("a deleted clip's content: %d", r.Status)
	}
	if r := e.do("DELETE", clip, e.staff, nil); r.Status != http.StatusNotFound {
		t.Fatalf("delete twice: %d %s", r.Status, r.Body)
	}
	r = e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(audio[0].ID, nil))
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "no audio clip") {
		t.Fatalf("broadcast a deleted clip: %d %s", r.Status, r.Body)
	}
	r = e.do("POST", "/api/v1/playlists", e.staff, map[string]any{"name": "x", "items": []map[string]any{{"audio_id": audio[0].ID}}})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("playlist of a deleted clip: %d %s", r.Status, r.Body)
	}
	// Uploading the same recording again brings it back.
	var again api.Audio
	e.must(http.StatusOK, e.upload(e.staff, "c.wav", "又来了", sine(1)), &again)
	if again.ID != audio[0].ID || again.DeletedAt != nil || again.Title != "又来了" {
		t.Fatalf("uploaded again: %+v", again)
	}
	if log := e.auditLog("?action=audio.delete"); len(log) != 1 || log[0] != "clerk audio.delete audio/1" {
		t.Fatalf("audit: %q", log)
	}
}

// TestRenameClip: a title is 1 to 200 characters on one line; renaming is
// audited with the old and new titles.
func TestRenameClip(t *testing.T) {
	e := newEnv(t)
	audio, _ := e.setupLibrary()
	path := fmt.Sprintf("/api/v1/audio/%d", audio[0].ID)
	for _, bad := range []map[string]any{{}, {"title": "  "}, {"title": strings.Repeat("长", 201)}, {"title": "a\nb"}} {
		r := e.do("PATCH", path, e.staff, bad)
		if r.Status != http.StatusBadRequest || !strings.HasPrefix(r.errBody(t).Error.Message, "title") {
			t.Fatalf("rename to %v: %d %s", bad, r.Status, r.Body)
		}
	}
	if r := e.do("PATCH", path, e.token("v", "viewer", ""), map[string]string{"title": "x"}); r.Status != http.StatusForbidden {
		t.Fatalf("viewer renames: %d", r.Status)
	}
	if r := e.do("PATCH", "/api/v1/audio/99", e.staff, map[string]string{"title": "x"}); r.Status != http.StatusNotFound {
		t.Fatalf("rename a missing clip: %d", r.Status)
	}
	var a api.Audio
	e.must(http.StatusOK, e.do("PATCH", path, e.staff, map[string]string{"title": " 水库放水通知 "}), &a)
	if a.Title != "水库放水通知" || a.CreatedByName != "clerk" {
		t.Fatalf("renamed: %+v", a)
	}
	var log struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit?action=audio.rename", e.admin, nil), &log)
	if len(log.Entries) != 1 || log.Entries[0].Detail != `"1" -> "水库放水通知"` {
		t.Fatalf("audit: %+v", log.Entries)
	}
}

// TestPlaylistEditAndDeleteGuards: a playlist's name may always change;
// its clips and gap, and deleting it, wait until no live schedule uses
// it. A schedule that will never play again does not hold it.
func TestPlaylistEditAndDeleteGuards(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, pl := e.setupLibrary()
	path := fmt.Sprintf("/api/v1/playlists/%d", pl.ID)
	var sc api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, map[string]any{
		"playlist_id": pl.ID, "targets": map[string]any{"all": true}, "once_at": e.in(time.Hour)}), &sc)

	var got api.Playlist
	e.must(http.StatusOK, e.do("PATCH", path, e.staff, map[string]any{"name": "晚间通知"}), &got)
	if got.Name != "晚间通知" || len(got.Items) != 2 {
		t.Fatalf("renamed: %+v", got)
	}
	for _, ch := range []map[string]any{{"gap_ms": 0}, {"items": []map[string]any{{"audio_id": audio[1].ID}}}} {
		r := e.do("PATCH", path, e.staff, ch)
		if r.Status != http.StatusConflict || !strings.Contains(r.errBody(t).Error.Message, "cannot change") ||
			len(r.errBody(t).Error.Details) != 1 || r.errBody(t).Error.Details[0].Field != "schedule" {
			t.Fatalf("change %v under a live schedule: %d %s", ch, r.Status, r.Body)
		}
	}
	r := e.do("DELETE", path, e.staff, nil)
	if r.Status != http.StatusConflict || r.errBody(t).Error.Details[0] != (api.RowError{Line: int(sc.ID), Field: "schedule", Reason: sc.OnceAt.In(time.FixedZone("", 8*3600)).Format("2006-01-02 15:04")}) {
		t.Fatalf("delete under a live schedule: %d %s", r.Status, r.Body)
	}
	for _, bad := range []map[string]any{{}, {"name": ""}, {"gap_ms": -1}} {
		if r := e.do("PATCH", path, e.staff, bad); r.Status != http.StatusBadRequest && r.Status != http.StatusConflict {
			t.Fatalf("patch %v: %d %s", bad, r.Status, r.Body)
		}
	}

	// Once its time has passed the schedule holds nothing.
	e.clk.Advance(2 * time.Hour)
	e.must(http.StatusOK, e.do("PATCH", path, e.staff, map[string]any{"gap_ms": 0, "items": []map[string]any{{"audio_id": audio[1].ID, "repeat": 3}}}), &got)
	if got.GapMS != 0 || len(got.Items) != 1 || got.Items[0].Repeat != 3 || got.TotalMS != 6000 {
		t.Fatalf("changed: %+v", got)
	}
	e.must(http.StatusNoContent, e.do("DELETE", path, e.staff, nil), nil)
	var list struct{ Playlists []api.Playlist }
	e.must(http.StatusOK, e.do("GET", "/api/v1/playlists", e.staff, nil), &list)
	if len(list.Playlists) != 0 {
		t.Fatalf("list after delete: %+v", list.Playlists)
	}
	e.must(http.StatusOK, e.do("GET", path, e.staff, nil), &got)
	if got.DeletedAt == nil {
		t.Fatalf("deleted playlist by id: %+v", got)
	}
	r = e.do("POST", "/api/v1/schedules", e.staff, map[string]any{"playlist_id": pl.ID, "targets": map[string]any{"all": true}, "once_at": e.in(time.Hour)})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("schedule a deleted playlist: %d %s", r.Status, r.Body)
	}
	if r := e.do("PATCH", path, e.staff, map[string]any{"name": "x"}); r.Status != http.StatusNotFound {
		t.Fatalf("rename a deleted playlist: %d", r.Status)
	}
	if log := e.auditLog("?action=playlist"); len(log) != 4 {
		t.Fatalf("audit: %q", log)
	}
}

// TestEditVillage: an admin edits a village; the rules are the CSV
// import's; the audit says what changed; nothing changes on bad input.
func TestEditVillage(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	path := "/api/v1/villages/110101001001"
	if r := e.do("PATCH", path, e.staff, map[string]string{"name": "x"}); r.Status != http.StatusForbidden {
		t.Fatalf("operator edits: %d", r.Status)
	}
	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": ""}, "name"},
		{map[string]any{"name": strings.Repeat("村", 101)}, "name"},
		{map[string]any{"township": "东\x00镇"}, "township"},
		{map[string]any{"lat": 91.0}, "lat"},
		{map[string]any{"lon": -181.0}, "lon"},
		{map[string]any{"device": "radio"}, "device"},
	} {
		r := e.do("PATCH", path, e.admin, bad.body)
		if r.Status != http.StatusBadRequest || r.errBody(t).Error.Details[0].Field != bad.field {
			t.Fatalf("edit %v: %d %s", bad.body, r.Status, r.Body)
		}
	}
	if r := e.do("PATCH", "/api/v1/villages/110101009999", e.admin, map[string]string{"name": "x"}); r.Status != http.StatusNotFound {
		t.Fatalf("edit a missing village: %d", r.Status)
	}
	var v api.Village
	e.must(http.StatusOK, e.do("PATCH", path, e.admin, map[string]any{"name": "东风村", "lat": 39.95, "device": "manual"}), &v)
	if v.Name != "东风村" || v.Township != "东镇" || v.Lat != 39.95 || v.Lon != 116.4 || v.Device != "manual" {
		t.Fatalf("edited: %+v", v)
	}
	var log struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit?action=village.update", e.admin, nil), &log)
	if len(log.Entries) != 1 || log.Entries[0].Detail != `name "东村" -> "东风村", lat 39.9 -> 39.95, device agent -> manual` {
		t.Fatalf("audit: %+v", log.Entries)
	}
}

// TestReplaceBox: replacing a box revokes the enrolled one and issues a
// token with which the new box enrolls; a village without a box has
// nothing to replace.
func TestReplaceBox(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	old := e.enrollBox("110101001001")
	if r := e.do("POST", "/api/v1/villages/110101001001/replace", e.staff, nil); r.Status != http.StatusForbidden {
		t.Fatalf("operator replaces: %d", r.Status)
	}
	var tok api.EnrollToken
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/110101001001/replace", e.admin, nil), &tok)
	if _, err := e.db.CheckAgentPassword(t.Context(), old.MQTTUsername, old.MQTTPassword); err == nil {
		t.Fatal("the old box's password still works")
	}
	var nb api.EnrollResponse
	e.must(http.StatusOK, e.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Village: "110101001001", Token: tok.Token, AgentVersion: "0.2"}), &nb)
	if _, err := e.db.CheckAgentPassword(t.Context(), nb.MQTTUsername, nb.MQTTPassword); err != nil {
		t.Fatalf("the new box: %v", err)
	}
	// A village whose box was never enrolled gets a token only.
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/110101002001/replace", e.admin, nil), &tok)
	if r := e.do("POST", "/api/v1/villages/110101002002/replace", e.admin, nil); r.Status != http.StatusConflict {
		t.Fatalf("replace in a village without a box: %d %s", r.Status, r.Body)
	}
	log := e.auditLog("?object=village/110101001001")
	if len(log) < 3 || log[1] != "admin village.enroll_token village/110101001001" || log[2] != "admin agent.revoke village/110101001001" {
		t.Fatalf("audit: %q", log)
	}
	// The entry keeps the token's expiry as a parameter, and its English
	// detail is worded from it.
	var entries struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit?action=village.enroll_token&object=village/110101002001", e.admin, nil), &entries)
	exp := tok.ExpiresAt.UTC().Format(time.RFC3339)
	if len(entries.Entries) != 1 || !reflect.DeepEqual(entries.Entries[0].Params, map[string]string{"replacement": "yes", "expires_at": exp}) ||
		entries.Entries[0].Detail != "for a replacement box; expires "+exp {
		t.Fatalf("enrollment token in the audit log: %+v", entries.Entries)
	}
}

// TestDisplayNames: wherever a person is named, the API gives their
// display name beside the username; users list their last login.
func TestDisplayNames(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	var u api.User
	e.must(http.StatusCreated, e.do("POST", "/api/v1/users", e.admin, map[string]string{
		"username": "wang", "display_name": "王小明", "role": "operator", "password": "secret password wang"}), &u)
	if u.LastLoginAt != nil {
		t.Fatalf("never logged in: %+v", u)
	}
	var l api.Login
	e.must(http.StatusOK, e.do("POST", "/api/v1/login", "", map[string]string{"username": "wang", "password": "secret password wang"}), &l)
	wang := l.Token
	var a api.Audio
	e.must(http.StatusCreated, e.upload(wang, "c.wav", "t", sine(1)), &a)
	var pl api.Playlist
	e.must(http.StatusCreated, e.do("POST", "/api/v1/playlists", wang, map[string]any{"name": "p", "items": []map[string]any{{"audio_id": a.ID}}}), &pl)
	var sc api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", wang, map[string]any{
		"playlist_id": pl.ID, "targets": map[string]any{"all": true}, "once_at": e.in(time.Hour)}), &sc)
	var b api.Broadcast
	e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", wang, e.bcast(a.ID, nil)), &b)
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", b.ID), wang, nil), &b)
	if a.CreatedByName != "王小明" || sc.CreatedByName != "王小明" || b.CreatedByName != "王小明" || b.CancelledByName != "王小明" || b.CreatedBy != "wang" {
		t.Fatalf("names: audio %q, schedule %q, broadcast %q/%q", a.CreatedByName, sc.CreatedByName, b.CreatedByName, b.CancelledByName)
	}
	var bs struct{ Broadcasts []api.Broadcast }
	e.must(http.StatusOK, e.do("GET", "/api/v1/broadcasts", e.staff, nil), &bs)
	if bs.Broadcasts[0].CreatedByName != "王小明" {
		t.Fatalf("broadcast list: %+v", bs.Broadcasts[0])
	}
	var log struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit?actor=wang", e.admin, nil), &log)
	if len(log.Entries) == 0 || log.Entries[0].ActorName != "王小明" {
		t.Fatalf("audit: %+v", log.Entries)
	}
	var me api.Me
	e.must(http.StatusOK, e.do("GET", "/api/v1/me", wang, nil), &me)
	if me.Name != "wang" || me.DisplayName != "王小明" {
		t.Fatalf("me: %+v", me)
	}
	// Why a village did not play names who cancelled it by display name.
	var cov api.BroadcastCoverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d/coverage", b.ID), e.staff, nil), &cov)
	if len(cov.Villages) == 0 || cov.Villages[0].ReasonCode != coverage.ReasonCancelled || cov.Villages[0].ReasonArgs["by"] != "王小明" ||
		!strings.Contains(cov.Villages[0].Reason, "cancelled by 王小明") {
		t.Fatalf("cancelled broadcast's coverage: %+v", cov.Villages)
	}
	// A village confirmed by hand names who confirmed it by display name.
	e.must(http.StatusCreated, e.do("POST", "/api/v1/users", e.admin, map[string]string{
		"username": "beicun", "display_name": "北村老李", "role": "village", "village": "110101002002", "password": "secret password beicun"}), nil)
	var bl api.Login
	e.must(http.StatusOK, e.do("POST", "/api/v1/login", "", map[string]string{"username": "beicun", "password": "secret password beicun"}), &bl)
	var hb api.Broadcast
	e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", wang, e.bcast(a.ID, func(m map[string]any) {
		m["priority"], m["targets"] = "routine", map[string]any{"villages": []string{"110101002001", "110101002002"}}
	})), &hb)
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/110101002002/confirmations", bl.Token, map[string]any{"broadcast_id": hb.ID}), nil)
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d/coverage", hb.ID), e.staff, nil), &cov)
	if i := slices.IndexFunc(cov.Villages, func(v coverage.VillageStatus) bool { return v.Code == "110101002002" }); i < 0 ||
		!cov.Villages[i].ConfirmedByHand || cov.Villages[i].ConfirmedBy != "beicun" || cov.Villages[i].ConfirmedByName != "北村老李" {
		t.Fatalf("confirmed by hand: %+v", cov.Villages)
	}
	// A new display name shows at once.
	e.must(http.StatusOK, e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", u.ID), e.admin, map[string]string{"display_name": "王明"}), nil)
	var users struct{ Users []api.User }
	e.must(http.StatusOK, e.do("GET", "/api/v1/users", e.admin, nil), &users)
	if len(users.Users) != 2 || users.Users[0].LastLoginAt == nil || !users.Users[0].LastLoginAt.Equal(t0) {
		t.Fatalf("users: %+v", users.Users)
	}
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/schedules/%d", sc.ID), e.staff, nil), &sc)
	if sc.CreatedByName != "王明" {
		t.Fatalf("after the rename: %q", sc.CreatedByName)
	}
}
