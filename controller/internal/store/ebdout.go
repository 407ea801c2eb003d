package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// EBDOut is a signed packet queued for the upper platform of the national
// emergency-broadcast chain (migration 00014): built and signed when it
// is queued, sent oldest first, retried until the platform answers.
type EBDOut struct {
	Seq         int64
	EBDID       string
	Type        string // its EBDType
	BroadcastID int64  // the broadcast an EBMBrdLog reports; 0 for other types
	Packet      []byte // the signed tar archive to POST
	CreatedAt   time.Time
	Attempts    int
	// NextAttemptAt is when the sender may try it (again).
	NextAttemptAt time.Time
	LastError     string
	SentAt        time.Time // zero until the platform answered
	// ResultCode and ResultDesc are the platform's EBDResponse (ResultCode
	// -1 until it answered).
	ResultCode int
	ResultDesc string
}

// ebdOutKeep is how long sent packets are kept (for the console).
const ebdOutKeep = 30 * 24 * time.Hour

const ebdOutCols = `seq, ebdid, type, broadcast_id, packet, created_at, attempts, next_attempt_at, last_error, sent_at, result_code, result_desc`

func scanEBDOut(s scanner) (EBDOut, error) {
	var e EBDOut
	var bid, code sql.NullInt64
	err := s.Scan(&e.Seq, &e.EBDID, &e.Type, &bid, &e.Packet, timeCol{&e.CreatedAt}, &e.Attempts, timeCol{&e.NextAttemptAt},
		&e.LastError, timeCol{&e.SentAt}, &code, &e.ResultDesc)
	e.BroadcastID = bid.Int64
	e.ResultCode = -1
	if code.Valid {
		e.ResultCode = int(code.Int64)
	}
	return e, err
}

// queueTx runs fn in a transaction without moving Version: the queue is
// the reporter's own bookkeeping, not data that caches are made of (and
// the reporter watches Version for changes to report).
func (db *DB) queueTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// EnqueueEBD queues a packet of type typ; broadcastID names the broadcast
// an EBMBrdLog reports (0 for other types). build is called inside the
// transaction with the entry's sequence number (unique, increasing: the
// caller makes the EBDID from it) and returns the EBDID and the signed
// archive; if it fails, nothing is queued. A broadcast already queued is
// not queued again: queued is then false and build is not called.
//
// ebmid, if not empty, is the message ID the broadcast is reported as: a
// broadcast made here gets it as its EBMID, in the same transaction, if
// it has none and no other broadcast has it (so that the upper
// platform's EBMStateRequest finds it by BroadcastByEBMID).
func (db *DB) EnqueueEBD(ctx context.Context, typ string, broadcastID int64, ebmid string, build func(seq int64) (ebdid string, packet []byte, err error)) (e EBDOut, queued bool, err error) {
	now := db.now()
	named := false
	err = db.queueTx(ctx, func(tx *sql.Tx) error {
		var bid any
		if broadcastID != 0 {
			bid = broadcastID
		}
		// The conflict target names the partial unique index, so that
		// only a second log of the same broadcast is skipped.
		err := tx.QueryRowContext(ctx, `
			INSERT INTO ebd_outbound (type, broadcast_id, created_at, next_attempt_at) VALUES ($1, $2, $3, $3)
			ON CONFLICT (broadcast_id) WHERE broadcast_id IS NOT NULL DO NOTHING
			RETURNING seq`, typ, bid, fmtTime(now)).Scan(&e.Seq)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("queue %s: %w", typ, err)
		}
		if broadcastID != 0 && ebmid != "" {
			res, err := tx.ExecContext(ctx, `UPDATE broadcasts SET ebm_id = $1 WHERE id = $2 AND ebm_id = ''
				AND NOT EXISTS (SELECT 1 FROM broadcasts o WHERE o.ebm_id = $1)`, ebmid, broadcastID)
			if err != nil {
				return fmt.Errorf("queue %s: name broadcast %d %s: %w", typ, broadcastID, ebmid, err)
			}
			n, _ := res.RowsAffected()
			named = n == 1
		}
		ebdid, packet, err := build(e.Seq)
		if err != nil {
			return fmt.Errorf("queue %s: %w", typ, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ebd_outbound SET ebdid = $1, packet = $2 WHERE seq = $3`, ebdid, packet, e.Seq); err != nil {
			return fmt.Errorf("queue %s: %w", typ, err)
		}
		e = EBDOut{Seq: e.Seq, EBDID: ebdid, Type: typ, BroadcastID: broadcastID, Packet: packet, CreatedAt: now, NextAttemptAt: now, ResultCode: -1}
		queued = true
		return nil
	})
	if err == nil && named {
		db.version.Add(1) // the broadcast changed
	}
	return e, queued, err
}

// NextEBDOut returns the oldest packet not yet sent; ok is false when the
// queue is empty. The sender takes only this one, so packets go in the
// order they were queued.
func (db *DB) NextEBDOut(ctx context.Context) (e EBDOut, ok bool, err error) {
	e, err = scanEBDOut(db.db.QueryRowContext(ctx, `SELECT `+ebdOutCols+` FROM ebd_outbound WHERE sent_at IS NULL ORDER BY seq LIMIT 1`))
	if isNoRows(err) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("next ebd out: %w", err)
	}
	return e, true, nil
}

// EBDOutSent records the upper platform's answer to packet seq: it is
// sent. Packets sent more than a month ago are forgotten.
func (db *DB) EBDOutSent(ctx context.Context, seq int64, resultCode int, resultDesc string) error {
	now := db.now()
	return db.queueTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ebd_outbound SET sent_at = $1, attempts = attempts + 1, last_error = '', result_code = $2, result_desc = $3
			WHERE seq = $4 AND sent_at IS NULL`, fmtTime(now), resultCode, resultDesc, seq)
		if err != nil {
			return fmt.Errorf("ebd out %d sent: %w", seq, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("ebd out %d: not an unsent packet in the queue", seq)
		}
		// The packet itself is dropped: the console shows what was sent
		// and the answer, and a month of archives would be large.
		if _, err := tx.ExecContext(ctx, `UPDATE ebd_outbound SET packet = NULL WHERE seq = $1`, seq); err != nil {
			return fmt.Errorf("ebd out %d sent: %w", seq, err)
		}
		// Never the newest row, so that the sequence never goes back
		// (SQLite's AUTOINCREMENT keeps it anyway; this is belt and braces).
		if _, err := tx.ExecContext(ctx, `DELETE FROM ebd_outbound WHERE sent_at IS NOT NULL AND sent_at < $1 AND seq < $2`,
			fmtTime(now.Add(-ebdOutKeep)), seq); err != nil {
			return fmt.Errorf("ebd out %d sent: %w", seq, err)
		}
		return nil
	})
}

// EBDOutFailed records why packet seq could not be delivered and when to
// try it again; it stays at the head of the queue.
func (db *DB) EBDOutFailed(ctx context.Context, seq int64, cause string, next time.Time) error {
	return db.queueTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ebd_outbound SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2
			WHERE seq = $3 AND sent_at IS NULL`, cause, fmtTime(next), seq)
		if err != nil {
			return fmt.Errorf("ebd out %d failed: %w", seq, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("ebd out %d: not an unsent packet in the queue", seq)
		}
		return nil
	})
}

// EBDOutbound lists up to limit queued packets, newest first, with
// unsent ones only if unsentOnly (for the console and tests).
func (db *DB) EBDOutbound(ctx context.Context, unsentOnly bool, limit int) ([]EBDOut, error) {
	where := ""
	if unsentOnly {
		where = `WHERE sent_at IS NULL`
	}
	return queryAll(ctx, db.db, "ebd outbound", scanEBDOut, `SELECT `+ebdOutCols+` FROM ebd_outbound `+where+` ORDER BY seq DESC LIMIT $1`, limit)
}

// UnreportedBroadcasts returns up to limit broadcasts created at or after
// since that no EBMBrdLog was queued for, oldest first: the candidates for
// a broadcast log once they end.
func (db *DB) UnreportedBroadcasts(ctx context.Context, since time.Time, limit int) ([]Broadcast, error) {
	return queryAll(ctx, db.db, "unreported broadcasts", scanBroadcast, `
		SELECT `+broadcastCols+` FROM broadcasts b
		WHERE b.created_at >= $1
			AND NOT EXISTS (SELECT 1 FROM ebd_outbound o WHERE o.broadcast_id = b.id)
		ORDER BY b.id LIMIT $2`, fmtTime(since), limit)
}

// TerminalCodes returns the resource codes the province assigned to
// village boxes, by village code.
func (db *DB) TerminalCodes(ctx context.Context) (map[string]string, error) {
	type row struct{ village, ebrid string }
	rows, err := queryAll(ctx, db.db, "terminal codes", func(s scanner) (row, error) {
		var r row
		return r, s.Scan(&r.village, &r.ebrid)
	}, `SELECT village, ebr_id FROM ebd_terminals`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.village] = r.ebrid
	}
	return out, nil
}

// SetTerminalCode stores the resource code the province assigned to the
// box of village (validated by the caller: a code, unique); "" goes
// back to the derived one.
func (db *DB) SetTerminalCode(ctx context.Context, village, ebrid string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ebrid == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM ebd_terminals WHERE village = $1`, village)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO ebd_terminals (village, ebr_id) VALUES ($1, $2)
				ON CONFLICT (village) DO UPDATE SET ebr_id = excluded.ebr_id`, village, ebrid)
		}
		if err != nil {
			return fmt.Errorf("terminal code %s: %w", village, err)
		}
		return nil
	})
}

// EBDOutQueue counts the packets not yet delivered and says when the
// oldest of them was queued (zero if none), for the console.
func (db *DB) EBDOutQueue(ctx context.Context) (n int, oldest time.Time, err error) {
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM ebd_outbound WHERE sent_at IS NULL`).Scan(&n, timeCol{&oldest}); err != nil {
		return 0, time.Time{}, fmt.Errorf("ebd out queue: %w", err)
	}
	return n, oldest, nil
}
