package capalert_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

func sprint(r capalert.Request) string { return fmt.Sprintf("%+v", r) }

// FuzzParse feeds arbitrary bytes to the CAP reader. It must never panic;
// every refusal must be a clerk-readable *cx.Error; and whatever it
// accepts must be a broadcast this system can act on. Seeds are every
// message in testdata and testdata/bad.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("testdata", "bad")} {
		names, err := filepath.Glob(filepath.Join(dir, "*.xml"))
		if err != nil || len(names) == 0 {
			f.Fatalf("no seeds in %s: %v", dir, err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := capalert.ParseRequest(bytes.NewReader(data))
		if err != nil {
			if cx.Code(err) != cx.EINVALID && cx.Code(err) != cx.ETOOLARGE {
				t.Fatalf("refused with a non-domain error: %v", err)
			}
			return
		}
		if r.Identifier == "" || r.Sender == "" || r.Sent.IsZero() {
			t.Fatalf("accepted without identifier, sender or sent: %+v", r)
		}
		if r.Test != (r.Status == "Exercise" || r.Status == "Test") || (r.Status != "Actual" && !r.Test) {
			t.Fatalf("status %q, test %v", r.Status, r.Test)
		}
		switch r.MsgType {
		case "Update", "Cancel":
			if len(r.References) == 0 {
				t.Fatalf("%s without references", r.MsgType)
			}
		case "Alert":
		default:
			t.Fatalf("accepted msgType %q", r.MsgType)
		}
		if r.MsgType == "Cancel" && r.Severity == 0 {
			return // a bare Cancel
		}
		if r.Severity < 1 || r.Severity > 4 || !r.Priority.Valid() {
			t.Fatalf("severity %d, priority %q", r.Severity, r.Priority)
		}
		if !r.ExpiresAt.After(r.Sent) {
			t.Fatalf("expires %v, not after sent %v", r.ExpiresAt, r.Sent)
		}
		if r.MsgType != "Cancel" && len(r.Geocodes) == 0 {
			t.Fatal("a broadcast for no area")
		}
		for _, g := range r.Geocodes {
			if c, err := capalert.Geocode(g); err != nil || c != g {
				t.Fatalf("geocode %q: %q, %v", g, c, err)
			}
		}
	})
}
