package csvout_test

import (
	"bytes"
	"encoding/csv"
	"io"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/csvout"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"东村", "东村"},
		{"=1+2", "'=1+2"},
		{"=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"},
		{"+1+2", "'+1+2"},
		{"-1+2", "'-1+2"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"'quoted", "''quoted"},
		{"-12.5", "-12.5"},
		{"+3", "+3"},
		{"-", "'-"},
		{"1e5", "1e5"},
		{"-1e5", "-1e5"},
		{"-.5", "-.5"},
		{"a=b", "a=b"},
	} {
		if got := csvout.Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := csvout.Unescape(csvout.Escape(tc.in)); got != tc.in {
			t.Errorf("Unescape(Escape(%q)) = %q", tc.in, got)
		}
	}
}

// FuzzWriter writes a record of arbitrary cells and reads the file back as
// a spreadsheet would: no cell may start with a formula character unless
// it is a plain number, and every cell's text must be recoverable.
func FuzzWriter(f *testing.F) {
	for _, s := range []string{"=1+2", "-12.5", "@x", "\t=x", "'=x", "a,b\"c\nd", "=HYPERLINK(\"u\",\"t\")", "+", ""} {
		f.Add(s, "村")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var buf bytes.Buffer
		w := csvout.New(&buf)
		if err := w.Write([]string{a, b, "-3"}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if err := w.Error(); err != nil {
			t.Fatal(err)
		}
		r := csv.NewReader(&buf)
		r.FieldsPerRecord = -1
		got, err := r.Read()
		if err != nil {
			t.Fatalf("reading back %q: %v", buf.String(), err)
		}
		if _, err := r.Read(); err != io.EOF {
			t.Fatalf("more than one record in %q", buf.String())
		}
		// encoding/csv turns \r\n inside a quoted field into \n, as
		// spreadsheets do; compare with that in mind.
		want := []string{a, b, "-3"}
		if len(got) != len(want) {
			t.Fatalf("%d cells, want %d: %q", len(got), len(want), got)
		}
		for i, cell := range got {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) && csvout.Escape(cell) != cell {
				t.Errorf("cell %d reads %q: a formula", i, cell)
			}
			orig := strings.ReplaceAll(want[i], "\r\n", "\n")
			if u := csvout.Unescape(cell); u != orig && !(i < 2 && !csvRoundTrips(want[i])) {
				t.Errorf("cell %d: wrote %q, read back %q", i, want[i], u)
			}
		}
	})
}

// csvRoundTrips reports whether encoding/csv itself gives s back (it
// cannot keep a lone \r, or \r\n, inside a field).
func csvRoundTrips(s string) bool {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{s}) //nolint:errcheck
	w.Flush()
	got, err := csv.NewReader(&buf).Read()
	return err == nil && len(got) == 1 && got[0] == s
}
