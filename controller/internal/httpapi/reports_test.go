package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
)

// reportEnv is a county of five villages (三 boxes enrolled, one offline,
// one never enrolled, one without a box) with, on 2026-03-01: an emergency
// to 东镇 that one box played, an emergency to the whole county that an
// approver rejected, and an occurrence at 09:00 of a schedule for all that
// one box played and one cut short. The clock is then at 10:00.
func reportEnv(t *testing.T) (e *env, bc, rejected api.Broadcast, sc api.Schedule) {
	e = newEnv(t)
	e.importVillages(villagesCSV)
	for _, v := range []string{"110101001001", "110101001002", "110101002001"} {
		e.enrollBox(v)
	}
	ctx := context.Background()
	e.db.SetPresence(ctx, "110101001001", api.Presence{V: 1, Status: api.Online}, t0)
	e.db.SetPresence(ctx, "110101001002", api.Presence{V: 1, Status: api.Online}, t0)
	e.db.SetPresence(ctx, "110101002001", api.Presence{V: 1, Status: api.Offline}, t0.Add(-time.Hour))
	audio, pl := e.setupLibrary()
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+fmt.Sprint(pl.ID)+`,"targets":{"all":true},"once_at":"2026-03-01T09:00:00+08:00"}`), &sc)
	bc = e.bcastOK(audio[0].ID, nil)
	rejected = e.bcastOK(audio[0].ID, func(m map[string]any) { m["targets"] = map[string]any{"all": true} })
	if rejected.State != statePending {
		t.Fatalf("county-wide emergency: %s", rejected.State)
	}
	appr := e.token("wang", "approver", "")
	e.must(http.StatusOK, e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/reject", rejected.ID), appr, map[string]string{"reason": "目标范围太大，请只发东镇"}), nil)

	occ := *sc.OnceAt
	e.report("110101001001",
		api.Event{Seq: 1, Type: api.EventStarted, At: t0.Add(time.Second), BroadcastID: bc.ID},
		api.Event{Seq: 2, Type: api.EventFinished, At: t0.Add(5 * time.Second), BroadcastID: bc.ID},
		api.Event{Seq: 3, Type: api.EventStarted, At: occ, ScheduleID: sc.ID, Occurrence: &occ},
		api.Event{Seq: 4, Type: api.EventFinished, At: occ.Add(5 * time.Second), ScheduleID: sc.ID, Occurrence: &occ},
	)
	e.report("110101001002", api.Event{Seq: 1, Type: api.EventStarted, At: occ, ScheduleID: sc.ID, Occurrence: &occ})
	e.clk.Advance(2 * time.Hour)
	return e, bc, rejected, sc
}

func TestCoverageReport(t *testing.T) {
	e, bc, rejected, sc := reportEnv(t)
	var r api.CoverageReport
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-03-01&to=2026-03-01", e.staff, nil), &r)
	if r.From != "2026-03-01" || r.To != "2026-03-01" || r.Timezone != "Asia/Shanghai" || len(r.Items) != 3 {
		t.Fatalf("report %+v", r)
	}
	type line struct {
		Kind    string
		ID      int64
		State   string
		Counted bool
		coverage.Summary
	}
	var got []line
	for _, it := range r.Items {
		got = append(got, line{it.Kind, it.ID, it.State, it.Counted, it.CoverageSummary})
	}
	want := []line{
		// 东镇: 东村 played, 西村 (online) did not report by the end of the window.
		{"broadcast", bc.ID, stateDone, true, coverage.Summary{Targeted: 2, Played: 1, PlayedByBox: 1, Missed: 1}},
		// Rejected: never sent, so not in the totals.
		{"broadcast", rejected.ID, stateRejected, false, coverage.Summary{Targeted: 5, Rejected: 5}},
		// 09:00: 东村 played, 西村 cut short, 南村 offline, 北村 has no box, 新村 never enrolled (offline).
		{"schedule", sc.ID, stateDone, true, coverage.Summary{Targeted: 5, Played: 1, PlayedByBox: 1, Partial: 1, Offline: 2, AwaitingConfirmation: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("items\n got %+v\nwant %+v", got, want)
	}
	if r.Items[1].RejectReason != "目标范围太大，请只发东镇" {
		t.Errorf("reject reason %q", r.Items[1].RejectReason)
	}
	if tot := (coverage.Summary{Targeted: 7, Played: 2, PlayedByBox: 2, Partial: 1, Missed: 1, Offline: 2, AwaitingConfirmation: 1}); r.Totals != tot {
		t.Errorf("totals %+v, want %+v", r.Totals, tot)
	}
	towns := map[string]coverage.Summary{}
	for _, tw := range r.Townships {
		towns[tw.Name] = tw.CoverageSummary
	}
	if towns["东镇"] != (coverage.Summary{Targeted: 4, Played: 2, PlayedByBox: 2, Partial: 1, Missed: 1}) || towns["南镇"].Offline != 1 || towns["南镇"].AwaitingConfirmation != 1 || len(towns) != 3 {
		t.Errorf("townships %+v", r.Townships)
	}
	reasons := map[string]string{}
	for _, v := range r.Items[2].NotPlayed {
		reasons[v.Code] = v.Class + ": " + v.Reason
	}
	if len(reasons) != 4 || !strings.HasPrefix(reasons["110101002001"], "offline: box offline since 2026-03-01 07:00 CST") ||
		reasons["110101003001"] != "offline: box never enrolled" || !strings.HasPrefix(reasons["110101001002"], "partial: started at") {
		t.Errorf("not played %v", reasons)
	}

	// One township: the items that reach it, its villages only.
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-03-01&township="+url.QueryEscape("南镇"), e.staff, nil), &r)
	if len(r.Items) != 2 || r.Items[1].Targeted != 2 || r.Totals.Targeted != 2 || len(r.Townships) != 1 {
		t.Fatalf("南镇: %+v", r)
	}
	// Day by day: the counted items of each day of the range.
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-02-28&to=2026-03-01", e.staff, nil), &r)
	if len(r.Days) != 2 || r.Days[0].Date != "2026-02-28" || r.Days[0].Items != 0 || r.Days[0].Targeted != 0 ||
		r.Days[1].Date != "2026-03-01" || r.Days[1].Items != 2 || r.Days[1].CoverageSummary != r.Totals {
		t.Fatalf("days %+v, totals %+v", r.Days, r.Totals)
	}
	// Another day: nothing.
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-02-27&to=2026-02-28", e.staff, nil), &r)
	if len(r.Items) != 0 || r.Totals.Targeted != 0 {
		t.Fatalf("the days before: %+v", r)
	}
	// Today by default.
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage", e.staff, nil), &r)
	if r.From != "2026-03-01" || len(r.Items) != 3 {
		t.Fatalf("default range %s..%s, %d items", r.From, r.To, len(r.Items))
	}
}

func TestCoverageReportCSV(t *testing.T) {
	e, bc, _, sc := reportEnv(t)
	get := func(query, accept string) resp {
		req := httptest.NewRequest("GET", "/api/v1/reports/coverage"+query, nil)
		req.Header.Set("Authorization", "Bearer "+e.staff)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		return e.request(req)
	}
	parse := func(r resp) [][]string {
		t.Helper()
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("%d %s: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		body, ok := bytes.CutPrefix(r.Body, []byte("\xEF\xBB\xBF"))
		if !ok {
			t.Fatalf("no byte order mark: %q", r.Body[:min(len(r.Body), 10)])
		}
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	rows := parse(get("?from=2026-03-01&format=csv", ""))
	if cd := get("?from=2026-03-01&format=csv", "").Header.Get("Content-Disposition"); cd != `attachment; filename="coverage-2026-03-01.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if len(rows) != 4 || rows[0][0] != "日期" || rows[0][9] != "目标村数" || len(rows[0]) != len(itemColumns) {
		t.Fatalf("rows %q", rows)
	}
	col := func(name string) int {
		for i, c := range itemColumns {
			if c[1] == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return 0
	}
	first, last := rows[1], rows[3]
	if first[col("kind")] != "广播" || first[col("id")] != fmt.Sprint(bc.ID) || first[col("date")] != "2026-03-01" || first[col("time")] != "08:00:00" ||
		first[col("targeted")] != "2" || first[col("played_by_box")] != "1" || first[col("missed")] != "1" || first[col("counted")] != "是" ||
		first[col("state")] != "已完成" || first[col("priority")] != "特急" {
		t.Errorf("broadcast row %q", first)
	}
	if last[col("kind")] != "排程" || last[col("id")] != fmt.Sprint(sc.ID) || last[col("time")] != "09:00:00" || last[col("title")] != "早间通知" ||
		last[col("offline")] != "2" || last[col("partial")] != "1" || last[col("awaiting_confirmation")] != "1" {
		t.Errorf("occurrence row %q", last)
	}

	// Accept: text/csv, English names, a range in the file name.
	rows = parse(get("?from=2026-02-28&to=2026-03-01&lang=en", "text/csv"))
	if len(rows) != 4 || rows[0][0] != "date" || rows[0][col("offline")] != "offline" || rows[3][col("kind")] != "schedule" || rows[3][col("state")] != "done" {
		t.Fatalf("english rows %q", rows)
	}
	if cd := get("?from=2026-02-28&to=2026-03-01", "text/csv").Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="coverage-2026-02-28_2026-03-01.csv"`) {
		t.Errorf("Content-Disposition %q", cd)
	}

	// One row per village that did not play, with the reason.
	rows = parse(get("?from=2026-03-01&format=csv&detail=villages", ""))
	if len(rows) != 1+1+5+4 || rows[0][len(rows[0])-1] != "原因" {
		t.Fatalf("village rows %d: %q", len(rows), rows)
	}
	found, never := false, false
	for _, r := range rows[1:] {
		found = found || r[5] == "110101002001" && r[8] == "离线" && r[9] == "广播盒自 2026-03-01 07:00 起离线"
		never = never || r[5] == "110101003001" && r[9] == "广播盒从未注册"
	}
	if !found || !never {
		t.Errorf("南村's or 西村's row missing: %q", rows)
	}
	rows = parse(get("?from=2026-03-01&format=csv&detail=villages&lang=en", ""))
	found = false
	for _, r := range rows[1:] {
		found = found || r[5] == "110101002001" && r[8] == "offline" && r[9] == "box offline since 2026-03-01 07:00"
	}
	if !found {
		t.Errorf("南村's English row missing: %q", rows)
	}
}

// TestReasonTexts: every reason coverage gives has a Chinese text, with
// the same placeholders as the English one.
func TestReasonTexts(t *testing.T) {
	ph := regexp.MustCompile(`\{\w+\}`)
	for _, code := range coverage.ReasonCodes() {
		zh, ok := reasonsZh[code]
		if !ok {
			t.Errorf("reason %s has no Chinese text", code)
			continue
		}
		a, b := ph.FindAllString(zh, -1), ph.FindAllString(coverage.Reasons[code], -1)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("reason %s: Chinese has %v, English %v", code, a, b)
		}
	}
	if len(reasonsZh) != len(coverage.Reasons) {
		t.Errorf("%d Chinese reasons, %d codes", len(reasonsZh), len(coverage.Reasons))
	}
	// api/openapi.yaml lists them all.
	doc, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`reason_code:\s+type: string\s+enum: \[([^\]]*)\]`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("api/openapi.yaml has no enum of reason codes")
	}
	documented := regexp.MustCompile(`\w+`).FindAllString(string(m[1]), -1)
	slices.Sort(documented)
	if !slices.Equal(documented, coverage.ReasonCodes()) {
		t.Errorf("api/openapi.yaml lists reason codes %v, coverage gives %v", documented, coverage.ReasonCodes())
	}
	v := api.NotPlayed{Reason: "rejected by wang (太大) at …", ReasonCode: coverage.ReasonRejected,
		ReasonArgs: map[string]string{"by": "wang", "detail": "太大", "at": "2026-03-01T00:01:00Z"}}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	if got := reasonText(v, loc, false); got != "2026-03-01 08:01 已被 wang 驳回（太大），本村尚未播放" {
		t.Errorf("zh %q", got)
	}
	if got := reasonText(v, loc, true); got != "rejected by wang (太大) at 2026-03-01 08:01 before it played here" {
		t.Errorf("en %q", got)
	}
	v = api.NotPlayed{Reason: "from a newer controller", ReasonCode: "unknown_code"}
	if got := reasonText(v, loc, false); got != v.Reason {
		t.Errorf("unknown code %q", got)
	}
}

func TestCoverageReportRefused(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	for _, tt := range []struct{ query, msg string }{
		{"?from=yesterday", `from: "yesterday" is not a date such as 2026-03-01`},
		{"?from=2026-03-01&to=03/02", "to: "},
		{"?from=2026-03-02&to=2026-03-01", "to: 2026-03-01 is before from (2026-03-02)"},
		{"?from=2026-01-01&to=2026-03-01", "is 60 days; a report covers at most 31 days"},
		{"?township=" + url.QueryEscape("北京镇"), `township: no village is in a township called "北京镇"`},
		{"?format=xlsx", `format: "xlsx" is not csv or json`},
		{"?format=csv&detail=all", "detail: "},
	} {
		got := e.do("GET", "/api/v1/reports/coverage"+tt.query, e.staff, nil)
		if got.Status != http.StatusBadRequest || !strings.Contains(got.errBody(t).Error.Message, tt.msg) {
			t.Errorf("%s: %d %s", tt.query, got.Status, got.Body)
		}
	}
	// 31 days is allowed.
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-02-01&to=2026-03-03", e.staff, nil), nil)
	// Readers only: a village account may not.
	for role, status := range map[string]int{"viewer": 200, "approver": 200, "village": 403} {
		village := ""
		if role == "village" {
			village = "110101002002"
		}
		if got := e.do("GET", "/api/v1/reports/coverage", e.token("r-"+role, role, village), nil); got.Status != status {
			t.Errorf("%s: %d %s", role, got.Status, got.Body)
		}
	}
}

func TestVillageEvents(t *testing.T) {
	e, bc, _, sc := reportEnv(t)
	var out struct {
		Village string
		Events  []api.VillageEvent
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101001001/events", e.staff, nil), &out)
	if out.Village != "110101001001" || len(out.Events) != 4 {
		t.Fatalf("events %+v", out)
	}
	// Newest first, with what they are about.
	if ev := out.Events[0]; ev.Seq != 4 || ev.Type != api.EventFinished || ev.ScheduleID != sc.ID || ev.Occurrence == nil || !ev.Occurrence.Equal(*sc.OnceAt) {
		t.Errorf("newest %+v", ev)
	}
	if ev := out.Events[3]; ev.Seq != 1 || ev.Type != api.EventStarted || ev.BroadcastID != bc.ID || ev.Occurrence != nil {
		t.Errorf("oldest %+v", ev)
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101001001/events?limit=2", e.staff, nil), &out)
	if len(out.Events) != 2 || out.Events[1].Seq != 3 {
		t.Errorf("limit 2: %+v", out.Events)
	}
	// A village without a box has none.
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101002002/events", e.staff, nil), &out)
	if len(out.Events) != 0 {
		t.Errorf("北村: %+v", out.Events)
	}
	own := e.token("dongcun", "village", "110101001001")
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101001001/events", own, nil), &out)
	for _, tt := range []struct {
		path, tok string
		status    int
		msg       string
	}{
		{"/api/v1/villages/110101001002/events", own, 403, "only for its own village (110101001001)"},
		{"/api/v1/villages/110101001001/events?limit=0", e.staff, 400, `limit: "0" is not a number from 1 to 500`},
		{"/api/v1/villages/110101001001/events?limit=many", e.staff, 400, "limit: "},
		{"/api/v1/villages/110101009999/events", e.staff, 404, "110101009999"},
	} {
		got := e.do("GET", tt.path, tt.tok, nil)
		if got.Status != tt.status || !strings.Contains(got.errBody(t).Error.Message, tt.msg) {
			t.Errorf("%s: %d %s", tt.path, got.Status, got.Body)
		}
	}
}

// TestVillageRecentOccurrences: the broadcaster of a village without a
// box sees this morning's (and yesterday's) occurrences of a daily
// schedule, confirms one, and after a reload sees it confirmed.
func TestVillageRecentOccurrences(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	e.enrollBox("110101002001")
	audio, pl := e.setupLibrary()
	const beicun = "110101002002"
	bei := e.user("beicun", "village", beicun)
	var sc api.Schedule
	// Created two days ago: a schedule has no occurrence before it existed.
	e.clk.Advance(-48 * time.Hour)
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+fmt.Sprint(pl.ID)+`,"targets":{"all":true},"recurring":{"times":["07:30"],"start_date":"2026-02-28"}}`), &sc)
	e.clk.Advance(48 * time.Hour)
	b := e.bcastOK(audio[0].ID, func(m map[string]any) {
		m["priority"], m["targets"] = "routine", map[string]any{"villages": []string{beicun, "110101002001"}}
	})
	type mine struct {
		Schedules []api.VillageSchedule
	}
	path := "/api/v1/villages/" + beicun + "/schedules"
	var got mine
	e.must(http.StatusOK, e.do("GET", path, bei, nil), &got)
	if len(got.Schedules) != 1 || len(got.Schedules[0].Recent) != 0 || len(got.Schedules[0].Confirmed) != 0 || len(got.Schedules[0].Next) == 0 {
		t.Fatalf("without from: %+v", got)
	}
	from := url.QueryEscape("2026-02-28T00:00:00+08:00")
	e.must(http.StatusOK, e.do("GET", path+"?from="+from, bei, nil), &got)
	yesterday, today := time.Date(2026, 2, 27, 23, 30, 0, 0, time.UTC), time.Date(2026, 2, 28, 23, 30, 0, 0, time.UTC)
	if r := got.Schedules[0].Recent; !reflect.DeepEqual(r, []time.Time{yesterday, today}) {
		t.Fatalf("recent %v", r)
	}
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/"+beicun+"/confirmations", bei, map[string]any{"schedule_id": sc.ID, "occurrence": today.Format(time.RFC3339)}), nil)
	e.must(http.StatusOK, e.do("GET", path+"?from="+from, bei, nil), &got)
	if c := got.Schedules[0].Confirmed; !reflect.DeepEqual(c, []time.Time{today}) {
		t.Fatalf("confirmed %v", c)
	}

	var bs struct{ Broadcasts []api.VillageBroadcast }
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/"+beicun+"/broadcasts", bei, nil), &bs)
	if len(bs.Broadcasts) != 1 || bs.Broadcasts[0].ID != b.ID || bs.Broadcasts[0].Confirmed {
		t.Fatalf("broadcasts %+v", bs)
	}
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/"+beicun+"/confirmations", bei, map[string]any{"broadcast_id": b.ID}), nil)
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/"+beicun+"/broadcasts", bei, nil), &bs)
	if !bs.Broadcasts[0].Confirmed {
		t.Fatalf("after confirming: %+v", bs)
	}

	for _, tt := range []struct{ from, msg string }{
		{"2026-02-20T00:00:00Z", "from: is more than 7 days ago"},
		{"2026-03-02T00:00:00Z", "from: is in the future"},
		{"today", "from: "},
	} {
		got := e.do("GET", path+"?from="+url.QueryEscape(tt.from), bei, nil)
		if got.Status != http.StatusBadRequest || !strings.Contains(got.errBody(t).Error.Message, tt.msg) {
			t.Errorf("from=%s: %d %s", tt.from, got.Status, got.Body)
		}
	}
}

// TestAuditText: ?q= finds text anywhere in an entry, such as a
// rejection's reason, and combines with the other filters.
func TestAuditText(t *testing.T) {
	e, _, rejected, _ := reportEnv(t)
	want := []string{fmt.Sprintf("wang broadcast.reject broadcast/%d", rejected.ID)}
	for _, q := range []string{"?q=" + url.QueryEscape("只发东镇"), "?q=" + url.QueryEscape("只发东镇") + "&actor=wang", "?q=BROADCAST.REJECT", "?actor=wang"} {
		if got := e.auditLog(q); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	if got := e.auditLog("?q=" + url.QueryEscape("只发东镇") + "&actor=clerk"); got != nil {
		t.Errorf("another actor: %v", got)
	}
}

// TestCoverageReportNeverStale: a report is cached while nothing changes,
// and a report stored, a broadcast created or a confirmation made after it
// shows at once in the next request (the clock has not moved, so no
// expiry hides a stale cache).
func TestCoverageReportNeverStale(t *testing.T) {
	e, bc, _, _ := reportEnv(t)
	const path = "/api/v1/reports/coverage?from=2026-03-01&to=2026-03-01"
	get := func() (r api.CoverageReport) {
		t.Helper()
		e.must(http.StatusOK, e.do("GET", path, e.staff, nil), &r)
		return r
	}
	first := get()
	if again := get(); !again.GeneratedAt.Equal(first.GeneratedAt) || first.Items[0].Played != 1 {
		t.Fatalf("not served from the cache, or wrong: %+v", again.Items[0].CoverageSummary)
	}
	// 西村 reports, late, that it played the broadcast.
	e.report("110101001002",
		api.Event{Seq: 2, Type: api.EventStarted, At: t0.Add(2 * time.Second), BroadcastID: bc.ID},
		api.Event{Seq: 3, Type: api.EventFinished, At: t0.Add(6 * time.Second), BroadcastID: bc.ID})
	if r := get(); r.Items[0].Played != 2 || r.Totals.Played != first.Totals.Played+1 {
		t.Fatalf("after a report was stored: broadcast played by %d, totals %+v (before %+v)", r.Items[0].Played, r.Totals, first.Totals)
	}
	e.bcastOK(bc.AudioID, nil)
	if r := get(); len(r.Items) != len(first.Items)+1 {
		t.Fatalf("after a broadcast was created: %d items, want %d", len(r.Items), len(first.Items)+1)
	}
}

// TestCoverageReportBusy: when the heavy pool stays full, a report is
// answered 503 with Retry-After instead of queueing without bound.
func TestCoverageReportBusy(t *testing.T) {
	e, _, _, _ := reportEnv(t)
	e.srv.pool.wait = 10 * time.Millisecond
	for range maxHeavy {
		e.srv.pool.slots <- struct{}{}
	}
	r := e.do("GET", "/api/v1/reports/coverage?from=2026-03-01", e.staff, nil)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if r := e.do("GET", "/api/v1/broadcasts/1/coverage", e.staff, nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("broadcast coverage: status %d", r.Status)
	}
	for range maxHeavy {
		e.srv.pool.release()
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/reports/coverage?from=2026-03-01", e.staff, nil), nil)
}
