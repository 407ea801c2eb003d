// Package users is the controller's application service for the people
// who use it and their credentials: user accounts, logins and their
// sessions, passwords, and API tokens. Every door (the HTTP API, the
// console's login form) calls the same Service with a context and the
// acting person, never a web framework type; it owns the rules (who may,
// what a failed login or a wrong current password records) and writes
// the audit log. Throttling failed attempts by source address is the
// door's business: only the door knows the address to throttle.
package users

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
)

// Person is who acts (people.Person, which every service shares).
type Person = people.Person

// Store is what the Service needs of the database.
type Store interface {
	Login(ctx context.Context, username, password string, ttl time.Duration) (store.Token, string, store.User, error)
	RevokeToken(ctx context.Context, id int64) error
	ChangePassword(ctx context.Context, userID int64, current, next string) error
	CreateUser(ctx context.Context, u store.NewUser) (store.User, error)
	Users(ctx context.Context, deleted bool) ([]store.User, error)
	UpdateUser(ctx context.Context, id int64, ch store.UserChange) (store.User, error)
	DeleteUser(ctx context.Context, id int64) error
	CreateToken(ctx context.Context, name, role, village string, by store.Token) (store.Token, string, error)
	Tokens(ctx context.Context) ([]store.Token, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Options configure a Service. Store is required.
type Options struct {
	Store Store
	// SessionTTL is how long a login lasts (store.DefaultSessionTTL if 0).
	SessionTTL time.Duration

	Logger *slog.Logger
}

// Service manages users, their sessions and API tokens.
type Service struct {
	o   Options
	log *slog.Logger
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("users: Store is required")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = store.DefaultSessionTTL
	}
	s := &Service{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "users")
	return s, nil
}

// Who may manage users and tokens, whatever the door.
var admins = []string{api.RoleAdmin}

func (s *Service) audit(ctx context.Context, p Person, a audit.Action, object string, params audit.Params) {
	people.Audit(ctx, s.o.Store, s.log, p, a, object, params)
}

func userObject(id int64) string  { return "user/" + strconv.FormatInt(id, 10) }
func tokenObject(id int64) string { return "token/" + strconv.FormatInt(id, 10) }

// ErrLoginFailed is how a wrong username or password is answered: the
// same for both, so that an answer does not tell which usernames exist.
var ErrLoginFailed = &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonLoginFailed, Message: "wrong username or password"}

// Login exchanges a username and password for a session (its token and
// secret) from address from; console says the console's form asked. Every
// refused attempt (EUNAUTHORIZED: wrong credentials, a disabled account)
// is audited, as is every login: a run of failures is what guessing looks
// like. The door throttles the refused ones.
func (s *Service) Login(ctx context.Context, from, username, password string, console bool) (store.Token, string, store.User, error) {
	t, secret, u, err := s.o.Store.Login(ctx, username, password, s.o.SessionTTL)
	if err != nil {
		if errors.Is(err, store.ErrUnauthorized) {
			err = ErrLoginFailed
		}
		if cx.Code(err) == cx.EUNAUTHORIZED {
			var p audit.Params
			if console {
				p = audit.Params{"console": audit.Flag(true)}
			}
			s.audit(ctx, Person{Name: AuditName(username), From: from}, audit.LoginFailed, "user", audit.Refusal(p, err))
		}
		return store.Token{}, "", store.User{}, err
	}
	s.audit(ctx, Person{Name: t.Name, From: from}, audit.Login, userObject(u.ID),
		audit.Params{"token": audit.Int(t.ID), "expires_at": audit.Time(t.ExpiresAt), "console": audit.Flag(console)})
	return t, secret, u, nil
}

// AuditName is a username someone tried to log in with, as the audit log
// and the server's log show it: one too long or not UTF-8 is not
// recorded as given.
func AuditName(name string) string {
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) {
		return "(a long or malformed username)"
	}
	return name
}

// Logout ends p's session (or revokes the API token) tokenID; console
// says the console asked.
func (s *Service) Logout(ctx context.Context, p Person, tokenID int64, console bool) error {
	if err := s.o.Store.RevokeToken(ctx, tokenID); err != nil {
		return err
	}
	var params audit.Params
	if console {
		params = audit.Params{"console": audit.Flag(true)}
	}
	s.audit(ctx, p, audit.Logout, tokenObject(tokenID), params)
	return nil
}

// ChangeOwnPassword changes the password of p, logged in as user userID
// (0: p is an API token, which has none). A wrong current password is
// refused with the field current_password and audited: it counts as a
// failed login, which the door throttles. Every session of the user
// ends.
func (s *Service) ChangeOwnPassword(ctx context.Context, p Person, userID int64, current, next string) error {
	if userID == 0 {
		return cx.Invalid("token", "this API token belongs to no user; an admin changes passwords with PATCH /api/v1/users/{id}").With(api.ReasonTokenNoUser)
	}
	if err := s.o.Store.ChangePassword(ctx, userID, current, next); err != nil {
		if WrongPassword(err) {
			s.audit(ctx, p, audit.UserPasswordChangeFail, userObject(userID), nil)
		}
		return err
	}
	s.audit(ctx, p, audit.UserPasswordChanged, userObject(userID), nil)
	return nil
}

// WrongPassword says whether err refused a password change because the
// current password was wrong.
func WrongPassword(err error) bool {
	e := (*cx.Error)(nil)
	return errors.As(err, &e) && e.Field == "current_password"
}

// List lists the users, and the deleted ones too if deleted.
func (s *Service) List(ctx context.Context, p Person, deleted bool) ([]store.User, error) {
	if err := people.May(p, admins, "list users"); err != nil {
		return nil, err
	}
	return s.o.Store.Users(ctx, deleted)
}

// Create makes a user account.
func (s *Service) Create(ctx context.Context, p Person, u store.NewUser) (store.User, error) {
	if err := people.May(p, admins, "create users"); err != nil {
		return store.User{}, err
	}
	made, err := s.o.Store.CreateUser(ctx, u)
	if err != nil {
		return store.User{}, err
	}
	s.audit(ctx, p, audit.UserCreate, userObject(made.ID), params(made))
	return made, nil
}

// Update changes the fields ch sets of user id; the password itself never
// reaches the audit log, only that it changed.
func (s *Service) Update(ctx context.Context, p Person, id int64, ch store.UserChange) (store.User, error) {
	if err := people.May(p, admins, "change users"); err != nil {
		return store.User{}, err
	}
	u, err := s.o.Store.UpdateUser(ctx, id, ch)
	if err != nil {
		return store.User{}, err
	}
	a := params(u)
	a["password_changed"] = audit.Flag(ch.Password != nil)
	s.audit(ctx, p, audit.UserUpdate, userObject(u.ID), a)
	return u, nil
}

// Delete deletes user id.
func (s *Service) Delete(ctx context.Context, p Person, id int64) error {
	if err := people.May(p, admins, "delete users"); err != nil {
		return err
	}
	if err := s.o.Store.DeleteUser(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, p, audit.UserDelete, userObject(id), nil)
	return nil
}

// params are the audit log's account of a user made or changed.
func params(u store.User) audit.Params {
	return audit.Params{"username": u.Username, "role": u.Role, "village": u.Village, "disabled": audit.Flag(u.Disabled)}
}

// Tokens lists the API tokens and sessions.
func (s *Service) Tokens(ctx context.Context, p Person) ([]store.Token, error) {
	if err := people.May(p, admins, "list tokens"); err != nil {
		return nil, err
	}
	return s.o.Store.Tokens(ctx)
}

// MintToken makes an API token (role operator if "") for p, who holds
// the credential by: the new token belongs to by's person (the two-person
// rule counts it as them). It returns the token and its secret, shown
// once.
func (s *Service) MintToken(ctx context.Context, p Person, by store.Token, name, role, village string) (store.Token, string, error) {
	if err := people.May(p, admins, "make API tokens"); err != nil {
		return store.Token{}, "", err
	}
	if role == "" {
		role = api.RoleOperator
	}
	t, secret, err := s.o.Store.CreateToken(ctx, strings.TrimSpace(name), role, village, by)
	if err != nil {
		return store.Token{}, "", err
	}
	s.audit(ctx, p, audit.TokenCreate, tokenObject(t.ID), audit.Params{"name": t.Name, "role": t.Role, "principal": t.Principal()})
	return t, secret, nil
}

// RevokeToken revokes API token (or session) id.
func (s *Service) RevokeToken(ctx context.Context, p Person, id int64) error {
	if err := people.May(p, admins, "revoke tokens"); err != nil {
		return err
	}
	if err := s.o.Store.RevokeToken(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, p, audit.TokenRevoke, tokenObject(id), nil)
	return nil
}
