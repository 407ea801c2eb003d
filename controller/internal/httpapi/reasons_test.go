package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
)

// TestErrorsCarryReasons: representative refusals carry a stable reason
// key, the field and the parameters a console needs to say them in
// Chinese, beside the English message API users read.
func TestErrorsCarryReasons(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, pl := e.setupLibrary()

	check := func(t *testing.T, r resp, status int, reason, field string, params map[string]any) {
		t.Helper()
		b := r.errBody(t).Error
		if r.Status != status || b.Reason != reason || b.Field != field || b.Message == "" {
			t.Fatalf("%d reason %q field %q, want %d %q %q: %s", r.Status, b.Reason, b.Field, status, reason, field, r.Body)
		}
		for k, v := range params {
			if fmt.Sprint(b.Params[k]) != fmt.Sprint(v) {
				t.Errorf("params[%s] = %v, want %v (%s)", k, b.Params[k], v, r.Body)
			}
		}
	}
	t.Run("upload of a file that is not audio", func(t *testing.T) {
		check(t, e.upload(e.staff, "notes.txt", "通知", []byte("this is a text file, not a recording at all")), http.StatusBadRequest, api.ReasonNotAudio, "", nil)
	})
	t.Run("schedule with a bad time of day", func(t *testing.T) {
		r := e.do("POST", "/api/v1/schedules", e.staff, fmt.Sprintf(`{"playlist_id":%d,"targets":{"all":true},"recurring":{"times":["25:00"],"start_date":"2026-03-01"}}`, pl.ID))
		check(t, r, http.StatusBadRequest, api.ReasonClockInvalid, "recurring.times[0]", map[string]any{"value": "25:00"})
	})
	t.Run("schedule of a township that does not exist", func(t *testing.T) {
		r := e.do("POST", "/api/v1/schedules", e.staff, fmt.Sprintf(`{"playlist_id":%d,"targets":{"townships":["北镇"]},"once_at":"2026-03-01T09:00:00+08:00"}`, pl.ID))
		check(t, r, http.StatusBadRequest, api.ReasonTownshipUnknown, "targets.townships[0]", map[string]any{"name": "北镇"})
	})
	t.Run("clip in use", func(t *testing.T) {
		check(t, e.do("DELETE", fmt.Sprintf("/api/v1/audio/%d", audio[0].ID), e.admin, nil), http.StatusConflict, api.ReasonClipInUse, "", map[string]any{"name": audio[0].Title})
	})
	t.Run("self-approval", func(t *testing.T) {
		var b api.Broadcast
		e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", e.admin, e.bcast(audio[0].ID, func(m map[string]any) {
			m["targets"] = map[string]any{"all": true}
		})), &b)
		r := e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/approve", b.ID), e.admin, nil)
		check(t, r, http.StatusForbidden, api.ReasonSelfApproval, "", map[string]any{"id": b.ID, "verb": "approve"})
	})
	t.Run("CSV import lines", func(t *testing.T) {
		r := e.do("POST", "/api/v1/villages/import", e.admin, []byte("code,name,township,lat,lon,device\n110101001001,"+strings.Repeat("村", 101)+",东镇,39.9,116.4,agent\n"))
		check(t, r, http.StatusUnprocessableEntity, api.ReasonCSVInvalid, "", map[string]any{"lines": 1})
		d := r.errBody(t).Error.Details
		if len(d) != 1 || d[0].Key != api.ReasonCSVNameTooLong || d[0].Params.N != 101 || d[0].Params.Max != 100 || d[0].Line != 2 {
			t.Fatalf("details %+v", d)
		}
	})
}
