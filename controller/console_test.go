package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/controller/internal/demo"
	"github.com/cunxiang/cunxiang/playlists"
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
// $CUNXIANG_SCREENSHOTS (and, with CUNXIANG_UPDATE_SCREENSHOTS=1, the wide
// ones to docs/screenshots for the README). Any error in the browser's
// console fails the test.
func TestConsole(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no Chromium at %s (test.sh installs Debian's chromium): %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("the browser test takes a minute; skipped with -short")
	}
	h := startController(t, harnessOptions{})
	h.county(t, h.BrokerURL)
	ctx := context.Background()
	for _, u := range [][2]string{{"zhang", "operator"}, {"li", "approver"}} {
		if err := h.Client.CreateUser(ctx, u[0], u[1], "", "correct horse battery "+u[0]); err != nil {
			t.Fatalf("create %s: %v", u[0], err)
		}
	}
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
	sid, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl, Targets: playlists.Targets{All: true}, OnceAt: &at})
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

	shots := os.Getenv("CUNXIANG_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

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
	run(t, op, 10*time.Second, "open map", chromedp.Click(chromedp.CSS("#em-view-map")), chromedp.WaitVisible(chromedp.CSS("#map circle")))
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
		chromedp.Click(chromedp.CSS("#em-all")), // off again
		chromedp.Click(chromedp.CSS(`#em-towns input[value="`+town+`"]`)),
		chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(long.ID, 10)),
		chromedp.Click(chromedp.CSS("#em-next")),
		chromedp.WaitVisible(chromedp.CSS("#em-step2")),
	)
	waitText(t, op, "#em-count", fmt.Sprintf("将有 %d 个村的喇叭响起", countTown(vs, town)), 5*time.Second)
	run(t, op, 10*time.Second, "send", chromedp.Click(chromedp.CSS("#em-send")))
	waitJS(t, op, `['sending', 'in_progress'].includes(document.querySelector('#em-state')?.dataset.state)`, 10*time.Second, "sent without approval")
	run(t, op, 10*time.Second, "open map", chromedp.Click(chromedp.CSS("#em-view-map")), chromedp.WaitVisible(chromedp.CSS("#map circle")))
	waitJS(t, op, `document.querySelector('#subject-state').dataset.state === 'in_progress' && document.querySelectorAll('#map circle[data-status="playing"]').length > 0`, 20*time.Second, "playing now")
	run(t, op, 10*time.Second, "cancel",
		chromedp.WaitVisible(chromedp.CSS("#cancel-btn")),
		chromedp.Click(chromedp.CSS("#cancel-btn")),
		chromedp.Click(chromedp.CSS("#cancel-btn")),
	)
	waitJS(t, op, `document.querySelector('#subject-state').dataset.state === 'cancelled' && document.querySelector('#cancel-box').hidden`, 10*time.Second, "cancelled")
	waitJS(t, op, fmt.Sprintf(`document.querySelectorAll('#map circle[data-status="cancelled"]').length === %d`, inTown), 20*time.Second, "every box of "+town+" stopped")

	// The schedule's coming occurrence: nothing played yet.
	evalJS[bool](t, op, fmt.Sprintf(`(() => { const s = document.querySelector('#subject'); s.value = 's:%d'; s.dispatchEvent(new Event('change')); return true; })()`, sid))
	waitText(t, op, "#headline", "0 / 81 个村已播放", 10*time.Second)

	// English.
	run(t, op, 5*time.Second, "english", chromedp.Click(chromedp.CSS("#lang")))
	waitText(t, op, "#headline", "villages played", 5*time.Second)
	waitText(t, op, `#nav a[data-view="map"]`, "Coverage map", 5*time.Second)

	if os.Getenv("CUNXIANG_UPDATE_SCREENSHOTS") == "1" {
		dst := filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"map-1920.png", "emergency-1920.png"} {
			b, err := os.ReadFile(filepath.Join(shots, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dst, f), b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("screenshots in %s", shots)
}

func countTown(vs []demo.VillageInfo, town string) int {
	n := 0
	for _, v := range vs {
		if v.Township == town {
			n++
		}
	}
	return n
}

// startBrowser starts headless Chromium with a fresh profile.
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

// newTab opens a tab in a browser context of its own (its own cookies)
// and fails the test, at its end, on any error in its console.
func newTab(t *testing.T, browser context.Context) context.Context {
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

func screenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
