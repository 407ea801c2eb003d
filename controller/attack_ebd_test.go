package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// TestAttackEBDDoor attacks POST /api/v1/ebd, which takes no token, on the
// running controller over real HTTP: a LAN neighbour signs an emergency
// message with an SM2 key of their own, and the province's genuine packet
// is captured and sent again, as is its message inside a new packet. Only
// the genuine packet sounds, once; each answer is signed by the controller.
func TestAttackEBDDoor(t *testing.T) {
	t.Parallel()
	const county, province = "010311010100000001", "010211000000000001"
	now := time.Now()
	identity := func(ebrid string) (*ebd.Identity, []byte) {
		key, cert, err := ebd.GenerateIdentity(rand.Reader, ebrid, now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		id, err := ebd.LoadIdentity(key, cert)
		if err != nil {
			t.Fatal(err)
		}
		return id, cert
	}
	prov, provCert := identity(province)
	neighbour, _ := identity(province) // claims to be the province
	trustPath := filepath.Join(t.TempDir(), "province.pem")
	if err := os.WriteFile(trustPath, provCert, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := startController(t, harnessOptions{DataDir: dir, Tune: func(m *Main) { m.EBRID, m.EBDTrust = county, trustPath }})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	countyCert, err := os.ReadFile(filepath.Join(dir, "ebd-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	countyTrust, err := ebd.ParseTrust(countyCert)
	if err != nil {
		t.Fatal(err)
	}
	mp3, err := os.ReadFile("internal/media/testdata/tone-22050-mono-32k.mp3")
	if err != nil {
		t.Fatal(err)
	}
	sum := sm3.Sum(mp3)
	area := playliststest.Villages()[0].Code[:9] + "000" // the first village's township
	seq := uint64(0)
	message := func(ebmid string) *ebd.Packet {
		seq++
		p := ebd.Header(ebd.TypeEBM, ebd.NewEBDID(ebd.KindBusiness, province, seq), province, county, now)
		p.EBM = &ebd.EBM{EBMVersion: "1.0", EBMID: ebmid,
			MsgBasicInfo: &ebd.MsgBasicInfo{MsgType: ebd.MsgBroadcast, SenderName: "省应急管理厅", SenderCode: province,
				SendTime: ebd.FormatTime(now), EventType: "11B03", Severity: ebd.SeverityRed,
				StartTime: ebd.FormatTime(now), EndTime: ebd.FormatTime(now.Add(time.Hour))},
			MsgContent: &ebd.MsgContent{LanguageCode: "zho", MsgTitle: "洪水红色预警", AreaCode: area,
				Auxiliary: []ebd.Auxiliary{{AuxiliaryType: ebd.AuxMP3, AuxiliaryDesc: "alert.mp3", Size: strconv.Itoa(len(mp3)), Digest: hex.EncodeToString(sum[:])}}},
		}
		return &p
	}
	files := []ebd.File{{Name: "alert.mp3", Data: mp3}}
	pack := func(signer *ebd.Identity, p *ebd.Packet) []byte {
		t.Helper()
		tarball, err := signer.Pack(rand.Reader, p, files, now)
		if err != nil {
			t.Fatal(err)
		}
		return tarball
	}
	post := func(tarball []byte) (code string, answer []byte) {
		t.Helper()
		resp, err := http.Post(h.HTTPURL+"/api/v1/ebd", "application/x-tar", bytes.NewReader(tarball))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /api/v1/ebd: %d %s", resp.StatusCode, answer)
		}
		in, err := ebd.Receive(bytes.NewReader(answer), ebd.Limits{}, countyTrust, time.Now())
		if err != nil {
			t.Fatalf("the answer is not signed by the controller: %v", err)
		}
		return in.Packet.EBDResponse.ResultCode, answer
	}
	broadcasts := func() int {
		t.Helper()
		bs, err := h.Client.Broadcasts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(bs)
	}

	genuine := message("010211000000000001202612050001")
	if code, _ := post(pack(neighbour, genuine)); code != strconv.Itoa(ebd.ResultBadSig) || broadcasts() != 0 {
		t.Fatalf("a neighbour's signature: result %s, %d broadcasts", code, broadcasts())
	}
	captured := pack(prov, genuine)
	code, first := post(captured)
	if code != strconv.Itoa(ebd.ResultOK) || broadcasts() != 1 {
		t.Fatalf("the province's packet (after a forgery with its EBDID): result %s, %d broadcasts", code, broadcasts())
	}
	if _, again := post(captured); !bytes.Equal(again, first) {
		t.Fatal("the captured packet sent again was not answered as the first time")
	}
	if code, _ := post(pack(prov, message(genuine.EBM.EBMID))); code != strconv.Itoa(ebd.ResultOK) || broadcasts() != 1 {
		t.Fatalf("the same message in a new packet: result %s, %d broadcasts", code, broadcasts())
	}
}
