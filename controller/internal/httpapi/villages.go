package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/villagecsv"
	"github.com/cunxiang/cunxiang/playlists"
)

// maxCSVBytes bounds a village list: a province's 20,000 villages fit in
// a few megabytes.
const maxCSVBytes = 16 << 20

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
// "file" (a browser form).
func (s *Server) postVillagesImport(c *gin.Context) {
	var body io.Reader
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt == "multipart/form-data" {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxCSVBytes+1<<20)
		mr, err := c.Request.MultipartReader()
		if err != nil {
			s.fail(c, partError(err, "file", "send the village list in the multipart field \"file\""))
			return
		}
		for body == nil {
			p, err := mr.NextPart()
			if err != nil {
				s.fail(c, partError(err, "file", "send the village list in the multipart field \"file\""))
				return
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
		s.fail(c, err)
		return
	}
	if len(data) > maxCSVBytes {
		s.fail(c, cx.Errorf(cx.ETOOLARGE, "the village list is larger than %s; split it", sizeText(maxCSVBytes)).With(api.ReasonCSVTooLarge, "limit", sizeText(maxCSVBytes)))
		return
	}
	rows, err := villagecsv.Parse(bytes.NewReader(data))
	if err != nil {
		s.failStatus(c, http.StatusUnprocessableEntity, err)
		return
	}
	vs := make([]store.Village, len(rows))
	for i, r := range rows {
		vs[i] = store.Village{Code: r.Code, Name: r.Name, Township: r.Township, Lat: r.Lat, Lon: r.Lon, Device: r.Device}
	}
	counts, err := s.store.ImportVillages(c.Request.Context(), vs)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.VillageImport, "villages", audit.Params{"created": audit.Int(counts.Created), "updated": audit.Int(counts.Updated), "total": audit.Int(counts.Total)})
	c.JSON(http.StatusOK, api.ImportCounts(counts))
}

func (s *Server) postEnrollToken(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	et, err := s.store.CreateEnrollToken(c.Request.Context(), code, s.o.EnrollTTL, actor(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.VillageEnrollToken, "village/"+code, audit.Params{"expires_at": audit.Time(et.ExpiresAt)})
	c.JSON(http.StatusCreated, api.EnrollToken{Token: et.Token, Village: et.Village, ExpiresAt: et.ExpiresAt.UTC()})
}

// postEnroll is called by a box, with a one-time token instead of a staff
// token.
func (s *Server) postEnroll(c *gin.Context) {
	var req api.EnrollRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Token == "" {
		s.fail(c, &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonEnrollTokenMissing, Message: "give the enrollment token from the office"})
		return
	}
	if req.Village != "" && !api.ValidVillageCode(req.Village) {
		s.fail(c, cx.Invalid("village", "must be the 12-digit village code").With(api.ReasonVillageCodeInvalid, "code", req.Village))
		return
	}
	if len(req.AgentVersion) > 100 {
		s.fail(c, cx.Invalid("agent_version", "is longer than 100 characters").With(api.ReasonAgentVersionTooLong, "max", 100))
		return
	}
	var provision func(context.Context, store.AgentCredentials) error
	if s.o.BrokerAccounts != nil {
		provision = func(ctx context.Context, cr store.AgentCredentials) error {
			if err := s.o.BrokerAccounts.PutBox(ctx, cr.Village, cr.Username, cr.Password); err != nil {
				s.log.Error("create box account on the broker", "village", cr.Village, "err", err)
				return &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonBrokerEnrollFailed, Message: "the MQTT broker did not accept this box's account; the token is still valid, try again shortly"}
			}
			return nil
		}
	}
	creds, err := s.store.EnrollWith(c.Request.Context(), req, provision)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The old password no longer works: cut the sessions opened with it
	// before the new box learns its own.
	if s.o.BoxSessions != nil {
		s.o.BoxSessions.Revoke(creds.Village)
	}
	c.Set(keyAgent, creds.Village)
	noteAudit(c, audit.AgentEnroll, "village/"+creds.Village, audit.Params{"version": req.AgentVersion})
	c.JSON(http.StatusOK, api.EnrollResponse{
		Village: creds.Village, MQTTUsername: creds.Username, MQTTPassword: creds.Password,
		SigningKey: []byte(s.o.SigningPublicKey), TopicPrefix: s.o.TopicPrefix, Broker: s.o.BrokerURL,
		LastSeq: creds.LastSeq,
	})
}

// postRevokeBox cuts a village's box off: its credentials stop working
// and its open sessions are disconnected at once (a stolen or lost box).
// A new box enrolls with a new token.
func (s *Server) postRevokeBox(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.revokeBox(c, code) {
		return
	}
	v, err := s.store.VillageState(c.Request.Context(), code)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, villageOut(v))
}

// revokeBox revokes a village's box and notes it for the audit log; it
// answers the error itself and returns false if it failed.
func (s *Server) revokeBox(c *gin.Context, code string) bool {
	var unprovision func(context.Context, string) error
	if s.o.BrokerAccounts != nil {
		unprovision = func(ctx context.Context, username string) error {
			if err := s.o.BrokerAccounts.DeleteBox(ctx, code, username); err != nil {
				s.log.Error("delete box account on the broker", "village", code, "err", err)
				return &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonBrokerRevokeFailed, Message: "the MQTT broker did not delete this box's account, so nothing was revoked; try again shortly"}
			}
			return nil
		}
	}
	if err := s.store.RevokeAgent(c.Request.Context(), code, unprovision); err != nil {
		s.fail(c, err)
		return false
	}
	if s.o.BoxSessions != nil {
		s.o.BoxSessions.Revoke(code)
	}
	noteAudit(c, audit.AgentRevoke, "village/"+code, nil)
	return true
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

func (s *Server) getVillage(c *gin.Context) {
	v, err := s.village(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, villageOut(v))
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
func (s *Server) getVillageSchedules(c *gin.Context) {
	v, err := s.village(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	now := s.now()
	from, err := queryTime(c, "from")
	if err != nil {
		s.fail(c, err)
		return
	}
	switch {
	case from.After(now):
		s.fail(c, cx.Invalid("from", "is in the future; give the time from which to list past occurrences").With(api.ReasonFromInFuture))
		return
	case !from.IsZero() && now.Sub(from) > maxLookBack:
		s.fail(c, cx.Invalid("from", "is more than 7 days ago; occurrences that old can no longer be confirmed here").With(api.ReasonFromTooOld, "days", int(maxLookBack/(24*time.Hour))))
		return
	}
	ctx := c.Request.Context()
	all, err := s.store.Schedules(ctx, false)
	if err != nil {
		s.fail(c, err)
		return
	}
	all = slices.DeleteFunc(all, func(sc store.Schedule) bool { return !reaches(sc.Targets, v) })
	since := now.Add(-maxLookBack)
	if !from.IsZero() {
		since = from
	}
	confs, err := s.store.VillageConfirmations(ctx, v.Code, since)
	if err != nil {
		s.fail(c, err)
		return
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
	c.JSON(http.StatusOK, api.VillageScheduleList{Schedules: out})
}

// getVillageBroadcasts lists the recent broadcasts that were sent to a
// village (none waiting for approval or rejected), each marked confirmed
// if the village confirmed playing it by hand.
func (s *Server) getVillageBroadcasts(c *gin.Context) {
	v, err := s.village(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	bs, err := s.store.Broadcasts(ctx, 0)
	if err != nil {
		s.fail(c, err)
		return
	}
	bs = slices.DeleteFunc(bs, func(b store.Broadcast) bool { return !b.WasReleased() || !reaches(b.Targets, v) })
	views, err := s.broadcastsOut(ctx, bs)
	if err != nil {
		s.fail(c, err)
		return
	}
	// From now: only the broadcasts' confirmations (occurrences are in the past).
	confs, err := s.store.VillageConfirmations(ctx, v.Code, s.now().Add(time.Hour))
	if err != nil {
		s.fail(c, err)
		return
	}
	confirmed := map[int64]bool{}
	for _, cf := range confs {
		confirmed[cf.BroadcastID] = cf.BroadcastID != 0
	}
	out := make([]api.VillageBroadcast, len(views))
	for i, b := range views {
		out[i] = api.VillageBroadcast{Broadcast: b, Confirmed: confirmed[b.ID]}
	}
	c.JSON(http.StatusOK, api.VillageBroadcastList{Broadcasts: out})
}

// getVillageEvents lists the latest reports of a village's box, newest
// first: ?limit= 1..500 (default 20).
func (s *Server) getVillageEvents(c *gin.Context) {
	v, err := s.village(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	limit := 20
	if l := c.Query("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 500 {
			s.fail(c, cx.Invalid("limit", fmt.Sprintf("%q is not a number from 1 to 500", l)).With(api.ReasonLimitRange, "value", l, "max", 500))
			return
		}
	}
	es, err := s.store.VillageEvents(c.Request.Context(), v.Code, limit)
	if err != nil {
		s.fail(c, err)
		return
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
	c.JSON(http.StatusOK, api.VillageEvents{Village: v.Code, Events: out})
}

// postConfirmation records that a village without a box played a
// schedule's occurrence or a broadcast by hand. Coverage counts it as
// played, confirmed_by_hand.
func (s *Server) postConfirmation(c *gin.Context) {
	code, err := villageParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req api.ConfirmationRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	conf := store.Confirmation{Village: code, ScheduleID: req.ScheduleID, BroadcastID: req.BroadcastID, Note: strings.TrimSpace(req.Note), CreatedBy: actor(c)}
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"occurrence", req.Occurrence, &conf.Occurrence}, {"played_at", req.PlayedAt, &conf.PlayedAt}} {
		if f.v == "" {
			continue
		}
		if *f.dst, err = parseTime(f.name, f.v, loc, playlists.DefaultTimezone); err != nil {
			s.fail(c, err)
			return
		}
	}
	if conf.ScheduleID == 0 && !conf.Occurrence.IsZero() {
		s.fail(c, cx.Invalid("occurrence", "goes with schedule_id; a broadcast has no occurrences").With(api.ReasonConfirmWhich))
		return
	}
	conf, err = s.store.CreateConfirmation(c.Request.Context(), conf)
	if err != nil {
		s.fail(c, err)
		return
	}
	p := audit.Params{"played_at": audit.Time(conf.PlayedAt), "note": conf.Note}
	if conf.ScheduleID != 0 {
		p["schedule"], p["occurrence_at"] = audit.Int(conf.ScheduleID), audit.Time(conf.Occurrence)
	} else {
		p["broadcast"] = audit.Int(conf.BroadcastID)
	}
	noteAudit(c, audit.ConfirmationCreate, "village/"+code, p)
	out := api.Confirmation{ID: conf.ID, Village: conf.Village, ScheduleID: conf.ScheduleID, BroadcastID: conf.BroadcastID,
		PlayedAt: conf.PlayedAt.UTC(), Note: conf.Note, CreatedAt: conf.CreatedAt.UTC(), CreatedBy: conf.CreatedBy}
	if conf.ScheduleID != 0 {
		out.Occurrence = timePtr(conf.Occurrence)
	}
	c.JSON(http.StatusCreated, out)
}
