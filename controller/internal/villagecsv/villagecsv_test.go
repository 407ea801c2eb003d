package villagecsv_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/villagecsv"
)

func TestParse(t *testing.T) {
	want := []villagecsv.Row{
		{Line: 2, Code: "110101001001", Name: "东村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"},
		{Line: 3, Code: "110101001002", Name: "西村, 上", Township: "东镇", Lat: -1.5, Lon: -180, Device: "manual"},
	}
	tests := []struct {
		name string
		in   string
	}{
		{"LF", "code,name,township,lat,lon,device\n110101001001,东村,东镇,39.9,116.4,agent\n110101001002,\"西村, 上\",东镇,-1.5,-180,manual\n"},
		{"CRLF with BOM", "\ufeffcode,name,township,lat,lon,device\r\n110101001001,东村,东镇,39.9,116.4,agent\r\n110101001002,\"西村, 上\",东镇,-1.5,-180,manual\r\n"},
		{"no final newline, spaces, upper-case device", "code,name,township,lat,lon,device\n110101001001, 东村 ,东镇,39.9,116.4,Agent\n110101001002,\"西村, 上\",东镇,-1.5,-180,MANUAL"},
		{"other column order", "device,lon,lat,township,name,code\nagent,116.4,39.9,东镇,东村,110101001001\nmanual,-180,-1.5,东镇,\"西村, 上\",110101001002\n"},
		{"blank spreadsheet rows", "code,name,township,lat,lon,device\n110101001001,东村,东镇,39.9,116.4,agent\n110101001002,\"西村, 上\",东镇,-1.5,-180,manual\n,,,,,\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := villagecsv.Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const h = "code,name,township,lat,lon,device\n"
	tests := []struct {
		name string
		in   string
		want []api.RowError
	}{
		{"empty", "", []api.RowError{{Line: 1, Reason: "no header and no villages; the first line must be code,name,township,lat,lon,device"}}},
		{"header only", h, []api.RowError{{Line: 2, Reason: "no villages after the header"}}},
		{"bad header", "code,name,town,lat,lon,device,code\n", []api.RowError{
			{Line: 1, Field: "town", Reason: `unknown column "town"; the columns are code,name,township,lat,lon,device`},
			{Line: 1, Field: "code", Reason: `column "code" appears twice`},
			{Line: 1, Field: "township", Reason: `column "township" is missing`},
		}},
		{"GBK", h + "110101001001,\xb6\xab\xb4\xe5,x,1,1,agent\n", []api.RowError{{Line: 2, Reason: "not UTF-8 text (perhaps GBK from an older Excel or WPS)"}}},
		{"every bad line", h +
			"110101001001,东村,东镇,39.9,116.4,agent\n" + // 2 fine
			"11010100100,东村,东镇,39.9,116.4,agent\n" + // 3 short code
			"110101001003,,东镇,91,116.4,box\n" + // 4 three problems
			"110101001001,东村,东镇,39.9,116.4,agent\n" + // 5 duplicate of 2
			"1.10101E+11,东村,东镇,abc,116.4,agent\n" + // 6 Excel number, bad lat
			"110101001006,东村,东镇,39.9\n" + // 7 too few fields
			"110101001007,\"东村,东镇,39.9,116.4,agent\n", // 8 unterminated quote
			[]api.RowError{
				{Line: 3, Field: "code", Reason: `"11010100100" is not a 12-digit administrative-division code`},
				{Line: 4, Field: "name", Reason: "is empty"},
				{Line: 4, Field: "lat", Reason: "91 is outside -90..90"},
				{Line: 4, Field: "device", Reason: `"box" must be "agent" (a Cunxiang box) or "manual" (no box: the broadcaster confirms by hand)`},
				{Line: 5, Field: "code", Reason: "code 110101001001 is already on line 2"},
				{Line: 6, Field: "code", Reason: `"1.10101E+11" looks like a number Excel shortened; format the column as Text and type the 12 digits again`},
				{Line: 6, Field: "lat", Reason: `"abc" is not a number in decimal degrees, such as 39.9042`},
				{Line: 7, Reason: `has 4 fields, the header has 6 (a comma inside a name must be in "quotes")`},
				{Line: 8, Reason: `CSV syntax: extraneous or missing " in quoted-field`},
			}},
		{"names too long or with control characters", h +
			"110101001001," + strings.Repeat("村", 101) + ",东镇,39.9,116.4,agent\n" + // 2
			"110101001002," + strings.Repeat("村", 100) + "," + strings.Repeat("x", 5000) + ",39.9,116.4,agent\n" + // 3
			"110101001003,东\x00村,东镇,39.9,116.4,agent\n" + // 4
			"110101001004,东村,\"东\n镇\",39.9,116.4,agent\n", // 5, a line break inside quotes
			[]api.RowError{
				{Line: 2, Field: "name", Reason: "is 101 characters long; at most 100 are allowed"},
				{Line: 3, Field: "township", Reason: "is 5000 characters long; at most 100 are allowed"},
				{Line: 4, Field: "name", Reason: "contains the control character U+0000; names are plain text on one line"},
				{Line: 5, Field: "township", Reason: "contains the control character U+000A; names are plain text on one line"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := villagecsv.Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("accepted: %+v", rows)
			}
			e, ok := err.(*cx.Error)
			if !ok || e.Code != cx.EINVALID {
				t.Fatalf("err = %#v", err)
			}
			// The English texts are checked here; every line also carries
			// a key the console translates (TestReasonsHaveTexts in the web package).
			got := make([]api.RowError, len(e.Details))
			for i, d := range e.Details {
				if d.Key == "" {
					t.Errorf("line %d (%s) has no key", d.Line, d.Reason)
				}
				if strings.Contains(d.Reason, `"`+" in quoted-field") && d.Key != api.ReasonCSVQuote {
					t.Errorf("line %d (%s) has the key %s, want %s", d.Line, d.Reason, d.Key, api.ReasonCSVQuote)
				}
				got[i] = api.RowError{Line: d.Line, Field: d.Field, Reason: d.Reason}
			}
			lines := map[int]bool{}
			for _, w := range tt.want {
				lines[w.Line] = true
			}
			if e.Params["lines"] != len(lines) {
				t.Errorf("lines = %v, want %d (the lines with problems)", e.Params["lines"], len(lines))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("details:\n%+v\nwant\n%+v", got, tt.want)
			}
			if e.Reason != api.ReasonCSVInvalid {
				t.Errorf("reason %q, want %q", e.Reason, api.ReasonCSVInvalid)
			}
		})
	}
}
