package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// threeVillages is a county of two townships: 东村 and 西村 with boxes in
// 东镇, 南村 without one in 南镇.
const threeVillages = "code,name,township,lat,lon,device\n110101001001,东村,东镇,39.9,116.4,agent\n110101001002,西村,东镇,39.9,116.5,agent\n110101002001,南村,南镇,39.8,116.3,manual\n"

// TestConsoleTruth, at 1920 and 360 px: pressing 确认发送 twice makes one
// broadcast; the approver's card shows what will sound, where, how and by
// whom; an admin is offered no 批准 on their own broadcast.
func TestConsoleTruth(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(threeVillages)); err != nil {
		t.Fatal(err)
	}
	consoleUsers(t, h, "zhang operator", "li approver", "guan admin")
	clip, err := h.Client.UploadAudio(ctx, "alarm.wav", "洪水警报", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	shots := shotsDir(t)
	browser := startBrowser(t)
	url := h.HTTPURL + "/"
	pending := func(tab context.Context) int {
		return awaitJS[int](t, tab, `fetch('/api/v1/broadcasts?limit=100').then(r => r.json()).then(d => d.broadcasts.length)`)
	}

	for _, width := range []int64{1920, 360} {
		w := strconv.FormatInt(width, 10)
		op := newTab(t, browser)
		run(t, op, 20*time.Second, "login page", chromedp.EmulateViewport(width, 900), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
		login(t, op, "zhang")
		before := pending(op)
		run(t, op, 10*time.Second, "emergency form",
			chromedp.Click(chromedp.CSS(`#nav a[data-view="emergency"]`)),
			chromedp.WaitVisible(chromedp.CSS("#em-form")),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#em-audio option[value="%d"]') !== null`, clip.ID)),
			chromedp.Click(chromedp.CSS("#em-all")),
			chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(clip.ID, 10)),
			chromedp.SetValue(chromedp.CSS("#em-severity"), "1"),
			chromedp.Click(chromedp.CSS("#em-next")),
			chromedp.WaitVisible(chromedp.CSS("#em-step2")),
		)
		// Two presses as fast as a nervous hand: one broadcast.
		evalJS[bool](t, op, `(() => { const b = document.querySelector('#em-send'); b.click(); b.click(); return true; })()`)
		waitJS(t, op, `document.querySelector('#em-state')?.dataset.state === 'pending_approval'`, 10*time.Second, "state pending_approval")
		if n := pending(op) - before; n != 1 {
			t.Fatalf("%d px: two presses made %d broadcasts", width, n)
		}
		// The form is emptied: nothing is left to send again.
		if v := evalJS[string](t, op, `document.querySelector('#em-audio').value`); v != "" {
			t.Errorf("%d px: the form still holds clip %q after sending", width, v)
		}
		id := evalJS[string](t, op, `document.querySelector('#em-state').dataset.id`)
		screenshot(t, op, shots, "truth-sent-"+w+".png")

		// The approver sees what they approve, and the sender's 等待审批
		// turns as soon as it is approved.
		ap := newTab(t, browser)
		run(t, ap, 20*time.Second, "approver login", chromedp.EmulateViewport(width, 900), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
		login(t, ap, "li")
		card := `#ap-list li[data-id="` + id + `"]`
		run(t, ap, 20*time.Second, "approvals",
			chromedp.Click(chromedp.CSS(`#nav a[data-view="approvals"]`)),
			chromedp.WaitVisible(chromedp.CSS(card+` button.approve`)),
		)
		if src := evalJS[string](t, ap, `document.querySelector('`+card+` audio')?.getAttribute('src') ?? ''`); src != fmt.Sprintf("/api/v1/audio/%d/content", clip.ID) {
			t.Errorf("%d px: the card's audio plays %q", width, src)
		}
		for field, want := range map[string]string{"ap.targets": "全县 · 3 个村", "em.priority": "特急", "em.severity": "Ⅰ", "ap.repeat": "1 遍", "ap.by": "zhang"} {
			waitText(t, ap, card+` dd[data-field="`+field+`"]`, want, 5*time.Second)
		}
		screenshot(t, ap, shots, "truth-approval-"+w+".png")
		run(t, ap, 10*time.Second, "approve", chromedp.Click(chromedp.CSS(card+` button.approve`)), chromedp.WaitVisible(chromedp.CSS("#ap-msg")))
		waitJS(t, op, `document.querySelector('#em-state')?.dataset.state !== 'pending_approval'`, 10*time.Second, "the sender's state follows the approval")
	}

	// An admin's own broadcast: the card, without 批准.
	ad := newTab(t, browser)
	run(t, ad, 20*time.Second, "admin login", chromedp.EmulateViewport(1920, 900), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "guan")
	id := awaitJS[float64](t, ad, fmt.Sprintf(`fetch('/api/v1/broadcasts', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': decodeURIComponent(document.cookie.match(/cx_csrf=([^;]+)/)[1])},
		body: JSON.stringify({audio_id: %d, targets: {all: true}, priority: 'emergency', severity: 1, event_type: 'flood', expires_at: new Date(Date.now() + 3600e3).toISOString()})}).then(r => r.json()).then(b => b.id)`, clip.ID))
	card := fmt.Sprintf(`#ap-list li[data-id="%d"]`, int64(id))
	run(t, ad, 20*time.Second, "admin approvals", chromedp.Click(chromedp.CSS(`#nav a[data-view="approvals"]`)), chromedp.WaitVisible(chromedp.CSS(card+" .own")))
	if n := evalJS[int](t, ad, `document.querySelectorAll('`+card+` button.approve').length`); n != 0 {
		t.Errorf("the admin is offered 批准 on their own broadcast")
	}
	screenshot(t, ad, shots, "truth-own-1920.png")
}

// awaitJS is evalJS of an expression that yields a promise.
func awaitJS[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}
