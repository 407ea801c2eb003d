package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// additions returns the source of what a file of texts (i18n-errors.js,
// i18n-admin.js, …) adds to the Chinese and to the English dictionary.
func additions(tb testing.TB, file string) (zh, en string) {
	tb.Helper()
	src, err := static.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	s := string(src)
	azh, aen := strings.Index(s, "Object.assign(dict.zh, {"), strings.Index(s, "Object.assign(dict.en, {")
	if azh < 0 || aen < 0 {
		tb.Fatalf("%s: no zh and en additions", file)
	}
	end := strings.Index(s[aen:], "\n});")
	if end < 0 {
		tb.Fatalf("%s: the en additions do not end", file)
	}
	return s[azh:aen], s[aen : aen+end]
}

// errorDicts returns the keys that i18n-errors.js adds to the Chinese and
// the English dictionaries.
func errorDicts(tb testing.TB) (zh, en []string) {
	tb.Helper()
	z, e := additions(tb, "static/i18n-errors.js")
	return keys(z), keys(e)
}

// serverReasons returns the values of every Reason… constant the server
// can answer with: api/reasons.go and the domain's playlists/reasons.go.
func serverReasons(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, f := range []string{"../../../api/reasons.go", "../../../playlists/reasons.go"} {
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
			return true
		})
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestReasonsHaveTexts: every reason key the server can return has a
// Chinese and an English text in the console, so no refusal reaches a
// Chinese clerk in English.
func TestReasonsHaveTexts(t *testing.T) {
	reasons := serverReasons(t)
	if len(reasons) < 80 {
		t.Fatalf("found only %d reasons: %v", len(reasons), reasons)
	}
	zh, en := errorDicts(t)
	for _, r := range reasons {
		if !slices.Contains(zh, "srv."+r) {
			t.Errorf("reason %s has no Chinese text in i18n-errors.js", r)
		}
		if !slices.Contains(en, "srv."+r) {
			t.Errorf("reason %s has no English text in i18n-errors.js", r)
		}
	}
}
