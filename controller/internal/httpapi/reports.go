package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/csvout"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/reports"
)

// getCoverageReport reports, for a range of days, the coverage of every
// broadcast created and every schedule occurrence begun in it (the
// reports service): ?from=, ?to= (dates in county time), ?township=
// limits it to one township; ?format=csv (or Accept: text/csv) answers a
// spreadsheet, ?detail=villages one row per village that did not play,
// ?lang=en English column names.
func (s *Server) getCoverageReport(c *gin.Context) (any, error) {
	r, err := s.reports.Check(s.person(c), reports.Query{From: c.Query("from"), To: c.Query("to"), Township: c.Query("township")})
	if err != nil {
		return nil, err
	}
	asCSV := c.Query("format") == "csv" || c.Query("format") == "" && strings.Contains(c.GetHeader("Accept"), "text/csv")
	if f := c.Query("format"); f != "" && f != "csv" && f != "json" {
		return nil, cx.Invalid("format", fmt.Sprintf("%q is not csv or json", f)).With(api.ReasonFormatInvalid, "value", f)
	}
	detail := c.Query("detail")
	if detail != "" && detail != "villages" {
		return nil, cx.Invalid("detail", `is "villages" (one row per village that did not play) or absent (one row per item)`).With(api.ReasonReportDetail, "value", detail)
	}
	cached, err := s.coverageReport(c.Request.Context(), reportKey{from: r.From, to: r.To, town: r.Township}, func(ctx context.Context, now time.Time) (api.CoverageReport, error) {
		return s.reports.Coverage(ctx, r, now)
	})
	if err != nil {
		s.failBusy(c, err)
		return nil, nil
	}
	if !asCSV {
		c.Data(http.StatusOK, "application/json; charset=utf-8", cached.body)
		return nil, nil
	}
	en := c.Query("lang") == "en"
	loc := s.reports.Location()
	var buf bytes.Buffer
	buf.WriteString("\uFEFF") // Excel reads UTF-8 (and so Chinese) only with a BOM
	w := csvout.New(&buf)     // titles and names cannot become formulas
	if detail == "villages" {
		writeNotPlayedCSV(w, cached.report, loc, en)
	} else {
		writeItemsCSV(w, cached.report, loc, en)
	}
	w.Flush()
	name := "coverage-" + r.From
	if r.To != r.From {
		name += "_" + r.To
	}
	if detail != "" {
		name += "-villages"
	}
	c.Header("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
	return nil, nil
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
