package httpapi

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/villages"
	"github.com/cunxiang/cunxiang/playlists"
)

// maxCSVBytes bounds a village list (villages.MaxCSVBytes).
const maxCSVBytes = villages.MaxCSVBytes

// Presence of a box that never connected, in api.Village.
const presenceNever = "never"

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func villageOut(v store.VillageState) api.Village {
	out := api.Village{Code: v.Code, Name: v.Name, Township: v.Township, Lat: v.Lat, Lon: v.Lon, Device: v.Device}
	if v.Device != playlists.DeviceAgent {
		return out
	}
	enrolled := v.Agent != nil && !v.Agent.Revoked
	out.Enrolled = &enrolled
	out.Revoked = v.Agent != nil && v.Agent.Revoked
	out.Presence = presenceNever
	if a := v.Agent; a != nil {
		if a.Presence != "" {
			out.Presence = a.Presence
		}
		out.PresenceAt, out.LastSeen, out.EnrolledAt = timePtr(a.PresenceAt), timePtr(a.LastSeen), timePtr(a.EnrolledAt)
		out.AgentVersion = a.AgentVersion
		off := a.ClockOffsetMS
		out.ClockOffsetMS = &off
	}
	return out
}

func (s *Server) getVillages(c *gin.Context) (any, error) {
	return list(c, func(vs []api.Village) api.VillageList { return api.VillageList{Villages: vs} }, s.store.VillageStates, villageOut)
}

// postVillagesImport takes the CSV as the body, or as the multipart field
// "file" (a browser form); the villages service imports it. A list it
// refuses is answered 422.
func (s *Server) postVillagesImport(c *gin.Context) (any, error) {
	var body io.Reader
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt == "multipart/form-data" {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxCSVBytes+1<<20)
		mr, err := c.Request.MultipartReader()
		if err != nil {
			return nil, partError(err, "file", "send the village list in the multipart field \"file\"")
		}
		for body == nil {
			p, err := mr.NextPart()
			if err != nil {
				return nil, partError(err, "file", "send the village list in the multipart field \"file\"")
			}
			if p.FormName() == "file" {
				body = io.LimitReader(p, maxCSVBytes+1)
			}
		}
	} else {
		body = http.MaxBytesReader(c.Writer, c.Request.Body, maxCSVBytes+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	counts, err := s.villages.Import(c.Request.Context(), s.person(c), data)
	if cx.Code(err) == cx.EINVALID {
		return nil, invalidAs(http.StatusUnprocessableEntity, err)
	}
	if err != nil {
		return nil, err
	}
	return api.ImportCounts(counts), nil
}

func enrollTokenOut(et store.EnrollToken) api.EnrollToken {
	return api.EnrollToken{Token: et.Token, Village: et.Village, ExpiresAt: et.ExpiresAt.UTC()}
}

func (s *Server) postEnrollToken(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	et, err := s.villages.EnrollToken(c.Request.Context(), s.person(c), code)
	if err != nil {
		return nil, err
	}
	return reply{http.StatusCreated, enrollTokenOut(et)}, nil
}

// postEnroll is called by a box, with a one-time token instead of a staff
// token.
func (s *Server) postEnroll(c *gin.Context) (any, error) {
	var req api.EnrollRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	servicesAudit(c)
	creds, err := s.villages.Enroll(c.Request.Context(), c.ClientIP(), req)
	if err != nil {
		return nil, err
	}
	c.Set(keyAgent, creds.Village)
	return api.EnrollResponse{
		Village: creds.Village, MQTTUsername: creds.Username, MQTTPassword: creds.Password,
		SigningKey: []byte(s.o.SigningPublicKey), TopicPrefix: s.o.TopicPrefix, Broker: s.o.BrokerURL,
		LastSeq: creds.LastSeq,
	}, nil
}

// postRevokeBox cuts a village's box off (the villages service).
func (s *Server) postRevokeBox(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	v, err := s.villages.Revoke(c.Request.Context(), s.person(c), code)
	if err != nil {
		return nil, err
	}
	return villageOut(v), nil
}

// postReplaceBox replaces a village's box in one step (the villages
// service): the old box is revoked and a new enrollment token issued.
func (s *Server) postReplaceBox(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	et, err := s.villages.Replace(c.Request.Context(), s.person(c), code)
	if err != nil {
		return nil, err
	}
	return reply{http.StatusCreated, enrollTokenOut(et)}, nil
}

// patchVillage edits a village (the villages service): name, township,
// lat, lon, device, each optional.
func (s *Server) patchVillage(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	var req api.VillageChange
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	servicesAudit(c)
	v, err := s.villages.Edit(c.Request.Context(), s.person(c), code, req)
	if err != nil {
		return nil, err
	}
	return villageOut(v), nil
}

func (s *Server) getClock(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, api.ClockResponse{Now: s.now().UTC()})
}

// villageParam reads the :code of a route.
func villageParam(c *gin.Context) (string, error) {
	code := c.Param("code")
	if !api.ValidVillageCode(code) {
		return "", cx.Errorf(cx.ENOTFOUND, "%q is not a 12-digit village code", code).With(api.ReasonVillageCodeInvalid, "code", code)
	}
	return code, nil
}

// village loads the village of the route's :code.
func (s *Server) village(c *gin.Context) (store.VillageState, error) {
	code, err := villageParam(c)
	if err != nil {
		return store.VillageState{}, err
	}
	return s.store.VillageState(c.Request.Context(), code)
}

func (s *Server) getVillage(c *gin.Context) (any, error) {
	v, err := s.village(c)
	if err != nil {
		return nil, err
	}
	return villageOut(v), nil
}

// reaches reports whether targets reach the village.
func reaches(t playlists.Targets, v store.VillageState) bool {
	return len(t.Select([]playlists.Village{{Code: v.Code, Name: v.Name, Township: v.Township, Device: v.Device}})) > 0
}

// maxLookBack bounds ?from= of a village's schedules: the broadcaster
// confirms what was played lately, not last month.
const maxLookBack = 7 * 24 * time.Hour

// getVillageSchedules lists the live schedules that reach a village: what
// its broadcaster has to play (by hand, without a box) and confirm. With
// ?from= (RFC 3339, at most 7 days ago) each also lists its occurrences
// since then; each lists the occurrences the village confirmed.
func (s *Server) getVillageSchedules(c *gin.Context) (any, error) {
	v, err := s.village(c)
	if err != nil {
		return nil, err
	}
	now := s.now()
	from, err := queryTime(c, "from")
	if err != nil {
		return nil, err
	}
	switch {
	case from.After(now):
		return nil, cx.Invalid("from", "is in the future; give the time from which to list past occurrences").With(api.ReasonFromInFuture)
	case !from.IsZero() && now.Sub(from) > maxLookBack:
		return nil, cx.Invalid("from", "is more than 7 days ago; occurrences that old can no longer be confirmed here").With(api.ReasonFromTooOld, "days", int(maxLookBack/(24*time.Hour)))
	}
	ctx := c.Request.Context()
	all, err := s.store.Schedules(ctx, false)
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(sc store.Schedule) bool { return !reaches(sc.Targets, v) })
	since := now.Add(-maxLookBack)
	if !from.IsZero() {
		since = from
	}
	confs, err := s.store.VillageConfirmations(ctx, v.Code, since)
	if err != nil {
		return nil, err
	}
	out := make([]api.VillageSchedule, 0, len(all))
	for _, sc := range all {
		vs := api.VillageSchedule{Schedule: s.scheduleOut(sc), Recent: []time.Time{}, Confirmed: []time.Time{}}
		if !from.IsZero() {
			if occ, err := sc.Occurrences(from, now.Add(time.Nanosecond)); err == nil && occ != nil {
				vs.Recent = occ
			}
		}
		for _, cf := range confs {
			if cf.ScheduleID == sc.ID {
				vs.Confirmed = append(vs.Confirmed, cf.Occurrence.UTC())
			}
		}
		out = append(out, vs)
	}
	return api.VillageScheduleList{Schedules: out}, nil
}

// getVillageBroadcasts lists the recent broadcasts that were sent to a
// village (none waiting for approval or rejected), each marked confirmed
// if the village confirmed playing it by hand.
func (s *Server) getVillageBroadcasts(c *gin.Context) (any, error) {
	v, err := s.village(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Request.Context()
	bs, err := s.store.Broadcasts(ctx, 0)
	if err != nil {
		return nil, err
	}
	bs = slices.DeleteFunc(bs, func(b store.Broadcast) bool { return !b.WasReleased() || !reaches(b.Targets, v) })
	views, err := s.broadcastsOut(ctx, bs)
	if err != nil {
		return nil, err
	}
	// From now: only the broadcasts' confirmations (occurrences are in the past).
	confs, err := s.store.VillageConfirmations(ctx, v.Code, s.now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	confirmed := map[int64]bool{}
	for _, cf := range confs {
		confirmed[cf.BroadcastID] = cf.BroadcastID != 0
	}
	out := make([]api.VillageBroadcast, len(views))
	for i, b := range views {
		out[i] = api.VillageBroadcast{Broadcast: b, Confirmed: confirmed[b.ID]}
	}
	return api.VillageBroadcastList{Broadcasts: out}, nil
}

// getVillageEvents lists the latest reports of a village's box, newest
// first: ?limit= 1..500 (default 20).
func (s *Server) getVillageEvents(c *gin.Context) (any, error) {
	v, err := s.village(c)
	if err != nil {
		return nil, err
	}
	limit := 20
	if l := c.Query("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 500 {
			return nil, cx.Invalid("limit", fmt.Sprintf("%q is not a number from 1 to 500", l)).With(api.ReasonLimitRange, "value", l, "max", 500)
		}
	}
	es, err := s.store.VillageEvents(c.Request.Context(), v.Code, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.VillageEvent, 0, len(es))
	for _, e := range es {
		ev := api.VillageEvent{Seq: e.Seq, Type: e.Type, At: e.At.UTC(), ScheduleID: e.ScheduleID, BroadcastID: e.BroadcastID,
			AudioID: e.AudioID, Reason: e.Reason, Test: e.Test, ReceivedAt: e.ReceivedAt.UTC()}
		if e.Occurrence != "" {
			if t, err := time.Parse(time.RFC3339, e.Occurrence); err == nil {
				ev.Occurrence = &t
			}
		}
		out = append(out, ev)
	}
	return api.VillageEvents{Village: v.Code, Events: out}, nil
}

// postConfirmation records that a village without a box played a
// schedule's occurrence or a broadcast by hand (the villages service).
// Times without an offset are county time.
func (s *Server) postConfirmation(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	var req api.ConfirmationRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	conf := store.Confirmation{Village: code, ScheduleID: req.ScheduleID, BroadcastID: req.BroadcastID, Note: req.Note}
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"occurrence", req.Occurrence, &conf.Occurrence}, {"played_at", req.PlayedAt, &conf.PlayedAt}} {
		if f.v == "" {
			continue
		}
		if *f.dst, err = parseTime(f.name, f.v, loc, playlists.DefaultTimezone); err != nil {
			return nil, err
		}
	}
	servicesAudit(c)
	conf, err = s.villages.Confirm(c.Request.Context(), s.person(c), conf)
	if err != nil {
		return nil, err
	}
	out := api.Confirmation{ID: conf.ID, Village: conf.Village, ScheduleID: conf.ScheduleID, BroadcastID: conf.BroadcastID,
		PlayedAt: conf.PlayedAt.UTC(), Note: conf.Note, CreatedAt: conf.CreatedAt.UTC(), CreatedBy: conf.CreatedBy}
	if conf.ScheduleID != 0 {
		out.Occurrence = timePtr(conf.Occurrence)
	}
	return reply{http.StatusCreated, out}, nil
}
