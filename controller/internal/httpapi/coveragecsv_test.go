package httpapi

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
)

// readCSV reads a coverage CSV answer (after its BOM).
func readCSV(t *testing.T, r resp) [][]string {
	t.Helper()
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(r.Body), "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestRejectedBroadcastCoverage: the villages of a rejected broadcast
// are rejected (已驳回), not cancelled, in the coverage and its CSV; the
// CSV lists the villages that did not play, filtered by township and
// class, with formula cells neutralised.
func TestRejectedBroadcastCoverage(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV + "110101003002,=1+A1,新镇,39.7,116.2,agent\n")
	audio, _ := e.setupLibrary()
	li := e.user("li", "operator", "")
	wang := e.user("wang", "approver", "")
	var b api.Broadcast
	e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", li, e.bcast(audio[0].ID, func(m map[string]any) { m["targets"] = map[string]any{"all": true} })), &b)
	e.must(http.StatusOK, e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/reject", b.ID), wang, map[string]string{"reason": "演练写错了"}), nil)

	path := fmt.Sprintf("/api/v1/broadcasts/%d/coverage", b.ID)
	var rep api.BroadcastCoverage
	e.must(http.StatusOK, e.do("GET", path, e.staff, nil), &rep)
	if rep.State != stateRejected || rep.Rejected != 6 || rep.Cancelled != 0 {
		t.Fatalf("rejected broadcast: state %s, %d rejected, %d cancelled", rep.State, rep.Rejected, rep.Cancelled)
	}
	for _, v := range rep.Villages {
		if v.Status != coverage.Rejected || v.Class != coverage.Rejected || v.ReasonCode != coverage.ReasonRejected {
			t.Fatalf("village %s: %+v", v.Code, v)
		}
	}

	rows := readCSV(t, e.do("GET", path+"?format=csv", e.staff, nil))
	if strings.Join(rows[0], ",") != "村编码,村名,乡镇,状况,原因,报告时间" || len(rows) != 7 {
		t.Fatalf("CSV: %q", rows)
	}
	for _, r := range rows[1:] {
		if r[3] != "已驳回" || !strings.Contains(r[4], "wang 驳回（演练写错了）") {
			t.Fatalf("row %q", r)
		}
		if r[0] == "110101003002" && r[1] != "'=1+A1" {
			t.Fatalf("a formula name was not neutralised: %q", r[1])
		}
	}
	rows = readCSV(t, e.do("GET", path+"?format=csv&township="+"%E5%8D%97%E9%95%87", e.staff, nil)) // 南镇
	if len(rows) != 3 || rows[1][2] != "南镇" || rows[2][2] != "南镇" {
		t.Fatalf("南镇 only: %q", rows)
	}
	if rows := readCSV(t, e.do("GET", path+"?format=csv&class=missed", e.staff, nil)); len(rows) != 1 {
		t.Fatalf("class missed of a rejected broadcast: %q", rows)
	}
	if rows := readCSV(t, e.do("GET", path+"?format=csv&lang=en", e.staff, nil)); rows[0][3] != "class" || rows[1][3] != "rejected" {
		t.Fatalf("English: %q", rows[:2])
	}
	if got := e.do("GET", path+"?format=xml", e.staff, nil); got.Status != http.StatusBadRequest || !strings.HasPrefix(got.errBody(t).Error.Message, "format: ") {
		t.Fatalf("format=xml: %d %s", got.Status, got.Body)
	}
}

// TestScheduleEnds: a once-schedule is active until its occurrence, then
// ended (已结束), not 生效中; its coverage CSV names the villages that
// missed it and why.
func TestScheduleEnds(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	_, pl := e.setupLibrary()
	at := e.clk.Now().Add(10 * time.Minute).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02T15:04")
	var once api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+strconv.FormatInt(pl.ID, 10)+`,"targets":{"townships":["东镇"]},"once_at":"`+at+`"}`), &once)
	if once.State != "active" {
		t.Fatalf("a coming once-schedule is %q", once.State)
	}
	e.clk.Advance(time.Hour)
	var list struct{ Schedules []api.Schedule }
	e.must(http.StatusOK, e.do("GET", "/api/v1/schedules", e.staff, nil), &list)
	if len(list.Schedules) != 1 || list.Schedules[0].State != "ended" || len(list.Schedules[0].Next) != 0 {
		t.Fatalf("a played once-schedule: %+v", list.Schedules)
	}
	rows := readCSV(t, e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage?format=csv", once.ID), e.staff, nil))
	if len(rows) != 3 || rows[1][0] != "110101001001" || rows[1][3] != "离线" || !strings.Contains(rows[1][4], "从未注册") {
		t.Fatalf("schedule CSV: %q", rows)
	}
	if got := e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage?format=pdf", once.ID), e.staff, nil); got.Status != http.StatusBadRequest {
		t.Fatalf("format=pdf: %d", got.Status)
	}
}
