package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Client is a small client of the controller's HTTP API, as a county
// clerk's script would use it. The demo and the end-to-end tests drive the
// controller through it, so they exercise exactly what staff use.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// APIError is an error answer of the API.
type APIError struct {
	Status int
	Body   api.ErrorBody
}

func (e *APIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Body.Error.Code, e.Body.Error.Message)
}

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, &e.Body)
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, "application/json", body, out)
}

// ImportVillages posts a villages CSV.
func (c *Client) ImportVillages(ctx context.Context, csv []byte) error {
	return c.do(ctx, http.MethodPost, "/api/v1/villages/import", "text/csv", bytes.NewReader(csv), nil)
}

// VillageInfo is one row of GET /api/v1/villages.
type VillageInfo struct {
	Code         string `json:"code"`
	Name         string `json:"name"`
	Township     string `json:"township"`
	Device       string `json:"device"`
	Presence     string `json:"presence"`
	AgentVersion string `json:"agent_version"`
}

// Villages lists the villages.
func (c *Client) Villages(ctx context.Context) ([]VillageInfo, error) {
	var out struct {
		Villages []VillageInfo `json:"villages"`
	}
	err := c.json(ctx, http.MethodGet, "/api/v1/villages", nil, &out)
	return out.Villages, err
}

// Enroll issues a one-time enrollment token for a village's box.
func (c *Client) Enroll(ctx context.Context, village string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := c.json(ctx, http.MethodPost, "/api/v1/villages/"+village+"/enroll", nil, &out)
	return out.Token, err
}

// RevokeBox revokes a village's box: its credentials stop working and its
// sessions are disconnected at once (admin only).
func (c *Client) RevokeBox(ctx context.Context, village string) error {
	return c.json(ctx, http.MethodPost, "/api/v1/villages/"+village+"/revoke", nil, nil)
}

// Audio is a clip in the library.
type Audio struct {
	ID         int64  `json:"id"`
	SHA256     string `json:"sha256"`
	DurationMS int64  `json:"duration_ms"`
	Title      string `json:"title"`
}

// UploadAudio uploads a WAV file.
func (c *Client) UploadAudio(ctx context.Context, name, title string, data []byte) (Audio, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("title", title)
	fw, err := w.CreateFormFile("file", name)
	if err != nil {
		return Audio{}, err
	}
	fw.Write(data)
	w.Close()
	var out Audio
	err = c.do(ctx, http.MethodPost, "/api/v1/audio", w.FormDataContentType(), &buf, &out)
	return out, err
}

// CreatePlaylist creates a playlist and returns its id.
func (c *Client) CreatePlaylist(ctx context.Context, p playlists.Playlist) (int64, error) {
	var out struct {
		ID int64 `json:"id"`
	}
	err := c.json(ctx, http.MethodPost, "/api/v1/playlists", p, &out)
	return out.ID, err
}

// CreateSchedule creates a schedule and returns its id.
func (c *Client) CreateSchedule(ctx context.Context, s playlists.Schedule) (int64, error) {
	var out struct {
		ID int64 `json:"id"`
	}
	err := c.json(ctx, http.MethodPost, "/api/v1/schedules", s, &out)
	return out.ID, err
}

// WithdrawSchedule deletes a schedule from every box.
func (c *Client) WithdrawSchedule(ctx context.Context, id int64) error {
	return c.json(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/schedules/%d", id), nil, nil)
}

// ScheduleInfo is one schedule of GET /api/v1/schedules.
type ScheduleInfo struct {
	ID          int64      `json:"id"`
	PlaylistID  int64      `json:"playlist_id"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
	State       string     `json:"state"` // active, ended or withdrawn
}

// Schedules lists the schedules in force, and with withdrawn those
// withdrawn too.
func (c *Client) Schedules(ctx context.Context, withdrawn bool) ([]ScheduleInfo, error) {
	var out struct {
		Schedules []ScheduleInfo `json:"schedules"`
	}
	err := c.json(ctx, http.MethodGet, fmt.Sprintf("/api/v1/schedules?withdrawn=%t", withdrawn), nil, &out)
	return out.Schedules, err
}

// Coverage is the answer of GET /api/v1/schedules/{id}/coverage.
type Coverage struct {
	Targeted             int  `json:"targeted"`
	Played               int  `json:"played"`
	Partial              int  `json:"partial"`
	Failed               int  `json:"failed"`
	Missed               int  `json:"missed"`
	Pending              int  `json:"pending"`
	AwaitingConfirmation int  `json:"awaiting_confirmation"`
	Cancelled            int  `json:"cancelled"`
	Expired              int  `json:"expired"`
	PlayedByBox          int  `json:"played_by_box"`
	PlayedByHand         int  `json:"played_by_hand"`
	Test                 bool `json:"test"`
	Villages             []struct {
		Code   string `json:"code"`
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"villages"`
}

// Coverage reads the coverage of one occurrence of a schedule.
func (c *Client) Coverage(ctx context.Context, schedule int64, at time.Time) (Coverage, error) {
	var out Coverage
	err := c.json(ctx, http.MethodGet, fmt.Sprintf("/api/v1/schedules/%d/coverage?at=%s", schedule, at.UTC().Format(time.RFC3339)), nil, &out)
	return out, err
}

// BroadcastRequest is the body of POST /api/v1/broadcasts.
type BroadcastRequest struct {
	AudioID         int64              `json:"audio_id,omitempty"`
	PlaylistID      int64              `json:"playlist_id,omitempty"`
	Text            string             `json:"text,omitempty"`
	Targets         playlists.Targets  `json:"targets"`
	Priority        playlists.Priority `json:"priority"`
	Severity        int                `json:"severity"`
	EventType       string             `json:"event_type,omitempty"`
	Repeat          int                `json:"repeat,omitempty"`
	ExpiresAt       time.Time          `json:"expires_at"`
	Volume          int                `json:"volume,omitempty"`
	ForceFullVolume bool               `json:"force_full_volume,omitempty"`
	Test            bool               `json:"test,omitempty"`
}

// Broadcast is the answer of the broadcast endpoints.
type Broadcast struct {
	ID    int64  `json:"id"`
	State string `json:"state"`
	Test  bool   `json:"test"`
}

// Broadcasts lists the broadcasts, newest first.
func (c *Client) Broadcasts(ctx context.Context) ([]Broadcast, error) {
	var out struct {
		Broadcasts []Broadcast `json:"broadcasts"`
	}
	err := c.json(ctx, http.MethodGet, "/api/v1/broadcasts", nil, &out)
	return out.Broadcasts, err
}

// CreateBroadcast sends (or, under the two-person rule, proposes) a broadcast.
func (c *Client) CreateBroadcast(ctx context.Context, b BroadcastRequest) (Broadcast, error) {
	var out Broadcast
	err := c.json(ctx, http.MethodPost, "/api/v1/broadcasts", b, &out)
	return out, err
}

// ApproveBroadcast approves a pending broadcast (a second person, role approver).
func (c *Client) ApproveBroadcast(ctx context.Context, id int64) (Broadcast, error) {
	var out Broadcast
	err := c.json(ctx, http.MethodPost, fmt.Sprintf("/api/v1/broadcasts/%d/approve", id), struct{}{}, &out)
	return out, err
}

// CancelBroadcast cancels a broadcast on every box.
func (c *Client) CancelBroadcast(ctx context.Context, id int64) error {
	return c.json(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/broadcasts/%d", id), nil, nil)
}

// BroadcastCoverage reads the coverage of a broadcast.
func (c *Client) BroadcastCoverage(ctx context.Context, id int64) (Coverage, error) {
	var out Coverage
	err := c.json(ctx, http.MethodGet, fmt.Sprintf("/api/v1/broadcasts/%d/coverage", id), nil, &out)
	return out, err
}

// CreateUser creates a staff account (admin only) whose display name is
// its username.
func (c *Client) CreateUser(ctx context.Context, username, role, village, password string) error {
	return c.CreateNamedUser(ctx, username, username, role, village, password)
}

// CreateNamedUser creates a staff account (admin only) with a display name.
func (c *Client) CreateNamedUser(ctx context.Context, username, displayName, role, village, password string) error {
	body := map[string]string{"username": username, "display_name": displayName, "role": role, "village": village, "password": password}
	return c.json(ctx, http.MethodPost, "/api/v1/users", body, nil)
}

// Login returns a client acting as the user.
func (c *Client) Login(ctx context.Context, username, password string) (*Client, error) {
	var out struct {
		Token string `json:"token"`
	}
	anon := &Client{URL: c.URL, HTTP: c.HTTP}
	if err := anon.json(ctx, http.MethodPost, "/api/v1/login", map[string]string{"username": username, "password": password}, &out); err != nil {
		return nil, err
	}
	return &Client{URL: c.URL, Token: out.Token, HTTP: c.HTTP}, nil
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	Actor  string            `json:"actor"`
	Action string            `json:"action"`
	Object string            `json:"object"`
	Detail string            `json:"detail"`
	Params map[string]string `json:"params"`
}

// Audit reads the audit log (admin only), newest first.
func (c *Client) Audit(ctx context.Context) ([]AuditEntry, error) {
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	err := c.json(ctx, http.MethodGet, "/api/v1/audit?limit=1000", nil, &out)
	return out.Entries, err
}

// AudioList lists the library.
func (c *Client) AudioList(ctx context.Context) ([]Audio, error) {
	var out struct {
		Audio []Audio `json:"audio"`
	}
	err := c.json(ctx, http.MethodGet, "/api/v1/audio", nil, &out)
	return out.Audio, err
}

// AudioContent downloads a clip's WAV file.
func (c *Client) AudioContent(ctx context.Context, id int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/audio/%d/content", c.URL, id), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET audio %d content: HTTP %d", id, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}
