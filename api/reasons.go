package api

import "github.com/cunxiang/cunxiang/playlists"

// Reasons: the stable keys of ErrorDetail.Reason and RowError.Key. A client
// translates each (the console has a Chinese and an English text for every
// one, and a test checks it), filling in the error's Params by name.
// Message stays the English text for API users. A key, once published,
// keeps its meaning; new ones may be added. The domain's own keys are
// declared in playlists/reasons.go and repeated here.
const (
	// Requests in general.
	ReasonBodyInvalid  = "body_invalid"  // the JSON body cannot be read
	ReasonFieldUnknown = "field_unknown" // params: field
	ReasonFieldType    = "field_type"    // params: field
	ReasonIDInvalid    = "id_invalid"    // params: value
	ReasonForbidden    = "forbidden_role"
	ReasonOtherVillage = "other_village"
	ReasonBusy         = "busy" // 503: try again in a few seconds
	ReasonTooLarge     = "request_too_large"

	// Login and passwords.
	ReasonLoginFailed        = "login_failed"
	ReasonCredentials        = "credentials_wrong"
	ReasonAccountDisabled    = "account_disabled"
	ReasonLoginThrottled     = "login_throttled" // params: seconds
	ReasonCurrentPassword    = "current_password_wrong"
	ReasonPasswordSame       = "password_same"
	ReasonPasswordTooShort   = "password_too_short" // params: min
	ReasonPasswordTooLong    = "password_too_long"
	ReasonUsernameInvalid    = "username_invalid"
	ReasonUsernameTaken      = "username_taken" // params: username
	ReasonDisplayNameTooLong = "display_name_too_long"
	ReasonRoleInvalid        = "role_invalid"

	// Audio uploads and text to speech.
	ReasonUploadNotMultipart = "upload_not_multipart"
	ReasonUploadOneFile      = "upload_one_file"
	ReasonUploadNoFile       = "upload_no_file"
	ReasonUploadAborted      = "upload_aborted"
	ReasonUploadsBusy        = "uploads_busy"
	ReasonFileTooLarge       = "file_too_large" // params: limit
	ReasonNotAudio           = "not_audio"
	ReasonAudioUnsupported   = "audio_unsupported" // params: kind
	ReasonAudioDamaged       = "audio_damaged"
	ReasonAudioEmpty         = "audio_empty"
	ReasonAudioTooLong       = "audio_too_long" // params: duration, max
	ReasonAudioSilent        = "audio_silent"
	ReasonTitleEmpty         = "title_empty"
	ReasonTitleTooLong       = "title_too_long" // params: max
	ReasonTitleControl       = "title_control_char"
	ReasonTTSUnavailable     = "tts_unavailable"
	ReasonTextEmpty          = "text_empty"
	ReasonTextTooLong        = "text_too_long" // params: max
	ReasonTextControl        = "text_control_char"
	ReasonTextNothingToSay   = "text_nothing_to_speak"
	ReasonVoiceUnknown       = "voice_unknown" // params: voice

	// Playlists and content that is in use.
	ReasonPlaylistNameEmpty = playlists.ReasonPlaylistNameEmpty
	ReasonNameTooLong       = "name_too_long" // params: max
	ReasonPlaylistNoItems   = playlists.ReasonPlaylistNoItems
	ReasonGapRange          = playlists.ReasonGapRange
	ReasonClipNotFound      = playlists.ReasonClipNotFound // params: id
	ReasonPlaylistNotFound  = "playlist_not_found"         // params: id
	ReasonClipInUse         = "clip_in_use"                // params: uses (see Details)
	ReasonPlaylistInUse     = "playlist_in_use"            // params: uses (see Details)
	ReasonPlaylistInUseEdit = "playlist_in_use_edit"

	// Schedules.
	ReasonTimeInvalid        = "time_invalid"                   // params: value
	ReasonClockInvalid       = playlists.ReasonClockInvalid     // params: value
	ReasonScheduleWhen       = playlists.ReasonScheduleWhen     // neither once_at nor recurring
	ReasonScheduleBoth       = playlists.ReasonScheduleBoth     // both once_at and recurring
	ReasonScheduleNoTimes    = playlists.ReasonScheduleNoTimes  // recurring without times
	ReasonWeekdayInvalid     = playlists.ReasonWeekdayInvalid   // params: value
	ReasonDateInvalid        = playlists.ReasonDateInvalid      // params: value
	ReasonEndBeforeStart     = playlists.ReasonEndBeforeStart   // end_date before start_date
	ReasonOnceInPast         = "once_in_past"                   // params: at
	ReasonEndDateInPast      = "end_date_in_past"               // the schedule would never play
	ReasonTimezoneUnknown    = playlists.ReasonTimezoneUnknown  // params: value
	ReasonPlaylistRequired   = playlists.ReasonPlaylistRequired // a schedule names no playlist
	ReasonTargetsEmpty       = playlists.ReasonTargetsEmpty     // nobody would hear it
	ReasonNoVillagesYet      = "no_villages_yet"                // import the village list first
	ReasonTownshipUnknown    = "township_unknown"               // params: name
	ReasonVillageCodeInvalid = "village_code_invalid"           // params: code
	ReasonVillageUnknown     = "village_unknown"                // params: code
	ReasonQuietHoursInvalid  = playlists.ReasonQuietHoursInvalid
	ReasonNotOccurrence      = "not_an_occurrence" // params: at, id

	// Broadcasts and the two-person rule.
	ReasonContentChooseOne    = "content_choose_one"
	ReasonPriorityInvalid     = "priority_invalid"
	ReasonSeverityInvalid     = "severity_invalid"
	ReasonEventTypeTooLong    = "event_type_too_long"
	ReasonRepeatRange         = playlists.ReasonRepeatRange // params: max
	ReasonVolumeRange         = "volume_out_of_range"
	ReasonFullVolumeEmergency = "full_volume_emergency_only"
	ReasonExpiresRequired     = "expires_required"
	ReasonExpiresPast         = "expires_in_past"
	ReasonExpiresTooFar       = "expires_too_far" // params: max
	ReasonRejectWhy           = "reject_reason_required"
	ReasonRejectTooLong       = "reject_reason_too_long"
	ReasonSelfApproval        = "two_person_self_approval" // params: id, verb
	ReasonNotPending          = "broadcast_not_pending"    // params: id, state
	ReasonBroadcastExpired    = "broadcast_expired"        // params: id
	ReasonNotReleased         = "broadcast_not_released"   // params: id, state
	ReasonRejectedNoCancel    = "broadcast_rejected"       // params: id

	// The village list (CSV import, village editing): RowError.Key.
	ReasonCSVInvalid       = "csv_invalid" // params: lines
	ReasonCSVNotUTF8       = "csv_not_utf8"
	ReasonCSVEmpty         = "csv_empty"
	ReasonCSVNoVillages    = "csv_no_villages"
	ReasonCSVTooMany       = "csv_too_many_rows" // params: max
	ReasonCSVFieldCount    = "csv_field_count"   // params: got, want
	ReasonCSVSyntax        = "csv_syntax"
	ReasonCSVDuplicate     = "csv_duplicate_code" // params: code, line
	ReasonCSVColumnUnknown = "csv_unknown_column" // params: name
	ReasonCSVColumnTwice   = "csv_column_twice"   // params: name
	ReasonCSVColumnMissing = "csv_column_missing" // params: name
	ReasonCSVCodeEmpty     = "csv_code_empty"
	ReasonCSVCodeShortened = "csv_code_shortened" // params: value
	ReasonCSVCodeInvalid   = "csv_code_invalid"   // params: value
	ReasonCSVDevice        = "csv_device_invalid" // params: value
	ReasonCSVFieldEmpty    = "csv_field_empty"
	ReasonCSVNameTooLong   = "csv_name_too_long" // params: n, max
	ReasonCSVNameControl   = "csv_name_control_char"
	ReasonCSVNotNumber     = "csv_not_number"   // params: value
	ReasonCSVOutOfRange    = "csv_out_of_range" // params: value, limit
)
