package demo

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Token is an API token as POST /api/v1/tokens answers it.
type Token struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	OwnerUserID  int64  `json:"owner_user_id"`
	OwnerTokenID int64  `json:"owner_token_id"`
	Token        string `json:"token"` // the secret
}

// CreateToken mints an API token (admin); it acts as the caller's person.
func (c *Client) CreateToken(ctx context.Context, name, role string) (Token, error) {
	var out Token
	err := c.json(ctx, http.MethodPost, "/api/v1/tokens", map[string]string{"name": name, "role": role}, &out)
	return out, err
}

// As is a client of the same controller acting with another token.
func (c *Client) As(token string) *Client { return &Client{URL: c.URL, Token: token, HTTP: c.HTTP} }

// LoginThrottle is one row of GET /api/v1/login-throttles.
type LoginThrottle struct {
	Addr          string    `json:"addr"`
	User          string    `json:"user"`
	Failures      int       `json:"failures"`
	LastFailureAt time.Time `json:"last_failure_at"`
	RetryAfterS   int       `json:"retry_after_s"`
}

// LoginThrottles lists the sources whose failed logins are counted (admin).
func (c *Client) LoginThrottles(ctx context.Context) ([]LoginThrottle, error) {
	var out struct {
		Throttles []LoginThrottle `json:"throttles"`
	}
	err := c.json(ctx, http.MethodGet, "/api/v1/login-throttles", nil, &out)
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
	var out struct {
		Cleared int `json:"cleared"`
	}
	err := c.json(ctx, http.MethodDelete, "/api/v1/login-throttles?"+q.Encode(), nil, &out)
	return out.Cleared, err
}
