package capalert

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// DefaultExpiry is how long a broadcast from an alert without <expires>
// stays playable, from when it takes effect. This system needs an expiry
// on everything it broadcasts (a box that comes back online must not
// sound a stale warning), and refusing a real warning for lack of one
// would be worse than guessing. Six hours covers a working shift; an
// issuer who means longer says so, and the clerk sees ExpiresDefaulted.
const DefaultExpiry = 6 * time.Hour

// Request is a CAP alert as this system broadcasts it.
//
// MsgType says what to do with it:
//   - Alert: a new broadcast.
//   - Update: a new broadcast that supersedes the ones References name:
//     the caller cancels those still playing and starts this one (CAP's
//     Update carries the whole current message, not a difference).
//   - Cancel: cancel the broadcasts References name. Only Identifier,
//     Sender, Sent, MsgType, References, Status and Test are sure to be
//     set; the info fields are filled if the Cancel has an info block.
//
// Whether the alert has already expired is for the caller to check
// against its clock.
type Request struct {
	Identifier, Sender string
	Sent               time.Time
	MsgType            string // Alert, Update or Cancel
	References         []Reference
	// Status is Actual, Exercise or Test; Test is true for the last two,
	// which must never be taken for a real warning.
	Status string
	Test   bool

	Priority playlists.Priority
	// Severity is 1 (I, red) to 4 (IV, blue): Extreme 1, Severe 2,
	// Moderate 3, Minor and Unknown 4.
	Severity  int
	EventType string // the info's event, "暴雨"

	// Text from the info block in the preferred language: Chinese if
	// there is one, else the first.
	Headline    string // the headline, or the event if there is none
	Description string
	Instruction string
	Language    string // "zh-CN"; CAP's default "en-US" if not given

	Effective time.Time // when the alert takes effect (Sent if not given)
	ExpiresAt time.Time
	// ExpiresDefaulted is set when no info block gave <expires> and
	// ExpiresAt is Effective + DefaultExpiry.
	ExpiresDefaulted bool

	// Geocodes are the areas as administrative-division code prefixes
	// (see Geocode), from every area of every info block, without
	// duplicates or codes inside another listed code.
	Geocodes []string
	// Areas are the areaDesc of those areas, for people.
	Areas []string
	// AudioURI is an http(s) address of a recording of the message (a
	// resource with an audio/* mimeType), if the alert has one.
	AudioURI string
	// AudioDigest is that resource's <digest>: hex SHA-1 of the file
	// (CAP 1.2, 3.3.2), or "".
	AudioDigest string
}

// Request maps a checked alert to a broadcast request. It refuses what is
// not to be broadcast: Draft and System messages, Ack and Error replies.
//
// An alert with several info blocks is taken as one warning in several
// languages (as CAP intends): the text comes from the preferred language,
// while priority and severity are the highest of all blocks and the areas
// their union, so a block in another language can only widen a warning,
// never weaken it.
//
// Priority follows the urgency and severity:
//
//	urgency \ severity    Extreme    Severe     Moderate  Minor    Unknown
//	Immediate             emergency  emergency  urgent    urgent   urgent
//	Expected              urgent     urgent     urgent    urgent   urgent
//	Future, Past, Unknown routine    routine    routine   routine  routine
//
// Certainty is not used: an Unlikely but Extreme, Immediate warning
// still goes out as an emergency.
func (a *Alert) Request() (Request, error) {
	switch a.Status {
	case "Draft":
		return Request{}, invalid("alert/status", api.ReasonCAPNotBroadcast, a.Status, "is Draft: a draft is not to be broadcast")
	case "System":
		return Request{}, invalid("alert/status", api.ReasonCAPNotBroadcast, a.Status, "is System: system messages are not broadcast to villages")
	}
	switch a.MsgType {
	case "Ack", "Error":
		return Request{}, invalid("alert/msgType", api.ReasonCAPNotBroadcast, a.MsgType, "is %s: acknowledgements and error replies are not broadcast", a.MsgType)
	}
	sent, err := parseTime("alert/sent", a.Sent)
	if err != nil {
		return Request{}, err
	}
	refs, err := parseReferences(a.References)
	if err != nil {
		return Request{}, err
	}
	r := Request{
		Identifier: a.Identifier,
		Sender:     a.Sender,
		Sent:       sent,
		MsgType:    a.MsgType,
		References: refs,
		Status:     a.Status,
		Test:       a.Status == "Exercise" || a.Status == "Test",
	}
	if len(a.Info) == 0 {
		return r, nil // a Cancel (check allows no other without info)
	}

	text := &a.Info[0]
	for i := range a.Info {
		if strings.HasPrefix(strings.ToLower(a.Info[i].Language), "zh") {
			text = &a.Info[i]
			break
		}
	}
	r.EventType = text.Event
	r.Headline = text.Headline
	if r.Headline == "" {
		r.Headline = text.Event
	}
	r.Description, r.Instruction = text.Description, text.Instruction
	r.Language = text.Language
	if r.Language == "" {
		r.Language = "en-US"
	}

	r.Severity = 5
	r.Effective = sent
	if t, err := parseTime("alert/info/effective", text.Effective); err == nil {
		r.Effective = t
	} else {
		for _, in := range a.Info {
			if t, err := parseTime("alert/info/effective", in.Effective); err == nil {
				r.Effective = t
				break
			}
		}
	}
	seenArea := map[string]bool{}
	for _, in := range a.Info {
		r.Severity = min(r.Severity, severityLevel(in.Severity))
		if p := priority(in.Urgency, in.Severity); p.Rank() > r.Priority.Rank() {
			r.Priority = p
		}
		if in.Expires != "" {
			t, err := parseTime("alert/info/expires", in.Expires)
			if err != nil {
				return Request{}, err
			}
			if t.After(r.ExpiresAt) {
				r.ExpiresAt = t
			}
		}
		for _, ar := range in.Area {
			for _, g := range ar.Geocode {
				code, err := Geocode(g.Value)
				if err != nil {
					return Request{}, invalid("alert/info/area/geocode", api.ReasonCAPGeocodeInvalid, g.Value, "%s", err)
				}
				r.Geocodes = append(r.Geocodes, code)
			}
			if ar.AreaDesc != "" && !seenArea[ar.AreaDesc] && in.Language == text.Language {
				seenArea[ar.AreaDesc] = true
				r.Areas = append(r.Areas, ar.AreaDesc)
			}
		}
	}
	for _, in := range slices.Concat([]Info{*text}, a.Info) { // the preferred language's first
		for _, res := range in.Resource {
			if r.AudioURI == "" && isAudio(res.MimeType) && res.URI != "" {
				r.AudioURI, r.AudioDigest = res.URI, strings.ToLower(strings.TrimSpace(res.Digest))
			}
		}
	}
	r.Geocodes = minimalCodes(r.Geocodes)
	if r.ExpiresAt.IsZero() {
		r.ExpiresAt = r.Effective.Add(DefaultExpiry)
		r.ExpiresDefaulted = true
	}
	if !r.ExpiresAt.After(r.Sent) {
		return Request{}, invalid("alert/info/expires", api.ReasonCAPExpiresEarly, r.ExpiresAt.Format(time.RFC3339), "%s is not after the alert was sent", r.ExpiresAt.Format(time.RFC3339))
	}
	if a.MsgType != "Cancel" && len(r.Geocodes) == 0 {
		return Request{}, invalid("alert/info/area/geocode", api.ReasonCAPGeocodeRequired, "", "no value")
	}
	return r, nil
}

// severityLevel maps CAP severity to the I-IV levels (red, orange,
// yellow, blue) of Chinese warnings.
func severityLevel(s string) int {
	switch s {
	case "Extreme":
		return 1
	case "Severe":
		return 2
	case "Moderate":
		return 3
	}
	return 4 // Minor, Unknown
}

func priority(urgency, severity string) playlists.Priority {
	switch urgency {
	case "Immediate":
		if severity == "Extreme" || severity == "Severe" {
			return playlists.Emergency
		}
		return playlists.Urgent
	case "Expected":
		return playlists.Urgent
	}
	return playlists.Routine
}

// provinces are the first two digits of China's province-level divisions
// (GB/T 2260), including Taiwan, Hong Kong and Macao.
var provinces = map[string]bool{
	"11": true, "12": true, "13": true, "14": true, "15": true,
	"21": true, "22": true, "23": true,
	"31": true, "32": true, "33": true, "34": true, "35": true, "36": true, "37": true,
	"41": true, "42": true, "43": true, "44": true, "45": true, "46": true,
	"50": true, "51": true, "52": true, "53": true, "54": true,
	"61": true, "62": true, "63": true, "64": true, "65": true,
	"71": true, "81": true, "82": true,
}

// Geocode reads a geocode value as an administrative-division code and
// returns the prefix of the village codes it covers: 2 digits for a
// province, 4 for a city, 6 for a county, 9 for a township, 12 for a
// village. Codes padded with zeros to 6 or 12 digits, as registers write
// them ("411421000000" for the county 411421), are shortened to their
// level.
//
// Any valueName is accepted ("ADCODE", "行政区划代码", "GB/T 2260" and
// others are all in use), as long as the value is such a code: a geocode
// of another scheme (SAME, UGC, NUTS) is refused rather than guessed at.
func Geocode(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", errors.New("no value")
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return "", fmt.Errorf("%q is not an administrative-division code: it must be digits only", v)
		}
	}
	switch len(v) {
	case 2, 4, 6, 9, 12:
	default:
		return "", fmt.Errorf("%q is not an administrative-division code: it must have 2, 4, 6, 9 or 12 digits, not %d", v, len(v))
	}
	for _, cut := range []struct{ from, to int }{{12, 9}, {9, 6}, {6, 4}, {4, 2}} {
		if len(v) == cut.from && strings.Trim(v[cut.to:], "0") == "" {
			v = v[:cut.to]
		}
	}
	if !provinces[v[:2]] {
		return "", fmt.Errorf("%q is not an administrative-division code: %s is not a province", v, v[:2])
	}
	return v, nil
}

// minimalCodes sorts and removes codes that another code in the list
// already covers.
func minimalCodes(codes []string) []string {
	slices.Sort(codes)
	codes = slices.Compact(codes)
	out := codes[:0]
	for _, c := range codes {
		// Sorted, so a prefix of c would be the last code kept or one
		// before it that is also a prefix of that one.
		if len(out) > 0 && strings.HasPrefix(c, out[len(out)-1]) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// Select returns the codes of the villages that any of the geocodes
// covers (each geocode is read as by Geocode; invalid ones cover
// nothing), in the order of villages.
func Select(geocodes []string, villages []playlists.Village) []string {
	var prefixes []string
	for _, g := range geocodes {
		if p, err := Geocode(g); err == nil {
			prefixes = append(prefixes, p)
		}
	}
	var out []string
	for _, v := range villages {
		for _, p := range prefixes {
			if strings.HasPrefix(v.Code, p) {
				out = append(out, v.Code)
				break
			}
		}
	}
	return out
}
