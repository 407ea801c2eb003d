// Package apitest checks HTTP bodies against api/openapi.yaml, for tests:
// the golden examples of package api, and every answer the controller's
// handlers give in their own tests. It uses kin-openapi, so only tests
// may import it (package api itself stays standard library only; the
// controller's dependency test keeps it out of the binary).
package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Contract is a loaded and validated OpenAPI document.
type Contract struct {
	Doc    *openapi3.T
	routes []route
}

type route struct {
	re   *regexp.Regexp
	path string
}

// Load reads and validates the document at path (its examples included).
func Load(path string) (*Contract, error) {
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate %s: %w", path, err)
	}
	c := &Contract{Doc: doc}
	param := regexp.MustCompile(`\\\{[^/]+\\\}`)
	for _, p := range doc.Paths.InMatchingOrder() {
		c.routes = append(c.routes, route{re: regexp.MustCompile("^" + param.ReplaceAllString(regexp.QuoteMeta(p), "[^/]+") + "$"), path: p})
	}
	return c, nil
}

// Route is the documented path template a request path matches
// ("/api/v1/broadcasts/12" → "/api/v1/broadcasts/{id}"), or "".
func (c *Contract) Route(path string) string {
	for _, r := range c.routes {
		if r.re.MatchString(path) {
			return r.path
		}
	}
	return ""
}

// ErrUndocumented marks a body whose operation, status or media type the
// document does not have.
type ErrUndocumented struct{ What string }

func (e *ErrUndocumented) Error() string { return e.What + " is not in openapi.yaml" }

// Schema is the schema the document gives the JSON body of an operation:
// its request body if status is "request", else its answer of that status.
func (c *Contract) Schema(method, path, status string) (*openapi3.Schema, error) {
	item := c.Doc.Paths.Value(path)
	if item == nil {
		return nil, &ErrUndocumented{What: "path " + path}
	}
	op := item.GetOperation(strings.ToUpper(method))
	if op == nil {
		return nil, &ErrUndocumented{What: method + " " + path}
	}
	var content openapi3.Content
	if status == "request" {
		if op.RequestBody == nil || op.RequestBody.Value == nil {
			return nil, &ErrUndocumented{What: "the request body of " + method + " " + path}
		}
		content = op.RequestBody.Value.Content
	} else {
		r := op.Responses.Value(status)
		if r == nil {
			r = op.Responses.Value(status[:1] + "XX")
		}
		if r == nil {
			r = op.Responses.Default()
		}
		if r == nil || r.Value == nil {
			return nil, &ErrUndocumented{What: "the " + status + " answer of " + method + " " + path}
		}
		content = r.Value.Content
	}
	mt := content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil, &ErrUndocumented{What: "a JSON body of " + method + " " + path + " " + status}
	}
	return mt.Schema.Value, nil
}

// Check validates a JSON body of an operation (status "request" for the
// request body): everything openapi3 checks (types, required, nullable,
// enums, patterns, formats, ranges), and that the body carries no property
// the schema does not declare, so that a field renamed on either side
// fails.
func (c *Contract) Check(method, path, status string, body []byte) error {
	schema, err := c.Schema(method, path, status)
	var undocumented *ErrUndocumented
	if errors.As(err, &undocumented) && anyRoute[status] {
		schema, err = c.component("ErrorBody")
	}
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s %s %s: %w", method, path, status, err)
	}
	opts := []openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.EnableFormatValidation()}
	if status == "request" {
		opts = append(opts, openapi3.VisitAsRequest())
	} else {
		opts = append(opts, openapi3.VisitAsResponse())
	}
	var problems []string
	if err := schema.VisitJSON(v, opts...); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, Undeclared(schema, v, "")...)
	if len(problems) > 0 {
		return fmt.Errorf("%s %s %s:\n  %s", method, path, status, strings.Join(problems, "\n  "))
	}
	return nil
}

// anyRoute are the statuses any route may answer, with an ErrorBody,
// that the document does not repeat per operation: a fault of ours, and a
// method the path does not have.
var anyRoute = map[string]bool{"500": true, "405": true}

func (c *Contract) component(name string) (*openapi3.Schema, error) {
	s := c.Doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		return nil, &ErrUndocumented{What: "components/schemas/" + name}
	}
	return s.Value, nil
}

// Undeclared lists the properties of v, at any depth, that schema does
// not declare (through properties or allOf) where the object allows no
// additional properties. openapi3 lets them through: the document's
// objects do not say additionalProperties: false.
func Undeclared(schema *openapi3.Schema, v any, at string) []string {
	switch v := v.(type) {
	case map[string]any:
		props, open := declared(schema)
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			switch ps, ok := props[k]; {
			case ok:
				out = append(out, Undeclared(ps, v[k], at+"/"+k)...)
			case open != nil:
				out = append(out, Undeclared(open, v[k], at+"/"+k)...)
			case !openAny(schema):
				out = append(out, fmt.Sprintf("%s/%s: not in openapi.yaml", at, k))
			}
		}
		return out
	case []any:
		items := itemsOf(schema)
		if items == nil {
			return nil
		}
		var out []string
		for i, x := range v {
			out = append(out, Undeclared(items, x, fmt.Sprintf("%s[%d]", at, i))...)
		}
		return out
	}
	return nil
}

// declared gathers an object schema's properties through allOf, and the
// schema of its additional properties, if it names one.
func declared(s *openapi3.Schema) (map[string]*openapi3.Schema, *openapi3.Schema) {
	props := map[string]*openapi3.Schema{}
	var open *openapi3.Schema
	var walk func(*openapi3.Schema)
	walk = func(s *openapi3.Schema) {
		for k, p := range s.Properties {
			if p != nil && p.Value != nil {
				props[k] = p.Value
			}
		}
		if ap := s.AdditionalProperties.Schema; ap != nil && ap.Value != nil {
			open = ap.Value
		}
		for _, sub := range s.AllOf {
			if sub != nil && sub.Value != nil {
				walk(sub.Value)
			}
		}
	}
	walk(s)
	return props, open
}

// openAny: the object takes any property (additionalProperties: true).
func openAny(s *openapi3.Schema) bool {
	if has := s.AdditionalProperties.Has; has != nil && *has {
		return true
	}
	for _, sub := range s.AllOf {
		if sub != nil && sub.Value != nil && openAny(sub.Value) {
			return true
		}
	}
	return false
}

func itemsOf(s *openapi3.Schema) *openapi3.Schema {
	if s.Items != nil && s.Items.Value != nil {
		return s.Items.Value
	}
	for _, sub := range s.AllOf {
		if sub != nil && sub.Value != nil {
			if it := itemsOf(sub.Value); it != nil {
				return it
			}
		}
	}
	return nil
}
