package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// TestCalendar expands the live schedules over a week of Shanghai time: a
// one-off to a township and a village, a recurrence with a holiday, and a
// withdrawn schedule that must not appear.
func TestCalendar(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	_, pl := e.setupLibrary()
	plID := fmt.Sprint(pl.ID)

	var once, rec, gone api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+plID+`,"targets":{"townships":["东镇"],"villages":["110101003001"]},"once_at":"2026-03-01T09:30"}`), &once)
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+plID+`,"targets":{"all":true},"recurring":{"times":["07:00","18:30"],"weekdays":[1,3,5],"start_date":"2026-03-01","except_dates":["2026-03-04"]}}`), &rec)
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+plID+`,"targets":{"all":true},"once_at":"2026-03-02T12:00"}`), &gone)
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/schedules/%d", gone.ID), e.staff, nil), nil)

	viewer := e.token("screen", api.RoleViewer, "")
	q := "?from=" + url.QueryEscape("2026-03-01T00:00:00+08:00") + "&to=" + url.QueryEscape("2026-03-08T00:00:00+08:00")
	var cal api.Calendar
	e.must(http.StatusOK, e.do("GET", "/api/v1/calendar"+q, viewer, nil), &cal)
	if !cal.From.Equal(time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC)) || !cal.To.Equal(time.Date(2026, 3, 7, 16, 0, 0, 0, time.UTC)) || cal.Timezone != "Asia/Shanghai" {
		t.Fatalf("range %s – %s %s", cal.From, cal.To, cal.Timezone)
	}
	type row struct {
		id      int64
		at      string
		summary string
		count   int
	}
	// 09:30 on Sunday the 1st; Monday 07:00 and 18:30; Wednesday the 4th
	// is a holiday; Friday the 6th twice. The withdrawn one is not there.
	want := []row{
		{once.ID, "2026-03-01T01:30:00Z", "东镇、新村", 3},
		{rec.ID, "2026-03-01T23:00:00Z", "", 5},
		{rec.ID, "2026-03-02T10:30:00Z", "", 5},
		{rec.ID, "2026-03-05T23:00:00Z", "", 5},
		{rec.ID, "2026-03-06T10:30:00Z", "", 5},
	}
	if len(cal.Occurrences) != len(want) {
		t.Fatalf("%d occurrences, want %d: %+v", len(cal.Occurrences), len(want), cal.Occurrences)
	}
	for i, w := range want {
		o := cal.Occurrences[i]
		got := row{o.ScheduleID, o.At.Format(time.RFC3339), o.Summary, o.VillageCount}
		if got != w {
			t.Errorf("occurrence %d: %+v, want %+v", i, got, w)
		}
		if o.Playlist != "早间通知" || o.PlaylistID != pl.ID || o.Priority != "routine" || o.DurationMS != pl.TotalMS || !o.End.Equal(o.At.Add(time.Duration(pl.TotalMS)*time.Millisecond)) {
			t.Errorf("occurrence %d: %+v", i, o)
		}
	}
	if !cal.Occurrences[1].Targets.All || len(cal.Occurrences[0].Targets.Townships) != 1 {
		t.Errorf("targets %+v, %+v", cal.Occurrences[0].Targets, cal.Occurrences[1].Targets)
	}

	// With no range: a week from now. Two days on, the one-off is past and
	// the week reaches Monday the 9th.
	e.clk.Advance(48 * time.Hour)
	e.must(http.StatusOK, e.do("GET", "/api/v1/calendar", viewer, nil), &cal)
	now := t0.Add(48 * time.Hour)
	if !cal.From.Equal(now) || !cal.To.Equal(now.Add(7*24*time.Hour)) {
		t.Fatalf("default range %s – %s", cal.From, cal.To)
	}
	var ats []string
	for _, o := range cal.Occurrences {
		ats = append(ats, o.At.Format(time.RFC3339))
	}
	if want := "2026-03-05T23:00:00Z 2026-03-06T10:30:00Z 2026-03-08T23:00:00Z 2026-03-09T10:30:00Z"; strings.Join(ats, " ") != want {
		t.Fatalf("default range: %v, want %s", ats, want)
	}
}

func TestCalendarRefusesBadRanges(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name, query, field string
	}{
		{"to before from", "?from=2026-03-08T00:00:00Z&to=2026-03-01T00:00:00Z", "to"},
		{"empty range", "?from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z", "to"},
		{"longer than 31 days", "?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:01Z", "to"},
		{"a year by default end", "?to=2027-03-01T00:00:00Z", "to"},
		{"malformed from", "?from=monday", "from"},
		{"malformed to", "?from=2026-03-01T00:00:00Z&to=2026-03-08", "to"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do("GET", "/api/v1/calendar"+tt.query, e.staff, nil)
			b := got.errBody(t)
			if got.Status != http.StatusBadRequest || b.Error.Code != cx.EINVALID || !strings.HasPrefix(b.Error.Message, tt.field+": ") {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
	// Exactly 31 days is allowed.
	e.must(http.StatusOK, e.do("GET", "/api/v1/calendar?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z", e.staff, nil), nil)
}

func TestCalendarRoles(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	for _, tt := range []struct {
		name, token string
		status      int
	}{
		{"viewer", e.token("v", api.RoleViewer, ""), http.StatusOK},
		{"approver", e.token("a", api.RoleApprover, ""), http.StatusOK},
		{"operator", e.staff, http.StatusOK},
		{"village", e.token("cun", api.RoleVillage, "110101002002"), http.StatusForbidden},
		{"no token", "", http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.do("GET", "/api/v1/calendar", tt.token, nil); got.Status != tt.status {
				t.Fatalf("%d, want %d: %s", got.Status, tt.status, got.Body)
			}
		})
	}
}
