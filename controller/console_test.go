package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/demo"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// chromiumPath is Debian's chromium (test.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// TestConsole drives the web console in real headless Chromium against a
// controller with 79 real boxes: an operator logs in (in Chinese), sends a
// county-wide emergency, which waits for approval; an approver, in a
// browser context of their own, approves it; the operator's map turns
// green as the boxes report, live, until "79 / 81 个村已播放". Then an
// emergency to one township (no approval needed) is cancelled with the big
// button while it plays, and the page switches to English. Screenshots of
// the map and the emergency form at 1920 and 360 px wide are written to
// $CUNXIANG_SCREENSHOTS (see docScreenshots). Any error in the browser's
// console fails the test.
func TestConsole(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	h.county(t, h.BrokerURL)
	ctx := context.Background()
	consoleUsers(t, h, "zhang operator", "li approver")
	short, err := h.Client.UploadAudio(ctx, "alarm.wav", "洪水警报", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	long, err := h.Client.UploadAudio(ctx, "notice.wav", "撤离通知", demo.Announcement)
	if err != nil {
		t.Fatal(err)
	}
	// A routine schedule an hour ahead, for the map's schedule list.
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "晚间通知", Items: []playlists.Item{{AudioID: long.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	town, inTown := "", 0
	for _, v := range vs {
		if v.Device == playlists.DeviceAgent && (town == "" || v.Township == town) {
			town = v.Township
			inTown++
		}
	}

	shots := shotsDir(t)

	browser := startBrowser(t)
	op := newTab(t, browser)
	ap := newTab(t, browser)
	url := h.HTTPURL + "/"

	// A wrong password, then the operator's login, in Chinese.
	run(t, op, 20*time.Second, "login page",
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "zhang"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")),
	)
	waitText(t, op, "#login-error", "用户名或密码错误", 5*time.Second)
	screenshot(t, op, shots, "login-1920.png")
	login(t, op, "zhang")

	// A county-wide emergency: the confirmation states how many villages sound.
	run(t, op, 10*time.Second, "emergency form",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="emergency"]`)),
		chromedp.WaitVisible(chromedp.CSS("#em-form")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#em-audio option[value="%d"]') !== null`, short.ID)),
		chromedp.Click(chromedp.CSS("#em-all")),
		chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(short.ID, 10)),
		chromedp.SetValue(chromedp.CSS("#em-severity"), "1"),
		chromedp.Click(chromedp.CSS("#em-next")),
		chromedp.WaitVisible(chromedp.CSS("#em-step2")),
	)
	waitText(t, op, "#em-count", "将有 81 个村的喇叭响起", 5*time.Second)
	screenshot(t, op, shots, "emergency-1920.png")
	run(t, op, 10*time.Second, "send", chromedp.Click(chromedp.CSS("#em-send")))
	waitJS(t, op, `document.querySelector('#em-state')?.dataset.state === 'pending_approval'`, 10*time.Second, "state pending_approval")
	id := evalJS[string](t, op, `document.querySelector('#em-view-map').getAttribute('href').split('=')[1]`)

	// The approver, in a browser context of their own, approves it.
	run(t, ap, 20*time.Second, "approver login", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ap, "li")
	run(t, ap, 20*time.Second, "approve",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="approvals"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#ap-list li[data-id="`+id+`"] button.approve`)),
	)
	screenshot(t, ap, shots, "approvals-1280.png")
	run(t, ap, 20*time.Second, "approve",
		chromedp.Click(chromedp.CSS(`#ap-list li[data-id="`+id+`"] button.approve`)),
		chromedp.WaitVisible(chromedp.CSS("#ap-msg")),
	)

	// The operator's map turns green as the boxes report, without a reload.
	run(t, op, 30*time.Second, "open map", chromedp.Click(chromedp.CSS("#em-view-map")), chromedp.WaitVisible(chromedp.CSS("#map circle")))
	waitText(t, op, "#headline", "79 / 81 个村已播放", 45*time.Second)
	if n := evalJS[int](t, op, `document.querySelectorAll('#map circle[data-status="played_box"]').length`); n != 79 {
		t.Errorf("%d green markers, want 79", n)
	}
	if n := evalJS[int](t, op, `document.querySelectorAll('#map circle[data-status="awaiting"]').length`); n != 2 {
		t.Errorf("%d markers awaiting confirmation, want 2", n)
	}
	run(t, op, 5*time.Second, "village details", chromedp.Click(chromedp.CSS(`#map circle[data-status="played_box"]`)), chromedp.WaitVisible(chromedp.CSS("#details")))
	waitText(t, op, "#details", "广播盒已播放", 5*time.Second)
	screenshot(t, op, shots, "map-1920.png")
	// A village without a box: why it has not played, in Chinese.
	run(t, op, 5*time.Second, "manual village details", chromedp.Click(chromedp.CSS(`#map circle[data-status="awaiting"]`)))
	waitText(t, op, "#details", "该村没有广播盒，需村广播员人工播放并确认", 5*time.Second)
	screenshot(t, op, shots, "manual-details-1920.png")
	run(t, op, 5*time.Second, "narrow", chromedp.EmulateViewport(360, 780))
	screenshot(t, op, shots, "map-360.png")
	if w := evalJS[int](t, op, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("at 360 px the map page is %d px wide", w)
	}
	run(t, op, 5*time.Second, "narrow form", chromedp.Click(chromedp.CSS(`#nav a[data-view="emergency"]`)), chromedp.WaitVisible(chromedp.CSS("#em-form")))
	screenshot(t, op, shots, "emergency-360.png")
	if w := evalJS[int](t, op, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("at 360 px the emergency form is %d px wide", w)
	}

	// One township needs no approval: it plays at once, and the big
	// button cancels it while it plays.
	run(t, op, 10*time.Second, "township emergency",
		chromedp.EmulateViewport(1920, 1080),
		// The form was emptied after the last send: 全县 is off again.
		chromedp.Poll[chromedp.Void](`!document.querySelector('#em-all').checked`),
		chromedp.Click(chromedp.CSS(`#em-towns input[value="`+town+`"]`)),
		chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(long.ID, 10)),
		chromedp.Click(chromedp.CSS("#em-next")),
		chromedp.WaitVisible(chromedp.CSS("#em-step2")),
	)
	waitText(t, op, "#em-count", fmt.Sprintf("将有 %d 个村的喇叭响起", countTown(vs, town)), 5*time.Second)
	run(t, op, 10*time.Second, "send", chromedp.Click(chromedp.CSS("#em-send")))
	waitJS(t, op, `['sending', 'in_progress'].includes(document.querySelector('#em-state')?.dataset.state)`, 10*time.Second, "sent without approval")
	run(t, op, 30*time.Second, "open map", chromedp.Click(chromedp.CSS("#em-view-map")), chromedp.WaitVisible(chromedp.CSS("#map circle")))
	waitJS(t, op, `document.querySelector('#subject-state').dataset.state === 'in_progress' && document.querySelectorAll('#map circle[data-status="playing"]').length > 0`, 20*time.Second, "playing now")
	run(t, op, 10*time.Second, "cancel",
		chromedp.WaitVisible(chromedp.CSS("#cancel-btn")),
		chromedp.Click(chromedp.CSS("#cancel-btn")),
		chromedp.Click(chromedp.CSS("#cancel-btn")),
	)
	waitJS(t, op, `document.querySelector('#subject-state').dataset.state === 'cancelled' && document.querySelector('#cancel-box').hidden`, 10*time.Second, "cancelled")
	waitJS(t, op, fmt.Sprintf(`document.querySelectorAll('#map circle[data-status="cancelled"]').length === %d`, inTown), 20*time.Second, "every box of "+town+" stopped")

	// The schedule's coming occurrence: nothing played yet.
	evalJS[bool](t, op, fmt.Sprintf(`(() => { const s = document.querySelector('#subject'); s.value = 's:%d'; s.dispatchEvent(new Event('change')); return true; })()`, sid.ID))
	waitText(t, op, "#headline", "0 / 81 个村已播放", 10*time.Second)

	// English.
	run(t, op, 5*time.Second, "english", chromedp.Click(chromedp.CSS("#lang")))
	waitText(t, op, "#headline", "villages played", 5*time.Second)
	waitText(t, op, `#nav a[data-view="map"]`, "Coverage map", 5*time.Second)

	t.Logf("screenshots in %s", shots)
}

// TestConsoleVillages drives the villages screen and the village
// broadcaster's in headless Chromium: an admin imports a village list with
// one bad row (the row error is shown next to its line, nothing changes),
// then a good one; issues an enrollment token for a box and sees the
// command line; then the broadcaster of a village without a box, on a
// 360 px phone, confirms a schedule occurrence in two taps, and the
// occurrence's coverage counts one village played by hand. The village's
// second phone, still showing it unconfirmed, is told in Chinese that it
// was confirmed already.
func TestConsoleVillages(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	h.county(t, h.BrokerURL)
	ctx := context.Background()
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var agent, manual api.Village
	for _, v := range vs {
		if v.Device == playlists.DeviceAgent && agent.Code == "" {
			agent = v
		}
		if v.Device != playlists.DeviceAgent && manual.Code == "" {
			manual = v
		}
	}
	if agent.Code == "" || manual.Code == "" {
		t.Fatal("the county needs a village with a box and one without")
	}
	consoleUsers(t, h, "wang admin", "cun village "+manual.Code)
	// A schedule for the whole county that begins in a moment.
	audio, err := h.Client.UploadAudio(ctx, "alarm.wav", "通知", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "通知", Items: []playlists.Item{{AudioID: audio.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: &at})
	if err != nil {
		t.Fatal(err)
	}

	shots := shotsDir(t)
	browser := startBrowser(t)
	ad := newTab(t, browser, expectedResponse{"/api/v1/villages/import", 422}) // the bad import's answer
	run(t, ad, 20*time.Second, "admin login page", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	login(t, ad, "wang")
	run(t, ad, 10*time.Second, "villages",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="villages"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#vl-rows tr[data-code="`+agent.Code+`"]`)),
	)
	waitText(t, ad, "#vl-count", fmt.Sprintf("共 %d 个村", len(vs)), 5*time.Second)
	// The filters.
	evalJS[bool](t, ad, `(() => { const s = document.querySelector('#vl-device'); s.value = 'manual'; s.dispatchEvent(new Event('change')); return true; })()`)
	manuals := 0
	for _, v := range vs {
		if v.Device != playlists.DeviceAgent {
			manuals++
		}
	}
	waitJS(t, ad, fmt.Sprintf(`document.querySelectorAll('#vl-rows tr').length === %d`, manuals), 5*time.Second, "the manual villages")
	evalJS[bool](t, ad, `(() => { const s = document.querySelector('#vl-device'); s.value = ''; s.dispatchEvent(new Event('change')); return true; })()`)
	waitJS(t, ad, fmt.Sprintf(`document.querySelectorAll('#vl-rows tr').length === %d`, len(vs)), 5*time.Second, "every village")

	// An import with one bad row: the error is shown at line 3, nothing changes.
	lines := strings.Split(strings.TrimSpace(playliststest.VillagesCSV()), "\n")
	bad := strings.Split(lines[2], ",")
	bad[3] = "北纬"
	badCSV := strings.Join([]string{lines[0], lines[1], strings.Join(bad, ","), lines[3]}, "\n") + "\n"
	run(t, ad, 10*time.Second, "bad import",
		chromedp.Click(chromedp.CSS("#imp-box summary")), // the import form is folded under the heading
		chromedp.SetValue(chromedp.CSS("#imp-text"), badCSV),
		chromedp.Click(chromedp.CSS("#imp-submit")),
		chromedp.WaitVisible(chromedp.CSS("#imp-errors")),
	)
	waitText(t, ad, `#imp-errors li[data-line="3"]`, "第 3 行", 5*time.Second)
	waitText(t, ad, `#imp-errors li[data-line="3"]`, "北纬", 5*time.Second)
	if n := evalJS[int](t, ad, `document.querySelectorAll('#imp-errors li').length`); n != 1 {
		t.Errorf("%d row errors shown, want 1", n)
	}
	if after, err := h.Client.Villages(ctx); err != nil || len(after) != len(vs) {
		t.Errorf("after a failed import: %d villages (%v), want %d", len(after), err, len(vs))
	}
	goodCSV := strings.Join(lines[:4], "\n") + "\n"
	run(t, ad, 10*time.Second, "good import",
		chromedp.SetValue(chromedp.CSS("#imp-text"), goodCSV),
		chromedp.Click(chromedp.CSS("#imp-submit")),
		chromedp.WaitVisible(chromedp.CSS("#imp-msg")),
	)
	waitText(t, ad, "#imp-msg", "导入完成", 5*time.Second)
	waitJS(t, ad, `document.querySelector('#imp-errors').hidden`, 5*time.Second, "the row errors gone")

	// An enrollment token for a box, with the command line.
	run(t, ad, 10*time.Second, "enroll",
		chromedp.Click(chromedp.CSS(`#vl-rows tr[data-code="`+agent.Code+`"] .enroll-btn`)),
		chromedp.WaitVisible(chromedp.CSS("#vl-enroll")),
	)
	waitText(t, ad, "#vl-cmd", "cunxiang-agent --village "+agent.Code+" --controller "+h.HTTPURL+" --data /var/lib/cunxiang --enroll ", 5*time.Second)
	if cmd := evalJS[string](t, ad, `document.querySelector('#vl-cmd').textContent`); len(strings.Fields(cmd)) != 9 || len(strings.Fields(cmd)[8]) < 16 {
		t.Errorf("command line %q", cmd)
	}
	screenshot(t, ad, shots, "villages-1920.png")
	run(t, ad, 5*time.Second, "narrow", chromedp.EmulateViewport(360, 780))
	if w := evalJS[int](t, ad, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("at 360 px the villages page is %d px wide", w)
	}
	screenshot(t, ad, shots, "villages-360.png")

	// The broadcaster of a village without a box, on a phone, once the
	// occurrence has begun.
	waitFor(t, 10*time.Second, "the occurrence begins", func() bool { return time.Now().After(at.Add(time.Second)) })
	btn := fmt.Sprintf(`#vb-occ li[data-key^="s:%d@"] button.confirm-big`, sid.ID)
	// The village has two phones; both show the occurrence unconfirmed.
	vb, vb2 := newTab(t, browser), newTab(t, browser, expectedResponse{"/confirmations", 409})
	for _, tab := range []context.Context{vb, vb2} {
		run(t, tab, 20*time.Second, "village login page", chromedp.EmulateViewport(360, 780), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
		login(t, tab, "cun")
		run(t, tab, 10*time.Second, "village view", chromedp.WaitVisible(chromedp.CSS(btn)))
		waitText(t, tab, "#vb-title", manual.Name, 5*time.Second)
	}
	run(t, vb, 5*time.Second, "first tap", chromedp.Click(chromedp.CSS(btn)))
	waitText(t, vb, btn, "再按一次确认", 5*time.Second)
	if c, err := h.Client.Coverage(ctx, sid.ID, at); err != nil || c.PlayedByHand != 0 {
		t.Fatalf("after one tap: played by hand %d (%v), want 0", c.PlayedByHand, err)
	}
	run(t, vb, 5*time.Second, "second tap", chromedp.Click(chromedp.CSS(btn)))
	waitText(t, vb, btn, "已确认播放", 5*time.Second)
	waitText(t, vb, "#vb-msg", "已记录", 5*time.Second)
	screenshot(t, vb, shots, "village-360.png")
	if w := evalJS[int](t, vb, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("at 360 px the village page is %d px wide", w)
	}
	// The second phone, not knowing, confirms it again: refused, in Chinese.
	run(t, vb2, 5*time.Second, "second phone", chromedp.Click(chromedp.CSS(btn)), chromedp.Click(chromedp.CSS(btn)))
	waitText(t, vb2, "#global-error", "这次播放已经确认过了（播放时间 ", 5*time.Second)
	if msg := evalJS[string](t, vb2, `document.querySelector('#global-error').textContent`); !regexp.MustCompile(`（播放时间 \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}）$`).MatchString(msg) {
		t.Errorf("the refusal reads %q, want the time it was played in county time", msg)
	}
	c, err := h.Client.Coverage(ctx, sid.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	if c.PlayedByHand != 1 {
		t.Errorf("coverage of the occurrence: played by hand %d, want 1 (%s)", c.PlayedByHand, summary(c.CoverageDetail))
	}
	run(t, vb, 5*time.Second, "english", chromedp.Click(chromedp.CSS("#lang")))
	waitText(t, vb, "#vb-kind", "no box", 5*time.Second)
	t.Logf("screenshots in %s", shots)
}

func countTown(vs []api.Village, town string) int {
	n := 0
	for _, v := range vs {
		if v.Township == town {
			n++
		}
	}
	return n
}

// startBrowser starts headless Chromium with a fresh profile.
// needBrowser skips a browser test where it cannot run or is not wanted.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no Chromium at %s (test.sh installs Debian's chromium): %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("browser tests take a minute each; skipped with -short")
	}
}

func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// expectedResponse is an error response the test provokes on purpose: the
// browser logs every 4xx answer to a fetch as a console error ("Failed to
// load resource"), with the request's URL, and newTab lets exactly those
// through.
type expectedResponse struct {
	path   string // the end of the request's URL
	status int
}

// newTab opens a tab in a browser context of its own (its own cookies)
// and fails the test, at its end, on any error in its console but the
// expected responses.
func newTab(t *testing.T, browser context.Context, expect ...expectedResponse) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	var (
		mu   sync.Mutex
		errs []string
	)
	msgs := chromedp.Console(tab)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if !m.IsException() && slices.ContainsFunc(expect, func(e expectedResponse) bool {
				return strings.HasSuffix(m.URL, e.path) && strings.Contains(m.Text, fmt.Sprintf("status of %d", e.status))
			}) {
				continue
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				errs = append(errs, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		for _, e := range errs {
			t.Errorf("browser console: %s", e)
		}
		mu.Unlock()
		cancel()
		<-done
	})
	return tab
}

func run(t *testing.T, tab context.Context, within time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, within)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// consoleUsers creates people who log in to the console, each given as
// "name role" or "name village code", with the password login types.
func consoleUsers(t *testing.T, h *controllerHarness, people ...string) {
	t.Helper()
	for _, p := range people {
		f := append(strings.Fields(p), "")
		if _, err := h.Client.CreateUser(context.Background(), api.UserRequest{Username: f[0], DisplayName: f[0], Role: f[1], Village: f[2], Password: "correct horse battery " + f[0]}); err != nil {
			t.Fatalf("create %s: %v", f[0], err)
		}
	}
}

func login(t *testing.T, tab context.Context, user string) {
	t.Helper()
	run(t, tab, 20*time.Second, "login as "+user,
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery "+user),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#nav")),
	)
}

func evalJS[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is true in the page.
func waitJS(t *testing.T, tab context.Context, expr string, within time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, within+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		head := evalJS[string](t, tab, `document.querySelector('#headline')?.textContent + ' | ' + document.querySelector('#subject-state')?.textContent`)
		t.Fatalf("%s: not within %s (%v); page: %s", what, within, err, head)
	}
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, tab context.Context, sel, want string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, within+time.Second)
	defer cancel()
	expr := fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').includes(%q)`, sel, want)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		got := evalJS[string](t, tab, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? '(none)'`, sel))
		t.Fatalf("%s: want %q within %s, have %q (%v)", sel, want, within, strings.TrimSpace(got), err)
	}
}

// shotsDir is where a browser test writes its screenshots:
// $CUNXIANG_SCREENSHOTS, or a directory of its own that goes with it.
func shotsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CUNXIANG_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// docScreenshots are the screenshots kept in docs/screenshots, which the
// README and the issues' closing notes show. With
// CUNXIANG_UPDATE_SCREENSHOTS=1 the tests that take them (go test -run
// TestConsole ./controller) write them there too, each cut to its top
// docMaxHeight px to keep it small.
var docScreenshots = map[string]bool{
	// TestConsole, TestConsoleVillages
	"map-1920.png": true, "map-360.png": true, "emergency-1920.png": true, "villages-1920.png": true, "village-360.png": true,
	// TestConsoleLibrarySchedule: the library, the schedule form, the calendar
	"library-1920.png": true, "schedule-1920.png": true, "schedules-360.png": true, "calendar-1920.png": true,
	// TestConsoleReports: the reports, the printable page, the audit log
	"reports-1920.png": true, "report-print-1920.png": true, "audit-1920.png": true, "audit-360.png": true,
	// TestConsoleAdmin: users, a village's editing, box replacement and settings, deletion guards
	"users-1920.png": true, "users-360.png": true, "village-edit-1920.png": true, "village-edit-360.png": true,
	"library-in-use-1920.png": true, "playlist-in-use-1920.png": true,
	// TestConsoleTruth: the sent form, the approval card
	"truth-sent-1920.png": true, "truth-sent-360.png": true, "truth-approval-1920.png": true, "truth-approval-360.png": true, "truth-own-1920.png": true,
	// TestConsoleMapTruth: the villages that did not play, resend, rejected, cancelled, ended, the drill switch
	"map-unplayed-1920.png": true, "map-unplayed-360.png": true, "map-unplayed-filtered-1920.png": true, "map-unplayed-filtered-360.png": true,
	"map-resent-1920.png": true, "map-resent-360.png": true, "map-rejected-1920.png": true, "map-rejected-360.png": true,
	"map-cancelled-1920.png": true, "map-cancelled-360.png": true, "schedules-ended-1920.png": true, "schedules-ended-360.png": true,
	"emergency-test-confirm-1920.png": true, "emergency-test-confirm-360.png": true,
	// TestConsoleEBD: the 上级平台 page, the province down, a report retrying, a forged packet refused
	"ebd-1920.png": true, "ebd-360.png": true,
}

// docMaxHeight is how much of a page a screenshot in docs keeps: its top.
const docMaxHeight = 2400

func screenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CUNXIANG_UPDATE_SCREENSHOTS") == "1" && docScreenshots[name] {
		if err := writeDocScreenshot(filepath.Join("..", "docs", "screenshots", name), shot); err != nil {
			t.Fatalf("screenshot %s for docs: %v", name, err)
		}
	}
}

// writeDocScreenshot writes a PNG to path, cut to docMaxHeight.
func writeDocScreenshot(path string, shot []byte) error {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return err
	}
	if b := img.Bounds(); b.Dy() > docMaxHeight {
		var buf bytes.Buffer
		top := img.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rect(b.Min.X, b.Min.Y, b.Max.X, b.Min.Y+docMaxHeight))
		if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, top); err != nil {
			return err
		}
		shot = buf.Bytes()
	}
	return os.WriteFile(path, shot, 0o644)
}
