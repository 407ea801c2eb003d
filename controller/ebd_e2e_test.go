package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

// ebdDoor posts packets the province signed to the controller's
// POST /api/v1/ebd and checks each answer is signed by the county.
type ebdDoor struct {
	url      string
	province *ebd.Identity
	county   *ebd.TrustStore
}

// newEBDDoor is the door of controller h, whose data directory holds the
// certificate it made (ebd-cert.pem).
func newEBDDoor(tb testing.TB, h *controllerHarness, province *ebd.Identity, dataDir string) *ebdDoor {
	tb.Helper()
	cert, err := os.ReadFile(filepath.Join(dataDir, "ebd-cert.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	county, err := ebd.ParseTrust(cert)
	if err != nil {
		tb.Fatal(err)
	}
	return &ebdDoor{url: h.HTTPURL + "/api/v1/ebd", province: province, county: county}
}

func (d *ebdDoor) post(tb testing.TB, p *ebd.Packet, files []ebd.File) *ebd.EBDResponse {
	tb.Helper()
	tarball, err := d.province.Pack(rand.Reader, p, files, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.Post(d.url, "application/x-tar", bytes.NewReader(tarball))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	in, err := ebd.Receive(resp.Body, ebd.Limits{}, d.county, time.Now())
	if err != nil || in.Packet.EBDResponse == nil {
		tb.Fatalf("the answer to %s is not an EBDResponse signed by the county: %v", p.EBDType, err)
	}
	return in.Packet.EBDResponse
}

// alertEBM is the province's emergency message number seq for area,
// severity II, with the MP3 fixture attached (there is no MP3 encoder
// among the CI's packages), to start at start and end ten minutes after
// now.
func alertEBM(tb testing.TB, province, county string, seq uint64, area string, now, start time.Time) (*ebd.Packet, []ebd.File) {
	tb.Helper()
	mp3, err := os.ReadFile("internal/media/testdata/tone-22050-mono-32k.mp3")
	if err != nil {
		tb.Fatal(err)
	}
	sum := sm3.Sum(mp3)
	msg := ebd.Header(ebd.TypeEBM, ebd.NewEBDID(ebd.KindBusiness, province, seq), province, county, now)
	msg.EBM = &ebd.EBM{EBMVersion: "1.0", EBMID: ebd.NewEBMID(province, now, int(seq)),
		MsgBasicInfo: &ebd.MsgBasicInfo{MsgType: ebd.MsgBroadcast, SenderName: "省应急管理厅", SenderCode: province,
			SendTime: ebd.FormatTime(now), EventType: "11B03", Severity: ebd.SeverityOrange,
			StartTime: ebd.FormatTime(start), EndTime: ebd.FormatTime(now.Add(10 * time.Minute))},
		MsgContent: &ebd.MsgContent{LanguageCode: "zho", MsgTitle: "暴雨橙色预警", AreaCode: area,
			Auxiliary: []ebd.Auxiliary{{AuxiliaryType: ebd.AuxMP3, AuxiliaryDesc: "alert.mp3", Size: strconv.Itoa(len(mp3)), Digest: hex.EncodeToString(sum[:])}}},
	}
	return &msg, []ebd.File{{Name: "alert.mp3", Data: mp3}}
}

// soundIn finds clip in capture: its normalised correlation with the
// capture where the sound starts (allowing a few samples either way for
// samples the gain rounded to 0), and the capture's level relative to the
// clip there.
func soundIn(clip []int, capture []float32) (corr, level float64, at int) {
	first := func(n int, v func(int) float64) int {
		for i := range n {
			if v(i) != 0 {
				return i
			}
		}
		return -1
	}
	c0 := first(len(clip), func(i int) float64 { return float64(clip[i]) })
	s0 := first(len(capture), func(i int) float64 { return float64(capture[i]) })
	if c0 < 0 || s0 < 0 {
		return 0, 0, -1
	}
	corr = -1
	for shift := -8; shift <= 8; shift++ {
		off := s0 - c0 + shift
		var xy, xx, yy float64
		for i, x := range clip {
			j := off + i
			if j < 0 || j >= len(capture) {
				continue
			}
			y := float64(capture[j]) * 32768
			xy, xx, yy = xy+float64(x)*y, xx+float64(x)*float64(x), yy+y*y
		}
		if xx == 0 || yy == 0 {
			continue
		}
		if r := xy / math.Sqrt(xx*yy); r > corr {
			corr, level, at = r, math.Sqrt(yy/xx), off
		}
	}
	return corr, level, at
}

// TestEBDFullCycleWithRealAgents: a mock province (its own SM2 key and
// certificate, trusted with --ebd-trust, the controller's --ebd-upstream)
// and a county whose three village boxes are the real agent binary
// playing through oto into ALSA's file plugin. The province sees the
// boxes come online (EBRDTState) and a heartbeat, and checks the county's
// link with one of its own. Then the province goes down, and while it is
// down it sends a signed emergency message with an MP3 for one township,
// to start a few seconds later, and one for the other township, which it
// cancels before its start; the same packet sent again is answered as
// the first time and does nothing, and a packet signed by a stranger's key
// is refused. The two villages of the first township play it, not before
// its StartTime (their play reports say when); the third plays nothing.
// The reports wait in the queue; when the province is back, every one is
// delivered: the broadcast log with the coverage the boxes reported, the
// cancelled message's log, and the state the province asks for. Every
// report it got verifies against the county's certificate.
func TestEBDFullCycleWithRealAgents(t *testing.T) {
	t.Parallel()
	agentBin, _ := binaries(t)
	ctx := t.Context()
	const county, province = "010511010100000001", "010211000000000001"
	const east1, east2, south = "110101001001", "110101001002", "110101002001"

	dataDir := t.TempDir()
	prov := newMockProvince(t, province, county, dataDir)
	pid := prov.id
	h := startController(t, harnessOptions{DataDir: dataDir, Tune: func(m *Main) {
		m.EBRID, m.EBDTrust, m.EBDUpstream = county, prov.trustPath, prov.srv.URL+"/ebd"
		m.EBDRetryMax = time.Second                  // the province comes back within the test's patience
		m.EBDHeartbeatEvery = 500 * time.Millisecond // the link shows down soon after the province goes
	}})
	csv := "code,name,township,lat,lon,device\n" +
		east1 + ",东村,东镇,39.9,116.4,agent\n" + east2 + ",西村,东镇,39.91,116.41,agent\n" + south + ",南村,南镇,39.8,116.3,agent\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	terminal := map[string]string{}
	for _, v := range []string{east1, east2, south} {
		id, err := ebd.TerminalEBRID(v, 1)
		if err != nil {
			t.Fatal(err)
		}
		terminal[v] = id
	}
	agents, captures := map[string]*proc{}, map[string]string{}
	for _, v := range []string{east1, east2, south} {
		agents[v], captures[v] = otoAgent(t, agentBin, h, v)
	}
	prov.await(30*time.Second, "every terminal online (EBRDTState)", func(p *ebd.Packet) bool {
		if p.EBRDTState == nil || len(p.EBRDTState.Items) != 3 {
			return false
		}
		for _, it := range p.EBRDTState.Items {
			if it.StateCode != ebd.StateOn {
				return false
			}
		}
		return true
	})
	prov.await(time.Second, "a heartbeat", func(p *ebd.Packet) bool { return p.ConnectionCheck != nil })

	// The province checks the link the other way.
	door := newEBDDoor(t, h, pid, dataDir)
	ok := strconv.Itoa(ebd.ResultOK)
	check := ebd.Header(ebd.TypeConnectionCheck, ebd.NewEBDID(ebd.KindBusiness, province, 100), province, county, time.Now())
	check.ConnectionCheck = &ebd.ConnectionCheck{RptTime: ebd.FormatTime(time.Now())}
	if resp := door.post(t, &check, nil); resp.ResultCode != ok {
		t.Fatalf("the province's heartbeat was answered %+v", resp)
	}

	// The province goes down: from now on the county's reports wait.
	prov.down.Store(true)

	// The message: for the township 东镇, the MP3 attached, to start a few
	// seconds from now and end in ten minutes.
	now := time.Now()
	start := now.Add(4 * time.Second).Truncate(time.Second)
	msg, files := alertEBM(t, province, county, 1, east1[:9]+"000", now, start)
	ebmid := msg.EBM.EBMID
	first := door.post(t, msg, files)
	if first.ResultCode != ok {
		t.Fatalf("the message was answered %+v", first)
	}
	b, err := h.Store.BroadcastByEBMID(ctx, ebmid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Targets.Villages, []string{east1, east2}) || !b.StartsAt.Equal(start) {
		t.Fatalf("broadcast %d targets %v, starts %v; want the two villages of 东镇 from %v", b.ID, b.Targets.Villages, b.StartsAt, start)
	}

	// A message for 南镇 a minute ahead, cancelled by the province
	// before it starts: 南镇's loudspeaker stays silent.
	later, laterFiles := alertEBM(t, province, county, 5, south, time.Now(), time.Now().Add(time.Minute).Truncate(time.Second))
	if resp := door.post(t, later, laterFiles); resp.ResultCode != ok {
		t.Fatalf("the second message was answered %+v", resp)
	}
	cancel := ebd.Header(ebd.TypeEBM, ebd.NewEBDID(ebd.KindBusiness, province, 6), province, county, time.Now())
	cancel.EBM = &ebd.EBM{EBMVersion: "1.0", EBMID: ebd.NewEBMID(province, time.Now(), 6),
		MsgBasicInfo: &ebd.MsgBasicInfo{MsgType: ebd.MsgCancel, SenderName: "省应急管理厅", SenderCode: province, SendTime: ebd.FormatTime(time.Now())},
		RelatedInfo:  &ebd.RelatedInfo{EBMID: later.EBM.EBMID}}
	if resp := door.post(t, &cancel, nil); resp.ResultCode != ok {
		t.Fatalf("the cancel was answered %+v", resp)
	}
	cancelled, err := h.Store.BroadcastByEBMID(ctx, later.EBM.EBMID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := h.Client.GetBroadcast(ctx, cancelled.ID); err != nil || got.State != "cancelled" {
		t.Fatalf("the cancelled message's broadcast: %+v, %v; want cancelled", got, err)
	}

	// The first packet again (a replay) is answered as the first time and
	// makes nothing; one signed by a stranger's key is refused.
	if again := door.post(t, msg, files); again.ResultCode != first.ResultCode || again.ResultDesc != first.ResultDesc {
		t.Errorf("the same packet again was answered %+v; want the first answer %+v", again, first)
	}
	stranger, _ := upperPlatform(t, province)
	forged, forgedFiles := alertEBM(t, province, county, 7, south, time.Now(), time.Now())
	if resp := (&ebdDoor{url: door.url, province: stranger, county: door.county}).post(t, forged, forgedFiles); resp.ResultCode == ok {
		t.Errorf("a packet signed by a stranger's key was answered %+v; want refused", resp)
	}
	if _, err := h.Store.BroadcastByEBMID(ctx, forged.EBM.EBMID); err == nil {
		t.Errorf("the forged message made a broadcast")
	}
	if all, err := h.Client.Broadcasts(ctx); err != nil || len(all) != 2 {
		t.Fatalf("broadcasts after a replay and a forgery: %d (%v); want the 2 genuine messages'", len(all), err)
	}

	// Both boxes report the end while the province is down: the log
	// waits in the queue, and is delivered when the province is back.
	waitFor(t, 40*time.Second, "both boxes of 东镇 reporting the end, and reports queued for the province", func() bool {
		p, err := h.Client.GetBroadcast(ctx, b.ID)
		st, serr := h.Client.EBDStatus(ctx)
		return err == nil && serr == nil && p.State == "done" && st.Upstream != nil && st.Upstream.Queued > 0 && !st.Upstream.Reachable
	})
	if n := len(prov.taken()); n == 0 {
		t.Fatal("the province got nothing before it went down")
	}
	prov.down.Store(false)
	waitFor(t, 30*time.Second, "every queued report delivered", func() bool {
		st, err := h.Client.EBDStatus(ctx)
		return err == nil && st.Upstream != nil && st.Upstream.Queued == 0
	})
	prov.await(time.Second, "the cancelled message's log (EBMBrdLog, state 5)", func(p *ebd.Packet) bool {
		return p.EBMBrdLog != nil && len(p.EBMBrdLog.Items) == 1 && p.EBMBrdLog.Items[0].EBM.EBMID == later.EBM.EBMID &&
			p.EBMBrdLog.Items[0].BrdStateCode == ebd.BrdCancelled
	})

	// The broadcast log, once both boxes reported the end.
	logged := prov.await(40*time.Second, "the broadcast log (EBMBrdLog)", func(p *ebd.Packet) bool {
		return p.EBMBrdLog != nil && len(p.EBMBrdLog.Items) == 1 && p.EBMBrdLog.Items[0].EBM.EBMID == ebmid
	}).EBMBrdLog.Items[0]
	events, err := h.Store.BroadcastEvents(ctx, b.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	played := map[string][2]time.Time{} // each box's start and end, as it reported them
	for _, e := range events {
		r := played[e.Village]
		switch e.Type {
		case api.EventStarted:
			r[0] = e.At
		case api.EventFinished:
			r[1] = e.At
		}
		played[e.Village] = r
	}
	for _, v := range []string{east1, east2} {
		if r := played[v]; r[0].IsZero() || r[1].IsZero() || r[0].Before(start) {
			t.Errorf("box %s reported start %v, end %v: want both, the start not before the message's StartTime %v", v, r[0], r[1], start)
		}
	}
	if _, ok := played[south]; ok {
		t.Errorf("the box of %s (another township) reported on the broadcast: %+v", south, played[south])
	}
	cov := logged.Coverage
	if logged.BrdStateCode != ebd.BrdSucceeded || cov == nil || cov.CoverageRate != "1.0000" || cov.ResBrdStat != "2/2" ||
		cov.AreaCode != east1+","+east2 {
		t.Fatalf("broadcast log: state %s (%s), coverage %+v; want 3, rate 1.0000 of 2/2, areas %s,%s", logged.BrdStateCode, logged.BrdStateDesc, cov, east1, east2)
	}
	if logged.ResBrdInfo == nil || len(logged.ResBrdInfo.Items) != 2 {
		t.Fatalf("broadcast log per terminal: %+v, want the two boxes of 东镇", logged.ResBrdInfo)
	}
	for i, v := range []string{east1, east2} {
		it := logged.ResBrdInfo.Items[i]
		want := [2]string{ebd.FormatTime(played[v][0]), ebd.FormatTime(played[v][1])}
		if it.EBRID != terminal[v] || it.BrdStateCode != ebd.BrdSucceeded || it.StartTime != want[0] || it.EndTime != want[1] {
			t.Errorf("broadcast log, terminal %d: %+v; want %s played (3) from %s to %s as it reported", i, it, terminal[v], want[0], want[1])
		}
	}

	// The province asks for the message's state.
	req := ebd.Header(ebd.TypeEBMStateRequest, ebd.NewEBDID(ebd.KindBusiness, province, 2), province, county, time.Now())
	req.EBMStateRequest = &ebd.EBMStateRequest{EBM: &ebd.EBM{EBMID: ebmid}}
	if resp := door.post(t, &req, nil); resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("the state request was answered %+v", resp)
	}
	state := prov.await(20*time.Second, "the message's state (EBMStateResponse)", func(p *ebd.Packet) bool {
		return p.EBMStateResponse != nil && p.EBMStateResponse.EBM != nil && p.EBMStateResponse.EBM.EBMID == ebmid
	}).EBMStateResponse
	if state.BrdStateCode != ebd.BrdSucceeded || state.Coverage == nil || *state.Coverage != *cov {
		t.Errorf("state response: %s (%s) coverage %+v; want 3 with the log's coverage %+v", state.BrdStateCode, state.BrdStateDesc, state.Coverage, cov)
	}

	// What the loudspeakers sounded: the MP3 (as the library converted
	// it, at the loudness gain) in 东镇, nothing in 南镇.
	clip := samples(t, mustAudio(t, h, b.AudioID))
	for v, p := range agents {
		if err := p.stop(t); err != nil {
			t.Errorf("agent %s exited with %v after SIGTERM", v, err)
		}
	}
	for _, v := range []string{east1, east2} {
		corr, level, at := soundIn(clip, captured(t, captures[v]))
		t.Logf("%s: the clip found at sample %d, correlation %.4f, level ×%.3f", v, at, corr, level)
		if corr < 0.99 || level < 0.05 {
			t.Errorf("%s's loudspeaker: correlation with the message's audio %.4f (level ×%.3f), want ≥ 0.99", v, corr, level)
		}
	}
	for i, s := range captured(t, captures[south]) {
		if s != 0 {
			t.Errorf("南镇's loudspeaker sounded (sample %d is %v): the message was not for it", i, s)
			break
		}
	}

	prov.mu.Lock()
	defer prov.mu.Unlock()
	if len(prov.refused) > 0 {
		t.Errorf("reports whose signature did not verify at the province: %s", strings.Join(prov.refused, "; "))
	}
	types := map[string]int{}
	for _, p := range prov.got {
		types[p.EBDType]++
	}
	t.Logf("the province received, each verified: %v", types)
}

// mustAudio downloads clip id's WAV file.
func mustAudio(tb testing.TB, h *controllerHarness, id int64) []byte {
	tb.Helper()
	raw, err := h.Client.AudioContent(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// TestEBDStartTimeSurvivesRestart: a message whose StartTime is to come
// is held in the database; the controller stops before StartTime and
// starts again after it; the broadcast then goes out at once. Before
// the stop nothing of it was in the outbox.
func TestEBDStartTimeSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const county, province, village = "010611010100000001", "010211000000000001", "110101001001"
	pid, trustPath := upperPlatform(t, province)
	dataDir := t.TempDir()
	start := func() *controllerHarness {
		return startController(t, harnessOptions{DataDir: dataDir, Tune: func(m *Main) { m.EBRID, m.EBDTrust = county, trustPath }})
	}
	h := start()
	if _, err := h.Client.ImportVillages(ctx, []byte("code,name,township,lat,lon,device\n"+village+",东村,东镇,39.9,116.4,agent\n")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	at := now.Add(3 * time.Second).Truncate(time.Second)
	msg, files := alertEBM(t, province, county, 1, village, now, at)
	if resp := newEBDDoor(t, h, pid, dataDir).post(t, msg, files); resp.ResultCode != strconv.Itoa(ebd.ResultOK) {
		t.Fatalf("the message was answered %+v", resp)
	}
	b, err := h.Store.BroadcastByEBMID(ctx, msg.EBM.EBMID)
	if err != nil {
		t.Fatal(err)
	}
	unsent, _, err := h.Store.OutboxUnsentFor(ctx, "broadcast", strconv.FormatInt(b.ID, 10))
	if err != nil || !b.Held || !b.SentAt.IsZero() || unsent {
		t.Fatalf("before StartTime: held %v, sent at %v, in the outbox %v (%v); want held, not sent, not in the outbox", b.Held, b.SentAt, unsent, err)
	}
	h.Stop()
	waitFor(t, 10*time.Second, "StartTime to pass while the controller is down", func() bool { return time.Now().After(at) })
	h = start()
	waitFor(t, 20*time.Second, "the held broadcast to be sent after the restart", func() bool {
		got, err := h.Store.GetBroadcast(ctx, b.ID)
		return err == nil && !got.Held && !got.SentAt.IsZero()
	})
	if got, _ := h.Store.GetBroadcast(ctx, b.ID); got.SentAt.Before(at) {
		t.Fatalf("sent at %v, before StartTime %v", got.SentAt, at)
	}
}
