package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Token roles.
const (
	RoleAdmin = "admin" // everything, including tokens and the audit log
	RoleStaff = "staff" // villages, audio, playlists, schedules
)

// Token is a staff API token as stored; the secret itself is never stored.
type Token struct {
	ID        int64
	Name      string
	Role      string
	CreatedAt time.Time
	RevokedAt time.Time
}

const (
	apiTokenPrefix    = "cxa_"
	enrollTokenPrefix = "cxe_"
)

// EnsureAdminToken creates the first admin token when there are no API
// tokens at all, and returns it; otherwise it returns created=false and no
// token. The token is shown once: only its hash is kept.
func (db *DB) EnsureAdminToken(ctx context.Context) (token string, created bool, err error) {
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens`).Scan(&n); err != nil {
			return fmt.Errorf("ensure admin token: %w", err)
		}
		if n > 0 {
			return nil
		}
		token = newSecret(apiTokenPrefix)
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (hash, name, role, created_at) VALUES ($1, $2, $3, $4)`,
			hashSecret(token), "admin", RoleAdmin, fmtTime(db.now())); err != nil {
			return fmt.Errorf("ensure admin token: %w", err)
		}
		created = true
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return token, created, nil
}

// CreateToken makes a new API token and returns its secret, shown once.
func (db *DB) CreateToken(ctx context.Context, name, role string) (Token, string, error) {
	if name == "" || len(name) > 100 {
		return Token{}, "", cx.Invalid("name", "give the token a name of 1 to 100 characters, such as the person's name")
	}
	if role != RoleAdmin && role != RoleStaff {
		return Token{}, "", cx.Invalid("role", `must be "staff" or "admin"`)
	}
	secret := newSecret(apiTokenPrefix)
	t := Token{Name: name, Role: role, CreatedAt: db.now()}
	err := db.db.QueryRowContext(ctx, `INSERT INTO api_tokens (hash, name, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		hashSecret(secret), name, role, fmtTime(t.CreatedAt)).Scan(&t.ID)
	if err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	return t, secret, nil
}

// Authenticate returns the live token whose secret is token.
func (db *DB) Authenticate(ctx context.Context, token string) (Token, error) {
	if token == "" {
		return Token{}, ErrUnauthorized
	}
	// Looking up by hash leaks nothing useful through timing: an attacker
	// cannot steer the hash of a guess towards a stored one.
	var t Token
	err := db.db.QueryRowContext(ctx, `SELECT id, name, role, created_at FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL`,
		hashSecret(token)).Scan(&t.ID, &t.Name, &t.Role, timeCol{&t.CreatedAt})
	if isNoRows(err) {
		return Token{}, ErrUnauthorized
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate: %w", err)
	}
	return t, nil
}

// Tokens lists API tokens, revoked ones included.
func (db *DB) Tokens(ctx context.Context) ([]Token, error) {
	return queryAll(ctx, db.db, "tokens", func(s scanner) (Token, error) {
		var t Token
		err := s.Scan(&t.ID, &t.Name, &t.Role, timeCol{&t.CreatedAt}, timeCol{&t.RevokedAt})
		return t, err
	}, `SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY id`)
}

// RevokeToken revokes an API token. Revoking the last live admin token is
// refused, so the installation can never lock itself out.
func (db *DB) RevokeToken(ctx context.Context, id int64) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var role string
		var revoked sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT role, revoked_at FROM api_tokens WHERE id = $1`, id).Scan(&role, &revoked)
		if isNoRows(err) {
			return notFound("no token with id %d", id)
		}
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if revoked.Valid {
			return nil
		}
		if role == RoleAdmin {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE role = $1 AND revoked_at IS NULL`, RoleAdmin).Scan(&n); err != nil {
				return fmt.Errorf("revoke token: %w", err)
			}
			if n <= 1 {
				return cx.Errorf(cx.ECONFLICT, "this is the last admin token; create another admin token before revoking it")
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2`, fmtTime(db.now()), id); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		return nil
	})
}

// EnrollToken is a one-time token that lets one box enroll for a village.
type EnrollToken struct {
	Token     string
	Village   string
	ExpiresAt time.Time
}

// DefaultEnrollTTL is how long an enrollment token stays usable.
const DefaultEnrollTTL = 24 * time.Hour

// CreateEnrollToken makes a one-time enrollment token for an agent village.
// ttl <= 0 means DefaultEnrollTTL.
func (db *DB) CreateEnrollToken(ctx context.Context, village string, ttl time.Duration, createdBy string) (EnrollToken, error) {
	if ttl <= 0 {
		ttl = DefaultEnrollTTL
	}
	now := db.now()
	et := EnrollToken{Token: newSecret(enrollTokenPrefix), Village: village, ExpiresAt: now.Add(ttl)}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var device string
		err := tx.QueryRowContext(ctx, `SELECT device FROM villages WHERE code = $1`, village).Scan(&device)
		if isNoRows(err) {
			return notFound("no village with code %s; import it first", village)
		}
		if err != nil {
			return fmt.Errorf("enroll token: %w", err)
		}
		if device != playlists.DeviceAgent {
			return cx.Errorf(cx.ECONFLICT, "village %s has device %q, not %q: it has no box to enroll (change its device in the village list first)", village, device, playlists.DeviceAgent)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO enroll_tokens (hash, village, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			hashSecret(et.Token), village, fmtTime(now), createdBy, fmtTime(et.ExpiresAt))
		if err != nil {
			return fmt.Errorf("enroll token: %w", err)
		}
		return nil
	})
	if err != nil {
		return EnrollToken{}, err
	}
	return et, nil
}

// AgentCredentials are a box's MQTT username and password, returned once
// at enrollment.
type AgentCredentials struct {
	Village  string
	Username string
	Password string
	// LastSeq is the highest report seq stored from this village; a
	// replacement box must number its reports after it.
	LastSeq int64
}

// AgentUsername is the MQTT username of a village's box.
func AgentUsername(village string) string { return "box-" + village }

// Enroll spends a one-time enrollment token and gives the village's box a
// fresh MQTT password. Re-enrolling (a replaced box) replaces the password;
// the old one stops working. The reports the village already stored, and
// its acked seq, are kept.
func (db *DB) Enroll(ctx context.Context, req api.EnrollRequest) (AgentCredentials, error) {
	now := db.now()
	creds := AgentCredentials{Password: newSecret("")}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var village string
		var expires, used time.Time
		err := tx.QueryRowContext(ctx, `SELECT village, expires_at, used_at FROM enroll_tokens WHERE hash = $1`,
			hashSecret(req.Token)).Scan(&village, timeCol{&expires}, timeCol{&used})
		switch {
		case isNoRows(err):
			return &cx.Error{Code: cx.EUNAUTHORIZED, Message: "unknown enrollment token; check it was copied completely"}
		case err != nil:
			return fmt.Errorf("enroll: %w", err)
		case !used.IsZero():
			return &cx.Error{Code: cx.EUNAUTHORIZED, Message: "this enrollment token was already used; ask the office for a new one"}
		case !now.Before(expires):
			return &cx.Error{Code: cx.EUNAUTHORIZED, Message: fmt.Sprintf("this enrollment token expired at %s; ask the office for a new one", expires.Format(time.RFC3339))}
		case req.Village != "" && req.Village != village:
			return &cx.Error{Code: cx.EUNAUTHORIZED, Message: "this enrollment token is for another village"}
		}
		res, err := tx.ExecContext(ctx, `UPDATE enroll_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL`, fmtTime(now), hashSecret(req.Token))
		if err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return &cx.Error{Code: cx.EUNAUTHORIZED, Message: "this enrollment token was already used; ask the office for a new one"}
		}
		creds.Village = village
		creds.Username = AgentUsername(village)
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events WHERE village = $1`, village).Scan(&creds.LastSeq); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO agents (village, mqtt_username, secret_hash, enrolled_at, agent_version)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (village) DO UPDATE SET
				mqtt_username = excluded.mqtt_username, secret_hash = excluded.secret_hash,
				enrolled_at = excluded.enrolled_at, agent_version = excluded.agent_version`,
			village, creds.Username, hashSecret(creds.Password), fmtTime(now), req.AgentVersion)
		if err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		return nil
	})
	if err != nil {
		return AgentCredentials{}, err
	}
	return creds, nil
}

// dummyHash is compared against when a username is unknown, so a wrong
// username costs the same time as a wrong password.
var dummyHash = make([]byte, 32)

// CheckAgentPassword returns the village of the box whose MQTT credentials
// these are, or ErrUnauthorized.
func (db *DB) CheckAgentPassword(ctx context.Context, username, password string) (village string, err error) {
	var stored string
	err = db.db.QueryRowContext(ctx, `SELECT village, secret_hash FROM agents WHERE mqtt_username = $1`, username).Scan(&village, &stored)
	if err != nil && !isNoRows(err) {
		return "", fmt.Errorf("check agent password: %w", err)
	}
	want, decErr := hex.DecodeString(stored)
	if err != nil || decErr != nil || len(want) != 32 {
		want = dummyHash
		village = ""
	}
	got, _ := hex.DecodeString(hashSecret(password))
	if subtle.ConstantTimeCompare(got, want) != 1 || village == "" || password == "" {
		return "", ErrUnauthorized
	}
	return village, nil
}
