package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

type auditJSON struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	Detail string    `json:"detail,omitempty"`
	// Params are the action's parameters Detail is worded from (null for
	// entries written before they were kept): the console words them in
	// the reader's language.
	Params     map[string]string `json:"params"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	// ActorName is the actor's display name (actor if none).
	ActorName string `json:"actor_name,omitempty"`
}

// getAudit lists the audit log, newest first, filtered by ?actor=,
// ?action= (and the actions under it), ?object= (and the objects under
// it), ?since= and ?until= (RFC 3339), ?q= (text anywhere in the entry);
// ?before=<id> pages back, ?limit= (1..1000, default 100).
func (s *Server) getAudit(c *gin.Context) {
	f := store.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"), Object: c.Query("object"), Text: strings.TrimSpace(c.Query("q"))}
	f.Before, _ = strconv.ParseInt(c.Query("before"), 10, 64)
	f.Limit, _ = strconv.Atoi(c.Query("limit"))
	var err error
	if f.Since, err = queryTime(c, "since"); err != nil {
		s.fail(c, err)
		return
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		s.fail(c, err)
		return
	}
	es, err := s.store.AuditLog(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]auditJSON, 0, len(es))
	for _, e := range es {
		out = append(out, auditJSON{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Object: e.Object, Detail: e.Detail, Params: e.Params, RemoteAddr: e.RemoteAddr, ActorName: s.nameOf(e.Actor)})
	}
	c.JSON(http.StatusOK, gin.H{"entries": out})
}

// queryTime reads an optional RFC 3339 query parameter.
func queryTime(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	// An unencoded "+08:00" arrives as " 08:00".
	v = strings.ReplaceAll(v, " ", "+")
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, cx.Invalid(name, fmt.Sprintf("%q is not a time such as 2026-03-01T07:00:00+08:00", v)).With(api.ReasonTimeInvalid, "value", v)
	}
	return t, nil
}

type tokenJSON struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Village string `json:"village,omitempty"`
	UserID  int64  `json:"user_id,omitempty"` // a login session of this user
	// The person an API token acts as (the two-person rule): the user who
	// minted it, or the first token of a chain minted by tokens of no user.
	OwnerUserID  int64      `json:"owner_user_id,omitempty"`
	OwnerTokenID int64      `json:"owner_token_id,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	// Token is the secret, shown only in the answer that creates it.
	Token string `json:"token,omitempty"`
}

func tokenOut(t store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Role: t.Role, Village: t.Village, UserID: t.UserID, OwnerUserID: t.OwnerUserID, OwnerTokenID: t.OwnerTokenID,
		CreatedAt: t.CreatedAt.UTC(), ExpiresAt: timePtr(t.ExpiresAt), RevokedAt: timePtr(t.RevokedAt)}
}

func (s *Server) getTokens(c *gin.Context) { list(s, c, "tokens", s.store.Tokens, tokenOut) }

func (s *Server) postToken(c *gin.Context) {
	var req struct {
		Name    string `json:"name"`
		Role    string `json:"role"`
		Village string `json:"village"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Role == "" {
		req.Role = store.RoleOperator
	}
	t, secret, err := s.store.CreateToken(c.Request.Context(), strings.TrimSpace(req.Name), req.Role, req.Village, token(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.TokenCreate, "token/"+strconv.FormatInt(t.ID, 10), audit.Params{"name": t.Name, "role": t.Role, "principal": t.Principal()})
	out := tokenOut(t)
	out.Token = secret
	c.JSON(http.StatusCreated, out)
}

func (s *Server) deleteToken(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.RevokeToken(c.Request.Context(), id); err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.TokenRevoke, "token/"+strconv.FormatInt(id, 10), nil)
	c.Status(http.StatusNoContent)
}
