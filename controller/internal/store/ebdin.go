package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// EBDInbound is a packet the upper platform sent that passed its
// signature check, kept by EBDID.
type EBDInbound struct {
	EBDID, Src, Type string
	CertSN           string
	ReceivedAt       time.Time
	// Done is false while it is being acted on; then ResultCode and
	// ResultDesc are what it was answered, Response the signed answer.
	Done        bool
	ResultCode  int
	ResultDesc  string
	Response    []byte
	BroadcastID int64
}

// ClaimEBD records that packet in.EBDID is being acted on. It returns
// claimed=true for the first claim, and otherwise the packet as kept (a
// replay: its answer, or not Done while the first is still acted on).
func (db *DB) ClaimEBD(ctx context.Context, in EBDInbound) (EBDInbound, bool, error) {
	res, err := db.db.ExecContext(ctx, `
		INSERT INTO ebd_inbound (ebdid, src, type, cert_sn, received_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (ebdid) DO NOTHING`, in.EBDID, in.Src, in.Type, in.CertSN, fmtTime(db.now()))
	if err != nil {
		return in, false, fmt.Errorf("claim EBD %s: %w", in.EBDID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return in, false, fmt.Errorf("claim EBD %s: %w", in.EBDID, err)
	} else if n == 1 {
		return in, true, nil
	}
	prev, err := db.EBD(ctx, in.EBDID)
	return prev, false, err
}

// FinishEBD keeps the answer to packet ebdid and the broadcast it made.
func (db *DB) FinishEBD(ctx context.Context, ebdid string, code int, desc string, response []byte, broadcastID int64) error {
	_, err := db.db.ExecContext(ctx, `UPDATE ebd_inbound SET result_code = $1, result_desc = $2, response = $3, broadcast_id = $4 WHERE ebdid = $5`,
		code, desc, response, nullID(broadcastID), ebdid)
	if err != nil {
		return fmt.Errorf("finish EBD %s: %w", ebdid, err)
	}
	return nil
}

// ReleaseEBD forgets a claim whose packet could not be acted on for a
// fault of ours, so the upper platform's retry is acted on.
func (db *DB) ReleaseEBD(ctx context.Context, ebdid string) error {
	if _, err := db.db.ExecContext(ctx, `DELETE FROM ebd_inbound WHERE ebdid = $1 AND result_code IS NULL`, ebdid); err != nil {
		return fmt.Errorf("release EBD %s: %w", ebdid, err)
	}
	return nil
}

const ebdCols = `ebdid, src, type, cert_sn, received_at, result_code, result_desc, response, broadcast_id`

func scanEBD(s scanner) (EBDInbound, error) {
	var in EBDInbound
	var code, bid sql.NullInt64
	err := s.Scan(&in.EBDID, &in.Src, &in.Type, &in.CertSN, timeCol{&in.ReceivedAt}, &code, &in.ResultDesc, &in.Response, &bid)
	in.Done, in.ResultCode, in.BroadcastID = code.Valid, int(code.Int64), bid.Int64
	return in, err
}

// EBD returns the packet kept as ebdid.
func (db *DB) EBD(ctx context.Context, ebdid string) (EBDInbound, error) {
	in, err := scanEBD(db.db.QueryRowContext(ctx, `SELECT `+ebdCols+` FROM ebd_inbound WHERE ebdid = $1`, ebdid))
	if err != nil {
		return in, fmt.Errorf("EBD %s: %w", ebdid, err)
	}
	return in, nil
}

// LastEBDReceived is when the latest packet of type typ that was acted
// on (result code 1) arrived; zero if none did. The 上级平台 page shows
// the upper platform's last heartbeat (ConnectionCheck) with it.
func (db *DB) LastEBDReceived(ctx context.Context, typ string) (time.Time, error) {
	var at time.Time
	err := db.db.QueryRowContext(ctx, `SELECT MAX(received_at) FROM ebd_inbound WHERE type = $1 AND result_code = 1`, typ).Scan(timeCol{&at})
	if err != nil {
		return time.Time{}, fmt.Errorf("last EBD %s received: %w", typ, err)
	}
	return at, nil
}

// EBDInbounds lists up to limit packets received, newest first.
func (db *DB) EBDInbounds(ctx context.Context, limit int) ([]EBDInbound, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return queryAll(ctx, db.db, "EBD inbound", scanEBD, `SELECT `+ebdCols+` FROM ebd_inbound ORDER BY received_at DESC, ebdid LIMIT $1`, limit)
}
