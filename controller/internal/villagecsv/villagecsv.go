// Package villagecsv reads the village list that county staff keep in a
// spreadsheet: a CSV with the header code,name,township,lat,lon,device.
//
// It is all or nothing: Parse returns every row, or an error listing every
// bad line (line number, field and reason) so a clerk can fix the whole
// file in one go.
package villagecsv

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Columns are the header a village list must have, in any order.
var Columns = []string{"code", "name", "township", "lat", "lon", "device"}

// MaxRows bounds one file; a province has tens of thousands of villages.
const MaxRows = 200_000

// Row is one village of the file.
type Row struct {
	Line     int
	Code     string
	Name     string
	Township string
	Lat, Lon float64
	Device   string
}

var bom = []byte("\ufeff")

// Parse reads a whole village list. The file may be UTF-8 with or without
// a byte-order mark, with LF or CRLF line ends.
func Parse(r io.Reader) ([]Row, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read village list: %w", err)
	}
	data = bytes.TrimPrefix(data, bom)
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalid(data)], []byte("\n"))
		return nil, problems("the file is not UTF-8 text; in Excel use Save As → \"CSV UTF-8 (Comma delimited)\"",
			[]api.RowError{{Line: line, Reason: "not UTF-8 text (perhaps GBK from an older Excel or WPS)", Key: api.ReasonCSVNotUTF8}})
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, problems("the file is empty", []api.RowError{{Line: 1, Reason: "no header and no villages; the first line must be " + strings.Join(Columns, ","), Key: api.ReasonCSVEmpty}})
	}

	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true

	header, err := cr.Read()
	if err != nil {
		return nil, problems("the header line cannot be read", []api.RowError{rowErr(err, 1)})
	}
	col, herrs := parseHeader(header)
	if len(herrs) > 0 {
		return nil, problems("the header line must name the columns "+strings.Join(Columns, ","), herrs)
	}

	var rows []Row
	var errs []api.RowError
	firstLine := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, rowErr(err, 0))
			var pe *csv.ParseError
			if !errors.As(err, &pe) || len(errs) > MaxRows {
				break // not a CSV syntax error: the reader cannot go on
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue // spreadsheets export empty rows as ",,,,,"
		}
		if len(rows)+len(errs) >= MaxRows {
			errs = append(errs, api.RowError{Line: line, Reason: fmt.Sprintf("the file has more than %d villages; split it", MaxRows), Key: api.ReasonCSVTooMany, Params: api.RowParams{Max: MaxRows}})
			break
		}
		if len(rec) != len(header) {
			errs = append(errs, api.RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header has %d (a comma inside a name must be in \"quotes\")", len(rec), len(header)),
				Key: api.ReasonCSVFieldCount, Params: api.RowParams{Got: len(rec), Want: len(header)}})
			continue
		}
		row, rerrs := parseRow(line, rec, col)
		if row.Code != "" {
			if first, dup := firstLine[row.Code]; dup {
				rerrs = append(rerrs, api.RowError{Line: line, Field: "code", Reason: fmt.Sprintf("code %s is already on line %d", row.Code, first),
					Key: api.ReasonCSVDuplicate, Params: api.RowParams{Value: row.Code, Line: first}})
			} else {
				firstLine[row.Code] = line
			}
		}
		if len(rerrs) > 0 {
			errs = append(errs, rerrs...)
			continue
		}
		rows = append(rows, row)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b api.RowError) int { return a.Line - b.Line })
		msg := fmt.Sprintf("%d lines of the village list have problems; nothing was imported", lineCount(errs))
		if lineCount(errs) == 1 {
			msg = "1 line of the village list has a problem; nothing was imported"
		}
		return nil, problems(msg, errs)
	}
	if len(rows) == 0 {
		return nil, problems("the file has a header but no villages", []api.RowError{{Line: 2, Reason: "no villages after the header", Key: api.ReasonCSVNoVillages}})
	}
	return rows, nil
}

func problems(msg string, details []api.RowError) *cx.Error {
	return &cx.Error{Code: cx.EINVALID, Message: msg, Details: details, Reason: api.ReasonCSVInvalid, Params: cx.Params("lines", lineCount(details))}
}

// lineCount is how many lines the problems are on (the header's missing
// columns, say, are several problems on one line).
func lineCount(details []api.RowError) int {
	lines := map[int]bool{}
	for _, e := range details {
		lines[e.Line] = true
	}
	return len(lines)
}

func rowErr(err error, line int) api.RowError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		key := api.ReasonCSVSyntax
		if errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote) {
			key = api.ReasonCSVQuote
		}
		return api.RowError{Line: pe.StartLine, Reason: "CSV syntax: " + pe.Err.Error(), Key: key}
	}
	return api.RowError{Line: line, Reason: err.Error(), Key: api.ReasonCSVSyntax}
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// parseHeader maps each required column to its index.
func parseHeader(h []string) (map[string]int, []api.RowError) {
	col := map[string]int{}
	var errs []api.RowError
	for i, name := range h {
		n := strings.ToLower(strings.TrimSpace(name))
		switch {
		case !slices.Contains(Columns, n):
			errs = append(errs, api.RowError{Line: 1, Field: name, Reason: fmt.Sprintf("unknown column %q; the columns are %s", name, strings.Join(Columns, ",")),
				Key: api.ReasonCSVColumnUnknown, Params: api.RowParams{Value: name}})
		case hasKey(col, n):
			errs = append(errs, api.RowError{Line: 1, Field: n, Reason: fmt.Sprintf("column %q appears twice", n), Key: api.ReasonCSVColumnTwice, Params: api.RowParams{Value: n}})
		default:
			col[n] = i
		}
	}
	for _, c := range Columns {
		if !hasKey(col, c) {
			errs = append(errs, api.RowError{Line: 1, Field: c, Reason: fmt.Sprintf("column %q is missing", c), Key: api.ReasonCSVColumnMissing, Params: api.RowParams{Value: c}})
		}
	}
	return col, errs
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

func parseRow(line int, rec []string, col map[string]int) (Row, []api.RowError) {
	get := func(c string) string { return strings.TrimSpace(rec[col[c]]) }
	row := Row{Line: line, Name: get("name"), Township: get("township")}
	var errs []api.RowError
	bad := func(field, key string, p api.RowParams, format string, args ...any) {
		errs = append(errs, api.RowError{Line: line, Field: field, Reason: fmt.Sprintf(format, args...), Key: key, Params: p})
	}

	switch code := get("code"); {
	case api.ValidVillageCode(code):
		row.Code = code
	case code == "":
		bad("code", api.ReasonCSVCodeEmpty, api.RowParams{}, "is empty; give the 12-digit administrative-division code")
	case strings.ContainsAny(code, "Ee.") && len(code) < 12:
		bad("code", api.ReasonCSVCodeShortened, api.RowParams{Value: code}, "%q looks like a number Excel shortened; format the column as Text and type the 12 digits again", code)
	default:
		bad("code", api.ReasonCSVCodeInvalid, api.RowParams{Value: code}, "%q is not a 12-digit administrative-division code", code)
	}
	checkName("name", row.Name, bad)
	checkName("township", row.Township, bad)
	row.Lat = coord(get("lat"), 90, "lat", bad)
	row.Lon = coord(get("lon"), 180, "lon", bad)
	switch d := strings.ToLower(get("device")); d {
	case playlists.DeviceAgent, playlists.DeviceManual:
		row.Device = d
	default:
		bad("device", api.ReasonCSVDevice, api.RowParams{Value: get("device")}, "%q must be %q (a Cunxiang box) or %q (no box: the broadcaster confirms by hand)", get("device"), playlists.DeviceAgent, playlists.DeviceManual)
	}
	return row, errs
}

// MaxNameChars bounds a village's or township's name, in characters: the
// longest real names are a few dozen; the console, reports and printed
// lists lay them out in a column.
const MaxNameChars = 100

// checkName refuses an empty name, an overlong one, and one with control
// characters (NUL, line breaks, tabs), which no real name has and which
// break logs, reports and the screens that show them.
func checkName(field, s string, bad func(field, key string, p api.RowParams, format string, args ...any)) {
	if s == "" {
		bad(field, api.ReasonCSVFieldEmpty, api.RowParams{}, "is empty")
		return
	}
	if n := utf8.RuneCountInString(s); n > MaxNameChars {
		bad(field, api.ReasonCSVNameTooLong, api.RowParams{N: n, Max: MaxNameChars}, "is %d characters long; at most %d are allowed", n, MaxNameChars)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			bad(field, api.ReasonCSVNameControl, api.RowParams{}, "contains the control character U+%04X; names are plain text on one line", r)
			return
		}
	}
}

func coord(s string, limit float64, field string, bad func(field, key string, p api.RowParams, format string, args ...any)) float64 {
	if s == "" {
		bad(field, api.ReasonCSVFieldEmpty, api.RowParams{}, "is empty")
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		bad(field, api.ReasonCSVNotNumber, api.RowParams{Value: s}, "%q is not a number in decimal degrees, such as 39.9042", s)
		return 0
	}
	if v < -limit || v > limit {
		bad(field, api.ReasonCSVOutOfRange, api.RowParams{Value: s, Limit: limit}, "%v is outside -%v..%v", v, limit, limit)
	}
	return v
}

// CheckFields checks one village given field by field (the columns of
// Columns, as text), by the same rules as a row of a file: what an edit
// of one village in the console must pass too. Errors carry line 0.
func CheckFields(fields map[string]string) (Row, []api.RowError) {
	col := make(map[string]int, len(Columns))
	rec := make([]string, len(Columns))
	for i, c := range Columns {
		col[c], rec[i] = i, fields[c]
	}
	return parseRow(0, rec, col)
}
