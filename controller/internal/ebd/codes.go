package ebd

import (
	"fmt"
	"strings"
	"time"
)

// TimeLayout is how the chain writes every time (EBDTime, SendTime,
// RptTime, …): Beijing time with no zone.
const TimeLayout = "2006-01-02 15:04:05"

// Beijing is the zone the chain's times are in.
var Beijing = time.FixedZone("CST", 8*60*60)

// ParseTime reads a time written as TimeLayout, in Beijing time.
func ParseTime(v string) (time.Time, error) {
	t, err := time.ParseInLocation(TimeLayout, v, Beijing)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a time like 2024-07-10 06:30:00", v)
	}
	return t, nil
}

// FormatTime writes t as the chain does: Beijing time, TimeLayout.
func FormatTime(t time.Time) string { return t.In(Beijing).Format(TimeLayout) }

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Resource codes (EBRID) come in two lengths in public use (docs/ebd.md):
// 18 digits, as in the 2018 heartbeat sample ("0103" + the 12-digit area
// code + a 2-digit serial: 010333112400000001), and 23 digits, as in
// GD/J 080-2018 implementations (a 1-digit level + the 12-digit area code
// + 10 digits of type, subtype and serial).
const (
	EBRIDShort = 18
	EBRIDLong  = 23
)

// ValidEBRID reports whether s has the shape of a resource code.
func ValidEBRID(s string) bool {
	return digits(s) && (len(s) == EBRIDShort || len(s) == EBRIDLong)
}

// EBRIDArea returns the 12-digit administrative-division code inside a
// resource code, or "" if s is not one.
func EBRIDArea(s string) string {
	if !ValidEBRID(s) {
		return ""
	}
	if len(s) == EBRIDShort {
		return s[4:16]
	}
	return s[1:13]
}

// ValidEBDID reports whether s has the shape of a packet ID: a 2-digit
// kind ("10" for business packets, "01" for heartbeats), the sender's
// EBRID and a 16-digit sequence number, so 36 or 41 digits.
func ValidEBDID(s string) bool {
	return digits(s) && (len(s) == 2+EBRIDShort+16 || len(s) == 2+EBRIDLong+16)
}

// ValidEBMID reports whether s has the shape of a message ID: the issuing
// platform's EBRID, the date (yyyyMMdd) and a 4-digit sequence number, so
// 30 or 35 digits.
func ValidEBMID(s string) bool {
	return digits(s) && (len(s) == EBRIDShort+12 || len(s) == EBRIDLong+12)
}

// Packet ID kinds: the first two digits of an EBDID.
const (
	KindBusiness  = "10"
	KindHeartbeat = "01"
)

// NewEBDID makes the ID of a packet that src sends: kind, src and seq
// (modulo 10^16) in 16 digits.
func NewEBDID(kind, src string, seq uint64) string {
	return fmt.Sprintf("%s%s%016d", kind, src, seq%1e16)
}

// NewEBMID makes the ID of a message that the platform src issues on the
// given day (in Beijing time), with a daily sequence number (modulo 10^4).
func NewEBMID(src string, day time.Time, seq int) string {
	return fmt.Sprintf("%s%s%04d", src, day.In(Beijing).Format("20060102"), seq%10000)
}

// TerminalEBRID derives a loudspeaker box's resource code from its
// village's 12-digit administrative-division code and a 2-digit serial
// (for a village with several boxes): "0601" + village + serial, the form
// public integrations use for terminals in the 18-digit family. A province
// that assigns its own codes overrides it.
func TerminalEBRID(village string, serial int) (string, error) {
	if !ValidAreaCode(village) {
		return "", fmt.Errorf("%q is not a 12-digit administrative-division code", village)
	}
	if serial < 0 || serial > 99 {
		return "", fmt.Errorf("terminal serial %d is not 0-99", serial)
	}
	return fmt.Sprintf("0601%s%02d", village, serial), nil
}

// VillageTerminalEBRID is the resource code Cunxiang derives for the one
// box of a village, unless the province assigned another:
// TerminalEBRID(village, 1), "0601" + village + "01".
func VillageTerminalEBRID(village string) (string, error) { return TerminalEBRID(village, 1) }

// The province-level prefixes of GB/T 2260 (and 71, 81, 82).
var provinces = map[string]bool{
	"11": true, "12": true, "13": true, "14": true, "15": true,
	"21": true, "22": true, "23": true,
	"31": true, "32": true, "33": true, "34": true, "35": true, "36": true, "37": true,
	"41": true, "42": true, "43": true, "44": true, "45": true, "46": true,
	"50": true, "51": true, "52": true, "53": true, "54": true,
	"61": true, "62": true, "63": true, "64": true, "65": true,
	"71": true, "81": true, "82": true,
}

// WholeCountry is the area code of a message for the whole country.
const WholeCountry = "000000000000"

// ValidAreaCode reports whether s is a 12-digit administrative-division
// code (province, city, county, township or village, with the trailing
// zeros of its level) or WholeCountry.
func ValidAreaCode(s string) bool {
	if len(s) != 12 || !digits(s) {
		return false
	}
	return s == WholeCountry || provinces[s[:2]]
}

// SplitAreaCodes splits an AreaCode element, which may list several codes
// separated by commas (ASCII or full-width), semicolons or white space.
func SplitAreaCodes(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool {
		switch r {
		case ',', '，', ';', '；', '、', ' ', '\t', '\r', '\n':
			return true
		}
		return false
	})
}
