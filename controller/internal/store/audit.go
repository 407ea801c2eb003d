package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AuditEntry is one line of the append-only audit log: who did what to
// which object, from where.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string
	Action string
	Object string
	Detail string
	// Params are the action's parameters, from which Detail was worded;
	// nil for entries written before they were kept.
	Params     map[string]string
	RemoteAddr string
}

// Audit appends an entry; At is set to now.
func (db *DB) Audit(ctx context.Context, e AuditEntry) error {
	params := ""
	if e.Params != nil {
		b, err := json.Marshal(e.Params)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		params = string(b)
	}
	_, err := db.db.ExecContext(ctx, `INSERT INTO audit (at, actor, action, object, detail, params, remote_addr) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		fmtTime(db.now()), e.Actor, e.Action, e.Object, e.Detail, params, e.RemoteAddr)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditFilter selects audit entries. Empty fields select everything.
type AuditFilter struct {
	Actor string
	// Action matches itself and the actions under it: "broadcast" matches
	// "broadcast.approve".
	Action string
	// Object matches itself and the objects under it: "broadcast"
	// matches "broadcast/12".
	Object string
	// Since and Until bound At (Since inclusive, Until exclusive).
	Since, Until time.Time
	// Text, if set, must occur (ignoring ASCII case) in the actor, action,
	// object or detail.
	Text string
	// Before pages back: only entries with a smaller id.
	Before int64
	// Limit is 1..1000 (100 otherwise).
	Limit int
}

// AuditLog returns the entries f selects, newest first.
func (db *DB) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var since, until string
	if !f.Since.IsZero() {
		since = fmtTime(f.Since)
	}
	if !f.Until.IsZero() {
		until = fmtTime(f.Until)
	}
	return queryAll(ctx, db.db, "audit log", func(s scanner) (AuditEntry, error) {
		var (
			e      AuditEntry
			params string
		)
		if err := s.Scan(&e.ID, timeCol{&e.At}, &e.Actor, &e.Action, &e.Object, &e.Detail, &params, &e.RemoteAddr); err != nil {
			return e, err
		}
		if params != "" {
			if err := json.Unmarshal([]byte(params), &e.Params); err != nil {
				return e, fmt.Errorf("audit entry %d: params: %w", e.ID, err)
			}
		}
		return e, nil
	}, `SELECT id, at, actor, action, object, detail, params, remote_addr FROM audit
		WHERE ($1 <= 0 OR id < $1)
		  AND ($2 = '' OR actor = $2)
		  AND ($3 = '' OR action = $3 OR substr(action, 1, length($3) + 1) = $3 || '.')
		  AND ($4 = '' OR object = $4 OR substr(object, 1, length($4) + 1) = $4 || '/')
		  AND ($5 = '' OR at >= $5)
		  AND ($6 = '' OR at < $6)
		  AND ($8 = '' OR lower(actor || ' ' || action || ' ' || object || ' ' || detail) LIKE '%' || lower($8) || '%' ESCAPE '\')
		ORDER BY id DESC LIMIT $7`, f.Before, f.Actor, f.Action, f.Object, since, until, f.Limit, likeEscaper.Replace(f.Text))
}

// likeEscaper makes text match itself in a LIKE pattern with ESCAPE '\'
// (SQLite and PostgreSQL alike).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
