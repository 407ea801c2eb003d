package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
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

// TestErrorsHaveReasons: every refusal the controller builds carries a
// reason key, so that TestReasonsHaveTexts can make sure the console says
// it in Chinese. It reads the source of the controller and of playlists:
// a cx.Error (cx.Invalid, cx.Errorf or a literal) must be given its
// reason with .With(api.Reason…, …) where it is made, or in the literal;
// so must a playlists.FieldError, the HTTP layer's httpError and a CSV
// line's api.RowError (Key). Only errors that are not cx.Errors (a failed
// disk, a lost database) reach people without one: the server answers
// them with the reason "internal", which the console has a text for.
func TestErrorsHaveReasons(t *testing.T) {
	n := 0
	for _, dir := range []string{"../..", "../../../playlists"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && d.Name() == "testdata":
				return fs.SkipDir
			case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			for _, p := range refusalsWithoutReason(f) {
				t.Errorf("%s: a refusal without a reason key: give it one with .With(api.Reason…) and a Chinese and an English text in i18n-errors.js", fset.Position(p))
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 80 {
		t.Fatalf("read only %d files", n)
	}
}

// refusalsWithoutReason returns where f makes an error for people
// without a reason key (see TestErrorsHaveReasons).
func refusalsWithoutReason(f *ast.File) []token.Pos {
	pkg := f.Name.Name
	// named reports whether e is inPkg.name, or name inside package inPkg.
	named := func(e ast.Expr, inPkg, name string) bool {
		switch e := e.(type) {
		case *ast.Ident:
			return pkg == inPkg && e.Name == name
		case *ast.SelectorExpr:
			x, ok := e.X.(*ast.Ident)
			return ok && x.Name == inPkg && e.Sel.Name == name
		}
		return false
	}
	// isReason accepts a Reason… constant, or a variable that passes one
	// on (a helper's parameter, another error's Reason); never a string.
	isReason := func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.SelectorExpr:
			return strings.HasPrefix(e.Sel.Name, "Reason")
		case *ast.Ident:
			return e.Name != "nil"
		}
		return false
	}
	// with maps what .With(…) is called on to the reason given.
	with := map[token.Pos]ast.Expr{}
	ast.Inspect(f, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "With" {
				var r ast.Expr = &ast.BasicLit{}
				if len(call.Args) > 0 {
					r = call.Args[0]
				}
				x := ast.Unparen(sel.X)
				if u, ok := x.(*ast.UnaryExpr); ok { // (&cx.Error{…}).With(…)
					x = u.X
				}
				with[x.Pos()] = r
			}
		}
		return true
	})
	given := func(n ast.Node) bool { r, ok := with[n.Pos()]; return ok && isReason(r) }
	var bad []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			// The constructors themselves; their callers are checked.
			return pkg != "cx" || n.Name.Name != "Errorf" && n.Name.Name != "Invalid"
		case *ast.CallExpr:
			if (named(n.Fun, "cx", "Errorf") || named(n.Fun, "cx", "Invalid")) && !given(n) {
				bad = append(bad, n.Pos())
			}
		case *ast.CompositeLit:
			fields := map[string]ast.Expr{}
			for _, e := range n.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok {
						fields[k.Name] = kv.Value
					}
				}
			}
			var key string
			switch {
			case named(n.Type, "cx", "Error"), named(n.Type, "playlists", "FieldError"):
				key = "Reason"
			case named(n.Type, "httpapi", "httpError"):
				key = "reason"
			case named(n.Type, "api", "RowError"):
				// The details of an "in use" refusal name a use, not a problem.
				if f, ok := fields["Field"].(*ast.Ident); ok && strings.HasPrefix(f.Name, "Use") {
					return true
				}
				key = "Key"
			default:
				return true
			}
			if r, ok := fields[key]; !(ok && isReason(r)) && !given(n) {
				bad = append(bad, n.Pos())
			}
		}
		return true
	})
	return bad
}

// TestRefusalsWithoutReason checks the check itself, on small sources.
func TestRefusalsWithoutReason(t *testing.T) {
	tests := []struct {
		pkg, src string
		bad      int
	}{
		{"store", `cx.Invalid("note", "is too long")`, 1},
		{"store", `cx.Invalid("note", "is too long").With(api.ReasonNoteTooLong, "max", 500)`, 0},
		{"store", `cx.Errorf(cx.ENOTFOUND, "no %d", id).With("not_found")`, 1},
		{"store", `(cx.Errorf(cx.ECONFLICT, "taken")).With(reason)`, 0},
		{"store", `&cx.Error{Code: cx.EINTERNAL, Message: "not sent"}`, 1},
		{"store", `(&cx.Error{Code: cx.EINTERNAL, Message: "not sent"}).With(api.ReasonInternal)`, 0},
		{"store", `&cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonSessionExpired}`, 0},
		{"store", `slog.Default().With("component", "store")`, 0},
		{"playlists", `&FieldError{Field: "name", Message: "empty"}`, 1},
		{"httpapi", `&httpError{status: 405, msg: "no"}`, 1},
		{"httpapi", `&httpError{status: 405, reason: api.ReasonNoEndpoint}`, 0},
		{"villagecsv", `api.RowError{Line: 2, Reason: "is empty"}`, 1},
		{"villagecsv", `api.RowError{Line: 2, Reason: "is empty", Key: api.ReasonCSVFieldEmpty}`, 0},
		{"store", `api.RowError{Field: UseSchedule, Line: 3}`, 0},
	}
	for _, tt := range tests {
		f, err := parser.ParseFile(token.NewFileSet(), "x.go", "package "+tt.pkg+"\nvar x = "+tt.src+"\n", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(refusalsWithoutReason(f)); got != tt.bad {
			t.Errorf("%s: %d refusals without a reason, want %d", tt.src, got, tt.bad)
		}
	}
}
