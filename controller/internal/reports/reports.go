// Package reports is the controller's application service for coverage
// reports: for a range of days, the coverage of every broadcast created
// and every schedule occurrence begun in it, with counts per item, per
// day and per township, and why each village that did not play did not.
// Every door that reports (the HTTP API and its console, their CSV
// files) calls the same Service with a context and the acting person,
// never a web framework type; the Service owns the rules (who may read,
// what range a report may cover, how much one report computes) and the
// aggregation. How a report is written (JSON, a spreadsheet) is the
// door's business.
package reports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Person is who acts (people.Person, which every service shares).
type Person = people.Person

// Store is what the Service needs of the database: the villages, what
// was broadcast and scheduled, and what boxes and people reported.
type Store interface {
	VillageStates(ctx context.Context) ([]store.VillageState, error)
	GetBroadcast(ctx context.Context, id int64) (store.Broadcast, error)
	GetSchedule(ctx context.Context, id int64) (store.Schedule, error)
	BroadcastsCreated(ctx context.Context, since, until time.Time) ([]store.Broadcast, error)
	BroadcastProgresses(ctx context.Context, lo, hi int64) (map[int64]store.BroadcastProgress, error)
	BroadcastEvents(ctx context.Context, broadcastID int64, test bool) ([]store.Event, error)
	BroadcastConfirmations(ctx context.Context, broadcastID int64) ([]store.Confirmation, error)
	Schedules(ctx context.Context, withdrawn bool) ([]store.Schedule, error)
	GetPlaylist(ctx context.Context, id int64) (store.Playlist, error)
	ScheduleEvents(ctx context.Context, scheduleID int64, occurrence string) ([]store.Event, error)
	ScheduleConfirmations(ctx context.Context, scheduleID int64, occurrence string) ([]store.Confirmation, error)
}

// MaxDays bounds a report's range: a month is what a county reports on,
// and every day adds each recurring schedule's occurrences.
const MaxDays = 31

// MaxItems bounds how many broadcasts and occurrences one report
// computes.
const MaxItems = 2000

// Options configure a Service. Store is required.
type Options struct {
	Store Store
	// NameOf gives people's display names (nil keeps usernames).
	NameOf func(who string) string

	Logger *slog.Logger
	Now    func() time.Time
}

// Service computes coverage reports.
type Service struct {
	o   Options
	log *slog.Logger
	now func() time.Time
	loc *time.Location // county time: what days are
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("reports: Store is required")
	}
	s := &Service{o: o, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "reports")
	if s.now == nil {
		s.now = time.Now
	}
	s.loc, _ = time.LoadLocation(playlists.DefaultTimezone)
	return s, nil
}

// Location is the county time a report's days are in.
func (s *Service) Location() *time.Location { return s.loc }

// Who may read coverage reports, whatever the door: everyone but a
// village's own account.
var readers = []string{api.RoleAdmin, api.RoleOperator, api.RoleApprover, api.RoleViewer}

// Query is a report as a door asks for it: dates in county time
// (2026-03-01), both days included; To defaults to From, From to today.
// Township limits it to one township ("" for all).
type Query struct {
	From, To, Township string
}

// Range is a checked Query: its days (From, To filled in), the instants
// [Start, End) they span, and the township.
type Range struct {
	From, To, Township string
	Start, End         time.Time
}

// Check says whether p may read the report q asks for and, if so, the
// range it covers; a bad date, a range backwards or longer than MaxDays
// is refused before any work is done.
func (s *Service) Check(p Person, q Query) (Range, error) {
	if err := people.May(p, readers, "read coverage reports"); err != nil {
		return Range{}, err
	}
	r := Range{From: q.From, To: q.To, Township: strings.TrimSpace(q.Township)}
	if r.From == "" {
		r.From = s.now().In(s.loc).Format(time.DateOnly)
	}
	if r.To == "" {
		r.To = r.From
	}
	day := func(name, v string) (time.Time, error) {
		t, err := time.ParseInLocation(time.DateOnly, v, s.loc)
		if err != nil {
			return t, cx.Invalid(name, fmt.Sprintf("%q is not a date such as 2026-03-01", v)).With(api.ReasonDateInvalid, "value", v)
		}
		return t, nil
	}
	var err error
	if r.Start, err = day("from", r.From); err != nil {
		return Range{}, err
	}
	last, err := day("to", r.To)
	if err != nil {
		return Range{}, err
	}
	r.End = last.AddDate(0, 0, 1)
	switch days := int(r.End.Sub(r.Start).Hours()/24 + 0.5); {
	case last.Before(r.Start):
		return Range{}, cx.Invalid("to", fmt.Sprintf("%s is before from (%s); give the first day, then the last", r.To, r.From)).With(api.ReasonRangeOrder)
	case days > MaxDays:
		return Range{}, cx.Invalid("to", fmt.Sprintf("the range from %s to %s is %d days; a report covers at most %d days, so split it by month", r.From, r.To, days, MaxDays)).With(api.ReasonRangeTooLong, "max", MaxDays)
	}
	return r, nil
}

// Coverage is the report of range r (from Check) as it stands at now.
func (s *Service) Coverage(ctx context.Context, r Range, now time.Time) (api.CoverageReport, error) {
	states, err := s.o.Store.VillageStates(ctx)
	if err != nil {
		return api.CoverageReport{}, err
	}
	if r.Township != "" && !slices.ContainsFunc(states, func(v store.VillageState) bool { return v.Township == r.Township }) {
		return api.CoverageReport{}, cx.Invalid("township", fmt.Sprintf("no village is in a township called %q", r.Township)).With(api.ReasonTownshipUnknown, "name", r.Township)
	}
	out := api.CoverageReport{From: r.From, To: r.To, Township: r.Township, Timezone: playlists.DefaultTimezone, GeneratedAt: now.UTC(),
		Townships: []coverage.TownshipSummary{}, Items: []api.ReportItem{}}
	items, err := s.items(ctx, r, now, states)
	if err != nil {
		return api.CoverageReport{}, err
	}
	var total coverage.Tally
	days := map[string]int{}
	for d := r.Start; d.Before(r.End); d = d.AddDate(0, 0, 1) {
		days[d.Format(time.DateOnly)] = len(out.Days)
		out.Days = append(out.Days, api.DaySummary{Date: d.Format(time.DateOnly)})
	}
	for _, it := range items {
		if it.item.Counted {
			total.Add(it.villages, it.report)
			if k, ok := days[it.item.At.In(s.loc).Format(time.DateOnly)]; ok {
				out.Days[k].Items++
				out.Days[k].CoverageSummary.Add(it.item.CoverageSummary)
			}
		}
		out.Items = append(out.Items, it.item)
	}
	out.Totals = total.Summary
	if total.Townships != nil {
		out.Townships = total.Townships
	}
	return out, nil
}

// item is a report's item with what it was computed from.
type item struct {
	item     api.ReportItem
	villages []coverage.Village
	report   coverage.Report
}

// occurrence is one begun occurrence of a schedule.
type occurrence struct {
	sc store.Schedule
	at time.Time
}

// items computes the items of r, oldest first.
func (s *Service) items(ctx context.Context, r Range, now time.Time, states []store.VillageState) ([]item, error) {
	bs, err := s.o.Store.BroadcastsCreated(ctx, r.Start, r.End)
	if err != nil {
		return nil, err
	}
	occs, err := s.occurrences(ctx, r, now)
	if err != nil {
		return nil, err
	}
	if n := len(bs) + len(occs); n > MaxItems {
		return nil, cx.Invalid("to", fmt.Sprintf("the range holds %d broadcasts and schedule occurrences, more than the %d one report computes; ask for fewer days", n, MaxItems)).With(api.ReasonReportTooBig, "n", n, "max", MaxItems)
	}
	within := func(vs []coverage.Village) []coverage.Village {
		if r.Township == "" {
			return vs
		}
		return slices.DeleteFunc(vs, func(v coverage.Village) bool { return v.Township != r.Township })
	}
	var out []item
	if len(bs) > 0 {
		progress, err := s.o.Store.BroadcastProgresses(ctx, bs[0].ID, bs[len(bs)-1].ID)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			reached := broadcasts.Targeted(b.Targets, states)
			villages := within(slices.Clone(reached))
			if len(villages) == 0 {
				continue
			}
			events, err := s.o.Store.BroadcastEvents(ctx, b.ID, b.Test)
			if err != nil {
				return nil, err
			}
			confs, err := s.o.Store.BroadcastConfirmations(ctx, b.ID)
			if err != nil {
				return nil, err
			}
			rep := coverage.ComputeBroadcast(broadcasts.CoverageInput(b, villages, events, confs, now, s.o.NameOf))
			it := api.ReportItem{Kind: "broadcast", ID: b.ID, At: b.CreatedAt.UTC(), Title: Title(b), Priority: b.Priority,
				EventType: b.EventType, Severity: b.Severity, State: broadcasts.State(b, progress[b.ID], coverage.Boxes(reached), now), Test: b.Test,
				Counted: b.WasReleased() && !b.Test}
			if b.State == api.BroadcastRejected {
				it.RejectReason = b.DecisionReason
			}
			out = append(out, finish(it, villages, rep))
		}
	}
	pls := map[int64]store.Playlist{}
	for _, o := range occs {
		villages := within(broadcasts.Targeted(o.sc.Targets, states))
		if len(villages) == 0 {
			continue
		}
		pl, ok := pls[o.sc.PlaylistID]
		if !ok {
			if pl, err = s.o.Store.GetPlaylist(ctx, o.sc.PlaylistID); err != nil {
				return nil, err
			}
			pls[o.sc.PlaylistID] = pl
		}
		rep, err := s.Occurrence(ctx, o.sc, o.at, pl, villages, now)
		if err != nil {
			return nil, err
		}
		state := broadcasts.StateInProgress
		if !now.Before(rep.WindowEnd) {
			state = broadcasts.StateDone
		}
		it := api.ReportItem{Kind: "schedule", ID: o.sc.ID, At: o.at.UTC(), Title: pl.Name, Priority: playlists.Routine, State: state, Counted: true}
		out = append(out, finish(it, villages, rep))
	}
	// Oldest first, broadcasts and occurrences together.
	slices.SortStableFunc(out, func(a, b item) int { return a.item.At.Compare(b.item.At) })
	return out, nil
}

// occurrences is the occurrences of every schedule that began in r by
// now, while the schedule was on the boxes: not before it was created,
// nor once withdrawn.
func (s *Service) occurrences(ctx context.Context, r Range, now time.Time) ([]occurrence, error) {
	scheds, err := s.o.Store.Schedules(ctx, true)
	if err != nil {
		return nil, err
	}
	until := r.End
	if now.Before(until) {
		until = now.Add(time.Nanosecond) // only occurrences that have begun
	}
	var occs []occurrence
	for _, sc := range scheds {
		ats, err := sc.Occurrences(r.Start, until)
		if err != nil {
			s.log.Error("report: expand schedule", "schedule", sc.ID, "err", err)
			continue
		}
		for _, at := range ats {
			if at.Before(sc.CreatedAt.Truncate(time.Second)) || !sc.WithdrawnAt.IsZero() && !at.Before(sc.WithdrawnAt) {
				continue
			}
			occs = append(occs, occurrence{sc, at})
		}
	}
	return occs, nil
}

// Occurrence is the coverage of one occurrence occ of schedule sc (which
// plays pl) over villages at now, from its boxes' reports and people's
// confirmations: the one computation a report's items and a schedule's
// coverage page share.
func (s *Service) Occurrence(ctx context.Context, sc store.Schedule, occ time.Time, pl store.Playlist, villages []coverage.Village, now time.Time) (coverage.Report, error) {
	key := playlists.OccurrenceKey(occ)
	events, err := s.o.Store.ScheduleEvents(ctx, sc.ID, key)
	if err != nil {
		return coverage.Report{}, err
	}
	confs, err := s.o.Store.ScheduleConfirmations(ctx, sc.ID, key)
	if err != nil {
		return coverage.Report{}, err
	}
	loc, _ := sc.Location()
	return coverage.Compute(coverage.Input{Occurrence: occ, Duration: pl.Duration(), Now: now, Location: loc,
		Villages: villages, Events: broadcasts.CoverageEvents(events), Confirmations: broadcasts.CoverageConfirmations(confs, s.o.NameOf)}), nil
}

// finish adds an item's counts and the villages that did not play.
func finish(it api.ReportItem, villages []coverage.Village, rep coverage.Report) item {
	var t coverage.Tally
	it.CoverageSummary = t.Add(villages, rep)
	it.Townships = t.Townships
	if it.Townships == nil {
		it.Townships = []coverage.TownshipSummary{}
	}
	byCode := make(map[string]coverage.Village, len(villages))
	for _, v := range villages {
		byCode[v.Code] = v
	}
	it.NotPlayed = []api.NotPlayed{}
	for _, vs := range rep.Villages {
		if vs.Status == coverage.Played {
			continue
		}
		it.NotPlayed = append(it.NotPlayed, api.NotPlayed{Code: vs.Code, Name: vs.Name, Township: vs.Township,
			Class: coverage.Class(byCode[vs.Code], vs, rep.WindowEnd), Reason: vs.Reason, ReasonCode: vs.ReasonCode, ReasonArgs: vs.ReasonArgs,
			ReportedAt: vs.ReportedAt})
	}
	return item{item: it, villages: villages, report: rep}
}

// Title says what a broadcast played, for people.
func Title(b store.Broadcast) string {
	switch {
	case b.Text != "":
		if r := []rune(b.Text); len(r) > 40 {
			return string(r[:40]) + "…"
		}
		return b.Text
	case b.Playlist.Name != "":
		return b.Playlist.Name
	case b.AudioID != 0:
		return "audio " + strconv.FormatInt(b.AudioID, 10)
	}
	return "playlist " + strconv.FormatInt(b.PlaylistID, 10)
}

// Broadcast is the coverage of broadcast id as it stands: which targeted
// villages played it and why the others did not, and its state, in a
// fixed number of queries whatever the county size.
func (s *Service) Broadcast(ctx context.Context, p Person, id int64) (api.BroadcastCoverage, error) {
	if err := people.May(p, readers, "read coverage"); err != nil {
		return api.BroadcastCoverage{}, err
	}
	b, err := s.o.Store.GetBroadcast(ctx, id)
	if err != nil {
		return api.BroadcastCoverage{}, err
	}
	states, err := s.o.Store.VillageStates(ctx)
	if err != nil {
		return api.BroadcastCoverage{}, err
	}
	events, err := s.o.Store.BroadcastEvents(ctx, b.ID, b.Test)
	if err != nil {
		return api.BroadcastCoverage{}, err
	}
	confs, err := s.o.Store.BroadcastConfirmations(ctx, b.ID)
	if err != nil {
		return api.BroadcastCoverage{}, err
	}
	progress, err := s.o.Store.BroadcastProgresses(ctx, b.ID, b.ID)
	if err != nil {
		return api.BroadcastCoverage{}, err
	}
	now := s.now()
	villages := broadcasts.Targeted(b.Targets, states)
	rep := coverage.ComputeBroadcast(broadcasts.CoverageInput(b, villages, events, confs, now, s.o.NameOf))
	return api.BroadcastCoverage{BroadcastID: b.ID, Test: b.Test, State: broadcasts.State(b, progress[b.ID], coverage.Boxes(villages), now),
		CoverageDetail: rep}, nil
}

// Schedule is the coverage of one occurrence of schedule id: the one at
// at, or if at is zero the latest that has begun, or else the next.
func (s *Service) Schedule(ctx context.Context, p Person, id int64, at time.Time) (api.Coverage, error) {
	if err := people.May(p, readers, "read coverage"); err != nil {
		return api.Coverage{}, err
	}
	sc, err := s.o.Store.GetSchedule(ctx, id)
	if err != nil {
		return api.Coverage{}, err
	}
	now := s.now()
	occ, err := pickOccurrence(sc.Schedule, at, now)
	if err != nil {
		return api.Coverage{}, err
	}
	pl, err := s.o.Store.GetPlaylist(ctx, sc.PlaylistID)
	if err != nil {
		return api.Coverage{}, err
	}
	states, err := s.o.Store.VillageStates(ctx)
	if err != nil {
		return api.Coverage{}, err
	}
	rep, err := s.Occurrence(ctx, sc, occ, pl, broadcasts.Targeted(sc.Targets, states), now)
	if err != nil {
		return api.Coverage{}, err
	}
	return api.Coverage{ScheduleID: sc.ID, Occurrence: occ.UTC(), CoverageDetail: rep}, nil
}

// pickOccurrence is the occurrence at, or if at is zero the latest that
// has started, or else the next.
func pickOccurrence(s playlists.Schedule, at time.Time, now time.Time) (time.Time, error) {
	if !at.IsZero() {
		t := at
		occ, err := s.Occurrences(t, t.Add(time.Second))
		if err != nil {
			return t, err
		}
		if len(occ) == 0 || !occ[0].Equal(t) {
			return t, cx.Invalid("at", fmt.Sprintf("%s is not an occurrence of schedule %d", t.Format(time.RFC3339), s.ID)).With(api.ReasonNotOccurrence, "at", t.Format(time.RFC3339), "id", s.ID)
		}
		return occ[0], nil
	}
	// Look back a day first: most questions are about today.
	for _, back := range []time.Duration{24 * time.Hour, 400 * 24 * time.Hour} {
		occ, err := s.Occurrences(now.Add(-back), now.Add(time.Nanosecond))
		if err != nil {
			return time.Time{}, err
		}
		if len(occ) > 0 {
			return occ[len(occ)-1], nil
		}
	}
	next, err := s.Next(now, 1)
	if err != nil {
		return time.Time{}, err
	}
	if len(next) == 0 {
		return time.Time{}, cx.Errorf(cx.ENOTFOUND, "schedule %d has no occurrence in the past year or the next", s.ID).With(api.ReasonNoOccurrence, "id", s.ID)
	}
	return next[0], nil
}
