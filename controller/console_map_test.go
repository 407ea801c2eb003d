package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestConsoleMapTruth, at 1920 and 360 px, on a running controller with a
// real box: the headline counts the box that is playing; the list of
// villages that did not play shows them with reasons, filters them by
// township and status and exports them as CSV; a rejected broadcast reads
// 已驳回, not 已取消; cancelling says so; a once-schedule that played is
// 已结束, not 生效中; a drill sent from the form is marked as a test; and
// 重发给未播放的村 makes a broadcast to exactly the villages that missed,
// which waits for a second person.
func TestConsoleMapTruth(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	const (
		east, west, south, north, middle = "110101001001", "110101001002", "110101002001", "110101002002", "110101002003"
	)
	csv := "code,name,township,lat,lon,device\n" +
		east + ",东村,东镇,39.9,116.4,agent\n" + west + ",西村,东镇,39.9,116.5,agent\n" +
		south + ",南村,南镇,39.8,116.3,manual\n" + north + ",北村,南镇,39.8,116.4,manual\n" + middle + ",中村,南镇,39.85,116.35,agent\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	consoleUsers(t, h, "zhang operator", "li approver")
	li, err := h.Client.Login(ctx, "li", "correct horse battery li")
	if err != nil {
		t.Fatal(err)
	}
	zhang, err := h.Client.Login(ctx, "zhang", "correct horse battery zhang")
	if err != nil {
		t.Fatal(err)
	}
	clip, err := h.Client.UploadAudio(ctx, "notice.wav", "防汛通知", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}

	// A one-off two seconds from now: it has played (its only occurrence
	// is over) long before the browser looks at it.
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "早间通知", Items: []playlists.Item{{AudioID: clip.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(2 * time.Second).UTC()
	sched, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{Townships: []string{"南镇"}}, OnceAt: &soon})
	if err != nil {
		t.Fatal(err)
	}

	// 东村's box is real and plays a long routine notice: the headline
	// must count it as playing.
	fl := h.boxes(t, h.BrokerURL, "null", east)
	waitFor(t, 20*time.Second, "东村's box connected", func() bool { return fl.Connected(east) })
	until := time.Now().Add(time.Hour)
	playing, err := h.Client.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{Townships: []string{"东镇"}},
		Priority: playlists.Routine, Severity: 4, EventType: "other", Repeat: 100, ExpiresAt: client.ExpiresAt(until)})
	if err != nil {
		t.Fatal(err)
	}

	// A broadcast to 西村, 南村, 北村 and 中村, approved; 南村 confirms it by hand.
	missed, err := h.Client.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{Villages: []string{west, south, north, middle}},
		Priority: playlists.Emergency, Severity: 2, EventType: "flood", Repeat: 2, ExpiresAt: client.ExpiresAt(until)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := li.ApproveBroadcast(ctx, missed.ID); err != nil {
		t.Fatal(err)
	}
	confirm := fmt.Sprintf(`{"broadcast_id":%d,"played_at":%q,"note":"村广播员用大喇叭播了"}`, missed.ID, time.Now().UTC().Format(time.RFC3339))
	req, err := http.NewRequest(http.MethodPost, h.HTTPURL+"/api/v1/villages/"+south+"/confirmations", strings.NewReader(confirm))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.Client.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		t.Fatalf("confirming 南村: %s", res.Status)
	}
	// A county-wide one that the approver rejects.
	rejected, err := zhang.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{All: true},
		Priority: playlists.Emergency, Severity: 1, EventType: "fire", ExpiresAt: client.ExpiresAt(until)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := li.RejectBroadcast(ctx, rejected.ID, "火情已排除"); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 10*time.Second, "the one-off's time passed", func() bool { return time.Now().After(soon) })
	shots := shotsDir(t)
	browser := startBrowser(t)
	url := h.HTTPURL + "/"
	post := func(tab context.Context, body string) float64 {
		return awaitJS[float64](t, tab, `fetch('/api/v1/broadcasts', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': decodeURIComponent(document.cookie.match(/cx_csrf=([^;]+)/)[1])},
		body: JSON.stringify(`+body+`)}).then(r => r.json()).then(b => b.id)`)
	}
	getBroadcast := func(tab context.Context, id int64) map[string]any {
		return awaitJS[map[string]any](t, tab, fmt.Sprintf(`fetch('/api/v1/broadcasts/%d').then(r => r.json())`, id))
	}
	pick := func(tab context.Context, sel, value string) {
		evalJS[bool](t, tab, fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change')); return true; })()`, sel, value))
	}
	listed := func(tab context.Context) []string {
		return evalJS[[]string](t, tab, `[...document.querySelectorAll('#up-list li')].map((li) => li.dataset.code).sort()`)
	}

	for _, width := range []int64{1920, 360} {
		w := strconv.FormatInt(width, 10)
		op := newTab(t, browser)
		run(t, op, 20*time.Second, "login page", chromedp.EmulateViewport(width, 900), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#username")))
		login(t, op, "zhang")

		// The box that plays is counted in the headline.
		hash(t, op, fmt.Sprintf("#map?b=%d", playing.ID))
		waitJS(t, op, `document.querySelector('#headline').dataset.playing === '1'`, 20*time.Second, "one box playing")
		waitText(t, op, "#headline", "1 个村正在播放 · 0 / 2 个村已播放", 5*time.Second)

		// The villages that did not play, with reasons, filtered.
		pick(op, "#subject", fmt.Sprintf("b:%d", missed.ID))
		waitJS(t, op, `document.querySelector('#up-count')?.dataset.n === '3'`, 10*time.Second, "three villages did not play")
		if got, want := listed(op), []string{west, north, middle}; !slices.Equal(got, sorted(want)) {
			t.Fatalf("%d px: listed %v, want %v", width, got, sorted(want))
		}
		waitText(t, op, `#up-list li[data-code="`+north+`"] .why`, "该村没有广播盒", 5*time.Second)
		waitText(t, op, `#up-list li[data-code="`+west+`"] .class`, "离线", 5*time.Second)
		if n := evalJS[int](t, op, `[...document.querySelectorAll('#up-list li .why')].filter((d) => d.textContent.trim().length > 2).length`); n != 3 {
			t.Errorf("%d px: %d of 3 villages say why", width, n)
		}
		pick(op, "#up-town", "南镇")
		if got := listed(op); !slices.Equal(got, sorted([]string{north, middle})) {
			t.Errorf("%d px: 南镇 lists %v", width, got)
		}
		pick(op, "#up-class", "offline")
		if got := listed(op); !slices.Equal(got, []string{middle}) {
			t.Errorf("%d px: 南镇, offline lists %v", width, got)
		}
		waitText(t, op, "#up-count", "显示 1 / 3 个村", 5*time.Second)
		// The export is the server's CSV of what the filters show.
		filtered := awaitJS[string](t, op, `fetch(document.querySelector('#up-csv').href).then(r => r.text())`)
		if lines := strings.Split(strings.TrimSpace(strings.TrimPrefix(filtered, "\uFEFF")), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], middle+",中村,南镇,离线,") {
			t.Errorf("%d px: filtered CSV %q", width, filtered)
		}
		screenshot(t, op, shots, "map-unplayed-filtered-"+w+".png")
		pick(op, "#up-town", "")
		pick(op, "#up-class", "")
		whole := awaitJS[string](t, op, `fetch(document.querySelector('#up-csv').href).then(r => r.text())`)
		if !strings.HasPrefix(strings.TrimPrefix(whole, "\uFEFF"), "村编码,村名,乡镇,状况,原因,报告时间") || strings.Count(whole, "\n") != 4 || strings.Contains(whole, south) ||
			!strings.Contains(whole, north+",北村,南镇,等待人工确认,该村没有广播盒") {
			t.Errorf("%d px: CSV %q", width, whole)
		}
		screenshot(t, op, shots, "map-unplayed-"+w+".png")

		// 重发给未播放的村: exactly the three that missed, for a second person to approve.
		run(t, op, 10*time.Second, "resend", chromedp.Click(chromedp.CSS("#up-resend")), chromedp.Click(chromedp.CSS("#up-resend.armed")), chromedp.WaitVisible(chromedp.CSS("#up-msg")))
		waitText(t, op, "#up-msg", "已重发", 5*time.Second)
		rid, _ := strconv.ParseInt(evalJS[string](t, op, `document.querySelector('#up-msg').dataset.id`), 10, 64)
		rb := getBroadcast(op, rid)
		var targets []string
		for _, c := range rb["targets"].(map[string]any)["villages"].([]any) {
			targets = append(targets, c.(string))
		}
		if slices.Sort(targets); !slices.Equal(targets, sorted([]string{west, north, middle})) || rb["state"] != "pending_approval" || rb["audio_id"] != float64(clip.ID) || rb["priority"] != "emergency" {
			t.Errorf("%d px: the resend is %v", width, rb)
		}
		screenshot(t, op, shots, "map-resent-"+w+".png")

		// A rejected broadcast reads 已驳回, and so do its villages.
		pick(op, "#subject", fmt.Sprintf("b:%d", rejected.ID))
		waitText(t, op, "#subject-state", "已驳回", 10*time.Second)
		waitJS(t, op, `document.querySelector('#up-count')?.dataset.n === '5'`, 10*time.Second, "five rejected villages")
		if n := evalJS[int](t, op, `[...document.querySelectorAll('#up-list li .class')].filter((s) => s.textContent === '已驳回').length`); n != 5 {
			t.Errorf("%d px: %d villages read 已驳回", width, n)
		}
		if txt := evalJS[string](t, op, `document.querySelector('#subject').selectedOptions[0].textContent + document.querySelector('#subject-state').textContent + document.querySelector('#up-list').textContent`); strings.Contains(txt, "已取消") {
			t.Errorf("%d px: the rejected broadcast reads 已取消 somewhere: %q", width, txt)
		}
		if n := evalJS[string](t, op, `document.querySelector('#legend li[data-status="rejected"] .n').textContent`); n != "5" {
			t.Errorf("%d px: the legend counts %s rejected", width, n)
		}
		screenshot(t, op, shots, "map-rejected-"+w+".png")

		// Cancelling says so.
		cid := int64(post(op, fmt.Sprintf(`{audio_id: %d, targets: {villages: ['%s']}, priority: 'urgent', severity: 3, event_type: 'other', expires_at: new Date(Date.now() + 3600e3).toISOString()}`, clip.ID, west)))
		hash(t, op, fmt.Sprintf("#map?b=%d", cid))
		run(t, op, 10*time.Second, "map of the new broadcast", chromedp.WaitVisible(chromedp.CSS("#cancel-btn")))
		run(t, op, 10*time.Second, "cancel", chromedp.Click(chromedp.CSS("#cancel-btn")), chromedp.Click(chromedp.CSS("#cancel-btn.armed")), chromedp.WaitVisible(chromedp.CSS("#cancel-msg")))
		waitText(t, op, "#cancel-msg", fmt.Sprintf("广播 #%d 已取消", cid), 5*time.Second)
		waitText(t, op, "#subject-state", "已取消", 10*time.Second)
		screenshot(t, op, shots, "map-cancelled-"+w+".png")

		// The one-off that played is over.
		waitJS(t, op, fmt.Sprintf(`[...document.querySelectorAll('#subject option')].some((o) => o.value === 's:%d' && o.textContent.includes('已结束'))`, sched.ID), 5*time.Second, "the map's selector says 已结束")
		run(t, op, 10*time.Second, "schedules", chromedp.Click(chromedp.CSS(`#nav a[data-view="schedules"]`)), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#sc-list li[data-id="%d"]`, sched.ID))))
		item := fmt.Sprintf(`#sc-list li[data-id="%d"]`, sched.ID)
		waitText(t, op, item+" .sc-state", "已结束", 5*time.Second)
		if txt := evalJS[string](t, op, `document.querySelector('`+item+`').textContent`); strings.Contains(txt, "生效中") {
			t.Errorf("%d px: the played one-off reads %q", width, txt)
		}
		screenshot(t, op, shots, "schedules-ended-"+w+".png")

		// A drill from the form is marked as a test, before and after sending.
		run(t, op, 10*time.Second, "emergency form",
			chromedp.Click(chromedp.CSS(`#nav a[data-view="emergency"]`)),
			chromedp.WaitVisible(chromedp.CSS("#em-form")),
			chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('#em-audio option[value="%d"]') !== null`, clip.ID)),
			chromedp.Click(chromedp.CSS("#em-test")),
			chromedp.SetValue(chromedp.CSS("#em-village-q"), west),
			chromedp.Click(chromedp.CSS("#em-village-add")),
			chromedp.SetValue(chromedp.CSS("#em-audio"), strconv.FormatInt(clip.ID, 10)),
			chromedp.Click(chromedp.CSS("#em-next")),
			chromedp.WaitVisible(chromedp.CSS("#em-test-note")),
		)
		screenshot(t, op, shots, "emergency-test-confirm-"+w+".png")
		run(t, op, 10*time.Second, "send the drill", chromedp.Click(chromedp.CSS("#em-send")), chromedp.WaitVisible(chromedp.CSS("#em-test-mark")))
		waitText(t, op, "#em-test-mark", "演练/测试", 5*time.Second)
		tid, _ := strconv.ParseInt(evalJS[string](t, op, `document.querySelector('#em-state').dataset.id`), 10, 64)
		if tb := getBroadcast(op, tid); tb["test"] != true {
			t.Errorf("%d px: the drill was sent as %v", width, tb)
		}
		run(t, op, 10*time.Second, "the drill on the map", chromedp.Click(chromedp.CSS("#em-view-map")), chromedp.WaitVisible(chromedp.CSS("#map")))
		waitJS(t, op, fmt.Sprintf(`document.querySelector('#subject').value === 'b:%d' && document.querySelector('#subject').selectedOptions[0].textContent.startsWith('【演练/测试】')`, tid), 10*time.Second, "the map's selector marks the drill")
	}
}

// hash moves the console to a view, as a link would.
func hash(t *testing.T, tab context.Context, h string) {
	t.Helper()
	evalJS[bool](t, tab, fmt.Sprintf(`(() => { location.hash = %q; return true; })()`, h))
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
