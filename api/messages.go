package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Version is the wire version every message carries.
const Version = 1

// Command kinds.
const (
	KindSchedulePut      = "schedule.put"      // the schedule, with its playlist, as it should be on the box
	KindScheduleWithdraw = "schedule.withdraw" // the schedule is gone: forget it, never play it again
	KindReportsAck       = "reports.ack"       // the controller has committed the box's reports up to Seq
	KindBroadcastPut     = "broadcast.put"     // a broadcast to play now, over lower priorities, until it expires
	KindBroadcastCancel  = "broadcast.cancel"  // stop the broadcast at once and never play it again
	KindConfigPut        = "config.put"        // quiet hours and volume for a township or one village
)

// Command is the signed body of everything a box acts on.
//
// Seq increases with every command the controller issues; a box keeps, per
// object (schedule id or the ack stream), the highest Seq it has applied and
// refuses anything older, so replaying a genuine but superseded command
// (say, a schedule after its withdrawal) changes nothing.
type Command struct {
	V         int       `json:"v"`
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Target    Group     `json:"target"`
	Seq       int64     `json:"seq"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`

	Schedule *ScheduleState `json:"schedule,omitempty"`
	Withdraw *Withdrawal    `json:"withdraw,omitempty"`
	Ack      *ReportsAck    `json:"ack,omitempty"`

	Broadcast *BroadcastState `json:"broadcast,omitempty"`
	Cancel    *Cancellation   `json:"cancel,omitempty"`
	Config    *BoxConfig      `json:"config,omitempty"`

	Live     *LiveStart `json:"live,omitempty"`
	LiveStop *LiveStop  `json:"live_stop,omitempty"`
}

// BroadcastState is a broadcast as a box needs it: what to play, how
// urgently, how loud, and until when. A box that learns of it before
// ExpiresAt plays it at once (interrupting anything of lower priority);
// after ExpiresAt it never plays it and reports EventExpired.
type BroadcastState struct {
	ID        int64              `json:"id"`
	Priority  playlists.Priority `json:"priority"`
	Severity  int                `json:"severity"` // 1 (I, red) … 4 (IV, blue)
	EventType string             `json:"event_type,omitempty"`
	Test      bool               `json:"test"`
	Playlist  playlists.Playlist `json:"playlist"`
	// Repeat plays the whole playlist this many times (0 means 1).
	Repeat    int       `json:"repeat"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Volume in percent overrides the box's default when > 0;
	// ForceFullVolume (emergency only) plays at 100 whatever is set.
	Volume          int  `json:"volume,omitempty"`
	ForceFullVolume bool `json:"force_full_volume,omitempty"`
}

// Cancellation stops a broadcast.
type Cancellation struct {
	BroadcastID int64 `json:"broadcast_id"`
}

// BoxConfig is the settings of a township's or one village's boxes; a
// village's own config overrides its township's, field by field where set.
type BoxConfig struct {
	// QuietHours: routine schedules do not sound inside these windows;
	// urgent and emergency broadcasts do.
	QuietHours []playlists.QuietWindow `json:"quiet_hours,omitempty"`
	Timezone   string                  `json:"timezone,omitempty"`
	// Volume in percent, 1..100; 0 means not set here.
	Volume int `json:"volume,omitempty"`
}

// ScheduleState is all a box needs to play a schedule on its own: the
// schedule and its playlist with each clip's sha256 and duration. Audio
// bytes come from GET /api/v1/audio/{id}/content.
type ScheduleState struct {
	Schedule playlists.Schedule `json:"schedule"`
	Playlist playlists.Playlist `json:"playlist"`
}

// Withdrawal removes a schedule from every box in the target group.
type Withdrawal struct {
	ScheduleID int64 `json:"schedule_id"`
}

// ReportsAck tells one box that its reports up to and including Seq are
// stored; the box may drop them from its outbox.
type ReportsAck struct {
	Village string `json:"village"`
	Seq     int64  `json:"seq"`
}

// ObjectKey names what a command changes, for replay ordering: commands on
// the same object must arrive with increasing Seq.
func (c Command) ObjectKey() string {
	switch c.Kind {
	case KindSchedulePut:
		if c.Schedule != nil {
			return fmt.Sprintf("sched/%d", c.Schedule.Schedule.ID)
		}
	case KindScheduleWithdraw:
		if c.Withdraw != nil {
			return fmt.Sprintf("sched/%d", c.Withdraw.ScheduleID)
		}
	case KindReportsAck:
		if c.Ack != nil {
			return "ack/" + c.Ack.Village
		}
	case KindBroadcastPut:
		if c.Broadcast != nil {
			return fmt.Sprintf("bcast/%d", c.Broadcast.ID)
		}
	case KindBroadcastCancel:
		if c.Cancel != nil {
			return fmt.Sprintf("bcast/%d", c.Cancel.BroadcastID)
		}
	case KindConfigPut:
		return "config/" + string(c.Target)
	case KindLiveStart:
		if c.Live != nil {
			return fmt.Sprintf("bcast/%d", c.Live.BroadcastID)
		}
	case KindLiveStop:
		if c.LiveStop != nil {
			return fmt.Sprintf("bcast/%d", c.LiveStop.BroadcastID)
		}
	}
	return "?"
}

var villageCode = regexp.MustCompile(`^[0-9]{12}$`)

// ValidVillageCode reports whether s is a 12-digit administrative-division code.
func ValidVillageCode(s string) bool { return villageCode.MatchString(s) }

var townshipCode = regexp.MustCompile(`^[0-9]{9}$`)

// validGroup reports whether g is "all", "t/<9 digits>" or "v/<12 digits>".
// (Matching it against a topic is not enough: "t/1/sched" parses as the
// group of a topic, and "t/+" names no township.)
func validGroup(g Group) bool {
	s := string(g)
	switch {
	case g == GroupAll:
		return true
	case strings.HasPrefix(s, "t/"):
		return townshipCode.MatchString(s[2:])
	case strings.HasPrefix(s, "v/"):
		return ValidVillageCode(s[2:])
	}
	return false
}

// Check validates a decoded command's shape (not its signature or times).
func (c Command) Check() error {
	if c.V != Version {
		return fmt.Errorf("unsupported version %d", c.V)
	}
	if c.ID == "" || c.Seq <= 0 || c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() {
		return errors.New("missing id, seq, issued_at or expires_at")
	}
	if !validGroup(c.Target) {
		return fmt.Errorf("bad target %q", c.Target)
	}
	switch c.Kind {
	case KindSchedulePut:
		if c.Schedule == nil {
			return errors.New("schedule.put without schedule")
		}
		if err := c.Schedule.Schedule.Validate(); err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
		if err := checkItems(c.Schedule.Playlist); err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
	case KindScheduleWithdraw:
		if c.Withdraw == nil || c.Withdraw.ScheduleID <= 0 {
			return errors.New("schedule.withdraw without schedule id")
		}
	case KindReportsAck:
		if c.Ack == nil || !ValidVillageCode(c.Ack.Village) || c.Ack.Seq < 0 {
			return errors.New("reports.ack without village or seq")
		}
		if c.Target != VillageGroup(c.Ack.Village) {
			return fmt.Errorf("reports.ack for %s targets %q", c.Ack.Village, c.Target)
		}
	case KindBroadcastPut:
		b := c.Broadcast
		if b == nil || b.ID <= 0 {
			return errors.New("broadcast.put without broadcast id")
		}
		if !b.Priority.Valid() || b.Severity < 1 || b.Severity > 4 {
			return errors.New("broadcast: bad priority or severity")
		}
		if b.ExpiresAt.IsZero() || b.Repeat < 0 || b.Repeat > playlists.MaxRepeat || b.Volume < 0 || b.Volume > 100 {
			return errors.New("broadcast: bad expiry, repeat or volume")
		}
		if err := checkItems(b.Playlist); err != nil {
			return fmt.Errorf("broadcast: %w", err)
		}
	case KindBroadcastCancel:
		if c.Cancel == nil || c.Cancel.BroadcastID <= 0 {
			return errors.New("broadcast.cancel without broadcast id")
		}
	case KindConfigPut:
		if c.Config == nil {
			return errors.New("config.put without config")
		}
		if c.Config.Volume < 0 || c.Config.Volume > 100 {
			return errors.New("config: volume must be 0..100")
		}
		for _, w := range c.Config.QuietHours {
			if err := w.Validate(); err != nil {
				return fmt.Errorf("config: %w", err)
			}
		}
	case KindLiveStart:
		return c.Live.check(c.IssuedAt)
	case KindLiveStop:
		return c.LiveStop.check()
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}

func checkItems(p playlists.Playlist) error {
	if len(p.Items) == 0 {
		return errors.New("empty playlist")
	}
	for _, it := range p.Items {
		if len(it.SHA256) != 64 || it.DurationMS <= 0 || it.AudioID <= 0 {
			return errors.New("playlist item without audio id, sha256 or duration")
		}
	}
	return nil
}

// Event types a box reports.
const (
	EventReceived   = "received"   // a schedule (or withdrawal) was accepted
	EventDownloaded = "downloaded" // a clip is on disk and its sha256 matches
	EventStarted    = "started"    // an occurrence began sounding
	EventFinished   = "finished"   // the whole playlist of an occurrence sounded
	EventFailed     = "failed"     // an occurrence (or download) failed; Reason says why
	EventRejected   = "rejected"   // a command was refused (bad signature, expired, replay); Reason says why
	EventPartial    = "partial"    // playback was cut off by something of higher priority
	EventCancelled  = "cancelled"  // a broadcast was stopped (or never started) by its cancellation
	EventExpired    = "expired"    // a broadcast reached the box after its expiry and was not played
)

// Event is one report from a box. Seq numbers a box's events 1, 2, 3…
// without gaps; the controller stores each (village, seq) exactly once.
type Event struct {
	Seq         int64     `json:"seq"`
	Type        string    `json:"type"`
	At          time.Time `json:"at"`
	ScheduleID  int64     `json:"schedule_id,omitempty"`
	BroadcastID int64     `json:"broadcast_id,omitempty"`
	// Test marks reports of a test broadcast: never counted as real coverage.
	Test       bool       `json:"test,omitempty"`
	Occurrence *time.Time `json:"occurrence,omitempty"`
	AudioID    int64      `json:"audio_id,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	// Live is a live session's account, on the events of a live broadcast.
	Live *LiveReport `json:"live,omitempty"`
}

// EventBatch is what a box publishes on its events topic: one or more
// events in Seq order.
type EventBatch struct {
	V       int     `json:"v"`
	Village string  `json:"village"`
	Version string  `json:"agent_version,omitempty"`
	Events  []Event `json:"events"`
}

// MaxEventsPerBatch bounds one report message.
const MaxEventsPerBatch = 100

// MaxReasonBytes bounds Event.Reason.
const MaxReasonBytes = 500

// DecodeEventBatch parses and validates a report message received on the
// events topic of village. It never panics on hostile input.
func DecodeEventBatch(village string, data []byte) (EventBatch, error) {
	var b EventBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("decode events: %w", err)
	}
	if b.V != Version {
		return b, fmt.Errorf("events: unsupported version %d", b.V)
	}
	if b.Village != village || !ValidVillageCode(village) {
		return b, fmt.Errorf("events: village %q published on the topic of %q", b.Village, village)
	}
	if len(b.Events) == 0 || len(b.Events) > MaxEventsPerBatch {
		return b, fmt.Errorf("events: %d events in one message (1..%d allowed)", len(b.Events), MaxEventsPerBatch)
	}
	for i, e := range b.Events {
		if e.Seq <= 0 {
			return b, fmt.Errorf("events[%d]: seq must be positive", i)
		}
		// In order and each once: a batch is stored in one transaction
		// keyed by (village, seq), where a repeated seq would be ambiguous.
		if i > 0 && e.Seq <= b.Events[i-1].Seq {
			return b, fmt.Errorf("events[%d]: seq %d after %d", i, e.Seq, b.Events[i-1].Seq)
		}
		switch e.Type {
		case EventReceived, EventDownloaded, EventStarted, EventFinished, EventFailed, EventRejected,
			EventPartial, EventCancelled, EventExpired:
		default:
			return b, fmt.Errorf("events[%d]: unknown type %q", i, e.Type)
		}
		if e.At.IsZero() {
			return b, fmt.Errorf("events[%d]: missing time", i)
		}
		if len(e.Reason) > MaxReasonBytes {
			return b, fmt.Errorf("events[%d]: reason longer than %d bytes", i, MaxReasonBytes)
		}
		if e.Live != nil {
			if err := e.Live.check(); err != nil {
				return b, fmt.Errorf("events[%d]: %w", i, err)
			}
		}
	}
	return b, nil
}

// Presence states.
const (
	Online  = "online"
	Offline = "offline"
)

// Presence is retained on a box's presence topic: "online" when it
// connects, "offline" by its Last Will or on a clean shutdown.
type Presence struct {
	V       int       `json:"v"`
	Village string    `json:"village"`
	Status  string    `json:"status"`
	At      time.Time `json:"at"`
	Version string    `json:"agent_version,omitempty"`
	// ClockOffsetMS is how far the box's own clock is behind the
	// controller's, as the box last measured it.
	ClockOffsetMS int64 `json:"clock_offset_ms"`
}

// DecodePresence parses and validates a presence message of village.
func DecodePresence(village string, data []byte) (Presence, error) {
	var p Presence
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("decode presence: %w", err)
	}
	if p.V != Version || p.Village != village || !ValidVillageCode(village) || (p.Status != Online && p.Status != Offline) {
		return p, fmt.Errorf("presence: bad version, village or status")
	}
	return p, nil
}

// EnrollRequest exchanges a one-time enrollment token for a box's own
// credentials: POST /api/v1/enroll.
type EnrollRequest struct {
	Village      string `json:"village"`
	Token        string `json:"token"`
	AgentVersion string `json:"agent_version,omitempty"`
}

// EnrollResponse is what a box stores in its data directory.
type EnrollResponse struct {
	Village      string `json:"village"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTPassword string `json:"mqtt_password"`
	// SigningKey is the controller's Ed25519 public key (32 bytes, base64 in JSON).
	SigningKey  []byte `json:"signing_key"`
	TopicPrefix string `json:"topic_prefix"`
	// Broker is the MQTT URL the controller suggests, e.g. tcp://host:1883.
	Broker string `json:"broker,omitempty"`
	// LastSeq is the highest report seq the controller holds from this
	// village. A new or replaced box numbers its reports after it: reusing
	// a number the controller already stored would lose the report.
	LastSeq int64 `json:"last_seq"`
}

// ClockResponse is GET /api/v1/clock: the controller's time, for boxes to
// measure their clock offset.
type ClockResponse struct {
	Now time.Time `json:"now"`
}

// ErrorBody is the shape of every HTTP error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a machine-readable code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists per-row or per-field problems where there are several.
	Details []RowError `json:"details,omitempty"`
	// Field names the offending request field, when there is one.
	Field string `json:"field,omitempty"`
	// Reason is a stable snake_case key (one of the Reason… constants of
	// reasons.go) that a client translates, filling in Params; Message is
	// the same in English.
	Reason string         `json:"reason,omitempty"`
	Params map[string]any `json:"params,omitempty"`
}

// RowError names one bad line of an import.
type RowError struct {
	Line   int    `json:"line"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
	// Key is Reason's stable key (a Reason… constant), with Params: Reason
	// itself is English text for API users.
	Key    string    `json:"key,omitempty"`
	Params RowParams `json:"params,omitzero"`
}

// RowParams are the values a RowError's Key refers to; a struct, not a
// map, so that a RowError stays comparable.
type RowParams struct {
	Value string  `json:"value,omitempty"` // the offending cell or column name
	Line  int     `json:"line,omitempty"`  // the other line (a duplicate)
	N     int     `json:"n,omitempty"`     // how many there are
	Max   int     `json:"max,omitempty"`   // how many are allowed
	Got   int     `json:"got,omitempty"`   // fields on the line
	Want  int     `json:"want,omitempty"`  // fields in the header
	Limit float64 `json:"limit,omitempty"` // the bound of a coordinate
}

// Broadcast statuses a box is told by GET /api/v1/box/broadcasts/{id}
// (BroadcastCheck).
const (
	CheckActive    = "active"    // sent to the box's village, not cancelled, not expired: play it
	CheckCancelled = "cancelled" // an operator cancelled it
	CheckRejected  = "rejected"  // an approver refused it, or it still waits for approval: it was never sent
	CheckExpired   = "expired"   // past its expiry
	CheckUnknown   = "unknown"   // no such broadcast for this village
)

// BroadcastCheck is the controller's answer to a box that received a
// broadcast late (it was offline, or the message is older than a short
// bound) and asks, before sounding it, whether it is still active: a
// broker that served a stale or replayed copy of a cancelled broadcast
// cannot make it sound.
type BroadcastCheck struct {
	ID     int64  `json:"id"`
	Status string `json:"status"` // one of the Check* statuses
}
