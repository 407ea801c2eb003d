package coverage_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/playlists"
)

var (
	occ = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // 08:00 in Shanghai
	key = playlists.OccurrenceKey(occ)
	sh  = mustLoc("Asia/Shanghai")
)

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func agent(code, town string, presence string) coverage.Village {
	return coverage.Village{
		Village:  playlists.Village{Code: code, Name: "v" + code[10:], Township: town, Device: playlists.DeviceAgent},
		Enrolled: true, Presence: presence, PresenceAt: occ.Add(-time.Hour),
	}
}

func TestVillageStatus(t *testing.T) {
	const c = "110101001001"
	after := occ.Add(10 * time.Minute) // window (5 min + 2 min grace) over
	during := occ.Add(3 * time.Minute) // still inside the window
	ev := func(typ string, at time.Time, occurrence, reason string) coverage.Event {
		return coverage.Event{Village: c, Type: typ, At: at, Occurrence: occurrence, Reason: reason}
	}
	tests := []struct {
		name       string
		v          coverage.Village
		events     []coverage.Event
		now        time.Time
		wantStatus string
		wantReason string
		wantCode   string
		wantArgs   map[string]string
	}{
		{"finished", agent(c, "t", "online"), []coverage.Event{ev("started", occ, key, ""), ev("finished", occ.Add(5*time.Minute), key, "")}, after, coverage.Played, "", "", nil},
		{"finished beats an earlier failure", agent(c, "t", "online"), []coverage.Event{ev("failed", occ, key, "x"), ev("finished", occ.Add(time.Minute), key, "")}, after, coverage.Played, "", "", nil},
		{"failed", agent(c, "t", "online"), []coverage.Event{ev("started", occ, key, ""), ev("failed", occ.Add(time.Minute), key, "audio device busy")}, after, coverage.Failed, "audio device busy", coverage.ReasonBoxFailedDetail, map[string]string{"detail": "audio device busy"}},
		{"failed without reason", agent(c, "t", "online"), []coverage.Event{ev("failed", occ, key, "")}, during, coverage.Failed, "the box reported a failure", coverage.ReasonBoxFailed, nil},
		{"started, window over", agent(c, "t", "online"), []coverage.Event{ev("started", occ, key, "")}, after, coverage.Partial, "started at 2026-03-01 08:00 CST but did not report finishing", coverage.ReasonNotFinished, map[string]string{"at": "2026-03-01T00:00:00Z"}},
		{"started, still playing", agent(c, "t", "online"), []coverage.Event{ev("started", occ, key, "")}, during, coverage.Pending, "playing since 2026-03-01 08:00 CST", coverage.ReasonPlaying, map[string]string{"at": "2026-03-01T00:00:00Z"}},
		{"no report yet", agent(c, "t", "online"), nil, during, coverage.Pending, "", "", nil},
		{"other occurrence does not count", agent(c, "t", "online"), []coverage.Event{ev("finished", occ, "2026-02-28T00:00:00Z", "")}, after, coverage.Missed, "box online but did not report (it never confirmed receiving the schedule)", coverage.ReasonNotReceived, map[string]string{"what": "schedule"}},
		{"online, received, silent", agent(c, "t", "online"), []coverage.Event{ev("received", occ.Add(-time.Hour), "", "")}, after, coverage.Missed, "box online but did not report", coverage.ReasonNoReport, nil},
		{"offline", agent(c, "t", "offline"), nil, after, coverage.Missed, "box offline since 2026-03-01 07:00 CST", coverage.ReasonOfflineSince, map[string]string{"at": "2026-02-28T23:00:00Z"}},
		{"offline, before the window ends", agent(c, "t", "offline"), nil, during, coverage.Pending, "box offline since 2026-03-01 07:00 CST", coverage.ReasonOfflineSince, map[string]string{"at": "2026-02-28T23:00:00Z"}},
		{"never connected", agent(c, "t", ""), nil, after, coverage.Missed, "box enrolled but never connected", coverage.ReasonNeverConnected, nil},
		{"never enrolled", coverage.Village{Village: playlists.Village{Code: c, Device: "agent"}}, nil, after, coverage.Missed, "box never enrolled", coverage.ReasonNeverEnrolled, nil},
		{"rejected", agent(c, "t", "online"), []coverage.Event{ev("rejected", occ.Add(-time.Hour), "", "signature does not verify")}, after, coverage.Missed, "box rejected the schedule: signature does not verify", coverage.ReasonBoxRejected, map[string]string{"what": "schedule", "detail": "signature does not verify"}},
		{"download failed", agent(c, "t", "online"), []coverage.Event{ev("failed", occ.Add(-time.Hour), "", "sha256 mismatch")}, after, coverage.Missed, "box could not get the audio: sha256 mismatch", coverage.ReasonDownloadFailed, map[string]string{"detail": "sha256 mismatch"}},
		{"manual", coverage.Village{Village: playlists.Village{Code: c, Device: "manual"}}, nil, after, coverage.AwaitingConfirmation, "no box in this village: the broadcaster must confirm by hand", coverage.ReasonNoBox, nil},
		{"cut off", agent(c, "t", "online"), []coverage.Event{ev("started", occ, key, ""), ev("partial", occ.Add(time.Minute), key, "emergency broadcast 7")}, after, coverage.Partial, "cut off: emergency broadcast 7", coverage.ReasonCutOffBy, map[string]string{"detail": "emergency broadcast 7"}},
		{"cut off, no reason", agent(c, "t", "online"), []coverage.Event{ev("partial", occ.Add(time.Minute), key, "")}, during, coverage.Partial, "cut off by something of higher priority", coverage.ReasonCutOff, nil},
		{"window ends exactly now", agent(c, "t", "online"), nil, occ.Add(5*time.Minute + coverage.Grace), coverage.Missed, "box online but did not report (it never confirmed receiving the schedule)", coverage.ReasonNotReceived, map[string]string{"what": "schedule"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := coverage.Compute(coverage.Input{
				Occurrence: occ, Duration: 5 * time.Minute, Now: tt.now, Location: sh,
				Villages: []coverage.Village{tt.v}, Events: tt.events,
			})
			got := r.Villages[0]
			if got.Status != tt.wantStatus || got.Reason != tt.wantReason {
				t.Fatalf("got %s %q, want %s %q", got.Status, got.Reason, tt.wantStatus, tt.wantReason)
			}
			if got.ReasonCode != tt.wantCode || !reflect.DeepEqual(got.ReasonArgs, tt.wantArgs) {
				t.Fatalf("got reason %q %v, want %q %v", got.ReasonCode, got.ReasonArgs, tt.wantCode, tt.wantArgs)
			}
			if r.Targeted != 1 {
				t.Fatalf("targeted %d", r.Targeted)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	vs := []coverage.Village{
		agent("110101001001", "东镇", "online"),
		agent("110101001002", "东镇", "online"),
		agent("110101001003", "东镇", "offline"),
		agent("110101002001", "南镇", "online"),
		{Village: playlists.Village{Code: "110101002002", Township: "南镇", Device: "manual"}},
	}
	events := []coverage.Event{
		{Village: "110101001001", Type: "finished", At: occ.Add(time.Minute), Occurrence: key},
		{Village: "110101001002", Type: "started", At: occ, Occurrence: key},
		{Village: "110101002001", Type: "failed", At: occ, Occurrence: key, Reason: "no audio output"},
		{Village: "999999999999", Type: "finished", At: occ, Occurrence: key}, // not targeted
	}
	r := coverage.Compute(coverage.Input{Occurrence: occ, Duration: time.Minute, Now: occ.Add(time.Hour), Villages: vs, Events: events})
	want := coverage.Counts{Targeted: 5, Played: 1, PlayedByBox: 1, Partial: 1, Failed: 1, Missed: 1, AwaitingConfirmation: 1}
	if r.Counts != want {
		t.Fatalf("counts %+v, want %+v", r.Counts, want)
	}
	wantTowns := []coverage.Township{
		{Name: "东镇", Counts: coverage.Counts{Targeted: 3, Played: 1, PlayedByBox: 1, Partial: 1, Missed: 1}},
		{Name: "南镇", Counts: coverage.Counts{Targeted: 2, Failed: 1, AwaitingConfirmation: 1}},
	}
	if !reflect.DeepEqual(r.Townships, wantTowns) {
		t.Fatalf("townships %+v", r.Townships)
	}
	if r.Villages[0].ReportedAt == nil || !r.Villages[0].ReportedAt.Equal(occ.Add(time.Minute)) {
		t.Fatalf("reported_at %v", r.Villages[0].ReportedAt)
	}
	if !r.WindowEnd.Equal(occ.Add(time.Minute + coverage.Grace)) {
		t.Fatalf("window end %v", r.WindowEnd)
	}
}

// BenchmarkCompute20k is a county-sized province: 20,000 villages with
// three reports each.
func BenchmarkCompute20k(b *testing.B) {
	var vs []coverage.Village
	var evs []coverage.Event
	for i := range 20000 {
		code := "1101010" + string(rune('0'+i/10000%10)) + string(rune('0'+i/1000%10)) + string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
		vs = append(vs, agent(code, code[:9], "online"))
		evs = append(evs,
			coverage.Event{Village: code, Type: "received", At: occ.Add(-time.Hour)},
			coverage.Event{Village: code, Type: "started", At: occ, Occurrence: key},
			coverage.Event{Village: code, Type: "finished", At: occ.Add(time.Minute), Occurrence: key})
	}
	b.ResetTimer()
	for b.Loop() {
		coverage.Compute(coverage.Input{Occurrence: occ, Duration: time.Minute, Now: occ.Add(time.Hour), Villages: vs, Events: evs})
	}
}

func TestConfirmedByHand(t *testing.T) {
	vs := []coverage.Village{
		{Village: playlists.Village{Code: "110101002001", Township: "南镇", Device: "manual"}},
		{Village: playlists.Village{Code: "110101002002", Township: "南镇", Device: "manual"}},
		agent("110101002003", "南镇", "online"),
	}
	played := occ.Add(time.Minute)
	confs := []coverage.Confirmation{
		{Village: "110101002001", PlayedAt: played, By: "nancun", Note: "用大喇叭播了"},
		{Village: "110101002003", PlayedAt: played, By: "nancun"}, // a box village: its box's reports count, not this
	}
	events := []coverage.Event{{Village: "110101002003", Type: "finished", At: played, Occurrence: key}}
	r := coverage.Compute(coverage.Input{Occurrence: occ, Duration: time.Minute, Now: occ.Add(time.Hour), Villages: vs, Events: events, Confirmations: confs})
	got := r.Villages[0]
	if got.Status != coverage.Played || !got.ConfirmedByHand || got.ConfirmedBy != "nancun" || got.Reason != "用大喇叭播了" || !got.ReportedAt.Equal(played) {
		t.Fatalf("confirmed village %+v", got)
	}
	if r.Villages[1].Status != coverage.AwaitingConfirmation || r.Villages[2].ConfirmedByHand {
		t.Fatalf("others %+v", r.Villages[1:])
	}
	want := coverage.Counts{Targeted: 3, Played: 2, PlayedByBox: 1, PlayedByHand: 1, AwaitingConfirmation: 1}
	if r.Counts != want || r.Townships[0].Counts != want {
		t.Fatalf("counts %+v", r.Counts)
	}
}

func TestBroadcastStatus(t *testing.T) {
	const c = "110101001001"
	sent := occ
	expires := occ.Add(time.Hour)
	after := expires.Add(time.Hour)
	during := occ.Add(10 * time.Minute)
	ev := func(typ string, at time.Time, reason string) coverage.Event {
		return coverage.Event{Village: c, Type: typ, At: at, Reason: reason}
	}
	manual := coverage.Village{Village: playlists.Village{Code: c, Device: "manual"}}
	tests := []struct {
		name       string
		v          coverage.Village
		events     []coverage.Event
		confs      []coverage.Confirmation
		released   bool
		stopped    time.Time
		now        time.Time
		wantStatus string
		wantReason string
		wantCode   string
		wantArgs   map[string]string
	}{
		{"finished", agent(c, "t", "online"), []coverage.Event{ev("received", sent, ""), ev("started", sent, ""), ev("finished", sent.Add(time.Minute), "")}, nil, true, time.Time{}, during, coverage.Played, "", "", nil},
		{"playing", agent(c, "t", "online"), []coverage.Event{ev("started", sent, "")}, nil, true, time.Time{}, during, coverage.Pending, "playing since 2026-03-01 08:00 CST", coverage.ReasonPlaying, map[string]string{"at": "2026-03-01T00:00:00Z"}},
		{"started, never finished", agent(c, "t", "online"), []coverage.Event{ev("started", sent, "")}, nil, true, time.Time{}, after, coverage.Partial, "started at 2026-03-01 08:00 CST but did not report finishing", coverage.ReasonNotFinished, map[string]string{"at": "2026-03-01T00:00:00Z"}},
		{"cut off", agent(c, "t", "online"), []coverage.Event{ev("started", sent, ""), ev("partial", sent.Add(time.Second), "emergency broadcast 9")}, nil, true, time.Time{}, during, coverage.Partial, "cut off: emergency broadcast 9", coverage.ReasonCutOffBy, map[string]string{"detail": "emergency broadcast 9"}},
		{"failed", agent(c, "t", "online"), []coverage.Event{ev("failed", sent, "no audio output")}, nil, true, time.Time{}, during, coverage.Failed, "no audio output", coverage.ReasonBoxFailedDetail, map[string]string{"detail": "no audio output"}},
		{"stopped by the box", agent(c, "t", "online"), []coverage.Event{ev("started", sent, ""), ev("cancelled", sent.Add(time.Minute), "")}, nil, true, sent.Add(time.Minute), during, coverage.Cancelled, "the box stopped it on its cancellation", coverage.ReasonBoxCancelled, nil},
		{"cancelled before the box heard", agent(c, "t", "offline"), nil, nil, true, sent.Add(time.Minute), after, coverage.Cancelled, "cancelled by li at 2026-03-01 08:01 CST before it played here", coverage.ReasonCancelled, map[string]string{"by": "li", "at": "2026-03-01T00:01:00Z"}},
		{"started, then cancelled, box silent", agent(c, "t", "online"), []coverage.Event{ev("started", sent, "")}, nil, true, sent.Add(time.Minute), during, coverage.Partial, "started at 2026-03-01 08:00 CST but did not report finishing", coverage.ReasonNotFinished, map[string]string{"at": "2026-03-01T00:00:00Z"}},
		{"reached the box too late", agent(c, "t", "online"), []coverage.Event{ev("expired", after, "")}, nil, true, time.Time{}, after, coverage.Expired, "the broadcast reached the box after it expired at 2026-03-01 09:00 CST", coverage.ReasonExpired, map[string]string{"what": "broadcast", "at": "2026-03-01T01:00:00Z"}},
		{"offline, still time", agent(c, "t", "offline"), nil, nil, true, time.Time{}, during, coverage.Pending, "box offline since 2026-03-01 07:00 CST", coverage.ReasonOfflineSince, map[string]string{"at": "2026-02-28T23:00:00Z"}},
		{"offline until expiry", agent(c, "t", "offline"), nil, nil, true, time.Time{}, after, coverage.Missed, "box offline since 2026-03-01 07:00 CST", coverage.ReasonOfflineSince, map[string]string{"at": "2026-02-28T23:00:00Z"}},
		{"rejected by the box", agent(c, "t", "online"), []coverage.Event{ev("rejected", sent, "bad signature")}, nil, true, time.Time{}, after, coverage.Missed, "box rejected the broadcast: bad signature", coverage.ReasonBoxRejected, map[string]string{"what": "broadcast", "detail": "bad signature"}},
		{"silent", agent(c, "t", "online"), nil, nil, true, time.Time{}, after, coverage.Missed, "box online but did not report (it never confirmed receiving the broadcast)", coverage.ReasonNotReceived, map[string]string{"what": "broadcast"}},
		{"waiting for approval", agent(c, "t", "online"), nil, nil, false, time.Time{}, during, coverage.Pending, "waiting for a second person's approval", coverage.ReasonAwaitingApproval, nil},
		{"manual, confirmed", manual, nil, []coverage.Confirmation{{Village: c, PlayedAt: during, By: "nancun"}}, true, time.Time{}, after, coverage.Played, "", "", nil},
		{"manual, waiting", manual, nil, nil, true, time.Time{}, after, coverage.AwaitingConfirmation, "no box in this village: the broadcaster must confirm by hand", coverage.ReasonNoBox, nil},
		{"manual, cancelled", manual, nil, nil, true, sent.Add(time.Minute), after, coverage.Cancelled, "cancelled by li at 2026-03-01 08:01 CST before it played here", coverage.ReasonCancelled, map[string]string{"by": "li", "at": "2026-03-01T00:01:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := coverage.ComputeBroadcast(coverage.BroadcastInput{
				Released: tt.released, StoppedAt: tt.stopped, StoppedBy: "li", ExpiresAt: expires, Duration: time.Minute,
				Now: tt.now, Location: sh, Villages: []coverage.Village{tt.v}, Events: tt.events, Confirmations: tt.confs,
			})
			got := r.Villages[0]
			if got.Status != tt.wantStatus || got.Reason != tt.wantReason {
				t.Fatalf("got %s %q, want %s %q", got.Status, got.Reason, tt.wantStatus, tt.wantReason)
			}
			if got.ReasonCode != tt.wantCode || !reflect.DeepEqual(got.ReasonArgs, tt.wantArgs) {
				t.Fatalf("got reason %q %v, want %q %v", got.ReasonCode, got.ReasonArgs, tt.wantCode, tt.wantArgs)
			}
			if !r.WindowEnd.Equal(expires.Add(time.Minute + coverage.Grace)) {
				t.Fatalf("window end %v", r.WindowEnd)
			}
		})
	}
}

func TestReasonRejectedAndNote(t *testing.T) {
	const c = "110101001001"
	manual := coverage.Village{Village: playlists.Village{Code: c, Device: "manual"}}
	r := coverage.ComputeBroadcast(coverage.BroadcastInput{
		StoppedAt: occ.Add(time.Minute), StoppedBy: "wang", Rejected: true, RejectReason: "错了乡镇",
		ExpiresAt: occ.Add(time.Hour), Duration: time.Minute, Now: occ.Add(2 * time.Hour), Location: sh,
		Villages: []coverage.Village{agent(c, "t", "online")},
	})
	got := r.Villages[0]
	wantArgs := map[string]string{"by": "wang", "detail": "错了乡镇", "at": "2026-03-01T00:01:00Z"}
	if got.Status != coverage.Rejected || got.ReasonCode != coverage.ReasonRejected || !reflect.DeepEqual(got.ReasonArgs, wantArgs) ||
		got.Reason != "rejected by wang (错了乡镇) at 2026-03-01 08:01 CST before it played here" {
		t.Fatalf("rejected: %+v", got)
	}
	r = coverage.Compute(coverage.Input{Occurrence: occ, Duration: time.Minute, Now: occ.Add(time.Hour), Villages: []coverage.Village{manual},
		Confirmations: []coverage.Confirmation{{Village: c, PlayedAt: occ, By: "nancun", Note: "用大喇叭播了"}}})
	got = r.Villages[0]
	if got.ReasonCode != coverage.ReasonNote || got.ReasonArgs["note"] != "用大喇叭播了" || got.Reason != "用大喇叭播了" {
		t.Fatalf("note: %+v", got)
	}
}

func TestReasonTexts(t *testing.T) {
	codes := coverage.ReasonCodes()
	if len(codes) != len(coverage.Reasons) || len(codes) < 20 {
		t.Fatalf("codes %v", codes)
	}
	for _, c := range codes {
		if coverage.Reasons[c] == "" {
			t.Errorf("%s has no English text", c)
		}
	}
	tests := []struct{ tmpl, want string }{
		{"box offline since {at}", "box offline since AT"},
		{"{note}", "n{x}"},
		{"{missing} and {by}", "{missing} and li"},
		{"no braces", "no braces"},
		{"unclosed {by", "unclosed {by"},
	}
	args := map[string]string{"at": "2026-03-01T00:00:00Z", "note": "n{x}", "by": "li"}
	for _, tt := range tests {
		got := coverage.Fill(tt.tmpl, args, func(name, v string) string {
			if name == "at" {
				return "AT"
			}
			return v
		})
		if got != tt.want {
			t.Errorf("Fill(%q) = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}
