package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// TestNoPlayBeforeScheduleExisted: a daily 07:30 schedule created at 22:04
// has no 07:30 that morning anywhere — not in its coverage, the calendar,
// the village broadcaster's list, the reports, nor in what the boxes get.
func TestNoPlayBeforeScheduleExisted(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	_, pl := e.setupLibrary()
	// t0 is 08:00 in Shanghai; 22:04 is 14 h 04 min later.
	e.clk.Advance(14*time.Hour + 4*time.Minute)
	var sc api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff,
		fmt.Sprintf(`{"playlist_id":%d,"targets":{"all":true},"recurring":{"times":["07:30"],"start_date":"2026-03-01"}}`, pl.ID)), &sc)
	morning := time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC) // 07:30 on the 1st in Shanghai
	tomorrow := morning.Add(24 * time.Hour)

	if sc.NotBefore == nil || !sc.NotBefore.Equal(time.Date(2026, 3, 1, 14, 4, 0, 0, time.UTC)) {
		t.Errorf("not_before = %v, want the creation 2026-03-01T14:04:00Z", sc.NotBefore)
	}
	if len(sc.Next) == 0 || !sc.Next[0].Equal(tomorrow) {
		t.Errorf("next = %v, want tomorrow's 07:30 first", sc.Next)
	}

	// Boxes: the schedule they get carries the bound.
	e.pub.mu.Lock()
	got := e.pub.published[len(e.pub.published)-1].Schedule
	e.pub.mu.Unlock()
	if got.NotBefore == nil || !got.NotBefore.Equal(*sc.NotBefore) {
		t.Errorf("published not_before = %v, want %v", got.NotBefore, sc.NotBefore)
	}
	if occ, _ := got.Occurrences(morning.Add(-time.Hour), morning.Add(time.Hour)); len(occ) != 0 {
		t.Errorf("a box would play %v", occ)
	}

	// Coverage: the latest occurrence is not this morning's, and asking
	// for it is an error.
	var cov api.Coverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage", sc.ID), e.staff, nil), &cov)
	if !cov.Occurrence.Equal(tomorrow) {
		t.Errorf("coverage picks %s, want tomorrow's %s", cov.Occurrence, tomorrow)
	}
	r := e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage?at=%s", sc.ID, url.QueryEscape(morning.Format(time.RFC3339))), e.staff, nil)
	if r.Status != http.StatusBadRequest || !strings.Contains(r.errBody(t).Error.Message, "not an occurrence") {
		t.Errorf("coverage of this morning: %d %s", r.Status, r.Body)
	}

	// Calendar of the whole day.
	var cal api.Calendar
	day := "?from=" + url.QueryEscape("2026-03-01T00:00:00+08:00") + "&to=" + url.QueryEscape("2026-03-02T00:00:00+08:00")
	e.must(http.StatusOK, e.do("GET", "/api/v1/calendar"+day, e.staff, nil), &cal)
	if len(cal.Occurrences) != 0 {
		t.Errorf("calendar lists %+v", cal.Occurrences)
	}

	// The village broadcaster's page: nothing to confirm today.
	bc := e.token("村播音员", api.RoleVillage, "110101002002")
	var vs struct {
		Schedules []api.VillageSchedule `json:"schedules"`
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101002002/schedules?from="+url.QueryEscape("2026-03-01T00:00:00+08:00"), bc, nil), &vs)
	if len(vs.Schedules) != 1 || len(vs.Schedules[0].Recent) != 0 {
		t.Errorf("village schedules %+v", vs.Schedules)
	}

	// Reports of the day.
	var rep struct {
		Items []api.ReportItem `json:"items"`
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-03-01&to=2026-03-01", e.staff, nil), &rep)
	for _, it := range rep.Items {
		if it.Kind == "schedule" {
			t.Errorf("report lists %+v", it)
		}
	}

	// The next morning it is there, everywhere.
	e.clk.Advance(10 * time.Hour)
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage", sc.ID), e.staff, nil), &cov)
	if !cov.Occurrence.Equal(tomorrow) {
		t.Errorf("next morning, coverage picks %s", cov.Occurrence)
	}
}
