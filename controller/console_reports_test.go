package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestConsoleReports drives the reports, the audit log and the emergency
// form's extras in headless Chromium against a controller with 79 real
// boxes: a schedule plays county-wide (79 played, 2 awaiting); an operator
// sends an emergency to two single villages, played twice at 80 %
// volume, and proposes a county-wide one, which an approver rejects with a
// reason the operator then reads on the map. The day's report shows the
// API's numbers, its CSV export downloads with a byte order mark and the
// same rows, and the printable page shows every item's headline and the
// townships. An admin filters the audit log by the approver and sees only
// their entries, the rejection with its reason among them. Clicking a
// village on the map shows its box's latest started and finished reports.
// Screenshots of the reports, the printable page and the audit log at 1920
// and 360 px go to $CUNXIANG_SCREENSHOTS. Any error in a browser console
// fails the test.
func TestConsoleReports(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{CountyName: "示例县"})
	h.county(t, h.BrokerURL)
	ctx := context.Background()
	consoleUsers(t, h, "zhang operator", "li approver", "guan admin")
	// The day's schedule, played before anything else happens.
	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	sid := h.announce(t, at)
	waitCoverage(t, h, sid, at, 40*time.Second, countyPlayed)
	clips, err := h.Client.AudioList(ctx)
	if err != nil || len(clips) == 0 {
		t.Fatalf("audio %v %v", clips, err)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two villages with a box in one township: no second person needed.
	var a, b api.Village
	for _, v := range vs {
		if v.Device != playlists.DeviceAgent {
			continue
		}
		switch {
		case a.Code == "":
			a = v
		case b.Code == "" && v.Township == a.Township:
			b = v
		}
	}
	if b.Code == "" {
		t.Fatal("no township with two boxes")
	}

	shots := shotsDir(t)
	br := startBrowser(t)
	op := newTab(t, br)
	run(t, op, 20*time.Second, "operator login page", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, op, "zhang")

	// An emergency to two single villages (one by code, one by name), twice, at 80 %.
	run(t, op, 10*time.Second, "emergency form",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="emergency"]`)),
		chromedp.WaitVisible(chromedp.CSS("#em-form")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#em-audio option[value="%d"]') !== null`, clips[0].ID)),
		chromedp.SendKeys(chromedp.CSS("#em-village-q"), a.Code),
		chromedp.Click(chromedp.CSS("#em-village-add")),
		chromedp.SendKeys(chromedp.CSS("#em-village-q"), b.Name+" · "+b.Township),
		chromedp.Click(chromedp.CSS("#em-village-add")),
		chromedp.WaitVisible(chromedp.CSS(`#em-village-chips li[data-code="`+b.Code+`"]`)),
		chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(clips[0].ID, 10)),
		chromedp.SetValue(chromedp.CSS("#em-repeat"), "2"),
		chromedp.SetValue(chromedp.CSS("#em-volume"), "80"),
		chromedp.Click(chromedp.CSS("#em-next")),
		chromedp.WaitVisible(chromedp.CSS("#em-step2")),
	)
	waitText(t, op, "#em-count", "将有 2 个村的喇叭响起", 5*time.Second)
	run(t, op, 10*time.Second, "send", chromedp.Click(chromedp.CSS("#em-send")))
	waitJS(t, op, `['sending', 'in_progress'].includes(document.querySelector('#em-state')?.dataset.state)`, 10*time.Second, "sent without approval")
	id1 := mustAtoi(t, evalJS[string](t, op, `document.querySelector('#em-view-map').getAttribute('href').split('=')[1]`))
	got, err := h.Client.GetBroadcast(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{a.Code, b.Code}; got.Targets.All || len(got.Targets.Townships) != 0 || !sameSet(got.Targets.Villages, want) || got.Repeat != 2 || got.Volume != 80 {
		t.Errorf("broadcast %+v, want villages %v, repeat 2, volume 80", got, want)
	}

	// A county-wide emergency waits for a second person.
	// (The form was emptied after sending: the clip is picked again.)
	run(t, op, 10*time.Second, "county-wide emergency",
		chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(clips[0].ID, 10)),
		chromedp.Click(chromedp.CSS("#em-all")),
		chromedp.Click(chromedp.CSS("#em-next")),
		chromedp.WaitVisible(chromedp.CSS("#em-step2")),
	)
	waitText(t, op, "#em-count", "将有 81 个村的喇叭响起", 5*time.Second)
	run(t, op, 10*time.Second, "send", chromedp.Click(chromedp.CSS("#em-send")))
	waitJS(t, op, `document.querySelector('#em-state')?.dataset.state === 'pending_approval'`, 10*time.Second, "pending approval")
	id2 := evalJS[string](t, op, `document.querySelector('#em-view-map').getAttribute('href').split('=')[1]`)

	// The approver rejects it, saying why.
	const reason = "范围太大，只发受灾的乡镇"
	ap := newTab(t, br)
	run(t, ap, 20*time.Second, "approver login page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ap, "li")
	item := `#ap-list li[data-id="` + id2 + `"] `
	run(t, ap, 10*time.Second, "reject",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="approvals"]`)),
		chromedp.WaitVisible(chromedp.CSS(item+"button.reject")),
		chromedp.Click(chromedp.CSS(item+"button.reject")),
		chromedp.WaitVisible(chromedp.CSS(item+"textarea.reason")),
		chromedp.SendKeys(chromedp.CSS(item+"textarea.reason"), reason),
		chromedp.Click(chromedp.CSS(item+"button.reject-send")),
		chromedp.WaitVisible(chromedp.CSS("#ap-msg")),
	)
	waitText(t, ap, "#ap-msg", "已驳回", 5*time.Second)
	// The operator reads the reason on the map.
	run(t, op, 10*time.Second, "open map", chromedp.Click(chromedp.CSS("#em-view-map")), chromedp.WaitVisible(chromedp.CSS("#subject-reason")))
	waitText(t, op, "#subject-reason", "已被 li 驳回："+reason, 5*time.Second)

	// The two villages play it, twice.
	waitFor(t, 20*time.Second, "both villages play the emergency", func() bool {
		c, err := h.Client.BroadcastCoverage(ctx, id1)
		return err == nil && c.PlayedByBox == 2
	})

	// Today's report shows what the API says.
	today := time.Now().In(mustZone(t)).Format(time.DateOnly)
	run(t, op, 10*time.Second, "reports",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="reports"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#rp-rows tr[data-kind="schedule"][data-id="%d"]`, sid))),
	)
	rep, err := h.Client.CoverageReport(ctx, today, today)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 3 {
		t.Fatalf("report items %+v", rep.Items)
	}
	type row struct {
		Kind  string         `json:"kind"`
		ID    int64          `json:"id"`
		Cells map[string]int `json:"cells"`
	}
	var rows []row
	if err := json.Unmarshal([]byte(evalJS[string](t, op, `JSON.stringify([...document.querySelectorAll('#rp-rows tr')].map((tr) => ({
		kind: tr.dataset.kind, id: Number(tr.dataset.id),
		cells: Object.fromEntries([...tr.querySelectorAll('td[data-k]')].map((td) => [td.dataset.k, Number(td.textContent)])) })))`)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(rep.Items) {
		t.Fatalf("%d rows on the page, %d items in the API's report", len(rows), len(rep.Items))
	}
	for i, it := range rep.Items {
		want := map[string]int{"targeted": it.Targeted, "played_by_box": it.PlayedByBox, "played_by_hand": it.PlayedByHand, "partial": it.Partial,
			"failed": it.Failed, "missed": it.Missed, "offline": it.Offline, "awaiting_confirmation": it.AwaitingConfirmation,
			"pending": it.Pending, "cancelled": it.Cancelled, "expired": it.Expired, "rejected": it.Rejected}
		if rows[i].Kind != it.Kind || rows[i].ID != it.ID || !maps.Equal(rows[i].Cells, want) {
			t.Errorf("row %d: page %+v, API %s #%d %v", i, rows[i], it.Kind, it.ID, want)
		}
	}
	schedRow := fmt.Sprintf(`#rp-rows tr[data-kind="schedule"][data-id="%d"] `, sid)
	waitText(t, op, schedRow+".headline-cell", "79 / 81 个村已播放", 5*time.Second)
	if n := evalJS[int](t, op, `Number(document.querySelector('`+schedRow+`td[data-k="awaiting_confirmation"]').textContent)`); n != 2 {
		t.Errorf("the schedule's row: %d awaiting confirmation, want 2", n)
	}
	// The total sums villages over several items: village-plays (村次), not villages.
	waitText(t, op, "#rp-total", fmt.Sprintf("合计 %d / %d 村次已播放", rep.Totals.Played, rep.Totals.Targeted), 5*time.Second)
	// Why the two villages without a box did not play, in Chinese.
	if n := evalJS[int](t, op, fmt.Sprintf(`[...document.querySelectorAll('#rp-notplayed details[data-kind="schedule"][data-id="%d"] td.reason')].filter((td) => td.textContent === '该村没有广播盒，需村广播员人工播放并确认').length`, sid)); n != 2 {
		t.Errorf("%d villages of the schedule say in Chinese that they have no box, want 2", n)
	}
	if rep.Totals.Played != 79+2 || rep.Totals.Targeted != 81+2 {
		t.Errorf("totals %+v: the rejected broadcast must not count", rep.Totals)
	}
	screenshot(t, op, shots, "reports-1920.png")

	// Export CSV: the file the browser downloads.
	dl := t.TempDir()
	run(t, op, 10*time.Second, "download", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		})
		return err
	}), chromedp.Click(chromedp.CSS("#rp-csv")))
	file := filepath.Join(dl, "coverage-"+today+".csv")
	waitFor(t, 10*time.Second, "the CSV download", func() bool { _, err := os.Stat(file); return err == nil })
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	body, bom := bytes.CutPrefix(data, []byte("\xEF\xBB\xBF"))
	if !bom {
		t.Errorf("the CSV has no byte order mark: %q", data[:min(len(data), 12)])
	}
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1+len(rep.Items) || records[0][0] != "日期" || !slices.Contains(records[0], "广播盒播放") {
		t.Fatalf("CSV %q", records)
	}
	col := func(name string) int { return slices.Index(records[0], name) }
	for i, it := range rep.Items {
		r := records[i+1]
		if r[col("编号")] != strconv.FormatInt(it.ID, 10) || r[col("目标村数")] != strconv.Itoa(it.Targeted) ||
			r[col("广播盒播放")] != strconv.Itoa(it.PlayedByBox) || r[col("等待人工确认")] != strconv.Itoa(it.AwaitingConfirmation) {
			t.Errorf("CSV row %d %q, API %+v", i+1, r, it)
		}
	}
	i := slices.IndexFunc(records, func(r []string) bool { return r[col("类型")] == "排程" })
	if i < 0 || records[i][col("编号")] != strconv.FormatInt(sid, 10) || records[i][col("广播盒播放")] != "79" || records[i][col("等待人工确认")] != "2" {
		t.Errorf("no CSV row of the schedule with 79 played by box and 2 awaiting: %q", records)
	}

	// The printable page: county, range, each item's headline, the townships.
	run(t, op, 10*time.Second, "printable", chromedp.Click(chromedp.CSS("#rp-print")), chromedp.WaitVisible(chromedp.CSS("#rp-print-now")))
	waitJS(t, op, `document.body.classList.contains('printable') && getComputedStyle(document.querySelector('header.bar')).display === 'none'`, 5*time.Second, "the printable page")
	waitText(t, op, "#rp-range", today+" 至 "+today, 5*time.Second)
	// Headed by the controller's --county-name; the field to type one in is for controllers without.
	if c := evalJS[string](t, op, `(() => { const n = document.querySelector('#rp-county-name'); return getComputedStyle(n).display !== 'none' && document.querySelector('#rp-county').hidden ? n.textContent : ''; })()`); c != "示例县" {
		t.Errorf("the printable page is headed %q, want 示例县", c)
	}
	if title := evalJS[string](t, op, `document.title`); !strings.HasSuffix(title, " · 示例县") {
		t.Errorf("title %q does not end with the county", title)
	}
	if n := evalJS[int](t, op, `[...document.querySelectorAll('#rp-rows .headline-cell')].filter((td) => td.textContent.includes('个村已播放')).length`); n != 3 {
		t.Errorf("%d headlines on the printable page, want 3", n)
	}
	towns := map[string]bool{}
	for _, v := range vs {
		towns[v.Township] = true
	}
	if n := evalJS[int](t, op, `document.querySelectorAll('#rp-towns tr').length`); n != len(towns) {
		t.Errorf("%d townships on the printable page, want %d", n, len(towns))
	}
	screenshot(t, op, shots, "report-print-1920.png")
	run(t, op, 5*time.Second, "narrow", chromedp.EmulateViewport(360, 780))
	screenshot(t, op, shots, "report-print-360.png")
	noWiderThan(t, op, 360, "the printable page")
	run(t, op, 10*time.Second, "back", chromedp.Click(chromedp.CSS("#rp-back")), chromedp.WaitVisible(chromedp.CSS("#rp-form")))
	// Two days: a line for each, today's adding up to the totals.
	yesterday := time.Now().In(mustZone(t)).AddDate(0, 0, -1).Format(time.DateOnly)
	run(t, op, 10*time.Second, "two days",
		chromedp.SetValue(chromedp.CSS("#rp-from"), yesterday),
		chromedp.Click(chromedp.CSS("#rp-go")),
		chromedp.WaitVisible(chromedp.CSS(`#rp-days tr[data-date="`+today+`"]`)),
	)
	waitText(t, op, `#rp-days tr[data-date="`+today+`"]`, fmt.Sprintf("%d / %d", rep.Totals.Played, rep.Totals.Targeted), 5*time.Second)
	waitText(t, op, `#rp-days tr[data-date="`+yesterday+`"]`, "0 / 0", 5*time.Second)
	screenshot(t, op, shots, "reports-360.png")
	noWiderThan(t, op, 360, "the reports page")

	// Only roles that may: the operator has no audit log.
	if hidden := evalJS[bool](t, op, `document.querySelector('#nav a[data-view="audit"]').hidden`); !hidden {
		t.Error("the operator sees the audit log's link")
	}

	// The audit log, filtered by the approver.
	ad := newTab(t, br)
	run(t, ad, 20*time.Second, "admin login page", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "guan")
	run(t, ad, 10*time.Second, "audit",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="audit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#au-rows tr")),
		chromedp.SendKeys(chromedp.CSS("#au-actor"), "li"),
		chromedp.Click(chromedp.CSS("#au-go")),
	)
	waitJS(t, ad, `(() => { const rs = [...document.querySelectorAll('#au-rows tr')]; return rs.length > 0 && rs.every((r) => r.dataset.actor === 'li'); })()`, 5*time.Second, "only li's entries")
	rejectRow := `#au-rows tr[data-action="broadcast.reject"]`
	waitText(t, ad, rejectRow, reason, 5*time.Second)
	waitText(t, ad, rejectRow, "broadcast/"+id2, 5*time.Second)
	screenshot(t, ad, shots, "audit-1920.png")
	// Unfiltered, the log pages back fifty entries at a time.
	run(t, ad, 10*time.Second, "all entries", chromedp.Click(chromedp.CSS("#au-reset")), chromedp.WaitVisible(chromedp.CSS("#au-older")))
	waitJS(t, ad, `document.querySelectorAll('#au-rows tr').length === 50`, 5*time.Second, "a page of 50")
	firstPage := evalJS[int](t, ad, `Number(document.querySelector('#au-rows tr:last-child').dataset.id)`)
	run(t, ad, 10*time.Second, "older", chromedp.Click(chromedp.CSS("#au-older")), chromedp.WaitVisible(chromedp.CSS("#au-newer")))
	waitText(t, ad, "#au-page", "第 2 页", 5*time.Second)
	if top := evalJS[int](t, ad, `Number(document.querySelector('#au-rows tr').dataset.id)`); top >= firstPage {
		t.Errorf("the second page starts at entry %d, not before %d", top, firstPage)
	}
	run(t, ad, 10*time.Second, "newer", chromedp.Click(chromedp.CSS("#au-newer")))
	waitText(t, ad, "#au-page", "第 1 页", 5*time.Second)
	run(t, ad, 5*time.Second, "narrow", chromedp.EmulateViewport(360, 780))
	screenshot(t, ad, shots, "audit-360.png")
	noWiderThan(t, ad, 360, "the audit log")

	// A village on the map: its box's latest reports.
	run(t, op, 10*time.Second, "map",
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Click(chromedp.CSS(`#nav a[data-view="map"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#map circle[data-code="`+a.Code+`"]`)),
	)
	// The live map redraws its markers as reports come in: click the
	// marker there is, until the details show the village.
	waitJS(t, op, fmt.Sprintf(`(() => {
		if (document.querySelector('#details h3')?.textContent === %q) return true;
		document.querySelector('#map circle[data-code="%s"]')?.dispatchEvent(new MouseEvent('click', { bubbles: true }));
		return false; })()`, a.Name, a.Code), 10*time.Second, "the village's details")
	waitJS(t, op, `document.querySelector('#details-events li[data-type="started"]') !== null && document.querySelector('#details-events li[data-type="finished"]') !== null`, 10*time.Second, "started and finished reports")
	waitText(t, op, `#details-events li[data-type="finished"]`, "播放完成", 5*time.Second)
	screenshot(t, op, shots, "village-details-1920.png")

	// The broadcaster of a village without a box confirms today's
	// occurrence in two taps; after a reload it shows confirmed, with no
	// button to press again (the server would refuse a second confirmation).
	var manual api.Village
	for _, v := range vs {
		if v.Device != playlists.DeviceAgent && manual.Code == "" {
			manual = v
		}
	}
	consoleUsers(t, h, "cun village "+manual.Code)
	vb := newTab(t, br)
	run(t, vb, 20*time.Second, "village login page", chromedp.EmulateViewport(360, 780), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, vb, "cun")
	occ := fmt.Sprintf(`#vb-occ li[data-key^="s:%d@"]`, sid)
	run(t, vb, 10*time.Second, "confirm", chromedp.WaitVisible(chromedp.CSS(occ+" button.confirm-big")),
		chromedp.Click(chromedp.CSS(occ+" button.confirm-big")), chromedp.Click(chromedp.CSS(occ+" button.confirm-big")))
	waitText(t, vb, occ+" button.confirm-big", "已确认播放", 5*time.Second)
	run(t, vb, 20*time.Second, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(occ+" button.confirm-big")))
	waitJS(t, vb, `(() => { const bs = [...document.querySelectorAll('`+occ+` button.confirm-big')];
		return bs.length === 1 && bs[0].disabled && bs[0].classList.contains('done'); })()`, 5*time.Second, "confirmed after a reload")
	if c, err := h.Client.Coverage(ctx, sid, at); err != nil || c.PlayedByHand != 1 {
		t.Errorf("played by hand %d (%v), want 1", c.PlayedByHand, err)
	}

	// English.
	run(t, op, 5*time.Second, "english", chromedp.Click(chromedp.CSS("#lang")))
	waitText(t, op, `#nav a[data-view="reports"]`, "Reports", 5*time.Second)
	waitText(t, op, `#details-events li[data-type="finished"]`, "Finished", 5*time.Second)
	t.Logf("screenshots in %s", shots)
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustZone(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(playlists.DefaultTimezone)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// noWiderThan fails if the page scrolls sideways at width px.
func noWiderThan(t *testing.T, tab context.Context, width int, what string) {
	t.Helper()
	if w := evalJS[int](t, tab, `document.documentElement.scrollWidth`); w > width {
		t.Errorf("at %d px %s is %d px wide", width, what, w)
	}
}
