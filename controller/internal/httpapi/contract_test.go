package httpapi

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/cunxiang/cunxiang/api/apitest"
)

// contract is api/openapi.yaml, loaded once for every test.
var contract = sync.OnceValues(func() (*apitest.Contract, error) { return apitest.Load(openAPIPath) })

// checkContract holds every JSON answer the handlers give in this
// package's tests to the schema openapi.yaml documents for its route and
// status, and every JSON request body the server accepted (2xx) to the
// documented request schema. So a handler that answers null where the
// document promises a list, a field the document does not know, or a
// status it does not list, fails the test that provoked it.
func checkContract(tb testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	tb.Helper()
	c, err := contract()
	if err != nil {
		tb.Fatal(err)
	}
	route := c.Route(req.URL.Path)
	if route == "" {
		return // not an API route (the console's pages, a 404 probe)
	}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt == "application/json" && len(body) > 0 {
		if err := c.Check(req.Method, route, strconv.Itoa(status), body); err != nil {
			tb.Errorf("the answer does not match openapi.yaml: %v\nbody: %.2000s", err, body)
		}
	}
	if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt == "application/json" && status/100 == 2 && len(reqBody) > 0 {
		var undocumented *apitest.ErrUndocumented
		if err := c.Check(req.Method, route, "request", reqBody); err != nil && !errors.As(err, &undocumented) {
			tb.Errorf("an accepted request does not match openapi.yaml: %v\nbody: %.2000s", err, reqBody)
		} else if undocumented != nil {
			tb.Errorf("%s %s accepted a JSON body, but %v", req.Method, route, err)
		}
	}
}

// readBody reads req's body and puts it back, for checkContract.
func readBody(tb testing.TB, req *http.Request) []byte {
	tb.Helper()
	if req.Body == nil {
		return nil
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		tb.Fatal(err)
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	return b
}
