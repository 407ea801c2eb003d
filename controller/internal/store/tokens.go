package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Token is an API token as stored; the secret itself is never stored. A
// login session is a token with a UserID and an ExpiresAt; its role and
// village are always the user's current ones.
type Token struct {
	ID        int64
	Name      string // the user's username for a session
	Role      string
	Village   string // for api.RoleVillage
	UserID    int64  // the user of a login session; 0 for an API token
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time
	// OwnerUserID is the user accountable for an API token: the one who
	// minted it, with a session or with another token of theirs. Such a
	// token works only while that user is enabled and still an admin or
	// of the token's role.
	OwnerUserID int64
	// OwnerTokenID is, for an API token minted by a token of no user, the
	// first token of that chain: usually the installation's bootstrap
	// admin token (the one created at first start).
	OwnerTokenID int64
}

// Principal names the person accountable for the token, for the two-person
// rule: every session of a user and every API token the user minted (or
// that a token of theirs minted) is that user, "user/<id>". A token of no
// user is its own person, "token/<id>": the installation's bootstrap admin
// (and any token made before tokens recorded who minted them); a token it
// minted, directly or through other tokens, is that same person.
func (t Token) Principal() string {
	switch {
	case t.UserID != 0:
		return "user/" + strconv.FormatInt(t.UserID, 10)
	case t.OwnerUserID != 0:
		return "user/" + strconv.FormatInt(t.OwnerUserID, 10)
	case t.OwnerTokenID != 0:
		return "token/" + strconv.FormatInt(t.OwnerTokenID, 10)
	}
	return "token/" + strconv.FormatInt(t.ID, 10)
}

// owners is who a token minted by t belongs to: t's person.
func (t Token) owners() (userID, tokenID int64) {
	switch {
	case t.UserID != 0:
		return t.UserID, 0
	case t.OwnerUserID != 0:
		return t.OwnerUserID, 0
	case t.OwnerTokenID != 0:
		return 0, t.OwnerTokenID
	}
	return 0, t.ID
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
			hashSecret(token), "admin", api.RoleAdmin, fmtTime(db.now())); err != nil {
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
// village is required for api.RoleVillage and must be empty otherwise. by is
// the credential that mints it: the new token belongs to by's person
// (Token.Principal) and acts as that person for the two-person rule. A
// token can have no more power than its minter: only an admin mints a
// token of another role. A zero by makes a token that is its own person
// (for tests and tools that stand for a separate person).
func (db *DB) CreateToken(ctx context.Context, name, role, village string, by Token) (Token, string, error) {
	if name == "" || len(name) > 100 {
		return Token{}, "", cx.Invalid("name", "give the token a name of 1 to 100 characters, such as the person's name").With(api.ReasonTokenName, "max", 100)
	}
	if !api.ValidRole(role) {
		return Token{}, "", cx.Invalid("role", "must be one of "+strings.Join(api.Roles, ", ")).With(api.ReasonRoleInvalid)
	}
	if by.ID != 0 && by.Role != api.RoleAdmin && (role != by.Role || village != by.Village) {
		return Token{}, "", cx.Errorf(cx.EFORBIDDEN, "a %s may mint only a token of their own role and village, never one with more power", by.Role).With(api.ReasonTokenMorePower)
	}
	secret := newSecret(apiTokenPrefix)
	t := Token{Name: name, Role: role, Village: village, CreatedAt: db.now()}
	if by.ID != 0 {
		t.OwnerUserID, t.OwnerTokenID = by.owners()
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := checkRoleVillage(ctx, tx, role, village); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO api_tokens (hash, name, role, village, created_at, owner_user_id, owner_token_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			hashSecret(secret), name, role, nullString(village), fmtTime(t.CreatedAt), nullID(t.OwnerUserID), nullID(t.OwnerTokenID)).Scan(&t.ID)
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		return nil
	})
	if err != nil {
		return Token{}, "", err
	}
	return t, secret, nil
}

// checkRoleVillage: the village role needs a stored village, the others none.
func checkRoleVillage(ctx context.Context, q querier, role, village string) error {
	if role != api.RoleVillage {
		if village != "" {
			return cx.Invalid("village", "only a village account has a village; leave it out for the role "+role).With(api.ReasonVillageNotForRole)
		}
		return nil
	}
	if village == "" {
		return cx.Invalid("village", "a village account needs the 12-digit code of its village").With(api.ReasonVillageRequired)
	}
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM villages WHERE code = $1`, village).Scan(&one)
	if isNoRows(err) {
		return cx.Invalid("village", fmt.Sprintf("there is no village with code %q", village)).With(api.ReasonVillageUnknown, "code", village)
	}
	if err != nil {
		return fmt.Errorf("check village: %w", err)
	}
	return nil
}

// Authenticate returns the live token whose secret is token: not revoked,
// not expired, and if it is a session, of a user who is neither disabled
// nor deleted.
func (db *DB) Authenticate(ctx context.Context, token string) (Token, error) {
	if token == "" {
		return Token{}, ErrUnauthorized
	}
	// Looking up by hash leaks nothing useful through timing: an attacker
	// cannot steer the hash of a guess towards a stored one.
	var (
		t                       Token
		village                 sql.NullString
		userID, ownerU, ownerT  sql.NullInt64
		disabled, ownerDisabled sql.NullBool
		userDeleted, ownerGone  time.Time
		ownerRole, ownerName    sql.NullString
		mintedWith              sql.NullInt64 // the owner token, if it still exists
		mintedWithRevoked       time.Time
	)
	err := db.db.QueryRowContext(ctx, `
		SELECT t.id, t.name,
			CASE WHEN u.id IS NULL THEN t.role ELSE u.role END,
			CASE WHEN u.id IS NULL THEN t.village ELSE u.village END,
			t.user_id, t.created_at, t.expires_at, u.disabled, u.deleted_at,
			t.owner_user_id, t.owner_token_id, o.username, o.role, o.disabled, o.deleted_at, ot.id, ot.revoked_at
		FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN users o ON o.id = t.owner_user_id
			LEFT JOIN api_tokens ot ON ot.id = t.owner_token_id
		WHERE t.hash = $1 AND t.revoked_at IS NULL`,
		hashSecret(token)).Scan(&t.ID, &t.Name, &t.Role, &village, &userID, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, &disabled, timeCol{&userDeleted},
		&ownerU, &ownerT, &ownerName, &ownerRole, &ownerDisabled, timeCol{&ownerGone}, &mintedWith, timeCol{&mintedWithRevoked})
	if isNoRows(err) {
		return Token{}, ErrUnauthorized
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate: %w", err)
	}
	t.Village, t.UserID, t.OwnerUserID, t.OwnerTokenID = village.String, userID.Int64, ownerU.Int64, ownerT.Int64
	switch {
	case !t.ExpiresAt.IsZero() && !db.now().Before(t.ExpiresAt):
		return Token{}, &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonSessionExpired, Message: "the session has expired; log in again"}
	case userID.Valid && (disabled.Bool || !userDeleted.IsZero()):
		return Token{}, &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonAccountDisabled, Message: "this account is disabled; ask an admin"}
	case ownerU.Valid && (ownerDisabled.Bool || !ownerGone.IsZero()):
		return Token{}, cx.Errorf(cx.EUNAUTHORIZED, "this token was minted by %s, whose account is disabled or deleted; ask an admin for a new one", ownerName.String).With(api.ReasonTokenOwnerGone, "username", ownerName.String)
	case ownerT.Valid && (!mintedWith.Valid || !mintedWithRevoked.IsZero()):
		// A token minted with a person-less token acts as that token
		// (Principal): revoking a leaked token revokes what it minted.
		return Token{}, cx.Errorf(cx.EUNAUTHORIZED, "this token was minted with token %d, which has been revoked; ask an admin for a new one", ownerT.Int64).With(api.ReasonTokenParentRevoked, "id", ownerT.Int64)
	case ownerU.Valid && ownerRole.String != api.RoleAdmin && ownerRole.String != t.Role:
		return Token{}, cx.Errorf(cx.EUNAUTHORIZED, "this token was minted by %s, who is no longer an admin; ask an admin for a new one", ownerName.String).With(api.ReasonTokenOwnerDemoted, "username", ownerName.String)
	}
	return t, nil
}

// Tokens lists API tokens, revoked ones included, and the sessions that
// are still live.
func (db *DB) Tokens(ctx context.Context) ([]Token, error) {
	return queryAll(ctx, db.db, "tokens", func(s scanner) (Token, error) {
		var t Token
		var village sql.NullString
		var userID, ownerU, ownerT sql.NullInt64
		err := s.Scan(&t.ID, &t.Name, &t.Role, &village, &userID, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, timeCol{&t.RevokedAt}, &ownerU, &ownerT)
		t.Village, t.UserID, t.OwnerUserID, t.OwnerTokenID = village.String, userID.Int64, ownerU.Int64, ownerT.Int64
		return t, err
	}, `SELECT id, name, role, village, user_id, created_at, expires_at, revoked_at, owner_user_id, owner_token_id FROM api_tokens
		WHERE user_id IS NULL OR (revoked_at IS NULL AND expires_at > $1)
		ORDER BY id`, fmtTime(db.now()))
}

// RevokeToken revokes an API token or session. Revoking the last admin
// credential is refused, so the installation can never lock itself out.
func (db *DB) RevokeToken(ctx context.Context, id int64) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, fmtTime(db.now()), id)
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM api_tokens WHERE id = $1`, id).Scan(&one)
			if isNoRows(err) {
				return cx.Errorf(cx.ENOTFOUND, "no token with id %d", id).With(api.ReasonTokenNotFound, "id", id)
			}
			if err != nil {
				return fmt.Errorf("revoke token: %w", err)
			}
			return nil // already revoked
		}
		return db.checkAdminLeft(ctx, tx, api.ReasonLastAdminToken, "this is the last admin token; create an admin user or another admin token before revoking it")
	})
}

// checkAdminLeft fails with reason and msg (a conflict) when, inside tx, no admin
// credential would be left that can outlive a session: an enabled admin
// user, or a live admin API token of no user. (A token a user minted
// lives only as long as that user, who is counted already.)
func (db *DB) checkAdminLeft(ctx context.Context, tx *sql.Tx, reason, msg string) error {
	var n int
	err := tx.QueryRowContext(ctx, `
		SELECT (SELECT COUNT(*) FROM users WHERE role = $1 AND NOT disabled AND deleted_at IS NULL)
		     + (SELECT COUNT(*) FROM api_tokens WHERE role = $1 AND user_id IS NULL AND owner_user_id IS NULL AND revoked_at IS NULL
		            AND (expires_at IS NULL OR expires_at > $2))`,
		api.RoleAdmin, fmtTime(db.now())).Scan(&n)
	if err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n == 0 {
		return cx.Errorf(cx.ECONFLICT, "%s", msg).With(reason)
	}
	return nil
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
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
			return cx.Errorf(cx.ENOTFOUND, "no village with code %s; import it first", village).With(api.ReasonVillageUnknown, "code", village)
		}
		if err != nil {
			return fmt.Errorf("enroll token: %w", err)
		}
		if device != playlists.DeviceAgent {
			return cx.Errorf(cx.ECONFLICT, "village %s has device %q, not %q: it has no box to enroll (change its device in the village list first)", village, device, playlists.DeviceAgent).With(api.ReasonVillageNoBox, "code", village)
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
	return db.EnrollWith(ctx, req, nil)
}

// EnrollWith is Enroll that also hands the new credentials to provision
// (e.g. to create the box's account on an external broker) before the
// token is spent: if provision fails, nothing is stored and the token can
// be used again.
func (db *DB) EnrollWith(ctx context.Context, req api.EnrollRequest, provision func(context.Context, AgentCredentials) error) (AgentCredentials, error) {
	now := db.now()
	creds := AgentCredentials{Password: newSecret("")}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var village string
		var expires, used time.Time
		err := tx.QueryRowContext(ctx, `SELECT village, expires_at, used_at FROM enroll_tokens WHERE hash = $1`,
			hashSecret(req.Token)).Scan(&village, timeCol{&expires}, timeCol{&used})
		switch {
		case isNoRows(err):
			return &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonEnrollTokenUnknown, Message: "unknown enrollment token; check it was copied completely"}
		case err != nil:
			return fmt.Errorf("enroll: %w", err)
		case !used.IsZero():
			return &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonEnrollTokenUsed, Message: "this enrollment token was already used; ask the office for a new one"}
		case !now.Before(expires):
			return cx.Errorf(cx.EUNAUTHORIZED, "this enrollment token expired at %s; ask the office for a new one", expires.Format(time.RFC3339)).With(api.ReasonEnrollTokenExpired, "at", expires.Format(time.RFC3339))
		case req.Village != "" && req.Village != village:
			return &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonEnrollTokenOtherVillage, Message: "this enrollment token is for another village"}
		}
		res, err := tx.ExecContext(ctx, `UPDATE enroll_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL`, fmtTime(now), hashSecret(req.Token))
		if err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonEnrollTokenUsed, Message: "this enrollment token was already used; ask the office for a new one"}
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
		if provision != nil {
			return provision(ctx, creds)
		}
		return nil
	})
	if err != nil {
		return AgentCredentials{}, err
	}
	return creds, nil
}

// RevokeAgent cuts off the village's box: its MQTT password stops working
// at once (for the broker and for audio downloads) and every unused
// enrollment token of the village is spent, so a stolen box, or a token
// taped inside it, is worth nothing. The box's reports and acked seq are
// kept; a new box enrolls with a new token. unprovision, if set, runs
// before the change commits (e.g. to delete the box's account on an
// external broker): if it fails, nothing changes.
func (db *DB) RevokeAgent(ctx context.Context, village string, unprovision func(ctx context.Context, username string) error) error {
	now := db.now()
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var user string
		err := tx.QueryRowContext(ctx, `SELECT mqtt_username FROM agents WHERE village = $1`, village).Scan(&user)
		switch {
		case isNoRows(err):
			return cx.Errorf(cx.ENOTFOUND, "village %s has no enrolled box to revoke", village).With(api.ReasonNoEnrolledBox, "code", village)
		case err != nil:
			return fmt.Errorf("revoke box: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET secret_hash = '' WHERE village = $1`, village); err != nil {
			return fmt.Errorf("revoke box: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE enroll_tokens SET used_at = $1 WHERE village = $2 AND used_at IS NULL`, fmtTime(now), village); err != nil {
			return fmt.Errorf("revoke box: %w", err)
		}
		if unprovision != nil {
			return unprovision(ctx, user)
		}
		return nil
	})
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
