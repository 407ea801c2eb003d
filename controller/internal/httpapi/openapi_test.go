package httpapi

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// openAPIPath is api/openapi.yaml, from this package's directory.
var openAPIPath = filepath.Join("..", "..", "..", "api", "openapi.yaml")

type openAPIDoc struct {
	OpenAPI string                               `yaml:"openapi"`
	Paths   map[string]map[string]map[string]any `yaml:"paths"`
}

// TestOpenAPICoversRoutes walks gin's registered routes and checks that each
// is documented in api/openapi.yaml, and that the document names no route
// the server does not have.
func TestOpenAPICoversRoutes(t *testing.T) {
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	e := newEnv(t)
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	served := map[string]bool{}
	for _, r := range e.srv.engine.Routes() {
		path := param.ReplaceAllString(r.Path, "{$1}")
		method := strings.ToLower(r.Method)
		served[method+" "+path] = true
		op, ok := doc.Paths[path][method]
		if !ok {
			t.Errorf("%s %s is not in openapi.yaml", r.Method, path)
			continue
		}
		if _, ok := op["responses"]; !ok {
			t.Errorf("%s %s documents no responses", r.Method, path)
		}
		// x-roles is the access table's rule, word for word.
		rule := access[r.Method+" "+r.Path]
		var documented []string
		if xs, ok := op["x-roles"].([]any); ok {
			for _, x := range xs {
				documented = append(documented, fmt.Sprint(x))
			}
		}
		if !slices.Equal(documented, rule.roles) {
			t.Errorf("%s %s: x-roles %v, but the access table admits %v", r.Method, path, documented, rule.roles)
		}
		if sec, ok := op["security"].([]any); rule.public != (ok && len(sec) == 0) {
			t.Errorf("%s %s: public is %v in the access table but its security is %v", r.Method, path, rule.public, op["security"])
		}
	}
	var extra []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if !served[method+" "+path] {
				extra = append(extra, method+" "+path)
			}
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("openapi.yaml documents routes the server does not have: %v", extra)
	}
	if len(served) < 20 {
		t.Fatalf("only %d routes registered", len(served))
	}
}

// TestOpenAPIRefsResolve: the document loads and validates as OpenAPI 3
// (every $ref resolves, every example fits its schema); contract_test.go
// then holds the handlers' answers to it.
func TestOpenAPIRefsResolve(t *testing.T) {
	if _, err := contract(); err != nil {
		t.Fatal(err)
	}
}
