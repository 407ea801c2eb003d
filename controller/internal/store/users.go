package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"golang.org/x/crypto/argon2"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// User is a person who logs in. Deleted users are kept (marked), so that
// their name in the audit log always means the same person.
type User struct {
	ID          int64
	Username    string
	DisplayName string
	Role        string
	Village     string // for api.RoleVillage
	Disabled    bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   time.Time
	// LastLoginAt is when the user last logged in (their newest
	// session); zero if never, and only filled in by Users.
	LastLoginAt time.Time
}

// NewUser is what an admin gives to create a user.
type NewUser struct {
	Username, DisplayName, Role, Village, Password string
}

// UserChange is a partial update of a user; nil fields stay as they are.
type UserChange struct {
	DisplayName *string
	Role        *string
	Village     *string
	Password    *string
	Disabled    *bool
}

// DefaultSessionTTL is how long a login lasts.
const DefaultSessionTTL = 12 * time.Hour

// MinPasswordLen is the shortest password accepted, in characters.
const MinPasswordLen = 10

const userCols = `id, username, display_name, role, village, disabled, created_at, updated_at, deleted_at`

func scanUser(s scanner) (User, error) { return scanUserAnd(s) }

// scanUserAnd scans userCols and then extra columns into extra.
func scanUserAnd(s scanner, extra ...any) (User, error) {
	var u User
	var village sql.NullString
	dest := append([]any{&u.ID, &u.Username, &u.DisplayName, &u.Role, &village, &u.Disabled,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, timeCol{&u.DeletedAt}}, extra...)
	err := s.Scan(dest...)
	u.Village = village.String
	return u, err
}

// normUsername is the stored form of a username: trimmed, lower case.
func normUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func checkUsername(name string) error {
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return cx.Invalid("username", "give a username of 1 to 64 characters").With(api.ReasonUsernameInvalid)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return cx.Invalid("username", "may not contain spaces or control characters").With(api.ReasonUsernameInvalid)
		}
	}
	return nil
}

func checkPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return cx.Invalid("password", fmt.Sprintf("must be at least %d characters long", MinPasswordLen)).With(api.ReasonPasswordTooShort, "min", MinPasswordLen)
	}
	if len(pw) > 1024 {
		return cx.Invalid("password", "is longer than 1024 bytes").With(api.ReasonPasswordTooLong)
	}
	return nil
}

// CreateUser stores a new user with an argon2id hash of their password.
func (db *DB) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	u := User{Username: normUsername(nu.Username), DisplayName: strings.TrimSpace(nu.DisplayName), Role: nu.Role, Village: nu.Village}
	if err := checkUsername(u.Username); err != nil {
		return User{}, err
	}
	if utf8.RuneCountInString(u.DisplayName) > 100 {
		return User{}, cx.Invalid("display_name", "is longer than 100 characters").With(api.ReasonDisplayNameTooLong)
	}
	if !api.ValidRole(u.Role) {
		return User{}, cx.Invalid("role", "must be one of "+strings.Join(api.Roles, ", ")).With(api.ReasonRoleInvalid)
	}
	if err := checkPassword(nu.Password); err != nil {
		return User{}, err
	}
	hash := hashPassword(nu.Password)
	u.CreatedAt, u.UpdatedAt = db.now(), db.now()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkRoleVillage(ctx, tx, u.Role, u.Village); err != nil {
			return err
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE username = $1`, u.Username).Scan(&one)
		if err == nil {
			return cx.Errorf(cx.ECONFLICT, "the username %q is taken (usernames of deleted users stay taken, so the audit log stays unambiguous)", u.Username).With(api.ReasonUsernameTaken, "username", u.Username)
		}
		if !isNoRows(err) {
			return fmt.Errorf("create user: %w", err)
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO users (username, display_name, role, village, password_hash, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`,
			u.Username, u.DisplayName, u.Role, nullString(u.Village), hash, fmtTime(u.CreatedAt)).Scan(&u.ID)
		if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// Users lists users by id, with their last login; deleted ones only if
// asked.
func (db *DB) Users(ctx context.Context, deleted bool) ([]User, error) {
	return queryAll(ctx, db.db, "users", func(s scanner) (User, error) {
		var last User
		u, err := scanUserAnd(s, timeCol{&last.LastLoginAt})
		u.LastLoginAt = last.LastLoginAt
		return u, err
	}, `SELECT `+userCols+`, (SELECT MAX(t.created_at) FROM api_tokens t WHERE t.user_id = users.id)
		FROM users WHERE $1 OR deleted_at IS NULL ORDER BY id`, deleted)
}

// getUser returns one user, deleted or not.
func getUser(ctx context.Context, q querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if isNoRows(err) {
		return u, cx.Errorf(cx.ENOTFOUND, "no user with id %d", id).With(api.ReasonUserNotFound, "id", id)
	}
	if err != nil {
		return u, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// UpdateUser changes a user. A new password or disabling ends the user's
// sessions; a new role or village applies to live sessions at once. A
// change that would leave no admin able to log in is refused.
func (db *DB) UpdateUser(ctx context.Context, id int64, ch UserChange) (User, error) {
	var hash string
	if ch.Password != nil {
		if err := checkPassword(*ch.Password); err != nil {
			return User{}, err
		}
		hash = hashPassword(*ch.Password)
	}
	var out User
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		u, err := getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if !u.DeletedAt.IsZero() {
			return cx.Errorf(cx.ENOTFOUND, "user %d (%s) was deleted", id, u.Username).With(api.ReasonUserDeleted, "username", u.Username)
		}
		if ch.DisplayName != nil {
			u.DisplayName = strings.TrimSpace(*ch.DisplayName)
			if utf8.RuneCountInString(u.DisplayName) > 100 {
				return cx.Invalid("display_name", "is longer than 100 characters").With(api.ReasonDisplayNameTooLong)
			}
		}
		if ch.Role != nil {
			if !api.ValidRole(*ch.Role) {
				return cx.Invalid("role", "must be one of "+strings.Join(api.Roles, ", ")).With(api.ReasonRoleInvalid)
			}
			u.Role = *ch.Role
			if u.Role != api.RoleVillage && ch.Village == nil {
				u.Village = ""
			}
		}
		if ch.Village != nil {
			u.Village = *ch.Village
		}
		if err := checkRoleVillage(ctx, tx, u.Role, u.Village); err != nil {
			return err
		}
		if ch.Disabled != nil {
			u.Disabled = *ch.Disabled
		}
		u.UpdatedAt = db.now()
		_, err = tx.ExecContext(ctx, `
			UPDATE users SET display_name = $1, role = $2, village = $3, disabled = $4, updated_at = $5,
				password_hash = CASE WHEN $6 = '' THEN password_hash ELSE $6 END
			WHERE id = $7`,
			u.DisplayName, u.Role, nullString(u.Village), u.Disabled, fmtTime(u.UpdatedAt), hash, id)
		if err != nil {
			return fmt.Errorf("update user %d: %w", id, err)
		}
		if hash != "" || u.Disabled {
			if err := db.endSessions(ctx, tx, id); err != nil {
				return err
			}
		}
		if err := db.checkAdminLeft(ctx, tx, api.ReasonLastAdmin, "this would leave no admin who can log in; make another user admin first"); err != nil {
			return err
		}
		out = u
		return nil
	})
	return out, err
}

// DeleteUser marks a user deleted and ends their sessions. The username
// stays taken.
func (db *DB) DeleteUser(ctx context.Context, id int64) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		u, err := getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if !u.DeletedAt.IsZero() {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET deleted_at = $1, updated_at = $1 WHERE id = $2`, fmtTime(db.now()), id); err != nil {
			return fmt.Errorf("delete user %d: %w", id, err)
		}
		if err := db.endSessions(ctx, tx, id); err != nil {
			return err
		}
		return db.checkAdminLeft(ctx, tx, api.ReasonLastAdmin, "this is the last admin who can log in; make another user admin first")
	})
}

func (db *DB) endSessions(ctx context.Context, tx *sql.Tx, userID int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL`, fmtTime(db.now()), userID)
	if err != nil {
		return fmt.Errorf("end sessions of user %d: %w", userID, err)
	}
	return nil
}

// Login checks a username and password and starts a session: a token of
// the user, valid for ttl (DefaultSessionTTL if <= 0). Any mismatch is
// ErrUnauthorized, and costs the same time whether or not the user exists.
func (db *DB) Login(ctx context.Context, username, password string, ttl time.Duration) (Token, string, User, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	name := normUsername(username)
	var hash string
	u, err := scanUserAnd(db.db.QueryRowContext(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE username = $1`, name), &hash)
	if err != nil && !isNoRows(err) {
		return Token{}, "", User{}, fmt.Errorf("login: %w", err)
	}
	ok := checkPasswordHash(password, hash) // a dummy hash when the user is unknown
	if err != nil || !ok || password == "" {
		return Token{}, "", User{}, ErrUnauthorized
	}
	if u.Disabled || !u.DeletedAt.IsZero() {
		return Token{}, "", User{}, &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonAccountDisabled, Message: "this account is disabled; ask an admin"}
	}
	now := db.now()
	secret := newSecret(apiTokenPrefix)
	t := Token{Name: u.Username, Role: u.Role, Village: u.Village, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = db.db.QueryRowContext(ctx, `
		INSERT INTO api_tokens (hash, name, role, village, user_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		hashSecret(secret), t.Name, t.Role, nullString(t.Village), u.ID, fmtTime(now), fmtTime(t.ExpiresAt)).Scan(&t.ID)
	if err != nil {
		return Token{}, "", User{}, fmt.Errorf("login: %w", err)
	}
	return t, secret, u, nil
}

// Argon2id parameters: the OWASP minimum of 19 MiB and 2 passes, which
// costs tens of milliseconds per login here.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns the PHC string of an argon2id hash with a fresh salt.
func hashPassword(pw string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// dummyPasswordHash is checked against when there is no user, so an
// unknown username costs as much as a wrong password.
var dummyPasswordHash = hashPassword("not a password of anyone")

// checkPasswordHash reports whether pw matches the PHC string hash.
func checkPasswordHash(pw, hash string) bool {
	if hash == "" {
		hash = dummyPasswordHash
		pw += "\x00" // never matches
	}
	var (
		version, mem, iters int
		threads             uint8
	)
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil || mem <= 0 || iters <= 0 || threads == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err := errors.Join(err1, err2); err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, uint32(iters), uint32(mem), threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
