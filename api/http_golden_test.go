package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/apitest"
	"github.com/cunxiang/cunxiang/playlists"
)

// An HTTP golden: a body of the HTTP API, built from fixed values of the Go
// type both the controller and api/client use, and the operations it is an
// example of. Each operation is "METHOD /path request" for a request body
// or "METHOD /path STATUS" for an answer.
type httpGolden struct {
	name   string
	value  any // nil for a golden TestGolden owns in testdata/ (shared with MQTT)
	decode func(tb testing.TB, data []byte) []byte
	ops    []string
}

func hg[T any](name string, v T, ops ...string) httpGolden {
	return httpGolden{name: name, value: v, ops: ops, decode: func(tb testing.TB, data []byte) []byte {
		tb.Helper()
		var t T
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			tb.Fatalf("decode as %T: %v", t, err)
		}
		return indentJSON(tb, t)
	}}
}

// shared names a golden of testdata/ that TestGolden writes and round-trips.
func shared(name string, ops ...string) httpGolden { return httpGolden{name: name, ops: ops} }

func httpGoldens() []httpGolden {
	return []httpGolden{
		// Boxes.
		shared("enroll_request", "POST /api/v1/enroll request"),
		shared("enroll_response", "POST /api/v1/enroll 200"),
		shared("clock_response", "GET /api/v1/clock 200"),
		shared("error_body", "POST /api/v1/villages/import 422", "POST /api/v1/login 400"),
		hg("broadcast_check", httpBroadcastCheck(), "GET /api/v1/box/broadcasts/{id} 200"),

		// Villages.
		hg("village_list", api.VillageList{Villages: []api.Village{httpVillage(), httpManualVillage()}}, "GET /api/v1/villages 200"),
		hg("village", httpVillage(), "GET /api/v1/villages/{code} 200", "PATCH /api/v1/villages/{code} 200"),
		hg("village_revoked", func() api.Village {
			v := httpVillage()
			v.Enrolled, v.Revoked, v.Presence = ptr(false), true, "never"
			return v
		}(), "POST /api/v1/villages/{code}/revoke 200"),
		hg("village_change", httpVillageChange(), "PATCH /api/v1/villages/{code} request"),
		hg("import_counts", api.ImportCounts{Created: 79, Updated: 2, Total: 81}, "POST /api/v1/villages/import 200"),
		hg("enroll_token", httpEnrollToken(), "POST /api/v1/villages/{code}/enroll 201", "POST /api/v1/villages/{code}/replace 201"),
		hg("village_schedules", httpVillageSchedules(), "GET /api/v1/villages/{code}/schedules 200"),
		hg("village_broadcasts", httpVillageBroadcasts(), "GET /api/v1/villages/{code}/broadcasts 200"),
		hg("village_events", httpVillageEvents(), "GET /api/v1/villages/{code}/events 200"),
		hg("confirmation_request", httpConfirmationRequest(), "POST /api/v1/villages/{code}/confirmations request"),
		hg("confirmation_broadcast_request", api.ConfirmationRequest{BroadcastID: 31}, "POST /api/v1/villages/{code}/confirmations request"),
		hg("confirmation", httpConfirmation(), "POST /api/v1/villages/{code}/confirmations 201"),
		hg("config_request", httpBoxConfigRequest(), "PUT /api/v1/villages/{code}/config request", "PUT /api/v1/townships/{name}/config request"),
		hg("settings", httpSettings(), "GET /api/v1/townships/{name}/config 200", "PUT /api/v1/townships/{name}/config 200",
			"GET /api/v1/villages/{code}/config 200", "PUT /api/v1/villages/{code}/config 200",
			"PUT /api/v1/townships/{name}/config 202", "PUT /api/v1/villages/{code}/config 202"),
		hg("settings_unset", api.Settings{Scope: "village", Name: village, QuietHours: []playlists.QuietWindow{}, Groups: []api.Group{api.Group("v/" + village)}},
			"GET /api/v1/villages/{code}/config 200"),

		// Audio and playlists.
		hg("audio_list", api.AudioList{Audio: []api.Audio{httpAudio(), httpOldAudio()}}, "GET /api/v1/audio 200"),
		hg("audio", httpAudio(), "GET /api/v1/audio/{id} 200", "PATCH /api/v1/audio/{id} 200"),
		hg("audio_uploaded", httpUploaded(), "POST /api/v1/audio 201", "POST /api/v1/audio 200", "POST /api/v1/audio/tts 201", "POST /api/v1/audio/tts 200"),
		hg("audio_change", api.AudioChange{Title: ptr("防汛通知（新）")}, "PATCH /api/v1/audio/{id} request"),
		hg("tts_request", httpTTSRequest(), "POST /api/v1/audio/tts request"),
		hg("playlist_request", httpPlaylistRequest(), "POST /api/v1/playlists request"),
		hg("playlist", httpPlaylist(), "POST /api/v1/playlists 201", "GET /api/v1/playlists/{id} 200", "PATCH /api/v1/playlists/{id} 200"),
		hg("playlist_list", api.PlaylistList{Playlists: []api.Playlist{httpPlaylist()}}, "GET /api/v1/playlists 200"),
		hg("playlist_change", httpPlaylistChange(), "PATCH /api/v1/playlists/{id} request"),

		// Schedules.
		hg("schedule_request", httpScheduleRequest(), "POST /api/v1/schedules request"),
		hg("schedule_once_request", httpOnceRequest(), "POST /api/v1/schedules request"),
		hg("schedule", httpSchedule(), "POST /api/v1/schedules 201", "POST /api/v1/schedules 202", "GET /api/v1/schedules/{id} 200"),
		hg("schedule_withdrawn", httpWithdrawn(), "DELETE /api/v1/schedules/{id} 200", "DELETE /api/v1/schedules/{id} 202", "GET /api/v1/schedules/{id} 200"),
		hg("schedule_list", api.ScheduleList{Schedules: []api.Schedule{httpSchedule(), httpWithdrawn()}}, "GET /api/v1/schedules 200"),
		hg("coverage", httpCoverage(), "GET /api/v1/schedules/{id}/coverage 200"),
		hg("calendar", httpCalendar(), "GET /api/v1/calendar 200"),

		// Broadcasts and alerts.
		hg("broadcast_request", httpBroadcastRequest(), "POST /api/v1/broadcasts request"),
		hg("broadcast_text_request", httpTextBroadcastRequest(), "POST /api/v1/broadcasts request"),
		hg("broadcast", httpBroadcast(), "POST /api/v1/broadcasts 202", "GET /api/v1/broadcasts/{id} 200",
			"POST /api/v1/broadcasts/{id}/approve 200", "POST /api/v1/broadcasts/{id}/resend 200"),
		hg("broadcast_rejected", httpRejected(), "POST /api/v1/broadcasts/{id}/reject 200", "GET /api/v1/broadcasts/{id} 200"),
		hg("broadcast_cancelled", httpCancelled(), "DELETE /api/v1/broadcasts/{id} 200"),
		hg("broadcast_list", api.BroadcastList{Broadcasts: []api.Broadcast{httpBroadcast(), httpRejected()}}, "GET /api/v1/broadcasts 200"),
		hg("reject_request", api.RejectRequest{Reason: "范围太大"}, "POST /api/v1/broadcasts/{id}/reject request"),
		hg("broadcast_coverage", httpBroadcastCoverage(), "GET /api/v1/broadcasts/{id}/coverage 200"),
		hg("cap_result", httpCAPResult(), "POST /api/v1/alerts/cap 202", "POST /api/v1/alerts/cap 200"),
		hg("cap_result_cancel", api.CAPResult{Sender: "cap@weather.example.cn", Identifier: "CN-411421-2026-0301-02", MsgType: "Cancel",
			Duplicate: true, Cancelled: []int64{}, Note: ""}, "POST /api/v1/alerts/cap 200"),
		hg("coverage_report", httpCoverageReport(), "GET /api/v1/reports/coverage 200"),

		// People.
		hg("login_request", httpLoginRequest(), "POST /api/v1/login request"),
		hg("login", httpLogin(), "POST /api/v1/login 200"),
		hg("me", httpMe(), "GET /api/v1/me 200"),
		hg("password_change", httpPasswordChange(), "POST /api/v1/me/password request"),
		hg("user_request", httpUserRequest(), "POST /api/v1/users request"),
		hg("user", httpVillageUser(), "POST /api/v1/users 201", "PATCH /api/v1/users/{id} 200"),
		hg("user_change", httpUserChange(), "PATCH /api/v1/users/{id} request"),
		hg("user_list", api.UserList{Users: []api.User{httpUser(), httpVillageUser()}}, "GET /api/v1/users 200"),
		hg("token_request", httpTokenRequest(), "POST /api/v1/tokens request"),
		hg("token", httpToken(), "POST /api/v1/tokens 201"),
		hg("token_list", api.TokenList{Tokens: []api.Token{func() api.Token { t := httpToken(); t.Token = ""; return t }(), httpSession()}}, "GET /api/v1/tokens 200"),
		hg("audit_log", httpAuditLog(), "GET /api/v1/audit 200"),
		hg("login_throttles", httpThrottles(), "GET /api/v1/login-throttles 200"),

		// The upper platform (the console's 上级平台 page).
		hg("ebd_status", httpEBDStatus(), "GET /api/v1/ebd/status 200"),
		hg("ebd_inbound", httpEBDInbound(), "GET /api/v1/ebd/inbound 200"),
		hg("ebd_outbound", httpEBDOutbound(), "GET /api/v1/ebd/outbound 200"),
		hg("ebd_terminals", api.EBDTerminalList{Terminals: []api.EBDTerminal{httpEBDTerminal(), func() api.EBDTerminal {
			t := httpEBDTerminal()
			t.Village, t.Name, t.Township, t.Derived, t.EBRID, t.Assigned = village2, "王营村", "东镇", "060141142110100301", "43414211010030103010201", true
			return t
		}()}}, "GET /api/v1/ebd/terminals 200"),
		hg("ebd_terminal", httpEBDTerminal(), "PUT /api/v1/ebd/terminals/{code} 200"),
		hg("ebd_terminal_change", api.EBDTerminalChange{EBRID: "43414211002010103010201"}, "PUT /api/v1/ebd/terminals/{code} request"),
		hg("login_throttles_cleared", api.ThrottlesCleared{Cleared: 2}, "DELETE /api/v1/login-throttles 200"),
	}
}

func httpGoldenPath(name string) string { return filepath.Join("testdata", "http", name+".json") }

// indentJSON is how an HTTP golden is written: indented, for people to read.
func indentJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// readHTTPGolden returns an HTTP golden's bytes (shared ones from testdata/).
func readHTTPGolden(tb testing.TB, g httpGolden) []byte {
	tb.Helper()
	if g.value == nil {
		return readGolden(tb, g.name)
	}
	b, err := os.ReadFile(httpGoldenPath(g.name))
	if err != nil {
		tb.Fatalf("%v (run go test ./api -run TestHTTPGolden -update to create it)", err)
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

var (
	contractOnce sync.Once
	contract     *apitest.Contract
	contractErr  error
)

// loadContract loads and validates openapi.yaml once.
func loadContract(tb testing.TB) *apitest.Contract {
	tb.Helper()
	contractOnce.Do(func() { contract, contractErr = apitest.Load("openapi.yaml") })
	if contractErr != nil {
		tb.Fatal(contractErr)
	}
	return contract
}

// checkAgainst validates data as the body of op ("METHOD /path request"
// or "METHOD /path STATUS").
func checkAgainst(c *apitest.Contract, op string, data []byte) error {
	f := strings.Fields(op)
	if len(f) != 3 {
		return fmt.Errorf("%q is not METHOD /path request|STATUS", op)
	}
	return c.Check(f[0], f[1], f[2], data)
}

// TestHTTPGolden pins every HTTP body: the fixed values encode to the
// file's bytes, the file decodes (refusing unknown fields) into the same
// Go type and encodes back to the same bytes, and the body is valid for
// the schema openapi.yaml gives each operation it is an example of. So
// the document, the server's types and the client cannot drift apart.
// After a deliberate change, run
//
//	go test ./api -run 'TestGolden|TestHTTPGolden' -update
//
// and review the diff of testdata/.
func TestHTTPGolden(t *testing.T) {
	doc := loadContract(t)
	if *update {
		if err := os.MkdirAll(filepath.Join("testdata", "http"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range httpGoldens() {
		t.Run(g.name, func(t *testing.T) {
			if g.value != nil {
				want := indentJSON(t, g.value)
				if *update {
					if err := os.WriteFile(httpGoldenPath(g.name), append(want, '\n'), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				data := readHTTPGolden(t, g)
				if !bytes.Equal(data, want) {
					t.Errorf("encoding changed (rerun with -update if intended)\n got %s\nwant %s", want, data)
				}
				if got := g.decode(t, data); !bytes.Equal(got, data) {
					t.Errorf("round trip changed the body\n got %s\nwant %s", got, data)
				}
			}
			data := readHTTPGolden(t, g)
			for _, op := range g.ops {
				if err := checkAgainst(doc, op, data); err != nil {
					t.Errorf("testdata/%s does not match openapi.yaml: %v", g.name, err)
				}
			}
		})
	}
}

// TestHTTPGoldensCoverTheDocument: every JSON request body and every JSON
// answer of a 2xx status that openapi.yaml documents has a golden example.
func TestHTTPGoldensCoverTheDocument(t *testing.T) {
	doc := loadContract(t)
	have := map[string]bool{}
	for _, g := range httpGoldens() {
		for _, op := range g.ops {
			have[op] = true
		}
	}
	var missing []string
	for path, item := range doc.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value.Content.Get("application/json") != nil {
				if k := method + " " + path + " request"; !have[k] {
					missing = append(missing, k)
				}
			}
			for status, r := range op.Responses.Map() {
				if status[0] == '2' && r.Value != nil && r.Value.Content.Get("application/json") != nil {
					if k := method + " " + path + " " + status; !have[k] {
						missing = append(missing, k)
					}
				}
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("JSON bodies of openapi.yaml with no golden example in http_golden_test.go:\n  %s", strings.Join(missing, "\n  "))
	}
}

// TestHTTPGoldenNoStrays fails on a file of testdata/http/ no golden
// writes, so a renamed body does not leave a stale example behind.
func TestHTTPGoldenNoStrays(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "http", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, g := range httpGoldens() {
		if g.value != nil {
			known = append(known, httpGoldenPath(g.name))
		}
	}
	var stray []string
	for _, f := range files {
		if !slices.Contains(known, f) {
			stray = append(stray, f)
		}
	}
	if len(stray) > 0 {
		t.Errorf("files of testdata/http no golden writes: %s", strings.Join(stray, ", "))
	}
}

// TestOpenAPIHasNoNullKeys catches a flow mapping whose unquoted text has
// a comma ({ description: a, b }): YAML reads "b" as a key with no value,
// and the description loses its end. openapi3 does not notice.
func TestOpenAPIHasNoNullKeys(t *testing.T) {
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if x == nil {
					t.Errorf("%s/%s has no value (an unquoted comma in a { } mapping?)", at, k)
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for i, x := range v {
				walk(x, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(doc, "")
}

// TestHTTPGoldenFailsOnDrift shows the check is not vacuous: a body with a
// renamed field, or missing a required one, or a wrong enum value, fails.
func TestHTTPGoldenFailsOnDrift(t *testing.T) {
	doc := loadContract(t)
	good := indentJSON(t, httpBroadcast())
	if err := checkAgainst(doc, "GET /api/v1/broadcasts/{id} 200", good); err != nil {
		t.Fatalf("the good body fails: %v", err)
	}
	for _, tt := range []struct{ name, from, to string }{
		{"renamed field", `"needs_approval"`, `"needs_approve"`},
		{"renamed nested field", `"played":`, `"played_out":`},
		{"value outside the enum", `"state": "in_progress"`, `"state": "playing"`},
		{"wrong type", `"severity": 2`, `"severity": "2"`},
		{"not a time", `"expires_at": "2026-03-01T02:02:03Z"`, `"expires_at": "tomorrow"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := bytes.Replace(good, []byte(tt.from), []byte(tt.to), 1)
			if bytes.Equal(bad, good) {
				t.Fatalf("%s not in the body", tt.from)
			}
			if err := checkAgainst(doc, "GET /api/v1/broadcasts/{id} 200", bad); err == nil {
				t.Errorf("%s passed", tt.name)
			} else {
				t.Logf("%s: %v", tt.name, err)
			}
		})
	}
}
