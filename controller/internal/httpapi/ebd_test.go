package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/playlists"
)

const (
	countyEBRID   = "010311010100000001" // this platform
	provinceEBRID = "010211000000000001" // the upper platform
)

// province is a mock upper platform: its own SM2 identity, trusted by
// the controller under test, which in turn is known by its certificate.
type province struct {
	t      *testing.T
	id     *ebd.Identity
	county *ebd.TrustStore // the controller's certificate
	seq    uint64
}

// newEBDEnv starts the API with the chain's door open, trusting a new
// province; tune may change the door's options.
func newEBDEnv(t *testing.T, tune func(*EBDOptions)) (*env, *province) {
	t.Helper()
	pKey, pCert, err := ebd.GenerateIdentity(rand.Reader, provinceEBRID, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := ebd.LoadIdentity(pKey, pCert)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := ebd.ParseTrust(pCert)
	if err != nil {
		t.Fatal(err)
	}
	cKey, cCert, err := ebd.GenerateIdentity(rand.Reader, countyEBRID, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cid, err := ebd.LoadIdentity(cKey, cCert)
	if err != nil {
		t.Fatal(err)
	}
	county, err := ebd.ParseTrust(cCert)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.EBD = &EBDOptions{EBRID: countyEBRID, Trust: trust, Identity: cid}
		if tune != nil {
			tune(o.EBD)
		}
	})
	e.importVillages(villagesCSV)
	return e, &province{t: t, id: pid, county: county}
}

// ebm is an emergency message to the township 东镇 (110101001), with
// the MP3 attached if mp3 is set; edit may change it.
func (p *province) ebm(ebmid string, mp3 []byte, now time.Time, edit func(*ebd.Packet)) (*ebd.Packet, []ebd.File) {
	p.seq++
	pk := ebd.Header(ebd.TypeEBM, ebd.NewEBDID(ebd.KindBusiness, provinceEBRID, p.seq), provinceEBRID, countyEBRID, now)
	pk.EBM = &ebd.EBM{EBMVersion: "1.0", EBMID: ebmid,
		MsgBasicInfo: &ebd.MsgBasicInfo{MsgType: ebd.MsgBroadcast, SenderName: "省应急管理厅", SenderCode: provinceEBRID,
			SendTime: ebd.FormatTime(now), EventType: "11B03", Severity: ebd.SeverityOrange,
			StartTime: ebd.FormatTime(now), EndTime: ebd.FormatTime(now.Add(2 * time.Hour))},
		MsgContent: &ebd.MsgContent{LanguageCode: "zho", MsgTitle: "暴雨橙色预警", MsgDesc: "东镇未来三小时有大暴雨，请沿河群众立即转移。", AreaCode: "110101001000"},
	}
	var files []ebd.File
	if mp3 != nil {
		sum := sm3.Sum(mp3)
		pk.EBM.MsgContent.Auxiliary = []ebd.Auxiliary{{AuxiliaryType: ebd.AuxMP3, AuxiliaryDesc: "alert.mp3",
			Size: strconv.Itoa(len(mp3)), Digest: hex.EncodeToString(sum[:])}}
		files = []ebd.File{{Name: "alert.mp3", Data: mp3}}
	}
	if edit != nil {
		edit(&pk)
	}
	return &pk, files
}

// pack signs pk with the province's key.
func (p *province) pack(pk *ebd.Packet, files []ebd.File, now time.Time) []byte {
	p.t.Helper()
	tarball, err := p.id.Pack(rand.Reader, pk, files, now)
	if err != nil {
		p.t.Fatal(err)
	}
	return tarball
}

// post sends an archive to the door and reads the EBDResponse, checking
// that the controller signed it.
func (e *env) postEBD(p *province, tarball []byte) (resp *ebd.EBDResponse, raw []byte) {
	e.t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/ebd", bytes.NewReader(tarball))
	req.Header.Set("Content-Type", "application/x-tar")
	got := e.request(req)
	if got.Status != http.StatusOK || got.Header.Get("Content-Type") != "application/x-tar" {
		e.t.Fatalf("POST /api/v1/ebd: %d %s", got.Status, got.Body)
	}
	in, err := ebd.Receive(bytes.NewReader(got.Body), ebd.Limits{}, p.county, e.clk.Now())
	if err != nil {
		e.t.Fatalf("the answer is not a packet signed by the controller: %v", err)
	}
	if in.Packet.EBDResponse == nil || in.Packet.SRC.EBRID != countyEBRID {
		e.t.Fatalf("answer %+v", in.Packet)
	}
	return in.Packet.EBDResponse, got.Body
}

func ebdTone(t *testing.T) []byte {
	t.Helper()
	mp3, err := os.ReadFile("../media/testdata/tone-22050-mono-32k.mp3")
	if err != nil {
		t.Fatal(err)
	}
	return mp3
}

// TestEBDMessageBroadcasts: the province's emergency message for one
// township, with an MP3, becomes a broadcast to that township's villages
// playing the MP3, approved upstream and sent at once; the same packet
// again is answered as the first time and the same message in another
// packet broadcasts nothing more; a cancelling message cancels it.
func TestEBDMessageBroadcasts(t *testing.T) {
	e, p := newEBDEnv(t, nil)
	now := e.clk.Now()
	const ebmid = "010211000000000001202603010001"
	pk, files := p.ebm(ebmid, ebdTone(t), now, nil)
	tarball := p.pack(pk, files, now)
	resp, first := e.postEBD(p, tarball)
	if resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("EBM answered %+v", resp)
	}
	bs, err := e.db.Broadcasts(t.Context(), 0)
	if err != nil || len(bs) != 1 {
		t.Fatalf("broadcasts %d %v", len(bs), err)
	}
	b := bs[0]
	clip, err := e.db.Audio(t.Context(), b.AudioID)
	if err != nil {
		t.Fatal(err)
	}
	if b.EBMID != ebmid || b.Source != "ebd:"+provinceEBRID || b.State != api.BroadcastReleased || b.Priority != playlists.Emergency ||
		b.Severity != 2 || !slices.Equal(b.Targets.Villages, []string{"110101001001", "110101001002"}) || b.AudioID == 0 || clip.DurationMS < 500 ||
		!b.ExpiresAt.Equal(now.Add(2*time.Hour).Truncate(time.Second)) {
		t.Fatalf("broadcast %+v (clip %+v)", b, clip)
	}
	if len(e.pub.broadcasts) != 1 {
		t.Fatalf("sent to the boxes %d times", len(e.pub.broadcasts))
	}

	// The same packet again: the same answer, nothing done twice.
	if _, again := e.postEBD(p, tarball); !bytes.Equal(again, first) {
		t.Fatal("a packet received again was not answered as the first time")
	}
	// The same message in another packet: received, not broadcast again.
	pk2, _ := p.ebm(ebmid, nil, now, nil)
	if resp, _ := e.postEBD(p, p.pack(pk2, nil, now)); resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("the same message again: %+v", resp)
	}
	if n := e.countBroadcasts(); n != 1 || len(e.pub.broadcasts) != 1 {
		t.Fatalf("%d broadcasts, sent %d times, after the same packet and message again", n, len(e.pub.broadcasts))
	}

	// The province cancels it.
	cancel, _ := p.ebm("010211000000000001202603010002", nil, now, func(pk *ebd.Packet) {
		pk.EBM.MsgBasicInfo.MsgType = ebd.MsgCancel
		pk.EBM.RelatedInfo = &ebd.RelatedInfo{EBMID: ebmid}
	})
	if resp, _ := e.postEBD(p, p.pack(cancel, nil, now)); resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("cancel answered %+v", resp)
	}
	if got, _ := e.db.GetBroadcast(t.Context(), b.ID); got.State != api.BroadcastCancelled || len(e.pub.cancelled) != 1 {
		t.Fatalf("after the cancel: %s, cancellations sent %d", got.State, len(e.pub.cancelled))
	}
	if log := e.auditLog("?action=ebd.received"); len(log) != 3 {
		t.Fatalf("audit %v", log)
	}
	if log := e.auditLog("?action=ebd.replayed"); len(log) != 1 {
		t.Fatalf("audit of the replay %v", log)
	}
}

// TestEBDStartTime: a message whose StartTime is to come is taken at
// once (answered 1) but held: nothing reaches the boxes before its
// StartTime; when it comes, the broadcasts service's Run sends it, and
// EndTime is its expiry.
func TestEBDStartTime(t *testing.T) {
	e, p := newEBDEnv(t, nil)
	now := e.clk.Now()
	start := now.Add(30 * time.Minute)
	pk, files := p.ebm("010211000000000001202603010007", ebdTone(t), now, func(pk *ebd.Packet) {
		pk.EBM.MsgBasicInfo.StartTime = ebd.FormatTime(start)
	})
	if resp, _ := e.postEBD(p, p.pack(pk, files, now)); resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("EBM answered %+v", resp)
	}
	sent := func() int { e.pub.mu.Lock(); defer e.pub.mu.Unlock(); return len(e.pub.broadcasts) }
	bs, err := e.db.Broadcasts(t.Context(), 0)
	if err != nil || len(bs) != 1 {
		t.Fatalf("broadcasts %d %v", len(bs), err)
	}
	b := bs[0]
	if b.State != api.BroadcastReleased || !b.Held || !b.StartsAt.Equal(start) || !b.ExpiresAt.Equal(now.Add(2*time.Hour)) || sent() != 0 {
		t.Fatalf("before its StartTime: state %s held %v starts %v expires %v, sent to the boxes %d times; want held until %v, expiring at EndTime",
			b.State, b.Held, b.StartsAt, b.ExpiresAt, sent(), start)
	}
	// The console and the API tell it is waiting for its start, not
	// being sent.
	var shown api.Broadcast
	e.must(http.StatusOK, e.do("GET", "/api/v1/broadcasts/"+strconv.FormatInt(b.ID, 10), e.staff, nil), &shown)
	if shown.State != "scheduled" || shown.StartsAt == nil || !shown.StartsAt.Equal(start) {
		t.Fatalf("held broadcast shown as %q starting %v; want scheduled, starting %v", shown.State, shown.StartsAt, start)
	}
	e.clk.Advance(30 * time.Minute)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.srv.Broadcasts().Run(ctx) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for sent() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not sent to the boxes at its StartTime: %d", sent())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEBDRefusals: what is not signed by a trusted certificate, not for
// this platform, too old, or not about this county is refused with the
// standard's result code and a reason, and does nothing; a forged packet
// does not spoil the real one with its EBDID.
func TestEBDRefusals(t *testing.T) {
	e, p := newEBDEnv(t, nil)
	now := e.clk.Now()
	strangerKey, strangerCert, _ := ebd.GenerateIdentity(rand.Reader, provinceEBRID, now.Add(-time.Hour))
	stranger, _ := ebd.LoadIdentity(strangerKey, strangerCert)

	real, realFiles := p.ebm("010211000000000001202603010009", ebdTone(t), now, nil)
	forged, err := stranger.Pack(rand.Reader, real, realFiles, now)
	if err != nil {
		t.Fatal(err)
	}
	tampered := p.pack(real, realFiles, now)
	i := bytes.Index(tampered, []byte("东镇未来"))
	tampered[i] ^= 1 // one byte of the signed packet changed

	for _, tt := range []struct {
		name    string
		tarball []byte
		code    int
	}{
		{"a stranger's key", forged, ebd.ResultBadSig},
		{"a changed byte", tampered, ebd.ResultBadSig},
		{"not a tar archive", []byte("hello"), ebd.ResultParseFailed},
		{"for another platform", p.pack(func() *ebd.Packet {
			pk, _ := p.ebm("010211000000000001202603010010", nil, now, nil)
			pk.DEST.EBRID = "010311020000000001"
			return pk
		}(), nil, now), ebd.ResultParseFailed},
		{"a day old", p.pack(func() *ebd.Packet {
			pk, _ := p.ebm("010211000000000001202603010011", nil, now.Add(-25*time.Hour), nil)
			pk.EBM.MsgBasicInfo.EndTime = ebd.FormatTime(now.Add(time.Hour))
			return pk
		}(), nil, now), ebd.ResultParseFailed},
		{"no village of this county", p.pack(func() *ebd.Packet {
			pk, _ := p.ebm("010211000000000001202603010012", nil, now, nil)
			pk.EBM.MsgContent.AreaCode = "120101000000"
			return pk
		}(), nil, now), ebd.ResultParseFailed},
		{"ended already", p.pack(func() *ebd.Packet {
			pk, _ := p.ebm("010211000000000001202603010013", nil, now, nil)
			pk.EBM.MsgBasicInfo.StartTime = ebd.FormatTime(now.Add(-2 * time.Hour))
			pk.EBM.MsgBasicInfo.EndTime = ebd.FormatTime(now.Add(-time.Hour))
			return pk
		}(), nil, now), ebd.ResultParseFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := e.postEBD(p, tt.tarball)
			if resp.ResultCode != strconv.Itoa(tt.code) || resp.ResultDesc == "" {
				t.Fatalf("answered %+v, want code %d", resp, tt.code)
			}
		})
	}
	if n := e.countBroadcasts(); n != 0 {
		t.Fatalf("%d broadcasts made by refused packets", n)
	}
	if log := e.auditLog("?action=ebd.refused"); len(log) != 7 {
		t.Fatalf("refusals audited: %v", log)
	}
	// The real packet, with the EBDID the forger used first, is acted on.
	if resp, _ := e.postEBD(p, p.pack(real, realFiles, now)); resp.ResultCode != strconv.Itoa(ebd.ResultOK) || e.countBroadcasts() != 1 {
		t.Fatalf("the real packet after a forgery with its EBDID: %+v", resp)
	}
}

// TestEBDLocalApproval: with --ebd-local-approval the province's
// county-wide emergency waits for a person here, as the two-person rule
// says; without the door configured, POST /api/v1/ebd answers 503.
func TestEBDLocalApproval(t *testing.T) {
	e, p := newEBDEnv(t, func(o *EBDOptions) { o.LocalApproval = true })
	now := e.clk.Now()
	pk, files := p.ebm("010211000000000001202603010020", ebdTone(t), now, func(pk *ebd.Packet) { pk.EBM.MsgContent.AreaCode = "110101000000" })
	if resp, _ := e.postEBD(p, p.pack(pk, files, now)); resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("answered %+v", resp)
	}
	bs, _ := e.db.Broadcasts(t.Context(), 0)
	if len(bs) != 1 || bs[0].State != api.BroadcastPending || len(e.pub.broadcasts) != 0 {
		t.Fatalf("a county-wide emergency from the province with local approval: %+v, sent %d", bs, len(e.pub.broadcasts))
	}

	off := newEnv(t)
	got := off.do("POST", "/api/v1/ebd", "", []byte("x"))
	if got.Status != http.StatusServiceUnavailable || got.errBody(t).Error.Reason != api.ReasonEBDOff {
		t.Fatalf("closed door: %d %s", got.Status, got.Body)
	}
}
