package web

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cssRules reads app.css into selector → property → value (the first
// declaration of each property wins: the base rule before any @media
// override), with var(--x) resolved from :root.
func cssRules(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := static.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	src := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(string(b), "")
	rules := map[string]map[string]string{}
	for _, m := range regexp.MustCompile(`([^{}]+)\{([^{}]*)\}`).FindAllStringSubmatch(src, -1) {
		for _, sel := range strings.Split(m[1], ",") {
			sel = strings.Join(strings.Fields(sel), " ")
			if rules[sel] == nil {
				rules[sel] = map[string]string{}
			}
			for _, d := range strings.Split(m[2], ";") {
				k, v, ok := strings.Cut(d, ":")
				k = strings.TrimSpace(k)
				if !ok || k == "" {
					continue
				}
				if _, seen := rules[sel][k]; !seen {
					rules[sel][k] = strings.TrimSpace(v)
				}
			}
		}
	}
	vars := regexp.MustCompile(`var\((--[\w-]+)\)`)
	for _, props := range rules {
		for k, v := range props {
			props[k] = vars.ReplaceAllStringFunc(v, func(s string) string {
				return rules[":root"][vars.FindStringSubmatch(s)[1]]
			})
		}
	}
	return rules
}

type rgba struct{ r, g, b, a float64 }

// parseColor reads #rgb, #rrggbb and #rrggbbaa, the forms app.css uses.
func parseColor(s string) (rgba, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	if len(s) == 6 {
		s += "ff"
	}
	if len(s) != 8 {
		return rgba{}, fmt.Errorf("not a hex colour: %q", s)
	}
	var c [4]float64
	for i := range c {
		n, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return rgba{}, err
		}
		c[i] = float64(n) / 255
	}
	return rgba{c[0], c[1], c[2], c[3]}, nil
}

// over composites c onto an opaque background.
func (c rgba) over(bg rgba) rgba {
	mix := func(a, b float64) float64 { return a*c.a + b*(1-c.a) }
	return rgba{mix(c.r, bg.r), mix(c.g, bg.g), mix(c.b, bg.b), 1}
}

// luminance is WCAG 2.1's relative luminance.
func (c rgba) luminance() float64 {
	f := func(x float64) float64 {
		if x <= 0.03928 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	return 0.2126*f(c.r) + 0.7152*f(c.g) + 0.0722*f(c.b)
}

func contrast(a, b rgba) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// Minimum ratios of WCAG 2.1 AA: 1.4.3 (text), 1.4.3 large text and
// 1.4.11 (user-interface components and graphics).
const (
	textAA  = 4.5
	largeAA = 3.0
	uiAA    = 3.0
)

// TestContrast checks every foreground/background pair the console
// declares in app.css (and the map's status colours in map.js) against
// WCAG 2.1 AA. A pair names the rule and property each colour comes from,
// so changing a colour in app.css changes what is checked; a background
// list is composited top first (translucent highlights over the bar).
func TestContrast(t *testing.T) {
	rules := cssRules(t)
	type ref struct{ sel, prop string }
	pairs := []struct {
		what string
		fg   ref
		bg   []ref
		min  float64
	}{
		{"body text", ref{":root", "--fg"}, []ref{{":root", "--bg"}}, textAA},
		{"text on a card", ref{":root", "--fg"}, []ref{{":root", "--card"}}, textAA},
		{"muted text on a card", ref{":root", "--muted"}, []ref{{":root", "--card"}}, textAA},
		{"muted text on the page", ref{":root", "--muted"}, []ref{{":root", "--bg"}}, textAA},
		{"header brand", ref{".bar", "color"}, []ref{{".bar", "background"}}, textAA},
		{"header nav link", ref{".bar nav a", "color"}, []ref{{".bar", "background"}}, textAA},
		{"header nav link, current", ref{".bar nav a.active", "color"}, []ref{{".bar nav a.active", "background"}, {".bar", "background"}}, textAA},
		{"header emergency link", ref{".bar nav a.nav-em", "color"}, []ref{{".bar", "background"}}, textAA},
		{"header emergency link, current", ref{".bar nav a.nav-em.active", "color"}, []ref{{".bar nav a.nav-em.active", "background"}}, textAA},
		{"header user name", ref{".who", "color"}, []ref{{".bar", "background"}}, textAA},
		{"header 修改密码 link", ref{".bar .link", "color"}, []ref{{".bar", "background"}}, textAA},
		{"header button border", ref{".bar .link", "border-color"}, []ref{{".bar", "background"}}, uiAA},
		{"focus ring in the header", ref{".bar :focus-visible", "outline-color"}, []ref{{".bar", "background"}}, uiAA},
		{"focus ring on a card", ref{":focus-visible", "outline-color"}, []ref{{":root", "--card"}}, uiAA},
		{"primary button", ref{"button.primary", "color"}, []ref{{"button.primary", "background"}}, textAA},
		{"danger button", ref{"button.danger", "color"}, []ref{{"button.danger", "background"}}, textAA},
		{"button border", ref{"button", "border-color"}, []ref{{":root", "--card"}}, uiAA},
		{"input border", ref{"input", "border-color"}, []ref{{":root", "--card"}}, uiAA},
		{"disabled button text", ref{"button:disabled", "color"}, []ref{{"button:disabled", "background"}}, textAA},
		{"error text", ref{".error", "color"}, []ref{{":root", "--card"}}, textAA},
		{"ok text", ref{".ok", "color"}, []ref{{":root", "--card"}}, textAA},
		{"ok text on the page", ref{".ok", "color"}, []ref{{":root", "--bg"}}, textAA},
		{"emergency warning", ref{".emergency .warn", "color"}, []ref{{".emergency .warn", "background"}}, textAA},
		{"emergency title", ref{".emergency h1", "color"}, []ref{{".emergency", "background"}}, largeAA},
		{"emergency legend", ref{"legend", "color"}, []ref{{".emergency", "background"}}, textAA},
		{"muted text in the emergency form", ref{":root", "--muted"}, []ref{{".emergency", "background"}}, textAA},
		{"big cancel button", ref{".cancel-big", "color"}, []ref{{".cancel-big", "background"}}, largeAA},
		{"big cancel button, armed", ref{".cancel-big", "color"}, []ref{{".cancel-big.armed", "background"}}, largeAA},
		{"confirm-big", ref{"button.confirm-big", "color"}, []ref{{"button.confirm-big", "background"}}, largeAA},
		{"confirm-big, armed", ref{"button.confirm-big", "color"}, []ref{{"button.confirm-big.armed", "background"}}, largeAA},
		{"confirm-big, done", ref{"button.confirm-big", "color"}, []ref{{"button.confirm-big.done", "background"}}, largeAA},
		{"result badge", ref{":root", "--fg"}, []ref{{".result .badge", "background"}}, textAA},
		{"town label on the map", ref{"#map .town-label", "fill"}, []ref{{"#map .hull", "fill"}}, textAA},
		{"map marker outline on a township", ref{"#map .vm circle.v", "stroke"}, []ref{{"#map .hull", "fill"}}, uiAA},
		{"map marker outline off a township", ref{"#map .vm circle.v", "stroke"}, []ref{{".map-wrap", "background"}}, uiAA},
		{"map focus ring", ref{"#map .vm .ring", "stroke"}, []ref{{"#map .hull", "fill"}}, uiAA},
		{"focus ring on the schedule form's map", ref{"#sc-map .vm .ring", "stroke"}, []ref{{"#sc-map .hull", "fill"}}, uiAA},
		{"zero in a report", ref{".rtable td.zero", "color"}, []ref{{":root", "--card"}}, textAA},
		{"chip text", ref{":root", "--fg"}, []ref{{".chips li", "background"}}, textAA},
		{"approval detail label", ref{".ap-details dt", "color"}, []ref{{".ap-list li", "background"}}, textAA},
		{"count badge", ref{".count-badge", "color"}, []ref{{".count-badge", "background"}}, textAA},
		{"test note", ref{".test-note", "color"}, []ref{{".test-note", "background"}}, textAA},
		{"loading note", ref{".loading", "color"}, []ref{{":root", "--bg"}}, textAA},
	}
	get := func(r ref) (rgba, error) {
		v, ok := rules[r.sel][r.prop]
		if !ok {
			return rgba{}, fmt.Errorf("app.css declares no %s in %q", r.prop, r.sel)
		}
		// A shorthand such as "border: 1px solid #fff" or "outline: 3px solid #ffbf47": its colour.
		if f := strings.Fields(v); len(f) > 1 {
			v = f[len(f)-1]
		}
		c, err := parseColor(v)
		if err != nil {
			return rgba{}, fmt.Errorf("%s { %s }: %v", r.sel, r.prop, err)
		}
		return c, nil
	}
	white := rgba{1, 1, 1, 1}
pairs:
	for _, p := range pairs {
		bg := white
		for i := len(p.bg) - 1; i >= 0; i-- {
			c, err := get(p.bg[i])
			if err != nil {
				t.Errorf("%s: %v", p.what, err)
				continue pairs
			}
			bg = c.over(bg)
		}
		fg, err := get(p.fg)
		if err != nil {
			t.Errorf("%s: %v", p.what, err)
			continue
		}
		fg = fg.over(bg)
		if r := contrast(fg, bg); r < p.min {
			t.Errorf("%s: contrast %.2f:1, want at least %.1f:1", p.what, r, p.min)
		} else {
			t.Logf("%s: %.2f:1", p.what, r)
		}
	}
}

// TestMarkerContrast checks each map status colour (map.js) against the
// glyph drawn on it (at least 3:1, a graphic object), and that no two
// statuses share a glyph.
func TestMarkerContrast(t *testing.T) {
	b, err := static.ReadFile("static/map.js")
	if err != nil {
		t.Fatal(err)
	}
	block := func(name string) map[string]string {
		m := regexp.MustCompile(`(?s)export const ` + name + ` = \{(.*?)\n\};`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("map.js has no %s", name)
		}
		out := map[string]string{}
		for _, e := range regexp.MustCompile(`(\w+): *\{?\s*(?:ink: *)?'([^']*)'`).FindAllSubmatch(m[1], -1) {
			out[string(e[1])] = string(e[2])
		}
		return out
	}
	colors, ink := block("COLORS"), block("GLYPHS")
	if len(colors) < 12 {
		t.Fatalf("map.js COLORS: %d statuses", len(colors))
	}
	for k, c := range colors {
		if k == "none" {
			continue
		}
		i, ok := ink[k]
		if !ok {
			t.Errorf("status %s has no glyph", k)
			continue
		}
		fc, err := parseColor(c)
		if err != nil {
			t.Fatal(err)
		}
		ic, err := parseColor(i)
		if err != nil {
			t.Fatal(err)
		}
		if r := contrast(ic, fc); r < uiAA {
			t.Errorf("status %s: glyph %s on %s is %.2f:1, want at least 3:1", k, i, c, r)
		}
	}
	ds := regexp.MustCompile(`(\w+): *\{ *ink: *'[^']*', *d: *'([^']*)'`).FindAllSubmatch(b, -1)
	seen := map[string]string{}
	for _, d := range ds {
		if other, dup := seen[string(d[2])]; dup {
			t.Errorf("statuses %s and %s share a glyph", other, d[1])
		}
		seen[string(d[2])] = string(d[1])
	}
	if len(seen) != len(colors)-1 {
		t.Errorf("%d distinct glyphs for %d statuses", len(seen), len(colors)-1)
	}
}
