package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// IdempotencyTTL is how long an Idempotency-Key and its answer are kept:
// a repeat within it gets the first answer; after it the key is free.
const IdempotencyTTL = 24 * time.Hour

// IdempotentAnswer is what is kept of the first request made with an
// Idempotency-Key.
type IdempotentAnswer struct {
	// RequestHash identifies the request (method, path, body): the same
	// key with another request is refused.
	RequestHash string
	// Done is false while the first request is still being carried out.
	Done   bool
	Status int
	Body   []byte
	// Object is what the first request made ("broadcast/12"), named in
	// the change's own transaction: "" if it made nothing (yet).
	Object string
	// Abandoned: the first request was claimed by a process that is
	// gone (it died before answering): not this one, and no longer
	// running by its heartbeat (or its pid, on this machine).
	Abandoned bool
}

type idemCtxKey struct{}

type idemClaim struct{ person, key string }

// WithIdempotencyKey marks ctx as carrying out the request person claimed
// with key: a change made with it (CreateBroadcast, CreateSchedule,
// CreatePlaylist) names itself on the key in its own transaction.
func WithIdempotencyKey(ctx context.Context, person, key string) context.Context {
	return context.WithValue(ctx, idemCtxKey{}, idemClaim{person, key})
}

// bindIdempotency names object on the idempotency key ctx carries, if
// any, inside the change's transaction.
func bindIdempotency(ctx context.Context, tx *sql.Tx, object string) error {
	c, ok := ctx.Value(idemCtxKey{}).(idemClaim)
	if !ok {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET object = $1 WHERE person = $2 AND idem_key = $3`, object, c.person, c.key); err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	return nil
}

// ClaimIdempotencyKey records that person starts a request with key. It
// returns claimed=true when this is the first request with the key (the
// caller now carries it out and calls FinishIdempotencyKey or
// ReleaseIdempotencyKey), and otherwise what is known of the first one.
// The insert is the claim, so of two concurrent requests exactly one
// claims. Keys older than IdempotencyTTL are forgotten first.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, person, key, requestHash string) (first IdempotentAnswer, claimed bool, err error) {
	now := db.now()
	if _, err := db.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, fmtTime(now.Add(-IdempotencyTTL))); err != nil {
		return first, false, fmt.Errorf("expire idempotency keys: %w", err)
	}
	res, err := db.db.ExecContext(ctx, `
		INSERT INTO idempotency_keys (person, idem_key, request_hash, created_at, owner) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (person, idem_key) DO NOTHING`, person, key, requestHash, fmtTime(now), db.instance())
	if err != nil {
		return first, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return first, false, fmt.Errorf("claim idempotency key: %w", err)
	} else if n == 1 {
		return IdempotentAnswer{RequestHash: requestHash}, true, nil
	}
	first, err = db.IdempotentAnswer(ctx, person, key)
	return first, false, err
}

// IdempotentAnswer returns what is kept of the first request with key.
func (db *DB) IdempotentAnswer(ctx context.Context, person, key string) (IdempotentAnswer, error) {
	var a IdempotentAnswer
	var status sql.NullInt64
	var body sql.NullString
	var owner string
	err := db.db.QueryRowContext(ctx, `SELECT request_hash, status, body, object, owner FROM idempotency_keys WHERE person = $1 AND idem_key = $2`,
		person, key).Scan(&a.RequestHash, &status, &body, &a.Object, &owner)
	if isNoRows(err) {
		return a, cx.Errorf(cx.ENOTFOUND, "no request with this idempotency key").With(api.ReasonIdempotencyKeyUnknown)
	}
	if err != nil {
		return a, fmt.Errorf("idempotency key: %w", err)
	}
	a.Done, a.Status, a.Body = status.Valid, int(status.Int64), []byte(body.String)
	if !a.Done {
		// Abandoned only if its process is gone, not because it is another
		// controller's (two may share the database) nor because it is old.
		if a.Abandoned, err = db.gone(ctx, owner); err != nil {
			return a, fmt.Errorf("idempotency key: %w", err)
		}
	}
	return a, nil
}

// FinishIdempotencyKey keeps the answer of the request that claimed key
// (in this process: a key another took over is not changed).
func (db *DB) FinishIdempotencyKey(ctx context.Context, person, key string, status int, body []byte) error {
	_, err := db.db.ExecContext(ctx, `UPDATE idempotency_keys SET status = $1, body = $2 WHERE person = $3 AND idem_key = $4 AND owner = $5`,
		status, string(body), person, key, db.instance())
	if err != nil {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a claimed key whose request failed for a
// reason a retry may not meet (a server error), so that a retry with the
// same key is carried out; it reports false, and keeps the key, if the
// request's change committed (the key names an object): a retry must not
// make it twice.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, person, key string) (bool, error) {
	res, err := db.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE person = $1 AND idem_key = $2 AND status IS NULL AND object = '' AND owner = $3`, person, key, db.instance())
	if err != nil {
		return false, fmt.Errorf("release idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("release idempotency key: %w", err)
	}
	return n == 1, nil
}

// TakeOverIdempotencyKey claims for this process a key whose first request
// was abandoned before its change committed (its process is gone); it
// reports whether it did (of two repeats, one does). A key claimed by a
// process still running, here or in another controller, is not taken.
func (db *DB) TakeOverIdempotencyKey(ctx context.Context, person, key string) (bool, error) {
	var owner string
	err := db.db.QueryRowContext(ctx, `SELECT owner FROM idempotency_keys WHERE person = $1 AND idem_key = $2 AND status IS NULL AND object = ''`,
		person, key).Scan(&owner)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take over idempotency key: %w", err)
	}
	if gone, err := db.gone(ctx, owner); err != nil || !gone {
		return false, err // its process still runs: it answers
	}
	// Only from the owner read: of two repeats, one takes it.
	res, err := db.db.ExecContext(ctx, `UPDATE idempotency_keys SET owner = $1, created_at = $2
		WHERE person = $3 AND idem_key = $4 AND status IS NULL AND object = '' AND owner = $5`, db.instance(), fmtTime(db.now()), person, key, owner)
	if err != nil {
		return false, fmt.Errorf("take over idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("take over idempotency key: %w", err)
	}
	return n == 1, nil
}
