package api_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Fixed values behind the golden files: change one and run
// `go test ./api -run TestGolden -update`.
var (
	// testKey signs every golden command. Ed25519 signing is
	// deterministic, so the same command always gives the same bytes.
	testKey = ed25519.NewKeyFromSeed([]byte("cunxiang-golden-test-signing-key"))
	testPub = testKey.Public().(ed25519.PublicKey)
	// otherKey is a key the boxes do not trust.
	otherKey = ed25519.NewKeyFromSeed([]byte("someone-else-entirely-not-us-key"))

	issued  = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // 08:00 in Shanghai
	expires = issued.Add(30 * 24 * time.Hour)
	// verifyAt is when the golden commands are verified: an hour after issue.
	verifyAt = issued.Add(time.Hour)

	topics = api.Topics{}
)

const (
	village  = "411421100201"
	township = "411421100"
)

func sha(c byte) string { return strings.Repeat(string(c), 64) }

// putCommand is a weekday schedule for one township.
func putCommand() api.Command {
	return api.Command{
		ID:        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Kind:      api.KindSchedulePut,
		Target:    api.TownshipGroup(township),
		Seq:       41,
		IssuedAt:  issued,
		ExpiresAt: expires,
		Schedule: &api.ScheduleState{
			Schedule: playlists.Schedule{
				ID:         7,
				PlaylistID: 3,
				Targets:    playlists.Targets{Townships: []string{"城关镇"}},
				Timezone:   "Asia/Shanghai",
				Recurring: &playlists.Recurrence{
					Times:       []string{"07:00", "18:30"},
					Weekdays:    []int{1, 2, 3, 4, 5},
					StartDate:   "2026-03-02",
					EndDate:     "2026-06-30",
					ExceptDates: []string{"2026-04-06", "2026-05-01"},
				},
				// Created at 22:04 the day before it starts (no bound on
				// its first day; it shows the field on the wire).
				NotBefore: ptrTime(time.Date(2026, 3, 1, 14, 4, 0, 0, time.UTC)),
			},
			Playlist: playlists.Playlist{
				ID:   3,
				Name: "防汛安全提醒",
				Items: []playlists.Item{
					{AudioID: 11, SHA256: sha('a'), DurationMS: 42500, Repeat: 2},
					{AudioID: 12, SHA256: sha('b'), DurationMS: 18000, Repeat: 1},
				},
				GapMS: 3000,
			},
		},
	}
}

// onceCommand is a one-off county-wide announcement.
func onceCommand() api.Command {
	at := time.Date(2026, 3, 5, 1, 30, 0, 0, time.UTC)
	return api.Command{
		ID:        "1a2b3c4d5e6f708192a3b4c5d6e7f809",
		Kind:      api.KindSchedulePut,
		Target:    api.GroupAll,
		Seq:       42,
		IssuedAt:  issued,
		ExpiresAt: expires,
		Schedule: &api.ScheduleState{
			Schedule: playlists.Schedule{
				ID:         8,
				PlaylistID: 4,
				Targets:    playlists.Targets{All: true},
				Timezone:   "Asia/Shanghai",
				OnceAt:     &at,
			},
			Playlist: playlists.Playlist{
				ID:    4,
				Name:  "春耕防火通知",
				Items: []playlists.Item{{AudioID: 13, SHA256: sha('c'), DurationMS: 65000, Repeat: 3}},
				GapMS: 5000,
			},
		},
	}
}

func withdrawCommand() api.Command {
	return api.Command{
		ID:        "2b3c4d5e6f708192a3b4c5d6e7f8091a",
		Kind:      api.KindScheduleWithdraw,
		Target:    api.TownshipGroup(township),
		Seq:       43,
		IssuedAt:  issued,
		ExpiresAt: expires,
		Withdraw:  &api.Withdrawal{ScheduleID: 7},
	}
}

func ackCommand() api.Command {
	return api.Command{
		ID:        "3c4d5e6f708192a3b4c5d6e7f8091a2b",
		Kind:      api.KindReportsAck,
		Target:    api.VillageGroup(village),
		Seq:       44,
		IssuedAt:  issued,
		ExpiresAt: expires,
		Ack:       &api.ReportsAck{Village: village, Seq: 6},
	}
}

// commandTopic is where c is published.
func commandTopic(c api.Command) string {
	if t, ok := liveCommandTopic(c); ok {
		return t
	}
	switch c.Kind {
	case api.KindSchedulePut:
		return topics.Schedule(c.Target, c.Schedule.Schedule.ID)
	case api.KindScheduleWithdraw:
		return topics.Schedule(c.Target, c.Withdraw.ScheduleID)
	}
	return topics.ReportsAck(c.Ack.Village)
}

func eventBatch() api.EventBatch {
	occ := time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return occ.Add(time.Duration(sec) * time.Second) }
	return api.EventBatch{
		V:       api.Version,
		Village: village,
		Version: "0.1.0",
		Events: []api.Event{
			{Seq: 1, Type: api.EventReceived, At: issued.Add(2 * time.Second), ScheduleID: 7},
			{Seq: 2, Type: api.EventDownloaded, At: issued.Add(9 * time.Second), AudioID: 11},
			{Seq: 3, Type: api.EventStarted, At: at(0), ScheduleID: 7, Occurrence: &occ},
			{Seq: 4, Type: api.EventFinished, At: at(152), ScheduleID: 7, Occurrence: &occ},
			{Seq: 5, Type: api.EventFailed, At: at(3600), ScheduleID: 7, Occurrence: &occ, AudioID: 12, Reason: "audio not downloaded"},
			{Seq: 6, Type: api.EventRejected, At: at(7200), Reason: "signature does not verify"},
		},
	}
}

func presence(status string) api.Presence {
	return api.Presence{V: api.Version, Village: village, Status: status, At: issued.Add(time.Minute), Version: "0.1.0", ClockOffsetMS: -1250}
}

func enrollRequest() api.EnrollRequest {
	return api.EnrollRequest{Village: village, Token: "enr_7Q2mX9vK4pL8sT3w", AgentVersion: "0.1.0"}
}

func enrollResponse() api.EnrollResponse {
	return api.EnrollResponse{
		Village:      village,
		MQTTUsername: "box-" + village,
		MQTTPassword: "pw_c2VjcmV0LWJ1dC1vbmx5LWluLXRlc3Rz",
		SigningKey:   testPub,
		TopicPrefix:  api.DefaultPrefix,
		Broker:       "tcp://192.168.10.2:1883",
		LastSeq:      41,
	}
}

func clockResponse() api.ClockResponse {
	return api.ClockResponse{Now: time.Date(2026, 3, 1, 0, 0, 0, 123000000, time.UTC)}
}

func errorBody() api.ErrorBody {
	return api.ErrorBody{Error: api.ErrorDetail{
		Code:    "invalid",
		Message: "3 rows of the village import are wrong",
		Details: []api.RowError{
			{Line: 4, Field: "code", Reason: "must be 12 digits"},
			{Line: 9, Field: "device", Reason: `must be "agent" or "manual"`},
			{Line: 17, Reason: "duplicate village 411421100203"},
		},
	}}
}

// sign signs c with key, failing the test on error.
func sign(tb testing.TB, key ed25519.PrivateKey, c api.Command) []byte {
	tb.Helper()
	b, err := api.Sign(key, c)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return b
}

// envelope signs arbitrary payload bytes, bypassing Sign's checks.
func envelope(tb testing.TB, key ed25519.PrivateKey, payload []byte) []byte {
	tb.Helper()
	b, err := json.Marshal(api.Envelope{Payload: payload, Sig: ed25519.Sign(key, payload)})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mustJSON marshals v, failing the test on error.
func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func ptrTime(t time.Time) *time.Time { return &t }
