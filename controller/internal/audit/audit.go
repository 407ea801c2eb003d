// Package audit names every action the controller writes to its audit log
// and says an entry's detail in English from the action's parameters.
//
// An entry carries its parameters (Params) as well as the English line, so
// that the console can say the same thing in the reader's language and in
// county time: it has a Chinese and an English template for every action
// Actions lists, with the same placeholders as the English template here
// (a test in package web checks both). Only this package makes an Action,
// so Actions is every action there is.
package audit

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// An Action is what an audit entry records, such as "broadcast.create".
// The zero Action is no action.
type Action struct{ name string }

// String is the action's name, as the audit log stores it.
func (a Action) String() string { return a.name }

// Params are an action's parameters: short strings by name. Names "at"
// and "…_at" hold times (RFC 3339, UTC; see Time); a yes/no parameter is
// "yes" or absent (see Flag); a list is its items separated by spaces.
// Parameters named in a template's optional part may be absent.
type Params map[string]string

var (
	actions   []Action
	templates = map[Action]string{}
)

// define makes an action with its English template: {name} is replaced by
// that parameter; a part in [ ] is kept only when every parameter it names
// is set, and {name?} names one without showing it (for a yes/no
// parameter); separators left at either end (, ; : and their full-width
// forms) are dropped. The console's templates follow the same rules.
func define(name, english string) Action {
	a := Action{name}
	actions = append(actions, a)
	templates[a] = english
	return a
}

// Actions lists every action, each with its English template.
func Actions() []Action { return slices.Clone(actions) }

// Template is the action's English template ("" for the zero Action).
func (a Action) Template() string { return templates[a] }

// Detail is the English line of an entry of the action with p: the
// template filled in.
func (a Action) Detail(p Params) string { return Fill(templates[a], p) }

var (
	optional    = regexp.MustCompile(`\[([^\[\]]*)\]`)
	placeholder = regexp.MustCompile(`\{(\w+)(\??)\}`)
)

// ends are the separators Fill drops at either end.
const ends = " ,;:，；：、"

// Fill fills a template with p by the rules of define.
func Fill(tmpl string, p Params) string {
	s := optional.ReplaceAllStringFunc(tmpl, func(part string) string {
		for _, m := range placeholder.FindAllStringSubmatch(part, -1) {
			if p[m[1]] == "" {
				return ""
			}
		}
		return part[1 : len(part)-1]
	})
	s = placeholder.ReplaceAllStringFunc(s, func(ph string) string {
		m := placeholder.FindStringSubmatch(ph)
		if m[2] == "?" {
			return ""
		}
		return p[m[1]]
	})
	return strings.Trim(s, ends)
}

// Time is a time as Params hold it: RFC 3339 in UTC.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Flag is a yes/no parameter: "yes", or "" (absent) for no.
func Flag(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

// List is a list parameter: the items separated by spaces.
func List[T any](items []T) string {
	s := make([]string, len(items))
	for i, x := range items {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, " ")
}

// Int is a number parameter.
func Int[T ~int | ~int64](n T) string { return strconv.FormatInt(int64(n), 10) }

// Refusal adds to p why the controller refused something: "error", the
// English message, and "error_reason" with its parameters, the key the
// console says it by in the reader's language (i18n-errors.js).
func Refusal(p Params, err error) Params {
	if p == nil {
		p = Params{}
	}
	reason, args := cx.Reason(err)
	for k, v := range args {
		if _, taken := p[k]; !taken {
			p[k] = fmt.Sprint(v)
		}
	}
	p["error"] = cx.Message(err)
	if reason != "" {
		p["error_reason"] = reason
	}
	return p
}

// The actions, with their English templates. Each names in a comment the
// parameters it takes when a template would not say it plainly.
var (
	Login       = define("login", "[console {console?}]session token/{token} until {expires_at}")
	LoginFailed = define("login.failed", "[console: {console?}]{error}")
	Logout      = define("logout", "[console{console?}]")
	// Denied is a request refused for want of the role (object: the method
	// and path).
	Denied                 = define("denied", "[role {role}: ]{error}")
	LoginThrottleClear     = define("login_throttle.clear", "[every source{all?}][user {user}][ from {source}]: {cleared} cleared")
	UserCreate             = define("user.create", "{username} ({role}[ of {village}])[, disabled{disabled?}]")
	UserUpdate             = define("user.update", "{username} ({role}[ of {village}])[, disabled{disabled?}][, password changed{password_changed?}]")
	UserDelete             = define("user.delete", "")
	UserPasswordChanged    = define("user.password_changed", "by the user; every session ended")
	UserPasswordChangeFail = define("user.password_change_failed", "wrong current password")
	TokenCreate            = define("token.create", "{name} ({role}), acts as {principal}")
	TokenRevoke            = define("token.revoke", "")

	VillageImport      = define("village.import", "created {created}, updated {updated}, total {total}")
	VillageUpdate      = define("village.update", `[name "{name_from}" -> "{name_to}", ][township "{township_from}" -> "{township_to}", ][lat {lat_from} -> {lat_to}, ][lon {lon_from} -> {lon_to}, ][device {device_from} -> {device_to}][no change{unchanged?}]`)
	VillageEnrollToken = define("village.enroll_token", "[for a replacement box; {replacement?}]expires {expires_at}")
	AgentEnroll        = define("agent.enroll", "agent version {version}")
	AgentRevoke        = define("agent.revoke", "credentials revoked, sessions disconnected, unused enrollment tokens spent")
	// ConfigPut: volume, quiet_hours (a list of HH:MM-HH:MM), timezone,
	// groups; object is township/<name> or village/<code>.
	ConfigPut = define("config.put", "[volume {volume}%][; quiet hours {quiet_hours}][; time zone {timezone}][nothing set{unset?}], to {groups}")

	AudioUpload          = define("audio.upload", `"{title}" {sha256}, {duration_ms} ms, from {source}`)
	AudioUploadDuplicate = define("audio.upload_duplicate", "{sha256}")
	AudioTTS             = define("audio.tts", `"{title}" {sha256}, {duration_ms} ms, spoken in voice {voice}`)
	AudioTTSDuplicate    = define("audio.tts_duplicate", "{sha256}")
	AudioRename          = define("audio.rename", `"{title_from}" -> "{title_to}"`)
	AudioDelete          = define("audio.delete", `"{title}"`)
	PlaylistCreate       = define("playlist.create", `"{name}", {items} items`)
	PlaylistUpdate       = define("playlist.update", `"{name}", {items} items, gap {gap_ms} ms`)
	PlaylistDelete       = define("playlist.delete", `"{name}"`)
	// ScheduleCreate: once_at, or times, weekdays (ISO numbers), start_date,
	// end_date and except_dates of a recurrence.
	ScheduleCreate   = define("schedule.create", "playlist {playlist}, [once at {once_at}][at {times}][ on weekdays {weekdays}][ from {start_date}][ until {end_date}][ except {except_dates}] ({timezone}), groups {groups}")
	ScheduleWithdraw = define("schedule.withdraw", "groups {groups}")

	// BroadcastCreate: content is the spoken text, or the clip's or the
	// playlist's title.
	BroadcastCreate  = define("broadcast.create", broadcastTemplate)
	BroadcastApprove = define("broadcast.approve", broadcastTemplate)
	BroadcastReject  = define("broadcast.reject", "{reason}")
	BroadcastCancel  = define("broadcast.cancel", "groups {groups}")
	BroadcastResend  = define("broadcast.resend", "groups {groups}")
	// ConfirmationCreate: broadcast, or schedule and occurrence_at; object
	// is the village.
	ConfirmationCreate = define("confirmation.create", "[broadcast {broadcast}][schedule {schedule} at {occurrence_at}] played at {played_at} by hand[; {note}]")

	// CAPAlert and CAPCancel: a CAP message refused (error), received
	// before (received_at, received_by) or acted on.
	CAPAlert  = define("cap.alert", capTemplate)
	CAPCancel = define("cap.cancel", capTemplate)

	// EBDReceived, EBDRefused, EBDReplayed: a packet of the upper
	// platform (ebdid, type, src; code is the EBDResponse result code)
	// acted on, refused (error), or received again and answered as then.
	EBDReceived = define("ebd.received", "{type} {ebdid} from {src}: result {code}[: broadcast {broadcast}]")
	EBDRefused  = define("ebd.refused", "[{type} ][{ebdid} ][from {src} ]refused, result {code}: {error}")
	EBDReplayed = define("ebd.replayed", "{type} {ebdid} from {src} received again: answered as the first time (result {code})[, broadcast {broadcast}]")
	// EBDTerminal: a village box's resource code in the chain changed
	// (object village/<code>); derived when it went back to the code
	// derived from the village's.
	EBDTerminal = define("ebd.terminal", "terminal code {from} -> {to}[ (derived from the village code{derived?})]")
)

const (
	broadcastTemplate = `[TEST {test?}]{priority} severity {severity}[ {event_type}], "{content}"[ (audio {audio})][ (playlist {playlist})], groups {groups}[, starts {starts_at}], expires {expires_at}[, needs approval{needs_approval?}]`
	capTemplate       = "[refused: {error}][duplicate: this message was received at {received_at} (from {received_by}) and acted on then; it is not acted on again]" +
		"[{status} {msg_type} sent {sent_at}][, {priority} severity {severity}][ {event_type}][, geocodes {geocodes}][: broadcast {broadcast} ({state})][, cancelled {cancelled}][; {note}]"
)
