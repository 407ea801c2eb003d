package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// The PostgreSQL schema is its own set of migrations with the same
// version numbers as the SQLite one; the queries are shared (see the
// package comment).
//
//go:embed migrations_postgres/*.sql
var migrationsPostgres embed.FS

// IsPostgresURL reports whether dsn names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openPostgres opens the PostgreSQL database at the URL (pgx) and brings
// its schema up to date.
func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open db: %w", err)
	}
	sqldb.SetMaxOpenConns(16)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open db %s: %w", redact(dsn), err)
	}
	fsys, err := fs.Sub(migrationsPostgres, "migrations_postgres")
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// Two controllers started together on one database migrate one
	// after the other (a session advisory lock), not both at once.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, fsys, goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err == nil {
		_, err = p.Up(ctx)
	}
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("migrate %s: %w", redact(dsn), err)
	}
	return &DB{db: sqldb, Now: time.Now, postgres: true}, nil
}

// redact hides the password of a database URL, for errors and logs.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(database URL)"
	}
	return u.Redacted()
}

// outboxChannel is the PostgreSQL notification channel on which every
// new outbox entry is announced (enqueue), so that the publisher, which
// may be another controller process, sends it at once.
const outboxChannel = "cunxiang_outbox"

// WatchOutbox calls fn once it listens, and then whenever an outbox
// entry is added by any process on the database, until ctx ends or the
// connection fails (the error). It holds one connection of the pool. On
// SQLite, which one process uses, it calls fn once and waits for ctx.
func (db *DB) WatchOutbox(ctx context.Context, fn func()) error {
	if !db.postgres {
		fn()
		<-ctx.Done()
		return nil
	}
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("watch outbox: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+outboxChannel); err != nil {
			return err
		}
		fn()
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				return err
			}
			fn()
		}
	})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch outbox: %w", err)
}
