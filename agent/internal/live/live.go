// Package live is a box's side of a live voice session (实时喊话), with no
// I/O: it checks each received frame (only the session's key, the
// session's id, and each sequence number once), orders the frames in a
// small jitter buffer, hands them out when their playout time comes, says
// where audio must be made up for a frame lost or late, and decides when
// and why the session ends. Time comes in as arguments, so every rule is
// a table-driven test on a fake clock. docs/live.md gives the design.
package live

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// Options tune a session; the zero Options work.
type Options struct {
	// Target is how long the first frame waits before it sounds, so that
	// frames delayed up to Target by the network still play in order
	// (DefaultTarget when zero).
	Target time.Duration
	// SilenceTimeout ends a session that has had no valid frame for this
	// long (api.LiveSilenceTimeout when zero).
	SilenceTimeout time.Duration
	// MaxAhead bounds how far beyond the playout point a frame may be
	// and still be kept (10 s when zero), so the buffer's memory is
	// bounded whatever arrives.
	MaxAhead time.Duration
	// Decodes reports whether this box can decode a codec; nil means
	// every codec of the contract. The agent's build decides (docs/live.md).
	Decodes func(api.LiveCodec) bool
}

// DefaultTarget is the jitter buffer's delay: enough for a frame that TCP
// (under MQTT) had to send again on a link with a 100 ms round trip
// (TestTargetUnderTCPLoss), small within the 1.5 s mouth-to-speaker
// budget (docs/live.md).
const DefaultTarget = 400 * time.Millisecond

// Reasons a frame is dropped, as counted in api.LiveReport.Dropped.
const (
	DropMalformed    = "malformed"     // not a frame, or not of this session's codec and duration
	DropForged       = "forged"        // the MAC does not verify under the session key
	DropOtherSession = "other_session" // a frame of another session
	DropReplayed     = "replayed"      // a sequence number already played
	DropDuplicate    = "duplicate"     // a sequence number already waiting in the buffer
	DropLate         = "late"          // arrived after its playout time (its audio was concealed)
	DropAfterEnd     = "after_end"     // beyond the session's last frame, or after it ended or expired
	DropTooFar       = "too_far"       // further ahead than Options.MaxAhead
)

// ErrDropped wraps every reason Offer gives for a frame it did not keep.
var ErrDropped = errors.New("live frame dropped")

// ErrUnsupported is New's answer for a codec this box cannot decode; the
// box reports api.LiveEndUnsupported.
var ErrUnsupported = errors.New("live codec not supported by this box")

// ErrExpired is New's answer for a session already past its expiry.
var ErrExpired = errors.New("live session expired")

// Slot is one frame's worth of audio due at At: the frame's payload, or,
// when Concealed, a gap the player fills (api.LiveFrame is zero then).
// Run counts the consecutive concealed slots up to this one, so the
// player can fade out a repeated frame and then fall silent.
type Slot struct {
	Seq       uint32
	At        time.Time
	Frame     api.LiveFrame
	Concealed bool
	Run       int
}

// Session is one box's view of one live session. It is not safe for
// concurrent use: the agent calls it from one goroutine.
type Session struct {
	start api.LiveStart
	o     Options
	dur   time.Duration

	began     bool      // the first frame arrived
	popped    bool      // a slot was handed out
	base      time.Time // playout time of seq first
	first     uint32
	next      uint32 // next seq to hand out
	lastSeq   uint32 // 0 until live.stop or the last frame names it
	buf       map[uint32]api.LiveFrame
	played    [1024]uint32 // played[seq%1024] == seq once seq was handed out as a frame
	lastValid time.Time
	run       int // consecutive concealed slots so far

	dropout *api.LiveDropout // the stretch of concealment in progress
	report  api.LiveReport
	ended   string // reason, once ended
}

// New joins a session described by a verified live.start at now.
func New(start api.LiveStart, now time.Time, o Options) (*Session, error) {
	if o.Target <= 0 {
		o.Target = DefaultTarget
	}
	if o.SilenceTimeout <= 0 {
		o.SilenceTimeout = api.LiveSilenceTimeout
	}
	if o.MaxAhead <= 0 {
		o.MaxAhead = 10 * time.Second
	}
	if !start.Codec.Valid() || (o.Decodes != nil && !o.Decodes(start.Codec)) {
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, start.Codec)
	}
	if start.FrameMS <= 0 || len(start.Key) != api.LiveKeySize {
		return nil, errors.New("live: start without frame duration or key")
	}
	if !now.Before(start.ExpiresAt) {
		return nil, fmt.Errorf("%w at %s", ErrExpired, start.ExpiresAt.Format(time.RFC3339))
	}
	return &Session{
		start:     start,
		o:         o,
		dur:       time.Duration(start.FrameMS) * time.Millisecond,
		buf:       map[uint32]api.LiveFrame{},
		lastValid: now, // a session whose frames never come ends after SilenceTimeout
		report:    api.LiveReport{Session: start.Session},
	}, nil
}

// Renew takes a later live.start of the same session (the controller
// renews long sessions): only its expiry changes anything.
func (s *Session) Renew(start api.LiveStart) error {
	if start.Session != s.start.Session || string(start.Key) != string(s.start.Key) || start.Codec != s.start.Codec || start.FrameMS != s.start.FrameMS {
		return errors.New("live: renewal of a different session")
	}
	if start.ExpiresAt.After(s.start.ExpiresAt) {
		s.start.ExpiresAt = start.ExpiresAt
	}
	return nil
}

func (s *Session) drop(reason string, format string, args ...any) error {
	if s.report.Dropped == nil {
		s.report.Dropped = map[string]int64{}
	}
	s.report.Dropped[reason]++
	return fmt.Errorf("%w: %s: %s", ErrDropped, reason, fmt.Sprintf(format, args...))
}

// playout is when seq is due.
func (s *Session) playout(seq uint32) time.Time {
	return s.base.Add(time.Duration(int64(seq)-int64(s.first)) * s.dur)
}

// Offer takes a frame as received at now. It keeps it for playout, or
// drops it and says why (an error wrapping ErrDropped). Every frame is
// checked against the session's id and key before anything in it is
// believed.
func (s *Session) Offer(data []byte, now time.Time) error {
	if s.ended != "" {
		return s.drop(DropAfterEnd, "session ended (%s)", s.ended)
	}
	if !now.Before(s.start.ExpiresAt) {
		s.end(api.LiveEndExpired)
		return s.drop(DropAfterEnd, "session expired")
	}
	f, err := api.OpenLiveFrame(s.start.Key, s.start.Session, data)
	switch {
	case errors.Is(err, api.ErrLiveForged):
		return s.drop(DropForged, "%v", err)
	case errors.Is(err, api.ErrLiveOtherSession):
		return s.drop(DropOtherSession, "%v", err)
	case err != nil:
		return s.drop(DropMalformed, "%v", err)
	}
	if f.Codec != s.start.Codec || int(f.DurationMS) != s.start.FrameMS {
		return s.drop(DropMalformed, "%s/%d ms in a %s/%d ms session", f.Codec, f.DurationMS, s.start.Codec, s.start.FrameMS)
	}
	if s.lastSeq != 0 && f.Seq > s.lastSeq {
		return s.drop(DropAfterEnd, "seq %d after the last %d", f.Seq, s.lastSeq)
	}
	// Genuine and of this session: the sender is alive, whatever happens to
	// this frame below.
	s.lastValid = now
	if !s.began {
		s.began = true
		s.first, s.next = f.Seq, f.Seq
		s.base = now.Add(s.o.Target)
		s.report.JoinedSeq = f.Seq
	}
	if f.Seq < s.next {
		if s.played[f.Seq%uint32(len(s.played))] == f.Seq {
			return s.drop(DropReplayed, "seq %d already played", f.Seq)
		}
		// Before anything sounded, a frame that overtook an earlier one
		// on the way moves the start back, if it is still in time.
		if at := s.playout(f.Seq); !s.popped && at.After(now) {
			s.next = f.Seq
			s.report.JoinedSeq = f.Seq
		} else {
			return s.drop(DropLate, "seq %d due at %s", f.Seq, at.Format("15:04:05.000"))
		}
	}
	if _, ok := s.buf[f.Seq]; ok {
		return s.drop(DropDuplicate, "seq %d already waiting", f.Seq)
	}
	if s.playout(f.Seq).After(now.Add(s.o.MaxAhead + s.o.Target)) {
		return s.drop(DropTooFar, "seq %d is %s ahead", f.Seq, s.playout(f.Seq).Sub(now))
	}
	s.buf[f.Seq] = f
	if f.Last() {
		s.Stop(f.Seq)
	}
	return nil
}

// Stop takes live.stop's (or the last frame's) final seq: frames after it
// are dropped, and the session ends once it has been handed out.
func (s *Session) Stop(lastSeq uint32) {
	if lastSeq == 0 || (s.lastSeq != 0 && s.lastSeq <= lastSeq) {
		return
	}
	s.lastSeq = lastSeq
	for seq := range s.buf {
		if seq > lastSeq {
			delete(s.buf, seq)
		}
	}
}

// Cancel ends the session at once (broadcast.cancel).
func (s *Session) Cancel() { s.end(api.LiveEndCancelled) }

// Preempt ends the session at once because something of higher priority
// took the loudspeaker.
func (s *Session) Preempt() { s.end(api.LiveEndPreempted) }

// Pop hands out, in order, every slot due by now, and ends the session
// when its last frame is out, at expiry, or after SilenceTimeout without a
// valid frame. After the end it returns nothing.
func (s *Session) Pop(now time.Time) []Slot {
	if s.ended != "" {
		return nil
	}
	var out []Slot
	expired := !now.Before(s.start.ExpiresAt)
	for s.began && (s.lastSeq == 0 || s.next <= s.lastSeq) {
		at := s.playout(s.next)
		if at.After(now) || !at.Before(s.start.ExpiresAt) {
			break
		}
		out = append(out, s.slot(at))
	}
	switch {
	case s.lastSeq != 0 && s.began && s.next > s.lastSeq:
		s.end(api.LiveEndStopped)
	case expired:
		s.end(api.LiveEndExpired)
	case now.Sub(s.lastValid) >= s.o.SilenceTimeout && s.lastSeq != 0:
		// Told where the talk ends, the box waited for frames that
		// never came (it joined as the speaker let go).
		s.end(api.LiveEndStopped)
	case now.Sub(s.lastValid) >= s.o.SilenceTimeout:
		s.end(api.LiveEndSilence)
	}
	return out
}

// slot hands out seq s.next, due at at.
func (s *Session) slot(at time.Time) Slot {
	seq := s.next
	s.next++
	s.popped = true
	ms := int64(s.start.FrameMS)
	if f, ok := s.buf[seq]; ok {
		delete(s.buf, seq)
		s.played[seq%uint32(len(s.played))] = seq
		s.run = 0
		s.closeDropout()
		s.report.PlayedMS += ms
		return Slot{Seq: seq, At: at, Frame: f}
	}
	s.run++
	s.report.ConcealedMS += ms
	if s.dropout == nil {
		s.dropout = &api.LiveDropout{AtMS: int64(seq-1) * ms}
	}
	s.dropout.LostMS += ms
	return Slot{Seq: seq, At: at, Concealed: true, Run: s.run}
}

// closeDropout files the stretch of concealment in progress, keeping the
// longest api.MaxLiveDropouts.
func (s *Session) closeDropout() {
	if s.dropout == nil {
		return
	}
	s.report.Dropouts = longest(append(s.report.Dropouts, *s.dropout))
	s.dropout = nil
}

// longest keeps the api.MaxLiveDropouts longest dropouts, in time order.
func longest(d []api.LiveDropout) []api.LiveDropout {
	if len(d) > api.MaxLiveDropouts {
		sort.SliceStable(d, func(i, j int) bool { return d[i].LostMS > d[j].LostMS })
		d = d[:api.MaxLiveDropouts]
		sort.Slice(d, func(i, j int) bool { return d[i].AtMS < d[j].AtMS })
	}
	return d
}

func (s *Session) end(reason string) {
	if s.ended != "" {
		return
	}
	s.ended = reason
	s.closeDropout()
	clear(s.buf)
}

// Ended returns why the session ended, or "" while it goes on.
func (s *Session) Ended() string { return s.ended }

// Started reports whether any slot has been handed out: the moment the
// box reports started.
func (s *Session) Started() bool { return s.popped }

// Report is the box's account so far, for the event that closes the
// session (and the started event).
func (s *Session) Report() api.LiveReport {
	r := s.report
	r.Dropouts = append([]api.LiveDropout(nil), r.Dropouts...)
	if s.dropout != nil {
		r.Dropouts = longest(append(r.Dropouts, *s.dropout))
	}
	r.Dropped = maps.Clone(r.Dropped)
	return r
}

// Start is the live.start the session was joined with (with its latest
// expiry).
func (s *Session) Start() api.LiveStart { return s.start }
