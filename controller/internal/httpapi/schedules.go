package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/schedules"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

// scheduleDraft decodes a schedule request into what the schedules
// service takes: a wall-clock once_at is read in the schedule's time zone
// (schedules.Location); the service checks the rest.
func scheduleDraft(r api.ScheduleRequest) (schedules.Draft, error) {
	d := schedules.Draft{PlaylistID: r.PlaylistID, Targets: r.Targets, Timezone: r.Timezone, Recurring: r.Recurring}
	if r.OnceAt == nil || *r.OnceAt == "" {
		return d, nil
	}
	loc, err := schedules.Location(r.Timezone)
	if err != nil {
		return d, err
	}
	t, err := parseTime("once_at", *r.OnceAt, loc, "the schedule's time zone")
	if err != nil {
		return d, err
	}
	d.OnceAt = &t
	return d, nil
}

// parseTime reads a time with a UTC offset (RFC 3339) or, when loc is not
// nil, a wall-clock time in loc (whose name zone gives in messages).
func parseTime(field, v string, loc *time.Location, zone string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if loc != nil {
		for _, layout := range localLayouts {
			if t, err := time.ParseInLocation(layout, v, loc); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, cx.Invalid(field, fmt.Sprintf("%q is not a time such as 2026-03-01T07:00:00+08:00 (or 2026-03-01T07:00 in %s)", v, zone)).With(api.ReasonTimeInvalid, "value", v)
}

// nextCount is how many coming occurrences a schedule shows.
const nextCount = 5

func (s *Server) scheduleOut(sc store.Schedule) api.Schedule {
	out := api.Schedule{Schedule: sc.Schedule, Groups: sc.Groups, CreatedAt: sc.CreatedAt.UTC(), CreatedBy: sc.CreatedBy,
		WithdrawnAt: timePtr(sc.WithdrawnAt), Next: []time.Time{}, CreatedByName: s.nameOf(sc.CreatedBy)}
	if out.Groups == nil {
		out.Groups = []api.Group{}
	}
	if sc.WithdrawnAt.IsZero() {
		if next, err := sc.Next(s.now(), nextCount); err == nil && next != nil {
			out.Next = next
		}
	}
	switch {
	case !sc.WithdrawnAt.IsZero():
		out.State = "withdrawn"
	case len(out.Next) > 0:
		out.State = "active"
	default:
		out.State = "ended"
	}
	return out
}

func (s *Server) postSchedule(c *gin.Context) (any, error) {
	var req api.ScheduleRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	d, err := scheduleDraft(req)
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	sc, pending, err := s.schedules.Create(c.Request.Context(), s.person(c), d)
	if err != nil {
		return nil, err
	}
	return reply{deliveredStatus(c, pending, http.StatusCreated), s.scheduleOut(sc)}, nil
}

// deliveredStatus is the status of a change whose delivery a service
// waited for: status if the broker took it, 202 Accepted with the header
// X-Cunxiang-Delivery: pending if the controller is still trying (it goes
// on by itself; nothing needs sending again).
func deliveredStatus(c *gin.Context, pending bool, status int) int {
	if pending {
		c.Header("X-Cunxiang-Delivery", "pending")
		return http.StatusAccepted
	}
	return status
}

func (s *Server) getSchedules(c *gin.Context) (any, error) {
	withdrawn := c.Query("withdrawn") == "true" || c.Query("withdrawn") == "1"
	load := func(ctx context.Context) ([]store.Schedule, error) { return s.store.Schedules(ctx, withdrawn) }
	return list(c, func(ss []api.Schedule) api.ScheduleList { return api.ScheduleList{Schedules: ss} }, load, s.scheduleOut)
}

func (s *Server) getSchedule(c *gin.Context) (any, error) {
	return byID(c, s.store.GetSchedule, s.scheduleOut)
}

// deleteSchedule withdraws a schedule (schedules.Service.Withdraw).
// Repeating it repeats the withdrawal on the boxes.
func (s *Server) deleteSchedule(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	sc, pending, err := s.schedules.Withdraw(c.Request.Context(), s.person(c), id)
	if err != nil {
		return nil, err
	}
	return reply{deliveredStatus(c, pending, http.StatusOK), s.scheduleOut(sc)}, nil
}

// getCoverage reports, for one occurrence of a schedule, which targeted
// villages played it. It reads the schedule, its playlist, the villages
// and the reports in a fixed number of queries, whatever the county size.
func (s *Server) getCoverage(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	asCSV, err := coverageFormat(c)
	if err != nil {
		return nil, err
	}
	at, err := queryTime(c, "at")
	if err != nil {
		return nil, err
	}
	cov, err := s.reports.Schedule(c.Request.Context(), s.person(c), id, at)
	if err != nil {
		return nil, err
	}
	if asCSV {
		writeCoverageCSV(c, fmt.Sprintf("schedule-%d-%s-not-played", cov.ScheduleID, cov.Occurrence.Format("20060102T1504Z")), cov.CoverageDetail)
		return nil, nil
	}
	return cov, nil
}
