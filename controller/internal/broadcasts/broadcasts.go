// Package broadcasts is the controller's application service for
// broadcasts: every door that makes one (the HTTP API and its console,
// CAP alerts, and later the province's EBD packets and live voice) calls
// the same Service, with a context and the acting Person, never a web
// framework type. The Service owns the rules: it checks a draft, speaks
// its text into a clip, stores it under the two-person rule, writes the
// audit log, and hands what boxes must hear to delivery.
package broadcasts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/handoff"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Person is who acts (people.Person, which every service shares).
type Person = people.Person

// Draft is a broadcast as a door asks for it. Exactly one of AudioID,
// PlaylistID and Text says what plays; Text is spoken into a clip (in
// Voice, "" for the default).
type Draft struct {
	AudioID         int64
	PlaylistID      int64
	Text            string
	Voice           string
	Targets         playlists.Targets
	Priority        playlists.Priority
	Severity        int
	EventType       string
	Repeat          int
	Volume          int
	ForceFullVolume bool
	Test            bool
	ExpiresAt       time.Time
	// StartsAt, if set and later than now, holds the broadcast: no box
	// gets it before then (a message's StartTime in the national chain).
	StartsAt time.Time

	// EBMID is the national chain's ID of the emergency message it is
	// made from (unique: a message is broadcast once); Source names the
	// door ("cap", "ebd:<sender EBRID>"; "" for the API and console).
	EBMID, Source string
	// ApprovedUpstream: the message was approved by the trusted upper
	// platform, so it does not wait for a second person here.
	ApprovedUpstream bool
}

// Store is what the Service needs of the database.
type Store interface {
	CreateBroadcast(ctx context.Context, b store.Broadcast, needsApproval func(reached []playlists.Village) bool) (store.Broadcast, error)
	GetBroadcast(ctx context.Context, id int64) (store.Broadcast, error)
	DecideBroadcast(ctx context.Context, id int64, approve bool, by, byKey, reason string) (store.Broadcast, error)
	ResendBroadcast(ctx context.Context, id int64) (store.Broadcast, error)
	CancelBroadcast(ctx context.Context, id int64, by string) (store.Broadcast, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Held is what Run needs of the database: the broadcasts held until
// their start.
type Held interface {
	NextHeldStart(ctx context.Context) (time.Time, bool, error)
	ReleaseHeld(ctx context.Context) ([]store.Broadcast, error)
}

// Delivery sends to the boxes what a change put in the store's outbox
// (handoff.Delivery).
type Delivery = handoff.Delivery

// Speech speaks text into a clip of the audio library, recorded as made
// by the person named by.
type Speech interface {
	Speak(ctx context.Context, text, voice, title, by string) (store.Audio, error)
}

// MaxText bounds the text of a text-to-speech broadcast, in characters
// (what tts.Espeak speaks in one go).
const MaxText = 2000

// MaxEventType bounds a broadcast's event type, in characters.
const MaxEventType = 64

// DefaultMaxTTL bounds a broadcast's expiry when Options leave it 0.
const DefaultMaxTTL = 7 * 24 * time.Hour

// Options configure a Service. Store and Delivery are required.
type Options struct {
	Store    Store
	Delivery Delivery
	// Speech speaks the text of text broadcasts; nil refuses them.
	Speech Speech

	// ApprovalThreshold is the two-person rule: an urgent or emergency
	// broadcast that reaches more than this many townships, or targets
	// all, waits until a different person with the approver (or admin)
	// role approves it. 0 means 1; a negative value makes every urgent and
	// emergency broadcast wait.
	ApprovalThreshold int
	// PreApprovedEventTypes never wait for approval (e.g. "drill").
	PreApprovedEventTypes []string
	// MaxTTL is how far ahead a broadcast may expire (DefaultMaxTTL if 0).
	MaxTTL time.Duration
	// DeliverWait is how long a change waits for the broker to take it
	// (handoff.DefaultWait if 0) before it answers that the controller
	// goes on trying.
	DeliverWait time.Duration

	Logger *slog.Logger
	Now    func() time.Time
}

// Service makes, decides on and stops broadcasts.
type Service struct {
	o    Options
	log  *slog.Logger
	now  func() time.Time
	held chan struct{} // Run: a broadcast was held, look at the next start again
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Delivery == nil {
		return nil, errors.New("broadcasts: Store and Delivery are required")
	}
	if o.ApprovalThreshold == 0 {
		o.ApprovalThreshold = 1
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.DeliverWait <= 0 {
		o.DeliverWait = handoff.DefaultWait
	}
	s := &Service{o: o, log: o.Logger, now: o.Now, held: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "broadcasts")
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// MaxTTL is how far ahead a broadcast may expire.
func (s *Service) MaxTTL() time.Duration { return s.o.MaxTTL }

// Who may do what, whatever the door.
var (
	senders   = []string{api.RoleAdmin, api.RoleOperator}
	approvers = []string{api.RoleAdmin, api.RoleApprover}
)

func may(p Person, roles []string, what string) error { return people.May(p, roles, what) }

var errNoSpeech = &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonTTSUnavailable, Message: "text-to-speech is not available: install espeak-ng (apt-get install espeak-ng)"}

// Create is how every broadcast starts, whichever door it comes through:
// it checks the draft, speaks its text into a clip of the library, stores
// it under the two-person rule as made by p, writes it to the audit log,
// and sends it at once unless it waits for approval. If delivery fails,
// the stored broadcast is returned with the error (the controller keeps
// sending it).
func (s *Service) Create(ctx context.Context, p Person, d Draft) (store.Broadcast, error) {
	if err := may(p, senders, "start a broadcast"); err != nil {
		return store.Broadcast{}, err
	}
	b, err := s.check(d, s.now())
	if err != nil {
		return store.Broadcast{}, err
	}
	if b.Text != "" {
		if s.o.Speech == nil {
			return store.Broadcast{}, errNoSpeech
		}
		a, err := s.o.Speech.Speak(ctx, b.Text, d.Voice, "TTS: "+SpeechTitle(b.Text), p.Name)
		if err != nil {
			return store.Broadcast{}, err
		}
		b.AudioID = a.ID
	}
	b.CreatedBy, b.CreatedByKey = p.Name, p.Key
	b.EBMID, b.Source = d.EBMID, d.Source
	approval := s.needsApproval(b)
	if d.ApprovedUpstream {
		approval = nil
	}
	b, err = s.o.Store.CreateBroadcast(ctx, b, approval)
	if err != nil {
		return store.Broadcast{}, err
	}
	s.audit(ctx, p, audit.BroadcastCreate, b, createParams(b))
	if b.Held {
		s.wakeRun()
		return b, nil
	}
	if b.State == api.BroadcastReleased {
		return s.deliverBroadcast(ctx, b)
	}
	return b, nil
}

func (s *Service) wakeRun() {
	select {
	case s.held <- struct{}{}:
	default:
	}
}

// heldPoll bounds how long Run waits without looking at the store: a
// broadcast held by another process on the same database (or one whose
// wake-up was missed) is still released within it.
const heldPoll = time.Minute

// Run releases the broadcasts held until their start (Draft.StartsAt)
// when it comes, and waits for each to reach the broker, until ctx ends.
// The hold is in the store, so a restart loses none: Run releases what
// came due while the controller was down as soon as it starts. It needs
// Options.Store to be a Held; without, it returns at once.
func (s *Service) Run(ctx context.Context) error {
	st, ok := s.o.Store.(Held)
	if !ok {
		return nil
	}
	t := time.NewTimer(0)
	defer t.Stop()
	var sending sync.WaitGroup // waits for the publisher, off the release loop
	defer sending.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.held:
		}
		released, err := st.ReleaseHeld(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("release broadcasts whose start has come", "err", err)
		}
		for _, b := range released {
			s.log.Info("broadcast released at its start", "broadcast", b.ID, "starts_at", b.StartsAt)
		}
		if n := len(released); n > 0 {
			// The publisher sends the outbox in order: waking it for the
			// last sends them all. If the broker is away it keeps trying;
			// the next start is not held up meanwhile.
			last := store.IDRef(released[n-1].ID)
			sending.Add(1)
			go func() {
				defer sending.Done()
				dctx, cancel := context.WithTimeout(ctx, s.o.DeliverWait)
				defer cancel()
				if err := s.o.Delivery.Deliver(dctx, store.OutboxBroadcast, last); err != nil && ctx.Err() == nil {
					s.log.Warn("broadcast released at its start is not on the broker yet; the publisher keeps trying", "broadcast", last, "err", err)
				}
			}()
		}
		wait := heldPoll
		if err != nil {
			wait = 5 * time.Second
		} else if at, ok, err := st.NextHeldStart(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.Error("read the next held broadcast", "err", err)
			}
			wait = 5 * time.Second
		} else if ok {
			wait = min(heldPoll, max(at.Sub(s.now()), 0))
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// Approve releases a broadcast waiting for approval and sends it. The
// two-person rule: whoever created it may not approve it, whatever their
// role (an admin neither), with no session or token of theirs.
func (s *Service) Approve(ctx context.Context, p Person, id int64) (store.Broadcast, error) {
	if err := may(p, approvers, "approve a broadcast"); err != nil {
		return store.Broadcast{}, err
	}
	b, err := s.o.Store.DecideBroadcast(ctx, id, true, p.Name, p.Key, "")
	if err != nil {
		return store.Broadcast{}, err
	}
	s.audit(ctx, p, audit.BroadcastApprove, b, createParams(b))
	if b.Held {
		s.wakeRun()
		return b, nil
	}
	return s.deliverBroadcast(ctx, b)
}

// MaxRejectReason bounds the reason of a rejection, in bytes.
const MaxRejectReason = 500

// Reject refuses a broadcast waiting for approval, saying why (for the
// operator who made it). The two-person rule holds as for Approve.
func (s *Service) Reject(ctx context.Context, p Person, id int64, reason string) (store.Broadcast, error) {
	if err := may(p, approvers, "reject a broadcast"); err != nil {
		return store.Broadcast{}, err
	}
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return store.Broadcast{}, cx.Invalid("reason", "say why, so the operator knows what to change").With(api.ReasonRejectWhy)
	case len(reason) > MaxRejectReason:
		return store.Broadcast{}, cx.Invalid("reason", fmt.Sprintf("is longer than %d bytes", MaxRejectReason)).With(api.ReasonRejectTooLong)
	}
	b, err := s.o.Store.DecideBroadcast(ctx, id, false, p.Name, p.Key, reason)
	if err != nil {
		return store.Broadcast{}, err
	}
	s.audit(ctx, p, audit.BroadcastReject, b, audit.Params{"reason": reason})
	return b, nil
}

// Cancel cancels a broadcast in p's name and, if it was ever released,
// tells the boxes. Cancelling it again repeats the cancellation on the
// boxes. If that delivery fails, the cancelled broadcast is returned with
// the error (the controller keeps sending the cancellation).
func (s *Service) Cancel(ctx context.Context, p Person, id int64) (store.Broadcast, error) {
	if err := may(p, senders, "cancel a broadcast"); err != nil {
		return store.Broadcast{}, err
	}
	b, err := s.o.Store.CancelBroadcast(ctx, id, p.Name)
	if err != nil {
		return b, err
	}
	s.audit(ctx, p, audit.BroadcastCancel, b, audit.Params{"groups": audit.List(b.Groups)})
	if b.WasReleased() {
		return s.deliverCancel(ctx, b)
	}
	return b, nil
}

// Resend sends a released broadcast again: after a failed delivery, or to
// be sure. Boxes that have it already ignore it.
func (s *Service) Resend(ctx context.Context, p Person, id int64) (store.Broadcast, error) {
	if err := may(p, senders, "resend a broadcast"); err != nil {
		return store.Broadcast{}, err
	}
	b, err := s.o.Store.ResendBroadcast(ctx, id)
	if err != nil {
		return store.Broadcast{}, err
	}
	s.audit(ctx, p, audit.BroadcastResend, b, audit.Params{"groups": audit.List(b.Groups)})
	return s.deliverBroadcast(ctx, b)
}

// deliverBroadcast waits, at most Options.DeliverWait and whatever the
// caller does meanwhile, for a released broadcast, which the store put in
// the outbox, to reach the broker, and returns it as stored then. If it
// does not in time it stays released with SendError, and the publisher
// goes on trying.
func (s *Service) deliverBroadcast(ctx context.Context, b store.Broadcast) (store.Broadcast, error) {
	derr := s.deliver(ctx, store.OutboxBroadcast, b.ID)
	if sent, err := s.o.Store.GetBroadcast(context.WithoutCancel(ctx), b.ID); err == nil {
		b = sent
	}
	if derr != nil {
		return b, &cx.Error{Code: cx.EINTERNAL, Reason: api.ReasonBroadcastNotDelivered, Params: cx.Params("id", b.ID), Message: fmt.Sprintf(
			"broadcast %d is released and stored, but the broker has not taken it yet; the controller keeps sending it by itself (details are in its log)", b.ID)}
	}
	return b, nil
}

// deliverCancel waits, as deliverBroadcast does, for the cancellation of
// a broadcast to reach the broker.
func (s *Service) deliverCancel(ctx context.Context, b store.Broadcast) (store.Broadcast, error) {
	if err := s.deliver(ctx, store.OutboxCancel, b.ID); err != nil {
		return b, &cx.Error{Code: cx.EINTERNAL, Reason: api.ReasonCancelNotDelivered, Params: cx.Params("id", b.ID), Message: fmt.Sprintf(
			"broadcast %d is cancelled and stored, but the broker has not taken the cancellation yet; the controller keeps sending it by itself (details are in its log)", b.ID)}
	}
	return b, nil
}

// deliver waits for what a change put in the outbox to reach the broker
// (handoff.Wait, at most Options.DeliverWait).
func (s *Service) deliver(ctx context.Context, kind string, id int64) error {
	return handoff.Wait(ctx, s.o.Delivery, s.o.DeliverWait, s.log, kind, store.IDRef(id))
}

// check checks a draft's fields, naming the one at fault, and returns the
// broadcast to store.
func (s *Service) check(d Draft, now time.Time) (store.Broadcast, error) {
	b := store.Broadcast{AudioID: d.AudioID, PlaylistID: d.PlaylistID, Text: strings.TrimSpace(d.Text), Targets: d.Targets,
		Priority: d.Priority, Severity: d.Severity, EventType: strings.TrimSpace(d.EventType), Repeat: d.Repeat,
		Volume: d.Volume, ForceFullVolume: d.ForceFullVolume, Test: d.Test}
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
	case !utf8.ValidString(b.Text) || utf8.RuneCountInString(b.Text) > MaxText:
		return b, cx.Invalid("text", fmt.Sprintf("must be UTF-8 text of at most %d characters", MaxText)).With(api.ReasonTextTooLong, "max", MaxText)
	case b.Targets.Empty():
		return b, cx.Invalid("targets", "choose who hears it: all, townships by name or villages by code").With(api.ReasonTargetsEmpty)
	case !b.Priority.Valid():
		return b, cx.Invalid("priority", `must be "emergency", "urgent" or "routine"`).With(api.ReasonPriorityInvalid)
	case b.Severity < 1 || b.Severity > 4:
		return b, cx.Invalid("severity", "must be 1 (I, red), 2 (II, orange), 3 (III, yellow) or 4 (IV, blue)").With(api.ReasonSeverityInvalid)
	case utf8.RuneCountInString(b.EventType) > MaxEventType:
		return b, cx.Invalid("event_type", fmt.Sprintf("is longer than %d characters", MaxEventType)).With(api.ReasonEventTypeTooLong)
	case b.Repeat < 0 || b.Repeat > playlists.MaxRepeat:
		return b, cx.Invalid("repeat", fmt.Sprintf("must be between 1 and %d (0 means 1)", playlists.MaxRepeat)).With(api.ReasonRepeatRange, "max", playlists.MaxRepeat)
	case b.Volume < 0 || b.Volume > 100:
		return b, cx.Invalid("volume", "must be a percentage from 1 to 100 (0 keeps the box's own)").With(api.ReasonVolumeRange)
	case b.ForceFullVolume && b.Priority != playlists.Emergency:
		return b, cx.Invalid("force_full_volume", "only an emergency broadcast may force full volume").With(api.ReasonFullVolumeEmergency)
	case d.ExpiresAt.IsZero():
		return b, cx.Invalid("expires_at", "give the time after which the broadcast must no longer play").With(api.ReasonExpiresRequired)
	case !d.ExpiresAt.After(now):
		return b, cx.Invalid("expires_at", fmt.Sprintf("%s is not in the future", d.ExpiresAt.Format(time.RFC3339))).With(api.ReasonExpiresPast)
	case d.ExpiresAt.After(now.Add(s.o.MaxTTL)):
		return b, cx.Invalid("expires_at", fmt.Sprintf("is more than %s ahead; a broadcast may last at most that long", DurationText(s.o.MaxTTL))).With(api.ReasonExpiresTooFar, "hours", s.o.MaxTTL.Hours())
	}
	if !d.StartsAt.IsZero() && !d.StartsAt.Before(d.ExpiresAt) {
		return b, cx.Invalid("starts_at", fmt.Sprintf("%s is not before the expiry %s; it would never play", d.StartsAt.Format(time.RFC3339), d.ExpiresAt.Format(time.RFC3339))).
			With(api.ReasonStartsAfterExpiry, "at", d.StartsAt.Format(time.RFC3339))
	}
	b.ExpiresAt = d.ExpiresAt
	if d.StartsAt.After(now) {
		b.StartsAt = d.StartsAt
	}
	return b, nil
}

// DurationText says d in days when it is whole days.
func DurationText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// speechTitleChars is how much of the text a spoken clip is titled with.
const speechTitleChars = 30

// SpeechTitle is the first characters of text (30), on one line: the
// title of a clip spoken from it.
func SpeechTitle(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(t) > speechTitleChars {
		t = strings.TrimSpace(string([]rune(t)[:speechTitleChars])) + "…"
	}
	return t
}

// needsApproval is the two-person rule (Options.ApprovalThreshold), asked
// by the store with the villages the broadcast reaches (with those the
// same person's broadcasts released alone still reach).
func (s *Service) needsApproval(b store.Broadcast) func(reached []playlists.Village) bool {
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

// Object names a broadcast in the audit log ("broadcast/12").
func Object(b store.Broadcast) string { return "broadcast/" + strconv.FormatInt(b.ID, 10) }

// createParams are the audit log's account of a broadcast created or
// approved.
func createParams(b store.Broadcast) audit.Params {
	p := audit.Params{"priority": string(b.Priority), "severity": audit.Int(b.Severity), "event_type": b.EventType,
		"content": b.Text, "groups": audit.List(b.Groups), "expires_at": audit.Time(b.ExpiresAt),
		"needs_approval": audit.Flag(b.NeedsApproval), "test": audit.Flag(b.Test)}
	if !b.StartsAt.IsZero() {
		p["starts_at"] = audit.Time(b.StartsAt)
	}
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

func (s *Service) audit(ctx context.Context, p Person, a audit.Action, b store.Broadcast, params audit.Params) {
	people.Audit(ctx, s.o.Store, s.log, p, a, Object(b), params)
}
