package ebd_test

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

type entry struct {
	name string
	typ  byte
	data string
	size int64 // header size when not len(data)
}

func makeTar(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.data))}
		if typ == tar.TypeSymlink {
			h.Linkname, h.Size = "/etc/passwd", 0
		}
		if typ == tar.TypeDir {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

const hbName = "EBDB_" + heartbeatID + ".xml"

func TestReadTar(t *testing.T) {
	b, err := ebd.ReadTar(bytes.NewReader(makeTar(t,
		entry{name: "./" + hbName, data: "<EBD/>"},
		entry{name: "./", typ: tar.TypeDir},
		entry{name: "EBDS_" + hbName, data: "<Signature/>"},
		entry{name: "暴雨预警.mp3", data: "ID3"},
	)), ebd.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if b.EBDID != heartbeatID || string(b.Packet) != "<EBD/>" || string(b.Signature) != "<Signature/>" || len(b.Files) != 1 || b.File("暴雨预警.mp3") == nil {
		t.Errorf("%+v", b)
	}
	// An unsigned archive is read; Verify refuses it.
	if b, err := ebd.ReadTar(bytes.NewReader(makeTar(t, entry{name: hbName, data: "<EBD/>"})), ebd.Limits{}); err != nil || b.Signature != nil {
		t.Errorf("unsigned: %+v %v", b, err)
	}
}

// TestReadTarRefuses: every way an archive may try to escape its bounds.
func TestReadTarRefuses(t *testing.T) {
	pk := entry{name: hbName, data: "<EBD/>"}
	lim := ebd.Limits{MaxFiles: 4, MaxFile: 100, MaxTotal: 150}
	tests := []struct {
		name   string
		body   []byte
		reason string
	}{
		{"not a tar", []byte(strings.Repeat("not a tar archive ", 64)), api.ReasonEBDTarInvalid},
		{"cut short", makeTar(t, pk, entry{name: "a.mp3", data: strings.Repeat("x", 90)})[:1100], api.ReasonEBDTarInvalid},
		{"cut in a file", makeTar(t, pk, entry{name: "a.mp3", data: strings.Repeat("x", 90)})[:1024+512+50], api.ReasonEBDTarInvalid},
		{"parent path", makeTar(t, pk, entry{name: "../evil.mp3", data: "x"}), api.ReasonEBDTarEntry},
		{"absolute path", makeTar(t, pk, entry{name: "/etc/cron.d/evil", data: "x"}), api.ReasonEBDTarEntry},
		{"subdirectory", makeTar(t, pk, entry{name: "audio/a.mp3", data: "x"}), api.ReasonEBDTarEntry},
		{"backslash", makeTar(t, pk, entry{name: `..\evil.mp3`, data: "x"}), api.ReasonEBDTarEntry},
		{"symlink", makeTar(t, pk, entry{name: "a.mp3", typ: tar.TypeSymlink}), api.ReasonEBDTarEntry},
		{"directory", makeTar(t, pk, entry{name: "audio/", typ: tar.TypeDir}), api.ReasonEBDTarEntry},
		{"device", makeTar(t, pk, entry{name: "null", typ: tar.TypeChar}), api.ReasonEBDTarEntry},
		{"same name twice", makeTar(t, pk, entry{name: "a.mp3", data: "x"}, entry{name: "./a.mp3", data: "y"}), api.ReasonEBDTarDuplicate},
		{"too many files", makeTar(t, pk, entry{name: "1", data: "x"}, entry{name: "2", data: "x"}, entry{name: "3", data: "x"}, entry{name: "4", data: "x"}), api.ReasonEBDTarTooMany},
		{"file too large", makeTar(t, pk, entry{name: "a.mp3", data: strings.Repeat("x", 101)}), api.ReasonEBDTooLarge},
		{"all too large", makeTar(t, pk, entry{name: "a.mp3", data: strings.Repeat("x", 80)}, entry{name: "b.mp3", data: strings.Repeat("x", 80)}), api.ReasonEBDTooLarge},
		{"no packet", makeTar(t, entry{name: "a.mp3", data: "x"}), api.ReasonEBDNoPacket},
		{"empty archive", makeTar(t), api.ReasonEBDNoPacket},
		{"two packets", makeTar(t, pk, entry{name: "EBDB_010103331124000000010000000000000001.xml", data: "<EBD/>"}), api.ReasonEBDManyPackets},
		{"packet ID not of the shape", makeTar(t, entry{name: "EBDB_12.xml", data: "<EBD/>"}), api.ReasonEBDIDShape},
		{"signature of another packet", makeTar(t, pk, entry{name: "EBDS_EBDB_010103331124000000010000000000000001.xml", data: "<Signature/>"}), api.ReasonEBDIDMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ebd.ReadTar(bytes.NewReader(tt.body), lim)
			if reasonOf(err) != tt.reason {
				t.Fatalf("got %v (%q), want %s", err, reasonOf(err), tt.reason)
			}
			if c := cx.Code(err); c != cx.EINVALID && c != cx.ETOOLARGE {
				t.Errorf("code %s", c)
			}
		})
	}
}

// failAfter fails a test that reads past n bytes: an oversized entry
// must be refused from its header, not read.
type failAfter struct {
	r io.Reader
	n int
	t *testing.T
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		f.t.Error("read past the header of an oversized entry")
		return 0, errors.New("stop")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestReadTarOversizedNotRead(t *testing.T) {
	body := makeTar(t, entry{name: "a.mp3", data: strings.Repeat("x", 1<<16)})
	_, err := ebd.ReadTar(&failAfter{r: bytes.NewReader(body), n: 1024, t: t}, ebd.Limits{MaxFile: 1000})
	if reasonOf(err) != api.ReasonEBDTooLarge {
		t.Fatalf("%v", err)
	}
}

// exchange is a province and a county that trust each other.
type exchange struct {
	province, county           *ebd.Identity
	trustProvince, trustCounty *ebd.TrustStore // what the county trusts, what the province trusts
}

func newExchange(t *testing.T) *exchange {
	t.Helper()
	p, tp := identity(t, "010233110000000001", t0)
	c, tc := identity(t, "010333112400000001", t0)
	return &exchange{province: p, county: c, trustProvince: tp, trustCounty: tc}
}

func township(t *testing.T) *ebd.Packet {
	t.Helper()
	p, err := ebd.Decode("ebm", readFile(t, filepath.Join("testdata", "ebm-township.xml")))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReceive: a signed EBM with its MP3 goes from the province to the
// county and is answered with a signed EBDResponse the province can
// verify; each kind of damage on the way is refused with the result code
// the standard gives it.
func TestReceive(t *testing.T) {
	x := newExchange(t)
	mp3 := readFile(t, filepath.Join("testdata", "audio", "alert.mp3"))
	pack := func(p *ebd.Packet, files ...ebd.File) []byte {
		t.Helper()
		body, err := x.province.Pack(rand.Reader, p, files, t0)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	good := pack(township(t), ebd.File{Name: "alert.mp3", Data: mp3})
	in, err := ebd.Receive(bytes.NewReader(good), ebd.Limits{}, x.trustProvince, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if in.Packet.EBM.EBMID != "010233110000000001202407100001" || in.Verified.CertSN != x.province.CertSN() || !bytes.Equal(in.Bundle.File("alert.mp3").Data, mp3) {
		t.Errorf("%+v", in)
	}

	// The county answers; the province verifies the answer.
	resp := ebd.Response(ebd.NewEBDID(ebd.KindBusiness, "010333112400000001", 1), "010333112400000001", in.Packet.SRC.EBRID, in.Packet.EBDID, nil, t0)
	answer, err := x.county.Pack(rand.Reader, resp, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ebd.Receive(bytes.NewReader(answer), ebd.Limits{}, x.trustCounty, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r := back.Packet.EBDResponse; r.ResultCode != "1" || back.Packet.RelatedEBD.EBDID != in.Packet.EBDID || r.ResultDesc != "接收解析及数据校验成功" {
		t.Errorf("answer %+v", back.Packet)
	}

	changed := township(t)
	changed.EBM.MsgContent.AreaCode = "331124000000" // the whole county, not the township
	unsignedBody := func() []byte {
		data, _ := ebd.Marshal(township(t))
		return makeTar(t, entry{name: ebd.PacketName(changed.EBDID), data: string(data)}, entry{name: "alert.mp3", data: string(mp3)})
	}
	// The packet is replaced by another with the original signature.
	swapped := func() []byte {
		b, err := ebd.ReadTar(bytes.NewReader(good), ebd.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := ebd.Marshal(changed)
		return makeTar(t, entry{name: ebd.PacketName(b.EBDID), data: string(data)}, entry{name: ebd.SignatureName(b.EBDID), data: string(b.Signature)}, entry{name: "alert.mp3", data: string(mp3)})
	}
	otherMP3 := append([]byte(nil), mp3...)
	otherMP3[100] ^= 1
	noSize := township(t)
	noSize.EBM.MsgContent.Auxiliary[0].Digest = ""
	wrongID := township(t)
	wrongID.EBDID = "100102331100000000012024071000000099"
	forged, err := x.county.Pack(rand.Reader, township(t), []ebd.File{{Name: "alert.mp3", Data: mp3}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		body   []byte
		now    time.Time
		reason string
		code   int
	}{
		{"unsigned", unsignedBody(), t0, api.ReasonEBDUnsigned, ebd.ResultBadSig},
		{"packet changed after signing", swapped(), t0, api.ReasonEBDSigBad, ebd.ResultBadSig},
		{"signed by an untrusted key", forged, t0, api.ReasonEBDCertUnknown, ebd.ResultBadSig},
		{"certificate expired", good, t0.AddDate(11, 0, 0), api.ReasonEBDCertExpired, ebd.ResultBadSig},
		{"audio missing", pack(township(t)), t0, api.ReasonEBDAuxMissing, ebd.ResultIncomplete},
		{"audio changed", pack(township(t), ebd.File{Name: "alert.mp3", Data: otherMP3}), t0, api.ReasonEBDAuxDigest, ebd.ResultParseFailed},
		{"audio of another size", pack(noSize, ebd.File{Name: "alert.mp3", Data: mp3[:1000]}), t0, api.ReasonEBDAuxSize, ebd.ResultParseFailed},
		{"file named for another packet", renamed(t, pack(wrongID, ebd.File{Name: "alert.mp3", Data: mp3}), township(t).EBDID), t0, api.ReasonEBDIDMismatch, ebd.ResultParseFailed},
		{"not a tar", []byte("<EBD/>"), t0, api.ReasonEBDTarInvalid, ebd.ResultParseFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ebd.Receive(bytes.NewReader(tt.body), ebd.Limits{}, x.trustProvince, tt.now)
			if reasonOf(err) != tt.reason {
				t.Fatalf("got %v (%q), want %s", err, reasonOf(err), tt.reason)
			}
			code, desc := ebd.ResultOf(err)
			if code != tt.code || !strings.HasPrefix(desc, ebd.ResultTexts[tt.code]+": ") {
				t.Errorf("result %d %q, want %d", code, desc, tt.code)
			}
			// The refusal is answered with a packet that decodes.
			resp := ebd.Response(ebd.NewEBDID(ebd.KindBusiness, "010333112400000001", 2), "010333112400000001", "010233110000000001", township(t).EBDID, err, t0)
			data, merr := ebd.Marshal(resp)
			if merr != nil {
				t.Fatal(merr)
			}
			if _, derr := ebd.Decode("resp", data); derr != nil {
				t.Fatalf("the answer does not decode: %v\n%s", derr, data)
			}
		})
	}
}

// renamed rewrites an archive so that its packet and signature files are
// named for id, while the packet inside keeps its own EBDID.
func renamed(t *testing.T, body []byte, id string) []byte {
	t.Helper()
	b, err := ebd.ReadTar(bytes.NewReader(body), ebd.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sig := strings.ReplaceAll(string(b.Signature), b.EBDID, id)
	var es []entry
	es = append(es, entry{name: ebd.PacketName(id), data: string(b.Packet)}, entry{name: ebd.SignatureName(id), data: sig})
	for _, f := range b.Files {
		es = append(es, entry{name: f.Name, data: string(f.Data)})
	}
	return makeTar(t, es...)
}

func TestResultOf(t *testing.T) {
	if code, desc := ebd.ResultOf(nil); code != ebd.ResultOK || desc != "接收解析及数据校验成功" {
		t.Errorf("%d %q", code, desc)
	}
	if code, _ := ebd.ResultOf(errors.New("disk full")); code != ebd.ResultOther {
		t.Errorf("internal error: %d", code)
	}
	if code, _ := ebd.ResultOf(cx.Invalid("EBD/EBDID", "no value").With(api.ReasonEBDMissing, "field", "EBD/EBDID")); code != ebd.ResultIncomplete {
		t.Errorf("missing: %d", code)
	}
}
