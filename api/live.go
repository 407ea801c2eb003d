package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Live voice (实时喊话) on the wire; docs/live.md gives the design and
// the measurements behind it.
//
// A live session is a broadcast: it starts with a signed live.start on the
// broadcast's retained command topic of each target group
// (Topics.Broadcast), ends with a signed live.stop on the same topic, and
// is cut short by the broadcast.cancel every broadcast has. The audio
// travels as binary frames, not retained, QoS 0, on
// Topics.LiveFrames(group, session). Each frame carries a MAC under the
// session key that only the signed live.start delivers, so a box plays
// nothing but what the controller sent in this session.

// Live command kinds.
const (
	KindLiveStart = "live.start" // a live session: play its frames as they come, over lower priorities
	KindLiveStop  = "live.stop"  // the speaker finished: play out the frames up to LastSeq, then stop
)

// LiveCodec names how a frame's payload is encoded. On the wire it is
// one byte in each frame and a name in the start command.
type LiveCodec uint8

// Codecs. Opus is what browsers with WebCodecs send; PCMU is the fallback
// any browser can produce in a few lines of script; PCM16 is the exact
// reference (tests, the latency benchmark, the simulator).
const (
	CodecOpus  LiveCodec = 1 // Opus (RFC 6716), mono, 48 kHz decoder clock
	CodecPCM16 LiveCodec = 2 // signed 16-bit little-endian PCM, mono, 16 kHz
	CodecPCMU  LiveCodec = 3 // G.711 µ-law, mono, 8 kHz
)

var codecNames = map[LiveCodec]string{CodecOpus: "opus", CodecPCM16: "pcm16", CodecPCMU: "pcmu"}

// Valid reports whether c is a codec of this version of the contract.
func (c LiveCodec) Valid() bool { _, ok := codecNames[c]; return ok }

// String is the codec's name in JSON.
func (c LiveCodec) String() string {
	if n, ok := codecNames[c]; ok {
		return n
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// SampleRate is the rate at which the codec's payload decodes.
func (c LiveCodec) SampleRate() int {
	switch c {
	case CodecOpus:
		return 48000
	case CodecPCM16:
		return 16000
	case CodecPCMU:
		return 8000
	}
	return 0
}

// MarshalText writes the codec's name.
func (c LiveCodec) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("unknown codec %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a codec's name; an unknown name is an error, so a
// box never starts a session it could not decode.
func (c *LiveCodec) UnmarshalText(b []byte) error {
	for k, n := range codecNames {
		if n == string(b) {
			*c = k
			return nil
		}
	}
	return fmt.Errorf("unknown codec %q", b)
}

// LiveSessionID names one live session in its frames and topic: 8 random
// bytes, hex in JSON and topics. It is not a secret.
type LiveSessionID [8]byte

// NewLiveSessionID returns a random session id.
func NewLiveSessionID() LiveSessionID {
	var id LiveSessionID
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return id
}

// String is the id in hex, as in topics.
func (id LiveSessionID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the id in hex.
func (id LiveSessionID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads 16 hex digits.
func (id *LiveSessionID) UnmarshalText(b []byte) error {
	if len(b) != 2*len(id) {
		return fmt.Errorf("session id %q: want %d hex digits", b, 2*len(id))
	}
	_, err := hex.Decode(id[:], b)
	if err != nil {
		return fmt.Errorf("session id %q: %w", b, err)
	}
	return nil
}

// LiveKeySize is the size of a session's frame key.
const LiveKeySize = 32

// NewLiveKey returns a random frame key for one session.
func NewLiveKey() []byte {
	k := make([]byte, LiveKeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return k
}

// Frame durations a session may use, in milliseconds. Opus allows all of
// them; 20 ms is what browsers' encoders give by default.
var liveFrameMS = map[int]bool{10: true, 20: true, 40: true, 60: true}

// MaxLiveSession bounds one live.start's validity, from its issue: a
// session that goes on longer is renewed by a new live.start (same
// session, key and broadcast, a higher seq, a later ExpiresAt), so a lost
// controller cannot leave boxes listening for hours.
const MaxLiveSession = 2 * time.Hour

// LiveStart is a live session as a box needs it: the broadcast it belongs
// to (for reports, arbitration and cancellation), how urgently it plays,
// how its frames are encoded, and the key that authenticates them.
//
// A box that verifies it before ExpiresAt joins the session: it subscribes
// to the session's frames and plays them from where it joined. It never
// plays a frame after ExpiresAt.
type LiveStart struct {
	BroadcastID int64              `json:"broadcast_id"`
	Session     LiveSessionID      `json:"session"`
	Priority    playlists.Priority `json:"priority"`
	Severity    int                `json:"severity"` // 1 (I, red) … 4 (IV, blue)
	EventType   string             `json:"event_type,omitempty"`
	Test        bool               `json:"test"`
	Codec       LiveCodec          `json:"codec"`
	FrameMS     int                `json:"frame_ms"`
	// Key is the session's frame key (LiveKeySize bytes, base64 in JSON).
	// It travels only inside this signed command; see docs/live.md for
	// who can read it.
	Key []byte `json:"key"`
	// StartedAt is the instant a frame's timestamp counts from.
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Speaker is the staff member speaking, for the box's log and reports.
	Speaker         string `json:"speaker,omitempty"`
	Volume          int    `json:"volume,omitempty"`
	ForceFullVolume bool   `json:"force_full_volume,omitempty"`
}

// LiveStop ends a live session normally: a box plays the frames up to
// and including LastSeq that reach it in time, then reports finished.
// (broadcast.cancel instead cuts the session off at once.)
type LiveStop struct {
	BroadcastID int64         `json:"broadcast_id"`
	Session     LiveSessionID `json:"session"`
	LastSeq     uint32        `json:"last_seq"`
}

// check validates a live.start issued at issued. The session's expiry is
// bounded from the command's issue, not from the session's start, so that
// a renewal of a long talk stays valid.
func (s *LiveStart) check(issued time.Time) error {
	if s == nil || s.BroadcastID <= 0 {
		return errors.New("live.start without broadcast id")
	}
	if s.Session == (LiveSessionID{}) {
		return errors.New("live.start without session")
	}
	if !s.Priority.Valid() || s.Severity < 1 || s.Severity > 4 {
		return errors.New("live: bad priority or severity")
	}
	if !s.Codec.Valid() || !liveFrameMS[s.FrameMS] {
		return fmt.Errorf("live: bad codec %d or frame duration %d ms", uint8(s.Codec), s.FrameMS)
	}
	if len(s.Key) != LiveKeySize {
		return fmt.Errorf("live: key of %d bytes, want %d", len(s.Key), LiveKeySize)
	}
	if s.StartedAt.IsZero() || !s.ExpiresAt.After(s.StartedAt) || s.ExpiresAt.Sub(issued) > MaxLiveSession {
		return fmt.Errorf("live: expires_at must be after started_at and at most %s after issue", MaxLiveSession)
	}
	if s.Volume < 0 || s.Volume > 100 || len(s.Speaker) > 200 || len(s.EventType) > 100 {
		return errors.New("live: bad volume, speaker or event type")
	}
	return nil
}

func (s *LiveStop) check() error {
	if s == nil || s.BroadcastID <= 0 || s.Session == (LiveSessionID{}) {
		return errors.New("live.stop without broadcast id or session")
	}
	return nil
}

// LiveFrames is the topic of one session's audio frames for a group. It
// is outside cmd/ so that a box subscribed to its commands never reads a
// frame as a command, and so that frames are never retained.
func (t Topics) LiveFrames(g Group, session LiveSessionID) string {
	return fmt.Sprintf("%s/live/%s/%s", t.p(), g, session)
}

// LiveFramesFilter is the subscription that receives every session's
// frames for a group.
func (t Topics) LiveFramesFilter(g Group) string { return fmt.Sprintf("%s/live/%s/#", t.p(), g) }

// The binary frame, big-endian:
//
//	offset size
//	 0      1   version (LiveFrameVersion)
//	 1      1   flags (LiveFlagLast)
//	 2      1   codec (LiveCodec)
//	 3      1   duration of the frame's audio in ms
//	 4      8   session id
//	12      4   seq: 1 for the session's first frame, +1 each frame
//	16      4   timestamp: ms from the session's StartedAt to the capture of the frame's first sample
//	20      n   payload: the codec's bytes for one frame
//	20+n   16   MAC: HMAC-SHA256(key, "cunxiang live frame v1" ‖ bytes 0..20+n), first 16 bytes
//
// One MQTT message holds one frame; n is what the message length leaves.
const (
	LiveFrameVersion    = 1
	LiveFrameHeader     = 20
	LiveMACSize         = 16
	LiveFrameOverhead   = LiveFrameHeader + LiveMACSize
	MaxLiveFramePayload = 4000 // 60 ms of PCM16 is 1,920 bytes; an Opus packet at most 1,275
)

// LiveFlagLast marks the session's last frame: the speaker let go.
const LiveFlagLast = 1

var liveMACLabel = []byte("cunxiang live frame v1")

// LiveFrame is one frame of audio.
type LiveFrame struct {
	Flags       uint8
	Codec       LiveCodec
	DurationMS  uint8
	Session     LiveSessionID
	Seq         uint32
	TimestampMS uint32
	Payload     []byte
}

// Last reports whether the frame ends its session.
func (f LiveFrame) Last() bool { return f.Flags&LiveFlagLast != 0 }

// Reasons a box drops a frame.
var (
	ErrLiveMalformed    = errors.New("live frame malformed")
	ErrLiveOtherSession = errors.New("live frame of another session")
	ErrLiveForged       = errors.New("live frame MAC does not verify")
)

// SealLiveFrame encodes f and appends its MAC under key.
func SealLiveFrame(key []byte, f LiveFrame) []byte {
	b := make([]byte, LiveFrameHeader, LiveFrameOverhead+len(f.Payload))
	b[0] = LiveFrameVersion
	b[1] = f.Flags
	b[2] = byte(f.Codec)
	b[3] = f.DurationMS
	copy(b[4:12], f.Session[:])
	binary.BigEndian.PutUint32(b[12:], f.Seq)
	binary.BigEndian.PutUint32(b[16:], f.TimestampMS)
	b = append(b, f.Payload...)
	return append(b, liveMAC(key, b)...)
}

func liveMAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(liveMACLabel)
	m.Write(msg)
	return m.Sum(nil)[:LiveMACSize]
}

// OpenLiveFrame checks a received frame: its shape, that it belongs to
// session, and its MAC under the session's key, in that order (the MAC
// is computed only for a frame that could be genuine). The payload
// aliases data. It never panics on hostile input.
func OpenLiveFrame(key []byte, session LiveSessionID, data []byte) (LiveFrame, error) {
	var f LiveFrame
	if len(data) < LiveFrameOverhead || len(data) > LiveFrameOverhead+MaxLiveFramePayload {
		return f, fmt.Errorf("%w: %d bytes", ErrLiveMalformed, len(data))
	}
	if data[0] != LiveFrameVersion {
		return f, fmt.Errorf("%w: version %d", ErrLiveMalformed, data[0])
	}
	f.Flags = data[1]
	f.Codec = LiveCodec(data[2])
	f.DurationMS = data[3]
	copy(f.Session[:], data[4:12])
	f.Seq = binary.BigEndian.Uint32(data[12:])
	f.TimestampMS = binary.BigEndian.Uint32(data[16:])
	body := data[:len(data)-LiveMACSize]
	f.Payload = body[LiveFrameHeader:]
	if f.Session != session {
		return LiveFrame{}, fmt.Errorf("%w: %s, want %s", ErrLiveOtherSession, f.Session, session)
	}
	if len(key) != LiveKeySize || !hmac.Equal(liveMAC(key, body), data[len(body):]) {
		return LiveFrame{}, ErrLiveForged
	}
	if f.Flags&^LiveFlagLast != 0 || !f.Codec.Valid() || !liveFrameMS[int(f.DurationMS)] || f.Seq == 0 {
		return LiveFrame{}, fmt.Errorf("%w: flags %#x, codec %d, %d ms, seq %d", ErrLiveMalformed, f.Flags, f.Codec, f.DurationMS, f.Seq)
	}
	return f, nil
}

// Why a box's live session ended, in Event.Reason of the event that
// closes it (finished, cancelled, expired, failed or partial).
const (
	LiveEndStopped     = "live_stopped"           // live.stop or the last frame: the speaker finished
	LiveEndCancelled   = "live_cancelled"         // broadcast.cancel
	LiveEndExpired     = "live_expired"           // ExpiresAt passed before the session ended
	LiveEndSilence     = "live_silence"           // no valid frame for LiveSilenceTimeout
	LiveEndPreempted   = "live_preempted"         // something of higher priority took the loudspeaker
	LiveEndUnsupported = "live_codec_unsupported" // this box cannot decode the session's codec
	LiveNotPlayed      = "live_not_played"        // this box's agent does not play live sessions (an older release)
)

// LiveSilenceTimeout is how long a box waits for a valid frame before it
// ends a session on its own.
const LiveSilenceTimeout = 5 * time.Second

// LiveReport is a box's account of one live session, carried by the
// event that closes it (and, with only Session and JoinedSeq set, by
// the started event).
type LiveReport struct {
	Session LiveSessionID `json:"session"`
	// JoinedSeq is the first frame the box played: 1, or later for a box
	// that joined a session in progress.
	JoinedSeq uint32 `json:"joined_seq"`
	// PlayedMS is audio played from genuine frames; ConcealedMS is audio
	// the box had to make up for frames lost or late.
	PlayedMS    int64 `json:"played_ms"`
	ConcealedMS int64 `json:"concealed_ms"`
	// Dropped counts frames refused, by reason (forged, other_session,
	// replayed, late, malformed, after_end).
	Dropped map[string]int64 `json:"dropped,omitempty"`
	// Dropouts lists the longest stretches of concealed audio, at most
	// MaxLiveDropouts, for the report's "what did the village miss".
	Dropouts []LiveDropout `json:"dropouts,omitempty"`
}

// LiveDropout is one stretch of concealed audio: from AtMS (session
// timestamp) for LostMS.
type LiveDropout struct {
	AtMS   int64 `json:"at_ms"`
	LostMS int64 `json:"lost_ms"`
}

// MaxLiveDropouts bounds LiveReport.Dropouts.
const MaxLiveDropouts = 20

func (r *LiveReport) check() error {
	if r.Session == (LiveSessionID{}) || r.PlayedMS < 0 || r.ConcealedMS < 0 || len(r.Dropouts) > MaxLiveDropouts || len(r.Dropped) > 10 {
		return errors.New("live report: bad session, durations or counts")
	}
	for k, n := range r.Dropped {
		if len(k) > 40 || n < 0 {
			return errors.New("live report: bad drop count")
		}
	}
	for _, d := range r.Dropouts {
		if d.AtMS < 0 || d.LostMS <= 0 {
			return errors.New("live report: bad dropout")
		}
	}
	return nil
}
