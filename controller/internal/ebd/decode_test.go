package ebd_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

var update = flag.Bool("update", false, "rewrite testdata/marshal from the current encoder")

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func goldenNames(tb testing.TB) []string {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil || len(names) < 10 {
		tb.Fatalf("golden packets: %v, %v", names, err)
	}
	return names
}

// TestDecodeGolden: every sample packet decodes, and what it says comes
// through.
func TestDecodeGolden(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, p *ebd.Packet)
	}{
		{"heartbeat.xml", func(t *testing.T, p *ebd.Packet) {
			if p.EBDType != ebd.TypeConnectionCheck || p.SRC.EBRID != "010333112400000001" || p.DEST.EBRID != "010233110000000001" ||
				p.ConnectionCheck.RptTime != "2018-06-26 14:43:59" || p.RelatedEBD == nil || p.RelatedEBD.EBDID != "" {
				t.Errorf("%+v", p)
			}
			if a := ebd.EBRIDArea(p.SRC.EBRID); a != "331124000000" {
				t.Errorf("area of the source: %q", a)
			}
		}},
		{"ebm-township.xml", func(t *testing.T, p *ebd.Packet) {
			m := p.EBM
			if m.MsgBasicInfo.Severity != ebd.SeverityOrange || m.MsgBasicInfo.EventType != "11B03" ||
				!slices.Equal(m.MsgContent.AreaCodes(), []string{"331124001000"}) || len(m.MsgContent.Auxiliary) != 1 ||
				m.MsgContent.Auxiliary[0].AuxiliaryDesc != "alert.mp3" || m.MsgBasicInfo.SenderName != "丽水市应急管理局" {
				t.Errorf("%+v %+v", m.MsgBasicInfo, m.MsgContent)
			}
		}},
		{"ebm-tts.xml", func(t *testing.T, p *ebd.Packet) {
			b := p.EBM.MsgBasicInfo
			if b.SendTime != "2024-07-10 09:00:00" || b.SentTime != "" {
				t.Errorf("SentTime is not read as SendTime: %+v", b)
			}
			if got := p.EBM.MsgContent.AreaCodes(); !slices.Equal(got, []string{"331124001201", "331124001202", "331124102000"}) {
				t.Errorf("area codes %q", got)
			}
		}},
		{"ebm-cancel.xml", func(t *testing.T, p *ebd.Packet) {
			if p.EBM.MsgBasicInfo.MsgType != ebd.MsgCancel || p.EBM.MsgContent != nil || p.RelatedEBD.EBDID != "100102331100000000012024071000000001" {
				t.Errorf("%+v", p.EBM)
			}
		}},
		{"ebrps-info-gb2312.xml", func(t *testing.T, p *ebd.Packet) {
			if it := p.EBRPSInfo.Items; len(it) != 1 || it[0].EBRName != "松阳县应急广播平台" {
				t.Errorf("GB2312 not decoded: %+v", it)
			}
		}},
		{"ebrps-state.xml", func(t *testing.T, p *ebd.Packet) {
			if a := ebd.EBRIDArea(p.SRC.EBRID); a != "331124000000" {
				t.Errorf("area of a 23-digit code: %q", a)
			}
		}},
		{"ebrdt-info.xml", func(t *testing.T, p *ebd.Packet) {
			if it := p.EBRDTInfo.Items; len(it) != 2 || it[1].RptType != ebd.OpDelete || it[0].Longitude != "119.4811" {
				t.Errorf("%+v", it)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := ebd.Decode(tt.file, readFile(t, filepath.Join("testdata", tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
	for _, n := range goldenNames(t) {
		if _, err := ebd.Decode(n, readFile(t, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// TestRoundTrip: a decoded packet marshals to the golden in
// testdata/marshal (rewritten with -update) and decodes back to itself.
func TestRoundTrip(t *testing.T) {
	for _, n := range goldenNames(t) {
		t.Run(filepath.Base(n), func(t *testing.T) {
			p, err := ebd.Decode(n, readFile(t, n))
			if err != nil {
				t.Fatal(err)
			}
			out, err := ebd.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "marshal", strings.Replace(filepath.Base(n), "-gb2312", "", 1))
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, golden); !bytes.Equal(out, want) {
				t.Errorf("marshal differs from %s (run with -update if the change is meant):\n%s", golden, out)
			}
			q, err := ebd.Decode("again", out)
			if err != nil {
				t.Fatalf("own output refused: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(p, q) {
				t.Errorf("round trip changed the packet:\n%+v\n%+v", p, q)
			}
		})
	}
}

// TestDecodeRefuses: each bad packet is refused with its reason and, for
// element errors, the element's path.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		file, reason, field string
	}{
		{"doctype.xml", api.ReasonEBDDeclaration, ""},
		{"not-ebd.xml", api.ReasonEBDRoot, ""},
		{"truncated.xml", api.ReasonEBDTruncated, ""},
		{"trailing.xml", api.ReasonEBDTrailing, ""},
		{"charset.xml", api.ReasonEBDCharset, ""},
		{"empty.xml", api.ReasonEBDEmpty, ""},
		{"no-ebdid.xml", api.ReasonEBDMissing, "EBD/EBDID"},
		{"short-ebdid.xml", api.ReasonEBDIDShape, "EBD/EBDID"},
		{"ebdid-letters.xml", api.ReasonEBDIDShape, "EBD/EBDID"},
		{"bad-src.xml", api.ReasonEBDIDShape, "EBD/SRC/EBRID"},
		{"bad-time.xml", api.ReasonEBDTime, "EBD/EBDTime"},
		{"unknown-type.xml", api.ReasonEBDValue, "EBD/EBDType"},
		{"body-missing.xml", api.ReasonEBDBodyMissing, "EBD/EBDResponse"},
		{"body-extra.xml", api.ReasonEBDBodyExtra, "EBD/EBDResponse"},
		{"ebm-bad-area.xml", api.ReasonEBDAreaCode, "EBD/EBM/MsgContent/AreaCode"},
		{"ebm-area-province.xml", api.ReasonEBDAreaCode, "EBD/EBM/MsgContent/AreaCode"},
		{"ebm-bad-severity.xml", api.ReasonEBDValue, "EBD/EBM/MsgBasicInfo/Severity"},
		{"ebm-end-before-start.xml", api.ReasonEBDTimeOrder, "EBD/EBM/MsgBasicInfo/EndTime"},
		{"ebm-no-content.xml", api.ReasonEBDMissing, "EBD/EBM/MsgContent"},
		{"ebm-path-aux.xml", api.ReasonEBDValue, "EBD/EBM/MsgContent/Auxiliary/AuxiliaryDesc"},
		{"ebm-bad-ebmid.xml", api.ReasonEBDIDShape, "EBD/EBM/EBMID"},
		{"ebm-no-text.xml", api.ReasonEBDMissing, "EBD/EBM/MsgContent/MsgDesc"},
		{"ebm-bad-event.xml", api.ReasonEBDIDShape, "EBD/EBM/MsgBasicInfo/EventType"},
		{"ebm-bad-digest.xml", api.ReasonEBDValue, "EBD/EBM/MsgContent/Auxiliary/Digest"},
		{"response-no-related.xml", api.ReasonEBDMissing, "EBD/RelatedEBD/EBDID"},
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.xml"))
	if len(files) != len(tests) {
		t.Errorf("%d bad samples, %d in the table", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := ebd.Decode(tt.file, readFile(t, filepath.Join("testdata", "bad", tt.file)))
			if err == nil {
				t.Fatal("accepted")
			}
			reason, _ := cx.Reason(err)
			if reason != tt.reason {
				t.Errorf("reason %q, want %q (%v)", reason, tt.reason, err)
			}
			var e *cx.Error
			if tt.field != "" && (!errorsAs(err, &e) || e.Field != tt.field) {
				t.Errorf("field of %v, want %q", err, tt.field)
			}
			if code := cx.Code(err); code != cx.EINVALID && code != cx.ETOOLARGE {
				t.Errorf("code %q", code)
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	big := append([]byte("<EBD>"), bytes.Repeat([]byte(" "), ebd.MaxXMLBytes)...)
	_, err := ebd.Decode("big.xml", big)
	if r, _ := cx.Reason(err); r != api.ReasonEBDTooLarge || cx.Code(err) != cx.ETOOLARGE {
		t.Fatalf("%v", err)
	}
}

func TestCodes(t *testing.T) {
	if id := ebd.NewEBDID(ebd.KindHeartbeat, "010333112400000001", 0); id != "010103331124000000010000000000000000" || !ebd.ValidEBDID(id) {
		t.Errorf("heartbeat EBDID %q", id)
	}
	day, _ := ebd.ParseTime("2024-07-10 23:59:59")
	if id := ebd.NewEBMID("010333112400000001", day.UTC(), 7); id != "010333112400000001202407100007" || !ebd.ValidEBMID(id) {
		t.Errorf("EBMID %q (the date must be Beijing's)", id)
	}
	if id, err := ebd.TerminalEBRID("331124001201", 1); err != nil || id != "060133112400120101" || ebd.EBRIDArea(id) != "331124001201" {
		t.Errorf("terminal %q, %v", id, err)
	}
	if _, err := ebd.TerminalEBRID("3311240012", 1); err == nil {
		t.Error("a 10-digit village code accepted")
	}
	if tm, _ := ebd.ParseTime("2018-06-26 14:43:59"); ebd.FormatTime(tm) != "2018-06-26 14:43:59" || tm.UTC().Hour() != 6 {
		t.Errorf("time %v", tm)
	}
}
