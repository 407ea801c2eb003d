package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// TestBoxBroadcastCheck: what a box that heard of a broadcast late is told
// before it sounds it, for every state a broadcast can be in, and only
// about broadcasts that reach its own village.
func TestBoxBroadcastCheck(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	east := e.enrollBox("110101001001")  // 东镇
	south := e.enrollBox("110101002001") // 南镇
	audio, _ := e.setupLibrary()

	check := func(creds api.EnrollResponse, id int64) (int, string) {
		t.Helper()
		req := httptest.NewRequest("GET", fmt.Sprintf("/api/v1/box/broadcasts/%d", id), nil)
		req.SetBasicAuth(creds.MQTTUsername, creds.MQTTPassword)
		got := e.request(req)
		if got.Status != http.StatusOK {
			return got.Status, ""
		}
		var c api.BroadcastCheck
		got.decode(t, &c)
		if c.ID != id {
			t.Fatalf("answer for %d names %d", id, c.ID)
		}
		return got.Status, c.Status
	}
	want := func(creds api.EnrollResponse, id int64, status string) {
		t.Helper()
		if code, got := check(creds, id); code != http.StatusOK || got != status {
			t.Fatalf("broadcast %d for %s: %d %q, want %q", id, creds.MQTTUsername, code, got, status)
		}
	}

	active := e.bcastOK(audio[0].ID, nil) // 东镇 only
	want(east, active.ID, api.CheckActive)
	want(south, active.ID, api.CheckUnknown) // not its village: it learns nothing
	want(east, 999999, api.CheckUnknown)

	cancelled := e.bcastOK(audio[0].ID, nil)
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/broadcasts/%d", cancelled.ID), e.staff, nil), nil)
	want(east, cancelled.ID, api.CheckCancelled)

	pending := e.bcastOK(audio[0].ID, func(m map[string]any) { m["targets"] = map[string]any{"all": true} })
	want(east, pending.ID, api.CheckRejected) // waits for a second person: never sent
	want(south, pending.ID, api.CheckRejected)

	// A staff credential is not a box's, and a wrong password is nobody's.
	if got := e.do("GET", fmt.Sprintf("/api/v1/box/broadcasts/%d", active.ID), e.staff, nil); got.Status != http.StatusForbidden && got.Status != http.StatusUnauthorized {
		t.Fatalf("staff token: %d %s", got.Status, got.Body)
	}
	wrong := east
	wrong.MQTTPassword += "x"
	if code, _ := check(wrong, active.ID); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}

	e.clk.Advance(2 * time.Hour)
	want(east, active.ID, api.CheckExpired)
}
