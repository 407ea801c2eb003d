package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestConsoleAuditInChinese: what people did reads in Chinese, in county
// time, and names them by their display names. An admin issues an
// enrollment token on the villages screen; the broadcaster of a village
// without a box confirms a broadcast by hand. The admin's map names the
// broadcaster who confirmed it by display name, the header the admin; the
// audit log says each entry's detail in Chinese from its parameters, the
// token's expiry as a county clock time (not an RFC 3339 "…Z"), and in
// English after the switch.
func TestConsoleAuditInChinese(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	const agent, manual = "110101001001", "110101002001"
	csv := "code,name,township,lat,lon,device\n" + agent + ",东村,东镇,39.9,116.4,agent\n" + manual + ",南村,南镇,39.8,116.3,manual\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	for _, u := range [][4]string{{"guan", "关主任", "admin", ""}, {"zhang", "张操作员", "operator", ""}, {"cun", "南村老李", "village", manual}} {
		if _, err := h.Client.CreateUser(ctx, api.UserRequest{Username: u[0], DisplayName: u[1], Role: u[2], Village: u[3], Password: "correct horse battery " + u[0]}); err != nil {
			t.Fatalf("create %s: %v", u[0], err)
		}
	}
	clip, err := h.Client.UploadAudio(ctx, "alarm.wav", "防汛通知", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	zhang, err := h.Client.Login(ctx, "zhang", "correct horse battery zhang")
	if err != nil {
		t.Fatal(err)
	}
	b, err := zhang.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{Villages: []string{agent, manual}},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour))})
	if err != nil || b.State == "pending_approval" {
		t.Fatalf("routine broadcast: %+v %v", b, err)
	}

	browser := startBrowser(t)
	ad := newTab(t, browser)
	vb := newTab(t, browser)
	url := h.HTTPURL + "/"

	// The admin issues an enrollment token for 东村's box.
	run(t, ad, 20*time.Second, "admin login page", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "guan")
	waitText(t, ad, "#who", "关主任", 5*time.Second)
	run(t, ad, 10*time.Second, "enrollment token",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="villages"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#vl-rows tr[data-code="`+agent+`"] .enroll-btn`)),
		chromedp.Click(chromedp.CSS(`#vl-rows tr[data-code="`+agent+`"] .enroll-btn`)),
		chromedp.WaitVisible(chromedp.CSS("#vl-enroll")),
	)

	// The broadcaster of 南村 confirms the broadcast by hand.
	run(t, vb, 20*time.Second, "broadcaster login page", chromedp.EmulateViewport(360, 780), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, vb, "cun")
	btn := fmt.Sprintf(`#vb-bc li[data-key="b:%d"] button.confirm-big`, b.ID)
	run(t, vb, 10*time.Second, "confirm", chromedp.WaitVisible(chromedp.CSS(btn)), chromedp.Click(chromedp.CSS(btn)))
	waitText(t, vb, btn, "再按一次确认", 5*time.Second)
	run(t, vb, 5*time.Second, "confirm again", chromedp.Click(chromedp.CSS(btn)))
	waitText(t, vb, btn, "已确认播放", 5*time.Second)

	// The map names who confirmed it by display name.
	evalJS[bool](t, ad, fmt.Sprintf(`(location.hash = 'map?b=%d') !== ''`, b.ID))
	marker := `#map circle[data-code="` + manual + `"]`
	waitJS(t, ad, fmt.Sprintf(`document.querySelector('%s')?.dataset.status === 'played_hand'`, marker), 10*time.Second, "南村 played by hand")
	run(t, ad, 5*time.Second, "南村's details", chromedp.Click(chromedp.CSS(marker)), chromedp.WaitVisible(chromedp.CSS("#details")))
	waitText(t, ad, "#details", "确认人南村老李", 5*time.Second)

	// The audit log, in Chinese and county time.
	entries, err := h.Client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(entries, func(e api.AuditEntry) bool { return e.Action == "village.enroll_token" })
	if i < 0 || entries[i].Params["expires_at"] == "" {
		t.Fatalf("no enrollment token with its expiry in the audit log: %+v", entries)
	}
	expires, err := time.Parse(time.RFC3339, entries[i].Params["expires_at"])
	if err != nil {
		t.Fatal(err)
	}
	county, err := time.LoadLocation(playlists.DefaultTimezone)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ad, 10*time.Second, "audit log",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#au-rows tr[data-action="confirmation.create"]`)),
	)
	token := `#au-rows tr[data-action="village.enroll_token"] td.detail`
	waitText(t, ad, token, "注册令牌有效期至 "+expires.In(county).Format("2006/01/02 15:04:05"), 5*time.Second)
	if d := evalJS[string](t, ad, `document.querySelector('`+token+`').textContent`); d != "注册令牌有效期至 "+expires.In(county).Format("2006/01/02 15:04:05") {
		t.Errorf("the token's detail reads %q", d)
	}
	confirmed := `#au-rows tr[data-action="confirmation.create"]`
	waitText(t, ad, confirmed+" td.detail", fmt.Sprintf("广播 #%d，", b.ID), 5*time.Second)
	waitText(t, ad, confirmed+" td.detail", "人工播放", 5*time.Second)
	waitText(t, ad, confirmed, "南村老李", 5*time.Second)
	waitText(t, ad, `#au-rows tr[data-action="broadcast.create"] td.detail`, "常规，Ⅳ级（一般）", 5*time.Second)
	waitText(t, ad, `#au-rows tr[data-action="broadcast.create"] td.detail`, "“防汛通知”", 5*time.Second)
	if n := evalJS[int](t, ad, `[...document.querySelectorAll('#au-rows td.detail')].filter((td) => /\dT\d|\dZ\b/.test(td.textContent)).length`); n != 0 {
		t.Errorf("%d details show an RFC 3339 time", n)
	}
	if shots := os.Getenv("CUNXIANG_SCREENSHOTS"); shots != "" {
		screenshot(t, ad, shots, "audit-details-1920.png")
	}

	// In English, the same from the same parameters.
	run(t, ad, 5*time.Second, "english", chromedp.Click(chromedp.CSS("#lang")))
	waitText(t, ad, token, "expires "+expires.In(county).Format("02/01/2006, 15:04:05"), 5*time.Second)
	waitText(t, ad, confirmed+" td.detail", fmt.Sprintf("broadcast %d played at", b.ID), 5*time.Second)
}
