package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Broadcast states as the API shows them (broadcasts.State).
const (
	statePending    = broadcasts.StatePending
	stateScheduled  = broadcasts.StateScheduled
	stateSending    = broadcasts.StateSending
	stateInProgress = broadcasts.StateInProgress
	stateDone       = broadcasts.StateDone
	stateCancelled  = broadcasts.StateCancelled
	stateExpired    = broadcasts.StateExpired
	stateRejected   = broadcasts.StateRejected
)

// maxText bounds the text of a text-to-speech request, in characters.
const maxText = broadcasts.MaxText

// draft decodes a broadcast request into what the broadcasts service
// takes; the service checks the rest.
func draft(r api.BroadcastRequest) (broadcasts.Draft, error) {
	d := broadcasts.Draft{AudioID: r.AudioID, PlaylistID: r.PlaylistID, Text: r.Text, Voice: r.Voice, Targets: r.Targets,
		Priority: r.Priority, Severity: r.Severity, EventType: r.EventType, Repeat: r.Repeat,
		Volume: r.Volume, ForceFullVolume: r.ForceFullVolume, Test: r.Test}
	if r.ExpiresAt == "" {
		return d, nil // the service says it is needed
	}
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	exp, err := parseTime("expires_at", r.ExpiresAt, loc, playlists.DefaultTimezone)
	d.ExpiresAt = exp
	return d, err
}

// person is who makes the request, as the services know them.
func (s *Server) person(c *gin.Context) broadcasts.Person {
	t := token(c)
	return broadcasts.Person{Name: t.Name, Key: t.Principal(), Role: t.Role, Village: t.Village, DisplayName: s.nameOf(t.Name), From: c.ClientIP()}
}

// broadcastAnswer is a broadcast just changed, as the API shows it.
func (s *Server) broadcastAnswer(b store.Broadcast) api.Broadcast {
	return s.named(broadcastOut(b, store.BroadcastProgress{}, 0, s.now()))
}

func (s *Server) postBroadcast(c *gin.Context) (any, error) {
	var req api.BroadcastRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	d, err := draft(req)
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	b, err := s.broadcasts.Create(c.Request.Context(), s.person(c), d)
	if err != nil {
		return nil, err
	}
	return reply{http.StatusAccepted, s.broadcastAnswer(b)}, nil
}

func (s *Server) postApprove(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	b, err := s.broadcasts.Approve(c.Request.Context(), s.person(c), id)
	if err != nil {
		return nil, err
	}
	return s.broadcastAnswer(b), nil
}

func (s *Server) postReject(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	var req api.RejectRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	servicesAudit(c)
	b, err := s.broadcasts.Reject(c.Request.Context(), s.person(c), id, req.Reason)
	if err != nil {
		return nil, err
	}
	return s.broadcastAnswer(b), nil
}

// deleteBroadcast cancels a broadcast and, if it was ever released, tells
// the boxes. Repeating it repeats the cancellation on the boxes.
func (s *Server) deleteBroadcast(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	b, err := s.broadcasts.Cancel(c.Request.Context(), s.person(c), id)
	if err != nil {
		return nil, err
	}
	return s.broadcastAnswer(b), nil
}

// postResend publishes a released broadcast again: after a failed
// delivery, or to be sure. Boxes that have it already ignore it.
func (s *Server) postResend(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	b, err := s.broadcasts.Resend(c.Request.Context(), s.person(c), id)
	if err != nil {
		return nil, err
	}
	return s.broadcastAnswer(b), nil
}

func (s *Server) getBroadcasts(c *gin.Context) (any, error) {
	limit, _ := strconv.Atoi(c.Query("limit"))
	bs, err := s.store.Broadcasts(c.Request.Context(), limit)
	if err != nil {
		return nil, err
	}
	return s.broadcastList(c.Request.Context(), bs)
}

// broadcastList is a list of broadcasts with their states, in a fixed
// number of queries.
func (s *Server) broadcastList(ctx context.Context, bs []store.Broadcast) (api.BroadcastList, error) {
	out, err := s.broadcastsOut(ctx, bs)
	return api.BroadcastList{Broadcasts: out}, err
}

// broadcastsOut is broadcasts with their states, in a fixed number of
// queries.
func (s *Server) broadcastsOut(ctx context.Context, bs []store.Broadcast) ([]api.Broadcast, error) {
	out := make([]api.Broadcast, 0, len(bs))
	if len(bs) == 0 {
		return out, nil
	}
	villages, err := s.store.Villages(ctx)
	if err != nil {
		return nil, err
	}
	lo, hi := bs[0].ID, bs[0].ID
	for _, b := range bs {
		lo, hi = min(lo, b.ID), max(hi, b.ID)
	}
	progress, err := s.store.BroadcastProgresses(ctx, lo, hi)
	if err != nil {
		return nil, err
	}
	now := s.now()
	names := s.displayNames(ctx)
	for _, b := range bs {
		o := s.named(broadcastOut(b, progress[b.ID], boxesReached(b.Targets, villages), now))
		if n := names[b.CreatedByKey]; n != "" {
			o.CreatedByName = n
		}
		out = append(out, o)
	}
	return out, nil
}

// displayNames maps each user's person ("user/3") to their display name;
// empty if the users cannot be read (the lists then show created_by).
func (s *Server) displayNames(ctx context.Context) map[string]string {
	us, err := s.store.Users(ctx, true)
	if err != nil {
		s.log.Error("display names", "err", err)
		return nil
	}
	out := make(map[string]string, len(us))
	for _, u := range us {
		if u.DisplayName != "" {
			out["user/"+strconv.FormatInt(u.ID, 10)] = u.DisplayName
		}
	}
	return out
}

func (s *Server) getBroadcast(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	b, err := s.store.GetBroadcast(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	return s.broadcastView(c.Request.Context(), b)
}

// broadcastView is one broadcast with its state.
func (s *Server) broadcastView(ctx context.Context, b store.Broadcast) (api.Broadcast, error) {
	villages, err := s.store.Villages(ctx)
	if err != nil {
		return api.Broadcast{}, err
	}
	progress, err := s.store.BroadcastProgresses(ctx, b.ID, b.ID)
	if err != nil {
		return api.Broadcast{}, err
	}
	return s.named(broadcastOut(b, progress[b.ID], boxesReached(b.Targets, villages), s.now())), nil
}

// boxesReached counts the targeted villages that have a box.
func boxesReached(t playlists.Targets, villages []playlists.Village) int {
	n := 0
	for _, v := range t.Select(villages) {
		if v.Device == playlists.DeviceAgent {
			n++
		}
	}
	return n
}

// broadcastState is the state the API shows: see the state constants.
func broadcastState(b store.Broadcast, p store.BroadcastProgress, boxes int, now time.Time) string {
	return broadcasts.State(b, p, boxes, now)
}

// named fills in the display names of a broadcast's people.
func (s *Server) named(b api.Broadcast) api.Broadcast {
	b.CreatedByName, b.ApprovedByName = s.nameOf(b.CreatedBy), s.nameOf(b.ApprovedBy)
	b.RejectedByName, b.CancelledByName = s.nameOf(b.RejectedBy), s.nameOf(b.CancelledBy)
	return b
}

func broadcastOut(b store.Broadcast, p store.BroadcastProgress, boxes int, now time.Time) api.Broadcast {
	out := api.Broadcast{
		ID: b.ID, State: broadcastState(b, p, boxes, now), Test: b.Test, Priority: b.Priority, Severity: b.Severity,
		EventType: b.EventType, AudioID: b.AudioID, PlaylistID: b.PlaylistID, Text: b.Text, Playlist: b.Playlist,
		Targets: b.Targets, Groups: b.Groups, Repeat: b.Repeat, Volume: b.Volume, ForceFullVolume: b.ForceFullVolume,
		ExpiresAt: b.ExpiresAt.UTC(), NeedsApproval: b.NeedsApproval, CreatedAt: b.CreatedAt.UTC(), CreatedBy: b.CreatedBy,
		SentAt: timePtr(b.SentAt), SendError: b.SendError, CancelledAt: timePtr(b.CancelledAt), CancelledBy: b.CancelledBy,
		Source: b.Source, EBMID: b.EBMID, StartsAt: timePtr(b.StartsAt),
		CreatedByKey: b.CreatedByKey,
		Progress:     api.BroadcastProgress{Boxes: boxes, Started: p.Started, Reported: p.Final, Played: p.Played, Confirmed: p.Confirmed},
	}
	if out.Groups == nil {
		out.Groups = []api.Group{}
	}
	if !b.DecidedAt.IsZero() {
		if b.State == api.BroadcastRejected {
			out.RejectedAt, out.RejectedBy, out.RejectReason = timePtr(b.DecidedAt), b.DecidedBy, b.DecisionReason
		} else {
			out.ApprovedAt, out.ApprovedBy = timePtr(b.DecidedAt), b.DecidedBy
		}
	}
	return out
}

// getBroadcastCoverage reports which targeted villages played a
// broadcast (the reports service).
func (s *Server) getBroadcastCoverage(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	asCSV, err := coverageFormat(c)
	if err != nil {
		return nil, err
	}
	cov, err := s.reports.Broadcast(c.Request.Context(), s.person(c), id)
	if err != nil {
		return nil, err
	}
	if asCSV {
		writeCoverageCSV(c, fmt.Sprintf("broadcast-%d-not-played", cov.BroadcastID), cov.CoverageDetail)
		return nil, nil
	}
	return cov, nil
}
