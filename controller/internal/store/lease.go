package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Several controller processes may share one PostgreSQL database (and one
// external broker). Each names itself in the instances table with a
// heartbeat (Heartbeat), so that its claims are taken over only once it
// is really gone; one of them at a time holds the publisher lease
// (AcquireLease) and publishes the outbox.

const (
	// InstanceTTL is how long a process counts as running after its last
	// Heartbeat; its claims are then taken over. On the same machine (the
	// same boot and pid namespace) a process whose pid no longer runs is
	// gone at once: a controller killed and restarted there takes its
	// claims and the lease back without waiting.
	InstanceTTL = 15 * time.Second
	// LeaseTTL is how long the lease lasts after its holder last renewed
	// it; another process takes it over only after that (or at once when
	// the holder is known gone, as above).
	LeaseTTL = 15 * time.Second
)

// LeasePublisher names the publisher role: its holder drains the outbox
// and refreshes the retained commands.
const LeasePublisher = "publisher"

// ErrLeaseLost: the write was made under a lease this process no longer
// holds (another process took it over); nothing was written.
var ErrLeaseLost = errors.New("the publisher lease is held by another controller process")

// Lease is who holds a lease.
type Lease struct {
	Name   string
	Holder string // the holding process's instance id ("" if never held)
	// HolderLabel names the holder for people (host name and pid).
	HolderLabel string
	// Epoch grows by one at every change of holder.
	Epoch      int64
	AcquiredAt time.Time
	ExpiresAt  time.Time
	// Held: this process holds it.
	Held bool
}

// Instance is this process's id in the instances table (the owner
// written on its claims).
func (db *DB) Instance() string { return db.instance() }

// Heartbeat records that this process is running, for InstanceTTL from
// now. The delivery service calls it every few seconds.
func (db *DB) Heartbeat(ctx context.Context) error {
	now := db.now()
	if _, err := db.db.ExecContext(ctx, `
		INSERT INTO instances (id, host, pid, label, started_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`,
		db.instance(), hostKey(), db.pid(), instanceLabel(db.pid()), fmtTime(now), fmtTime(now.Add(InstanceTTL))); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if _, err := db.db.ExecContext(ctx, `DELETE FROM instances WHERE expires_at < $1`, fmtTime(now.Add(-24*time.Hour))); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// retire takes this process out of the instances table and gives up its
// leases, so that another takes them over at once (Close).
func (db *DB) retire() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	db.db.ExecContext(ctx, `UPDATE leases SET expires_at = $1 WHERE holder = $2`, fmtTime(time.Time{}), db.instance())
	db.db.ExecContext(ctx, `DELETE FROM instances WHERE id = $1`, db.instance())
}

// gone reports whether the process with this instance id has stopped:
// it is not this one, and its heartbeat expired (or it never had one),
// or it ran on this machine and its pid no longer runs.
func (db *DB) gone(ctx context.Context, id string) (bool, error) {
	if id == db.instance() {
		return false, nil
	}
	var host, expires string
	var pid int
	err := db.db.QueryRowContext(ctx, `SELECT host, pid, expires_at FROM instances WHERE id = $1`, id).Scan(&host, &pid, &expires)
	if isNoRows(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("instance %s: %w", id, err)
	}
	if expires < fmtTime(db.now()) {
		return true, nil
	}
	return host != "" && host == hostKey() && !pidRuns(pid), nil
}

// Lease returns who holds the lease name.
func (db *DB) Lease(ctx context.Context, name string) (Lease, error) {
	l := Lease{Name: name}
	var label sql.NullString
	err := db.db.QueryRowContext(ctx, `SELECT l.holder, l.epoch, l.acquired_at, l.expires_at, i.label
		FROM leases l LEFT JOIN instances i ON i.id = l.holder WHERE l.name = $1`, name).
		Scan(&l.Holder, &l.Epoch, timeCol{&l.AcquiredAt}, timeCol{&l.ExpiresAt}, &label)
	if isNoRows(err) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	l.HolderLabel, l.Held = label.String, l.Holder == db.instance()
	return l, nil
}

// AcquireLease takes the lease name for LeaseTTL from now, or renews it
// if this process holds it. It is taken from another holder only when
// that holder's lease expired or the holder is gone (see gone); each
// change of holder adds one to the epoch. Every step is a conditional
// update on the holder and epoch read, so of two processes trying at
// once one wins. The answer says who holds it (Held: this process).
func (db *DB) AcquireLease(ctx context.Context, name string) (Lease, error) {
	now := db.now()
	me := db.instance()
	until := fmtTime(now.Add(LeaseTTL))
	if _, err := db.db.ExecContext(ctx, `INSERT INTO leases (name, holder, epoch, acquired_at, expires_at) VALUES ($1, $2, 1, $3, $4)
		ON CONFLICT (name) DO NOTHING`, name, me, fmtTime(now), until); err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	cur, err := db.Lease(ctx, name)
	if err != nil {
		return cur, err
	}
	var res sql.Result
	switch {
	case cur.Holder == me:
		res, err = db.db.ExecContext(ctx, `UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND epoch = $4`,
			until, name, me, cur.Epoch)
	default:
		free := !now.Before(cur.ExpiresAt)
		if !free {
			if free, err = db.gone(ctx, cur.Holder); err != nil {
				return cur, err
			}
		}
		if !free {
			return cur, nil
		}
		res, err = db.db.ExecContext(ctx, `UPDATE leases SET holder = $1, epoch = epoch + 1, acquired_at = $2, expires_at = $3
			WHERE name = $4 AND holder = $5 AND epoch = $6`, me, fmtTime(now), until, name, cur.Holder, cur.Epoch)
	}
	if err != nil {
		return cur, fmt.Errorf("lease %s: %w", name, err)
	}
	if _, err := res.RowsAffected(); err != nil {
		return cur, fmt.Errorf("lease %s: %w", name, err)
	}
	return db.Lease(ctx, name)
}

// ReleaseLease gives up the lease name if this process holds it: another
// may take it at once.
func (db *DB) ReleaseLease(ctx context.Context, name string) error {
	if _, err := db.db.ExecContext(ctx, `UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3`,
		fmtTime(time.Time{}), name, db.instance()); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

type leaseCtxKey struct{}

// WithLease marks ctx as acting under lease l: the publisher's writes
// made with it (SignOutbox, OutboxSent, OutboxFailed, OutboxDrop,
// PutRetained) check in their own transaction that l's holder and epoch
// still hold it, and fail with ErrLeaseLost otherwise.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseCtxKey{}, l)
}

// checkLease fails with ErrLeaseLost if ctx carries a lease that is no
// longer held as it was. On PostgreSQL the row is locked (FOR SHARE)
// until the transaction ends, so a takeover waits for this write to
// commit; SQLite runs one write transaction at a time.
func (db *DB) checkLease(ctx context.Context, tx *sql.Tx) error {
	l, ok := ctx.Value(leaseCtxKey{}).(Lease)
	if !ok {
		return nil
	}
	q := `SELECT epoch FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3`
	if db.postgres {
		q += ` FOR SHARE`
	}
	var epoch int64
	err := tx.QueryRowContext(ctx, q, l.Name, l.Holder, l.Epoch).Scan(&epoch)
	if isNoRows(err) {
		return fmt.Errorf("%w (this process held epoch %d)", ErrLeaseLost, l.Epoch)
	}
	if err != nil {
		return fmt.Errorf("check lease %s: %w", l.Name, err)
	}
	return nil
}

func (db *DB) pid() int {
	if db.testPID != 0 {
		return db.testPID
	}
	return os.Getpid()
}

var hostKeyOnce = sync.OnceValue(func() string {
	boot, err1 := os.ReadFile("/proc/sys/kernel/random/boot_id")
	ns, err2 := os.Readlink("/proc/self/ns/pid")
	if err1 != nil || err2 != nil {
		return "" // pids cannot be compared: only heartbeats tell
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
})

// hostKey names where this process's pid means something: the machine's
// boot and the pid namespace. Two processes with the same key see the
// same pids.
func hostKey() string { return hostKeyOnce() }

// pidRuns reports whether a process with this pid runs here.
func pidRuns(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func instanceLabel(pid int) string {
	h, _ := os.Hostname()
	return h + ":" + strconv.Itoa(pid)
}
