package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// getAudit lists the audit log, newest first, filtered by ?actor=,
// ?action= (and the actions under it), ?object= (and the objects under
// it), ?since= and ?until= (RFC 3339), ?q= (text anywhere in the entry);
// ?before=<id> pages back, ?limit= (1..1000, default 100).
func (s *Server) getAudit(c *gin.Context) (any, error) {
	f := store.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"), Object: c.Query("object"), Text: strings.TrimSpace(c.Query("q"))}
	f.Before, _ = strconv.ParseInt(c.Query("before"), 10, 64)
	f.Limit, _ = strconv.Atoi(c.Query("limit"))
	var err error
	if f.Since, err = queryTime(c, "since"); err != nil {
		return nil, err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return nil, err
	}
	es, err := s.store.AuditLog(c.Request.Context(), f)
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.AuditEntry{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Object: e.Object, Detail: e.Detail, Params: e.Params, RemoteAddr: e.RemoteAddr, ActorName: s.nameOf(e.Actor)})
	}
	return api.AuditLog{Entries: out}, nil
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

func tokenOut(t store.Token) api.Token {
	return api.Token{ID: t.ID, Name: t.Name, Role: t.Role, Village: t.Village, UserID: t.UserID, OwnerUserID: t.OwnerUserID, OwnerTokenID: t.OwnerTokenID,
		CreatedAt: t.CreatedAt.UTC(), ExpiresAt: timePtr(t.ExpiresAt), RevokedAt: timePtr(t.RevokedAt)}
}

func (s *Server) getTokens(c *gin.Context) (any, error) {
	return list(c, func(ts []api.Token) api.TokenList { return api.TokenList{Tokens: ts} }, func(ctx context.Context) ([]store.Token, error) {
		return s.users.Tokens(ctx, s.person(c))
	}, tokenOut)
}

// postToken mints an API token for the person of the request's token
// (the users service).
func (s *Server) postToken(c *gin.Context) (any, error) {
	var req api.TokenRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	servicesAudit(c)
	t, secret, err := s.users.MintToken(c.Request.Context(), s.person(c), token(c), req.Name, req.Role, req.Village)
	if err != nil {
		return nil, err
	}
	out := tokenOut(t)
	out.Token = secret
	return reply{http.StatusCreated, out}, nil
}

func (s *Server) deleteToken(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	if err := s.users.RevokeToken(c.Request.Context(), s.person(c), id); err != nil {
		return nil, err
	}
	return reply{http.StatusNoContent, nil}, nil
}
