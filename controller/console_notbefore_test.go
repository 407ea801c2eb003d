package main

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/playlists"
)

// TestConsoleNoPlayBeforeSchedule, at 1920 and 360 px, on the real clock
// with a real box: a daily schedule created a few minutes after its slot
// of today (a 07:30 made at 22:04) shows no play for today's slot
// anywhere. The coverage map's latest occurrence is tomorrow's, with
// nothing played, its villages and the list of villages that did not play
// all waiting (not missed, not awaiting a hand confirmation), and the
// village's details say so; the week calendar has no item for today and
// has tomorrow's; the day's report lists no occurrence of it; the village
// broadcaster's phone page offers nothing of it to confirm, only
// tomorrow's, not yet begun. A one-off that has played shows on the same
// screens, so they are looked at when they would show a play.
func TestConsoleNoPlayBeforeSchedule(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	const east, west, south = "110101001001", "110101001002", "110101002001" // threeVillages: a box, a box that never connects, no box
	if _, err := h.Client.ImportVillages(ctx, []byte(threeVillages)); err != nil {
		t.Fatal(err)
	}
	consoleUsers(t, h, "zhang operator", "cun village "+south)
	fl := h.boxes(t, h.BrokerURL, "null", east)
	waitFor(t, 20*time.Second, "东村's box connected", func() bool { return fl.Connected(east) })
	pl := h.playlist(t, "早间通知", "早间通知")

	// The schedule is made at least a second after its slot (its bound is
	// its creation, to the second).
	slot := earlierToday(time.Now().In(mustZone(t)), 3*time.Minute)
	waitFor(t, 3*time.Second, "two seconds past the slot", func() bool { return time.Since(slot) >= 2*time.Second })
	daily, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl, Targets: playlists.Targets{All: true},
		Recurring: &playlists.Recurrence{Times: []string{slot.Format("15:04")}, StartDate: slot.Format(time.DateOnly)}})
	if err != nil {
		t.Fatal(err)
	}
	tomorrow := slot.AddDate(0, 0, 1)
	today, next := slot.Format(time.DateOnly), tomorrow.Format(time.DateOnly)
	// The control: a one-off to the same villages that has played.
	soon := time.Now().Add(2 * time.Second).Truncate(time.Second)
	once, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl, Targets: playlists.Targets{All: true}, OnceAt: &soon})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the one-off's time passed", func() bool { return time.Now().After(soon) })
	t.Logf("slot %s (UTC %s), schedule #%d made after it; tomorrow's %s", slot.Format("2006-01-02 15:04"), slot.UTC().Format(time.RFC3339), daily.ID, tomorrow.UTC().Format(time.RFC3339))

	shots := shotsDir(t)
	browser := startBrowser(t)
	// instants lists, as Unix milliseconds, the occurrences of schedule
	// sid that a list of elements holds in an attribute "<prefix><sid>@<time>".
	instants := func(tab context.Context, sel, attr, prefix string, sid int64) []int64 {
		return evalJS[[]int64](t, tab, fmt.Sprintf(`[...document.querySelectorAll(%q)].map((e) => e.getAttribute(%q) ?? '').filter((k) => k.startsWith(%q)).map((k) => Date.parse(decodeURIComponent(k.slice(k.indexOf('@') + 1))))`,
			sel, attr, fmt.Sprintf("%s%d@", prefix, sid)))
	}
	has := func(list []int64, at time.Time) bool {
		for _, ms := range list {
			if ms == at.UnixMilli() {
				return true
			}
		}
		return false
	}

	for _, width := range []int64{1920, 360} {
		w := strconv.FormatInt(width, 10)
		op := newTab(t, browser)
		run(t, op, 20*time.Second, "login page", chromedp.EmulateViewport(width, 900), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
		login(t, op, "zhang")

		// The map of the schedule's latest occurrence: tomorrow's, nothing played.
		hash(t, op, fmt.Sprintf("#map?s=%d", daily.ID))
		csv := `new URL(document.querySelector('#up-csv').getAttribute('href') ?? '#', location.href)`
		waitJS(t, op, fmt.Sprintf(`%s.pathname === '/api/v1/schedules/%d/coverage' && document.querySelector('#headline').dataset.targeted === '3'`, csv, daily.ID), 10*time.Second, "the schedule's coverage on the map")
		if at := evalJS[string](t, op, csv+`.searchParams.get('at')`); !sameInstant(at, tomorrow) {
			t.Errorf("%s px: the map shows the occurrence at %s, want tomorrow's %s", w, at, tomorrow.UTC().Format(time.RFC3339))
		}
		if hl := evalJS[string](t, op, `document.querySelector('#headline').textContent`); hl != "0 / 3 个村已播放" {
			t.Errorf("%s px: the map's headline reads %q, want 0 / 3 个村已播放", w, hl)
		}
		// 东村's box waits for it (it would have missed this morning's); 西村's
		// box is offline; 南村, without one, is always awaiting a hand.
		statuses := evalJS[map[string]string](t, op, `Object.fromEntries([...document.querySelectorAll('#map .vm')].map((m) => [m.dataset.code, m.dataset.status]))`)
		if want := map[string]string{east: "pending", west: "offline", south: "awaiting"}; !maps.Equal(statuses, want) {
			t.Errorf("%s px: the map's villages are %v, want %v", w, statuses, want)
		}
		// The villages that did not play: 东村 has not missed it.
		classes := evalJS[map[string]string](t, op, `Object.fromEntries([...document.querySelectorAll('#up-list li')].map((li) => [li.dataset.code, li.dataset.class]))`)
		if want := map[string]string{east: "pending", west: "offline", south: "awaiting_confirmation"}; !maps.Equal(classes, want) {
			t.Errorf("%s px: the list of villages that did not play says %v, want %v", w, classes, want)
		}
		// The selector offers tomorrow's occurrence, not today's.
		if occ := instants(op, "#subject option", "value", "s:", daily.ID); has(occ, slot) || !has(occ, tomorrow) {
			t.Errorf("%s px: the map's selector offers %v (ms), want tomorrow's %d and not today's %d", w, occ, tomorrow.UnixMilli(), slot.UnixMilli())
		}
		// 东村's details.
		run(t, op, 5*time.Second, "details of 东村", chromedp.Click(chromedp.CSS(`#map .vm[data-code="`+east+`"] circle.v`)))
		waitJS(t, op, fmt.Sprintf(`document.querySelector('#details dd')?.textContent === %q`, east), 5*time.Second, "the details of 东村")
		if st := evalJS[string](t, op, `[...document.querySelectorAll('#details dt')].find((dt) => dt.textContent === '播放状态').nextElementSibling.textContent`); st != "等待中" {
			t.Errorf("%s px: the details of 东村 say %q, want 等待中", w, st)
		}
		screenshot(t, op, shots, "notbefore-map-"+w+".png")
		// The one-off has played: the same map shows 东村's box played it.
		hash(t, op, fmt.Sprintf("#map?s=%d", once.ID))
		waitJS(t, op, fmt.Sprintf(`%s.pathname === '/api/v1/schedules/%d/coverage' && document.querySelector('#map .vm[data-code="%s"]').dataset.status === 'played_box'`, csv, once.ID, east), 30*time.Second, "the one-off played by 东村's box")

		// The week calendar: nothing of it today, tomorrow's there.
		openView(t, op, "calendar")
		day := func(date string) string {
			showCalendarDay(t, op, date)
			return fmt.Sprintf(`#cal-grid .cal-day[data-date="%s"] .cal-item[data-schedule="%d"]`, date, daily.ID)
		}
		if n := evalJS[int](t, op, fmt.Sprintf(`document.querySelectorAll(%q).length`, day(today))); n != 0 {
			t.Errorf("%s px: the calendar shows %d plays of schedule #%d on %s", w, n, daily.ID, today)
		}
		if occ := instants(op, day(today), "href", "#map?s=", daily.ID); len(occ) > 0 {
			t.Errorf("%s px: the calendar's %s links to plays %v", w, today, occ)
		}
		screenshot(t, op, shots, "notbefore-calendar-"+w+".png")
		if occ := instants(op, day(next), "href", "#map?s=", daily.ID); len(occ) != 1 || !has(occ, tomorrow) {
			t.Errorf("%s px: the calendar's %s has plays %v (ms), want tomorrow's %d", w, next, occ, tomorrow.UnixMilli())
		}

		// The report of today and tomorrow: the one-off, and nothing of the daily.
		hash(t, op, fmt.Sprintf("#reports?from=%s&to=%s", today, next))
		waitJS(t, op, fmt.Sprintf(`document.querySelector('#rp-range').textContent.includes(%q) && document.querySelector('#rp-rows tr[data-kind="schedule"][data-id="%d"]') !== null`, next, once.ID), 10*time.Second, "the report with the one-off")
		if n := evalJS[int](t, op, fmt.Sprintf(`document.querySelectorAll('#rp-rows tr[data-kind="schedule"][data-id="%d"], #rp-notplayed details[data-kind="schedule"][data-id="%d"]').length`, daily.ID, daily.ID)); n != 0 {
			t.Errorf("%s px: the report lists %d rows of schedule #%d", w, n, daily.ID)
		}
		screenshot(t, op, shots, "notbefore-report-"+w+".png")

		// The broadcaster of 南村: the one-off to confirm, nothing of the daily but tomorrow's.
		vb := newTab(t, browser)
		run(t, vb, 20*time.Second, "village login page", chromedp.EmulateViewport(width, 780), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
		login(t, vb, "cun")
		run(t, vb, 10*time.Second, "village view", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#vb-occ li[data-key^="s:%d@"] button.confirm-big`, once.ID))))
		if occ := instants(vb, "#vb-occ li", "data-key", "s:", daily.ID); has(occ, slot) || !has(occ, tomorrow) {
			t.Errorf("%s px: the broadcaster's page lists plays %v (ms), want tomorrow's %d and not today's %d", w, occ, tomorrow.UnixMilli(), slot.UnixMilli())
		}
		if n := evalJS[int](t, vb, fmt.Sprintf(`document.querySelectorAll('#vb-occ li[data-key^="s:%d@"] button').length`, daily.ID)); n != 0 {
			t.Errorf("%s px: the broadcaster is offered %d buttons for schedule #%d", w, n, daily.ID)
		}
		screenshot(t, vb, shots, "notbefore-village-"+w+".png")
	}
}

// sameInstant reports whether an RFC 3339 time is the instant at.
func sameInstant(s string, at time.Time) bool {
	v, err := time.Parse(time.RFC3339, s)
	return err == nil && v.Equal(at)
}

// showCalendarDay moves the week calendar to the week holding date
// (YYYY-MM-DD, county time), a week at a time.
func showCalendarDay(t *testing.T, tab context.Context, date string) {
	t.Helper()
	col := fmt.Sprintf(`document.querySelector('#cal-grid .cal-day[data-date="%s"]') !== null`, date)
	for i := 0; i < 3 && !evalJS[bool](t, tab, col); i++ {
		first := evalJS[string](t, tab, `document.querySelector('#cal-grid .cal-day')?.dataset.date ?? ''`)
		btn := "#cal-next"
		if date < first {
			btn = "#cal-prev"
		}
		run(t, tab, 5*time.Second, "another week", chromedp.Click(chromedp.CSS(btn)))
		waitJS(t, tab, fmt.Sprintf(`document.querySelector('#cal-grid .cal-day')?.dataset.date !== %q && document.querySelector('#view-calendar').getAttribute('aria-busy') !== 'true'`, first), 5*time.Second, "the week after "+first)
	}
	waitJS(t, tab, col, time.Second, "the calendar at "+date)
}

// earlierToday is a daily schedule's slot about ago before now, on the
// clock's whole minutes, but never before now's midnight: a slot of
// today, even a minute after midnight.
func earlierToday(now time.Time, ago time.Duration) time.Time {
	slot := now.Truncate(time.Minute).Add(-ago)
	if midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location()); slot.Before(midnight) {
		return midnight
	}
	return slot
}

func TestEarlierToday(t *testing.T) {
	county := mustZone(t)
	for _, tt := range []struct{ now, want string }{
		{"2026-03-01 22:04:31", "2026-03-01 22:01:00"},
		{"2026-03-01 00:03:00", "2026-03-01 00:00:00"},
		{"2026-03-01 00:02:59", "2026-03-01 00:00:00"},
		{"2026-03-01 00:00:00", "2026-03-01 00:00:00"},
	} {
		now, _ := time.ParseInLocation(time.DateTime, tt.now, county)
		if got := earlierToday(now, 3*time.Minute).Format(time.DateTime); got != tt.want {
			t.Errorf("earlierToday(%s) = %s, want %s", tt.now, got, tt.want)
		}
	}
}
