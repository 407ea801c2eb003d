// Package playlists is the shared domain of Cunxiang: playlists, schedules,
// their recurrence and targets. It is pure: no I/O, no goroutines and no
// time.Now(); every function that needs the time takes it as an argument, so
// every scheduling rule is testable on a fake clock.
package playlists

import (
	"fmt"
	"time"
)

// Playback format: every clip in the library is converted to this one format
// at upload, and every box opens its output once, at this format.
const (
	SampleRate    = 22050
	Channels      = 1
	BitsPerSample = 16
)

// Item is one clip in a playlist, played Repeat times in a row.
//
// SHA256, DurationMS and GainDB describe the clip as the controller stored
// it; the controller fills them from its library, whatever staff sent.
// GainDB is the clip's loudness-normalisation gain: what brings it to the
// common target loudness, so that every announcement sounds equally loud
// at the same volume. A box applies it together with the volume, and
// ignores a gain under half a decibel either way.
type Item struct {
	AudioID    int64   `json:"audio_id"`
	SHA256     string  `json:"sha256,omitempty"`
	DurationMS int64   `json:"duration_ms,omitempty"`
	GainDB     float64 `json:"gain_db,omitempty"`
	Repeat     int     `json:"repeat"`
}

// Playlist is an ordered list of clips with a pause of GapMS between plays.
type Playlist struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Items []Item `json:"items"`
	GapMS int64  `json:"gap_ms"`
}

// Duration is how long the whole playlist sounds, gaps included.
func (p Playlist) Duration() time.Duration {
	var total time.Duration
	plays := 0
	for _, it := range p.Items {
		n := it.Repeat
		if n < 1 {
			n = 1
		}
		total += time.Duration(n) * time.Duration(it.DurationMS) * time.Millisecond
		plays += n
	}
	if plays > 1 {
		total += time.Duration(plays-1) * time.Duration(p.GapMS) * time.Millisecond
	}
	return total
}

// MaxRepeat bounds Item.Repeat so one mistyped number cannot occupy a
// loudspeaker for days.
const MaxRepeat = 100

// MaxItems bounds a playlist's items. Every box gets the whole playlist in
// one signed MQTT command, and a command larger than the broker takes
// (1 MB) could never be published: 36,000 items fitted in a 1 MB request
// and were several MB once stored with each clip's sha256 and duration.
const MaxItems = 1000

// Validate checks a playlist as staff submitted it.
func (p Playlist) Validate() error {
	if p.Name == "" {
		return invalid("name", ReasonPlaylistNameEmpty, "a playlist needs a name")
	}
	if len(p.Items) == 0 {
		return invalid("items", ReasonPlaylistNoItems, "a playlist needs at least one clip")
	}
	if len(p.Items) > MaxItems {
		return invalid("items", ReasonPlaylistTooLong, fmt.Sprintf("a playlist has at most %d items", MaxItems), "max", MaxItems)
	}
	for i, it := range p.Items {
		if it.AudioID <= 0 {
			return invalid(fmt.Sprintf("items[%d].audio_id", i), ReasonClipNotFound, "must name an uploaded clip", "id", it.AudioID)
		}
		if it.Repeat < 0 || it.Repeat > MaxRepeat {
			return invalid(fmt.Sprintf("items[%d].repeat", i), ReasonRepeatRange, fmt.Sprintf("must be between 1 and %d (0 means 1)", MaxRepeat), "max", MaxRepeat)
		}
		if it.DurationMS < 0 {
			return invalid(fmt.Sprintf("items[%d].duration_ms", i), ReasonDurationNegative, "must not be negative")
		}
	}
	if p.GapMS < 0 || p.GapMS > int64(10*time.Minute/time.Millisecond) {
		return invalid("gap_ms", ReasonGapRange, "must be between 0 and 600000 (10 minutes)")
	}
	return nil
}

// Targets selects villages: the whole county, whole townships by name, or
// single villages by their 12-digit administrative-division code.
type Targets struct {
	All       bool     `json:"all"`
	Townships []string `json:"townships,omitempty"`
	Villages  []string `json:"villages,omitempty"`
}

// Empty reports whether the targets select nothing.
func (t Targets) Empty() bool { return !t.All && len(t.Townships) == 0 && len(t.Villages) == 0 }

// FieldError is a validation failure that names the offending field, so the
// HTTP layer can tell a clerk exactly what to fix.
type FieldError struct {
	Field   string
	Message string
	// Reason is a stable key (an Reason… constant) with its Params,
	// for clients that show the error in another language.
	Reason string
	Params map[string]any
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// invalid returns a *FieldError with a reason key and name, value pairs.
func invalid(field, reason, msg string, kv ...any) error {
	e := &FieldError{Field: field, Message: msg, Reason: reason}
	if len(kv) > 0 {
		e.Params = map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Params[fmt.Sprint(kv[i])] = kv[i+1]
		}
	}
	return e
}

// Device kinds of a village.
const (
	DeviceAgent  = "agent"  // a loudspeaker box runs the Cunxiang agent
	DeviceManual = "manual" // no box: the village broadcaster confirms by hand
)

// Village is what targeting and coverage need to know of a village.
type Village struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Township string `json:"township"`
	Device   string `json:"device"`
}

// Select returns the villages the targets reach, in the order given.
func (t Targets) Select(vs []Village) []Village {
	towns := make(map[string]bool, len(t.Townships))
	for _, n := range t.Townships {
		towns[n] = true
	}
	codes := make(map[string]bool, len(t.Villages))
	for _, c := range t.Villages {
		codes[c] = true
	}
	var out []Village
	for _, v := range vs {
		if t.All || towns[v.Township] || codes[v.Code] {
			out = append(out, v)
		}
	}
	return out
}
