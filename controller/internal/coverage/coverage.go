// Package coverage answers "did it play?" for one occurrence of a
// schedule or for a broadcast: from the targeted villages, their boxes'
// presence, the reports they sent and what people confirmed by hand, the
// status of each village and the counts per township and overall. It is pure: the caller loads everything in a
// couple of queries, whatever the number of villages.
package coverage

import (
	"cmp"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Village statuses.
const (
	Played               = "played"                // the whole playlist sounded (reported by the box, or confirmed by hand)
	Partial              = "partial"               // it started but was cut off or did not report finishing in time
	Failed               = "failed"                // the box reported a failure
	Cancelled            = "cancelled"             // the broadcast was cancelled before this village played it
	Rejected             = "rejected"              // an approver rejected the broadcast: it was never sent
	Expired              = "expired"               // the broadcast reached the box only after it expired
	Missed               = "missed"                // the window is over and nothing was reported
	Pending              = "pending"               // the window is not over yet
	AwaitingConfirmation = "awaiting_confirmation" // no box: a person must confirm
)

// Grace is how long after the end of a playlist a box has to report
// before its silence counts as missed.
const Grace = 2 * time.Minute

// Village is a targeted village and what is known of its box.
type Village struct {
	playlists.Village
	Enrolled   bool
	Presence   string    // api.Online, api.Offline or "" (never connected)
	PresenceAt time.Time // when Presence last changed
}

// Boxes counts the villages that have a box (device agent): how many
// reports a broadcast to them waits for.
func Boxes(vs []Village) int {
	n := 0
	for _, v := range vs {
		if v.Device == playlists.DeviceAgent {
			n++
		}
	}
	return n
}

// Event is a box's report. For a schedule, Occurrence is the
// playlists.OccurrenceKey it is about, or "" for reports about the
// schedule as a whole (received, rejected, download failed); a
// broadcast's reports name no occurrence.
type Event struct {
	Village    string
	Type       string
	At         time.Time
	Occurrence string
	Reason     string
}

// Confirmation is a person's word that a village without a box played it.
type Confirmation struct {
	Village  string
	PlayedAt time.Time
	By       string // the username (or token name) of who confirmed it
	ByName   string // their display name (By if they have none)
	Note     string
}

// Input is everything Compute needs.
type Input struct {
	Occurrence time.Time
	// Duration is how long the playlist sounds; the window in which boxes
	// report is Occurrence + Duration + Grace.
	Duration time.Duration
	Now      time.Time
	// Location formats times in reasons (the schedule's zone); nil is UTC.
	Location *time.Location
	// Villages are the targeted villages, in the order to report them.
	Villages      []Village
	Events        []Event
	Confirmations []Confirmation
}

// Counts tally village statuses (api.Counts: the wire shape is the
// API's). Played is the total; PlayedByBox and PlayedByHand split it by
// who reported it.
type Counts = api.Counts

func addStatus(c *Counts, vs VillageStatus) {
	c.Targeted++
	switch vs.Status {
	case Played:
		c.Played++
		if vs.ConfirmedByHand {
			c.PlayedByHand++
		} else {
			c.PlayedByBox++
		}
	case Partial:
		c.Partial++
	case Failed:
		c.Failed++
	case Cancelled:
		c.Cancelled++
	case Rejected:
		c.Rejected++
	case Expired:
		c.Expired++
	case Missed:
		c.Missed++
	case Pending:
		c.Pending++
	case AwaitingConfirmation:
		c.AwaitingConfirmation++
	}
}

// VillageStatus is one village\'s line of the report (api.VillageCoverage).
type VillageStatus = api.VillageCoverage

// Township is the tally of one township (api.TownshipCoverage).
type Township = api.TownshipCoverage

// Report is the coverage of one occurrence or broadcast (api.CoverageDetail).
type Report = api.CoverageDetail

// boxReports is what one box said: the latest report of each kind.
type boxReports struct {
	started, finished, failed, partial, cancelled, expired *Event // about the occurrence or broadcast
	received                                               bool
	rejected, dlFailed                                     *Event // about the schedule as a whole
}

// collect groups events by village; about tells whether an event is
// about the occurrence (or broadcast) itself, rather than the schedule as
// a whole. villages sizes the map (a province has 20,000), which spares
// rehashing it as it grows.
func collect(events []Event, villages int, relevant func(*Event) bool, about func(*Event) bool) map[string]*boxReports {
	boxes := make(map[string]*boxReports, villages)
	slab := make([]boxReports, 0, villages) // one allocation, not one per box
	for i := range events {
		e := &events[i]
		if !relevant(e) {
			continue
		}
		b := boxes[e.Village]
		if b == nil {
			if len(slab) == cap(slab) {
				slab = make([]boxReports, 0, max(16, cap(slab))) // never grown in place: boxes points into it
			}
			slab = append(slab, boxReports{})
			b = &slab[len(slab)-1]
			boxes[e.Village] = b
		}
		latest := func(p **Event) {
			if *p == nil || !e.At.Before((*p).At) {
				*p = e
			}
		}
		on := about(e)
		switch {
		case on && e.Type == api.EventStarted:
			latest(&b.started)
		case on && e.Type == api.EventFinished:
			latest(&b.finished)
		case on && e.Type == api.EventFailed:
			latest(&b.failed)
		case on && e.Type == api.EventPartial:
			latest(&b.partial)
		case on && e.Type == api.EventCancelled:
			latest(&b.cancelled)
		case on && e.Type == api.EventExpired:
			latest(&b.expired)
		case e.Type == api.EventReceived:
			b.received = true
		case e.Type == api.EventRejected:
			latest(&b.rejected)
		case !on && e.Type == api.EventFailed:
			latest(&b.dlFailed)
		}
	}
	return boxes
}

// tally builds the report from each village's status.
func tally(villages []Village, windowEnd time.Time, status func(Village) VillageStatus) Report {
	r := Report{WindowEnd: windowEnd, Villages: make([]VillageStatus, 0, len(villages)), Townships: []Township{}}
	towns := map[string]int{}
	for _, v := range villages {
		vs := status(v)
		vs.Code, vs.Name, vs.Township, vs.Device = v.Code, v.Name, v.Township, v.Device
		vs.Class = Class(v, vs, windowEnd)
		r.Villages = append(r.Villages, vs)
		addStatus(&r.Counts, vs)
		k, ok := towns[v.Township]
		if !ok {
			k = len(r.Townships)
			towns[v.Township] = k
			r.Townships = append(r.Townships, Township{Name: v.Township})
		}
		addStatus(&r.Townships[k].Counts, vs)
	}
	return r
}

func confirmations(cs []Confirmation) map[string]*Confirmation {
	out := make(map[string]*Confirmation, len(cs))
	for i := range cs {
		out[cs[i].Village] = &cs[i]
	}
	return out
}

type timeFmt struct{ loc *time.Location }

func (f timeFmt) when(t time.Time) string { return t.In(f.loc).Format("2006-01-02 15:04 MST") }

func orUTC(loc *time.Location) timeFmt {
	if loc == nil {
		loc = time.UTC
	}
	return timeFmt{loc}
}

// Compute works out the status of every targeted village for one
// occurrence of a schedule.
func Compute(in Input) Report {
	key := playlists.OccurrenceKey(in.Occurrence)
	windowEnd := in.Occurrence.Add(in.Duration + Grace)
	boxes := collect(in.Events, len(in.Villages),
		func(e *Event) bool { return e.Occurrence == "" || e.Occurrence == key },
		func(e *Event) bool { return e.Occurrence == key })
	r := rules{what: "schedule", over: !in.Now.Before(windowEnd), f: orUTC(in.Location)}
	confirmed := confirmations(in.Confirmations)
	return tally(in.Villages, windowEnd, func(v Village) VillageStatus {
		return r.status(v, boxes[v.Code], confirmed[v.Code])
	})
}

// rules are what a village's status depends on besides its own reports.
type rules struct {
	what string // "schedule" or "broadcast", for reasons
	over bool   // the window for reports has closed
	// held: a broadcast waiting for approval, not sent.
	held bool
	// stopped: a broadcast cancelled or rejected (rejected, with
	// rejectReason) by stoppedBy at stoppedAt.
	stopped      bool
	stoppedAt    time.Time
	stoppedBy    string
	rejected     bool
	rejectReason string
	expiresAt    time.Time
	f            timeFmt
}

func (r rules) status(v Village, b *boxReports, c *Confirmation) VillageStatus {
	f := r.f
	stop := func() VillageStatus {
		if r.rejected {
			return f.becauseAt(Rejected, ReasonRejected, r.stoppedAt, "by", r.stoppedBy, "detail", r.rejectReason)
		}
		return f.becauseAt(Cancelled, ReasonCancelled, r.stoppedAt, "by", r.stoppedBy)
	}
	if v.Device == playlists.DeviceManual {
		switch {
		case c != nil:
			t := c.PlayedAt.UTC()
			vs := VillageStatus{Status: Played}
			if c.Note != "" {
				vs = f.because(Played, ReasonNote, "note", c.Note)
			}
			vs.ConfirmedByHand, vs.ConfirmedBy, vs.ConfirmedByName, vs.ReportedAt = true, c.By, cmp.Or(c.ByName, c.By), &t
			return vs
		case r.stopped:
			return stop()
		}
		return f.because(AwaitingConfirmation, ReasonNoBox)
	}
	if b == nil {
		b = &boxReports{}
	}
	reported := func(vs VillageStatus, e *Event) VillageStatus { t := e.At.UTC(); vs.ReportedAt = &t; return vs }
	switch {
	case b.finished != nil:
		return reported(VillageStatus{Status: Played}, b.finished)
	case b.partial != nil && b.partial.Reason != "":
		return reported(f.because(Partial, ReasonCutOffBy, "detail", b.partial.Reason), b.partial)
	case b.partial != nil:
		return reported(f.because(Partial, ReasonCutOff), b.partial)
	case b.failed != nil && b.failed.Reason != "":
		return reported(f.because(Failed, ReasonBoxFailedDetail, "detail", b.failed.Reason), b.failed)
	case b.failed != nil:
		return reported(f.because(Failed, ReasonBoxFailed), b.failed)
	case b.cancelled != nil:
		return reported(f.because(Cancelled, ReasonBoxCancelled), b.cancelled)
	case b.expired != nil:
		return reported(f.becauseAt(Expired, ReasonExpired, r.expiresAt, "what", r.what), b.expired)
	case b.started != nil && (r.over || r.stopped):
		return reported(f.becauseAt(Partial, ReasonNotFinished, b.started.At), b.started)
	case b.started != nil:
		return reported(f.becauseAt(Pending, ReasonPlaying, b.started.At), b.started)
	case r.stopped:
		return stop()
	case r.held:
		return f.because(Pending, ReasonAwaitingApproval)
	}
	status := Pending
	if r.over {
		status = Missed
	}
	return r.silence(status, v, b)
}

// silence explains why a box has not reported playing.
func (r rules) silence(status string, v Village, b *boxReports) VillageStatus {
	f := r.f
	switch {
	case !v.Enrolled:
		return f.because(status, ReasonNeverEnrolled)
	case b.rejected != nil:
		return f.because(status, ReasonBoxRejected, "what", r.what, "detail", b.rejected.Reason)
	case b.dlFailed != nil:
		return f.because(status, ReasonDownloadFailed, "detail", b.dlFailed.Reason)
	case v.Presence == api.Offline:
		return f.becauseAt(status, ReasonOfflineSince, v.PresenceAt)
	case v.Presence == "":
		return f.because(status, ReasonNeverConnected)
	case r.over && !b.received:
		return f.because(status, ReasonNotReceived, "what", r.what)
	case r.over:
		return f.because(status, ReasonNoReport)
	}
	return VillageStatus{Status: status}
}

// BroadcastInput is everything ComputeBroadcast needs.
type BroadcastInput struct {
	// Released is false while the broadcast waits for approval (or was
	// rejected): nothing was sent.
	Released bool
	// StoppedAt is when it was cancelled or rejected, by StoppedBy (the
	// name people read, a display name); zero if it was not. Rejected
	// says it was rejected, for RejectReason.
	StoppedAt    time.Time
	StoppedBy    string
	Rejected     bool
	RejectReason string
	ExpiresAt    time.Time
	// Duration is how long it sounds, repeats included: a box may start it
	// until ExpiresAt, so reports are due by ExpiresAt + Duration + Grace.
	Duration      time.Duration
	Now           time.Time
	Location      *time.Location
	Villages      []Village
	Events        []Event
	Confirmations []Confirmation
}

// ComputeBroadcast works out the status of every targeted village for a
// broadcast. Every report of a box about the broadcast counts: it has no
// occurrences.
func ComputeBroadcast(in BroadcastInput) Report {
	windowEnd := in.ExpiresAt.Add(in.Duration + Grace)
	boxes := collect(in.Events, len(in.Villages), func(*Event) bool { return true }, func(*Event) bool { return true })
	r := rules{what: "broadcast", over: !in.Now.Before(windowEnd), held: !in.Released,
		stopped: !in.StoppedAt.IsZero(), stoppedAt: in.StoppedAt, stoppedBy: in.StoppedBy,
		rejected: in.Rejected, rejectReason: in.RejectReason, expiresAt: in.ExpiresAt, f: orUTC(in.Location)}
	confirmed := confirmations(in.Confirmations)
	return tally(in.Villages, windowEnd, func(v Village) VillageStatus {
		return r.status(v, boxes[v.Code], confirmed[v.Code])
	})
}
