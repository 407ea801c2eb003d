package httpapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// maxCalendarSpan bounds the range one calendar request expands: a month
// is what any screen shows, and an open-ended range of a schedule with
// many times a day would be a very long answer.
const maxCalendarSpan = 31 * 24 * time.Hour

// defaultCalendarSpan is the range when a request gives no end: a week.
const defaultCalendarSpan = 7 * 24 * time.Hour

// getCalendar expands every live schedule over [from, to): when each one
// sounds, what and where. from defaults to now and to to a week after from;
// the range may be at most 31 days.
func (s *Server) getCalendar(c *gin.Context) {
	from, err := queryTime(c, "from")
	if err != nil {
		s.fail(c, err)
		return
	}
	to, err := queryTime(c, "to")
	if err != nil {
		s.fail(c, err)
		return
	}
	if from.IsZero() {
		from = s.now()
	}
	if to.IsZero() {
		to = from.Add(defaultCalendarSpan)
	}
	switch {
	case !to.After(from):
		s.fail(c, cx.Invalid("to", fmt.Sprintf("%s is not after from (%s); give a range such as one week", to.Format(time.RFC3339), from.Format(time.RFC3339))).
			With(api.ReasonRangeOrder))
		return
	case to.Sub(from) > maxCalendarSpan:
		s.fail(c, cx.Invalid("to", fmt.Sprintf("the range from %s to %s is longer than 31 days; ask for a month at most", from.Format(time.RFC3339), to.Format(time.RFC3339))).
			With(api.ReasonRangeTooLong, "max", int(maxCalendarSpan/(24*time.Hour))))
		return
	}
	ctx := c.Request.Context()
	scheds, err := s.store.Schedules(ctx, false)
	if err != nil {
		s.fail(c, err)
		return
	}
	pls, err := s.store.Playlists(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	villages, err := s.store.Villages(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	type playlistInfo struct {
		name string
		dur  time.Duration
	}
	byID := make(map[int64]playlistInfo, len(pls))
	for _, p := range pls {
		byID[p.ID] = playlistInfo{p.Name, p.Duration()}
	}
	names := make(map[string]string, len(villages))
	for _, v := range villages {
		names[v.Code] = v.Name
	}
	out := api.Calendar{From: from.UTC(), To: to.UTC(), Timezone: playlists.DefaultTimezone, Occurrences: []api.Occurrence{}}
	for _, sc := range scheds {
		occ, err := sc.Occurrences(from, to)
		if err != nil {
			// A stored schedule passed Validate when it was created; one
			// that fails now is logged and left out rather than hiding
			// every other schedule.
			s.log.Error("expand schedule for the calendar", "schedule", sc.ID, "err", err)
			continue
		}
		if len(occ) == 0 {
			continue
		}
		p := byID[sc.PlaylistID]
		summary := targetsSummary(sc.Targets, names)
		reach := len(sc.Targets.Select(villages))
		for _, at := range occ {
			out.Occurrences = append(out.Occurrences, api.Occurrence{
				ScheduleID: sc.ID, PlaylistID: sc.PlaylistID, Playlist: p.name,
				At: at.UTC(), End: at.Add(p.dur).UTC(), DurationMS: p.dur.Milliseconds(),
				Targets: sc.Targets, Summary: summary, Priority: playlists.Routine, VillageCount: reach,
			})
		}
	}
	sort.SliceStable(out.Occurrences, func(i, j int) bool {
		a, b := out.Occurrences[i], out.Occurrences[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return a.ScheduleID < b.ScheduleID
	})
	c.JSON(http.StatusOK, out)
}

// targetsSummary names the targets: the townships, then the villages by
// name (or code, for one no longer in the list); empty for the whole
// county, which the console names in the reader's language.
func targetsSummary(t playlists.Targets, names map[string]string) string {
	if t.All {
		return ""
	}
	parts := append([]string(nil), t.Townships...)
	for _, code := range t.Villages {
		if n := names[code]; n != "" {
			parts = append(parts, n)
		} else {
			parts = append(parts, code)
		}
	}
	return strings.Join(parts, "、")
}
