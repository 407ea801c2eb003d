package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
)

func get(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

func TestServes(t *testing.T) {
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script type="module" src="/app.js">`},
		{"/anything/else", "text/html", `id="view-map"`},
		{"/", "text/html", `id="view-villages"`},
		{"/", "text/html", `id="view-village"`},
		{"/app.js", "javascript", "import"},
		{"/i18n.js", "javascript", "export const dict"},
		{"/app.css", "text/css", ":root"},
	} {
		w := get(t, tc.path)
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(w.Body.String(), tc.contains) {
			t.Errorf("%s: %d %s", tc.path, w.Code, w.Header().Get("Content-Type"))
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", tc.path, csp)
		}
	}
}

// TestNothingFromElsewhere: the console loads nothing from another host.
func TestNothingFromElsewhere(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:`)
	fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := static.ReadFile(p)
		if m := ext.Find(b); m != nil {
			t.Errorf("%s refers elsewhere: %s", p, m)
		}
		return nil
	})
}

func keys(block string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`'([a-z][A-Za-z0-9_.]*)':`).FindAllStringSubmatch(block, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestDictionaries: both languages have every key, and every key the
// pages use (data-i18n, t('…')) is in them; and every map status has a label.
func TestDictionaries(t *testing.T) {
	zhBlock, enBlock := dictionaries(t)
	zh, en := keys(zhBlock), keys(enBlock)
	// i18n-admin.js adds the administration screens' texts to both,
	// i18n-a11y.js those for the keyboard and screen readers, i18n-audit.js
	// the audit log's details.
	for _, f := range []string{"static/i18n-admin.js", "static/i18n-a11y.js", "static/i18n-audit.js", "static/i18n-ebd.js"} {
		azh, aen := additions(t, f)
		zh, en = append(zh, keys(azh)...), append(en, keys(aen)...)
	}
	// i18n-errors.js adds the texts of the server's refusals.
	ezh, een := errorDicts(t)
	zh, en = append(zh, ezh...), append(en, een...)
	slices.Sort(zh)
	slices.Sort(en)
	if !slices.Equal(zh, en) {
		for _, k := range zh {
			if !slices.Contains(en, k) {
				t.Errorf("%s: in Chinese, not in English", k)
			}
		}
		for _, k := range en {
			if !slices.Contains(zh, k) {
				t.Errorf("%s: in English, not in Chinese", k)
			}
		}
	}
	mapJS, _ := static.ReadFile("static/map.js")
	statuses := regexp.MustCompile(`STATUS_KEYS = \[([^\]]*)\]`).FindSubmatch(mapJS)
	if statuses == nil {
		t.Fatal("map.js: no STATUS_KEYS")
	}
	for _, q := range regexp.MustCompile(`'(\w+)'`).FindAllSubmatch(statuses[1], -1) {
		if !slices.Contains(zh, "status."+string(q[1])) {
			t.Errorf("status %s has no label", q[1])
		}
	}
	used := regexp.MustCompile(`data-i18n(?:-placeholder)?="([^"]+)"|\bt\('([a-z][A-Za-z0-9_.]*)'`)
	pages, _ := fs.Glob(static, "static/*.js")
	pages = append(slices.DeleteFunc(pages, func(f string) bool {
		return f == "static/i18n.js" || f == "static/i18n-admin.js" || f == "static/i18n-errors.js" || f == "static/i18n-audit.js" || f == "static/i18n-ebd.js"
	}), "static/index.html")
	if len(pages) < 4 {
		t.Fatalf("found only %v", pages)
	}
	for _, f := range pages {
		b, _ := static.ReadFile(f)
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			k := m[1] + m[2]
			if strings.HasSuffix(k, ".") { // a family, completed at run time: t('status.' + key)
				if !slices.ContainsFunc(zh, func(z string) bool { return strings.HasPrefix(z, k) }) {
					t.Errorf("%s uses keys %s…, which the dictionaries lack", f, k)
				}
				continue
			}
			if !slices.Contains(zh, k) {
				t.Errorf("%s uses %q, which the dictionaries lack", f, k)
			}
		}
	}
}

// TestReasons: every reason coverage can give has a text in both
// languages (reason.<code>), the English one as the API words it, with
// the same placeholders.
func TestReasons(t *testing.T) {
	zhBlock, enBlock := dictionaries(t)
	ph := regexp.MustCompile(`\{\w+\}`)
	codes := coverage.ReasonCodes()
	if len(codes) < 20 {
		t.Fatalf("only %d reason codes", len(codes))
	}
	for _, code := range codes {
		zh, okZh := dictText(zhBlock, "reason."+code)
		en, okEn := dictText(enBlock, "reason."+code)
		if !okZh || !okEn {
			t.Errorf("reason %s: no reason.%s in both dictionaries", code, code)
			continue
		}
		if en != coverage.Reasons[code] {
			t.Errorf("reason.%s in English is %q, the API says %q", code, en, coverage.Reasons[code])
		}
		a, b := ph.FindAllString(zh, -1), ph.FindAllString(en, -1)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("reason.%s: Chinese has %v, English %v", code, a, b)
		}
	}
}

// dictionaries returns the source of i18n.js's Chinese and English
// dictionaries.
func dictionaries(tb testing.TB) (zh, en string) {
	tb.Helper()
	src, _ := static.ReadFile("static/i18n.js")
	s := string(src)
	zhStart, enStart, end := strings.Index(s, "  zh: {"), strings.Index(s, "  en: {"), strings.Index(s, "\n};")
	if zhStart < 0 || enStart < 0 || end < 0 {
		tb.Fatal("i18n.js: no zh and en dictionaries")
	}
	return s[zhStart:enStart], s[enStart:end]
}

// dictText is the text of key in a dictionary's source.
func dictText(block, key string) (string, bool) {
	m := regexp.MustCompile(`'` + regexp.QuoteMeta(key) + `': '((?:[^'\\]|\\.)*)'`).FindStringSubmatch(block)
	if m == nil {
		return "", false
	}
	return strings.ReplaceAll(m[1], `\'`, "'"), true
}

// TestAuditTexts: every action the server can write to the audit log
// (audit.Actions) has a name (au.act.<action>) and a Chinese and an
// English template for its detail (au.d.<action>); the English template
// is the server's, word for word, and both name the same parameters. No
// template is for an action the server never writes.
func TestAuditTexts(t *testing.T) {
	zhBlock, enBlock := additions(t, "static/i18n-audit.js")
	mainZh, _ := dictionaries(t)
	labels := append(keys(mainZh), keys(zhBlock)...)
	ph := regexp.MustCompile(`\{\w+\??\}`)
	names := func(s string) []string {
		out := ph.FindAllString(s, -1)
		slices.Sort(out)
		return slices.Compact(out)
	}
	actions := audit.Actions()
	if len(actions) < 35 {
		t.Fatalf("only %d actions", len(actions))
	}
	known := map[string]bool{}
	for _, a := range actions {
		key := "au.d." + a.String()
		known[key] = true
		if !slices.Contains(labels, "au.act."+a.String()) {
			t.Errorf("audit action %s has no name (au.act.%s)", a, a)
		}
		zh, okZh := dictText(zhBlock, key)
		en, okEn := dictText(enBlock, key)
		if !okZh || !okEn {
			t.Errorf("audit action %s: no %s in both languages (i18n-audit.js)", a, key)
			continue
		}
		if en != a.Template() {
			t.Errorf("%s in English is %q, the server's is %q", key, en, a.Template())
		}
		if !slices.Equal(names(zh), names(en)) {
			t.Errorf("%s: Chinese names %v, English %v", key, names(zh), names(en))
		}
	}
	for _, k := range append(keys(zhBlock), keys(enBlock)...) {
		if strings.HasPrefix(k, "au.d.") && !known[k] {
			t.Errorf("%s: the server writes no such action", k)
		}
	}
}

var _ http.Handler = Handler()
