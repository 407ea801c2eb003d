// Package store keeps the controller's state in SQLite (modernc.org/sqlite,
// pure Go, WAL): villages, credentials, boxes and their reports, the audio
// library, playlists, schedules, the retained commands the broker must hold,
// and the audit log.
//
// The SQL is kept portable ($N placeholders, ON CONFLICT, RETURNING, no
// SQLite-only functions in queries) so that a PostgreSQL implementation can
// follow from the same statements. Times are stored in UTC.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrUnauthorized is returned by credential checks (CheckAgentPassword,
// Authenticate, Enroll) for anything that does not check out.
var ErrUnauthorized = cx.ErrUnauthorized

// DB is the controller's database.
type DB struct {
	db       *sql.DB
	postgres bool // PostgreSQL rather than SQLite

	// version counts the write transactions committed (Version).
	version atomic.Uint64

	// Now returns the current time; tests replace it. It defaults to
	// time.Now.
	Now func() time.Time

	// instance names this opening of the database: a process's claims
	// (idempotency keys, CAP messages) and its leases are told from those
	// of another process, live (Heartbeat) or gone (lease.go).
	instanceOnce sync.Once
	instanceID   string
	testPID      int // the pid recorded by Heartbeat, if not 0 (tests)
}

func (db *DB) instance() string {
	db.instanceOnce.Do(func() { db.instanceID = newSecret("")[:16] })
	return db.instanceID
}

// Open opens (creating if needed) the SQLite database at path, or the
// PostgreSQL database when path is a postgres:// URL, and brings its schema
// up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if IsPostgresURL(path) {
		return openPostgres(ctx, path)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open db: bad path %q", path)
	}
	// busy_timeout first so that the other pragmas wait for a lock rather
	// than fail; BEGIN IMMEDIATE (txlock) so two writers never deadlock on
	// a read-to-write upgrade.
	//
	// synchronous=FULL in WAL mode: every commit fsyncs the WAL. The
	// controller acknowledges a box's reports (to the broker, then to the
	// box, which then forgets them) only after their commit, so a commit
	// must survive power loss, not just the process dying: with NORMAL the
	// last commits before a checkpoint could roll back after boxes had
	// dropped them, and coverage would silently lose plays. Ingest commits
	// in batches, so this is one fsync per batch, not per report.
	dsn := "file:" + path +
		"?_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(1)" +
		"&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open db: %w", err)
	}
	sqldb.SetMaxOpenConns(8)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open db %s: %w", path, err)
	}
	if err := migrate(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, err
	}
	return &DB{db: sqldb, Now: time.Now}, nil
}

func migrate(ctx context.Context, sqldb *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, sqldb, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.retire()
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("close db: %w", err)
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now == nil {
		return time.Now().UTC()
	}
	return db.Now().UTC()
}

// inTx runs fn in a write transaction, committing if it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
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
	db.version.Add(1) // after the commit: a reader that sees it sees the change
	return nil
}

// Version changes whenever this process commits a change to the data
// (every write but the audit log's and the broker's retained messages),
// after the change is visible: a result computed from reads made after
// Version returned v is current as long as Version still returns v. It
// is cheap (an atomic load), for caches of heavy reports. Writes made by
// another process on the same PostgreSQL database do not change it.
func (db *DB) Version() uint64 { return db.version.Load() }

// timeLayout is how times are stored: UTC, fixed width, so text order is
// time order. Microseconds match PostgreSQL's timestamp precision.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

// timeCol scans a stored time; NULL becomes the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = time.Time{}
		return nil
	case time.Time:
		*c.t = x.UTC()
		return nil
	case string:
		return c.parse(x)
	case []byte:
		return c.parse(string(x))
	}
	return fmt.Errorf("scan time: unexpected %T", v)
}

func (c timeCol) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan time: %w", err)
	}
	*c.t = t.UTC()
	return nil
}

// newSecret returns 256 random bits, base64url without padding, with an
// optional prefix that tells people what kind of secret they hold.
func newSecret(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// hashSecret is the stored form of a high-entropy secret. A fast hash is
// right here: the secrets are 256 random bits, so there is nothing to
// brute-force, and a slow hash would only slow down every MQTT connect.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queryAll runs a query and scans every row with scan; what names the
// query in errors.
func queryAll[T any](ctx context.Context, q querier, what string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// isNoRows reports whether err is sql.ErrNoRows.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// isUniqueViolation reports whether err is a unique constraint refusing a
// row: SQLite's "UNIQUE constraint failed", PostgreSQL's SQLSTATE 23505.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}
