package api_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

func TestDecodeEventBatch(t *testing.T) {
	ev := func(events string) string {
		return `{"v":1,"village":"411421100201","agent_version":"0.1.0","events":[` + events + `]}`
	}
	const ok = `{"seq":1,"type":"started","at":"2026-03-01T00:00:00Z"}`
	many := make([]string, api.MaxEventsPerBatch+1)
	for i := range many {
		many[i] = `{"seq":` + itoa(i+1) + `,"type":"received","at":"2026-03-01T00:00:00Z"}`
	}
	tests := []struct {
		name    string
		village string
		data    string
		ok      bool
	}{
		{"one event", village, ev(ok), true},
		{"golden", village, string(mustJSON(t, eventBatch())), true},
		{"a hundred", village, ev(strings.Join(many[:100], ",")), true},
		{"gaps between seqs are allowed", village, ev(ok + `,{"seq":9,"type":"finished","at":"2026-03-01T00:02:00Z"}`), true},
		{"reason of 500 bytes", village, ev(`{"seq":1,"type":"failed","at":"2026-03-01T00:00:00Z","reason":"` + strings.Repeat("x", 500) + `"}`), true},

		{"not JSON", village, `{"v":1,`, false},
		{"null", village, `null`, false},
		{"wrong version", village, strings.Replace(ev(ok), `"v":1`, `"v":2`, 1), false},
		{"no version", village, strings.Replace(ev(ok), `"v":1,`, ``, 1), false},
		{"another village's topic", "411421100202", ev(ok), false},
		{"empty village", "", strings.Replace(ev(ok), village, "", 1), false},
		{"village not a code", "abc", strings.Replace(ev(ok), village, "abc", 1), false},
		{"no events", village, ev(``), false},
		{"too many", village, ev(strings.Join(many, ",")), false},
		{"seq zero", village, ev(`{"seq":0,"type":"started","at":"2026-03-01T00:00:00Z"}`), false},
		{"negative seq", village, ev(`{"seq":-1,"type":"started","at":"2026-03-01T00:00:00Z"}`), false},
		{"seq repeated", village, ev(ok + "," + ok), false},
		{"seq out of order", village, ev(`{"seq":2,"type":"started","at":"2026-03-01T00:00:00Z"},` + ok), false},
		{"unknown type", village, ev(`{"seq":1,"type":"exploded","at":"2026-03-01T00:00:00Z"}`), false},
		{"no time", village, ev(`{"seq":1,"type":"started"}`), false},
		{"bad time", village, ev(`{"seq":1,"type":"started","at":"yesterday"}`), false},
		{"reason too long", village, ev(`{"seq":1,"type":"failed","at":"2026-03-01T00:00:00Z","reason":"` + strings.Repeat("x", 501) + `"}`), false},
		{"seq not a number", village, ev(`{"seq":"1","type":"started","at":"2026-03-01T00:00:00Z"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := api.DecodeEventBatch(tt.village, []byte(tt.data))
			if (err == nil) != tt.ok {
				t.Fatalf("DecodeEventBatch = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && b.Village != tt.village {
				t.Errorf("village %q", b.Village)
			}
		})
	}
}

func TestDecodePresence(t *testing.T) {
	const online = `{"v":1,"village":"411421100201","status":"online","at":"2026-03-01T00:01:00Z","clock_offset_ms":-1250}`
	tests := []struct {
		name    string
		village string
		data    string
		ok      bool
	}{
		{"online", village, online, true},
		{"offline", village, strings.Replace(online, "online", "offline", 1), true},
		{"golden", village, string(mustJSON(t, presence(api.Offline))), true},
		{"without a time (a bare Last Will)", village, `{"v":1,"village":"411421100201","status":"offline"}`, true},
		{"not JSON", village, `online`, false},
		{"wrong version", village, strings.Replace(online, `"v":1`, `"v":0`, 1), false},
		{"another village's topic", "411421100202", online, false},
		{"empty village", "", strings.Replace(online, village, "", 1), false},
		{"unknown status", village, strings.Replace(online, "online", "busy", 1), false},
		{"status in capitals", village, strings.Replace(online, "online", "ONLINE", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := api.DecodePresence(tt.village, []byte(tt.data))
			if (err == nil) != tt.ok {
				t.Fatalf("DecodePresence = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && p.Village != tt.village {
				t.Errorf("village %q", p.Village)
			}
		})
	}
}

func TestValidVillageCode(t *testing.T) {
	for _, tt := range []struct {
		code string
		ok   bool
	}{
		{"411421100201", true},
		{"41142110020", false},
		{"4114211002011", false},
		{"41142110020a", false},
		{"", false},
		{"４１１４２１１００２０１", false}, // full-width digits
	} {
		if got := api.ValidVillageCode(tt.code); got != tt.ok {
			t.Errorf("ValidVillageCode(%q) = %v", tt.code, got)
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}

// TestScheduleNotBeforeIsOptional: a schedule from an older controller has
// no not_before and no bound; one with it, read by an older box (which
// ignores unknown fields), keeps every other field.
func TestScheduleNotBeforeIsOptional(t *testing.T) {
	data, err := os.ReadFile("testdata/command_schedule_put.payload.json")
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(data), `,"not_before":"2026-03-01T14:04:00Z"`, "", 1)
	if old == string(data) {
		t.Fatal("the golden schedule has no not_before to remove")
	}
	var c api.Command
	if err := json.Unmarshal([]byte(old), &c); err != nil {
		t.Fatal(err)
	}
	if c.Schedule.Schedule.NotBefore != nil {
		t.Fatalf("not_before = %v from a payload without it", c.Schedule.Schedule.NotBefore)
	}
	var oldBox struct {
		Schedule struct {
			Schedule struct {
				ID        int64                 `json:"id"`
				Recurring *playlists.Recurrence `json:"recurring"`
			} `json:"schedule"`
		} `json:"schedule"`
	}
	if err := json.Unmarshal(data, &oldBox); err != nil || oldBox.Schedule.Schedule.ID != 7 || oldBox.Schedule.Schedule.Recurring == nil {
		t.Fatalf("an older box reads %+v, %v", oldBox, err)
	}
}
