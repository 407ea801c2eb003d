package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/users"
)

func userOut(u store.User) api.User {
	return api.User{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role, Village: u.Village,
		Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(), DeletedAt: timePtr(u.DeletedAt), LastLoginAt: timePtr(u.LastLoginAt)}
}

// postLogin exchanges a username and password for a session token (the
// users service, which audits failures too); failures are throttled by
// source address and username.
func (s *Server) postLogin(c *gin.Context) (any, error) {
	var req api.LoginRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	if s.throttled(c, req.Username) {
		return nil, nil
	}
	servicesAudit(c)
	t, secret, u, err := s.users.Login(c.Request.Context(), c.ClientIP(), req.Username, req.Password, false)
	if err != nil {
		if cx.Code(err) == cx.EUNAUTHORIZED {
			s.throttle.failed(s.now(), req.Username, c.ClientIP())
		}
		return nil, err
	}
	c.Set(keyToken, t)
	return api.Login{Token: secret, ExpiresAt: t.ExpiresAt.UTC(), User: userOut(u)}, nil
}

// postLogout revokes the token the request is made with.
func (s *Server) postLogout(c *gin.Context) (any, error) {
	servicesAudit(c)
	if err := s.users.Logout(c.Request.Context(), s.person(c), token(c).ID, false); err != nil {
		return nil, err
	}
	return reply{http.StatusNoContent, nil}, nil
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

func (s *Server) getUsers(c *gin.Context) (any, error) {
	deleted := c.Query("deleted") == "true" || c.Query("deleted") == "1"
	xs, err := s.users.List(c.Request.Context(), s.person(c), deleted)
	if err != nil {
		return nil, err
	}
	out := make([]api.User, 0, len(xs))
	for _, u := range xs {
		out = append(out, userOut(u))
	}
	return api.UserList{Users: out}, nil
}

func (s *Server) postUser(c *gin.Context) (any, error) {
	var req api.UserRequest
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	servicesAudit(c)
	u, err := s.users.Create(c.Request.Context(), s.person(c), store.NewUser{Username: req.Username, DisplayName: req.DisplayName, Role: req.Role, Village: req.Village, Password: req.Password})
	if err != nil {
		return nil, err
	}
	return reply{http.StatusCreated, userOut(u)}, nil
}

// patchUser changes the fields sent (the users service).
func (s *Server) patchUser(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	var req api.UserChange
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	servicesAudit(c)
	u, err := s.users.Update(c.Request.Context(), s.person(c), id, store.UserChange{DisplayName: req.DisplayName, Role: req.Role, Village: req.Village, Password: req.Password, Disabled: req.Disabled})
	if err != nil {
		return nil, err
	}
	return userOut(u), nil
}

func (s *Server) deleteUser(c *gin.Context) (any, error) {
	id, err := idParam(c, "id")
	if err != nil {
		return nil, err
	}
	servicesAudit(c)
	if err := s.users.Delete(c.Request.Context(), s.person(c), id); err != nil {
		return nil, err
	}
	return reply{http.StatusNoContent, nil}, nil
}

// postMyPassword lets a logged-in user change their own password (the
// users service). A wrong current password counts as a failed login
// (throttled here, audited there). Every session of the user ends, this
// one too.
func (s *Server) postMyPassword(c *gin.Context) (any, error) {
	t := token(c)
	if t.UserID == 0 {
		return nil, s.users.ChangeOwnPassword(c.Request.Context(), s.person(c), 0, "", "")
	}
	var req api.PasswordChange
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	if s.throttled(c, t.Name) {
		return nil, nil
	}
	servicesAudit(c)
	if err := s.users.ChangeOwnPassword(c.Request.Context(), s.person(c), t.UserID, req.Current, req.New); err != nil {
		if users.WrongPassword(err) {
			s.throttle.failed(s.now(), t.Name, c.ClientIP())
		}
		return nil, err
	}
	return reply{http.StatusNoContent, nil}, nil
}
