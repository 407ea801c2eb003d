package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/csvout"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// notPlayedColumns are the columns of a coverage's CSV: one row per
// village that did not play, Chinese first.
var notPlayedColumns = [][2]string{
	{"村编码", "village_code"}, {"村名", "village"}, {"乡镇", "township"}, {"状况", "class"}, {"原因", "reason"}, {"报告时间", "reported_at"},
}

// coverageFormat reads ?format=: csv or json (the default). A bad value
// is refused before any work is done.
func coverageFormat(c *gin.Context) (csv bool, err error) {
	switch f := c.Query("format"); f {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	default:
		return false, cx.Invalid("format", fmt.Sprintf("%q is not csv or json", f)).With(api.ReasonFormatInvalid, "value", f)
	}
}

// writeCoverageCSV answers the villages of rep that did not play, as the
// map's list shows them, as a CSV file named name.csv: cells that would
// run as formulas are neutralised (csvout). ?township= and ?class= (a
// coverage class: missed, offline, failed...) keep only those villages,
// as the map's filters do; ?lang=en writes English.
func writeCoverageCSV(c *gin.Context, name string, rep coverage.Report) {
	town, class := strings.TrimSpace(c.Query("township")), strings.TrimSpace(c.Query("class"))
	en := c.Query("lang") == "en"
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	var buf bytes.Buffer
	buf.WriteString("\uFEFF") // Excel reads UTF-8 (and so Chinese) only with a BOM
	w := csvout.New(&buf)
	w.Write(header(notPlayedColumns, en)) //nolint:errcheck // a bytes.Buffer does not fail; Flush reports errors
	for _, vs := range rep.Villages {
		if vs.Status == coverage.Played || town != "" && vs.Township != town || class != "" && vs.Class != class {
			continue
		}
		reported := ""
		if vs.ReportedAt != nil {
			reported = vs.ReportedAt.In(loc).Format("2006-01-02 15:04:05")
		}
		np := api.NotPlayed{Code: vs.Code, Name: vs.Name, Township: vs.Township, Class: vs.Class, Reason: vs.Reason, ReasonCode: vs.ReasonCode, ReasonArgs: vs.ReasonArgs}
		w.Write([]string{vs.Code, vs.Name, vs.Township, word(vs.Class, en), reasonText(np, loc, en), reported}) //nolint:errcheck
	}
	w.Flush()
	c.Header("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}
