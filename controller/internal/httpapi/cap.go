package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// capMediaTypes are the Content-Types a CAP message is accepted with.
var capMediaTypes = []string{"application/cap+xml", "application/xml", "text/xml"}

// postCAPAlert takes a CAP 1.2 message: an Alert or Update becomes a
// broadcast to the villages its geocodes cover, exactly as if an operator
// had posted it (text-to-speech, two-person rule); an Update, and a
// Cancel, also cancel the broadcasts of the messages they reference.
// Every message is recorded by sender and identifier; one received again
// is answered from the record and never broadcast twice.
func (s *Server) postCAPAlert(c *gin.Context) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || !slices.Contains(capMediaTypes, strings.ToLower(mt)) {
		s.fail(c, &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", reason: api.ReasonCAPMediaType,
			msg: "send the CAP 1.2 message as XML, with Content-Type application/cap+xml (or application/xml or text/xml)"})
		return
	}
	// capalert refuses anything over MaxBytes; reading one byte more lets it tell.
	raw, err := io.ReadAll(io.LimitReader(c.Request.Body, capalert.MaxBytes+1))
	if err != nil {
		s.fail(c, fmt.Errorf("read CAP message: %w", err))
		return
	}
	req, err := capalert.ParseRequest(bytes.NewReader(raw))
	if err != nil {
		noteAudit(c, audit.CAPAlert, "cap", audit.Refusal(nil, err))
		s.fail(c, err)
		return
	}
	action, object := audit.CAPAlert, "cap/"+req.Sender+"/"+req.Identifier
	if req.MsgType == "Cancel" {
		action = audit.CAPCancel
	}

	ctx := c.Request.Context()
	// The recording (which may take capFetchTimeout) is fetched before
	// the lock, so that a slow server holds up no other alert; only a
	// message not received before, that will be broadcast, is worth
	// fetching for.
	var recording capRecording
	if req.MsgType != "Cancel" && req.AudioURI != "" && req.ExpiresAt.After(s.now()) && s.capReaches(ctx, req) {
		if _, err := s.store.CAPAlert(ctx, req.Sender, req.Identifier); cx.Code(err) == cx.ENOTFOUND {
			recording.audio, recording.err = s.fetchCAPAudio(ctx, req.AudioURI, req.AudioDigest, speechTitle(req.Headline+" "+req.Identifier))
			recording.fetched = true
		}
	}

	s.capMu.Lock()
	defer s.capMu.Unlock()
	prev, err := s.store.CAPAlert(ctx, req.Sender, req.Identifier)
	switch {
	case err == nil:
		s.answerDuplicate(c, req, prev, action, object)
		return
	case cx.Code(err) != cx.ENOTFOUND:
		s.fail(c, err)
		return
	}

	var (
		res    api.CAPResult
		b      store.Broadcast
		status = http.StatusAccepted
	)
	if req.MsgType == "Cancel" {
		status = http.StatusOK
		res, err = s.capCancel(c, req)
	} else {
		b, res, err = s.capBroadcast(c, req, recording)
	}
	if res.Sender == "" { // nothing was done: the message is refused
		noteAudit(c, action, object, audit.Refusal(nil, err))
		// The message itself is fine; it cannot be broadcast here.
		s.failStatus(c, http.StatusUnprocessableEntity, err)
		return
	}
	// Something was done, even if part of it then failed: record it, so
	// that the message sent again is not acted on twice.
	rec := store.CAPAlert{Sender: req.Sender, Identifier: req.Identifier, Sent: req.Sent, MsgType: req.MsgType, Status: req.Status,
		BroadcastID: b.ID, Cancelled: res.Cancelled, ReceivedBy: actor(c), Raw: raw}
	if _, rerr := s.store.CreateCAPAlert(context.WithoutCancel(ctx), rec); rerr != nil {
		s.log.Error("record CAP message", "sender", req.Sender, "identifier", req.Identifier, "broadcast", b.ID, "err", rerr)
		if err == nil {
			err = rerr
		}
	}
	noteAudit(c, action, object, capParams(req, res))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(status, res)
}

// answerDuplicate answers a message received before with what it did then.
func (s *Server) answerDuplicate(c *gin.Context, req capalert.Request, prev store.CAPAlert, action audit.Action, object string) {
	res := api.CAPResult{Sender: prev.Sender, Identifier: prev.Identifier, MsgType: prev.MsgType, Test: req.Test, Duplicate: true,
		BroadcastID: prev.BroadcastID, Cancelled: prev.Cancelled,
		Note: fmt.Sprintf("this message was received at %s (from %s) and acted on then; it is not acted on again", prev.ReceivedAt.UTC().Format(time.RFC3339), prev.ReceivedBy)}
	if res.Cancelled == nil {
		res.Cancelled = []int64{}
	}
	if prev.BroadcastID != 0 {
		ctx := c.Request.Context()
		b, err := s.store.GetBroadcast(ctx, prev.BroadcastID)
		if err != nil {
			s.fail(c, err)
			return
		}
		view, err := s.broadcastView(ctx, b)
		if err != nil {
			s.fail(c, err)
			return
		}
		res.State = view.State
	}
	noteAudit(c, action, object, audit.Params{"received_at": audit.Time(prev.ReceivedAt), "received_by": prev.ReceivedBy})
	c.JSON(http.StatusOK, res)
}

// capReaches reports whether an alert's geocodes match a village.
func (s *Server) capReaches(ctx context.Context, req capalert.Request) bool {
	villages, err := s.store.Villages(ctx)
	return err == nil && len(capalert.Select(req.Geocodes, villages)) > 0
}

// capRecording is the result of fetching an alert's recording.
type capRecording struct {
	fetched bool
	audio   store.Audio
	err     error
}

// capBroadcast starts the broadcast of an Alert or Update and, for an
// Update, cancels the broadcasts of the messages it references; rec is
// its recording, if it was fetched already. A result with no Sender means
// nothing was done and err says why.
func (s *Server) capBroadcast(c *gin.Context, req capalert.Request, rec capRecording) (store.Broadcast, api.CAPResult, error) {
	ctx := c.Request.Context()
	now := s.now()
	if !req.ExpiresAt.After(now) {
		return store.Broadcast{}, api.CAPResult{}, cx.Invalid("alert/info/expires",
			fmt.Sprintf("the alert expired at %s; an expired alert is not broadcast", req.ExpiresAt.UTC().Format(time.RFC3339))).
			With(api.ReasonCAPExpired, "at", req.ExpiresAt.UTC().Format(time.RFC3339))
	}
	villages, err := s.store.Villages(ctx)
	if err != nil {
		return store.Broadcast{}, api.CAPResult{}, err
	}
	codes := capalert.Select(req.Geocodes, villages)
	if len(codes) == 0 {
		return store.Broadcast{}, api.CAPResult{}, cx.Errorf(cx.EINVALID,
			"no village of this county matches geocodes %s (areas: %s); nothing is broadcast", strings.Join(req.Geocodes, ", "), strings.Join(req.Areas, ", ")).
			With(api.ReasonCAPNoVillages, "value", strings.Join(req.Geocodes, ", "))
	}

	var notes []string
	text := req.Description
	if text == "" {
		text = req.Headline
	}
	var audioID int64
	if req.AudioURI != "" {
		if !rec.fetched {
			rec.audio, rec.err = s.fetchCAPAudio(ctx, req.AudioURI, req.AudioDigest, speechTitle(req.Headline+" "+req.Identifier))
		}
		a, ferr := rec.audio, rec.err
		if ferr != nil {
			s.log.Warn("CAP recording not used", "uri", req.AudioURI, "err", ferr)
			notes = append(notes, fmt.Sprintf("the alert's recording (%s) is not used: %v; its text is spoken instead", req.AudioURI, ferr))
		} else {
			audioID, text = a.ID, ""
			notes = append(notes, fmt.Sprintf("the alert's recording (%s) is played: audio %d, %s", req.AudioURI, a.ID, durationText(time.Duration(a.DurationMS)*time.Millisecond)))
		}
	}
	if n := utf8.RuneCountInString(text); n > maxText {
		text = string([]rune(text)[:maxText])
		notes = append(notes, fmt.Sprintf("the description is %d characters long; its first %d are spoken", n, maxText))
	}
	expires := req.ExpiresAt
	if last := now.Add(s.o.MaxBroadcastTTL).Truncate(time.Second); expires.After(last) {
		expires = last
		notes = append(notes, fmt.Sprintf("the alert expires at %s, later than a broadcast may last; the broadcast expires at %s",
			req.ExpiresAt.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339)))
	} else if req.ExpiresDefaulted {
		notes = append(notes, fmt.Sprintf("the alert gives no expiry; the broadcast expires %g hours after the alert takes effect, at %s",
			capalert.DefaultExpiry.Hours(), expires.UTC().Format(time.RFC3339)))
	}
	event := req.EventType
	if utf8.RuneCountInString(event) > 64 {
		event = string([]rune(event)[:64])
	}
	b, err := s.createBroadcast(c, api.BroadcastRequest{
		AudioID: audioID, Text: text, Targets: playlists.Targets{Villages: codes},
		Priority: req.Priority, Severity: req.Severity, EventType: event,
		ExpiresAt: expires.Format(time.RFC3339), Test: req.Test,
	})
	if b.ID == 0 {
		return b, api.CAPResult{}, err
	}
	res := api.CAPResult{Sender: req.Sender, Identifier: req.Identifier, MsgType: req.MsgType, Test: req.Test,
		BroadcastID: b.ID, State: broadcastOut(b, store.BroadcastProgress{}, 0, now).State, Cancelled: []int64{}}
	if req.MsgType == "Update" {
		cancelled, cnotes, cerr := s.cancelReferenced(c, req)
		res.Cancelled = append(res.Cancelled, cancelled...) // never null: the document promises a list
		notes = append(notes, cnotes...)
		if err == nil {
			err = cerr
		}
	}
	res.Note = strings.Join(notes, "; ")
	return b, res, err
}

// capCancel cancels the broadcasts of the messages a Cancel references.
// A result with no Sender means nothing was done and err says why.
func (s *Server) capCancel(c *gin.Context, req capalert.Request) (api.CAPResult, error) {
	cancelled, notes, err := s.cancelReferenced(c, req)
	if cancelled == nil {
		if err == nil {
			refs := make([]string, len(req.References))
			for i, r := range req.References {
				refs[i] = r.String()
			}
			err = cx.Errorf(cx.EINVALID, "none of the alerts this Cancel refers to (%s) was broadcast here; there is nothing to cancel", strings.Join(refs, " ")).With(api.ReasonCAPNothingToCancel)
		}
		return api.CAPResult{}, err
	}
	return api.CAPResult{Sender: req.Sender, Identifier: req.Identifier, MsgType: req.MsgType, Test: req.Test,
		Cancelled: cancelled, Note: strings.Join(notes, "; ")}, err
}

// cancelReferenced cancels the broadcasts started by the messages req
// references. cancelled is nil if no referenced message started a
// broadcast here, else the ids cancelled (possibly none, if they had all
// ended); notes say what was not cancelled and why.
func (s *Server) cancelReferenced(c *gin.Context, req capalert.Request) (cancelled []int64, notes []string, err error) {
	ctx := c.Request.Context()
	var unknown []string
	for _, ref := range req.References {
		prev, perr := s.store.CAPAlert(ctx, ref.Sender, ref.Identifier)
		switch {
		case cx.Code(perr) == cx.ENOTFOUND:
			unknown = append(unknown, ref.Identifier)
			continue
		case perr != nil:
			return cancelled, notes, perr
		case prev.BroadcastID == 0:
			continue // a Cancel: it broadcast nothing
		}
		if cancelled == nil {
			cancelled = []int64{}
		}
		if b, gerr := s.store.GetBroadcast(ctx, prev.BroadcastID); gerr != nil {
			return cancelled, notes, gerr
		} else if b.State == store.BroadcastCancelled {
			notes = append(notes, fmt.Sprintf("broadcast %d of %s was already cancelled (by %s)", b.ID, ref.Identifier, b.CancelledBy))
			continue
		}
		b, cerr := s.cancelBroadcast(c, prev.BroadcastID)
		switch {
		case cerr == nil:
			cancelled = append(cancelled, b.ID)
		case cx.Code(cerr) == cx.ECONFLICT: // rejected or expired: not playing
			notes = append(notes, fmt.Sprintf("broadcast %d of %s is not cancelled: %s", prev.BroadcastID, ref.Identifier, cx.Message(cerr)))
		default:
			if b.ID != 0 { // cancelled here; the boxes are not told yet
				cancelled = append(cancelled, b.ID)
			}
			if err == nil {
				err = cerr
			}
		}
	}
	if len(unknown) > 0 {
		notes = append(notes, "not received here, so not cancelled: "+strings.Join(unknown, ", "))
	}
	return cancelled, notes, err
}

// capParams are the audit log's account of a CAP message acted on.
func capParams(req capalert.Request, res api.CAPResult) audit.Params {
	p := audit.Params{"status": req.Status, "msg_type": req.MsgType, "sent_at": audit.Time(req.Sent), "cancelled": audit.List(res.Cancelled), "note": res.Note}
	if req.MsgType != "Cancel" {
		p["priority"], p["severity"], p["event_type"], p["geocodes"] = string(req.Priority), audit.Int(req.Severity), req.EventType, audit.List(req.Geocodes)
		p["broadcast"], p["state"] = audit.Int(res.BroadcastID), res.State
	}
	return p
}
