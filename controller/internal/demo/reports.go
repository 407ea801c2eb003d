package demo

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/playlists"
)

// ReportItem is one broadcast or schedule occurrence of a coverage report.
type ReportItem struct {
	Kind    string `json:"kind"`
	ID      int64  `json:"id"`
	State   string `json:"state"`
	Counted bool   `json:"counted"`
	coverage.Summary
}

// CoverageReport is the answer of GET /api/v1/reports/coverage.
type CoverageReport struct {
	From   string           `json:"from"`
	To     string           `json:"to"`
	Totals coverage.Summary `json:"totals"`
	Items  []ReportItem     `json:"items"`
}

// CoverageReport reads the coverage of the days from..to (YYYY-MM-DD,
// county time).
func (c *Client) CoverageReport(ctx context.Context, from, to string) (CoverageReport, error) {
	var out CoverageReport
	err := c.json(ctx, http.MethodGet, "/api/v1/reports/coverage?from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), nil, &out)
	return out, err
}

// RejectBroadcast refuses a pending broadcast, saying why (role approver).
func (c *Client) RejectBroadcast(ctx context.Context, id int64, reason string) (Broadcast, error) {
	var out Broadcast
	err := c.json(ctx, http.MethodPost, fmt.Sprintf("/api/v1/broadcasts/%d/reject", id), map[string]string{"reason": reason}, &out)
	return out, err
}

// BroadcastInfo is a broadcast as GET /api/v1/broadcasts/{id} shows it.
type BroadcastInfo struct {
	ID           int64             `json:"id"`
	State        string            `json:"state"`
	Targets      playlists.Targets `json:"targets"`
	Repeat       int               `json:"repeat"`
	Volume       int               `json:"volume"`
	CreatedBy    string            `json:"created_by"`
	RejectedBy   string            `json:"rejected_by"`
	RejectReason string            `json:"reject_reason"`
}

// GetBroadcast reads one broadcast.
func (c *Client) GetBroadcast(ctx context.Context, id int64) (BroadcastInfo, error) {
	var out BroadcastInfo
	err := c.json(ctx, http.MethodGet, fmt.Sprintf("/api/v1/broadcasts/%d", id), nil, &out)
	return out, err
}
