package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/csvout"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// maxReportDays bounds a coverage report's range: a month is what a
// county reports on, and every day adds each recurring schedule's
// occurrences.
const maxReportDays = 31

// maxReportItems bounds how many broadcasts and occurrences one report
// computes.
const maxReportItems = 2000

// reportRange reads ?from= and ?to= (dates in county time, both days
// included; to defaults to from, from to today) as [start, end).
func reportRange(c *gin.Context, now time.Time, loc *time.Location) (from, to string, start, end time.Time, err error) {
	from, to = c.Query("from"), c.Query("to")
	if from == "" {
		from = now.In(loc).Format(time.DateOnly)
	}
	if to == "" {
		to = from
	}
	day := func(name, v string) (time.Time, error) {
		t, err := time.ParseInLocation(time.DateOnly, v, loc)
		if err != nil {
			return t, cx.Invalid(name, fmt.Sprintf("%q is not a date such as 2026-03-01", v)).With(api.ReasonDateInvalid, "value", v)
		}
		return t, nil
	}
	if start, err = day("from", from); err != nil {
		return
	}
	var last time.Time
	if last, err = day("to", to); err != nil {
		return
	}
	end = last.AddDate(0, 0, 1)
	switch days := int(end.Sub(start).Hours()/24 + 0.5); {
	case last.Before(start):
		err = cx.Invalid("to", fmt.Sprintf("%s is before from (%s); give the first day, then the last", to, from)).With(api.ReasonRangeOrder)
	case days > maxReportDays:
		err = cx.Invalid("to", fmt.Sprintf("the range from %s to %s is %d days; a report covers at most %d days, so split it by month", from, to, days, maxReportDays)).With(api.ReasonRangeTooLong, "max", maxReportDays)
	}
	return
}

// getCoverageReport reports, for a range of days, the coverage of every
// broadcast created and every schedule occurrence begun in it: counts per
// item and per township, and why each village that did not play did not.
// ?township= limits it to one township; ?format=csv (or Accept: text/csv)
// answers a spreadsheet, ?detail=villages one row per village that did not
// play, ?lang=en English column names.
func (s *Server) getCoverageReport(c *gin.Context) {
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	now := s.now()
	from, to, start, end, err := reportRange(c, now, loc)
	if err != nil {
		s.fail(c, err)
		return
	}
	asCSV := c.Query("format") == "csv" || c.Query("format") == "" && strings.Contains(c.GetHeader("Accept"), "text/csv")
	if f := c.Query("format"); f != "" && f != "csv" && f != "json" {
		s.fail(c, cx.Invalid("format", fmt.Sprintf("%q is not csv or json", f)).With(api.ReasonFormatInvalid, "value", f))
		return
	}
	detail := c.Query("detail")
	if detail != "" && detail != "villages" {
		s.fail(c, cx.Invalid("detail", `is "villages" (one row per village that did not play) or absent (one row per item)`).With(api.ReasonReportDetail, "value", detail))
		return
	}
	town := strings.TrimSpace(c.Query("township"))
	cached, err := s.coverageReport(c.Request.Context(), reportKey{from: from, to: to, town: town}, func(ctx context.Context, now time.Time) (api.CoverageReport, error) {
		return s.computeCoverageReport(ctx, from, to, town, start, end, now, loc)
	})
	if err != nil {
		s.failBusy(c, err)
		return
	}
	r := cached.report
	if !asCSV {
		c.Data(http.StatusOK, "application/json; charset=utf-8", cached.body)
		return
	}
	en := c.Query("lang") == "en"
	var buf bytes.Buffer
	buf.WriteString("\uFEFF") // Excel reads UTF-8 (and so Chinese) only with a BOM
	w := csvout.New(&buf)     // titles and names cannot become formulas
	if detail == "villages" {
		writeNotPlayedCSV(w, r, loc, en)
	} else {
		writeItemsCSV(w, r, loc, en)
	}
	w.Flush()
	name := "coverage-" + from
	if to != from {
		name += "_" + to
	}
	if detail != "" {
		name += "-villages"
	}
	c.Header("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// computeCoverageReport computes the report getCoverageReport answers.
func (s *Server) computeCoverageReport(ctx context.Context, from, to, town string, start, end, now time.Time, loc *time.Location) (api.CoverageReport, error) {
	states, err := s.store.VillageStates(ctx)
	if err != nil {
		return api.CoverageReport{}, err
	}
	if town != "" {
		found := false
		for _, v := range states {
			found = found || v.Township == town
		}
		if !found {
			return api.CoverageReport{}, cx.Invalid("township", fmt.Sprintf("no village is in a township called %q", town)).With(api.ReasonTownshipUnknown, "name", town)
		}
	}
	r := api.CoverageReport{From: from, To: to, Township: town, Timezone: playlists.DefaultTimezone, GeneratedAt: now.UTC(),
		Townships: []coverage.TownshipSummary{}, Items: []api.ReportItem{}}
	items, err := s.reportItems(ctx, start, end, now, states, town)
	if err != nil {
		return api.CoverageReport{}, err
	}
	var total coverage.Tally
	days := map[string]int{}
	for d := start; d.Before(end); d = d.AddDate(0, 0, 1) {
		days[d.Format(time.DateOnly)] = len(r.Days)
		r.Days = append(r.Days, api.DaySummary{Date: d.Format(time.DateOnly)})
	}
	for _, it := range items {
		if it.item.Counted {
			total.Add(it.villages, it.report)
			if k, ok := days[it.item.At.In(loc).Format(time.DateOnly)]; ok {
				r.Days[k].Items++
				r.Days[k].CoverageSummary.Add(it.item.CoverageSummary)
			}
		}
		r.Items = append(r.Items, it.item)
	}
	r.Totals = total.Summary
	if total.Townships != nil {
		r.Townships = total.Townships
	}
	return r, nil
}

// reportItem is an item with what it was computed from.
type reportItem struct {
	item     api.ReportItem
	villages []coverage.Village
	report   coverage.Report
}

// reportItems computes the items of [start, end), oldest first.
func (s *Server) reportItems(ctx context.Context, start, end, now time.Time, states []store.VillageState, town string) ([]reportItem, error) {
	bs, err := s.store.BroadcastsCreated(ctx, start, end)
	if err != nil {
		return nil, err
	}
	scheds, err := s.store.Schedules(ctx, true)
	if err != nil {
		return nil, err
	}
	type occurrence struct {
		sc store.Schedule
		at time.Time
	}
	var occs []occurrence
	until := end
	if now.Before(until) {
		until = now.Add(time.Nanosecond) // only occurrences that have begun
	}
	for _, sc := range scheds {
		ats, err := sc.Occurrences(start, until)
		if err != nil {
			s.log.Error("report: expand schedule", "schedule", sc.ID, "err", err)
			continue
		}
		for _, at := range ats {
			// Not before it was created (it was not on the boxes), nor
			// once withdrawn.
			if at.Before(sc.CreatedAt.Truncate(time.Second)) || !sc.WithdrawnAt.IsZero() && !at.Before(sc.WithdrawnAt) {
				continue
			}
			occs = append(occs, occurrence{sc, at})
		}
	}
	if n := len(bs) + len(occs); n > maxReportItems {
		return nil, cx.Invalid("to", fmt.Sprintf("the range holds %d broadcasts and schedule occurrences, more than the %d one report computes; ask for fewer days", n, maxReportItems)).With(api.ReasonReportTooBig, "n", n, "max", maxReportItems)
	}
	within := func(vs []coverage.Village) []coverage.Village {
		if town == "" {
			return vs
		}
		out := vs[:0:0]
		for _, v := range vs {
			if v.Township == town {
				out = append(out, v)
			}
		}
		return out
	}
	var out []reportItem
	if len(bs) > 0 {
		progress, err := s.store.BroadcastProgresses(ctx, bs[0].ID, bs[len(bs)-1].ID)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			reached := targeted(b.Targets, states)
			villages := within(reached)
			if len(villages) == 0 {
				continue
			}
			events, err := s.store.BroadcastEvents(ctx, b.ID, b.Test)
			if err != nil {
				return nil, err
			}
			confs, err := s.store.BroadcastConfirmations(ctx, b.ID)
			if err != nil {
				return nil, err
			}
			rep := coverage.ComputeBroadcast(s.broadcastCoverageInput(b, villages, events, confs, now))
			boxes := 0
			for _, v := range reached {
				if v.Device == playlists.DeviceAgent {
					boxes++
				}
			}
			it := api.ReportItem{Kind: "broadcast", ID: b.ID, At: b.CreatedAt.UTC(), Title: broadcastTitle(b), Priority: b.Priority,
				EventType: b.EventType, Severity: b.Severity, State: broadcastState(b, progress[b.ID], boxes, now), Test: b.Test,
				Counted: b.WasReleased() && !b.Test}
			if b.State == store.BroadcastRejected {
				it.RejectReason = b.DecisionReason
			}
			out = append(out, finishItem(it, villages, rep))
		}
	}
	pls := map[int64]store.Playlist{}
	for _, o := range occs {
		villages := within(targeted(o.sc.Targets, states))
		if len(villages) == 0 {
			continue
		}
		pl, ok := pls[o.sc.PlaylistID]
		if !ok {
			if pl, err = s.store.GetPlaylist(ctx, o.sc.PlaylistID); err != nil {
				return nil, err
			}
			pls[o.sc.PlaylistID] = pl
		}
		rep, err := s.occurrenceCoverage(ctx, o.sc, o.at, pl, villages, now)
		if err != nil {
			return nil, err
		}
		state := stateInProgress
		if !now.Before(rep.WindowEnd) {
			state = stateDone
		}
		it := api.ReportItem{Kind: "schedule", ID: o.sc.ID, At: o.at.UTC(), Title: pl.Name, Priority: playlists.Routine, State: state, Counted: true}
		out = append(out, finishItem(it, villages, rep))
	}
	// Oldest first, broadcasts and occurrences together.
	slices.SortStableFunc(out, func(a, b reportItem) int { return a.item.At.Compare(b.item.At) })
	return out, nil
}

// finishItem adds an item's counts and the villages that did not play.
func finishItem(it api.ReportItem, villages []coverage.Village, rep coverage.Report) reportItem {
	var t coverage.Tally
	it.CoverageSummary = t.Add(villages, rep)
	it.Townships = t.Townships
	if it.Townships == nil {
		it.Townships = []coverage.TownshipSummary{}
	}
	byCode := make(map[string]coverage.Village, len(villages))
	for _, v := range villages {
		byCode[v.Code] = v
	}
	it.NotPlayed = []api.NotPlayed{}
	for _, vs := range rep.Villages {
		if vs.Status == coverage.Played {
			continue
		}
		it.NotPlayed = append(it.NotPlayed, api.NotPlayed{Code: vs.Code, Name: vs.Name, Township: vs.Township,
			Class: coverage.Class(byCode[vs.Code], vs, rep.WindowEnd), Reason: vs.Reason, ReasonCode: vs.ReasonCode, ReasonArgs: vs.ReasonArgs,
			ReportedAt: vs.ReportedAt})
	}
	return reportItem{item: it, villages: villages, report: rep}
}

// broadcastTitle says what a broadcast played, for people.
func broadcastTitle(b store.Broadcast) string {
	switch {
	case b.Text != "":
		if r := []rune(b.Text); len(r) > 40 {
			return string(r[:40]) + "…"
		}
		return b.Text
	case b.Playlist.Name != "":
		return b.Playlist.Name
	case b.AudioID != 0:
		return "audio " + strconv.FormatInt(b.AudioID, 10)
	}
	return "playlist " + strconv.FormatInt(b.PlaylistID, 10)
}

// Column names of the CSV answers, Chinese first.
var (
	itemColumns = [][2]string{
		{"日期", "date"}, {"时间", "time"}, {"类型", "kind"}, {"编号", "id"}, {"内容", "title"}, {"优先级", "priority"},
		{"状态", "state"}, {"测试", "test"}, {"计入合计", "counted"}, {"目标村数", "targeted"}, {"已播放", "played"},
		{"广播盒播放", "played_by_box"}, {"人工确认播放", "played_by_hand"}, {"部分播放", "partial"}, {"失败", "failed"},
		{"未播放", "missed"}, {"离线", "offline"}, {"等待人工确认", "awaiting_confirmation"}, {"等待中", "pending"},
		{"已取消", "cancelled"}, {"已过期", "expired"}, {"已驳回", "rejected"},
	}
	villageColumns = [][2]string{
		{"日期", "date"}, {"时间", "time"}, {"类型", "kind"}, {"编号", "id"}, {"内容", "title"},
		{"村编码", "village_code"}, {"村名", "village"}, {"乡镇", "township"}, {"状况", "class"}, {"原因", "reason"},
	}
	kindNames = map[string][2]string{"broadcast": {"广播", "broadcast"}, "schedule": {"排程", "schedule"}}
	// Chinese names of the states, priorities and classes a CSV shows (as
	// the console names them); English keeps the API's words.
	zhNames = map[string]string{
		statePending: "等待审批", stateScheduled: "定时待播", stateSending: "发送中", stateInProgress: "播放中", stateDone: "已完成",
		stateCancelled: "已取消", stateExpired: "已过期", stateRejected: "已驳回",
		"emergency": "特急", "urgent": "紧急", "routine": "常规",
		coverage.Partial: "部分播放", coverage.Failed: "失败", coverage.Missed: "未播放", coverage.Offline: "离线",
		coverage.AwaitingConfirmation: "等待人工确认", coverage.Pending: "等待中",
		"schedule": "排程", "broadcast": "广播",
	}
)

// reasonsZh say coverage's reasons (coverage.Reasons) in Chinese, as the
// console does (i18n.js, reason.*).
var reasonsZh = map[string]string{
	coverage.ReasonNoBox:            "该村没有广播盒，需村广播员人工播放并确认",
	coverage.ReasonNote:             "备注：{note}",
	coverage.ReasonCancelled:        "{at} 已被 {by} 取消，本村尚未播放",
	coverage.ReasonRejected:         "{at} 已被 {by} 驳回（{detail}），本村尚未播放",
	coverage.ReasonCutOff:           "被更高优先级的播放打断",
	coverage.ReasonCutOffBy:         "被打断：{detail}",
	coverage.ReasonBoxFailed:        "广播盒报告播放失败",
	coverage.ReasonBoxFailedDetail:  "广播盒报告播放失败：{detail}",
	coverage.ReasonBoxCancelled:     "广播盒收到取消指令后停止了播放",
	coverage.ReasonExpired:          "该{what}送达广播盒时已过期（{at} 到期）",
	coverage.ReasonNotFinished:      "{at} 开始播放，但没有报告播放完毕",
	coverage.ReasonPlaying:          "{at} 起正在播放",
	coverage.ReasonAwaitingApproval: "等待第二人审批",
	coverage.ReasonNeverEnrolled:    "广播盒从未注册",
	coverage.ReasonBoxRejected:      "广播盒拒绝了该{what}：{detail}",
	coverage.ReasonDownloadFailed:   "广播盒未能下载音频：{detail}",
	coverage.ReasonOfflineSince:     "广播盒自 {at} 起离线",
	coverage.ReasonNeverConnected:   "广播盒已注册，但从未连接",
	coverage.ReasonNotReceived:      "广播盒在线，但没有报告（也从未确认收到该{what}）",
	coverage.ReasonNoReport:         "广播盒在线，但没有报告",
}

// reasonText says why a village did not play, in Chinese unless en, with
// times in county time; the API's English reason if its code is unknown.
func reasonText(v api.NotPlayed, loc *time.Location, en bool) string {
	tmpl, ok := reasonsZh[v.ReasonCode]
	if en {
		tmpl, ok = coverage.Reasons[v.ReasonCode]
	}
	if !ok {
		return v.Reason
	}
	return coverage.Fill(tmpl, v.ReasonArgs, func(name, val string) string {
		switch name {
		case "at":
			if t, err := time.Parse(time.RFC3339, val); err == nil {
				return t.In(loc).Format("2006-01-02 15:04")
			}
		case "what":
			return word(val, en)
		}
		return val
	})
}

// word is the API's word, in Chinese unless en.
func word(w string, en bool) string {
	if z, ok := zhNames[w]; ok && !en {
		return z
	}
	return w
}

func header(cols [][2]string, en bool) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c[0]
		if en {
			out[i] = c[1]
		}
	}
	return out
}

func pick(p [2]string, en bool) string {
	if en {
		return p[1]
	}
	return p[0]
}

func yesNo(b bool, en bool) string {
	switch {
	case en && b:
		return "yes"
	case en:
		return "no"
	case b:
		return "是"
	}
	return "否"
}

func writeItemsCSV(w *csvout.Writer, r api.CoverageReport, loc *time.Location, en bool) {
	w.Write(header(itemColumns, en)) //nolint:errcheck // a bytes.Buffer does not fail; Flush reports errors
	for _, it := range r.Items {
		at := it.At.In(loc)
		sm := it.CoverageSummary
		w.Write([]string{ //nolint:errcheck
			at.Format(time.DateOnly), at.Format("15:04:05"), pick(kindNames[it.Kind], en), strconv.FormatInt(it.ID, 10), it.Title,
			word(string(it.Priority), en), word(it.State, en), yesNo(it.Test, en), yesNo(it.Counted, en),
			itoa(sm.Targeted), itoa(sm.Played), itoa(sm.PlayedByBox), itoa(sm.PlayedByHand), itoa(sm.Partial), itoa(sm.Failed),
			itoa(sm.Missed), itoa(sm.Offline), itoa(sm.AwaitingConfirmation), itoa(sm.Pending), itoa(sm.Cancelled), itoa(sm.Expired), itoa(sm.Rejected),
		})
	}
}

func writeNotPlayedCSV(w *csvout.Writer, r api.CoverageReport, loc *time.Location, en bool) {
	w.Write(header(villageColumns, en)) //nolint:errcheck
	for _, it := range r.Items {
		at := it.At.In(loc)
		for _, v := range it.NotPlayed {
			w.Write([]string{ //nolint:errcheck
				at.Format(time.DateOnly), at.Format("15:04:05"), pick(kindNames[it.Kind], en), strconv.FormatInt(it.ID, 10), it.Title,
				v.Code, v.Name, v.Township, word(v.Class, en), reasonText(v, loc, en),
			})
		}
	}
}
