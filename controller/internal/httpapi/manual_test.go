package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestHandConfirmations: the broadcaster of a village without a box
// confirms what they played; coverage counts it as played, by hand.
func TestHandConfirmations(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	e.enrollBox("110101002001")
	audio, pl := e.setupLibrary()
	const beicun = "110101002002" // 北村, 南镇, manual
	bei := e.user("beicun", "village", beicun)
	dong := e.user("dongcun", "village", "110101001001") // has a box

	var sc api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, map[string]any{
		"playlist_id": pl.ID, "targets": map[string]any{"townships": []string{"南镇"}}, "once_at": e.in(time.Hour)}), &sc)
	occ := *sc.OnceAt
	b := e.bcastOK(audio[0].ID, func(m map[string]any) {
		m["priority"], m["targets"] = "routine", map[string]any{"villages": []string{beicun, "110101002001"}}
	})

	// The village account sees its schedules and broadcasts, not others'.
	var mine struct{ Schedules []api.Schedule }
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/"+beicun+"/schedules", bei, nil), &mine)
	var mineB struct{ Broadcasts []api.Broadcast }
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/"+beicun+"/broadcasts", bei, nil), &mineB)
	if len(mine.Schedules) != 1 || mine.Schedules[0].ID != sc.ID || len(mineB.Broadcasts) != 1 || mineB.Broadcasts[0].ID != b.ID {
		t.Fatalf("village lists: %+v %+v", mine, mineB)
	}
	var v api.Village
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/"+beicun, bei, nil), &v)
	if v.Name != "北村" || v.Device != "manual" {
		t.Fatalf("village %+v", v)
	}
	var dongs struct{ Schedules []api.Schedule }
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101001001/schedules", dong, nil), &dongs)
	if len(dongs.Schedules) != 0 {
		t.Fatalf("东村 sees %+v", dongs.Schedules)
	}

	confirm := func(tok, village string, body map[string]any) resp {
		return e.do("POST", "/api/v1/villages/"+village+"/confirmations", tok, body)
	}
	occText := occ.Format(time.RFC3339)
	bad := []struct {
		name    string
		tok     string
		village string
		body    map[string]any
		status  int
		msg     string
		reason  string // what the console translates
	}{
		{"another village's account", dong, beicun, map[string]any{"broadcast_id": b.ID}, 403, "its own village (110101001001)", api.ReasonOtherVillage},
		{"an operator", e.staff, beicun, map[string]any{"broadcast_id": b.ID}, 403, "needs admin or village", api.ReasonForbidden},
		{"a village with a box", dong, "110101001001", map[string]any{"broadcast_id": b.ID}, 409, "has a box, which reports what it played by itself", api.ReasonConfirmHasBox},
		{"neither", bei, beicun, map[string]any{"note": "x"}, 400, "schedule_id: give either", api.ReasonConfirmWhich},
		{"both", bei, beicun, map[string]any{"schedule_id": sc.ID, "occurrence": occText, "broadcast_id": b.ID}, 400, "schedule_id: give either", api.ReasonConfirmWhich},
		{"not yet played", bei, beicun, map[string]any{"schedule_id": sc.ID, "occurrence": occText}, 400, "occurrence: has not begun yet", api.ReasonOccurrenceNotYet},
		{"not an occurrence", bei, beicun, map[string]any{"schedule_id": sc.ID, "occurrence": e.in(3 * time.Hour)}, 400, "is not an occurrence", api.ReasonNotOccurrence},
		{"no occurrence", bei, beicun, map[string]any{"schedule_id": sc.ID}, 400, "occurrence: give the start", api.ReasonOccurrenceRequired},
		{"occurrence of a broadcast", bei, beicun, map[string]any{"broadcast_id": b.ID, "occurrence": occText}, 400, "occurrence: goes with schedule_id", api.ReasonConfirmWhich},
		{"played in the future", bei, beicun, map[string]any{"broadcast_id": b.ID, "played_at": e.in(time.Hour)}, 400, "played_at: is in the future", api.ReasonPlayedInFuture},
		{"malformed time", bei, beicun, map[string]any{"broadcast_id": b.ID, "played_at": "now"}, 400, "played_at: ", api.ReasonTimeInvalid},
		{"unknown broadcast", bei, beicun, map[string]any{"broadcast_id": 999}, 400, "broadcast_id: there is no broadcast", api.ReasonBroadcastNotFound},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got := confirm(tt.tok, tt.village, tt.body)
			if b := got.errBody(t).Error; got.Status != tt.status || !strings.Contains(b.Message, tt.msg) || b.Reason != tt.reason {
				t.Fatalf("%d %s, want %d with the reason %s", got.Status, got.Body, tt.status, tt.reason)
			}
		})
	}

	e.clk.Advance(2 * time.Hour)
	var c api.Confirmation
	e.must(http.StatusCreated, confirm(bei, beicun, map[string]any{"schedule_id": sc.ID, "occurrence": occText, "played_at": occ.Add(time.Minute).Format(time.RFC3339), "note": "大喇叭播了两遍"}), &c)
	if c.CreatedBy != "beicun" || !c.Occurrence.Equal(occ) || !c.PlayedAt.Equal(occ.Add(time.Minute)) {
		t.Fatalf("confirmation %+v", c)
	}
	if got := confirm(bei, beicun, map[string]any{"schedule_id": sc.ID, "occurrence": occText}); got.Status != http.StatusConflict || !strings.Contains(string(got.Body), "already confirmed") ||
		got.errBody(t).Error.Reason != api.ReasonAlreadyConfirmed || got.errBody(t).Error.Params["played_at"] != occ.Add(time.Minute).UTC().Format(time.RFC3339) {
		t.Fatalf("twice: %d %s", got.Status, got.Body)
	}
	e.must(http.StatusCreated, confirm(e.admin, beicun, map[string]any{"broadcast_id": b.ID, "note": "电话确认"}), nil)

	var cov api.Coverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/schedules/%d/coverage", sc.ID), e.staff, nil), &cov)
	bv := cov.Villages[1]
	if bv.Code != beicun || bv.Status != "played" || !bv.ConfirmedByHand || bv.ConfirmedBy != "beicun" || bv.Reason != "大喇叭播了两遍" {
		t.Fatalf("confirmed village %+v", bv)
	}
	if cov.Played != 1 || cov.PlayedByHand != 1 || cov.PlayedByBox != 0 || cov.Missed != 1 || cov.AwaitingConfirmation != 0 {
		t.Fatalf("counts %+v", cov.Counts)
	}
	var bcov api.BroadcastCoverage
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/broadcasts/%d/coverage", b.ID), e.staff, nil), &bcov)
	if bcov.Played != 1 || bcov.PlayedByHand != 1 || bcov.Villages[1].ConfirmedBy != "admin" {
		t.Fatalf("broadcast coverage %+v", bcov)
	}
	if got := e.getBroadcast(b.ID); got.Progress.Confirmed != 1 {
		t.Fatalf("progress %+v", got.Progress)
	}
	if log := e.auditLog("?action=confirmation.create"); !reflect.DeepEqual(log, []string{
		"admin confirmation.create village/" + beicun, "beicun confirmation.create village/" + beicun,
	}) {
		t.Fatalf("audit %v", log)
	}
}

func TestBoxConfig(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	viewer := e.token("viewer", "viewer", "")
	dong := e.token("dongcun", "village", "110101001001")
	town := "/api/v1/townships/" + url.PathEscape("东镇") + "/config"

	body := map[string]any{"quiet_hours": []map[string]string{{"from": "22:00", "to": "06:30"}, {"from": "12:00", "to": "13:30"}}, "volume": 70, "timezone": "Asia/Shanghai"}
	var got api.Settings
	e.must(http.StatusOK, e.do("PUT", town, e.admin, body), &got)
	wantCfg := api.BoxConfig{QuietHours: []playlists.QuietWindow{{From: "22:00", To: "06:30"}, {From: "12:00", To: "13:30"}}, Volume: 70, Timezone: "Asia/Shanghai"}
	if got.Scope != "township" || got.Name != "东镇" || !reflect.DeepEqual(got.Groups, []api.Group{"t/110101001"}) || got.UpdatedBy != "admin" {
		t.Fatalf("config %+v", got)
	}
	if len(e.pub.configs) != 1 || !reflect.DeepEqual(e.pub.configs[0], sentConfig{"t/110101001", wantCfg}) {
		t.Fatalf("published %+v", e.pub.configs)
	}
	var read api.Settings
	e.must(http.StatusOK, e.do("GET", town, viewer, nil), &read)
	if !reflect.DeepEqual(read, got) {
		t.Fatalf("read %+v", read)
	}

	e.must(http.StatusOK, e.do("PUT", "/api/v1/villages/110101001002/config", e.admin, map[string]any{"volume": 40}), &got)
	if !reflect.DeepEqual(e.pub.configs[1], sentConfig{"v/110101001002", api.BoxConfig{Volume: 40}}) {
		t.Fatalf("published %+v", e.pub.configs)
	}
	var unset api.Settings
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages/110101001001/config", dong, nil), &unset)
	if unset.UpdatedAt != nil || len(unset.QuietHours) != 0 || unset.Volume != 0 {
		t.Fatalf("never set %+v", unset)
	}

	bad := []struct {
		name, path string
		body       any
		status     int
		msg        string
		reason     string
	}{
		{"bad start", town, map[string]any{"quiet_hours": []map[string]string{{"from": "22:00", "to": "06:30"}, {"from": "25:00", "to": "06:00"}}}, 400, "quiet_hours[1].from: ", api.ReasonQuietHoursInvalid},
		{"empty window", town, map[string]any{"quiet_hours": []map[string]string{{"from": "22:00", "to": "22:00"}}}, 400, "quiet_hours[0].to: must differ", api.ReasonQuietHoursInvalid},
		{"volume", town, map[string]any{"volume": 101}, 400, "volume: ", api.ReasonConfigVolume},
		{"too many windows", town, map[string]any{"quiet_hours": func() []map[string]string {
			ws := make([]map[string]string, 25)
			for i := range ws {
				ws[i] = map[string]string{"from": fmt.Sprintf("%02d:00", i%24), "to": fmt.Sprintf("%02d:30", i%24)}
			}
			return ws
		}()}, 400, "quiet_hours: has 25 windows", api.ReasonConfigQuietTooMany},
		{"time zone", town, map[string]any{"timezone": "Mars/Olympus"}, 400, "timezone: ", api.ReasonTimezoneUnknown},
		{"misspelt", town, map[string]any{"quiet": []string{}}, 400, "quiet: is not a field", api.ReasonFieldUnknown},
		{"unknown township", "/api/v1/townships/" + url.PathEscape("西镇") + "/config", map[string]any{"volume": 50}, 404, "西镇", api.ReasonTownshipUnknown},
		{"village without a box", "/api/v1/villages/110101002002/config", map[string]any{"volume": 50}, 409, "has no box", api.ReasonVillageNoBox},
		{"unknown village", "/api/v1/villages/110101009999/config", map[string]any{"volume": 50}, 404, "no village", api.ReasonVillageUnknown},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do("PUT", tt.path, e.admin, tt.body)
			if b := got.errBody(t).Error; got.Status != tt.status || !strings.Contains(b.Message, tt.msg) || b.Reason != tt.reason {
				t.Fatalf("%d %s, want %d with the reason %s", got.Status, got.Body, tt.status, tt.reason)
			}
		})
	}
	if len(e.pub.configs) != 2 {
		t.Fatalf("refused settings were published: %+v", e.pub.configs)
	}

	e.pub.fail = errors.New("broker down")
	if got := e.do("PUT", town, e.admin, body); got.Status != http.StatusAccepted || got.Header.Get("X-Cunxiang-Delivery") != "pending" {
		t.Fatalf("settings the broker did not take yet: %d %s", got.Status, got.Body)
	}
	e.pub.fail = nil
	if err := e.pub.Deliver(context.Background(), store.OutboxConfig, store.ConfigRef(store.ScopeTownship, "东镇")); err != nil || len(e.pub.configs) != 3 {
		t.Fatalf("kept settings not sent when the broker came back: %v %+v", err, e.pub.configs)
	}
	if log := e.auditLog("?action=config.put"); !reflect.DeepEqual(log, []string{
		"admin config.put township/东镇", "admin config.put village/110101001002", "admin config.put township/东镇",
	}) {
		t.Fatalf("audit %v", log)
	}
}

func TestUsersAndLogin(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)

	bad := []struct {
		body  map[string]string
		field string
	}{
		{map[string]string{"username": "li", "role": "staff", "password": "long enough!"}, "role"},
		{map[string]string{"username": "li", "role": "viewer", "password": "short"}, "password"},
		{map[string]string{"username": "li", "role": "village", "password": "long enough!"}, "village"},
		{map[string]string{"username": "", "role": "viewer", "password": "long enough!"}, "username"},
	}
	for _, tt := range bad {
		got := e.do("POST", "/api/v1/users", e.admin, tt.body)
		if got.Status != 400 || !strings.HasPrefix(got.errBody(t).Error.Message, tt.field+": ") {
			t.Fatalf("%v: %d %s", tt.body, got.Status, got.Body)
		}
	}
	var u api.User
	e.must(http.StatusCreated, e.do("POST", "/api/v1/users", e.admin, map[string]string{"username": "Li", "display_name": "李明", "role": "operator", "password": "correct horse"}), &u)
	if u.Username != "li" || u.Role != "operator" || u.Disabled || strings.Contains(fmt.Sprint(u), "horse") {
		t.Fatalf("user %+v", u)
	}
	if got := e.do("POST", "/api/v1/users", e.admin, map[string]string{"username": "li", "role": "viewer", "password": "correct horse"}); got.Status != http.StatusConflict {
		t.Fatalf("duplicate: %d %s", got.Status, got.Body)
	}

	got := e.do("POST", "/api/v1/login", "", map[string]string{"username": "li", "password": "wrong horse"})
	if got.Status != 401 || got.errBody(t).Error.Message != "wrong username or password" {
		t.Fatalf("wrong password: %d %s", got.Status, got.Body)
	}
	var l api.Login
	e.must(http.StatusOK, e.do("POST", "/api/v1/login", "", map[string]string{"username": "LI", "password": "correct horse"}), &l)
	if !l.ExpiresAt.Equal(t0.Add(12*time.Hour)) || l.User.ID != u.ID || l.Token == "" {
		t.Fatalf("login %+v", l)
	}
	var me api.Me
	e.must(http.StatusOK, e.do("GET", "/api/v1/me", l.Token, nil), &me)
	if me.Name != "li" || me.Role != "operator" || me.UserID != u.ID || me.ExpiresAt == nil {
		t.Fatalf("me %+v", me)
	}
	var toks struct{ Tokens []api.Token }
	e.must(http.StatusOK, e.do("GET", "/api/v1/tokens", e.admin, nil), &toks)
	if last := toks.Tokens[len(toks.Tokens)-1]; last.UserID != u.ID || last.ExpiresAt == nil {
		t.Fatalf("tokens %+v", toks.Tokens)
	}
	e.must(http.StatusNoContent, e.do("POST", "/api/v1/logout", l.Token, nil), nil)
	if got := e.do("GET", "/api/v1/me", l.Token, nil); got.Status != 401 {
		t.Fatalf("after logout: %d %s", got.Status, got.Body)
	}

	// Sessions expire; disabling a user ends theirs at once.
	e.must(http.StatusOK, e.do("POST", "/api/v1/login", "", map[string]string{"username": "li", "password": "correct horse"}), &l)
	e.clk.Advance(12 * time.Hour)
	if got := e.do("GET", "/api/v1/me", l.Token, nil); got.Status != 401 || !strings.Contains(string(got.Body), "expired") {
		t.Fatalf("expired session: %d %s", got.Status, got.Body)
	}
	e.must(http.StatusOK, e.do("POST", "/api/v1/login", "", map[string]string{"username": "li", "password": "correct horse"}), &l)
	var changed api.User
	e.must(http.StatusOK, e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", u.ID), e.admin, map[string]any{"disabled": true, "password": "battery staple"}), &changed)
	if !changed.Disabled {
		t.Fatalf("changed %+v", changed)
	}
	if got := e.do("GET", "/api/v1/me", l.Token, nil); got.Status != 401 {
		t.Fatalf("session of a disabled user: %d %s", got.Status, got.Body)
	}
	if got := e.do("POST", "/api/v1/login", "", map[string]string{"username": "li", "password": "battery staple"}); got.Status != 401 || !strings.Contains(string(got.Body), "disabled") {
		t.Fatalf("login when disabled: %d %s", got.Status, got.Body)
	}
	e.must(http.StatusNoContent, e.do("DELETE", fmt.Sprintf("/api/v1/users/%d", u.ID), e.admin, nil), nil)
	var users struct{ Users []api.User }
	e.must(http.StatusOK, e.do("GET", "/api/v1/users", e.admin, nil), &users)
	if len(users.Users) != 0 {
		t.Fatalf("users %+v", users)
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/users?deleted=true", e.admin, nil), &users)
	if len(users.Users) != 1 || users.Users[0].DeletedAt == nil {
		t.Fatalf("deleted users %+v", users)
	}

	// Village tokens need their village; the first admin token can go once an admin user exists.
	if got := e.do("POST", "/api/v1/tokens", e.admin, map[string]string{"name": "board", "role": "village"}); got.Status != 400 || !strings.HasPrefix(got.errBody(t).Error.Message, "village: ") {
		t.Fatalf("village token without village: %d %s", got.Status, got.Body)
	}
	if got := e.do("POST", "/api/v1/logout", e.admin, nil); got.Status != http.StatusConflict || got.errBody(t).Error.Code != cx.ECONFLICT {
		t.Fatalf("logging out the last admin token: %d %s", got.Status, got.Body)
	}
	boss := e.user("boss", "admin", "")
	e.must(http.StatusNoContent, e.do("POST", "/api/v1/logout", e.admin, nil), nil)
	if got := e.do("GET", "/api/v1/users", e.admin, nil); got.Status != 401 {
		t.Fatalf("first admin token after logout: %d", got.Status)
	}

	var entries struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit", boss, nil), &entries)
	var actions []string
	for _, a := range entries.Entries {
		if strings.Contains(a.Detail, "horse") || strings.Contains(a.Detail, "staple") {
			t.Fatalf("a password reached the audit log: %+v", a)
		}
		if a.Action != "denied" {
			actions = append(actions, a.Actor+" "+a.Action+" "+a.Object)
		}
	}
	wantActions := []string{
		"admin logout token/1",
		"boss login user/2",
		"admin user.create user/2",
		"admin user.delete user/1",
		"li login.failed user",
		"admin user.update user/1",
		"li login user/1",
		"li login user/1",
		"li logout token/" + fmt.Sprint(me.TokenID),
		"li login user/1",
		"li login.failed user",
		"admin user.create user/1",
		"admin village.import villages",
	}
	if !reflect.DeepEqual(actions, wantActions) {
		t.Fatalf("audit:\n%s", strings.Join(actions, "\n"))
	}
}

func TestAuditQuery(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	e.clk.Advance(time.Hour)
	e.do("GET", "/api/v1/audit", e.staff, nil) // denied, an hour later
	for q, want := range map[string][]string{
		"?actor=clerk":                         {"clerk denied GET /api/v1/audit"},
		"?action=village":                      {"admin village.import villages"},
		"?object=villages":                     {"admin village.import villages"},
		"?since=2026-03-01T08:30:00%2B08:00":   {"clerk denied GET /api/v1/audit"},
		"?until=2026-03-01T08:30:00+08:00":     {"admin village.import villages"},
		"?actor=clerk&action=village":          nil,
		"?since=2026-03-01T09:00:00Z&limit=10": nil,
	} {
		if got := e.auditLog(q); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	for _, q := range []string{"?since=yesterday", "?until=2026-03-01"} {
		got := e.do("GET", "/api/v1/audit"+q, e.admin, nil)
		if got.Status != 400 || !strings.Contains(got.errBody(t).Error.Message, "is not a time") {
			t.Errorf("%s: %d %s", q, got.Status, got.Body)
		}
	}
}
