// Package csvout writes the CSV files the controller hands out (the
// coverage reports), safe to open in Excel or WPS.
//
// A spreadsheet runs a cell that begins with =, +, -, @, a tab or a
// carriage return as a formula (OWASP "CSV injection"): an audio titled
// =1+2, or a village named =HYPERLINK(...), would become live in a
// county manager's spreadsheet. Every such cell is written with a single
// quote in front, which spreadsheets show as text. A cell that is a plain
// decimal number (-12.5, +3) is left alone: it is read as that number, not
// a formula, and numeric columns such as loudness stay numbers. A cell
// that itself begins with a single quote gets one more, so Unescape always
// gives back the original text.
package csvout

import (
	"encoding/csv"
	"io"
	"regexp"
	"strings"
)

// Writer is an encoding/csv Writer that neutralises formulas.
type Writer struct {
	w *csv.Writer
}

// New returns a Writer to w.
func New(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write writes one record, each cell passed through Escape.
func (w *Writer) Write(record []string) error {
	out := make([]string, len(record))
	for i, s := range record {
		out[i] = Escape(s)
	}
	return w.w.Write(out)
}

// Flush writes what is buffered; Error reports any error of a Write or
// Flush.
func (w *Writer) Flush() { w.w.Flush() }

// Error reports any error of a previous Write or Flush.
func (w *Writer) Error() error { return w.w.Error() }

// number is a plain decimal number, as spreadsheets read one.
var number = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// Escape returns the cell as it is written: with a single quote in front
// if it would otherwise begin with a formula character (or a quote).
func Escape(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r'", rune(s[0])) || number.MatchString(s) {
		return s
	}
	return "'" + s
}

// Unescape is the inverse of Escape: the original text of a cell read
// back from a file this package wrote.
func Unescape(s string) string {
	return strings.TrimPrefix(s, "'")
}
