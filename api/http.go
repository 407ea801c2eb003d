package api

import (
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// The bodies of the HTTP API (openapi.yaml names the same shapes in
// components/schemas). The controller answers with these types and the Go
// client (api/client) reads them, so the server, the client and the
// document cannot drift apart: testdata/http/ holds a golden example of
// each, checked against openapi.yaml by TestHTTPGolden.
//
// Requests whose fields are optional in a PATCH use pointers, so that an
// absent field is told from a zero one. Times in answers are UTC.

// ---- Villages and boxes ----

// Village is a village as GET /api/v1/villages lists it.
type Village struct {
	Code     string  `json:"code"`
	Name     string  `json:"name"`
	Township string  `json:"township"`
	Lat      float64 `json:"lat"`
	Lon      float64 `json:"lon"`
	Device   string  `json:"device"` // agent or manual
	// For agent villages only.
	Enrolled      *bool      `json:"enrolled,omitempty"`
	Presence      string     `json:"presence,omitempty"` // online, offline or never
	PresenceAt    *time.Time `json:"presence_at,omitempty"`
	LastSeen      *time.Time `json:"last_seen,omitempty"`
	AgentVersion  string     `json:"agent_version,omitempty"`
	ClockOffsetMS *int64     `json:"clock_offset_ms,omitempty"`
	EnrolledAt    *time.Time `json:"enrolled_at,omitempty"`
	// Revoked: an admin revoked the box; it cannot connect until a box
	// enrolls again with a new token.
	Revoked bool `json:"revoked,omitempty"`
}

// VillageList is the answer of GET /api/v1/villages.
type VillageList struct {
	Villages []Village `json:"villages"`
}

// VillageChange is the body of PATCH /api/v1/villages/{code}: only the
// fields given change.
type VillageChange struct {
	Name     *string  `json:"name,omitempty"`
	Township *string  `json:"township,omitempty"`
	Lat      *float64 `json:"lat,omitempty"`
	Lon      *float64 `json:"lon,omitempty"`
	Device   *string  `json:"device,omitempty"`
}

// ImportCounts is the answer of POST /api/v1/villages/import.
type ImportCounts struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Total   int `json:"total"`
}

// EnrollToken is a one-time enrollment token for a village's box, the
// answer of POST /api/v1/villages/{code}/enroll and …/replace.
type EnrollToken struct {
	Token     string    `json:"token"`
	Village   string    `json:"village"`
	ExpiresAt time.Time `json:"expires_at"`
}

// VillageSchedule is a schedule as a village's page lists it.
type VillageSchedule struct {
	Schedule
	// Recent are the occurrences from ?from= until now, oldest first.
	Recent []time.Time `json:"recent"`
	// Confirmed are the occurrences this village confirmed by hand.
	Confirmed []time.Time `json:"confirmed"`
}

// VillageScheduleList is the answer of GET /api/v1/villages/{code}/schedules.
type VillageScheduleList struct {
	Schedules []VillageSchedule `json:"schedules"`
}

// VillageBroadcast is a broadcast as a village's page lists it.
type VillageBroadcast struct {
	Broadcast
	// Confirmed: this village confirmed playing it by hand.
	Confirmed bool `json:"confirmed"`
}

// VillageBroadcastList is the answer of GET /api/v1/villages/{code}/broadcasts.
type VillageBroadcastList struct {
	Broadcasts []VillageBroadcast `json:"broadcasts"`
}

// VillageEvent is one report a village's box sent, as stored.
type VillageEvent struct {
	Seq         int64      `json:"seq"`
	Type        string     `json:"type"`
	At          time.Time  `json:"at"` // by the box's clock
	ScheduleID  int64      `json:"schedule_id,omitempty"`
	Occurrence  *time.Time `json:"occurrence,omitempty"`
	BroadcastID int64      `json:"broadcast_id,omitempty"`
	AudioID     int64      `json:"audio_id,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Test        bool       `json:"test,omitempty"`
	ReceivedAt  time.Time  `json:"received_at"`
}

// VillageEvents is the answer of GET /api/v1/villages/{code}/events.
type VillageEvents struct {
	Village string         `json:"village"`
	Events  []VillageEvent `json:"events"`
}

// ConfirmationRequest is the body of POST
// /api/v1/villages/{code}/confirmations: a person confirms that a village
// without a box played an occurrence (schedule_id and occurrence) or a
// broadcast (broadcast_id). Times are RFC 3339, or wall-clock in
// Asia/Shanghai; played_at defaults to now.
type ConfirmationRequest struct {
	ScheduleID  int64  `json:"schedule_id,omitempty"`
	Occurrence  string `json:"occurrence,omitempty"`
	BroadcastID int64  `json:"broadcast_id,omitempty"`
	PlayedAt    string `json:"played_at,omitempty"`
	Note        string `json:"note,omitempty"`
}

// Confirmation is a stored confirmation by hand.
type Confirmation struct {
	ID          int64      `json:"id"`
	Village     string     `json:"village"`
	ScheduleID  int64      `json:"schedule_id,omitempty"`
	Occurrence  *time.Time `json:"occurrence,omitempty"`
	BroadcastID int64      `json:"broadcast_id,omitempty"`
	PlayedAt    time.Time  `json:"played_at"`
	Note        string     `json:"note,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
}

// Settings are a township's or a village's box settings, the answer of
// GET and PUT …/config (the request body is a BoxConfig).
type Settings struct {
	Scope      string                  `json:"scope"` // township or village
	Name       string                  `json:"name"`  // the township's name or the village's code
	QuietHours []playlists.QuietWindow `json:"quiet_hours"`
	Volume     int                     `json:"volume"`
	Timezone   string                  `json:"timezone,omitempty"`
	// Groups are the broker groups the settings go to.
	Groups    []Group    `json:"groups"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
	// UpdatedByName is updated_by's display name (updated_by if none).
	UpdatedByName string `json:"updated_by_name,omitempty"`
}

// ---- Audio and playlists ----

// AudioFormat is an uploaded file's format.
type AudioFormat struct {
	SampleRate int `json:"sample_rate"`
	Channels   int `json:"channels"`
	// BitsPerSample is the WAV's sample size; an MP3 decodes to 16 bits.
	BitsPerSample int `json:"bits_per_sample"`
	// Codec is "wav" or "mp3".
	Codec string `json:"codec,omitempty"`
	// Kbps is an MP3's average bitrate.
	Kbps int `json:"kbps,omitempty"`
}

// Audio is a clip of the library.
type Audio struct {
	ID         int64     `json:"id"`
	SHA256     string    `json:"sha256"`
	Title      string    `json:"title"`
	DurationMS int64     `json:"duration_ms"`
	SampleRate int       `json:"sample_rate"`
	Channels   int       `json:"channels"`
	SizeBytes  int64     `json:"size_bytes"`
	CreatedAt  time.Time `json:"created_at"`
	// Loudness as measured when the clip was stored, and the gain players
	// apply; null for a clip stored before loudness was measured.
	LoudnessLUFS *float64 `json:"loudness_lufs"`
	PeakDBFS     *float64 `json:"peak_dbfs"`
	GainDB       *float64 `json:"gain_db"`
	// CreatedBy names who uploaded it or had it spoken; "" if unknown.
	CreatedBy string `json:"created_by"`
	// CreatedByName is that user's display name (created_by if none).
	CreatedByName string `json:"created_by_name,omitempty"`
	// DeletedAt is set for a deleted clip (GET /api/v1/audio/{id} still
	// finds it: past broadcasts name it).
	DeletedAt *time.Time   `json:"deleted_at,omitempty"`
	Source    *AudioFormat `json:"source,omitempty"` // the upload's format, in the answer to an upload
}

// AudioList is the answer of GET /api/v1/audio.
type AudioList struct {
	Audio []Audio `json:"audio"`
}

// AudioChange is the body of PATCH /api/v1/audio/{id}.
type AudioChange struct {
	Title *string `json:"title,omitempty"`
}

// TTSRequest is the body of POST /api/v1/audio/tts: a text to speak into
// a clip of the library.
type TTSRequest struct {
	Text  string `json:"text"`
	Voice string `json:"voice,omitempty"`
	Title string `json:"title,omitempty"`
}

// Playlist is a stored playlist. The request body of POST
// /api/v1/playlists is a playlists.Playlist.
type Playlist struct {
	playlists.Playlist
	// TotalMS is how long the whole playlist sounds, gaps included.
	TotalMS   int64     `json:"total_ms"`
	CreatedAt time.Time `json:"created_at"`
	// DeletedAt is set for a deleted playlist (GET by id still finds it).
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// PlaylistList is the answer of GET /api/v1/playlists.
type PlaylistList struct {
	Playlists []Playlist `json:"playlists"`
}

// PlaylistChange is the body of PATCH /api/v1/playlists/{id}.
type PlaylistChange struct {
	Name  *string           `json:"name,omitempty"`
	GapMS *int64            `json:"gap_ms,omitempty"`
	Items *[]playlists.Item `json:"items,omitempty"`
}

// ---- Schedules ----

// ScheduleRequest is the body of POST /api/v1/schedules. once_at may carry
// a UTC offset or be a wall-clock time in the schedule's timezone.
type ScheduleRequest struct {
	ID         int64                 `json:"id,omitempty"` // ignored
	PlaylistID int64                 `json:"playlist_id"`
	Targets    playlists.Targets     `json:"targets"`
	Timezone   string                `json:"timezone,omitempty"`
	OnceAt     *string               `json:"once_at,omitempty"`
	Recurring  *playlists.Recurrence `json:"recurring,omitempty"`
}

// Schedule is a stored schedule.
type Schedule struct {
	playlists.Schedule
	Groups      []Group    `json:"groups"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
	// Next are up to 5 coming occurrences (none once withdrawn).
	Next []time.Time `json:"next"`
	// CreatedByName is created_by's display name (created_by if none).
	CreatedByName string `json:"created_by_name,omitempty"`
	// State is active while an occurrence is to come; ended when none is
	// (a once-schedule that already played, a recurrence past its end
	// date); withdrawn once withdrawn.
	State string `json:"state"`
}

// ScheduleList is the answer of GET /api/v1/schedules.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}

// Occurrence is one coming play of a schedule in the calendar.
type Occurrence struct {
	ScheduleID int64     `json:"schedule_id"`
	PlaylistID int64     `json:"playlist_id"`
	Playlist   string    `json:"playlist"`
	At         time.Time `json:"at"`
	// End is At plus the playlist's duration.
	End        time.Time          `json:"end"`
	DurationMS int64              `json:"duration_ms"`
	Targets    playlists.Targets  `json:"targets"`
	Summary    string             `json:"targets_summary"`
	Priority   playlists.Priority `json:"priority"`
	// VillageCount is how many villages the targets reach today.
	VillageCount int `json:"village_count"`
}

// Calendar is the answer of GET /api/v1/calendar.
type Calendar struct {
	From        time.Time    `json:"from"`
	To          time.Time    `json:"to"`
	Timezone    string       `json:"timezone"`
	Occurrences []Occurrence `json:"occurrences"`
}

// ---- Broadcasts ----

// BroadcastRequest is the body of POST /api/v1/broadcasts. Exactly one of
// AudioID, PlaylistID and Text says what to play. ExpiresAt may carry a
// UTC offset or be a wall-clock time in Asia/Shanghai.
type BroadcastRequest struct {
	AudioID         int64              `json:"audio_id,omitempty"`
	PlaylistID      int64              `json:"playlist_id,omitempty"`
	Text            string             `json:"text,omitempty"`
	Voice           string             `json:"voice,omitempty"`
	Targets         playlists.Targets  `json:"targets"`
	Priority        playlists.Priority `json:"priority"`
	Severity        int                `json:"severity"`
	EventType       string             `json:"event_type,omitempty"`
	Repeat          int                `json:"repeat,omitempty"`
	ExpiresAt       string             `json:"expires_at"`
	Volume          int                `json:"volume,omitempty"`
	ForceFullVolume bool               `json:"force_full_volume,omitempty"`
	Test            bool               `json:"test,omitempty"`
}

// BroadcastProgress counts how far a broadcast got.
type BroadcastProgress struct {
	Boxes     int `json:"boxes"`     // targeted villages with a box
	Started   int `json:"started"`   // boxes that started it
	Reported  int `json:"reported"`  // boxes that reported an outcome (played, cut off, failed, cancelled, expired, rejected)
	Played    int `json:"played"`    // boxes that played it to the end
	Confirmed int `json:"confirmed"` // villages without a box that confirmed playing it by hand
}

// Broadcast is a broadcast as the API shows it.
type Broadcast struct {
	ID int64 `json:"id"`
	// State: pending_approval, sending, in_progress, done, cancelled, expired or rejected.
	State           string             `json:"state"`
	Test            bool               `json:"test"`
	Priority        playlists.Priority `json:"priority"`
	Severity        int                `json:"severity"`
	EventType       string             `json:"event_type,omitempty"`
	AudioID         int64              `json:"audio_id,omitempty"`
	PlaylistID      int64              `json:"playlist_id,omitempty"`
	Text            string             `json:"text,omitempty"`
	Playlist        playlists.Playlist `json:"playlist"`
	Targets         playlists.Targets  `json:"targets"`
	Groups          []Group            `json:"groups"`
	Repeat          int                `json:"repeat"`
	Volume          int                `json:"volume,omitempty"`
	ForceFullVolume bool               `json:"force_full_volume,omitempty"`
	ExpiresAt       time.Time          `json:"expires_at"`
	// StartsAt is when the boxes get it, if it was given a start time
	// (an EBM's StartTime): until then its state is scheduled.
	StartsAt      *time.Time `json:"starts_at,omitempty"`
	NeedsApproval bool       `json:"needs_approval"`
	CreatedAt     time.Time  `json:"created_at"`
	CreatedBy     string     `json:"created_by"`
	// CreatedByKey is the sender's person ("user/3", "token/1"), as
	// GET /me's person: the console offers no 批准 on one's own.
	CreatedByKey string     `json:"created_by_key"`
	ApprovedAt   *time.Time `json:"approved_at,omitempty"`
	ApprovedBy   string     `json:"approved_by,omitempty"`
	RejectedAt   *time.Time `json:"rejected_at,omitempty"`
	RejectedBy   string     `json:"rejected_by,omitempty"`
	RejectReason string     `json:"reject_reason,omitempty"`
	SentAt       *time.Time `json:"sent_at,omitempty"`
	SendError    string     `json:"send_error,omitempty"`
	CancelledAt  *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy  string     `json:"cancelled_by,omitempty"`
	// Source is the door it came through: "cap", "ebd:<the upper
	// platform's EBRID>", or "" for the API and console; EBMID is its
	// emergency message's ID in the national chain, if it has one.
	Source   string            `json:"source,omitempty"`
	EBMID    string            `json:"ebm_id,omitempty"`
	Progress BroadcastProgress `json:"progress"`
	// Display names of created_by, approved_by, rejected_by and
	// cancelled_by (the username if none).
	CreatedByName   string `json:"created_by_name,omitempty"`
	ApprovedByName  string `json:"approved_by_name,omitempty"`
	RejectedByName  string `json:"rejected_by_name,omitempty"`
	CancelledByName string `json:"cancelled_by_name,omitempty"`
}

// BroadcastList is the answer of GET /api/v1/broadcasts.
type BroadcastList struct {
	Broadcasts []Broadcast `json:"broadcasts"`
}

// RejectRequest is the body of POST /api/v1/broadcasts/{id}/reject.
type RejectRequest struct {
	Reason string `json:"reason,omitempty"`
}

// CAPResult is the answer to a CAP message (POST /api/v1/alerts/cap).
type CAPResult struct {
	Sender     string `json:"sender"`
	Identifier string `json:"identifier"`
	MsgType    string `json:"msg_type"` // Alert, Update or Cancel
	Test       bool   `json:"test"`     // status Exercise or Test: a test broadcast
	// BroadcastID and State are the broadcast an Alert or Update started.
	BroadcastID int64  `json:"broadcast_id,omitempty"`
	State       string `json:"state,omitempty"`
	// Duplicate: the message was received before and was not acted on
	// again; the rest of the answer is what it did then.
	Duplicate bool `json:"duplicate"`
	// Cancelled are the broadcasts an Update or Cancel cancelled.
	Cancelled []int64 `json:"cancelled"`
	// Note says what was done differently from what the message asked
	// (its recording was not used, its expiry was shortened...).
	Note string `json:"note"`
}

// ---- Coverage ----

// Counts tally village statuses. Played is the total; PlayedByBox and
// PlayedByHand split it by who reported it.
type Counts struct {
	Targeted             int `json:"targeted"`
	Played               int `json:"played"`
	PlayedByBox          int `json:"played_by_box"`
	PlayedByHand         int `json:"played_by_hand"`
	Partial              int `json:"partial"`
	Failed               int `json:"failed"`
	Cancelled            int `json:"cancelled"`
	Rejected             int `json:"rejected"`
	Expired              int `json:"expired"`
	Missed               int `json:"missed"`
	Pending              int `json:"pending"`
	AwaitingConfirmation int `json:"awaiting_confirmation"`
}

// VillageCoverage is one village's line of a coverage report.
type VillageCoverage struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Township string `json:"township"`
	Device   string `json:"device"`
	Status   string `json:"status"`
	// Class is the village's summary class: its Status, but
	// played_by_box or played_by_hand for played, and offline for a box
	// that has not reported playing and is not online.
	Class string `json:"class"`
	// ConfirmedByHand marks a played that a person confirmed (a village
	// without a box); ConfirmedBy is their username, ConfirmedByName what
	// people read (their display name), Reason carries their note.
	ConfirmedByHand bool   `json:"confirmed_by_hand,omitempty"`
	ConfirmedBy     string `json:"confirmed_by,omitempty"`
	ConfirmedByName string `json:"confirmed_by_name,omitempty"`
	// Reason is in English; ReasonCode and ReasonArgs let a console or a
	// report say it in the reader's language.
	Reason     string            `json:"reason,omitempty"`
	ReasonCode string            `json:"reason_code,omitempty"`
	ReasonArgs map[string]string `json:"reason_args,omitempty"`
	ReportedAt *time.Time        `json:"reported_at,omitempty"`
}

// TownshipCoverage is the tally of one township.
type TownshipCoverage struct {
	Name string `json:"name"`
	Counts
}

// CoverageDetail is the coverage of one occurrence or broadcast, village
// by village.
type CoverageDetail struct {
	Counts
	WindowEnd time.Time          `json:"window_end"`
	Villages  []VillageCoverage  `json:"villages"`
	Townships []TownshipCoverage `json:"townships"`
}

// Coverage is the answer of GET /api/v1/schedules/{id}/coverage.
type Coverage struct {
	ScheduleID int64     `json:"schedule_id"`
	Occurrence time.Time `json:"occurrence"`
	CoverageDetail
}

// BroadcastCoverage is the answer of GET /api/v1/broadcasts/{id}/coverage.
type BroadcastCoverage struct {
	BroadcastID int64 `json:"broadcast_id"`
	// Test marks the coverage of a test broadcast: never real coverage.
	Test  bool   `json:"test"`
	State string `json:"state"`
	CoverageDetail
}

// CoverageSummary tallies villages in classes that do not overlap, for
// reports that people read: Played splits into PlayedByBox and
// PlayedByHand, and Offline takes the villages that would be missed or
// pending but whose box is not online. Targeted is the sum of every other
// field but Played.
type CoverageSummary struct {
	Targeted             int `json:"targeted"`
	Played               int `json:"played"`
	PlayedByBox          int `json:"played_by_box"`
	PlayedByHand         int `json:"played_by_hand"`
	Partial              int `json:"partial"`
	Failed               int `json:"failed"`
	Missed               int `json:"missed"`
	Offline              int `json:"offline"`
	AwaitingConfirmation int `json:"awaiting_confirmation"`
	Pending              int `json:"pending"`
	Cancelled            int `json:"cancelled"`
	Rejected             int `json:"rejected"`
	Expired              int `json:"expired"`
}

// Add adds o to s.
func (s *CoverageSummary) Add(o CoverageSummary) {
	s.Targeted += o.Targeted
	s.Played += o.Played
	s.PlayedByBox += o.PlayedByBox
	s.PlayedByHand += o.PlayedByHand
	s.Partial += o.Partial
	s.Failed += o.Failed
	s.Missed += o.Missed
	s.Offline += o.Offline
	s.AwaitingConfirmation += o.AwaitingConfirmation
	s.Pending += o.Pending
	s.Cancelled += o.Cancelled
	s.Rejected += o.Rejected
	s.Expired += o.Expired
}

// TownshipSummary is the summary of one township.
type TownshipSummary struct {
	Name string `json:"name"`
	CoverageSummary
}

// NotPlayed is a village of a report item that did not play it.
type NotPlayed struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Township string `json:"township"`
	// Class is the village's status, with offline for a box that was not
	// online.
	Class string `json:"class"`
	// Reason is in English; ReasonCode and ReasonArgs say it in any
	// language.
	Reason     string            `json:"reason,omitempty"`
	ReasonCode string            `json:"reason_code,omitempty"`
	ReasonArgs map[string]string `json:"reason_args,omitempty"`
	ReportedAt *time.Time        `json:"reported_at,omitempty"`
}

// ReportItem is one broadcast or occurrence of a coverage report.
type ReportItem struct {
	Kind string `json:"kind"` // "broadcast" or "schedule"
	ID   int64  `json:"id"`
	// At is when the broadcast was created, or the occurrence began.
	At       time.Time          `json:"at"`
	Title    string             `json:"title"`
	Priority playlists.Priority `json:"priority"`
	// EventType and Severity are a broadcast's.
	EventType string `json:"event_type,omitempty"`
	Severity  int    `json:"severity,omitempty"`
	// State is a broadcast's state (as GET /broadcasts/{id} shows it), or
	// for an occurrence in_progress until its window for reports closes,
	// then done.
	State        string `json:"state"`
	Test         bool   `json:"test"`
	RejectReason string `json:"reject_reason,omitempty"`
	// Counted items are in the report's totals: every occurrence, and the
	// broadcasts that were sent and are not tests.
	Counted bool `json:"counted"`
	CoverageSummary
	Townships []TownshipSummary `json:"townships"`
	NotPlayed []NotPlayed       `json:"not_played"`
}

// DaySummary adds up one day's counted items.
type DaySummary struct {
	Date  string `json:"date"`
	Items int    `json:"items"`
	CoverageSummary
}

// CoverageReport is the answer of GET /api/v1/reports/coverage.
type CoverageReport struct {
	From        string    `json:"from"`
	To          string    `json:"to"`
	Township    string    `json:"township,omitempty"`
	Timezone    string    `json:"timezone"`
	GeneratedAt time.Time `json:"generated_at"`
	// Totals, Townships and Days add up the counted items.
	Totals    CoverageSummary   `json:"totals"`
	Townships []TownshipSummary `json:"townships"`
	Days      []DaySummary      `json:"days"`
	Items     []ReportItem      `json:"items"`
}

// ---- People, tokens and the audit log ----

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// User is a staff account.
type User struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	Role        string     `json:"role"`
	Village     string     `json:"village,omitempty"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DeletedAt   *time.Time `json:"deleted_at,omitempty"`
	// LastLoginAt is the user's newest login (only in the list of users).
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

// UserList is the answer of GET /api/v1/users.
type UserList struct {
	Users []User `json:"users"`
}

// Login is the answer of POST /api/v1/login: a session's token.
type Login struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
}

// Me is the answer of GET /api/v1/me: who the caller is.
type Me struct {
	Name string `json:"name"`
	// DisplayName is what people read: a user's display name, or the
	// token's name.
	DisplayName string `json:"display_name"`
	Role        string `json:"role"`
	Village     string `json:"village,omitempty"`
	UserID      int64  `json:"user_id,omitempty"`
	TokenID     int64  `json:"token_id"`
	// Person is who the two-person rule counts ("user/3", "token/1"),
	// as a broadcast's created_by_key.
	Person    string     `json:"person"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// CountyName is the controller's --county-name, for headings.
	CountyName string `json:"county_name"`
}

// PasswordChange is the body of POST /api/v1/me/password.
type PasswordChange struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// UserRequest is the body of POST /api/v1/users.
type UserRequest struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name,omitempty"`
	Role        string `json:"role"`
	Village     string `json:"village,omitempty"`
	Password    string `json:"password"`
}

// UserChange is the body of PATCH /api/v1/users/{id}: only the fields
// given change.
type UserChange struct {
	DisplayName *string `json:"display_name,omitempty"`
	Role        *string `json:"role,omitempty"`
	Village     *string `json:"village,omitempty"`
	Password    *string `json:"password,omitempty"`
	Disabled    *bool   `json:"disabled,omitempty"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name    string `json:"name"`
	Role    string `json:"role,omitempty"` // default operator
	Village string `json:"village,omitempty"`
}

// Token is an API token or a login session.
type Token struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Village string `json:"village,omitempty"`
	UserID  int64  `json:"user_id,omitempty"` // a login session of this user
	// The person an API token acts as (the two-person rule): the user who
	// minted it, or the first token of a chain minted by tokens of no user.
	OwnerUserID  int64      `json:"owner_user_id,omitempty"`
	OwnerTokenID int64      `json:"owner_token_id,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	// Token is the secret, shown only in the answer that creates it.
	Token string `json:"token,omitempty"`
}

// TokenList is the answer of GET /api/v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	Detail string    `json:"detail,omitempty"`
	// Params are the action's parameters Detail is worded from (null for
	// entries written before they were kept): the console words them in
	// the reader's language.
	Params     map[string]string `json:"params"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	// ActorName is the actor's display name (actor if none).
	ActorName string `json:"actor_name,omitempty"`
}

// AuditLog is the answer of GET /api/v1/audit, newest first.
type AuditLog struct {
	Entries []AuditEntry `json:"entries"`
}

// LoginThrottle is a source whose failed logins are being counted, as an
// admin sees it: one bucket that has not refilled.
type LoginThrottle struct {
	Addr string `json:"addr"` // an IPv4 address or an IPv6 /64
	// User is the username tried; "" for the source as a whole.
	User          string    `json:"user"`
	Failures      int       `json:"failures"`
	LastFailureAt time.Time `json:"last_failure_at"`
	// RetryAfterS is how many seconds logins are still refused; 0 when
	// the bucket has a try left.
	RetryAfterS int `json:"retry_after_s"`
}

// LoginThrottles is the answer of GET /api/v1/login-throttles.
type LoginThrottles struct {
	Throttles []LoginThrottle `json:"throttles"`
}

// ThrottlesCleared is the answer of DELETE /api/v1/login-throttles.
type ThrottlesCleared struct {
	Cleared int `json:"cleared"`
}

// ---- The upper platform of the national emergency-broadcast chain ----

// EBDStatus is the answer of GET /api/v1/ebd/status: this platform's
// place in the chain (GY/T 384, docs/ebd.md) and the state of its link.
type EBDStatus struct {
	// Enabled says the door (POST /api/v1/ebd) is open: --ebr-id and
	// --ebd-trust are set. Nothing else is set when it is not.
	Enabled bool   `json:"enabled"`
	EBRID   string `json:"ebr_id,omitempty"`
	// DoorURL is where the upper platform sends its packets: this
	// controller's public URL + /api/v1/ebd (give it to the province).
	DoorURL       string `json:"door_url,omitempty"`
	LocalApproval bool   `json:"local_approval"`
	// HeartbeatReceivedAt is when the upper platform's latest heartbeat
	// (ConnectionCheck) came to the door.
	HeartbeatReceivedAt *time.Time `json:"heartbeat_received_at,omitempty"`
	// Upstream is the link to the upper platform (--ebd-upstream); nil
	// when reports go nowhere.
	Upstream *EBDUpstream `json:"upstream,omitempty"`
	// Certificate is this platform's own, which the province installs
	// (GET /api/v1/ebd/certificate); Trusted the upper platforms' (--ebd-trust).
	Certificate *EBDCertificate  `json:"certificate,omitempty"`
	Trusted     []EBDCertificate `json:"trusted"`
}

// EBDUpstream is the state of the reports to the upper platform.
type EBDUpstream struct {
	URL   string `json:"url"`
	EBRID string `json:"ebr_id,omitempty"` // --ebd-upstream-ebrid: DEST of every report
	// Reachable says the latest heartbeat was answered.
	Reachable       bool       `json:"reachable"`
	HeartbeatSentAt *time.Time `json:"heartbeat_sent_at,omitempty"` // the latest
	HeartbeatAt     *time.Time `json:"heartbeat_at,omitempty"`      // the last answered
	LastSentAt      *time.Time `json:"last_sent_at,omitempty"`      // the last report delivered
	LastError       string     `json:"last_error,omitempty"`
	LastErrorAt     *time.Time `json:"last_error_at,omitempty"`
	// Queued counts the reports not delivered yet; OldestQueuedAt is when
	// the oldest of them was made.
	Queued         int        `json:"queued"`
	OldestQueuedAt *time.Time `json:"oldest_queued_at,omitempty"`
}

// EBDCertificate is an SM2 certificate of the chain.
type EBDCertificate struct {
	CertSN    string    `json:"cert_sn"` // the serial, hex, as signatures name it
	Subject   string    `json:"subject"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// State is "valid", "expired" or "not_yet_valid", now.
	State string `json:"state"`
}

// Certificate states.
const (
	CertValid       = "valid"
	CertExpired     = "expired"
	CertNotYetValid = "not_yet_valid"
)

// EBDInbound is a packet the upper platform sent (POST /api/v1/ebd), as
// the audit log and the door's records know it.
type EBDInbound struct {
	ReceivedAt time.Time `json:"received_at"`
	EBDID      string    `json:"ebdid"`
	Type       string    `json:"type,omitempty"` // EBDType; empty when it could not be read
	Src        string    `json:"src,omitempty"`  // SRC/EBRID
	// Outcome is "received" (acted on), "refused" or "replayed" (the same
	// EBDID again, answered as the first time).
	Outcome    string `json:"outcome"`
	ResultCode int    `json:"result_code"` // of the EBDResponse answered
	ResultDesc string `json:"result_desc,omitempty"`
	// Reason and Params say why it was refused, as an error's do.
	Reason      string            `json:"reason,omitempty"`
	Params      map[string]string `json:"params,omitempty"`
	Error       string            `json:"error,omitempty"` // the refusal in English
	CertSN      string            `json:"cert_sn,omitempty"`
	BroadcastID int64             `json:"broadcast_id,omitempty"`
	RemoteAddr  string            `json:"remote_addr,omitempty"`
}

// EBDInboundList is the answer of GET /api/v1/ebd/inbound, newest first.
type EBDInboundList struct {
	Packets []EBDInbound `json:"packets"`
}

// Outbound report states.
const (
	EBDQueued    = "queued"    // not tried yet
	EBDRetrying  = "retrying"  // tried, not delivered: tried again later
	EBDDelivered = "delivered" // the platform took it (result 0 or 1)
	EBDRefused   = "refused"   // the platform answered 2 or 3: it will not be sent again
)

// EBDOutbound is a report queued for the upper platform.
type EBDOutbound struct {
	Seq         int64      `json:"seq"`
	EBDID       string     `json:"ebdid"`
	Type        string     `json:"type"`
	BroadcastID int64      `json:"broadcast_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	NextAt      *time.Time `json:"next_attempt_at,omitempty"` // while not delivered
	LastError   string     `json:"last_error,omitempty"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
	ResultCode  *int       `json:"result_code,omitempty"` // the platform's answer
	ResultDesc  string     `json:"result_desc,omitempty"`
}

// EBDOutboundList is the answer of GET /api/v1/ebd/outbound, newest first.
type EBDOutboundList struct {
	Reports []EBDOutbound `json:"reports"`
}

// EBDTerminal is a village box as a terminal of the chain: its resource
// code, the province's if it assigned one, else derived from the village
// code ("0601" + village + "01", docs/ebd.md).
type EBDTerminal struct {
	Village  string `json:"village"`
	Name     string `json:"name"`
	Township string `json:"township"`
	EBRID    string `json:"ebr_id"`
	Derived  string `json:"derived"`  // the code it has when none is assigned
	Assigned bool   `json:"assigned"` // EBRID is the province's
}

// EBDTerminalList is the answer of GET /api/v1/ebd/terminals: the
// villages with a box, by code.
type EBDTerminalList struct {
	Terminals []EBDTerminal `json:"terminals"`
}

// EBDTerminalChange is the body of PUT /api/v1/ebd/terminals/{code}: the
// code the province assigned to the village's box; "" (or the derived
// code) goes back to the derived one.
type EBDTerminalChange struct {
	EBRID string `json:"ebr_id"`
}
