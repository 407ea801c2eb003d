package demo

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// Occurrence is one row of GET /api/v1/calendar: a time a live schedule
// sounds.
type Occurrence struct {
	ScheduleID   int64             `json:"schedule_id"`
	PlaylistID   int64             `json:"playlist_id"`
	Playlist     string            `json:"playlist"`
	At           time.Time         `json:"at"`
	End          time.Time         `json:"end"`
	Targets      playlists.Targets `json:"targets"`
	Summary      string            `json:"targets_summary"`
	VillageCount int               `json:"village_count"`
}

// Calendar lists when the live schedules sound in [from, to), at most 31
// days.
func (c *Client) Calendar(ctx context.Context, from, to time.Time) ([]Occurrence, error) {
	var out struct {
		Occurrences []Occurrence `json:"occurrences"`
	}
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	err := c.json(ctx, http.MethodGet, "/api/v1/calendar?"+q.Encode(), nil, &out)
	return out.Occurrences, err
}
