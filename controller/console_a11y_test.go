package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// TestConsoleA11y checks the console is usable by everyone, in real
// headless Chromium at 1920 and 360 px: Tab reaches a village on the map
// and Enter (or Space) opens its details, with a visible focus ring; each
// status has a marker shape of its own, the legend the same; at 360 px no
// screen is wider than the phone and the header leaves room; a disabled
// button is disabled and looks it; and switching the language on any main
// screen leaves no text of the other language behind (names of villages,
// townships, people and clips aside), both ways. The colours are checked
// by TestContrast (controller/internal/web).
func TestConsoleA11y(t *testing.T) {
	needBrowser(t)
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	consoleUsers(t, h, "wang admin")
	clip, err := h.Client.UploadAudio(ctx, "alarm.wav", "洪水警报", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: "晚间通知", Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := h.Client.CreateSchedule(ctx, playlists.Schedule{PlaylistID: pl.ID, Targets: playlists.Targets{All: true}, OnceAt: &at}); err != nil {
		t.Fatal(err)
	}
	// One township's villages: boxes that are not online, and villages
	// without a box awaiting a hand confirmation, on the map.
	town, manual := vs[0].Township, ""
	for _, v := range vs {
		if v.Device != playlists.DeviceAgent {
			manual = v.Code
		}
	}
	if _, err := h.Client.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{Townships: []string{town}, Villages: []string{manual}},
		Priority: playlists.Routine, Severity: 4, EventType: "other", Repeat: 1, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	// Content, not the console's words: left out of the language check.
	names := []string{"洪水警报", "晚间通知", "wang"}
	for _, v := range vs {
		names = append(names, v.Name, v.Township)
	}
	namesJS, _ := json.Marshal(names)

	shots := shotsDir(t)
	browser := startBrowser(t)
	tab := newTab(t, browser)
	run(t, tab, 20*time.Second, "login page", chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(h.HTTPURL+"/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	if evalJS[bool](t, tab, `document.querySelector('#loading') !== null`) {
		t.Error("the loading note is still shown on the login page")
	}
	login(t, tab, "wang")
	hash(t, tab, "#map")
	waitJS(t, tab, `document.querySelectorAll('#map .vm[data-status="offline"]').length > 0 && document.querySelectorAll('#map .vm[data-status="awaiting"]').length > 0`, 10*time.Second, "the township's markers")
	if evalJS[bool](t, tab, `document.querySelector('#loading') !== null`) {
		t.Error("the loading note is still shown on the map")
	}

	// The keyboard: Tab from the top of the page reaches a village marker.
	evalJS[bool](t, tab, `(document.activeElement?.blur(), window.scrollTo(0, 0), true)`)
	reached := false
	for i := 0; i < 80 && !reached; i++ {
		run(t, tab, 5*time.Second, "Tab", chromedp.KeyEvent(kb.Tab))
		reached = evalJS[bool](t, tab, `document.activeElement?.matches('#map .vm') ?? false`)
	}
	if !reached {
		t.Fatalf("80 presses of Tab did not reach a village on the map (focus on %s)", evalJS[string](t, tab, `document.activeElement?.outerHTML.slice(0, 120) ?? ''`))
	}
	// Tab on to a village that is in the broadcast.
	for i := 0; i < 100 && evalJS[string](t, tab, `document.activeElement.dataset.status`) == "none"; i++ {
		run(t, tab, 5*time.Second, "Tab", chromedp.KeyEvent(kb.Tab))
	}
	code := evalJS[string](t, tab, `document.activeElement.dataset.code`)
	label := evalJS[string](t, tab, `document.activeElement.getAttribute('aria-label')`)
	status := evalJS[string](t, tab, `document.querySelector('#legend li[data-status="' + document.activeElement.dataset.status + '"] span:not(.n)').textContent`)
	if v := villageNamed(vs, code); v == nil || status == "" || !strings.HasPrefix(label, v.Name+" · "+status) {
		t.Errorf("marker %s: aria-label %q, want its village's name and status", code, label)
	}
	if vis := evalJS[string](t, tab, `getComputedStyle(document.activeElement.querySelector('.ring')).visibility`); vis != "visible" {
		t.Errorf("the focused marker's ring is %s, want visible", vis)
	}
	run(t, tab, 5*time.Second, "Enter", chromedp.KeyEvent(kb.Enter))
	waitJS(t, tab, fmt.Sprintf(`!document.querySelector('#details').hidden && document.querySelector('#details').textContent.includes(%q)`, villageNamed(vs, code).Name), 5*time.Second, "details after Enter")
	// The map is redrawn on a pick: the keyboard keeps its place.
	waitJS(t, tab, fmt.Sprintf(`document.activeElement?.dataset.code === %q`, code), 5*time.Second, "focus kept after the redraw")
	run(t, tab, 5*time.Second, "Tab", chromedp.KeyEvent(kb.Tab))
	next := evalJS[string](t, tab, `document.activeElement.dataset.code ?? ''`)
	if v := villageNamed(vs, next); v == nil || next == code {
		t.Fatalf("Tab from a marker went to %q, want the next village", next)
	}
	run(t, tab, 5*time.Second, "Space", chromedp.KeyEvent(" "))
	waitJS(t, tab, fmt.Sprintf(`document.querySelector('#details').textContent.includes(%q)`, villageNamed(vs, next).Name), 5*time.Second, "details after Space")

	// The schedule form's map of villages, by keyboard too: Tab reaches a
	// village, a toggle named with its village and whether the targets
	// reach it, with a visible ring; Enter puts it in the targets, Space
	// the next one, Enter again takes that one out; the keyboard keeps its
	// place through each redraw.
	hash(t, tab, "#schedules")
	waitJS(t, tab, `document.querySelectorAll('#sc-map .vm').length > 0 && document.querySelector('#view-schedules').getAttribute('aria-busy') !== 'true'`, 10*time.Second, "the schedule form's map")
	evalJS[bool](t, tab, `(document.activeElement?.blur(), window.scrollTo(0, 0), true)`)
	reached = false
	for i := 0; i < 150 && !reached; i++ {
		run(t, tab, 5*time.Second, "Tab", chromedp.KeyEvent(kb.Tab))
		reached = evalJS[bool](t, tab, `document.activeElement?.matches('#sc-map .vm') ?? false`)
	}
	if !reached {
		t.Fatalf("150 presses of Tab did not reach a village on the schedule form's map (focus on %s)", evalJS[string](t, tab, `document.activeElement?.outerHTML.slice(0, 120) ?? ''`))
	}
	reach := evalJS[int](t, tab, `Number(document.querySelector('#sc-reach').dataset.count)`)
	toggle := func(key, name, code string, in bool, n int) {
		t.Helper()
		run(t, tab, 5*time.Second, name, chromedp.KeyEvent(key))
		waitJS(t, tab, fmt.Sprintf(`document.querySelector('#sc-reach').dataset.count === '%d' && document.activeElement?.dataset.code === %q && document.activeElement.getAttribute('aria-pressed') === '%t'`, n, code, in),
			5*time.Second, fmt.Sprintf("%s on %s: %d villages reached, it pressed %t, focus kept", name, code, n, in))
		v := villageNamed(vs, code)
		state := map[bool]string{true: "已在目标内", false: "不在目标内"}[in]
		if label := evalJS[string](t, tab, `document.activeElement.getAttribute('aria-label')`); label != v.Name+" · "+state+" · "+v.Township {
			t.Errorf("the form's map names %s %q, want %q", code, label, v.Name+" · "+state+" · "+v.Township)
		}
		if vis := evalJS[string](t, tab, `getComputedStyle(document.activeElement.querySelector('.ring')).visibility`); vis != "visible" {
			t.Errorf("the focused village %s of the form's map has its ring %s, want visible", code, vis)
		}
	}
	first := evalJS[string](t, tab, `document.activeElement.dataset.code`)
	if label, v := evalJS[string](t, tab, `document.activeElement.getAttribute('aria-label')`), villageNamed(vs, first); v == nil || label != v.Name+" · 不在目标内 · "+v.Township {
		t.Errorf("the form's map names %s %q before it is picked", first, label)
	}
	toggle(kb.Enter, "Enter", first, true, reach+1)
	run(t, tab, 5*time.Second, "Tab", chromedp.KeyEvent(kb.Tab))
	second := evalJS[string](t, tab, `document.activeElement?.matches('#sc-map .vm') ? document.activeElement.dataset.code : ''`)
	if second == "" || second == first {
		t.Fatalf("Tab from a village of the form's map went to %q, want the next village", second)
	}
	toggle(" ", "Space", second, true, reach+2)
	toggle(kb.Enter, "Enter", second, false, reach+1)
	screenshot(t, tab, shots, "a11y-schedule-map-1920.png")

	// Shapes: every status its own glyph, in the legend and on the map alike.
	var legend map[string]string
	legend = evalJS[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll('#legend li')].map((li) => [li.dataset.status, li.querySelector('path.glyph')?.getAttribute('d') ?? '']))`)
	seen := map[string]string{}
	for st, d := range legend {
		if d == "" {
			t.Errorf("legend %s: no shape", st)
		} else if other, dup := seen[d]; dup {
			t.Errorf("legend: %s and %s have the same shape", st, other)
		}
		seen[d] = st
	}
	if len(legend) != 12 || legend["played_box"] == legend["played_hand"] {
		t.Errorf("legend shapes: %v", legend)
	}
	// Drawn, not only declared: each glyph is painted in its ink.
	if bare := evalJS[[]string](t, tab, `[...document.querySelectorAll('#map path.glyph, #legend path.glyph')].filter((p) => { const s = getComputedStyle(p); return s.fill === 'none' && s.stroke === 'none' || s.display === 'none' || s.visibility !== 'visible'; }).map((p) => p.dataset.glyph)`); len(bare) > 0 {
		t.Errorf("glyphs not painted: %v", bare)
	}
	marks := evalJS[map[string][]string](t, tab, `(() => { const m = {}; for (const g of document.querySelectorAll('#map .vm:not([data-status="none"])')) (m[g.dataset.status] ??= []).push(g.querySelector('path.glyph')?.getAttribute('d') ?? ''); return m; })()`)
	if len(marks) < 2 {
		t.Errorf("the map shows %d statuses, want at least 2: %v", len(marks), marks)
	}
	for st, ds := range marks {
		for _, d := range ds {
			if d != legend[st] {
				t.Errorf("a %s marker's shape %q is not the legend's %q", st, d, legend[st])
			}
		}
	}
	screenshot(t, tab, shots, "a11y-map-1920.png")

	// A disabled button: the attribute, and a look of its own.
	hash(t, tab, "#emergency")
	run(t, tab, 5*time.Second, "全县", chromedp.WaitVisible(chromedp.CSS("#em-all")), chromedp.Click(chromedp.CSS("#em-all")))
	if !evalJS[bool](t, tab, `document.querySelector('#em-village-add').hasAttribute('disabled') && document.querySelector('#em-village-add').matches(':disabled')`) {
		t.Error("with 全县 ticked, the add-a-village button is not disabled")
	}
	style := `((b) => { const s = getComputedStyle(b); return [s.color, s.backgroundColor, s.borderTopStyle, s.cursor].join(' | '); })`
	off := evalJS[string](t, tab, style+`(document.querySelector('#em-village-add'))`)
	on := evalJS[string](t, tab, style+`(document.querySelector('#em-back'))`)
	if off == on || !strings.Contains(off, "dashed") || !strings.Contains(off, "not-allowed") {
		t.Errorf("a disabled button looks like an enabled one: %q vs %q", off, on)
	}
	run(t, tab, 5*time.Second, "全县 off", chromedp.Click(chromedp.CSS("#em-all")))

	// The language, switched on every main screen, both ways.
	// A county-wide emergency from another person: wang's approvals badge
	// counts it, in either language.
	if _, err := h.Client.CreateBroadcast(ctx, api.BroadcastRequest{AudioID: clip.ID, Targets: playlists.Targets{All: true},
		Priority: playlists.Emergency, Severity: 1, EventType: "flood", Repeat: 1, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	badge := `!!(document.querySelector('#nav a[data-view="approvals"] .count-badge')?.checkVisibility() && document.querySelector('#nav a[data-view="approvals"] .count-badge').textContent === '1')`
	screens := []struct{ hash, ready, act string }{
		{"#map", `document.querySelectorAll('#map .vm').length > 0 && document.querySelector('#headline').textContent !== '' && ` + badge, ""},
		// The result of a send, on the form, is said again in the other language.
		{"#emergency", `document.querySelectorAll('#em-towns input').length > 0`, fmt.Sprintf(`(() => {
			document.querySelector('#em-towns input[value="%s"]').click();
			const a = document.querySelector('#em-audio'); a.value = '%d'; a.dispatchEvent(new Event('change'));
			document.querySelector('#em-next').click();
			setTimeout(() => document.querySelector('#em-send').click(), 100);
			return true; })()`, town, clip.ID)},
		{"#approvals", `document.querySelector('#view-approvals').hidden === false`, ""},
		{"#villages", `document.querySelectorAll('#vl-rows tr').length > 0`, ""},
		{"#library", `document.querySelectorAll('#lib-rows tr').length > 0`, ""},
		{"#schedules", `document.querySelectorAll('#sc-list li').length > 0 && document.querySelectorAll('#pl-list li').length > 0`, ""},
		{"#calendar", `document.querySelectorAll('#cal-grid .cal-day').length > 0`, ""},
		{"#reports", `document.querySelector('#rp-total').textContent !== ''`, ""},
		{"#audit", `document.querySelectorAll('#au-rows tr').length > 0`, ""},
		{"#users", `document.querySelectorAll('#us-rows tr').length > 0`, ""},
		{"#account", `document.querySelector('#view-account').hidden === false`, ""},
	}
	// visible lists the page's visible words: text nodes, the shown option
	// of each select, placeholders; names stripped.
	visible := `(() => { const names = ` + string(namesJS) + `.sort((a, b) => b.length - a.length);
		const strip = (s) => { for (const n of names) s = s.split(n).join(''); return s.trim(); };
		const out = [];
		const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
		for (let n = w.nextNode(); n; n = w.nextNode()) {
			const p = n.parentElement;
			// [lang]: words marked as another language (the switch's 中文 / English).
			if (!p || p.closest('select, script, style, datalist, title, body [lang]') || !p.checkVisibility({ visibilityProperty: true })) continue;
			const s = strip(n.textContent); if (s) out.push(s);
		}
		for (const s of document.querySelectorAll('select')) if (s.checkVisibility() && s.selectedOptions[0]) { const x = strip(s.selectedOptions[0].textContent); if (x) out.push(x); }
		for (const i of document.querySelectorAll('[placeholder]')) if (i.checkVisibility() && !i.value) out.push(strip(i.placeholder));
		return out; })()`
	han := `(` + visible + `).filter((s) => /\p{Script=Han}/u.test(s))`
	for _, sc := range screens {
		hash(t, tab, sc.hash)
		waitJS(t, tab, sc.ready, 10*time.Second, sc.hash+" in Chinese")
		if sc.act != "" {
			evalJS[bool](t, tab, sc.act)
			waitJS(t, tab, `document.querySelector('#em-state')?.textContent !== undefined && !document.querySelector('#em-result').hidden`, 10*time.Second, "the emergency sent")
		}
		zh := evalJS[[]string](t, tab, visible)
		run(t, tab, 5*time.Second, "English", chromedp.Click(chromedp.CSS("#lang")))
		waitJS(t, tab, `document.documentElement.lang === 'en'`, 5*time.Second, "English")
		if left := pollList(t, tab, han); len(left) > 0 {
			t.Errorf("%s in English still shows Chinese: %q", sc.hash, left)
		}
		if !evalJS[bool](t, tab, badge) {
			t.Errorf("%s: the approvals badge is gone after the switch to English", sc.hash)
		}
		en := evalJS[[]string](t, tab, visible)
		// Back to Chinese: nothing shown only in English stays.
		run(t, tab, 5*time.Second, "Chinese", chromedp.Click(chromedp.CSS("#lang")))
		waitJS(t, tab, `document.documentElement.lang === 'zh-CN'`, 5*time.Second, "Chinese")
		onlyEN := map[string]bool{}
		for _, s := range en {
			onlyEN[s] = true
		}
		for _, s := range zh {
			delete(onlyEN, s)
		}
		keys := make([]string, 0, len(onlyEN))
		for s := range onlyEN {
			keys = append(keys, s)
		}
		keysJS, _ := json.Marshal(keys)
		if left := pollList(t, tab, `(`+visible+`).filter((s) => `+string(keysJS)+`.includes(s) && /[A-Za-z]{3}/.test(s))`); len(left) > 0 {
			t.Errorf("%s back in Chinese still shows English: %q", sc.hash, left)
		}
	}

	// A phone: nothing wider than the screen, and a header that leaves room.
	run(t, tab, 5*time.Second, "narrow", chromedp.EmulateViewport(360, 780))
	for _, sc := range []string{"#map", "#emergency", "#villages"} {
		hash(t, tab, sc)
		waitJS(t, tab, `document.documentElement.scrollWidth <= 360`, 5*time.Second, "at 360 px "+sc+" no wider than the phone (is "+fmt.Sprint(evalJS[int](t, tab, `document.documentElement.scrollWidth`))+" px)")
		if h := evalJS[int](t, tab, `Math.round(document.querySelector('header.bar').getBoundingClientRect().height)`); h > 130 {
			t.Errorf("at 360 px the header of %s is %d px high (of 780), want at most 130", sc, h)
		}
		if evalJS[bool](t, tab, `[...document.querySelectorAll('header.bar > :not([hidden])')].some((e) => { const r = e.getBoundingClientRect(); return r.right > 360.5 || r.left < -0.5; })`) {
			t.Errorf("at 360 px a part of the header of %s sticks out", sc)
		}
		if sc == "#emergency" {
			if n := evalJS[int](t, tab, `[...document.querySelectorAll('#em-form *')].filter((e) => e.checkVisibility() && e.getBoundingClientRect().right > 360.5).length`); n > 0 {
				t.Errorf("at 360 px %d parts of the emergency form stick out", n)
			}
			screenshot(t, tab, shots, "a11y-emergency-360.png")
		}
	}
	hash(t, tab, "#map")
	waitJS(t, tab, `document.querySelectorAll('#map .vm').length > 0`, 5*time.Second, "the map at 360 px")
	// The phone's bigger markers: each glyph still sits on its marker.
	if off := evalJS[[]string](t, tab, `[...document.querySelectorAll('#map .vm')].filter((m) => m.querySelector('path.glyph')).filter((m) => {
		const c = m.querySelector('circle.v').getBoundingClientRect(), g = m.querySelector('path.glyph').getBoundingClientRect();
		const x = g.x + g.width / 2, y = g.y + g.height / 2;
		return g.width < c.width * 0.3 || Math.abs(x - (c.x + c.width / 2)) > c.width / 4 || Math.abs(y - (c.y + c.height / 2)) > c.height / 4;
	}).map((m) => m.dataset.code)`); len(off) > 0 {
		t.Errorf("at 360 px the glyphs of %v are off their markers (or tiny)", off)
	}
	screenshot(t, tab, shots, "a11y-map-360.png")

	// A slow link (every API answer 2.5 s late): 正在加载… at once, gone
	// when the map's first answers are in.
	slow := func(latency float64) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			var rules []*network.Conditions
			if latency > 0 {
				rules = append(rules, &network.Conditions{URLPattern: h.HTTPURL + "/api/*", Latency: latency, DownloadThroughput: -1, UploadThroughput: -1})
			}
			_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules})
			return err
		})
	}
	run(t, tab, 10*time.Second, "slow link", slow(2500), chromedp.Navigate(h.HTTPURL+"/?slow#map")) // a new document, not a hash change
	if !evalJS[bool](t, tab, `!!document.querySelector('#loading')?.checkVisibility() && document.querySelector('#loading').textContent.includes('正在加载')`) {
		t.Error("on a slow link the page shows no 正在加载…")
	}
	screenshot(t, tab, shots, "a11y-loading-360.png")
	waitJS(t, tab, `document.querySelector('#loading') === null && document.querySelectorAll('#map .vm').length > 0`, 20*time.Second, "the map after the slow answers")
	run(t, tab, 5*time.Second, "fast link", slow(0))
	t.Logf("screenshots in %s", shots)
}

func villageNamed(vs []api.Village, code string) *api.Village {
	for i := range vs {
		if vs[i].Code == code {
			return &vs[i]
		}
	}
	return nil
}

// pollList waits up to three seconds for expr, a list, to be empty, and
// returns what it last held.
func pollList(t *testing.T, tab context.Context, expr string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 4*time.Second)
	defer cancel()
	// A timeout is the answer "not empty": the list says what stayed.
	_, _ = chromedp.Run(ctx, chromedp.Poll[bool](`(`+expr+`).length === 0`, chromedp.WithPollingTimeout(3*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	return evalJS[[]string](t, tab, expr)
}
