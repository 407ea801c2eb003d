// Package alerts is the controller's application service for warnings
// that arrive from outside as CAP 1.2 messages: an Alert or Update
// becomes a broadcast through the broadcasts service, exactly as if an
// operator had made it; an Update, and a Cancel, also cancel the
// broadcasts of the messages they reference. Every message is claimed in
// the database (sender, identifier) before it is acted on, so a copy is
// never acted on twice and no lock is held while one is acted on.
package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Broadcasts is what the Service needs of the broadcasts service.
type Broadcasts interface {
	Create(ctx context.Context, p broadcasts.Person, d broadcasts.Draft) (store.Broadcast, error)
	Cancel(ctx context.Context, p broadcasts.Person, id int64) (store.Broadcast, error)
	MaxTTL() time.Duration
}

// Store is what the Service needs of the database.
type Store interface {
	ClaimCAPAlert(ctx context.Context, a store.CAPAlert) (store.CAPAlert, bool, error)
	FinishCAPAlert(ctx context.Context, sender, identifier string, broadcastID int64, cancelled []int64) error
	ReleaseCAPAlert(ctx context.Context, sender, identifier string) (bool, error)
	CAPAlert(ctx context.Context, sender, identifier string) (store.CAPAlert, error)
	GetBroadcast(ctx context.Context, id int64) (store.Broadcast, error)
	Villages(ctx context.Context) ([]playlists.Village, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Recordings fetches the recording an alert links into the audio library
// (fenced, checked against the digest if there is one). The error says,
// for the alert's note, why it was not used.
type Recordings interface {
	Fetch(ctx context.Context, uri, digest, title string) (store.Audio, error)
}

// Options configure a Service. Store and Broadcasts are required.
type Options struct {
	Store      Store
	Broadcasts Broadcasts
	// Recordings fetches alerts' recordings; nil speaks their text
	// instead.
	Recordings Recordings
	Logger     *slog.Logger
	Now        func() time.Time
}

// Service acts on CAP messages.
type Service struct {
	o   Options
	log *slog.Logger
	now func() time.Time
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Broadcasts == nil {
		return nil, errors.New("alerts: Store and Broadcasts are required")
	}
	s := &Service{o: o, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "alerts")
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Outcome is what a CAP message did. For a message acted on now,
// Result.State is its broadcast's state as it was started; for a
// duplicate it is left for the door to fill from Broadcast as it is now
// (with what boxes reported).
type Outcome struct {
	Result api.CAPResult
	// Broadcast is the broadcast the message started (now, or when it was
	// first received for a duplicate); zero if none.
	Broadcast store.Broadcast
}

// RefusedError is a message that is well-formed but cannot be acted on
// here (expired, no village matches, nothing to cancel): nothing was done
// and its claim is released, so it can be sent again corrected.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Receive acts on a CAP message p passed on (raw is the message as
// received): an Alert or Update starts a broadcast through the broadcasts
// service, an Update or Cancel cancels the broadcasts of the messages it
// references. A message received before, or still being acted on, is
// answered as a duplicate and not acted on again. A message that cannot
// be acted on is refused (*RefusedError) and not recorded. When something
// was done and part of it then failed, the Outcome says what was done and
// the error what failed.
func (s *Service) Receive(ctx context.Context, p broadcasts.Person, req capalert.Request, raw []byte) (Outcome, error) {
	action, object := audit.CAPAlert, "cap/"+req.Sender+"/"+req.Identifier
	if req.MsgType == "Cancel" {
		action = audit.CAPCancel
	}
	prev, claimed, err := s.o.Store.ClaimCAPAlert(ctx, store.CAPAlert{Sender: req.Sender, Identifier: req.Identifier, Sent: req.Sent,
		MsgType: req.MsgType, Status: req.Status, ReceivedBy: p.Name, Raw: raw})
	if err != nil {
		return Outcome{}, err
	}
	if !claimed {
		return s.duplicate(ctx, p, req, prev, action, object)
	}
	// The broadcast this message starts names itself on the claim in its
	// own transaction, so that a copy after a crash is not broadcast again.
	ctx = store.WithCAPClaim(ctx, req.Sender, req.Identifier)

	var out Outcome
	if req.MsgType == "Cancel" {
		out.Result, err = s.cancel(ctx, p, req)
	} else {
		out.Broadcast, out.Result, err = s.broadcast(ctx, p, req)
	}
	done := context.WithoutCancel(ctx)
	if out.Result.Sender == "" { // nothing was done: the message is refused
		if _, rerr := s.o.Store.ReleaseCAPAlert(done, req.Sender, req.Identifier); rerr != nil {
			s.log.Error("release CAP message", "sender", req.Sender, "identifier", req.Identifier, "err", rerr)
		}
		people.Audit(ctx, s.o.Store, s.log, p, action, object, audit.Refusal(nil, err))
		return Outcome{}, &RefusedError{err}
	}
	// Something was done, even if part of it then failed: record it, so
	// that the message sent again is not acted on twice.
	if ferr := s.o.Store.FinishCAPAlert(done, req.Sender, req.Identifier, out.Broadcast.ID, out.Result.Cancelled); ferr != nil {
		s.log.Error("record CAP message", "sender", req.Sender, "identifier", req.Identifier, "broadcast", out.Broadcast.ID, "err", ferr)
		if err == nil {
			err = ferr
		}
	}
	people.Audit(ctx, s.o.Store, s.log, p, action, object, params(req, out))
	return out, err
}

// duplicate answers a message received before, or being acted on, with
// what it did (or has done so far).
func (s *Service) duplicate(ctx context.Context, p broadcasts.Person, req capalert.Request, prev store.CAPAlert, action audit.Action, object string) (Outcome, error) {
	res := api.CAPResult{Sender: prev.Sender, Identifier: prev.Identifier, MsgType: prev.MsgType, Test: req.Test, Duplicate: true,
		BroadcastID: prev.BroadcastID, Cancelled: prev.Cancelled}
	if prev.InFlight {
		res.Note = fmt.Sprintf("this message was received at %s (from %s) and is being acted on; it is not acted on again", prev.ReceivedAt.UTC().Format(time.RFC3339), prev.ReceivedBy)
	} else {
		res.Note = fmt.Sprintf("this message was received at %s (from %s) and acted on then; it is not acted on again", prev.ReceivedAt.UTC().Format(time.RFC3339), prev.ReceivedBy)
	}
	if res.Cancelled == nil {
		res.Cancelled = []int64{}
	}
	out := Outcome{Result: res}
	if prev.BroadcastID != 0 {
		b, err := s.o.Store.GetBroadcast(ctx, prev.BroadcastID)
		if err != nil {
			return Outcome{}, err
		}
		out.Broadcast = b
	}
	people.Audit(ctx, s.o.Store, s.log, p, action, object, audit.Params{"received_at": audit.Time(prev.ReceivedAt), "received_by": prev.ReceivedBy})
	return out, nil
}

// broadcast starts the broadcast of an Alert or Update and, for an
// Update, cancels the broadcasts of the messages it references. A result
// with no Sender means nothing was done and err says why.
func (s *Service) broadcast(ctx context.Context, p broadcasts.Person, req capalert.Request) (store.Broadcast, api.CAPResult, error) {
	d, notes, err := s.Draft(ctx, req)
	if err != nil {
		return store.Broadcast{}, api.CAPResult{}, err
	}
	b, err := s.o.Broadcasts.Create(ctx, p, d)
	if b.ID == 0 {
		return b, api.CAPResult{}, err
	}
	res := api.CAPResult{Sender: req.Sender, Identifier: req.Identifier, MsgType: req.MsgType, Test: req.Test,
		BroadcastID: b.ID, State: broadcasts.State(b, store.BroadcastProgress{}, 0, s.now()), Cancelled: []int64{}}
	if req.MsgType == "Update" {
		cancelled, cnotes, cerr := s.cancelReferenced(ctx, p, req)
		res.Cancelled = append(res.Cancelled, cancelled...) // never null: the document promises a list
		notes = append(notes, cnotes...)
		if err == nil {
			err = cerr
		}
	}
	res.Note = strings.Join(notes, "; ")
	return b, res, err
}

// Draft is the broadcast an Alert or Update asks for, as the broadcasts
// service takes it from any door, with notes on what differs from what
// the message asked (its recording not used, its expiry shortened...).
// Its recording, if it links one, is fetched into the audio library.
func (s *Service) Draft(ctx context.Context, req capalert.Request) (broadcasts.Draft, []string, error) {
	now := s.now()
	if !req.ExpiresAt.After(now) {
		return broadcasts.Draft{}, nil, cx.Invalid("alert/info/expires",
			fmt.Sprintf("the alert expired at %s; an expired alert is not broadcast", req.ExpiresAt.UTC().Format(time.RFC3339))).
			With(api.ReasonCAPExpired, "at", req.ExpiresAt.UTC().Format(time.RFC3339))
	}
	villages, err := s.o.Store.Villages(ctx)
	if err != nil {
		return broadcasts.Draft{}, nil, err
	}
	codes := capalert.Select(req.Geocodes, villages)
	if len(codes) == 0 {
		return broadcasts.Draft{}, nil, cx.Errorf(cx.EINVALID,
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
		a, ferr := s.fetch(ctx, req)
		if ferr != nil {
			s.log.Warn("CAP recording not used", "uri", req.AudioURI, "err", ferr)
			notes = append(notes, fmt.Sprintf("the alert's recording (%s) is not used: %v; its text is spoken instead", req.AudioURI, ferr))
		} else {
			audioID, text = a.ID, ""
			notes = append(notes, fmt.Sprintf("the alert's recording (%s) is played: audio %d, %s", req.AudioURI, a.ID, broadcasts.DurationText(time.Duration(a.DurationMS)*time.Millisecond)))
		}
	}
	if n := utf8.RuneCountInString(text); n > broadcasts.MaxText {
		text = string([]rune(text)[:broadcasts.MaxText])
		notes = append(notes, fmt.Sprintf("the description is %d characters long; its first %d are spoken", n, broadcasts.MaxText))
	}
	expires := req.ExpiresAt
	if last := now.Add(s.o.Broadcasts.MaxTTL()).Truncate(time.Second); expires.After(last) {
		expires = last
		notes = append(notes, fmt.Sprintf("the alert expires at %s, later than a broadcast may last; the broadcast expires at %s",
			req.ExpiresAt.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339)))
	} else if req.ExpiresDefaulted {
		notes = append(notes, fmt.Sprintf("the alert gives no expiry; the broadcast expires %g hours after the alert takes effect, at %s",
			capalert.DefaultExpiry.Hours(), expires.UTC().Format(time.RFC3339)))
	}
	event := req.EventType
	if utf8.RuneCountInString(event) > broadcasts.MaxEventType {
		event = string([]rune(event)[:broadcasts.MaxEventType])
	}
	return broadcasts.Draft{
		AudioID: audioID, Text: text, Targets: playlists.Targets{Villages: codes},
		Priority: req.Priority, Severity: req.Severity, EventType: event,
		ExpiresAt: expires, Test: req.Test, Source: "cap",
	}, notes, nil
}

func (s *Service) fetch(ctx context.Context, req capalert.Request) (store.Audio, error) {
	if s.o.Recordings == nil {
		return store.Audio{}, errors.New("this controller fetches no recordings")
	}
	return s.o.Recordings.Fetch(ctx, req.AudioURI, req.AudioDigest, broadcasts.SpeechTitle(req.Headline+" "+req.Identifier))
}

// cancel cancels the broadcasts of the messages a Cancel references. A
// result with no Sender means nothing was done and err says why.
func (s *Service) cancel(ctx context.Context, p broadcasts.Person, req capalert.Request) (api.CAPResult, error) {
	cancelled, notes, err := s.cancelReferenced(ctx, p, req)
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
func (s *Service) cancelReferenced(ctx context.Context, p broadcasts.Person, req capalert.Request) (cancelled []int64, notes []string, err error) {
	var unknown []string
	for _, ref := range req.References {
		prev, perr := s.o.Store.CAPAlert(ctx, ref.Sender, ref.Identifier)
		switch {
		case cx.Code(perr) == cx.ENOTFOUND:
			unknown = append(unknown, ref.Identifier)
			continue
		case perr != nil:
			return cancelled, notes, perr
		case prev.BroadcastID == 0:
			continue // a Cancel (or still being acted on): it broadcast nothing
		}
		if cancelled == nil {
			cancelled = []int64{}
		}
		if b, gerr := s.o.Store.GetBroadcast(ctx, prev.BroadcastID); gerr != nil {
			return cancelled, notes, gerr
		} else if b.State == api.BroadcastCancelled {
			notes = append(notes, fmt.Sprintf("broadcast %d of %s was already cancelled (by %s)", b.ID, ref.Identifier, b.CancelledBy))
			continue
		}
		b, cerr := s.o.Broadcasts.Cancel(ctx, p, prev.BroadcastID)
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

// params are the audit log's account of a CAP message acted on.
func params(req capalert.Request, out Outcome) audit.Params {
	res := out.Result
	p := audit.Params{"status": req.Status, "msg_type": req.MsgType, "sent_at": audit.Time(req.Sent), "cancelled": audit.List(res.Cancelled), "note": res.Note}
	if req.MsgType != "Cancel" {
		p["priority"], p["severity"], p["event_type"], p["geocodes"] = string(req.Priority), audit.Int(req.Severity), req.EventType, audit.List(req.Geocodes)
		p["broadcast"], p["state"] = audit.Int(res.BroadcastID), res.State
	}
	return p
}
