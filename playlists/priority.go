package playlists

import (
	"fmt"
	"strings"
	"time"
)

// Priority orders what a loudspeaker plays. Schedules are Routine.
type Priority string

// Priorities, lowest first.
const (
	Routine   Priority = "routine"
	Urgent    Priority = "urgent"
	Emergency Priority = "emergency"
)

// Rank is the priority's order: routine 1, urgent 2, emergency 3; 0 if unknown.
func (p Priority) Rank() int {
	switch p {
	case Routine:
		return 1
	case Urgent:
		return 2
	case Emergency:
		return 3
	}
	return 0
}

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool { return p.Rank() > 0 }

// QuietWindow is a daily span of wall-clock time, "22:00" to "06:30", in
// which routine items do not sound. A window whose end is before its start
// runs over midnight.
type QuietWindow struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Validate checks both ends are HH:MM and differ.
func (w QuietWindow) Validate() error {
	if _, _, err := parseClock(w.From); err != nil {
		return invalid("quiet_hours.from", ReasonQuietHoursInvalid, err.Error())
	}
	if _, _, err := parseClock(w.To); err != nil {
		return invalid("quiet_hours.to", ReasonQuietHoursInvalid, err.Error())
	}
	if w.From == w.To {
		return invalid("quiet_hours.to", ReasonQuietHoursInvalid, "must differ from the start")
	}
	return nil
}

func (w QuietWindow) String() string { return fmt.Sprintf("%s–%s", w.From, w.To) }

// Contains reports whether the instant t, read in loc, falls inside the
// window (start inclusive, end exclusive).
func (w QuietWindow) Contains(t time.Time, loc *time.Location) bool {
	fh, fm, err1 := parseClock(w.From)
	th, tm, err2 := parseClock(w.To)
	if err1 != nil || err2 != nil {
		return false
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	from, to := fh*60+fm, th*60+tm
	if from < to {
		return m >= from && m < to
	}
	return m >= from || m < to
}

// Quiet reports whether t falls in any of the windows.
func Quiet(windows []QuietWindow, t time.Time, loc *time.Location) bool {
	for _, w := range windows {
		if w.Contains(t, loc) {
			return true
		}
	}
	return false
}

// FormatWindows is a readable list, for logs and messages.
func FormatWindows(ws []QuietWindow) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.String()
	}
	return strings.Join(parts, ", ")
}
