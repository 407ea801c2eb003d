package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emmansun/gmsm/sm3"

	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// TestConsoleEBD: the 上级平台 page, in real Chromium, against a running
// controller linked to a mock province. The admin sees this platform's
// code, the link up, the certificates with their serials; the province's
// emergency message acted on with a link to its broadcast, and a forged
// one refused with its reason in Chinese; the reports delivered. With
// the province down, the link turns down with its error and a report
// waits, retrying. The admin sets a box's province-assigned code (a bad
// one refused with its reason); a viewer, on a phone, reads the same page
// without the buttons that change codes. Screenshots ebd-1920, ebd-360.
func TestConsoleEBD(t *testing.T) {
	needBrowser(t)
	const county, province = "010341142100000001", "010241000000000001"
	dir := t.TempDir()
	prov := newMockProvince(t, province, county, dir)
	h := startController(t, harnessOptions{DataDir: dir, CountyName: "示例县", Tune: func(m *Main) {
		m.EBRID, m.EBDTrust, m.EBDUpstream, m.EBDUpstreamEBRID = county, prov.trustPath, prov.srv.URL+"/ebd", province
		m.EBDHeartbeatEvery = 300 * time.Millisecond
	}})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	consoleUsers(t, h, "guan admin", "kan viewer")
	deadline := time.Now().Add(20 * time.Second)
	for prov.count(ebd.TypeEBRPSInfo) == 0 || prov.count(ebd.TypeEBRDTInfo) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the province got %v", prov.types())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The province's emergency message for a township, with an MP3, and
	// a copy of it signed by a key the controller does not trust.
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var town string
	for _, v := range vs {
		if v.Device == playlists.DeviceAgent {
			town = v.Code[:9] + "000"
			break
		}
	}
	mp3, err := os.ReadFile("internal/media/testdata/tone-22050-mono-32k.mp3")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	msg := func(seq uint64) (*ebd.Packet, []ebd.File) {
		pk := ebd.Header(ebd.TypeEBM, ebd.NewEBDID(ebd.KindBusiness, province, seq), province, county, now)
		sum := sm3.Sum(mp3)
		pk.EBM = &ebd.EBM{EBMVersion: "1.0", EBMID: province + now.In(ebd.Beijing).Format("20060102") + fmt.Sprintf("%04d", seq),
			MsgBasicInfo: &ebd.MsgBasicInfo{MsgType: ebd.MsgBroadcast, SenderName: "省应急管理厅", SenderCode: province,
				SendTime: ebd.FormatTime(now), EventType: "11B03", Severity: ebd.SeverityOrange,
				StartTime: ebd.FormatTime(now), EndTime: ebd.FormatTime(now.Add(time.Hour))},
			MsgContent: &ebd.MsgContent{LanguageCode: "zho", MsgTitle: "暴雨橙色预警", MsgDesc: "未来三小时有大暴雨，请沿河群众立即转移。", AreaCode: town,
				Auxiliary: []ebd.Auxiliary{{AuxiliaryType: ebd.AuxMP3, AuxiliaryDesc: "alert.mp3", Size: strconv.Itoa(len(mp3)), Digest: hex.EncodeToString(sum[:])}}},
		}
		return &pk, []ebd.File{{Name: "alert.mp3", Data: mp3}}
	}
	post := func(signer *ebd.Identity, pk *ebd.Packet, files []ebd.File) {
		t.Helper()
		tarball, err := signer.Pack(rand.Reader, pk, files, now)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(h.HTTPURL+"/api/v1/ebd", "application/x-tar", bytes.NewReader(tarball))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /api/v1/ebd: %s", resp.Status)
		}
	}
	sk, sc, _ := ebd.GenerateIdentity(rand.Reader, province, now.Add(-time.Hour))
	stranger, _ := ebd.LoadIdentity(sk, sc)
	forged, ff := msg(2)
	post(stranger, forged, ff)
	real, rf := msg(1)
	post(prov.id, real, rf)
	in, err := h.Client.EBDInbound(ctx, 0)
	if err != nil || len(in) != 2 || in[0].BroadcastID == 0 {
		t.Fatalf("inbound %+v %v", in, err)
	}
	bid := in[0].BroadcastID

	browser := startBrowser(t)
	terms, err := h.Client.EBDTerminals(ctx)
	if err != nil || len(terms) < 2 {
		t.Fatalf("terminals %+v %v", terms, err)
	}
	first := terms[0]
	ad := newTab(t, browser, expectedResponse{"/api/v1/ebd/terminals/" + first.Village, http.StatusBadRequest})
	url := h.HTTPURL + "/"
	run(t, ad, 20*time.Second, "admin login page", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "guan")
	run(t, ad, 10*time.Second, "the 上级平台 page",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="ebd"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#ebd-in-rows tr[data-outcome="refused"]`)),
	)
	waitText(t, ad, "#nav", "上级平台", 5*time.Second)
	waitText(t, ad, `#ebd-facts dd[data-fact="ebrid"]`, county, 5*time.Second)
	waitText(t, ad, `#ebd-facts dd[data-fact="upstreamEBRID"]`, province, 5*time.Second)
	waitText(t, ad, `#ebd-facts dd[data-fact="door"]`, h.HTTPURL+"/api/v1/ebd", 5*time.Second)
	waitText(t, ad, `#ebd-facts dd[data-fact="link"]`, "正常", 5*time.Second)
	waitText(t, ad, `#ebd-cert-rows tr[data-use="trusted"]`, prov.id.CertSN(), 5*time.Second)
	waitText(t, ad, `#ebd-cert-rows tr[data-use="trusted"] td.state`, "有效", 5*time.Second)
	waitText(t, ad, `#ebd-in-rows tr[data-outcome="refused"] td.res`, "签名证书 "+stranger.CertSN()+" 不在信任列表中", 5*time.Second)
	waitText(t, ad, `#ebd-in-rows tr[data-outcome="received"] td.res`, "接收解析及数据校验成功", 5*time.Second)
	if href := evalJS[string](t, ad, `document.querySelector('#ebd-in-rows tr[data-outcome="received"] a.bc-link').getAttribute('href')`); href != fmt.Sprintf("#map?b=%d", bid) {
		t.Errorf("the message's broadcast link is %q", href)
	}
	// On the map, the province's message is marked with its source.
	evalJS[bool](t, ad, `(document.querySelector('#ebd-in-rows tr[data-outcome="received"] a.bc-link').click(), true)`)
	waitText(t, ad, fmt.Sprintf(`#subject option[value="b:%d"]`, bid), "【上级平台】", 5*time.Second)
	evalJS[bool](t, ad, `(location.hash = '#ebd', true)`)
	waitText(t, ad, `#ebd-facts dd[data-fact="ebrid"]`, county, 5*time.Second)
	waitJS(t, ad, `[...document.querySelectorAll('#ebd-out-rows tr[data-state="delivered"]')].some((tr) => tr.textContent.includes('平台信息 (EBRPSInfo)'))`, 5*time.Second, "the platform's inventory delivered")
	evalJS[bool](t, ad, `(window.cxPEM = '', fetch(document.querySelector('#ebd-cert').href).then((r) => r.text()).then((s) => { window.cxPEM = s; }), true)`)
	waitJS(t, ad, `window.cxPEM.includes('BEGIN CERTIFICATE')`, 5*time.Second, "the certificate from its link")

	// The province goes down; the admin sets a box's code the province
	// assigned, after a typing mistake.
	prov.down.Store(true)
	row := `#ebd-term-rows tr[data-code="` + first.Village + `"]`
	const assigned = "43414211010010103010201"
	run(t, ad, 10*time.Second, "a wrong code",
		chromedp.Click(chromedp.CSS(row+" .edit-code")),
		chromedp.WaitVisible(chromedp.CSS(row+" input.code-input")),
		chromedp.SendKeys(chromedp.CSS(row+" input.code-input"), "4341421101"),
		chromedp.Click(chromedp.CSS(row+" .save-code")),
	)
	waitText(t, ad, "#ebd-term-error", "不是资源编码", 5*time.Second)
	evalJS[bool](t, ad, `(document.querySelector('`+row+` input.code-input').value = '') === ''`)
	run(t, ad, 10*time.Second, "the right code",
		chromedp.SendKeys(chromedp.CSS(row+" input.code-input"), assigned),
		chromedp.Click(chromedp.CSS(row+" .save-code")),
	)
	waitText(t, ad, "#ebd-term-msg", assigned, 5*time.Second)
	waitText(t, ad, row+" td.from", "省平台分配", 5*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for {
		run(t, ad, 5*time.Second, "refresh", chromedp.Click(chromedp.CSS("#ebd-refresh")))
		if evalJS[bool](t, ad, `(document.querySelector('#ebd-facts dd[data-fact="link"]')?.textContent ?? '').includes('不通') &&
			!!document.querySelector('#ebd-out-rows tr[data-state="retrying"]')`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page did not show the province down with a report retrying")
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitText(t, ad, `#ebd-facts dd[data-fact="lastError"]`, "503", 5*time.Second)
	waitText(t, ad, `#ebd-facts dd[data-fact="queued"]`, "份", 5*time.Second)
	waitJS(t, ad, `[...document.querySelectorAll('#ebd-out-rows tr[data-state="retrying"]')].some((tr) => tr.textContent.includes('终端信息 (EBRDTInfo)'))`, 5*time.Second, "the new inventory retrying")
	shots := shotsDir(t)
	screenshot(t, ad, shots, "ebd-1920.png")

	got, err := h.Client.EBDTerminals(ctx)
	if err != nil || got[0].EBRID != assigned || !got[0].Assigned {
		t.Fatalf("after the edit: %+v %v", got, err)
	}
	entries, err := h.Client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || (e.Action == "ebd.terminal" && e.Actor == "guan" && e.Params["to"] == assigned)
	}
	if !found {
		t.Error("the code change is not in the audit log")
	}

	// A viewer on a phone: the same page, nothing to change.
	vw := newTab(t, browser)
	run(t, vw, 20*time.Second, "viewer login page", chromedp.EmulateViewport(360, 780), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, vw, "kan")
	run(t, vw, 10*time.Second, "the page for a viewer",
		chromedp.Navigate(url+"#ebd"),
		chromedp.WaitVisible(chromedp.CSS(`#ebd-term-rows tr[data-code="`+first.Village+`"]`)),
	)
	waitText(t, vw, `#ebd-facts dd[data-fact="link"]`, "不通", 5*time.Second)
	if n := evalJS[int](t, vw, `document.querySelectorAll('#view-ebd .edit-code').length`); n != 0 {
		t.Errorf("a viewer has %d buttons to change codes", n)
	}
	if w := evalJS[int](t, vw, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("the page is %d px wide on a 360 px phone", w)
	}
	screenshot(t, vw, shots, "ebd-360.png")

	// In English.
	run(t, vw, 5*time.Second, "english", chromedp.Click(chromedp.CSS("#lang")))
	waitText(t, vw, "#view-ebd h1", "Upper platform", 5*time.Second)
	waitText(t, vw, `#ebd-in-rows tr[data-outcome="refused"] td.res`, "is not among the trusted ones", 5*time.Second)
}
