package store

import (
	"context"
	"database/sql"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// TamperAuditForTest tries to rewrite the audit log, which must fail.
func TamperAuditForTest(db *DB) error {
	_, err := db.db.ExecContext(context.Background(), `UPDATE audit SET actor = 'mallory'`)
	if err != nil {
		return err
	}
	_, err = db.db.ExecContext(context.Background(), `DELETE FROM audit`)
	return err
}

// OpenAtVersionForTest creates a database at path with the migrations up
// to version only, and returns it for raw statements; Open then upgrades it.
func OpenAtVersionForTest(ctx context.Context, path string, version int64) (*sql.DB, error) {
	sqldb, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		return nil, err
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, sqldb, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, err
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return nil, err
	}
	return sqldb, nil
}

// OutboxRowsForTest counts the outbox's rows, sent or not.
func OutboxRowsForTest(ctx context.Context, db *DB) (n int, err error) {
	err = db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n)
	return n, err
}

// SetPIDForTest makes Heartbeat record pid as this process's: a pid that
// no longer runs stands for a process that died on this machine.
func SetPIDForTest(db *DB, pid int) { db.testPID = pid }
