package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// TestConsoleAdmin drives the administration screens in headless
// Chromium, with no boxes running (so it is quick): an admin creates an
// approver on the users screen (1920 px); the approver logs in in a
// browser context of their own, on a 360 px phone, and approves the
// county-wide emergency an operator created; the admin sees the
// approver's last login, edits a village (a bad name is refused in
// Chinese, a good one saved), replaces its box (the old one revoked, a new
// enrollment command shown) and saves the township's quiet hours; deleting
// a clip a playlist uses is refused with the Chinese message naming the
// playlist. The users and villages screens fit 360 px. Screenshots go to
// $CUNXIANG_SCREENSHOTS.
func TestConsoleAdmin(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	consoleUsers(t, h, "guan admin", "zhang operator")
	clip, err := h.Client.UploadAudio(ctx, "alarm.wav", "洪水警报", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "早间通知", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(2 * time.Hour).Truncate(time.Minute)
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Townships: []string{"城关镇"}}, OnceAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(vs, func(v api.Village) bool { return v.Device == playlists.DeviceAgent })
	village := vs[i]
	oldBox := enrollByHTTP(t, h, village.Code)
	if err := checkBoxPassword(h, oldBox); err != nil {
		t.Fatalf("a freshly enrolled box: %v", err)
	}

	shots := shotsDir(t)
	browser := startBrowser(t)
	ad := newTab(t, browser,
		expectedResponse{"/api/v1/villages/" + village.Code, 400},                  // the empty name, refused
		expectedResponse{"/api/v1/audio/" + strconv.FormatInt(clip.ID, 10), 409},   // the clip in use
		expectedResponse{"/api/v1/playlists/" + strconv.FormatInt(pl.ID, 10), 409}, // the playlist in use
	)
	ap := newTab(t, browser)
	url := h.HTTPURL + "/"

	// The admin creates an approver.
	run(t, ad, 20*time.Second, "admin login", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "guan")
	run(t, ad, 10*time.Second, "users",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#us-rows tr[data-username="zhang"]`)),
		chromedp.SendKeys(chromedp.CSS("#us-username"), "li"),
		chromedp.SendKeys(chromedp.CSS("#us-display"), "李审批"),
		chromedp.SetValue(chromedp.CSS("#us-role"), "approver"),
		chromedp.SendKeys(chromedp.CSS("#us-password"), "short"),
		chromedp.Click(chromedp.CSS("#us-submit")),
	)
	waitText(t, ad, "#us-error", "密码至少要 10 个字符", 5*time.Second)
	run(t, ad, 10*time.Second, "create li",
		chromedp.SetValue(chromedp.CSS("#us-password"), "correct horse battery li"),
		chromedp.Click(chromedp.CSS("#us-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#us-rows tr[data-username="li"]`)),
	)
	waitText(t, ad, "#us-msg", "已创建用户 李审批（审批人）", 5*time.Second)
	waitText(t, ad, `#us-rows tr[data-username="li"]`, "从未登录", 5*time.Second)

	// An operator proposes a county-wide emergency; it waits for approval.
	zhang, err := h.Client.Login(ctx, "zhang", "correct horse battery zhang")
	if err != nil {
		t.Fatal(err)
	}
	b, err := zhang.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: "flood", ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour))})
	if err != nil || b.State != "pending_approval" {
		t.Fatalf("county-wide emergency: %+v %v", b, err)
	}

	// The new approver, on a phone, approves it.
	run(t, ap, 20*time.Second, "approver login", chromedp.EmulateViewport(360, 780), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ap, "li")
	card := fmt.Sprintf(`#ap-list li[data-id="%d"]`, b.ID)
	run(t, ap, 20*time.Second, "approve",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="approvals"]`)),
		chromedp.WaitVisible(chromedp.CSS(card+" button.approve")),
	)
	waitText(t, ap, card, "zhang", 5*time.Second) // the operator's display name (theirs is their username)
	run(t, ap, 10*time.Second, "approve", chromedp.Click(chromedp.CSS(card+" button.approve")), chromedp.WaitVisible(chromedp.CSS("#ap-msg")))
	waitText(t, ap, "#ap-msg", fmt.Sprintf("广播 #%d", b.ID), 5*time.Second)
	audit, err := h.Client.Audit(ctx)
	if err != nil || !slices.ContainsFunc(audit, func(e api.AuditEntry) bool {
		return e.Actor == "li" && e.Action == "broadcast.approve" && e.Object == fmt.Sprintf("broadcast/%d", b.ID)
	}) {
		t.Fatalf("no approval by li in the audit log (%v): %+v", err, audit[:min(5, len(audit))])
	}

	// The admin sees li's login.
	run(t, ad, 10*time.Second, "users again", chromedp.Click(chromedp.CSS(`#nav a[data-view="map"]`)), chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)))
	waitJS(t, ad, `!document.querySelector('#us-rows tr[data-username="li"]').textContent.includes('从未登录')`, 5*time.Second, "li's last login")
	screenshot(t, ad, shots, "users-1920.png")

	// A village: a bad name is refused in Chinese, a good one saved.
	row := `#vl-rows tr[data-code="` + village.Code + `"]`
	run(t, ad, 10*time.Second, "villages",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="villages"]`)),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.SendKeys(chromedp.CSS("#vl-q"), village.Code),
	)
	waitJS(t, ad, `document.querySelectorAll('#vl-rows tr').length === 1`, 5*time.Second, "the search")
	run(t, ad, 10*time.Second, "edit",
		chromedp.Click(chromedp.CSS(row+" .edit-btn")),
		chromedp.WaitVisible(chromedp.CSS("#ve-panel")),
		chromedp.SetValue(chromedp.CSS("#ve-name"), " "),
		chromedp.Click(chromedp.CSS("#ve-save")),
	)
	waitText(t, ad, `#ve-errors li[data-field="name"]`, "村名：不能为空", 5*time.Second)
	run(t, ad, 10*time.Second, "save", chromedp.SetValue(chromedp.CSS("#ve-name"), "新名村"), chromedp.Click(chromedp.CSS("#ve-save")))
	waitText(t, ad, "#ve-msg", "已保存 新名村", 5*time.Second)
	waitText(t, ad, row, "新名村", 5*time.Second)
	if vs, _ := h.Client.Villages(ctx); !slices.ContainsFunc(vs, func(v api.Village) bool { return v.Code == village.Code && v.Name == "新名村" }) {
		t.Fatal("the new name is not stored")
	}

	// Its township's quiet hours, typed with a Chinese IME.
	run(t, ad, 10*time.Second, "quiet hours",
		chromedp.WaitVisible(chromedp.CSS("#ve-town-cfg .cfg-quiet")),
		chromedp.SetValue(chromedp.CSS("#ve-town-cfg .cfg-quiet"), "２２：００-０６：００"),
		chromedp.SetValue(chromedp.CSS("#ve-town-cfg .cfg-volume"), "80"),
		chromedp.Click(chromedp.CSS("#ve-town-cfg .cfg-save")),
	)
	waitText(t, ad, "#ve-town-cfg .ok", "设置已保存", 5*time.Second)
	waitText(t, ad, "#ve-town-cfg .hint", "guan", 5*time.Second)

	// Its box is replaced: the old one is revoked, a new command shown.
	run(t, ad, 10*time.Second, "replace",
		chromedp.Click(chromedp.CSS("#ve-replace")),
		chromedp.Click(chromedp.CSS("#ve-replace-ask .replace-confirm")),
		chromedp.WaitVisible(chromedp.CSS("#vl-enroll")),
	)
	waitText(t, ad, "#vl-enroll-title", "旧广播盒已吊销", 5*time.Second)
	waitText(t, ad, "#vl-cmd", "--village "+village.Code, 5*time.Second)
	waitText(t, ad, row, "已吊销", 5*time.Second)
	if err := checkBoxPassword(h, oldBox); err == nil {
		t.Fatal("the replaced box's password still works")
	}
	screenshot(t, ad, shots, "village-edit-1920.png")

	// A clip in use cannot be deleted; the console says where, in Chinese.
	clipRow := fmt.Sprintf(`#lib-rows tr[data-id="%d"]`, clip.ID)
	run(t, ad, 10*time.Second, "delete a clip in use",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="library"]`)),
		chromedp.WaitVisible(chromedp.CSS(clipRow+" .delete-btn")),
		chromedp.Click(chromedp.CSS(clipRow+" .delete-btn")),
		chromedp.Click(chromedp.CSS(clipRow+" .delete-confirm")),
		chromedp.WaitVisible(chromedp.CSS("#lib-manage-error")),
	)
	waitText(t, ad, "#lib-manage-error", "「洪水警报」正在使用，不能删除：播放列表「早间通知」、广播 #"+strconv.FormatInt(b.ID, 10), 5*time.Second)
	screenshot(t, ad, shots, "library-in-use-1920.png")
	if list, err := h.Client.AudioList(ctx); err != nil || len(list) != 1 {
		t.Fatalf("after the refused delete: %d clips (%v)", len(list), err)
	}

	// The playlist its schedule uses cannot be deleted either; the
	// schedule is edited (a new one made, the old one withdrawn).
	plRow := fmt.Sprintf(`#pl-list li[data-id="%d"]`, pl.ID)
	run(t, ad, 10*time.Second, "delete a playlist in use",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="schedules"]`)),
		chromedp.WaitVisible(chromedp.CSS(plRow+" .delete-btn")),
		chromedp.Click(chromedp.CSS(plRow+" .delete-btn")),
		chromedp.Click(chromedp.CSS(plRow+" .delete-confirm")),
		chromedp.WaitVisible(chromedp.CSS("#pl-error")),
	)
	waitText(t, ad, "#pl-error", fmt.Sprintf("「早间通知」正在使用，不能删除：排期 #%d", sid.ID), 5*time.Second)
	screenshot(t, ad, shots, "playlist-in-use-1920.png")
	later := at.Add(time.Hour).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02T15:04:05")
	run(t, ad, 10*time.Second, "edit the schedule",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#sc-list li[data-id="%d"] .edit-btn`, sid.ID))),
		chromedp.WaitVisible(chromedp.CSS("#sc-editing")),
	)
	if got := evalJS[string](t, ad, `document.querySelector('#sc-once').value`); got != at.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02T15:04") { // Chromium drops :00 seconds
		t.Errorf("the form holds %q for the schedule at %s", got, at)
	}
	evalJS[bool](t, ad, fmt.Sprintf(`(document.querySelector('#sc-once').value = %q) !== ''`, later))
	run(t, ad, 10*time.Second, "save the edit", chromedp.Click(chromedp.CSS("#sc-save")))
	waitText(t, ad, "#sc-msg", fmt.Sprintf("并撤回旧排期 #%d", sid.ID), 5*time.Second)
	waitJS(t, ad, fmt.Sprintf(`document.querySelector('#sc-list li[data-id="%d"]') === null && document.querySelectorAll('#sc-list li').length === 1`, sid.ID), 5*time.Second, "the old schedule gone from the list")

	// The screens fit a phone.
	run(t, ad, 5*time.Second, "narrow", chromedp.EmulateViewport(360, 780), chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#us-rows tr[data-username="li"]`)))
	for _, view := range []string{"users", "villages"} {
		run(t, ad, 5*time.Second, view, chromedp.Click(chromedp.CSS(`#nav a[data-view="`+view+`"]`)), chromedp.WaitVisible(chromedp.CSS("#view-"+view)))
		if w := evalJS[int](t, ad, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("at 360 px the %s page is %d px wide", view, w)
		}
		screenshot(t, ad, shots, map[string]string{"users": "users-360.png", "villages": "village-edit-360.png"}[view])
	}
	t.Logf("screenshots in %s", shots)
}

// enrollByHTTP enrolls a box for village as a box would and returns its
// MQTT credentials.
func enrollByHTTP(t *testing.T, h *controllerHarness, village string) api.EnrollResponse {
	t.Helper()
	tok, err := h.Client.Enroll(context.Background(), village)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(api.EnrollRequest{Village: village, Token: tok.Token, AgentVersion: "test"})
	resp, err := http.Post(h.HTTPURL+"/api/v1/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("enroll %s: %s %v", village, resp.Status, err)
	}
	return out
}

// checkBoxPassword tries a box's credentials where a box uses them over
// HTTP (its audio downloads, HTTP Basic).
func checkBoxPassword(h *controllerHarness, box api.EnrollResponse) error {
	req, _ := http.NewRequest(http.MethodGet, h.HTTPURL+"/api/v1/box/broadcasts/1", nil)
	req.SetBasicAuth(box.MQTTUsername, box.MQTTPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("refused: %s", resp.Status)
	}
	return nil
}
