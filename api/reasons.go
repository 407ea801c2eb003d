package api

import "github.com/cunxiang/cunxiang/playlists"

// Reasons: the stable keys of ErrorDetail.Reason and RowError.Key. A client
// translates each (the console has a Chinese and an English text for every
// one, and a test checks it), filling in the error's Params by name.
// Message stays the English text for API users. Every error answer has
// one ("internal" for a fault of the server). A key, once published,
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

	// The server itself, and the ranges and limits of queries.
	ReasonInternal        = "internal"           // a fault of the server; the details are in its log
	ReasonNoEndpoint      = "no_such_endpoint"   // the console and the server differ in version
	ReasonCSRF            = "csrf"               // the page is out of date: reload it
	ReasonBoxOnly         = "box_only"           // only a box may ask this
	ReasonFormatInvalid   = "format_invalid"     // params: value
	ReasonLimitRange      = "limit_out_of_range" // params: value, max
	ReasonRangeOrder      = "range_order"        // a range's end is not after its start
	ReasonRangeTooLong    = "range_too_long"     // params: max (days)
	ReasonNothingToChange = "nothing_to_change"
	ReasonNoLiveStream    = "no_live_stream"
	ReasonAddrInvalid     = "address_invalid" // params: value
	ReasonFromInFuture    = "from_in_future"
	ReasonFromTooOld      = "from_too_old" // params: days

	// Idempotency-Key.
	ReasonIdempotencyKeyInvalid = "idempotency_key_invalid"
	ReasonIdempotencyKeyReused  = "idempotency_key_reused"
	ReasonIdempotencyInProgress = "idempotency_in_progress"
	ReasonIdempotencyFailed     = "idempotency_failed"
	ReasonIdempotencyKeyUnknown = "idempotency_key_unknown"

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
	ReasonSessionExpired     = "session_expired"
	ReasonUserNotFound       = "user_not_found" // params: id
	ReasonUserDeleted        = "user_deleted"   // params: username
	ReasonLastAdmin          = "last_admin"

	// API tokens.
	ReasonTokenName          = "token_name"       // params: max
	ReasonTokenMorePower     = "token_more_power" // a token may not have more power than its minter
	ReasonTokenNotFound      = "token_not_found"  // params: id
	ReasonTokenNoUser        = "token_no_user"
	ReasonTokenOwnerGone     = "token_owner_gone"     // params: username
	ReasonTokenOwnerDemoted  = "token_owner_demoted"  // params: username
	ReasonTokenParentRevoked = "token_parent_revoked" // params: id
	ReasonLastAdminToken     = "last_admin_token"
	ReasonVillageNotForRole  = "village_not_for_role"
	ReasonVillageRequired    = "village_required"

	// Audio uploads and text to speech.
	ReasonUploadNotMultipart = "upload_not_multipart"
	ReasonUploadOneFile      = "upload_one_file"
	ReasonUploadNoFile       = "upload_no_file"
	ReasonUploadAborted      = "upload_aborted"
	ReasonUploadUnreadable   = "upload_unreadable"
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
	ReasonAudioFileMissing   = "audio_file_missing"

	// Playlists and content that is in use.
	ReasonPlaylistNameEmpty = playlists.ReasonPlaylistNameEmpty
	ReasonNameTooLong       = "name_too_long" // params: max
	ReasonPlaylistNoItems   = playlists.ReasonPlaylistNoItems
	ReasonPlaylistTooLong   = playlists.ReasonPlaylistTooLong // params: max
	ReasonGapRange          = playlists.ReasonGapRange
	ReasonDurationNegative  = playlists.ReasonDurationNegative
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

	// A schedule that is not there, or could not reach the boxes.
	ReasonScheduleNotFound = "schedule_not_found" // params: id
	ReasonNoOccurrence     = "no_occurrence"      // params: id

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
	ReasonNotStarted          = "broadcast_not_started"    // params: id, at
	ReasonStartsAfterExpiry   = "starts_after_expiry"      // params: at

	// A broadcast that is not there, or could not reach the boxes.
	ReasonBroadcastNotFound     = "broadcast_not_found"     // params: id
	ReasonBroadcastNotDelivered = "broadcast_not_delivered" // params: id
	ReasonCancelNotDelivered    = "cancel_not_delivered"    // params: id

	// Hand confirmations by villages without a box.
	ReasonPlayedInFuture         = "played_in_future"
	ReasonNoteTooLong            = "note_too_long"             // params: max (bytes)
	ReasonConfirmWhich           = "confirm_which"             // a schedule's occurrence or a broadcast
	ReasonConfirmHasBox          = "confirm_has_box"           // params: name
	ReasonAlreadyConfirmed       = "already_confirmed"         // params: played_at
	ReasonScheduleNotForVillage  = "schedule_not_for_village"  // params: id, name
	ReasonBroadcastNotForVillage = "broadcast_not_for_village" // params: id, name
	ReasonOccurrenceRequired     = "occurrence_required"
	ReasonOccurrenceNotYet       = "occurrence_not_yet"   // params: at
	ReasonBroadcastNeverSent     = "broadcast_never_sent" // params: id, state

	// Boxes: enrollment, settings, replacement.
	ReasonEnrollTokenMissing      = "enroll_token_missing"
	ReasonEnrollTokenUnknown      = "enroll_token_unknown"
	ReasonEnrollTokenUsed         = "enroll_token_used"
	ReasonEnrollTokenExpired      = "enroll_token_expired" // params: at
	ReasonEnrollTokenOtherVillage = "enroll_token_other_village"
	ReasonAgentVersionTooLong     = "agent_version_too_long" // params: max
	ReasonVillageNoBox            = "village_no_box"         // params: code
	ReasonNoEnrolledBox           = "no_enrolled_box"        // params: code
	ReasonBrokerEnrollFailed      = "broker_enroll_failed"
	ReasonBrokerRevokeFailed      = "broker_revoke_failed"
	ReasonConfigVolume            = "config_volume"
	ReasonConfigQuietTooMany      = "config_quiet_too_many"  // params: max
	ReasonTownshipPrefixShared    = "township_prefix_shared" // params: name, village, other

	// Reports.
	ReasonReportDetail = "report_detail"  // params: value
	ReasonReportTooBig = "report_too_big" // params: n, max

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
	ReasonCSVQuote         = "csv_quote"
	ReasonCSVTooLarge      = "csv_too_large"   // params: limit
	ReasonVillageInvalid   = "village_invalid" // params: n (see Details)

	// CAP 1.2 alerts from the province or another platform. Errors about
	// one element have params field (its path, such as alert/info/expires)
	// and value (what it held).
	ReasonCAPMediaType          = "cap_media_type"
	ReasonCAPTooLarge           = "cap_too_large" // params: max (KiB)
	ReasonCAPEmpty              = "cap_empty"
	ReasonCAPCharset            = "cap_charset" // params: value
	ReasonCAPNotXML             = "cap_not_xml"
	ReasonCAPNotAlert           = "cap_not_alert" // params: value (the element)
	ReasonCAPNamespace          = "cap_namespace" // params: value
	ReasonCAPTrailing           = "cap_trailing"
	ReasonCAPDeclaration        = "cap_declaration"
	ReasonCAPTruncated          = "cap_truncated"
	ReasonCAPXMLSyntax          = "cap_xml_syntax" // params: line
	ReasonCAPMissing            = "cap_missing"
	ReasonCAPValue              = "cap_value" // params: field, value, allowed
	ReasonCAPTime               = "cap_time"
	ReasonCAPIDChars            = "cap_id_chars"
	ReasonCAPIDTooLong          = "cap_id_too_long"
	ReasonCAPReference          = "cap_reference"
	ReasonCAPReferencesRequired = "cap_references_required" // value: the msgType
	ReasonCAPRestriction        = "cap_restriction"
	ReasonCAPAddresses          = "cap_addresses"
	ReasonCAPInfoRequired       = "cap_info_required"
	ReasonCAPLanguage           = "cap_language"
	ReasonCAPExpiresEarly       = "cap_expires_early"
	ReasonCAPURI                = "cap_uri"
	ReasonCAPAreaRequired       = "cap_area_required"
	ReasonCAPGeocodeRequired    = "cap_geocode_required"
	ReasonCAPGeocodeInvalid     = "cap_geocode_invalid"
	ReasonCAPNotBroadcast       = "cap_not_broadcast" // value: the status or msgType
	ReasonCAPExpired            = "cap_expired"       // params: at
	ReasonCAPNoVillages         = "cap_no_villages"   // params: value (the geocodes)
	ReasonCAPNothingToCancel    = "cap_nothing_to_cancel"
	ReasonCAPDuplicate          = "cap_duplicate" // params: identifier, sender
	ReasonCAPNotFound           = "cap_not_found" // params: identifier, sender

	// The national emergency-broadcast chain (GY/T 384 / GD/J 083): the
	// tar, XML and SM2 signature of a packet from the upper platform.
	ReasonEBDTooLarge     = "ebd_too_large"     // params: value (what is too large), max (KiB)
	ReasonEBDTarInvalid   = "ebd_tar_invalid"   // the body is not a readable tar archive
	ReasonEBDTarEntry     = "ebd_tar_entry"     // params: value (the entry's name)
	ReasonEBDTarTooMany   = "ebd_tar_too_many"  // params: max
	ReasonEBDTarDuplicate = "ebd_tar_duplicate" // params: value (the file name)
	ReasonEBDNoPacket     = "ebd_no_packet"     // no EBDB_<EBDID>.xml in the archive
	ReasonEBDManyPackets  = "ebd_many_packets"
	ReasonEBDUnsigned     = "ebd_unsigned" // params: value (the EBDID)
	ReasonEBDEmpty        = "ebd_empty"    // params: value (the file)
	ReasonEBDCharset      = "ebd_charset"  // params: value
	ReasonEBDNotXML       = "ebd_not_xml"  // params: value (the file)
	ReasonEBDRoot         = "ebd_root"     // params: value (the element), want
	ReasonEBDTrailing     = "ebd_trailing"
	ReasonEBDDeclaration  = "ebd_declaration"
	ReasonEBDTruncated    = "ebd_truncated"
	ReasonEBDXMLSyntax    = "ebd_xml_syntax"    // params: line
	ReasonEBDMissing      = "ebd_missing"       // params: field
	ReasonEBDValue        = "ebd_value"         // params: field, value, allowed
	ReasonEBDTime         = "ebd_time"          // params: field, value
	ReasonEBDTimeOrder    = "ebd_time_order"    // params: field, value
	ReasonEBDIDShape      = "ebd_id_shape"      // params: field, value
	ReasonEBDAreaCode     = "ebd_area_code"     // params: field, value
	ReasonEBDTooLong      = "ebd_too_long"      // params: field, max
	ReasonEBDTooMany      = "ebd_too_many"      // params: field, max
	ReasonEBDBodyMissing  = "ebd_body_missing"  // params: value (the EBDType)
	ReasonEBDBodyExtra    = "ebd_body_extra"    // params: value (the element), type
	ReasonEBDIDMismatch   = "ebd_id_mismatch"   // params: field, value, want
	ReasonEBDAuxMissing   = "ebd_aux_missing"   // params: value (the file)
	ReasonEBDAuxSize      = "ebd_aux_size"      // params: value (the file)
	ReasonEBDAuxDigest    = "ebd_aux_digest"    // params: value (the file)
	ReasonEBDSigAlgorithm = "ebd_sig_algorithm" // params: value
	ReasonEBDSigFormat    = "ebd_sig_format"
	ReasonEBDSigBad       = "ebd_sig_bad"
	ReasonEBDCertUnknown  = "ebd_cert_unknown"       // params: value (the CertSN)
	ReasonEBDCertExpired  = "ebd_cert_expired"       // params: value (the CertSN), at
	ReasonEBDCertNotYet   = "ebd_cert_not_yet_valid" // params: value (the CertSN), at
	ReasonEBDStale        = "ebd_stale"              // params: value (EBDTime)
	ReasonEBDNotHere      = "ebd_not_here"           // params: value (DEST/EBRID)
	ReasonEBDOff          = "ebd_off"                // this controller has no --ebr-id / --ebd-trust
	ReasonEBDInProgress   = "ebd_in_progress"        // params: value (the EBDID)
	ReasonEBMDuplicate    = "ebm_duplicate"          // params: value (the EBMID)
	ReasonEBMUnknown      = "ebm_unknown"            // params: value (the EBMID)
	ReasonEBMExpired      = "ebm_expired"            // params: value (EndTime)
	ReasonEBMNoVillages   = "ebm_no_villages"        // params: value (the area codes)

	// A village box's resource code in the chain (PUT /api/v1/ebd/terminals/{code}).
	ReasonEBDTerminalInvalid  = "ebd_terminal_invalid"  // params: value
	ReasonEBDTerminalTaken    = "ebd_terminal_taken"    // params: value, code, name (the village whose box has it)
	ReasonEBDTerminalPlatform = "ebd_terminal_platform" // params: value (this platform's own --ebr-id)
)
