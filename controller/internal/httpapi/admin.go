package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/controller/internal/store"
)

type auditJSON struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Object     string    `json:"object"`
	Detail     string    `json:"detail,omitempty"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
}

// getAudit lists the audit log, newest first; ?before=<id> pages back,
// ?limit= (1..1000, default 100).
func (s *Server) getAudit(c *gin.Context) {
	before, _ := strconv.ParseInt(c.Query("before"), 10, 64)
	limit, _ := strconv.Atoi(c.Query("limit"))
	es, err := s.store.AuditLog(c.Request.Context(), before, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]auditJSON, 0, len(es))
	for _, e := range es {
		out = append(out, auditJSON{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Object: e.Object, Detail: e.Detail, RemoteAddr: e.RemoteAddr})
	}
	c.JSON(http.StatusOK, gin.H{"entries": out})
}

type tokenJSON struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Token is the secret, shown only in the answer that creates it.
	Token string `json:"token,omitempty"`
}

func tokenOut(t store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt.UTC(), RevokedAt: timePtr(t.RevokedAt)}
}

func (s *Server) getTokens(c *gin.Context) { list(s, c, "tokens", s.store.Tokens, tokenOut) }

func (s *Server) postToken(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Role == "" {
		req.Role = store.RoleStaff
	}
	t, secret, err := s.store.CreateToken(c.Request.Context(), strings.TrimSpace(req.Name), req.Role)
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, "token.create", "token/"+strconv.FormatInt(t.ID, 10), t.Name+" ("+t.Role+")")
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
	noteAudit(c, "token.revoke", "token/"+strconv.FormatInt(id, 10), "")
	c.Status(http.StatusNoContent)
}
