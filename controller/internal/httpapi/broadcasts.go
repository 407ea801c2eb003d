package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Broadcast states as the API shows them. pending_approval, rejected and
// cancelled are what people decided; the others follow from the time and
// the boxes' reports.
const (
	statePending    = "pending_approval" // waiting for a second person
	stateSending    = "sending"          // released; no box has reported on it yet (or delivery failed: send_error)
	stateInProgress = "in_progress"      // boxes are playing it or have reported on it
	stateDone       = "done"             // every targeted box reported, or it expired after someone played it
	stateCancelled  = "cancelled"
	stateExpired    = "expired" // it expired before approval, or before any village played it
	stateRejected   = "rejected"
)

// maxText bounds the text of a text-to-speech broadcast, in characters
// (what tts.Espeak speaks in one go).
const maxText = 2000

// broadcast checks the request's fields, naming the one at fault.
func (s *Server) broadcast(r api.BroadcastRequest, now time.Time) (store.Broadcast, error) {
	b := store.Broadcast{AudioID: r.AudioID, PlaylistID: r.PlaylistID, Text: strings.TrimSpace(r.Text), Targets: r.Targets,
		Priority: r.Priority, Severity: r.Severity, EventType: strings.TrimSpace(r.EventType), Repeat: r.Repeat,
		Volume: r.Volume, ForceFullVolume: r.ForceFullVolume, Test: r.Test}
	sources := 0
	for _, given := range []bool{b.AudioID != 0, b.PlaylistID != 0, b.Text != ""} {
		if given {
			sources++
		}
	}
	switch {
	case sources != 1:
		return b, cx.Invalid("audio_id", "give exactly one of audio_id, playlist_id and text: what to play").With(api.ReasonContentChooseOne)
	case b.AudioID < 0:
		return b, cx.Invalid("audio_id", "must name an uploaded clip").With(api.ReasonClipNotFound, "id", b.AudioID)
	case b.PlaylistID < 0:
		return b, cx.Invalid("playlist_id", "must name a playlist").With(api.ReasonPlaylistNotFound, "id", b.PlaylistID)
	case !utf8.ValidString(b.Text) || utf8.RuneCountInString(b.Text) > maxText:
		return b, cx.Invalid("text", fmt.Sprintf("must be UTF-8 text of at most %d characters", maxText)).With(api.ReasonTextTooLong, "max", maxText)
	case b.Targets.Empty():
		return b, cx.Invalid("targets", "choose who hears it: all, townships by name or villages by code").With(api.ReasonTargetsEmpty)
	case !b.Priority.Valid():
		return b, cx.Invalid("priority", `must be "emergency", "urgent" or "routine"`).With(api.ReasonPriorityInvalid)
	case b.Severity < 1 || b.Severity > 4:
		return b, cx.Invalid("severity", "must be 1 (I, red), 2 (II, orange), 3 (III, yellow) or 4 (IV, blue)").With(api.ReasonSeverityInvalid)
	case utf8.RuneCountInString(b.EventType) > 64:
		return b, cx.Invalid("event_type", "is longer than 64 characters").With(api.ReasonEventTypeTooLong)
	case b.Repeat < 0 || b.Repeat > playlists.MaxRepeat:
		return b, cx.Invalid("repeat", fmt.Sprintf("must be between 1 and %d (0 means 1)", playlists.MaxRepeat)).With(api.ReasonRepeatRange, "max", playlists.MaxRepeat)
	case b.Volume < 0 || b.Volume > 100:
		return b, cx.Invalid("volume", "must be a percentage from 1 to 100 (0 keeps the box's own)").With(api.ReasonVolumeRange)
	case b.ForceFullVolume && b.Priority != playlists.Emergency:
		return b, cx.Invalid("force_full_volume", "only an emergency broadcast may force full volume").With(api.ReasonFullVolumeEmergency)
	case r.ExpiresAt == "":
		return b, cx.Invalid("expires_at", "give the time after which the broadcast must no longer play").With(api.ReasonExpiresRequired)
	}
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	exp, err := parseTime("expires_at", r.ExpiresAt, loc, playlists.DefaultTimezone)
	if err != nil {
		return b, err
	}
	switch {
	case !exp.After(now):
		return b, cx.Invalid("expires_at", fmt.Sprintf("%s is not in the future", exp.Format(time.RFC3339))).With(api.ReasonExpiresPast)
	case exp.After(now.Add(s.o.MaxBroadcastTTL)):
		return b, cx.Invalid("expires_at", fmt.Sprintf("is more than %s ahead; a broadcast may last at most that long", durationText(s.o.MaxBroadcastTTL))).With(api.ReasonExpiresTooFar, "hours", s.o.MaxBroadcastTTL.Hours())
	}
	b.ExpiresAt = exp
	return b, nil
}

func durationText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// needsApproval is the two-person rule (Options.ApprovalThreshold).
func (s *Server) needsApproval(b store.Broadcast) func(reached []playlists.Village) bool {
	return func(reached []playlists.Village) bool {
		if b.Priority.Rank() < playlists.Urgent.Rank() {
			return false
		}
		for _, t := range s.o.PreApprovedEventTypes {
			if t != "" && strings.EqualFold(t, b.EventType) {
				return false
			}
		}
		if s.o.ApprovalThreshold < 0 || b.Targets.All {
			return true
		}
		towns := map[string]bool{}
		for _, v := range reached {
			towns[v.Township] = true
		}
		return len(towns) > s.o.ApprovalThreshold
	}
}

func (s *Server) postBroadcast(c *gin.Context) {
	var req api.BroadcastRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	b, err := s.createBroadcast(c, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, s.named(broadcastOut(b, store.BroadcastProgress{}, 0, s.now())))
}

// createBroadcast is how every broadcast starts, whether an operator posts
// it or a CAP alert brings it: it checks the request, speaks its text into
// a clip of the library, stores it under the two-person rule, notes it for
// the audit log, and sends it at once unless it waits for approval. The
// caller of the request is its creator. If delivery fails, the stored
// broadcast is returned with the error (it can be resent).
func (s *Server) createBroadcast(c *gin.Context, req api.BroadcastRequest) (store.Broadcast, error) {
	b, err := s.broadcast(req, s.now())
	if err != nil {
		return store.Broadcast{}, err
	}
	ctx := c.Request.Context()
	if b.Text != "" {
		a, _, _, err := s.speak(ctx, b.Text, req.Voice, "TTS: "+speechTitle(b.Text), token(c).Name)
		if err != nil {
			return store.Broadcast{}, err
		}
		b.AudioID = a.ID
	}
	t := token(c)
	b.CreatedBy, b.CreatedByKey = t.Name, t.Principal()
	b, err = s.store.CreateBroadcast(ctx, b, s.needsApproval(b))
	if err != nil {
		return store.Broadcast{}, err
	}
	noteAudit(c, audit.BroadcastCreate, broadcastObject(b), broadcastParams(b))
	if b.State == store.BroadcastReleased {
		return s.send(ctx, b)
	}
	return b, nil
}

func broadcastObject(b store.Broadcast) string { return "broadcast/" + strconv.FormatInt(b.ID, 10) }

// broadcastParams are the audit log's account of a broadcast created or
// approved.
func broadcastParams(b store.Broadcast) audit.Params {
	p := audit.Params{"priority": string(b.Priority), "severity": audit.Int(b.Severity), "event_type": b.EventType,
		"content": b.Text, "groups": audit.List(b.Groups), "expires_at": audit.Time(b.ExpiresAt),
		"needs_approval": audit.Flag(b.NeedsApproval), "test": audit.Flag(b.Test)}
	if p["content"] == "" {
		p["content"] = b.Playlist.Name
	}
	if b.AudioID != 0 {
		p["audio"] = audit.Int(b.AudioID)
	} else {
		p["playlist"] = audit.Int(b.PlaylistID)
	}
	return p
}

// send waits for a released broadcast, which the store put in the
// outbox, to reach the broker. If it does not in time it stays released
// with SendError, and the publisher goes on trying.
func (s *Server) send(ctx context.Context, b store.Broadcast) (store.Broadcast, error) {
	derr := s.deliver(ctx, store.OutboxBroadcast, store.IDRef(b.ID))
	if sent, err := s.store.GetBroadcast(context.WithoutCancel(ctx), b.ID); err == nil {
		b = sent
	}
	if derr != nil {
		return b, &cx.Error{Code: cx.EINTERNAL, Reason: api.ReasonBroadcastNotDelivered, Params: cx.Params("id", b.ID), Message: fmt.Sprintf(
			"broadcast %d is released and stored, but the broker has not taken it yet; the controller keeps sending it by itself (details are in its log)", b.ID)}
	}
	return b, nil
}

func (s *Server) postApprove(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	t := token(c)
	b, err := s.store.DecideBroadcast(ctx, id, true, t.Name, t.Principal(), "")
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.BroadcastApprove, broadcastObject(b), broadcastParams(b))
	if b, err = s.send(ctx, b); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.named(broadcastOut(b, store.BroadcastProgress{}, 0, s.now())))
}

func (s *Server) postReject(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req api.RejectRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	switch {
	case req.Reason == "":
		s.fail(c, cx.Invalid("reason", "say why, so the operator knows what to change").With(api.ReasonRejectWhy))
		return
	case len(req.Reason) > 500:
		s.fail(c, cx.Invalid("reason", "is longer than 500 bytes").With(api.ReasonRejectTooLong))
		return
	}
	t := token(c)
	b, err := s.store.DecideBroadcast(c.Request.Context(), id, false, t.Name, t.Principal(), req.Reason)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.BroadcastReject, broadcastObject(b), audit.Params{"reason": req.Reason})
	c.JSON(http.StatusOK, s.named(broadcastOut(b, store.BroadcastProgress{}, 0, s.now())))
}

// deleteBroadcast cancels a broadcast and, if it was ever released, tells
// the boxes. Repeating it repeats the cancellation on the boxes.
func (s *Server) deleteBroadcast(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	b, err := s.cancelBroadcast(c, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.named(broadcastOut(b, store.BroadcastProgress{}, 0, s.now())))
}

// cancelBroadcast cancels a broadcast in the name of the caller, notes it
// for the audit log and, if it was ever released, tells the boxes.
func (s *Server) cancelBroadcast(c *gin.Context, id int64) (store.Broadcast, error) {
	ctx := c.Request.Context()
	b, err := s.store.CancelBroadcast(ctx, id, actor(c))
	if err != nil {
		return b, err
	}
	noteAudit(c, audit.BroadcastCancel, broadcastObject(b), audit.Params{"groups": audit.List(b.Groups)})
	if b.WasReleased() {
		if err := s.deliver(ctx, store.OutboxCancel, store.IDRef(b.ID)); err != nil {
			return b, &cx.Error{Code: cx.EINTERNAL, Reason: api.ReasonCancelNotDelivered, Params: cx.Params("id", b.ID), Message: fmt.Sprintf(
				"broadcast %d is cancelled and stored, but the broker has not taken the cancellation yet; the controller keeps sending it by itself (details are in its log)", b.ID)}
		}
	}
	return b, nil
}

// postResend publishes a released broadcast again: after a failed
// delivery, or to be sure. Boxes that have it already ignore it.
func (s *Server) postResend(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	b, err := s.store.ResendBroadcast(ctx, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.BroadcastResend, broadcastObject(b), audit.Params{"groups": audit.List(b.Groups)})
	if b, err = s.send(ctx, b); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.named(broadcastOut(b, store.BroadcastProgress{}, 0, s.now())))
}

func (s *Server) getBroadcasts(c *gin.Context) {
	limit, _ := strconv.Atoi(c.Query("limit"))
	ctx := c.Request.Context()
	bs, err := s.store.Broadcasts(ctx, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerBroadcasts(c, bs)
}

// answerBroadcasts answers a list of broadcasts with their states, in a
// fixed number of queries.
func (s *Server) answerBroadcasts(c *gin.Context, bs []store.Broadcast) {
	out, err := s.broadcastsOut(c.Request.Context(), bs)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, api.BroadcastList{Broadcasts: out})
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

func (s *Server) getBroadcast(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	b, err := s.store.GetBroadcast(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	out, err := s.broadcastView(c.Request.Context(), b)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
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
	switch b.State {
	case store.BroadcastRejected:
		return stateRejected
	case store.BroadcastCancelled:
		return stateCancelled
	case store.BroadcastPending:
		if !now.Before(b.ExpiresAt) {
			return stateExpired
		}
		return statePending
	}
	heard := p.Started > 0 || p.Confirmed > 0
	switch {
	case boxes > 0 && p.Final >= boxes:
		return stateDone
	case !now.Before(b.ExpiresAt.Add(b.Duration())): // the last box to start it has finished
		if heard {
			return stateDone
		}
		return stateExpired
	case heard || p.Final > 0:
		return stateInProgress
	}
	return stateSending
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
		CreatedByKey: b.CreatedByKey,
		Progress:     api.BroadcastProgress{Boxes: boxes, Started: p.Started, Reported: p.Final, Played: p.Played, Confirmed: p.Confirmed},
	}
	if out.Groups == nil {
		out.Groups = []api.Group{}
	}
	if !b.DecidedAt.IsZero() {
		if b.State == store.BroadcastRejected {
			out.RejectedAt, out.RejectedBy, out.RejectReason = timePtr(b.DecidedAt), b.DecidedBy, b.DecisionReason
		} else {
			out.ApprovedAt, out.ApprovedBy = timePtr(b.DecidedAt), b.DecidedBy
		}
	}
	return out
}

// getBroadcastCoverage reports which targeted villages played a
// broadcast, in a fixed number of queries whatever the county size.
func (s *Server) getBroadcastCoverage(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	asCSV, err := coverageFormat(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	b, err := s.store.GetBroadcast(ctx, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	states, err := s.store.VillageStates(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	events, err := s.store.BroadcastEvents(ctx, b.ID, b.Test)
	if err != nil {
		s.fail(c, err)
		return
	}
	confs, err := s.store.BroadcastConfirmations(ctx, b.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	progress, err := s.store.BroadcastProgresses(ctx, b.ID, b.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	villages := targeted(b.Targets, states)
	in := s.broadcastCoverageInput(b, villages, events, confs, s.now())
	boxes := 0
	for _, v := range villages {
		if v.Device == playlists.DeviceAgent {
			boxes++
		}
	}
	rep := coverage.ComputeBroadcast(in)
	if asCSV {
		writeCoverageCSV(c, fmt.Sprintf("broadcast-%d-not-played", b.ID), rep)
		return
	}
	c.JSON(http.StatusOK, api.BroadcastCoverage{BroadcastID: b.ID, Test: b.Test, State: broadcastState(b, progress[b.ID], boxes, in.Now),
		CoverageDetail: rep})
}

// broadcastCoverageInput is what coverage needs of a broadcast, its
// targeted villages, and what boxes and people reported; people by their
// display names.
func (s *Server) broadcastCoverageInput(b store.Broadcast, villages []coverage.Village, events []store.Event, confs []store.Confirmation, now time.Time) coverage.BroadcastInput {
	loc, _ := time.LoadLocation(playlists.DefaultTimezone)
	in := coverage.BroadcastInput{
		Released: b.WasReleased(), ExpiresAt: b.ExpiresAt, Duration: b.Duration(), Now: now, Location: loc,
		Villages: villages, Events: coverageEvents(events), Confirmations: s.coverageConfirmations(confs),
	}
	switch b.State {
	case store.BroadcastCancelled:
		in.StoppedAt, in.StoppedBy = b.CancelledAt, s.nameOf(b.CancelledBy)
	case store.BroadcastRejected:
		in.StoppedAt, in.StoppedBy, in.Rejected, in.RejectReason = b.DecidedAt, s.nameOf(b.DecidedBy), true, b.DecisionReason
	}
	return in
}
