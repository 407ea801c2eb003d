package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one line of the append-only audit log: who did what to
// which object, from where.
type AuditEntry struct {
	ID         int64
	At         time.Time
	Actor      string
	Action     string
	Object     string
	Detail     string
	RemoteAddr string
}

// Audit appends an entry; At is set to now.
func (db *DB) Audit(ctx context.Context, e AuditEntry) error {
	_, err := db.db.ExecContext(ctx, `INSERT INTO audit (at, actor, action, object, detail, remote_addr) VALUES ($1, $2, $3, $4, $5, $6)`,
		fmtTime(db.now()), e.Actor, e.Action, e.Object, e.Detail, e.RemoteAddr)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditLog returns up to limit entries with id < before (all when before
// <= 0), newest first.
func (db *DB) AuditLog(ctx context.Context, before int64, limit int) ([]AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return queryAll(ctx, db.db, "audit log", func(s scanner) (AuditEntry, error) {
		var e AuditEntry
		err := s.Scan(&e.ID, timeCol{&e.At}, &e.Actor, &e.Action, &e.Object, &e.Detail, &e.RemoteAddr)
		return e, err
	}, `SELECT id, at, actor, action, object, detail, remote_addr FROM audit
		WHERE $1 <= 0 OR id < $1 ORDER BY id DESC LIMIT $2`, before, limit)
}
