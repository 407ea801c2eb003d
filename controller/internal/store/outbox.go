package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kinds of outbox entries: what change the boxes must hear of.
const (
	OutboxBroadcast = "broadcast" // a released broadcast (ref: its id)
	OutboxCancel    = "cancel"    // a released broadcast cancelled (ref: its id)
	OutboxSchedule  = "schedule"  // a schedule made (ref: its id)
	OutboxWithdraw  = "withdraw"  // a schedule withdrawn (ref: its id)
	OutboxConfig    = "config"    // box settings put (ref: ConfigRef(scope, name))
)

// OutboxEntry is a change the boxes must hear of, written in the same
// transaction as the change. The publisher signs its commands (Signed),
// publishes them and marks it sent.
type OutboxEntry struct {
	Seq       int64
	Kind      string
	Ref       string
	CreatedAt time.Time
	Topics    []string  // the topics its signed commands are retained on
	SignedAt  time.Time // zero until its commands are signed and stored
	Attempts  int
	LastError string
}

// broadcast is the id of the broadcast a broadcast entry releases.
func (e OutboxEntry) broadcast() (int64, bool) {
	if e.Kind != OutboxBroadcast {
		return 0, false
	}
	id, err := strconv.ParseInt(e.Ref, 10, 64)
	return id, err == nil
}

// IDRef is the outbox ref of a broadcast or schedule.
func IDRef(id int64) string { return strconv.FormatInt(id, 10) }

// ConfigRef is the outbox ref of a township's or village's settings.
func ConfigRef(scope, name string) string { return scope + "/" + name }

// enqueue writes an outbox entry inside the change's transaction. An
// entry of kind for ref still waiting unsigned is replaced, not kept
// beside it: the new one carries the same change and any since (the
// publisher reads what it publishes when it signs). Without this, an
// operator pressing resend (or cancel, or save) while the broker was away
// piled up entries without bound, each a full signing and publication
// that an emergency made after them waited through. Replacing rather
// than keeping the old entry means a publisher that read the state
// before this change cannot sign it as that entry (SignOutbox then
// answers ErrOutboxSuperseded).
func (db *DB) enqueue(ctx context.Context, tx *sql.Tx, kind, ref string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE kind = $1 AND ref = $2 AND sent_at IS NULL AND signed_at IS NULL`, kind, ref); err != nil {
		return fmt.Errorf("outbox %s %s: %w", kind, ref, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (kind, ref, created_at) VALUES ($1, $2, $3)`, kind, ref, fmtTime(db.now())); err != nil {
		return fmt.Errorf("outbox %s %s: %w", kind, ref, err)
	}
	if db.postgres { // told at commit to the publisher, in whichever process (WatchOutbox)
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, outboxChannel); err != nil {
			return fmt.Errorf("outbox %s %s: %w", kind, ref, err)
		}
	}
	return nil
}

// ErrOutboxSuperseded: the entry being signed was replaced by a later
// change's (enqueue); nothing was stored, and the later entry is to be
// sent instead.
var ErrOutboxSuperseded = errors.New("outbox entry superseded by a later change")

const outboxCols = `seq, kind, ref, created_at, topics, signed_at, attempts, last_error`

func scanOutbox(s scanner) (OutboxEntry, error) {
	var e OutboxEntry
	var topics string
	err := s.Scan(&e.Seq, &e.Kind, &e.Ref, timeCol{&e.CreatedAt}, &topics, timeCol{&e.SignedAt}, &e.Attempts, &e.LastError)
	if err == nil && topics != "" {
		err = json.Unmarshal([]byte(topics), &e.Topics)
	}
	return e, err
}

// UnsentOutbox returns up to limit entries not yet sent, oldest first.
func (db *DB) UnsentOutbox(ctx context.Context, limit int) ([]OutboxEntry, error) {
	return queryAll(ctx, db.db, "unsent outbox", scanOutbox,
		`SELECT `+outboxCols+` FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, limit)
}

// OutboxUnsentFor reports whether an entry of kind for ref is still
// unsent, with the last error its publication met.
func (db *DB) OutboxUnsentFor(ctx context.Context, kind, ref string) (unsent bool, lastError string, err error) {
	err = db.db.QueryRowContext(ctx, `SELECT last_error FROM outbox WHERE kind = $1 AND ref = $2 AND sent_at IS NULL ORDER BY seq DESC LIMIT 1`, kind, ref).Scan(&lastError)
	if isNoRows(err) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("outbox %s %s: %w", kind, ref, err)
	}
	return true, lastError, nil
}

// SignOutbox stores the signed commands of entry seq as retained (each
// replacing what its topic held) and marks the entry signed, in one
// transaction.
func (db *DB) SignOutbox(ctx context.Context, seq int64, rs []Retained) error {
	topics := make([]string, len(rs))
	for i, r := range rs {
		topics[i] = r.Topic
	}
	t, _ := json.Marshal(topics)
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.checkLease(ctx, tx); err != nil {
			return err
		}
		for _, r := range rs {
			if err := putRetained(ctx, tx, r); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET signed_at = $1, topics = $2 WHERE seq = $3 AND sent_at IS NULL`, fmtTime(db.now()), string(t), seq)
		if err != nil {
			return fmt.Errorf("sign outbox %d: %w", seq, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("sign outbox %d: %w", seq, ErrOutboxSuperseded)
		}
		return nil
	})
}

// OutboxSent marks entry seq sent: the broker has acknowledged its
// commands. A broadcast's first delivery is recorded in its SentAt (and
// clears its SendError). Sent entries older than a week are forgotten.
func (db *DB) OutboxSent(ctx context.Context, e OutboxEntry) error {
	now := db.now()
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.checkLease(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = $1, last_error = '' WHERE seq = $2`, fmtTime(now), e.Seq); err != nil {
			return fmt.Errorf("outbox %d sent: %w", e.Seq, err)
		}
		if id, ok := e.broadcast(); ok {
			if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET send_error = '', sent_at = COALESCE(sent_at, $1) WHERE id = $2`, fmtTime(now), id); err != nil {
				return fmt.Errorf("outbox %d sent: %w", e.Seq, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1`, fmtTime(now.Add(-7*24*time.Hour))); err != nil {
			return fmt.Errorf("outbox %d sent: %w", e.Seq, err)
		}
		return nil
	})
}

// OutboxFailed records why entry seq could not be sent yet; it stays in
// the outbox. For a broadcast the reason is shown as its SendError
// (sendErr, worded for people), for the rest it is in the log.
func (db *DB) OutboxFailed(ctx context.Context, e OutboxEntry, cause, sendErr string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.checkLease(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2`, cause, e.Seq); err != nil {
			return fmt.Errorf("outbox %d failed: %w", e.Seq, err)
		}
		if id, ok := e.broadcast(); ok && sendErr != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE broadcasts SET send_error = $1 WHERE id = $2`, sendErr, id); err != nil {
				return fmt.Errorf("outbox %d failed: %w", e.Seq, err)
			}
		}
		return nil
	})
}

// OutboxDrop takes an entry that can never be sent (its broadcast or
// schedule is gone) out of the outbox, so it holds up nothing behind it.
func (db *DB) OutboxDrop(ctx context.Context, e OutboxEntry, cause string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.checkLease(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = $1, last_error = $2 WHERE seq = $3`, fmtTime(db.now()), "dropped: "+cause, e.Seq)
		if err != nil {
			return fmt.Errorf("drop outbox %d: %w", e.Seq, err)
		}
		return nil
	})
}
