package api_test

import (
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Fixed values behind the golden HTTP bodies in testdata/http/: change one
// and run `go test ./api -run TestHTTPGolden -update`.

var (
	created  = time.Date(2026, 3, 1, 0, 2, 3, 0, time.UTC) // 08:02:03 in Shanghai
	town2    = "411421101"
	village2 = "411421101003"
)

func ptr[T any](v T) *T { return &v }

func httpVillage() api.Village {
	return api.Village{Code: village, Name: "李庄村", Township: "城关镇", Lat: 33.61, Lon: 113.98, Device: playlists.DeviceAgent,
		Enrolled: ptr(true), Presence: api.Online, PresenceAt: ptrTime(created), LastSeen: ptrTime(created.Add(time.Minute)),
		AgentVersion: "0.1.0", ClockOffsetMS: ptr(int64(-1250)), EnrolledAt: ptrTime(issued)}
}

func httpManualVillage() api.Village {
	return api.Village{Code: village2, Name: "王营村", Township: "东镇", Lat: 33.7, Lon: 114.02, Device: playlists.DeviceManual}
}

func httpVillageChange() api.VillageChange {
	return api.VillageChange{Name: ptr("李庄村（新）"), Lat: ptr(33.62)}
}

func httpEnrollToken() api.EnrollToken {
	return api.EnrollToken{Token: "enr_7Q2mX9vK4pL8sT3w", Village: village, ExpiresAt: created.Add(72 * time.Hour)}
}

func httpClip() playlists.Item {
	return playlists.Item{AudioID: 7, SHA256: sha('a'), DurationMS: 42500, GainDB: -3.5, Repeat: 2}
}

func httpPlaylistRequest() playlists.Playlist {
	return playlists.Playlist{Name: "早间通知", Items: []playlists.Item{{AudioID: 7, Repeat: 2}, {AudioID: 9}}, GapMS: 1500}
}

func httpPlaylist() api.Playlist {
	return api.Playlist{
		Playlist: playlists.Playlist{ID: 3, Name: "早间通知", GapMS: 1500,
			Items: []playlists.Item{httpClip(), {AudioID: 9, SHA256: sha('b'), DurationMS: 8000, Repeat: 0}}},
		TotalMS: 42500*2 + 8000 + 2*1500, CreatedAt: created,
	}
}

func httpPlaylistChange() api.PlaylistChange {
	return api.PlaylistChange{Name: ptr("早间通知（修订）"), Items: &[]playlists.Item{{AudioID: 9, Repeat: 1}}}
}

func httpAudio() api.Audio {
	return api.Audio{ID: 7, SHA256: sha('a'), Title: "防汛通知", DurationMS: 42500, SampleRate: 22050, Channels: 1, SizeBytes: 1874294,
		CreatedAt: created, LoudnessLUFS: ptr(-21.37), PeakDBFS: ptr(-3.02), GainDB: ptr(1.98), CreatedBy: "zhang", CreatedByName: "张伟"}
}

func httpUploaded() api.Audio {
	a := httpAudio()
	a.Source = &api.AudioFormat{SampleRate: 44100, Channels: 2, BitsPerSample: 16, Codec: "mp3", Kbps: 128}
	return a
}

func httpOldAudio() api.Audio {
	return api.Audio{ID: 2, SHA256: sha('c'), Title: "旧录音", DurationMS: 12000, SampleRate: 22050, Channels: 1, SizeBytes: 529244,
		CreatedAt: issued, DeletedAt: ptrTime(created)}
}

func httpTTSRequest() api.TTSRequest {
	return api.TTSRequest{Text: "村民们请注意，今晚有大雨，请做好防汛准备。", Voice: "cmn", Title: "防汛通知"}
}

func httpRecurrence() *playlists.Recurrence {
	return &playlists.Recurrence{Times: []string{"07:00", "18:30"}, Weekdays: []int{1, 2, 3, 4, 5}, StartDate: "2026-03-02",
		EndDate: "2026-06-30", ExceptDates: []string{"2026-04-06", "2026-05-01"}}
}

func httpScheduleRequest() api.ScheduleRequest {
	return api.ScheduleRequest{PlaylistID: 3, Targets: playlists.Targets{Townships: []string{"城关镇"}, Villages: []string{village2}},
		Timezone: playlists.DefaultTimezone, Recurring: httpRecurrence()}
}

func httpOnceRequest() api.ScheduleRequest {
	return api.ScheduleRequest{PlaylistID: 3, Targets: playlists.Targets{All: true}, OnceAt: ptr("2026-03-01T19:30")}
}

func httpSchedule() api.Schedule {
	return api.Schedule{
		Schedule: playlists.Schedule{ID: 12, PlaylistID: 3, Targets: playlists.Targets{Townships: []string{"城关镇"}, Villages: []string{village2}},
			Timezone: playlists.DefaultTimezone, Recurring: httpRecurrence(), NotBefore: ptrTime(created)},
		Groups: []api.Group{api.Group("t/" + township), api.Group("v/" + village2)}, CreatedAt: created, CreatedBy: "zhang",
		Next:          []time.Time{time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)},
		CreatedByName: "张伟", State: "active",
	}
}

func httpWithdrawn() api.Schedule {
	at := time.Date(2026, 3, 1, 11, 30, 0, 0, time.UTC)
	return api.Schedule{
		Schedule: playlists.Schedule{ID: 13, PlaylistID: 3, Targets: playlists.Targets{All: true}, Timezone: playlists.DefaultTimezone, OnceAt: &at},
		Groups:   []api.Group{"all"}, CreatedAt: created, CreatedBy: "zhang", WithdrawnAt: ptrTime(created.Add(time.Hour)),
		Next: []time.Time{}, CreatedByName: "张伟", State: "withdrawn",
	}
}

func httpVillageSchedules() api.VillageScheduleList {
	return api.VillageScheduleList{Schedules: []api.VillageSchedule{{Schedule: httpSchedule(),
		Recent:    []time.Time{time.Date(2026, 2, 27, 23, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 10, 30, 0, 0, time.UTC)},
		Confirmed: []time.Time{time.Date(2026, 2, 27, 23, 0, 0, 0, time.UTC)}}}}
}

func httpCalendar() api.Calendar {
	at := time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)
	return api.Calendar{From: issued, To: issued.Add(7 * 24 * time.Hour), Timezone: playlists.DefaultTimezone, Occurrences: []api.Occurrence{{
		ScheduleID: 12, PlaylistID: 3, Playlist: "早间通知", At: at, End: at.Add(88 * time.Second), DurationMS: 88000,
		Targets: playlists.Targets{Townships: []string{"城关镇"}}, Summary: "城关镇", Priority: playlists.Routine, VillageCount: 23,
	}}}
}

func httpBroadcastRequest() api.BroadcastRequest {
	return api.BroadcastRequest{AudioID: 7, Targets: playlists.Targets{Townships: []string{"城关镇"}}, Priority: playlists.Emergency,
		Severity: 2, EventType: "flood", Repeat: 3, ExpiresAt: "2026-03-01T10:00:00+08:00", Volume: 90, ForceFullVolume: true}
}

func httpTextBroadcastRequest() api.BroadcastRequest {
	return api.BroadcastRequest{Text: "村民们请注意，今晚有大雨。", Voice: "cmn", Targets: playlists.Targets{Villages: []string{village}},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: "2026-03-01T20:00", Test: true}
}

func httpBroadcast() api.Broadcast {
	return api.Broadcast{ID: 31, State: "in_progress", Priority: playlists.Emergency, Severity: 2, EventType: "flood", AudioID: 7,
		Playlist: playlists.Playlist{Name: "防汛通知", Items: []playlists.Item{httpClip()}},
		Targets:  playlists.Targets{Townships: []string{"城关镇"}}, Groups: []api.Group{api.Group("t/" + township)},
		Repeat: 3, Volume: 90, ForceFullVolume: true, ExpiresAt: created.Add(2 * time.Hour), NeedsApproval: true,
		CreatedAt: created, CreatedBy: "zhang", CreatedByKey: "user/3", ApprovedAt: ptrTime(created.Add(time.Minute)), ApprovedBy: "li",
		SentAt:   ptrTime(created.Add(time.Minute + time.Second)),
		Progress: api.BroadcastProgress{Boxes: 21, Started: 20, Reported: 4, Played: 3, Confirmed: 1}, CreatedByName: "张伟", ApprovedByName: "李娜"}
}

func httpRejected() api.Broadcast {
	return api.Broadcast{ID: 32, State: "rejected", Test: true, Priority: playlists.Urgent, Severity: 3, Text: "演练：请注意。", AudioID: 8,
		Playlist: playlists.Playlist{Name: "演练：请注意。", Items: []playlists.Item{{AudioID: 8, SHA256: sha('d'), DurationMS: 3000, Repeat: 1}}},
		Targets:  playlists.Targets{All: true}, Groups: []api.Group{}, ExpiresAt: created.Add(time.Hour), NeedsApproval: true,
		CreatedAt: created, CreatedBy: "ops-script", CreatedByKey: "token/4", RejectedAt: ptrTime(created.Add(2 * time.Minute)),
		RejectedBy: "li", RejectReason: "范围太大", CreatedByName: "ops-script", RejectedByName: "李娜"}
}

func httpCancelled() api.Broadcast {
	b := httpBroadcast()
	b.State, b.CancelledAt, b.CancelledBy, b.CancelledByName = "cancelled", ptrTime(created.Add(10*time.Minute)), "zhang", "张伟"
	b.SendError = "" // sent
	return b
}

func httpCAPResult() api.CAPResult {
	return api.CAPResult{Sender: "cap@weather.example.cn", Identifier: "CN-411421-2026-0301-01", MsgType: "Update", BroadcastID: 33,
		State: "pending_approval", Cancelled: []int64{31}, Note: "its recording was refused (private address); the text is spoken"}
}

func httpCounts() api.Counts {
	return api.Counts{Targeted: 3, Played: 1, PlayedByBox: 1, Missed: 1, AwaitingConfirmation: 1}
}

func httpCoverageDetail() api.CoverageDetail {
	return api.CoverageDetail{Counts: httpCounts(), WindowEnd: time.Date(2026, 3, 1, 23, 3, 28, 0, time.UTC),
		Villages: []api.VillageCoverage{
			{Code: village, Name: "李庄村", Township: "城关镇", Device: playlists.DeviceAgent, Status: "played", Class: "played_by_box",
				ReportedAt: ptrTime(time.Date(2026, 3, 1, 23, 1, 29, 0, time.UTC))},
			{Code: "411421100202", Name: "张庄村", Township: "城关镇", Device: playlists.DeviceAgent, Status: "missed", Class: "offline",
				Reason: "box offline since 2026-03-01 07:40 CST", ReasonCode: "offline_since", ReasonArgs: map[string]string{"at": "2026-02-28T23:40:00Z"}},
			{Code: village2, Name: "王营村", Township: "东镇", Device: playlists.DeviceManual, Status: "awaiting_confirmation",
				Class: "awaiting_confirmation", Reason: "no box: a person confirms it", ReasonCode: "no_box"},
		},
		Townships: []api.TownshipCoverage{
			{Name: "城关镇", Counts: api.Counts{Targeted: 2, Played: 1, PlayedByBox: 1, Missed: 1}},
			{Name: "东镇", Counts: api.Counts{Targeted: 1, AwaitingConfirmation: 1}},
		}}
}

func httpCoverage() api.Coverage {
	return api.Coverage{ScheduleID: 12, Occurrence: time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC), CoverageDetail: httpCoverageDetail()}
}

func httpBroadcastCoverage() api.BroadcastCoverage {
	d := httpCoverageDetail()
	d.Villages[0].Status, d.Villages[0].Class, d.Villages[0].ConfirmedByHand = "played", "played_by_hand", true
	d.Villages[0].ConfirmedBy, d.Villages[0].ConfirmedByName, d.Villages[0].Reason, d.Villages[0].ReasonCode = "wang", "王芳", "广播站手动播放", "note"
	d.Villages[0].ReasonArgs = map[string]string{"note": "广播站手动播放", "by": "王芳"}
	d.PlayedByBox, d.PlayedByHand = 0, 1
	d.Townships[0].PlayedByBox, d.Townships[0].PlayedByHand = 0, 1
	return api.BroadcastCoverage{BroadcastID: 31, State: "in_progress", CoverageDetail: d}
}

func httpSummary() api.CoverageSummary {
	return api.CoverageSummary{Targeted: 5, Played: 2, PlayedByBox: 1, PlayedByHand: 1, Partial: 1, Offline: 1, Pending: 1}
}

func httpCoverageReport() api.CoverageReport {
	s := httpSummary()
	towns := []api.TownshipSummary{{Name: "城关镇", CoverageSummary: s}}
	return api.CoverageReport{From: "2026-03-01", To: "2026-03-02", Timezone: playlists.DefaultTimezone, GeneratedAt: created.Add(24 * time.Hour),
		Totals: s, Townships: towns,
		Days: []api.DaySummary{{Date: "2026-03-01", Items: 1, CoverageSummary: s}, {Date: "2026-03-02", Items: 0}},
		Items: []api.ReportItem{{Kind: "broadcast", ID: 31, At: created, Title: "防汛通知", Priority: playlists.Emergency, EventType: "flood",
			Severity: 2, State: "done", Counted: true, CoverageSummary: s, Townships: towns,
			NotPlayed: []api.NotPlayed{{Code: "411421100202", Name: "张庄村", Township: "城关镇", Class: "offline",
				Reason: "box offline since 2026-03-01 07:40 CST", ReasonCode: "offline_since", ReasonArgs: map[string]string{"at": "2026-02-28T23:40:00Z"}}}}}}
}

func httpConfirmationRequest() api.ConfirmationRequest {
	return api.ConfirmationRequest{ScheduleID: 12, Occurrence: "2026-03-02T07:00", PlayedAt: "2026-03-02T07:05", Note: "广播站手动播放"}
}

func httpConfirmation() api.Confirmation {
	return api.Confirmation{ID: 5, Village: village2, ScheduleID: 12, Occurrence: ptrTime(time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)),
		PlayedAt: time.Date(2026, 3, 1, 23, 5, 0, 0, time.UTC), Note: "广播站手动播放", CreatedAt: created.Add(24 * time.Hour), CreatedBy: "wang"}
}

func httpVillageBroadcasts() api.VillageBroadcastList {
	return api.VillageBroadcastList{Broadcasts: []api.VillageBroadcast{{Broadcast: httpBroadcast(), Confirmed: true}}}
}

func httpVillageEvents() api.VillageEvents {
	return api.VillageEvents{Village: village, Events: []api.VillageEvent{
		{Seq: 41, Type: api.EventStarted, At: time.Date(2026, 3, 1, 23, 0, 1, 0, time.UTC), ScheduleID: 12,
			Occurrence: ptrTime(time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)), AudioID: 7, ReceivedAt: time.Date(2026, 3, 1, 23, 0, 2, 0, time.UTC)},
		{Seq: 42, Type: api.EventRejected, At: created, BroadcastID: 32, Reason: "expired", Test: true, ReceivedAt: created.Add(time.Second)},
	}}
}

func httpBoxConfigRequest() api.BoxConfig {
	return api.BoxConfig{QuietHours: []playlists.QuietWindow{{From: "22:00", To: "06:30"}}, Timezone: playlists.DefaultTimezone, Volume: 80}
}

func httpSettings() api.Settings {
	return api.Settings{Scope: "township", Name: "城关镇", QuietHours: []playlists.QuietWindow{{From: "22:00", To: "06:30"}}, Volume: 80,
		Timezone: playlists.DefaultTimezone, Groups: []api.Group{api.Group("t/" + township)}, UpdatedAt: ptrTime(created), UpdatedBy: "zhang", UpdatedByName: "张伟"}
}

func httpUser() api.User {
	return api.User{ID: 3, Username: "zhang", DisplayName: "张伟", Role: "operator", CreatedAt: issued, UpdatedAt: created,
		LastLoginAt: ptrTime(created)}
}

func httpVillageUser() api.User {
	return api.User{ID: 6, Username: "wangying", DisplayName: "王营广播员", Role: "village", Village: village2, Disabled: true,
		CreatedAt: issued, UpdatedAt: created}
}

func httpLoginRequest() api.LoginRequest {
	return api.LoginRequest{Username: "zhang", Password: "correct horse battery staple"}
}

func httpLogin() api.Login {
	u := httpUser()
	u.LastLoginAt = nil
	return api.Login{Token: "cx_s_9fK2mQ7xLp4vT8wZ", ExpiresAt: created.Add(12 * time.Hour), User: u}
}

func httpMe() api.Me {
	return api.Me{Name: "zhang", DisplayName: "张伟", Role: "operator", UserID: 3, TokenID: 17, Person: "user/3",
		ExpiresAt: ptrTime(created.Add(12 * time.Hour)), CountyName: "示例县"}
}

func httpPasswordChange() api.PasswordChange {
	return api.PasswordChange{Current: "correct horse battery staple", New: "another horse battery staple"}
}

func httpUserRequest() api.UserRequest {
	return api.UserRequest{Username: "wangying", DisplayName: "王营广播员", Role: "village", Village: village2, Password: "correct horse battery wang"}
}

func httpUserChange() api.UserChange {
	return api.UserChange{DisplayName: ptr("王营村广播员"), Disabled: ptr(true)}
}

func httpTokenRequest() api.TokenRequest {
	return api.TokenRequest{Name: "weather feed", Role: "operator"}
}

func httpToken() api.Token {
	return api.Token{ID: 18, Name: "weather feed", Role: "operator", OwnerUserID: 1, CreatedAt: created, Token: "cx_t_Jq8vN2kR5wX1yB7c"}
}

func httpSession() api.Token {
	return api.Token{ID: 17, Name: "zhang", Role: "operator", UserID: 3, CreatedAt: created, ExpiresAt: ptrTime(created.Add(12 * time.Hour))}
}

func httpAuditLog() api.AuditLog {
	return api.AuditLog{Entries: []api.AuditEntry{
		{ID: 102, At: created.Add(time.Minute), Actor: "li", Action: "broadcast.approve", Object: "broadcast/31",
			Detail: "approved broadcast 31", Params: map[string]string{"priority": "emergency", "targets": "城关镇"}, RemoteAddr: "192.168.10.15", ActorName: "李娜"},
		{ID: 7, At: issued, Actor: "admin", Action: "POST /api/v1/villages/import", Object: "villages"},
	}}
}

func httpThrottles() api.LoginThrottles {
	return api.LoginThrottles{Throttles: []api.LoginThrottle{
		{Addr: "192.168.10.99", User: "admin", Failures: 6, LastFailureAt: created, RetryAfterS: 54},
		{Addr: "2001:db8:1:2::/64", Failures: 2, LastFailureAt: created.Add(-time.Minute)},
	}}
}

func httpBroadcastCheck() api.BroadcastCheck {
	return api.BroadcastCheck{ID: 31, Status: api.CheckActive}
}

// The upper platform of the national chain: the county under its
// province, a packet refused and one acted on, reports queued and sent.
const (
	httpCountyEBRID   = "010341142100000001"
	httpProvinceEBRID = "010241000000000001"
)

func httpEBDStatus() api.EBDStatus {
	sent, answered := created.Add(-30*time.Second), created.Add(-90*time.Second)
	failed := created.Add(-20 * time.Second)
	return api.EBDStatus{Enabled: true, EBRID: httpCountyEBRID, DoorURL: "http://10.41.14.21:8080/api/v1/ebd",
		Upstream: &api.EBDUpstream{URL: "https://ebd.province.example/ebd", EBRID: httpProvinceEBRID, Reachable: false,
			HeartbeatSentAt: &sent, HeartbeatAt: &answered, LastSentAt: &answered,
			LastError: "post 010103110101000000010001772323723000: dial tcp 10.11.0.5:443: connect: connection refused", LastErrorAt: &failed,
			Queued: 2, OldestQueuedAt: &failed},
		Certificate: &api.EBDCertificate{CertSN: "5c1f0e7a9b2d4e31", Subject: "CN=" + httpCountyEBRID + ",O=Cunxiang",
			NotBefore: created.AddDate(0, -1, 0), NotAfter: created.AddDate(10, -1, 0), State: api.CertValid},
		Trusted: []api.EBDCertificate{{CertSN: "1a2b3c4d5e6f7081", Subject: "CN=" + httpProvinceEBRID + ",O=省应急广播平台",
			NotBefore: created.AddDate(-1, 0, 0), NotAfter: created.AddDate(4, 0, 0), State: api.CertValid}},
	}
}

func httpEBDInbound() api.EBDInboundList {
	return api.EBDInboundList{Packets: []api.EBDInbound{
		{ReceivedAt: created, EBDID: "100102110000000000010000000000000013", Type: "EBM", Src: httpProvinceEBRID, Outcome: "received",
			ResultCode: 1, ResultDesc: "接收解析及数据校验成功: broadcast 31", CertSN: "1a2b3c4d5e6f7081", BroadcastID: 31, RemoteAddr: "10.11.0.5"},
		{ReceivedAt: created.Add(-time.Minute), EBDID: "100102110000000000010000000000000012", Type: "EBM", Src: httpProvinceEBRID, Outcome: "refused",
			ResultCode: 4, ResultDesc: "签名验证失败", Reason: "ebd_cert_unknown", Params: map[string]string{"value": "99aa", "type": "EBM"},
			Error: "the signing certificate 99aa is not trusted (--ebd-trust)", RemoteAddr: "203.0.113.9"},
	}}
}

func httpEBDOutbound() api.EBDOutboundList {
	next, sent := created.Add(2*time.Minute), created.Add(-time.Minute)
	code := 1
	return api.EBDOutboundList{Reports: []api.EBDOutbound{
		{Seq: 12, EBDID: "100103110101000000010000000000000012", Type: "EBMBrdLog", BroadcastID: 31, CreatedAt: created, State: api.EBDRetrying,
			Attempts: 3, NextAt: &next, LastError: "post 100103110101000000010000000000000012: the upper platform answered 503 Service Unavailable"},
		{Seq: 11, EBDID: "100103110101000000010000000000000011", Type: "EBRDTState", CreatedAt: created.Add(-2 * time.Minute), State: api.EBDDelivered,
			Attempts: 1, SentAt: &sent, ResultCode: &code, ResultDesc: "接收解析及数据校验成功"},
	}}
}

func httpEBDTerminal() api.EBDTerminal {
	return api.EBDTerminal{Village: village, Name: "李庄村", Township: "城关镇", EBRID: "060141142110020101", Derived: "060141142110020101"}
}
