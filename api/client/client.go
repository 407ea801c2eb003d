// Package client is the Go client of the controller's HTTP API, as a
// county clerk's script would use it. The demo, the simulator (`agent
// sim`), the benchmark and the end-to-end tests drive the controller
// through it, so they exercise exactly what staff use, with the request
// and answer bodies of package api. Standard library only: the agent
// links it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// maxAnswer bounds an answer read into memory (a province's village list
// is a few MB).
const maxAnswer = 64 << 20

// Client calls one controller. URL is its base ("http://host:8080"),
// Token the bearer token it acts with; HTTP defaults to a client with a
// 30 s timeout.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// Error is an error answer of the API: its status and body.
type Error struct {
	Method, Path string
	Status       int
	Body         api.ErrorBody
}

func (e *Error) Error() string {
	if e.Body.Error.Code == "" {
		return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body.Error.Message)
	}
	return fmt.Sprintf("%s %s: HTTP %d %s: %s", e.Method, e.Path, e.Status, e.Body.Error.Code, e.Body.Error.Message)
}

// StatusOf is the HTTP status of an error answer, or 0 if err is not one.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// As is a client of the same controller acting with another token.
func (c *Client) As(token string) *Client { return &Client{URL: c.URL, Token: token, HTTP: c.HTTP} }

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Do sends a request with the given body and Content-Type and decodes a
// 2xx answer's JSON into out (if out is not nil and there is a body). An
// error answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	data, err := c.send(ctx, method, path, ctype, body)
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// send makes the request and returns a 2xx answer's body.
func (c *Client) send(ctx context.Context, method, path, ctype string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Method: method, Path: path, Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil || e.Body.Error.Message == "" {
			e.Body.Error.Message = fmt.Sprintf("%.200s", data)
		}
		return nil, e
	}
	return data, nil
}

// JSON sends in (if not nil) as a JSON body and decodes the answer into out.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	return c.Do(ctx, method, path, "application/json", body, out)
}

// Download reads a non-JSON answer (a WAV, a CSV) whole.
func (c *Client) Download(ctx context.Context, path string) ([]byte, error) {
	return c.send(ctx, http.MethodGet, path, "", nil)
}

// ---- People and tokens ----

// Login returns a client acting as the user, with its session.
func (c *Client) Login(ctx context.Context, username, password string) (*Client, error) {
	var out api.Login
	anon := &Client{URL: c.URL, HTTP: c.HTTP}
	if err := anon.JSON(ctx, http.MethodPost, "/api/v1/login", api.LoginRequest{Username: username, Password: password}, &out); err != nil {
		return nil, err
	}
	return c.As(out.Token), nil
}

// Me says who the client acts as.
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	var out api.Me
	err := c.JSON(ctx, http.MethodGet, "/api/v1/me", nil, &out)
	return out, err
}

// CreateUser creates a staff account (admin only).
func (c *Client) CreateUser(ctx context.Context, u api.UserRequest) (api.User, error) {
	var out api.User
	err := c.JSON(ctx, http.MethodPost, "/api/v1/users", u, &out)
	return out, err
}

// CreateToken mints an API token (admin); it acts as the caller's person.
func (c *Client) CreateToken(ctx context.Context, t api.TokenRequest) (api.Token, error) {
	var out api.Token
	err := c.JSON(ctx, http.MethodPost, "/api/v1/tokens", t, &out)
	return out, err
}

// LoginThrottles lists the sources whose failed logins are counted (admin).
func (c *Client) LoginThrottles(ctx context.Context) ([]api.LoginThrottle, error) {
	var out api.LoginThrottles
	err := c.JSON(ctx, http.MethodGet, "/api/v1/login-throttles", nil, &out)
	return out.Throttles, err
}

// ClearLoginThrottles lets logins from addr and/or as user through again
// ("" for any), and says how many limits it cleared (admin).
func (c *Client) ClearLoginThrottles(ctx context.Context, addr, user string) (int, error) {
	q := url.Values{}
	if addr != "" {
		q.Set("addr", addr)
	}
	if user != "" {
		q.Set("user", user)
	}
	var out api.ThrottlesCleared
	err := c.JSON(ctx, http.MethodDelete, "/api/v1/login-throttles?"+q.Encode(), nil, &out)
	return out.Cleared, err
}

// Audit reads up to 1,000 entries of the audit log (admin only), newest first.
func (c *Client) Audit(ctx context.Context) ([]api.AuditEntry, error) {
	var out api.AuditLog
	err := c.JSON(ctx, http.MethodGet, "/api/v1/audit?limit=1000", nil, &out)
	return out.Entries, err
}

// ---- Villages and boxes ----

// ImportVillages posts a villages CSV.
func (c *Client) ImportVillages(ctx context.Context, csv []byte) (api.ImportCounts, error) {
	var out api.ImportCounts
	err := c.Do(ctx, http.MethodPost, "/api/v1/villages/import", "text/csv", bytes.NewReader(csv), &out)
	return out, err
}

// Villages lists the villages.
func (c *Client) Villages(ctx context.Context) ([]api.Village, error) {
	var out api.VillageList
	err := c.JSON(ctx, http.MethodGet, "/api/v1/villages", nil, &out)
	return out.Villages, err
}

// Enroll issues a one-time enrollment token for a village's box.
func (c *Client) Enroll(ctx context.Context, village string) (api.EnrollToken, error) {
	var out api.EnrollToken
	err := c.JSON(ctx, http.MethodPost, "/api/v1/villages/"+url.PathEscape(village)+"/enroll", nil, &out)
	return out, err
}

// RevokeBox revokes a village's box: its credentials stop working and its
// sessions are disconnected at once (admin only).
func (c *Client) RevokeBox(ctx context.Context, village string) (api.Village, error) {
	var out api.Village
	err := c.JSON(ctx, http.MethodPost, "/api/v1/villages/"+url.PathEscape(village)+"/revoke", nil, &out)
	return out, err
}

// ---- Audio, playlists, schedules ----

// UploadAudio uploads a WAV or MP3 file.
func (c *Client) UploadAudio(ctx context.Context, name, title string, data []byte) (api.Audio, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.WriteField("title", title); err != nil {
		return api.Audio{}, err
	}
	fw, err := w.CreateFormFile("file", name)
	if err != nil {
		return api.Audio{}, err
	}
	if _, err := fw.Write(data); err != nil {
		return api.Audio{}, err
	}
	if err := w.Close(); err != nil {
		return api.Audio{}, err
	}
	var out api.Audio
	err = c.Do(ctx, http.MethodPost, "/api/v1/audio", w.FormDataContentType(), &buf, &out)
	return out, err
}

// AudioList lists the library.
func (c *Client) AudioList(ctx context.Context) ([]api.Audio, error) {
	var out api.AudioList
	err := c.JSON(ctx, http.MethodGet, "/api/v1/audio", nil, &out)
	return out.Audio, err
}

// AudioContent downloads a clip's WAV file.
func (c *Client) AudioContent(ctx context.Context, id int64) ([]byte, error) {
	return c.Download(ctx, fmt.Sprintf("/api/v1/audio/%d/content", id))
}

// CreatePlaylist creates a playlist.
func (c *Client) CreatePlaylist(ctx context.Context, p playlists.Playlist) (api.Playlist, error) {
	var out api.Playlist
	err := c.JSON(ctx, http.MethodPost, "/api/v1/playlists", p, &out)
	return out, err
}

// CreateSchedule creates a schedule and delivers it to its boxes.
func (c *Client) CreateSchedule(ctx context.Context, s playlists.Schedule) (api.Schedule, error) {
	req := api.ScheduleRequest{PlaylistID: s.PlaylistID, Targets: s.Targets, Timezone: s.Timezone, Recurring: s.Recurring}
	if s.OnceAt != nil {
		at := s.OnceAt.Format(time.RFC3339Nano)
		req.OnceAt = &at
	}
	var out api.Schedule
	err := c.JSON(ctx, http.MethodPost, "/api/v1/schedules", req, &out)
	return out, err
}

// WithdrawSchedule withdraws a schedule from every box.
func (c *Client) WithdrawSchedule(ctx context.Context, id int64) (api.Schedule, error) {
	var out api.Schedule
	err := c.JSON(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/schedules/%d", id), nil, &out)
	return out, err
}

// Schedules lists the schedules in force and, with withdrawn, those
// withdrawn too.
func (c *Client) Schedules(ctx context.Context, withdrawn bool) ([]api.Schedule, error) {
	var out api.ScheduleList
	err := c.JSON(ctx, http.MethodGet, fmt.Sprintf("/api/v1/schedules?withdrawn=%t", withdrawn), nil, &out)
	return out.Schedules, err
}

// Coverage reads the coverage of one occurrence of a schedule.
func (c *Client) Coverage(ctx context.Context, schedule int64, at time.Time) (api.Coverage, error) {
	var out api.Coverage
	q := url.Values{"at": {at.UTC().Format(time.RFC3339)}}
	err := c.JSON(ctx, http.MethodGet, fmt.Sprintf("/api/v1/schedules/%d/coverage?%s", schedule, q.Encode()), nil, &out)
	return out, err
}

// Calendar lists when the live schedules sound in [from, to), at most 31
// days.
func (c *Client) Calendar(ctx context.Context, from, to time.Time) (api.Calendar, error) {
	var out api.Calendar
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	err := c.JSON(ctx, http.MethodGet, "/api/v1/calendar?"+q.Encode(), nil, &out)
	return out, err
}

// CoverageReport reads the coverage of the days from..to (YYYY-MM-DD,
// county time).
func (c *Client) CoverageReport(ctx context.Context, from, to string) (api.CoverageReport, error) {
	var out api.CoverageReport
	q := url.Values{"from": {from}, "to": {to}}
	err := c.JSON(ctx, http.MethodGet, "/api/v1/reports/coverage?"+q.Encode(), nil, &out)
	return out, err
}

// ---- Broadcasts ----

// ExpiresAt formats a broadcast's expiry as BroadcastRequest.ExpiresAt
// takes it.
func ExpiresAt(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// CreateBroadcast sends (or, under the two-person rule, proposes) a broadcast.
func (c *Client) CreateBroadcast(ctx context.Context, b api.BroadcastRequest) (api.Broadcast, error) {
	var out api.Broadcast
	err := c.JSON(ctx, http.MethodPost, "/api/v1/broadcasts", b, &out)
	return out, err
}

// Broadcasts lists the broadcasts, newest first.
func (c *Client) Broadcasts(ctx context.Context) ([]api.Broadcast, error) {
	var out api.BroadcastList
	err := c.JSON(ctx, http.MethodGet, "/api/v1/broadcasts", nil, &out)
	return out.Broadcasts, err
}

// GetBroadcast reads one broadcast.
func (c *Client) GetBroadcast(ctx context.Context, id int64) (api.Broadcast, error) {
	var out api.Broadcast
	err := c.JSON(ctx, http.MethodGet, fmt.Sprintf("/api/v1/broadcasts/%d", id), nil, &out)
	return out, err
}

// ApproveBroadcast approves a pending broadcast (a second person, role approver).
func (c *Client) ApproveBroadcast(ctx context.Context, id int64) (api.Broadcast, error) {
	var out api.Broadcast
	err := c.JSON(ctx, http.MethodPost, fmt.Sprintf("/api/v1/broadcasts/%d/approve", id), nil, &out)
	return out, err
}

// RejectBroadcast refuses a pending broadcast, saying why (role approver).
func (c *Client) RejectBroadcast(ctx context.Context, id int64, reason string) (api.Broadcast, error) {
	var out api.Broadcast
	err := c.JSON(ctx, http.MethodPost, fmt.Sprintf("/api/v1/broadcasts/%d/reject", id), api.RejectRequest{Reason: reason}, &out)
	return out, err
}

// CancelBroadcast cancels a broadcast on every box.
func (c *Client) CancelBroadcast(ctx context.Context, id int64) (api.Broadcast, error) {
	var out api.Broadcast
	err := c.JSON(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/broadcasts/%d", id), nil, &out)
	return out, err
}

// BroadcastCoverage reads the coverage of a broadcast.
func (c *Client) BroadcastCoverage(ctx context.Context, id int64) (api.BroadcastCoverage, error) {
	var out api.BroadcastCoverage
	err := c.JSON(ctx, http.MethodGet, fmt.Sprintf("/api/v1/broadcasts/%d/coverage", id), nil, &out)
	return out, err
}

// ---- The upper platform of the national emergency-broadcast chain ----

// EBDStatus says how this platform stands in the chain: its codes, the
// link to the upper platform, the certificates.
func (c *Client) EBDStatus(ctx context.Context) (api.EBDStatus, error) {
	var out api.EBDStatus
	err := c.JSON(ctx, http.MethodGet, "/api/v1/ebd/status", nil, &out)
	return out, err
}

// EBDCertificate downloads this platform's certificate (PEM), which the
// upper platform installs.
func (c *Client) EBDCertificate(ctx context.Context) ([]byte, error) {
	return c.Download(ctx, "/api/v1/ebd/certificate")
}

// EBDInbound lists up to limit packets the upper platform sent, newest
// first (0: the server's default).
func (c *Client) EBDInbound(ctx context.Context, limit int) ([]api.EBDInbound, error) {
	var out api.EBDInboundList
	err := c.JSON(ctx, http.MethodGet, "/api/v1/ebd/inbound"+limitQuery(limit), nil, &out)
	return out.Packets, err
}

// EBDOutbound lists up to limit reports queued for the upper platform,
// newest first (0: the server's default).
func (c *Client) EBDOutbound(ctx context.Context, limit int) ([]api.EBDOutbound, error) {
	var out api.EBDOutboundList
	err := c.JSON(ctx, http.MethodGet, "/api/v1/ebd/outbound"+limitQuery(limit), nil, &out)
	return out.Reports, err
}

// EBDTerminals lists the village boxes as terminals of the chain.
func (c *Client) EBDTerminals(ctx context.Context) ([]api.EBDTerminal, error) {
	var out api.EBDTerminalList
	err := c.JSON(ctx, http.MethodGet, "/api/v1/ebd/terminals", nil, &out)
	return out.Terminals, err
}

// SetEBDTerminal sets the resource code the province assigned to the box
// of village; "" goes back to the derived code (admin).
func (c *Client) SetEBDTerminal(ctx context.Context, village, ebrid string) (api.EBDTerminal, error) {
	var out api.EBDTerminal
	err := c.JSON(ctx, http.MethodPut, "/api/v1/ebd/terminals/"+url.PathEscape(village), api.EBDTerminalChange{EBRID: ebrid}, &out)
	return out, err
}

func limitQuery(limit int) string {
	if limit <= 0 {
		return ""
	}
	return "?limit=" + strconv.Itoa(limit)
}
