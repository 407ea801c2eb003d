package coverage

import (
	"sort"
	"strings"
	"time"
)

// Reason codes: why a village has its status, for people to read in
// their own language. A VillageStatus carries the code and its arguments;
// its Reason is the English text of Reasons.
const (
	ReasonNoBox            = "no_box"            // no box: the village broadcaster must confirm by hand
	ReasonNote             = "note"              // note: what the person who confirmed it wrote
	ReasonCancelled        = "cancelled"         // by, at: the broadcast was cancelled before it played here
	ReasonRejected         = "rejected"          // by, detail, at: the broadcast was rejected before it played here
	ReasonCutOff           = "cut_off"           // cut off by something of higher priority
	ReasonCutOffBy         = "cut_off_by"        // detail: cut off, and the box said by what
	ReasonBoxFailed        = "box_failed"        // the box reported a failure and did not say why
	ReasonBoxFailedDetail  = "box_failed_detail" // detail: the box reported a failure and why
	ReasonBoxCancelled     = "box_cancelled"     // the box stopped it when told of the cancellation
	ReasonExpired          = "expired"           // what, at: it reached the box after it expired at
	ReasonNotFinished      = "not_finished"      // at: started but did not report finishing
	ReasonPlaying          = "playing"           // at: playing since
	ReasonAwaitingApproval = "awaiting_approval" // a broadcast waiting for a second person's approval
	ReasonNeverEnrolled    = "never_enrolled"    // the village's box was never enrolled
	ReasonBoxRejected      = "box_rejected"      // what, detail: the box refused the command
	ReasonDownloadFailed   = "download_failed"   // detail: the box could not get the audio
	ReasonOfflineSince     = "offline_since"     // at: the box is offline since
	ReasonNeverConnected   = "never_connected"   // the box was enrolled but never connected
	ReasonNotReceived      = "not_received"      // what: online, silent, never confirmed receiving it
	ReasonNoReport         = "no_report"         // online, received it, silent
)

// Reasons is the English text of every reason code, with {name}
// placeholders for its arguments. Arguments: "by" a user's name, "at" a
// time (RFC 3339 in ReasonArgs, formatted in the schedule's zone in the
// text), "what" is "schedule" or "broadcast", "detail" and "note" free text
// as a box or a person wrote it.
var Reasons = map[string]string{
	ReasonNoBox:            "no box in this village: the broadcaster must confirm by hand",
	ReasonNote:             "{note}",
	ReasonCancelled:        "cancelled by {by} at {at} before it played here",
	ReasonRejected:         "rejected by {by} ({detail}) at {at} before it played here",
	ReasonCutOff:           "cut off by something of higher priority",
	ReasonCutOffBy:         "cut off: {detail}",
	ReasonBoxFailed:        "the box reported a failure",
	ReasonBoxFailedDetail:  "{detail}",
	ReasonBoxCancelled:     "the box stopped it on its cancellation",
	ReasonExpired:          "the {what} reached the box after it expired at {at}",
	ReasonNotFinished:      "started at {at} but did not report finishing",
	ReasonPlaying:          "playing since {at}",
	ReasonAwaitingApproval: "waiting for a second person's approval",
	ReasonNeverEnrolled:    "box never enrolled",
	ReasonBoxRejected:      "box rejected the {what}: {detail}",
	ReasonDownloadFailed:   "box could not get the audio: {detail}",
	ReasonOfflineSince:     "box offline since {at}",
	ReasonNeverConnected:   "box enrolled but never connected",
	ReasonNotReceived:      "box online but did not report (it never confirmed receiving the {what})",
	ReasonNoReport:         "box online but did not report",
}

// ReasonCodes lists every reason code, sorted: each needs a text in every
// language that shows reasons.
func ReasonCodes() []string {
	out := make([]string, 0, len(Reasons))
	for c := range Reasons {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Fill replaces each {name} of tmpl with args[name] passed through conv
// (nil: as is); unknown names stay as they are.
func Fill(tmpl string, args map[string]string, conv func(name, value string) string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		j := strings.IndexByte(tmpl[i+1:], '}')
		if i < 0 || j < 0 {
			break
		}
		name := tmpl[i+1 : i+1+j]
		v, ok := args[name]
		b.WriteString(tmpl[:i])
		switch {
		case !ok:
			b.WriteString(tmpl[i : i+2+j])
		case conv != nil:
			b.WriteString(conv(name, v))
		default:
			b.WriteString(v)
		}
		tmpl = tmpl[i+2+j:]
	}
	b.WriteString(tmpl)
	return b.String()
}

// because is a status with a reason: its code and its arguments, in pairs
// of name and value, with the English text.
func (f timeFmt) because(status, code string, args ...string) VillageStatus {
	return f.reason(status, code, nil, args)
}

// becauseAt is because for a reason that names a time: at, an RFC 3339
// argument, formatted in the schedule's zone in the English text.
func (f timeFmt) becauseAt(status, code string, at time.Time, args ...string) VillageStatus {
	return f.reason(status, code, &at, append(args, "at", at.UTC().Format(time.RFC3339)))
}

func (f timeFmt) reason(status, code string, at *time.Time, args []string) VillageStatus {
	vs := VillageStatus{Status: status, ReasonCode: code}
	if len(args) > 0 {
		vs.ReasonArgs = make(map[string]string, len(args)/2)
		for i := 0; i+1 < len(args); i += 2 {
			vs.ReasonArgs[args[i]] = args[i+1]
		}
	}
	var conv func(name, v string) string
	if at != nil {
		conv = func(name, v string) string {
			if name == "at" {
				return f.when(*at)
			}
			return v
		}
	}
	vs.Reason = Fill(Reasons[code], vs.ReasonArgs, conv)
	return vs
}
