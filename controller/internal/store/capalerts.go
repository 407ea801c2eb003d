package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// CAPAlert is a CAP message that was received and acted on, or is being
// acted on: an Alert or Update with the broadcast it started, or a Cancel
// with the broadcasts it cancelled. Sender and Identifier name it, as CAP
// references do.
type CAPAlert struct {
	ID         int64
	Sender     string
	Identifier string
	Sent       time.Time
	MsgType    string // Alert, Update or Cancel
	Status     string // Actual, Exercise or Test
	// BroadcastID is the broadcast an Alert or Update started (0 for a
	// Cancel, and until its broadcast is stored).
	BroadcastID int64
	// Cancelled are the broadcasts an Update or Cancel cancelled.
	Cancelled  []int64
	ReceivedAt time.Time
	ReceivedBy string
	// Raw is the message as received.
	Raw []byte
	// InFlight: the message is claimed and still being acted on
	// (ClaimCAPAlert), not finished yet.
	InFlight bool
}

const capAlertCols = `id, sender, identifier, sent, msg_type, status, broadcast_id, cancelled, received_at, received_by, raw, in_flight`

func scanCAPAlert(s scanner) (CAPAlert, error) {
	var a CAPAlert
	var bid sql.NullInt64
	var cancelled string
	var inFlight sql.NullString
	err := s.Scan(&a.ID, &a.Sender, &a.Identifier, timeCol{&a.Sent}, &a.MsgType, &a.Status, &bid, &cancelled,
		timeCol{&a.ReceivedAt}, &a.ReceivedBy, &a.Raw, &inFlight)
	if err != nil {
		return a, err
	}
	a.BroadcastID, a.InFlight = bid.Int64, inFlight.Valid
	if err := json.Unmarshal([]byte(cancelled), &a.Cancelled); err != nil {
		return a, fmt.Errorf("cap alert %d cancelled: %w", a.ID, err)
	}
	return a, nil
}

// ClaimCAPAlert claims a CAP message for this process before it is acted
// on: the insert of its row (sender and identifier are unique) is the
// claim, so of two copies that arrive together exactly one claims it and
// no lock is held while it is acted on. ReceivedAt is now; BroadcastID
// and Cancelled are ignored (FinishCAPAlert sets them). It returns
// claimed=true, and the claim, when this is the first copy; otherwise
// claimed=false and the message as stored (in flight or finished). A
// claim left in flight by a process that is gone (not merely another
// controller's: see gone in lease.go) and that started no broadcast is
// taken over (claimed=true): the copy is acted on.
func (db *DB) ClaimCAPAlert(ctx context.Context, a CAPAlert) (CAPAlert, bool, error) {
	a.ReceivedAt, a.BroadcastID, a.Cancelled, a.InFlight = db.now(), 0, []int64{}, true
	if a.Raw == nil {
		a.Raw = []byte{}
	}
	res, err := db.db.ExecContext(ctx, `
		INSERT INTO cap_alerts (sender, identifier, sent, msg_type, status, cancelled, received_at, received_by, raw, in_flight)
		VALUES ($1, $2, $3, $4, $5, '[]', $6, $7, $8, $9)
		ON CONFLICT (sender, identifier) DO NOTHING`,
		a.Sender, a.Identifier, fmtTime(a.Sent), a.MsgType, a.Status, fmtTime(a.ReceivedAt), a.ReceivedBy, a.Raw, db.instance())
	if err != nil {
		return CAPAlert{}, false, fmt.Errorf("claim cap alert: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return CAPAlert{}, false, fmt.Errorf("claim cap alert: %w", err)
	} else if n == 1 {
		got, err := db.CAPAlert(ctx, a.Sender, a.Identifier)
		return got, err == nil, err
	}
	// Taken over only if the claiming process is gone and made nothing.
	var owner sql.NullString
	err = db.db.QueryRowContext(ctx, `SELECT in_flight FROM cap_alerts WHERE sender = $1 AND identifier = $2 AND broadcast_id IS NULL`,
		a.Sender, a.Identifier).Scan(&owner)
	if err != nil && !isNoRows(err) {
		return CAPAlert{}, false, fmt.Errorf("take over cap alert: %w", err)
	}
	var n int64
	if owner.Valid {
		gone, err := db.gone(ctx, owner.String)
		if err != nil {
			return CAPAlert{}, false, fmt.Errorf("take over cap alert: %w", err)
		}
		if gone {
			res, err := db.db.ExecContext(ctx, `
				UPDATE cap_alerts SET sent = $1, msg_type = $2, status = $3, cancelled = '[]', received_at = $4, received_by = $5, raw = $6, in_flight = $7
				WHERE sender = $8 AND identifier = $9 AND in_flight = $10 AND broadcast_id IS NULL`,
				fmtTime(a.Sent), a.MsgType, a.Status, fmtTime(a.ReceivedAt), a.ReceivedBy, a.Raw, db.instance(), a.Sender, a.Identifier, owner.String)
			if err != nil {
				return CAPAlert{}, false, fmt.Errorf("take over cap alert: %w", err)
			}
			if n, err = res.RowsAffected(); err != nil {
				return CAPAlert{}, false, fmt.Errorf("take over cap alert: %w", err)
			}
		}
	}
	got, err := db.CAPAlert(ctx, a.Sender, a.Identifier)
	return got, err == nil && n == 1, err
}

// FinishCAPAlert records what a claimed CAP message did: the broadcast it
// started (0 for none) and the ones it cancelled. The message is then
// finished: copies of it are answered from the record.
func (db *DB) FinishCAPAlert(ctx context.Context, sender, identifier string, broadcastID int64, cancelled []int64) error {
	if cancelled == nil {
		cancelled = []int64{}
	}
	c, _ := json.Marshal(cancelled)
	res, err := db.db.ExecContext(ctx, `UPDATE cap_alerts SET broadcast_id = COALESCE($1, broadcast_id), cancelled = $2, in_flight = NULL
		WHERE sender = $3 AND identifier = $4`, nullID(broadcastID), string(c), sender, identifier)
	if err != nil {
		return fmt.Errorf("finish cap alert: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("finish cap alert: %w", err)
	} else if n == 0 {
		return cx.Errorf(cx.ENOTFOUND, "no CAP message %s from %s was received", identifier, sender).With(api.ReasonCAPNotFound, "identifier", identifier, "sender", sender)
	}
	return nil
}

// ReleaseCAPAlert deletes the claim of a CAP message that was refused
// (nothing was done), so that the message can be sent again corrected. A
// claim that started a broadcast is kept; ReleaseCAPAlert reports whether
// it deleted the claim.
func (db *DB) ReleaseCAPAlert(ctx context.Context, sender, identifier string) (bool, error) {
	res, err := db.db.ExecContext(ctx, `DELETE FROM cap_alerts WHERE sender = $1 AND identifier = $2 AND in_flight = $3 AND broadcast_id IS NULL`,
		sender, identifier, db.instance())
	if err != nil {
		return false, fmt.Errorf("release cap alert: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("release cap alert: %w", err)
	}
	return n == 1, nil
}

type capClaimCtxKey struct{}

type capClaim struct{ sender, identifier string }

// WithCAPClaim marks ctx as acting on the claimed CAP message: the
// broadcast CreateBroadcast stores with it names itself on the claim in
// its own transaction, so that a copy arriving after a crash is never
// broadcast twice.
func WithCAPClaim(ctx context.Context, sender, identifier string) context.Context {
	return context.WithValue(ctx, capClaimCtxKey{}, capClaim{sender, identifier})
}

// bindCAPClaim names the broadcast on the CAP claim ctx carries, if any.
func bindCAPClaim(ctx context.Context, tx *sql.Tx, broadcastID int64) error {
	c, ok := ctx.Value(capClaimCtxKey{}).(capClaim)
	if !ok {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE cap_alerts SET broadcast_id = $1 WHERE sender = $2 AND identifier = $3`, broadcastID, c.sender, c.identifier); err != nil {
		return fmt.Errorf("cap claim: %w", err)
	}
	return nil
}

// CAPAlert returns the CAP message with this sender and identifier
// (ENOTFOUND if none was received).
func (db *DB) CAPAlert(ctx context.Context, sender, identifier string) (CAPAlert, error) {
	a, err := scanCAPAlert(db.db.QueryRowContext(ctx, `SELECT `+capAlertCols+` FROM cap_alerts WHERE sender = $1 AND identifier = $2`, sender, identifier))
	if isNoRows(err) {
		return a, cx.Errorf(cx.ENOTFOUND, "no CAP message %s from %s was received", identifier, sender).With(api.ReasonCAPNotFound, "identifier", identifier, "sender", sender)
	}
	if err != nil {
		return a, fmt.Errorf("cap alert %s/%s: %w", sender, identifier, err)
	}
	return a, nil
}
