package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// capDir holds the sample CAP messages: warnings for the sample county
// 411421 (playliststest), sent in 2024.
var capDir = filepath.Join("..", "capalert", "testdata")

// shanghai is UTC+8, the offset of the samples.
var shanghai = time.FixedZone("CST", 8*3600)

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// capEnv is an environment with the sample county and a speaker, its
// clock at t.
func capEnv(t *testing.T, at time.Time, opts ...envOpt) (*env, *fakeSpeaker) {
	t.Helper()
	sp := &fakeSpeaker{}
	e := newEnv(t, append([]envOpt{func(o *Options) { o.Speaker = sp }}, opts...)...)
	e.importVillages(playliststest.VillagesCSV())
	e.clk.set(at)
	return e, sp
}

// capXML reads a sample message, with edit (if any) applied.
func capXML(tb testing.TB, name string, edit func(string) string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(capDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		return edit(string(b))
	}
	return string(b)
}

// postCAP posts a CAP message as application/cap+xml.
func (e *env) postCAP(token, xml string) resp {
	e.t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/alerts/cap", strings.NewReader(xml))
	req.Header.Set("Content-Type", "application/cap+xml; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+token)
	return e.request(req)
}

// villagesOf returns the codes of the sample county's villages in the
// given townships (by 9-digit code), in code order.
func villagesOf(townships ...string) []string {
	var out []string
	for _, v := range playliststest.Villages() {
		if slices.Contains(townships, v.Code[:9]) {
			out = append(out, v.Code)
		}
	}
	return out
}

const (
	floodRedID = "41142141600000_20240710063000"
	updateID   = "41142141600000_20240710123000"
	cancelID   = "41142141600000_20240710190000"
	floodObj   = "cap/411421000000/"
)

// TestCAPFloodWarning follows the sample flood warning through its life:
// the red warning is broadcast (waiting for approval: two townships), a
// copy of it is not broadcast again, the update to orange replaces it,
// and the cancel stops the update.
func TestCAPFloodWarning(t *testing.T) {
	e, sp := capEnv(t, time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai))
	wang := e.user("wang", "approver", "")

	// The red warning.
	var red api.CAPResult
	e.must(http.StatusAccepted, e.postCAP(e.staff, capXML(t, "flood-red.xml", nil)), &red)
	if red.BroadcastID == 0 || red.State != statePending || red.Duplicate || red.MsgType != "Alert" || red.Test ||
		len(red.Cancelled) != 0 || !strings.Contains(red.Note, "https://alert.example.gov.cn/audio/41142141600000_20240710063000.mp3") {
		t.Fatalf("red warning %+v", red)
	}
	b := e.getBroadcast(red.BroadcastID)
	if len(sp.said) != 1 || !strings.HasPrefix(sp.said[0], "示例县气象台2024年7月10日6时30分发布暴雨红色预警信号") || b.Text != sp.said[0] {
		t.Fatalf("spoke %q; broadcast text %q", sp.said, b.Text)
	}
	wantTargets := playlists.Targets{Villages: villagesOf("411421100", "411421102")}
	if !reflect.DeepEqual(b.Targets, wantTargets) || b.Priority != playlists.Emergency || b.Severity != 1 || b.EventType != "暴雨" ||
		!b.ExpiresAt.Equal(time.Date(2024, 7, 10, 18, 30, 0, 0, shanghai)) || b.CreatedBy != "clerk" || b.Test || !b.NeedsApproval {
		t.Fatalf("broadcast %+v", b)
	}
	if len(e.pub.broadcasts) != 0 {
		t.Fatal("a broadcast waiting for approval was sent")
	}

	// The same message again (a platform retrying) is not broadcast again.
	var dup api.CAPResult
	e.must(http.StatusOK, e.postCAP(e.staff, capXML(t, "flood-red.xml", nil)), &dup)
	if !dup.Duplicate || dup.BroadcastID != red.BroadcastID || dup.State != statePending || len(sp.said) != 1 {
		t.Fatalf("duplicate %+v, spoke %d times", dup, len(sp.said))
	}
	var list struct{ Broadcasts []api.Broadcast }
	e.must(http.StatusOK, e.do("GET", "/api/v1/broadcasts", e.staff, nil), &list)
	if len(list.Broadcasts) != 1 {
		t.Fatalf("%d broadcasts", len(list.Broadcasts))
	}

	// Approved, it goes out.
	e.must(http.StatusOK, e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/approve", red.BroadcastID), wang, nil), nil)
	if len(e.pub.broadcasts) != 1 || e.pub.broadcasts[0].B.ID != red.BroadcastID {
		t.Fatalf("published %+v", e.pub.broadcasts)
	}

	// The update replaces it: a new broadcast, the old one cancelled on the boxes.
	e.clk.set(time.Date(2024, 7, 10, 12, 31, 0, 0, shanghai))
	var orange api.CAPResult
	e.must(http.StatusAccepted, e.postCAP(e.staff, capXML(t, "update.xml", nil)), &orange)
	if orange.MsgType != "Update" || orange.BroadcastID == 0 || orange.BroadcastID == red.BroadcastID || orange.State != statePending ||
		!reflect.DeepEqual(orange.Cancelled, []int64{red.BroadcastID}) || orange.Note != "" {
		t.Fatalf("update %+v", orange)
	}
	if old := e.getBroadcast(red.BroadcastID); old.State != stateCancelled || old.CancelledBy != "clerk" {
		t.Fatalf("the red warning after the update: %+v", old)
	}
	if len(e.pub.cancelled) != 1 || e.pub.cancelled[0].ID != red.BroadcastID {
		t.Fatalf("boxes told to cancel %+v", e.pub.cancelled)
	}
	nb := e.getBroadcast(orange.BroadcastID)
	if !reflect.DeepEqual(nb.Targets.Villages, villagesOf("411421102", "411421103")) || nb.Severity != 2 || nb.Priority != playlists.Emergency ||
		!strings.HasPrefix(nb.Text, "城关镇降雨减弱") {
		t.Fatalf("updated broadcast %+v", nb)
	}

	// The cancel stops the update (the red warning is already cancelled).
	e.clk.set(time.Date(2024, 7, 10, 19, 1, 0, 0, shanghai))
	var cancel api.CAPResult
	e.must(http.StatusOK, e.postCAP(e.staff, capXML(t, "cancel.xml", nil)), &cancel)
	if cancel.MsgType != "Cancel" || cancel.BroadcastID != 0 || cancel.State != "" || !reflect.DeepEqual(cancel.Cancelled, []int64{orange.BroadcastID}) ||
		!strings.Contains(cancel.Note, fmt.Sprintf("broadcast %d of %s was already cancelled", red.BroadcastID, floodRedID)) {
		t.Fatalf("cancel %+v", cancel)
	}
	if got := e.getBroadcast(orange.BroadcastID); got.State != stateCancelled {
		t.Fatalf("the update after the cancel: %s", got.State)
	}
	if len(e.pub.cancelled) != 1 {
		t.Fatalf("a broadcast never sent was cancelled on the boxes: %+v", e.pub.cancelled)
	}
	var again api.CAPResult
	e.must(http.StatusOK, e.postCAP(e.staff, capXML(t, "cancel.xml", nil)), &again)
	if !again.Duplicate || !reflect.DeepEqual(again.Cancelled, cancel.Cancelled) {
		t.Fatalf("cancel again %+v", again)
	}

	// Every step is in the audit log, with the broadcasts it made and cancelled.
	log := e.auditLog("?actor=clerk")
	want := []string{
		"clerk cap.cancel " + floodObj + cancelID,
		"clerk cap.cancel " + floodObj + cancelID,
		fmt.Sprintf("clerk broadcast.cancel broadcast/%d", orange.BroadcastID),
		"clerk cap.alert " + floodObj + updateID,
		fmt.Sprintf("clerk broadcast.cancel broadcast/%d", red.BroadcastID),
		fmt.Sprintf("clerk broadcast.create broadcast/%d", orange.BroadcastID),
		"clerk cap.alert " + floodObj + floodRedID,
		"clerk cap.alert " + floodObj + floodRedID,
		fmt.Sprintf("clerk broadcast.create broadcast/%d", red.BroadcastID),
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("audit\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

func TestCAPAlerts(t *testing.T) {
	tests := []struct {
		name, file string
		at         time.Time
		state      string
		test       bool
		note       string
		targets    []string
	}{
		{"an exercise in one township is sent at once, as a test", "exercise.xml", time.Date(2024, 5, 12, 14, 0, 0, 0, shanghai),
			stateSending, true, "", villagesOf("411421101")},
		{"the whole county waits for approval; no expiry given", "epidemic.xml", time.Date(2024, 8, 15, 9, 1, 0, 0, shanghai),
			statePending, false, "the alert gives no expiry; the broadcast expires 6 hours after the alert takes effect, at 2024-08-15T07:00:00Z",
			villagesOf("411421100", "411421101", "411421102", "411421103", "411421104", "411421105", "411421106", "411421107", "411421108")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := capEnv(t, tt.at)
			var r api.CAPResult
			e.must(http.StatusAccepted, e.postCAP(e.admin, capXML(t, tt.file, nil)), &r)
			if r.State != tt.state || r.Test != tt.test || r.Note != tt.note || r.Duplicate {
				t.Fatalf("%+v", r)
			}
			b := e.getBroadcast(r.BroadcastID)
			if b.Test != tt.test || !reflect.DeepEqual(b.Targets.Villages, tt.targets) {
				t.Fatalf("broadcast %+v", b)
			}
			if sent := len(e.pub.broadcasts) == 1; sent != (tt.state == stateSending) || sent && e.pub.broadcasts[0].B.Test != tt.test {
				t.Fatalf("published %+v", e.pub.broadcasts)
			}
		})
	}
}

func TestCAPRefused(t *testing.T) {
	at := time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai)
	e, sp := capEnv(t, at)
	floodRed := capXML(t, "flood-red.xml", nil)
	tests := []struct {
		name   string
		body   string
		status int
		msg    string // the error message starts with it
	}{
		{"no info", capXML(t, "bad/missing-info.xml", nil), 400, "alert/info: no value"},
		{"empty geocode", capXML(t, "bad/empty-geocode.xml", nil), 400, "alert/info/area/geocode[2]: no value"},
		{"a geocode of letters", capXML(t, "bad/letters-geocode.xml", nil), 400, "alert/info/area/geocode[2]: \"99142110200A\" is not an administrative-division code"},
		{"no identifier", capXML(t, "bad/no-identifier.xml", nil), 400, "alert/identifier: no value"},
		{"cut short", capXML(t, "bad/truncated.xml", nil), 400, "the CAP message is cut short"},
		{"not XML", "this is not XML", 400, "the CAP message is not"},
		{"DOCTYPE", capXML(t, "bad/doctype.xml", nil), 400, "the CAP message contains a <!DOCTYPE> declaration"},
		{"no village matches", strings.ReplaceAll(floodRed, "<value>4114211", "<value>3201021"), 422,
			"no village of this county matches geocodes 320102100, 320102102"},
		{"expired", strings.ReplaceAll(floodRed, "2024-07-10T18:30:00+08:00", "2024-07-10T06:34:59+08:00"), 422,
			"alert/info/expires: the alert expired at 2024-07-09T22:34:59Z"},
		{"a cancel of what was never received", capXML(t, "cancel.xml", nil), 422, "none of the alerts this Cancel refers to"},
		{"an update expiring after a broadcast may", strings.ReplaceAll(capXML(t, "update.xml", nil), "2024-07-10T20:30:00+08:00", "2024-07-20T20:30:00+08:00"),
			202, ""}, // a far expiry is shortened, not refused: see the note
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.postCAP(e.staff, tt.body)
			if got.Status != tt.status {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
			if tt.status == http.StatusAccepted {
				var r api.CAPResult
				got.decode(t, &r)
				if !strings.Contains(r.Note, "later than a broadcast may last; the broadcast expires at 2024-07-16T22:35:00Z") {
					t.Fatalf("%+v", r)
				}
				return
			}
			if b := got.errBody(t); b.Error.Code != cx.EINVALID || !strings.HasPrefix(b.Error.Message, tt.msg) {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
	if len(sp.said) != 1 || len(e.pub.broadcasts) != 0 {
		t.Fatalf("refused alerts were spoken (%q) or sent (%d)", sp.said, len(e.pub.broadcasts))
	}
	// Refused messages are not recorded: once its villages exist, the alert is broadcast.
	if log := e.auditLog("?action=cap.alert&limit=3"); len(log) != 3 || log[1] != "clerk cap.alert "+floodObj+floodRedID || log[2] != "clerk cap.alert "+floodObj+floodRedID {
		t.Fatalf("refusals are not audited: %v", log)
	}
	var r api.CAPResult
	e.must(http.StatusAccepted, e.postCAP(e.staff, floodRed), &r)

	t.Run("wrong content type", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/api/v1/alerts/cap", strings.NewReader(floodRed))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.staff)
		if got := e.request(req); got.Status != http.StatusUnsupportedMediaType || got.errBody(t).Error.Code != "unsupported_media_type" {
			t.Fatalf("%d %s", got.Status, got.Body)
		}
	})
	t.Run("roles", func(t *testing.T) {
		for _, role := range []string{api.RoleViewer, api.RoleApprover} {
			tok := e.token("a-"+role, role, "")
			if got := e.postCAP(tok, capXML(t, "update.xml", nil)); got.Status != http.StatusForbidden || got.errBody(t).Error.Code != cx.EFORBIDDEN {
				t.Fatalf("%s: %d %s", role, got.Status, got.Body)
			}
			if log := e.auditLog("?action=denied&limit=1"); len(log) != 1 || log[0] != "a-"+role+" denied POST /api/v1/alerts/cap" {
				t.Fatalf("%s: audit %v", role, log)
			}
		}
	})
}

// TestCAPWithoutSpeech: an alert cannot be spoken without espeak-ng (503)
// and is not recorded, so it goes out when sent again once it is installed.
func TestCAPWithoutSpeech(t *testing.T) {
	e, _ := capEnv(t, time.Date(2024, 5, 12, 14, 0, 0, 0, shanghai))
	sp := e.srv.o.Speaker
	e.srv.o.Speaker = nil
	got := e.postCAP(e.staff, capXML(t, "exercise.xml", nil))
	if got.Status != http.StatusServiceUnavailable || got.errBody(t).Error.Code != cx.EUNAVAILABLE {
		t.Fatalf("%d %s", got.Status, got.Body)
	}
	e.srv.o.Speaker = sp
	var r api.CAPResult
	e.must(http.StatusAccepted, e.postCAP(e.staff, capXML(t, "exercise.xml", nil)), &r)
	if r.Duplicate || r.State != stateSending {
		t.Fatalf("%+v", r)
	}
}
