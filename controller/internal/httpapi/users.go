package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

func userOut(u store.User) api.User {
	return api.User{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role, Village: u.Village,
		Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(), DeletedAt: timePtr(u.DeletedAt), LastLoginAt: timePtr(u.LastLoginAt)}
}

// postLogin exchanges a username and password for a session token.
// Failures are audited too: a run of them is what guessing looks like.
func (s *Server) postLogin(c *gin.Context) {
	var req api.LoginRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if s.throttled(c, req.Username) {
		return
	}
	t, secret, u, err := s.store.Login(c.Request.Context(), req.Username, req.Password, s.o.SessionTTL)
	if err != nil {
		if errors.Is(err, store.ErrUnauthorized) {
			err = &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonLoginFailed, Message: "wrong username or password"}
		}
		if cx.Code(err) == cx.EUNAUTHORIZED {
			name := strings.TrimSpace(req.Username)
			if utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) {
				name = "(a long or malformed username)"
			}
			s.writeAudit(c, name, auditNote{audit.LoginFailed, "user", audit.Refusal(nil, err)})
			s.throttle.failed(s.now(), req.Username, c.ClientIP())
		}
		s.fail(c, err)
		return
	}
	c.Set(keyToken, t)
	noteAudit(c, audit.Login, "user/"+strconv.FormatInt(u.ID, 10), loginParams(t, false))
	c.JSON(http.StatusOK, api.Login{Token: secret, ExpiresAt: t.ExpiresAt.UTC(), User: userOut(u)})
}

// postLogout revokes the token the request is made with.
func (s *Server) postLogout(c *gin.Context) {
	t := token(c)
	if err := s.store.RevokeToken(c.Request.Context(), t.ID); err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.Logout, "token/"+strconv.FormatInt(t.ID, 10), nil)
	c.Status(http.StatusNoContent)
}

// getMe says who the token belongs to and what role it has.
func (s *Server) getMe(c *gin.Context) {
	t := token(c)
	display := t.Name
	if t.UserID != 0 {
		display = s.nameOf(t.Name)
	}
	c.JSON(http.StatusOK, api.Me{Name: t.Name, DisplayName: display, Role: t.Role, Village: t.Village, UserID: t.UserID, TokenID: t.ID, Person: t.Principal(), ExpiresAt: timePtr(t.ExpiresAt),
		CountyName: s.o.CountyName})
}

func (s *Server) getUsers(c *gin.Context) {
	deleted := c.Query("deleted") == "true" || c.Query("deleted") == "1"
	xs, err := s.store.Users(c.Request.Context(), deleted)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]api.User, 0, len(xs))
	for _, u := range xs {
		out = append(out, userOut(u))
	}
	c.JSON(http.StatusOK, api.UserList{Users: out})
}

func (s *Server) postUser(c *gin.Context) {
	var req api.UserRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	u, err := s.store.CreateUser(c.Request.Context(), store.NewUser{Username: req.Username, DisplayName: req.DisplayName, Role: req.Role, Village: req.Village, Password: req.Password})
	if err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.UserCreate, "user/"+strconv.FormatInt(u.ID, 10), userParams(u))
	c.JSON(http.StatusCreated, userOut(u))
}

// userParams are the audit log's account of a user made or changed.
func userParams(u store.User) audit.Params {
	return audit.Params{"username": u.Username, "role": u.Role, "village": u.Village, "disabled": audit.Flag(u.Disabled)}
}

// loginParams are the audit log's account of a login: the session token
// and when it expires.
func loginParams(t store.Token, console bool) audit.Params {
	return audit.Params{"token": audit.Int(t.ID), "expires_at": audit.Time(t.ExpiresAt), "console": audit.Flag(console)}
}

// patchUser changes the fields sent; the password itself never reaches
// the audit log, only that it changed.
func (s *Server) patchUser(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req api.UserChange
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	u, err := s.store.UpdateUser(c.Request.Context(), id, store.UserChange{DisplayName: req.DisplayName, Role: req.Role, Village: req.Village, Password: req.Password, Disabled: req.Disabled})
	if err != nil {
		s.fail(c, err)
		return
	}
	p := userParams(u)
	p["password_changed"] = audit.Flag(req.Password != nil)
	noteAudit(c, audit.UserUpdate, "user/"+strconv.FormatInt(u.ID, 10), p)
	c.JSON(http.StatusOK, userOut(u))
}

func (s *Server) deleteUser(c *gin.Context) {
	id, err := idParam(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.DeleteUser(c.Request.Context(), id); err != nil {
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.UserDelete, "user/"+strconv.FormatInt(id, 10), nil)
	c.Status(http.StatusNoContent)
}

// postMyPassword lets a logged-in user change their own password. A wrong
// current password counts as a failed login (throttled and audited). Every
// session of the user ends, this one too.
func (s *Server) postMyPassword(c *gin.Context) {
	t := token(c)
	if t.UserID == 0 {
		s.fail(c, cx.Invalid("token", "this API token belongs to no user; an admin changes passwords with PATCH /api/v1/users/{id}").With(api.ReasonTokenNoUser))
		return
	}
	var req api.PasswordChange
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if s.throttled(c, t.Name) {
		return
	}
	err := s.store.ChangePassword(c.Request.Context(), t.UserID, req.Current, req.New)
	if err != nil {
		if e := (*cx.Error)(nil); errors.As(err, &e) && e.Field == "current_password" {
			s.throttle.failed(s.now(), t.Name, c.ClientIP())
			noteAudit(c, audit.UserPasswordChangeFail, "user/"+strconv.FormatInt(t.UserID, 10), nil)
		}
		s.fail(c, err)
		return
	}
	noteAudit(c, audit.UserPasswordChanged, "user/"+strconv.FormatInt(t.UserID, 10), nil)
	c.Status(http.StatusNoContent)
}
