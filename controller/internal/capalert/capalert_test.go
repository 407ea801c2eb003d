package capalert_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

func read(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		file string
		want capalert.Request
	}{
		{"flood-red.xml", capalert.Request{
			Identifier: "41142141600000_20240710063000", Sender: "411421000000", Sent: at("2024-07-10T06:30:00+08:00"),
			MsgType: "Alert", Status: "Actual",
			Priority: playlists.Emergency, Severity: 1, EventType: "暴雨",
			Headline:    "示例县气象台发布暴雨红色预警信号",
			Description: "示例县气象台2024年7月10日6时30分发布暴雨红色预警信号：过去3小时城关镇、西河镇降雨量已达100毫米以上，预计未来3小时上述地区降雨将持续，并伴有雷电和短时大风，河道水位快速上涨。",
			Instruction: "1. 立即停止户外活动，学校、幼儿园停课；2. 沿河、低洼地区群众立即转移到安全地带；3. 切勿涉水过河，远离河道和危房。",
			Language:    "zh-CN",
			Effective:   at("2024-07-10T06:30:00+08:00"), ExpiresAt: at("2024-07-10T18:30:00+08:00"),
			Geocodes: []string{"411421100", "411421102"}, Areas: []string{"示例县城关镇、西河镇"},
			AudioURI: "https://alert.example.gov.cn/audio/41142141600000_20240710063000.mp3",
		}},
		{"epidemic.xml", capalert.Request{
			Identifier: "411421-WJW-2024-0815-01", Sender: "wjw@example.gov.cn", Sent: at("2024-08-15T09:00:00+08:00"),
			MsgType: "Alert", Status: "Actual",
			Priority: playlists.Urgent, Severity: 3, EventType: "传染病疫情",
			Headline:    "关于做好登革热防控的通知",
			Description: "近期我省多地报告登革热病例，本县已发现输入性病例2例。登革热通过伊蚊叮咬传播。",
			Instruction: "请各村清除房前屋后积水容器，翻盆倒罐；出现发热、头痛、皮疹等症状请及时到乡镇卫生院就诊。",
			Language:    "zh-CN",
			// No expires: six hours from when it was sent.
			Effective: at("2024-08-15T09:00:00+08:00"), ExpiresAt: at("2024-08-15T15:00:00+08:00"), ExpiresDefaulted: true,
			Geocodes: []string{"411421"}, Areas: []string{"示例县全境"},
		}},
		{"update.xml", capalert.Request{
			Identifier: "41142141600000_20240710123000", Sender: "411421000000", Sent: at("2024-07-10T12:30:00+08:00"),
			MsgType: "Update", Status: "Actual",
			References: []capalert.Reference{{Sender: "411421000000", Identifier: "41142141600000_20240710063000", Sent: at("2024-07-10T06:30:00+08:00")}},
			Priority:   playlists.Emergency, Severity: 2, EventType: "暴雨",
			Headline:    "示例县气象台将暴雨红色预警信号降级为橙色",
			Description: "城关镇降雨减弱，西河镇、南湖乡未来6小时降雨量仍将达50毫米以上。",
			Instruction: "沿河、低洼地区群众暂不返回；注意防范山洪和城乡积涝。",
			Language:    "zh-CN",
			Effective:   at("2024-07-10T12:30:00+08:00"), ExpiresAt: at("2024-07-10T20:30:00+08:00"),
			Geocodes: []string{"411421102", "411421103"}, Areas: []string{"示例县西河镇、南湖乡"},
		}},
		{"cancel.xml", capalert.Request{
			Identifier: "41142141600000_20240710190000", Sender: "411421000000", Sent: at("2024-07-10T19:00:00+08:00"),
			MsgType: "Cancel", Status: "Actual",
			References: []capalert.Reference{
				{Sender: "411421000000", Identifier: "41142141600000_20240710063000", Sent: at("2024-07-10T06:30:00+08:00")},
				{Sender: "411421000000", Identifier: "41142141600000_20240710123000", Sent: at("2024-07-10T12:30:00+08:00")},
			},
		}},
		{"exercise.xml", capalert.Request{
			Identifier: "411421-YJJ-DRILL-20240512", Sender: "yjj@example.gov.cn", Sent: at("2024-05-12T14:00:00+08:00"),
			MsgType: "Alert", Status: "Exercise", Test: true,
			Priority: playlists.Emergency, Severity: 1, EventType: "地震应急演练",
			Headline:    "【演练】地震应急疏散演练",
			Description: "这是演练，不是真实地震。东关镇各村、学校开展地震应急疏散演练。",
			Instruction: "听到警报后按疏散路线有序撤离到指定避难场所。",
			Language:    "zh-CN",
			Effective:   at("2024-05-12T14:28:00+08:00"), ExpiresAt: at("2024-05-12T15:00:00+08:00"),
			Geocodes: []string{"411421101"}, Areas: []string{"示例县东关镇"},
		}},
		// Text from the Chinese block; priority and severity from the more
		// severe of the two; areas from both.
		{"typhoon-bilingual.xml", capalert.Request{
			Identifier: "44080041600000_20240905170000", Sender: "440800000000", Sent: at("2024-09-05T17:00:00+08:00"),
			MsgType: "Alert", Status: "Actual",
			Priority: playlists.Urgent, Severity: 3, EventType: "台风",
			Headline:    "湛江市气象台发布台风黄色预警信号",
			Description: "受台风影响，未来24小时湛江市沿海将出现8级以上大风。",
			Instruction: "渔船回港避风，加固门窗、围板、棚架。",
			Language:    "zh-CN",
			Effective:   at("2024-09-05T17:00:00+08:00"), ExpiresAt: at("2024-09-06T17:00:00+08:00"),
			Geocodes: []string{"4408"}, Areas: []string{"湛江市"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := capalert.ParseRequest(bytes.NewReader(read(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			assertRequest(t, got, tt.want)
		})
	}
}

func assertRequest(t *testing.T, got, want capalert.Request) {
	t.Helper()
	// Times compare as instants.
	for _, p := range []struct{ g, w *time.Time }{{&got.Sent, &want.Sent}, {&got.Effective, &want.Effective}, {&got.ExpiresAt, &want.ExpiresAt}} {
		if !p.g.Equal(*p.w) {
			t.Errorf("time %v, want %v", *p.g, *p.w)
		}
		*p.g, *p.w = time.Time{}, time.Time{}
	}
	if len(got.References) != len(want.References) {
		t.Fatalf("references %v, want %v", got.References, want.References)
	}
	for i := range got.References {
		if !got.References[i].Sent.Equal(want.References[i].Sent) || got.References[i].String() != want.References[i].String() {
			t.Errorf("reference %v, want %v", got.References[i], want.References[i])
		}
	}
	got.References, want.References = nil, nil
	gs, ws := strings.ReplaceAll(sprint(got), ", ", ",\n"), strings.ReplaceAll(sprint(want), ", ", ",\n")
	if gs != ws {
		t.Errorf("request =\n%s\nwant\n%s", gs, ws)
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		file, field, want string
	}{
		{"missing-info.xml", "alert/info", "no value"},
		{"bad-geocode.xml", "alert/info/area/geocode[2]", `"4114211" is not an administrative-division code`},
		{"empty-geocode.xml", "alert/info/area/geocode[2]", "no value"},
		{"letters-geocode.xml", "alert/info/area/geocode[2]", "digits only"},
		{"doctype.xml", "", "<!DOCTYPE>"},
		{"truncated.xml", "", "cut short"},
		{"wrong-namespace.xml", "alert", "urn:oasis:names:tc:emergency:cap:1.1"},
		{"bad-severity.xml", "alert/info/severity", `"红色" is not one of Extreme, Severe, Moderate, Minor, Unknown`},
		{"expires-before-sent.xml", "alert/info/expires", "is not after the alert was sent"},
		{"sent-no-zone.xml", "alert/sent", "with a time zone"},
		{"cancel-no-references.xml", "alert/references", "must name the alert"},
		{"draft.xml", "alert/status", "Draft"},
		{"no-identifier.xml", "alert/identifier", "no value"},
		{"polygon-only.xml", "alert/info/area", "not by polygon"},
		{"no-areadesc.xml", "alert/info/area/areaDesc", "no value"},
		{"unknown-encoding.xml", "", `the CAP message is in the "ISO-8859-5" character encoding`},
		{"not-xml.xml", "", "XML"},
		{"not-alert.xml", "", "<foo>"},
		{"two-alerts.xml", "", "one alert per message"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			_, err := capalert.ParseRequest(bytes.NewReader(read(t, filepath.Join("bad", tt.file))))
			var ce *cx.Error
			if !errors.As(err, &ce) || ce.Code != cx.EINVALID || ce.Field != tt.field || !strings.Contains(ce.Message, tt.want) {
				t.Fatalf("err = %v; want invalid %q …%s…", err, tt.field, tt.want)
			}
		})
	}
	ents, _ := os.ReadDir(filepath.Join("testdata", "bad"))
	for _, e := range ents {
		if !seen[e.Name()] {
			t.Errorf("testdata/bad/%s is not tested", e.Name())
		}
	}
}

func TestLimits(t *testing.T) {
	big := bytes.Replace(read(t, "epidemic.xml"), []byte("<note>"), nil, 1)
	big = bytes.Replace(big, []byte("<scope>Public</scope>"), []byte("<scope>Public</scope><note>"+strings.Repeat("x", capalert.MaxBytes)+"</note>"), 1)
	if _, err := capalert.Parse(bytes.NewReader(big)); cx.Code(err) != cx.ETOOLARGE {
		t.Fatalf("%d bytes: %v", len(big), err)
	}
	if _, err := capalert.Parse(bytes.NewReader(nil)); cx.Code(err) != cx.EINVALID || !strings.Contains(cx.Message(err), "empty") {
		t.Fatalf("empty: %v", err)
	}
	// A byte order mark is allowed.
	if _, err := capalert.Parse(bytes.NewReader(append([]byte("\xef\xbb\xbf"), read(t, "epidemic.xml")...))); err != nil {
		t.Fatalf("with a BOM: %v", err)
	}
	// An undeclared entity is an error, not an empty string.
	withEntity := bytes.Replace(read(t, "epidemic.xml"), []byte("近期"), []byte("&secret;近期"), 1)
	if _, err := capalert.Parse(bytes.NewReader(withEntity)); cx.Code(err) != cx.EINVALID {
		t.Fatalf("undeclared entity: %v", err)
	}
}

// Chinese platforms often send GB2312; it reads the same as UTF-8.
func TestGB2312(t *testing.T) {
	utf := read(t, "flood-red.xml")
	gb, err := simplifiedchinese.GBK.NewEncoder().Bytes(bytes.Replace(utf, []byte(`encoding="UTF-8"`), []byte(`encoding="GB2312"`), 1))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(gb, utf) {
		t.Fatal("the encoding changed nothing")
	}
	want, err := capalert.ParseRequest(bytes.NewReader(utf))
	if err != nil {
		t.Fatal(err)
	}
	got, err := capalert.ParseRequest(bytes.NewReader(gb))
	if err != nil {
		t.Fatal(err)
	}
	assertRequest(t, got, want)
}

// Ack and Error messages, and System ones, are valid CAP but not broadcasts.
func TestNotBroadcast(t *testing.T) {
	base := string(read(t, "epidemic.xml"))
	for _, c := range []struct{ from, to, field string }{
		{"<msgType>Alert</msgType>", "<msgType>Ack</msgType>", "alert/msgType"},
		{"<msgType>Alert</msgType>", "<msgType>Error</msgType>", "alert/msgType"},
		{"<status>Actual</status>", "<status>System</status>", "alert/status"},
	} {
		a, err := capalert.Parse(strings.NewReader(strings.Replace(base, c.from, c.to, 1)))
		if err != nil {
			t.Fatalf("%s: %v", c.to, err)
		}
		if _, err := a.Request(); cx.Code(err) != cx.EINVALID || !strings.HasPrefix(err.Error(), "invalid: "+c.field) {
			t.Fatalf("%s: %v", c.to, err)
		}
	}
}

func TestGeocode(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"41", "41", ""},
		{"4114", "4114", ""},
		{"411421", "411421", ""},
		{"411421100", "411421100", ""},
		{"411421100201", "411421100201", ""},
		{"411421000000", "411421", ""},
		{"411421100000", "411421100", ""},
		{"410000", "41", ""},
		{"411400", "4114", ""},
		{"410000000000", "41", ""},
		{" 411421 ", "411421", ""},
		{"", "", "no value"},
		{"4114211", "", "2, 4, 6, 9 or 12 digits"},
		{"41142110020A", "", "digits only"},
		{"990000", "", "99 is not a province"},
		{"000000000000", "", "not a province"},
		{"４１１４２１", "", "digits only"}, // full-width digits
	}
	for _, tt := range tests {
		got, err := capalert.Geocode(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Geocode(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSelect(t *testing.T) {
	villages := playliststest.Villages()
	count := func(codes []string) int { return len(capalert.Select(codes, villages)) }
	tests := []struct {
		name  string
		codes []string
		want  int
	}{
		{"the county", []string{"411421"}, 81},
		{"the county, padded", []string{"411421000000"}, 81},
		{"the province", []string{"41"}, 81},
		{"the city", []string{"411400000000"}, 81},
		{"one township", []string{"411421100"}, 12},
		{"two townships", []string{"411421100000", "411421102"}, 20},
		{"a township and a village in it", []string{"411421100", "411421100201"}, 12},
		{"one village", []string{"411421103205"}, 1},
		{"another county", []string{"411422"}, 0},
		{"invalid codes cover nothing", []string{"4114211", "", "abc"}, 0},
		{"nothing", nil, 0},
	}
	for _, tt := range tests {
		if got := count(tt.codes); got != tt.want {
			t.Errorf("%s: %d villages, want %d", tt.name, got, tt.want)
		}
	}
	got := capalert.Select([]string{"411421108", "411421100"}, villages)
	if !slices.IsSorted(got) || got[0] != "411421100201" {
		t.Errorf("not in the villages' order: %v", got[:3])
	}
	// A request's geocodes select the villages it names.
	r, err := capalert.ParseRequest(bytes.NewReader(read(t, "flood-red.xml")))
	if err != nil {
		t.Fatal(err)
	}
	if n := count(r.Geocodes); n != 12+8 {
		t.Errorf("the flood warning reaches %d villages, want 20 (城关镇 and 西河镇)", n)
	}
}
