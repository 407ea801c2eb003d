package audit_test

import (
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

func TestFill(t *testing.T) {
	for _, tt := range []struct {
		name, tmpl string
		p          audit.Params
		want       string
	}{
		{"plain", "expires {expires_at}", audit.Params{"expires_at": "2026-03-01T00:00:00Z"}, "expires 2026-03-01T00:00:00Z"},
		{"optional kept", "[for a replacement box; {replacement?}]expires {x}", audit.Params{"replacement": "yes", "x": "1"}, "for a replacement box; expires 1"},
		{"optional dropped", "[for a replacement box; {replacement?}]expires {x}", audit.Params{"x": "1"}, "expires 1"},
		{"one of two missing", "[schedule {schedule} at {occurrence_at}] by hand", audit.Params{"schedule": "3"}, "by hand"},
		{"separators at the ends dropped", "[a {a}, ][b {b}, ][c {c}]", audit.Params{"a": "1", "b": "2"}, "a 1, b 2"},
		{"full-width too", "[全部来源{all?}][用户 {user}][，来源 {source}]：已解除 {n} 条", audit.Params{"source": "10.0.0.1", "n": "2"}, "来源 10.0.0.1：已解除 2 条"},
		{"values are not templates", "{a} [{b}]", audit.Params{"a": "[{b}]", "b": "{a}"}, "[{b}] {a}"},
		{"missing outside a part", "{a}|{b}", audit.Params{"a": "1"}, "1|"},
		{"nil params", "[x {x}]fixed", nil, "fixed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := audit.Fill(tt.tmpl, tt.p); got != tt.want {
				t.Errorf("Fill(%q, %v) = %q, want %q", tt.tmpl, tt.p, got, tt.want)
			}
		})
	}
}

// TestActions: every action has a distinct name and fills its template;
// the old English lines the API's users know come out as before.
func TestActions(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range audit.Actions() {
		if a.String() == "" || seen[a.String()] {
			t.Errorf("action %q is empty or defined twice", a)
		}
		seen[a.String()] = true
	}
	if len(seen) < 35 {
		t.Fatalf("only %d actions", len(seen))
	}
	for _, tt := range []struct {
		a    audit.Action
		p    audit.Params
		want string
	}{
		{audit.AudioRename, audit.Params{"title_from": "1", "title_to": "水库放水通知"}, `"1" -> "水库放水通知"`},
		{audit.VillageUpdate, audit.Params{"name_from": "东村", "name_to": "东风村", "lat_from": "39.9", "lat_to": "39.95", "device_from": "agent", "device_to": "manual"},
			`name "东村" -> "东风村", lat 39.9 -> 39.95, device agent -> manual`},
		{audit.VillageUpdate, audit.Params{"unchanged": "yes"}, "no change"},
		{audit.Login, audit.Params{"token": "5", "expires_at": "2026-03-01T00:00:00Z", "console": "yes"}, "console session token/5 until 2026-03-01T00:00:00Z"},
		{audit.Logout, audit.Params{}, ""},
		{audit.BroadcastCreate, audit.Params{"test": "yes", "priority": "emergency", "severity": "1", "event_type": "flood", "content": "洪水", "audio": "3",
			"groups": "all", "expires_at": "2026-03-01T00:00:00Z", "needs_approval": "yes"},
			`TEST emergency severity 1 flood, "洪水" (audio 3), groups all, expires 2026-03-01T00:00:00Z, needs approval`},
		{audit.CAPAlert, audit.Refusal(nil, cx.Invalid("info", "no info")), "refused: info: no info"},
	} {
		if got := tt.a.Detail(tt.p); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.a, got, tt.want)
		}
	}
	if (audit.Action{}).Detail(audit.Params{"x": "y"}) != "" {
		t.Error("the zero action has a detail")
	}
}
