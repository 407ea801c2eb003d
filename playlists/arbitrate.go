package playlists

import "time"

// Candidate is something that asks for the loudspeaker: one occurrence of
// a schedule, or a broadcast.
type Candidate struct {
	Priority Priority // schedules are Routine; an unknown priority counts as Routine
	// Scheduled marks an occurrence of a schedule; otherwise it is a broadcast.
	Scheduled bool
	Test      bool  // a test broadcast
	ID        int64 // schedule or broadcast id: the last tie-break among equals
	// Due is when it asked for the loudspeaker: a schedule occurrence's
	// time, a broadcast's issue time. Equals play in order of Due.
	Due time.Time
	// Until is the instant from which it may no longer start: a broadcast's
	// expiry, a schedule occurrence's time plus the box's grace. Zero: no limit.
	Until time.Time
	// Zone is the time zone quiet hours are read in when the Rules name
	// none: a schedule's own zone. Nil means DefaultTimezone.
	Zone *time.Location
}

// Decision is what to do with a candidate.
type Decision int

// Decisions. Start, Interrupt and Wait are for candidates that may sound
// now; Expire, Skip and Hold for those that may not.
const (
	// Start: the loudspeaker is free; play it now.
	Start Decision = iota + 1
	// Interrupt: cut off what is sounding (report it partial) and play this now.
	Interrupt
	// Wait: what is sounding goes on; this waits its turn.
	Wait
	// Expire: past its Until; never play it (a broadcast is reported
	// expired, a schedule occurrence failed).
	Expire
	// Skip: a routine schedule occurrence inside quiet hours; never play it
	// (reported failed, "skipped: quiet hours …").
	Skip
	// Hold: a routine broadcast inside quiet hours; keep it until they end.
	Hold
)

func (d Decision) String() string {
	switch d {
	case Start:
		return "start"
	case Interrupt:
		return "interrupt"
	case Wait:
		return "wait"
	case Expire:
		return "expire"
	case Skip:
		return "skip"
	case Hold:
		return "hold"
	}
	return "unknown"
}

// Rules decide who has the loudspeaker. A box has one loudspeaker and many things that
// want it: the occurrences of its schedules and the broadcasts staff send.
// These functions are the whole of the rules that decide between them; the
// agent's planner asks them and does what they say. RULES.md beside this
// file explains the same rules to county staff.
//
//  1. Something of higher priority (routine < urgent < emergency) cuts off
//     what is sounding at once.
//  2. Equal priority never cuts: what sounds finishes, the newcomer waits
//     its turn. Waiting items go highest priority first, then, among
//     equals, a real broadcast before a test broadcast, then first come
//     first served by due time (a broadcast's issue time, a schedule
//     occurrence's time).
//  3. Nothing starts after its Until: a broadcast past its expiry is never
//     played (reported expired); a schedule occurrence that could not start
//     within the box's grace after its time is skipped (reported failed).
//     Expiry is judged at the start: once sounding, a broadcast plays to
//     its end (every repeat) unless it is cut off or cancelled.
//  4. Quiet hours hold back routine items only, and only from starting:
//     a routine schedule occurrence that would start inside them is
//     skipped; a routine broadcast waits for them to end (and expires if
//     its expiry comes first). Urgent and emergency items sound at any
//     hour. Something already sounding when quiet hours begin finishes.
//  5. What is cut off is reported partial. A schedule occurrence is not
//     played again: its schedule carries on at its next occurrence. A
//     broadcast goes back to waiting and plays again from the start when
//     its turn comes, if it has not expired by then (Resumes).
//
// Test broadcasts follow the same rules as real ones of their priority.
//
// A Rules holds a box's settings that bear on them; the zero Rules has no
// quiet hours.
type Rules struct {
	QuietHours []QuietWindow
	// Location is the zone quiet hours are read in (the box config's
	// timezone); nil falls back to each candidate's Zone.
	Location *time.Location
}

// rank is the priority's order, an unknown priority counting as routine.
func rank(c Candidate) int {
	if r := c.Priority.Rank(); r > 0 {
		return r
	}
	return Routine.Rank()
}

// QuietAt returns the quiet window that holds c back at now, if any: only
// routine candidates are ever held back.
func (r Rules) QuietAt(c Candidate, now time.Time) (QuietWindow, bool) {
	if rank(c) > Routine.Rank() || len(r.QuietHours) == 0 {
		return QuietWindow{}, false
	}
	loc := r.Location
	if loc == nil {
		loc = c.Zone
	}
	if loc == nil {
		var err error
		if loc, err = loadLocation(DefaultTimezone); err != nil {
			loc = time.UTC
		}
	}
	for _, w := range r.QuietHours {
		if w.Contains(now, loc) {
			return w, true
		}
	}
	return QuietWindow{}, false
}

// Admit says whether c may sound at now at all, whatever else is playing:
// Start if it may, else Expire, Skip or Hold.
func (r Rules) Admit(c Candidate, now time.Time) Decision {
	if !c.Until.IsZero() && !now.Before(c.Until) {
		return Expire
	}
	if _, quiet := r.QuietAt(c, now); quiet {
		if c.Scheduled {
			return Skip
		}
		return Hold
	}
	return Start
}

// Cuts reports whether in, arriving while playing sounds, cuts it off:
// only a strictly higher priority does.
func Cuts(in, playing Candidate) bool { return rank(in) > rank(playing) }

// Before reports whether a goes before b when both wait for the
// loudspeaker: higher priority first; among equals a real broadcast before
// a test, then earlier Due, then schedule occurrences before broadcasts,
// then lower ID.
func Before(a, b Candidate) bool {
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra > rb
	}
	if a.Test != b.Test {
		return !a.Test
	}
	if !a.Due.Equal(b.Due) {
		return a.Due.Before(b.Due)
	}
	if a.Scheduled != b.Scheduled {
		return a.Scheduled
	}
	return a.ID < b.ID
}

// Pick returns the index of the candidate that goes first, or -1 if there
// is none. Callers pass only candidates Admit lets start.
func Pick(waiting []Candidate) int {
	best := -1
	for i, c := range waiting {
		if best < 0 || Before(c, waiting[best]) {
			best = i
		}
	}
	return best
}

// Arbitrate decides what to do with in at now, while playing sounds (nil:
// the loudspeaker is free). Where several wait, ask about Pick's choice:
// if it does not cut what sounds, none of them does.
func (r Rules) Arbitrate(playing *Candidate, in Candidate, now time.Time) Decision {
	if d := r.Admit(in, now); d != Start {
		return d
	}
	switch {
	case playing == nil:
		return Start
	case Cuts(in, *playing):
		return Interrupt
	}
	return Wait
}

// Arbitrate applies the rules with no quiet hours.
func Arbitrate(playing *Candidate, in Candidate, now time.Time) Decision {
	return Rules{}.Arbitrate(playing, in, now)
}

// Resumes reports whether c, once cut off, goes back to waiting and plays
// again from the start: broadcasts do (until they expire); a schedule
// occurrence does not, its schedule carries on at its next occurrence.
func Resumes(c Candidate) bool { return !c.Scheduled }
