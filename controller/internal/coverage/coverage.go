// Package coverage answers "did it play?" for one occurrence of a
// schedule: from the targeted villages, their boxes' presence and the
// reports they sent, the status of each village and the counts per
// township and overall. It is pure: the caller loads everything in a
// couple of queries, whatever the number of villages.
package coverage

import (
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Village statuses.
const (
	Played               = "played"                // the box reported the whole playlist sounded
	Partial              = "partial"               // it started but did not report finishing in time
	Failed               = "failed"                // the box reported a failure
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

// Event is a box's report about the schedule. Occurrence is the
// playlists.OccurrenceKey it is about, or "" for reports about the
// schedule as a whole (received, rejected, download failed).
type Event struct {
	Village    string
	Type       string
	At         time.Time
	Occurrence string
	Reason     string
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
	Villages []Village
	Events   []Event
}

// Counts tally village statuses.
type Counts struct {
	Targeted             int `json:"targeted"`
	Played               int `json:"played"`
	Partial              int `json:"partial"`
	Failed               int `json:"failed"`
	Missed               int `json:"missed"`
	Pending              int `json:"pending"`
	AwaitingConfirmation int `json:"awaiting_confirmation"`
}

func (c *Counts) add(status string) {
	c.Targeted++
	switch status {
	case Played:
		c.Played++
	case Partial:
		c.Partial++
	case Failed:
		c.Failed++
	case Missed:
		c.Missed++
	case Pending:
		c.Pending++
	case AwaitingConfirmation:
		c.AwaitingConfirmation++
	}
}

// VillageStatus is one village's line of the report.
type VillageStatus struct {
	Code       string     `json:"code"`
	Name       string     `json:"name"`
	Township   string     `json:"township"`
	Device     string     `json:"device"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	ReportedAt *time.Time `json:"reported_at,omitempty"`
}

// Township is the tally of one township.
type Township struct {
	Name string `json:"name"`
	Counts
}

// Report is the coverage of one occurrence.
type Report struct {
	Counts
	WindowEnd time.Time       `json:"window_end"`
	Villages  []VillageStatus `json:"villages"`
	Townships []Township      `json:"townships"`
}

// boxReports is what one box said about the schedule and the occurrence.
type boxReports struct {
	started, finished, failed *Event // about the occurrence (the latest of each)
	received                  bool
	rejected, dlFailed        *Event // about the schedule as a whole
}

// Compute works out the status of every targeted village.
func Compute(in Input) Report {
	loc := in.Location
	if loc == nil {
		loc = time.UTC
	}
	key := playlists.OccurrenceKey(in.Occurrence)
	windowEnd := in.Occurrence.Add(in.Duration + Grace)
	over := !in.Now.Before(windowEnd)

	boxes := map[string]*boxReports{}
	for i := range in.Events {
		e := &in.Events[i]
		if e.Occurrence != "" && e.Occurrence != key {
			continue
		}
		b := boxes[e.Village]
		if b == nil {
			b = &boxReports{}
			boxes[e.Village] = b
		}
		latest := func(p **Event) {
			if *p == nil || !e.At.Before((*p).At) {
				*p = e
			}
		}
		switch {
		case e.Occurrence == key && e.Type == api.EventStarted:
			latest(&b.started)
		case e.Occurrence == key && e.Type == api.EventFinished:
			latest(&b.finished)
		case e.Occurrence == key && e.Type == api.EventFailed:
			latest(&b.failed)
		case e.Occurrence == "" && e.Type == api.EventReceived:
			b.received = true
		case e.Occurrence == "" && e.Type == api.EventRejected:
			latest(&b.rejected)
		case e.Occurrence == "" && e.Type == api.EventFailed:
			latest(&b.dlFailed)
		}
	}

	r := Report{WindowEnd: windowEnd, Villages: make([]VillageStatus, 0, len(in.Villages)), Townships: []Township{}}
	towns := map[string]int{}
	for _, v := range in.Villages {
		vs := VillageStatus{Code: v.Code, Name: v.Name, Township: v.Township, Device: v.Device}
		vs.Status, vs.Reason, vs.ReportedAt = status(v, boxes[v.Code], over, loc)
		r.Villages = append(r.Villages, vs)
		r.Counts.add(vs.Status)
		k, ok := towns[v.Township]
		if !ok {
			k = len(r.Townships)
			towns[v.Township] = k
			r.Townships = append(r.Townships, Township{Name: v.Township})
		}
		r.Townships[k].add(vs.Status)
	}
	return r
}

func status(v Village, b *boxReports, over bool, loc *time.Location) (string, string, *time.Time) {
	at := func(e *Event) *time.Time { t := e.At.UTC(); return &t }
	when := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04 MST") }
	if v.Device == playlists.DeviceManual {
		return AwaitingConfirmation, "no box in this village: the broadcaster must confirm by hand", nil
	}
	if b == nil {
		b = &boxReports{}
	}
	switch {
	case b.finished != nil:
		return Played, "", at(b.finished)
	case b.failed != nil:
		reason := b.failed.Reason
		if reason == "" {
			reason = "the box reported a failure"
		}
		return Failed, reason, at(b.failed)
	case b.started != nil && over:
		return Partial, fmt.Sprintf("started at %s but did not report finishing", when(b.started.At)), at(b.started)
	case b.started != nil:
		return Pending, fmt.Sprintf("playing since %s", when(b.started.At)), at(b.started)
	}
	var reason string
	switch {
	case !v.Enrolled:
		reason = "box never enrolled"
	case b.rejected != nil:
		reason = "box rejected the schedule: " + b.rejected.Reason
	case b.dlFailed != nil:
		reason = "box could not get the audio: " + b.dlFailed.Reason
	case v.Presence == api.Offline:
		reason = "box offline since " + when(v.PresenceAt)
	case v.Presence == "":
		reason = "box enrolled but never connected"
	case over && !b.received:
		reason = "box online but did not report (it never confirmed receiving the schedule)"
	case over:
		reason = "box online but did not report"
	}
	if over {
		return Missed, reason, nil
	}
	return Pending, reason, nil
}
