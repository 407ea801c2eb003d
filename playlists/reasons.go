package playlists

// Reasons of the domain's validation errors (FieldError.Reason): stable
// keys a client translates; api/reasons.go repeats them with the others.
const (
	ReasonPlaylistNameEmpty = "playlist_name_empty"
	ReasonPlaylistNoItems   = "playlist_no_items"
	ReasonPlaylistTooLong   = "playlist_too_many_items" // params: max
	ReasonGapRange          = "gap_out_of_range"
	ReasonQuietHoursInvalid = "quiet_hours_invalid"
	ReasonTimezoneUnknown   = "timezone_unknown"    // params: value
	ReasonPlaylistRequired  = "playlist_required"   // a schedule names no playlist
	ReasonTargetsEmpty      = "targets_empty"       // nobody would hear it
	ReasonScheduleWhen      = "schedule_when"       // neither once_at nor recurring
	ReasonScheduleBoth      = "schedule_both"       // both once_at and recurring
	ReasonScheduleNoTimes   = "schedule_no_times"   // recurring without times
	ReasonClockInvalid      = "clock_invalid"       // params: value
	ReasonWeekdayInvalid    = "weekday_invalid"     // params: value
	ReasonDateInvalid       = "date_invalid"        // params: value
	ReasonEndBeforeStart    = "end_before_start"    // end_date before start_date
	ReasonClipNotFound      = "clip_not_found"      // params: id
	ReasonRepeatRange       = "repeat_out_of_range" // params: max
	ReasonDurationNegative  = "duration_negative"
)
