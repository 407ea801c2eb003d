// Package store is the box's crash-safe memory, one bbolt file in the data
// directory: the schedules it holds, the broadcasts it has heard of and how
// far each got, its township's and village's config, the replay guard (the
// highest command seq applied per object), every occurrence it has handled,
// its event counter and the outbox of reports the controller has not yet
// acknowledged.
//
// Every change that must not be half-done (apply a command and report it;
// claim an occurrence and report its start) is one transaction, so a power
// cut at any instant leaves either both or neither on disk.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketSchedules = []byte("schedules")
	bucketGuard     = []byte("guard")
	bucketHandled   = []byte("handled")
	bucketOutbox    = []byte("outbox")
	bucketMeta      = []byte("meta")
	bucketBcasts    = []byte("broadcasts")
	bucketConfig    = []byte("config")

	keyEventSeq    = []byte("event_seq")
	keyClockOffset = []byte("clock_offset_ns")
)

// Reasons a command is not applied.
var (
	// ErrDuplicate: this exact command (same id) was applied before. Retained
	// commands arrive again on every reconnect; they are ignored silently.
	ErrDuplicate = errors.New("duplicate command")
	// ErrReplay: a command older than the one applied to the same object.
	ErrReplay = errors.New("replayed command")
)

// Schedule is a schedule the box holds, as it was last put.
type Schedule struct {
	State      api.ScheduleState `json:"state"`
	ReceivedAt time.Time         `json:"received_at"`
	// Reported lists the audio ids whose download was reported for this
	// schedule, so each is reported once.
	Reported []int64 `json:"reported,omitempty"`
}

// Handled is an occurrence the box has dealt with, and how: the type of
// the event that claimed it (started, or failed when it could not play).
type Handled struct {
	ScheduleID int64
	Occurrence time.Time
	Outcome    string
}

type guard struct {
	Seq int64  `json:"seq"`
	ID  string `json:"id"`
}

// DB is the box's state file.
type DB struct {
	db       *bolt.DB
	appended chan struct{}
}

// Open opens (creating if needed) the state file at path. A second process
// holding the file makes Open fail after a second rather than hang.
func Open(path string) (*DB, error) {
	return open(path, false)
}

// OpenReadOnly opens the state file of a stopped box for inspection.
func OpenReadOnly(path string) (*DB, error) {
	return open(path, true)
}

// initialMmap is the address space the state file is mapped with from the
// start. bbolt maps the file anew each time it outgrows the mapping, and a
// commit that must remap waits for every reader and for the process's
// memory map lock; under a county-wide broadcast that stalled commits by
// up to 0.9 s (measured with 1,000 boxes in one sim process). A box's
// state stays far below 8 MB (the outbox is acked away, old broadcasts
// and occurrences are pruned), so it is mapped once. It is address
// space, not memory: pages are read in only as they are used.
const initialMmap = 8 << 20

func open(path string, readOnly bool) (*DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly, InitialMmapSize: initialMmap})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if !readOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketSchedules, bucketGuard, bucketHandled, bucketOutbox, bucketMeta, bucketBcasts, bucketConfig} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("init state %s: %w", path, err)
		}
	}
	return &DB{db: db, appended: make(chan struct{}, 1)}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// Appended is signalled (without blocking, coalesced) after every
// transaction that added events to the outbox.
func (d *DB) Appended() <-chan struct{} { return d.appended }

func (d *DB) update(fn func(tx *bolt.Tx) (appended bool, err error)) error {
	var added bool
	err := d.db.Update(func(tx *bolt.Tx) error {
		var err error
		added, err = fn(tx)
		return err
	})
	if err == nil && added {
		select {
		case d.appended <- struct{}{}:
		default:
		}
	}
	return err
}

// command applies c under the replay guard: fn runs, and the guard moves to
// c's seq, in one transaction; a duplicate or older command changes nothing.
func (d *DB) command(c api.Command, fn func(tx *bolt.Tx) (bool, error)) error {
	return d.update(func(tx *bolt.Tx) (bool, error) {
		key := []byte(c.ObjectKey())
		gb := tx.Bucket(bucketGuard)
		if err := checkGuard(gb, key, c); err != nil {
			return false, err
		}
		raw, err := json.Marshal(guard{Seq: c.Seq, ID: c.ID})
		if err != nil {
			return false, err
		}
		if err := gb.Put(key, raw); err != nil {
			return false, err
		}
		return fn(tx)
	})
}

// checkGuard refuses c if it, or a newer command on the same object, was
// applied.
func checkGuard(gb *bolt.Bucket, key []byte, c api.Command) error {
	raw := gb.Get(key)
	if raw == nil {
		return nil
	}
	var g guard
	if err := json.Unmarshal(raw, &g); err != nil {
		return fmt.Errorf("guard %s: %w", key, err)
	}
	if g.ID == c.ID {
		return ErrDuplicate
	}
	if c.Seq <= g.Seq {
		return fmt.Errorf("%w: seq %d on %s, already applied seq %d", ErrReplay, c.Seq, key, g.Seq)
	}
	return nil
}

// PutSchedule applies a schedule.put: it stores the schedule (keeping the
// record of downloads already reported) and appends ev to the outbox.
func (d *DB) PutSchedule(c api.Command, receivedAt time.Time, ev api.Event) (api.Event, error) {
	if c.Kind != api.KindSchedulePut || c.Schedule == nil {
		return ev, fmt.Errorf("put schedule: not a schedule.put")
	}
	err := d.command(c, func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketSchedules)
		key := idKey(c.Schedule.Schedule.ID)
		s := Schedule{State: *c.Schedule, ReceivedAt: receivedAt.UTC()}
		if raw := b.Get(key); raw != nil {
			var old Schedule
			if err := json.Unmarshal(raw, &old); err == nil {
				s.Reported = old.Reported
			}
		}
		raw, err := json.Marshal(s)
		if err != nil {
			return false, err
		}
		if err := b.Put(key, raw); err != nil {
			return false, err
		}
		ev, err = appendTx(tx, ev)
		return true, err
	})
	return ev, err
}

// WithdrawSchedule applies a schedule.withdraw: the schedule is deleted,
// so it never plays again, and ev is appended.
func (d *DB) WithdrawSchedule(c api.Command, ev api.Event) (api.Event, error) {
	if c.Kind != api.KindScheduleWithdraw || c.Withdraw == nil {
		return ev, fmt.Errorf("withdraw schedule: not a schedule.withdraw")
	}
	err := d.command(c, func(tx *bolt.Tx) (bool, error) {
		if err := tx.Bucket(bucketSchedules).Delete(idKey(c.Withdraw.ScheduleID)); err != nil {
			return false, err
		}
		var err error
		ev, err = appendTx(tx, ev)
		return true, err
	})
	return ev, err
}

// ApplyAck applies a reports.ack: events up to and including c.Ack.Seq
// leave the outbox. The event counter never falls behind an ack, so a box
// whose state was restored from an old copy does not reuse numbers the
// controller already holds.
func (d *DB) ApplyAck(c api.Command) (dropped int, err error) {
	if c.Kind != api.KindReportsAck || c.Ack == nil {
		return 0, fmt.Errorf("apply ack: not a reports.ack")
	}
	err = d.command(c, func(tx *bolt.Tx) (bool, error) {
		cur := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := cur.First(); k != nil && int64(binary.BigEndian.Uint64(k)) <= c.Ack.Seq; k, _ = cur.Next() {
			if err := cur.Delete(); err != nil {
				return false, err
			}
			dropped++
		}
		meta := tx.Bucket(bucketMeta)
		if getInt(meta, keyEventSeq) < c.Ack.Seq {
			return false, putInt(meta, keyEventSeq, c.Ack.Seq)
		}
		return false, nil
	})
	return dropped, err
}

// Schedules returns every schedule held, by id.
func (d *DB) Schedules() ([]Schedule, error) {
	var out []Schedule
	err := d.db.View(func(tx *bolt.Tx) (err error) {
		out, err = schedules(tx)
		return err
	})
	return out, err
}

func schedules(tx *bolt.Tx) ([]Schedule, error) {
	var out []Schedule
	err := tx.Bucket(bucketSchedules).ForEach(func(k, v []byte) error {
		var s Schedule
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("schedule %d: %w", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// State is what the box holds and acts on: what it plays and what it must
// have downloaded for that.
type State struct {
	Schedules []Schedule
	// Broadcasts are those not over, expired or not.
	Broadcasts []Broadcast
	Configs    map[api.Group]api.BoxConfig
}

// State reads the schedules, the broadcasts that are not over and the
// configs, in one transaction: the box's planner and downloads follow it.
func (d *DB) State() (State, error) {
	var st State
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		if st.Schedules, err = schedules(tx); err != nil {
			return err
		}
		if st.Broadcasts, err = broadcasts(tx, true); err != nil {
			return err
		}
		st.Configs, err = configs(tx)
		return err
	})
	return st, err
}

// MarkDownloaded records that audioID of the schedule is on disk and
// appends ev, once per (schedule, audio). It reports whether it appended;
// a schedule no longer held is left alone.
func (d *DB) MarkDownloaded(scheduleID, audioID int64, ev api.Event) (bool, error) {
	var done bool
	err := d.update(func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketSchedules)
		raw := b.Get(idKey(scheduleID))
		if raw == nil {
			return false, nil
		}
		var s Schedule
		if err := json.Unmarshal(raw, &s); err != nil {
			return false, err
		}
		for _, id := range s.Reported {
			if id == audioID {
				return false, nil
			}
		}
		s.Reported = append(s.Reported, audioID)
		raw, err := json.Marshal(s)
		if err != nil {
			return false, err
		}
		if err := b.Put(idKey(scheduleID), raw); err != nil {
			return false, err
		}
		if _, err := appendTx(tx, ev); err != nil {
			return false, err
		}
		done = true
		return true, nil
	})
	return done, err
}

// Handled reports whether the occurrence was already claimed.
func (d *DB) Handled(scheduleID int64, occ time.Time) (bool, error) {
	var ok bool
	err := d.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketHandled).Get(handledKey(scheduleID, occ)) != nil
		return nil
	})
	return ok, err
}

// Claim marks the occurrence handled and appends ev (its started or failed
// report) in one transaction. It returns false, appending nothing, when
// the occurrence was claimed before: an occurrence is dealt with at most
// once, whatever restarts or re-sent commands happen.
func (d *DB) Claim(scheduleID int64, occ time.Time, ev api.Event) (bool, error) {
	var claimed bool
	err := d.update(func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketHandled)
		key := handledKey(scheduleID, occ)
		if b.Get(key) != nil {
			return false, nil
		}
		if err := b.Put(key, []byte(ev.Type)); err != nil {
			return false, err
		}
		if _, err := appendTx(tx, ev); err != nil {
			return false, err
		}
		claimed = true
		return true, nil
	})
	return claimed, err
}

// HandledOccurrences lists every claimed occurrence, in key order.
func (d *DB) HandledOccurrences() ([]Handled, error) {
	var out []Handled
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHandled).ForEach(func(k, v []byte) error {
			h, ok := parseHandledKey(k)
			if !ok {
				return nil
			}
			h.Outcome = string(v)
			out = append(out, h)
			return nil
		})
	})
	return out, err
}

// PruneHandled forgets occurrences before t; the planner never looks that
// far back, so they cannot be played again.
func (d *DB) PruneHandled(before time.Time) (int, error) {
	n := 0
	err := d.update(func(tx *bolt.Tx) (bool, error) {
		cur := tx.Bucket(bucketHandled).Cursor()
		for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			if h, ok := parseHandledKey(k); !ok || h.Occurrence.Before(before) {
				if err := cur.Delete(); err != nil {
					return false, err
				}
				n++
			}
		}
		return false, nil
	})
	return n, err
}

// Append numbers ev with the box's next seq and puts it in the outbox.
func (d *DB) Append(ev api.Event) (api.Event, error) {
	err := d.update(func(tx *bolt.Tx) (bool, error) {
		var err error
		ev, err = appendTx(tx, ev)
		return true, err
	})
	return ev, err
}

// Pending returns up to limit outbox events with seq > after, in order.
func (d *DB) Pending(after int64, limit int) ([]api.Event, error) {
	var out []api.Event
	err := d.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketOutbox).Cursor()
		for k, v := cur.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = cur.Next() {
			var ev api.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("outbox %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// Newest is the last event in the outbox, if any.
func (d *DB) Newest() (api.Event, bool, error) {
	var ev api.Event
	var ok bool
	err := d.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketOutbox).Cursor().Last()
		if k == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("outbox %d: %w", binary.BigEndian.Uint64(k), err)
		}
		return nil
	})
	return ev, ok, err
}

// OutboxLen is how many events await the controller's ack.
func (d *DB) OutboxLen() (int, error) {
	var n int
	err := d.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return n, err
}

// LastSeq is the seq of the last event numbered.
func (d *DB) LastSeq() (int64, error) {
	var n int64
	err := d.db.View(func(tx *bolt.Tx) error {
		n = getInt(tx.Bucket(bucketMeta), keyEventSeq)
		return nil
	})
	return n, err
}

// ClockOffset returns the last measured offset of the controller's clock
// from the box's, and false if none was ever measured.
func (d *DB) ClockOffset() (time.Duration, bool, error) {
	var off time.Duration
	var ok bool
	err := d.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMeta).Get(keyClockOffset)
		if len(raw) == 8 {
			off, ok = time.Duration(int64(binary.BigEndian.Uint64(raw))), true
		}
		return nil
	})
	return off, ok, err
}

// SetClockOffset persists the last measured clock offset.
func (d *DB) SetClockOffset(off time.Duration) error {
	return d.update(func(tx *bolt.Tx) (bool, error) {
		return false, putInt(tx.Bucket(bucketMeta), keyClockOffset, int64(off))
	})
}

// MaxReason is the longest Event.Reason a report may carry
// (api.DecodeEventBatch refuses longer ones); longer reasons are cut.
const MaxReason = api.MaxReasonBytes

func appendTx(tx *bolt.Tx, ev api.Event) (api.Event, error) {
	ev.Reason = truncate(ev.Reason, MaxReason)
	meta := tx.Bucket(bucketMeta)
	ev.Seq = getInt(meta, keyEventSeq) + 1
	raw, err := json.Marshal(ev)
	if err != nil {
		return ev, err
	}
	if err := tx.Bucket(bucketOutbox).Put(seqKey(ev.Seq), raw); err != nil {
		return ev, err
	}
	return ev, putInt(meta, keyEventSeq, ev.Seq)
}

// RaiseSeq makes the next event's seq greater than n: a box enrolled as the
// replacement of another continues after the reports the controller holds.
func (d *DB) RaiseSeq(n int64) error {
	return d.update(func(tx *bolt.Tx) (bool, error) {
		meta := tx.Bucket(bucketMeta)
		if getInt(meta, keyEventSeq) < n {
			return false, putInt(meta, keyEventSeq, n)
		}
		return false, nil
	})
}

func getInt(b *bolt.Bucket, key []byte) int64 {
	raw := b.Get(key)
	if len(raw) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(raw))
}

func putInt(b *bolt.Bucket, key []byte, v int64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return b.Put(key, buf[:])
}

func seqKey(seq int64) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(seq))
	return buf[:]
}

func idKey(id int64) []byte { return seqKey(id) }

// handledKey is "<schedule id>/<occurrence key>".
func handledKey(scheduleID int64, occ time.Time) []byte {
	return []byte(strconv.FormatInt(scheduleID, 10) + "/" + playlists.OccurrenceKey(occ))
}

func parseHandledKey(k []byte) (Handled, bool) {
	id, occ, ok := strings.Cut(string(k), "/")
	if !ok {
		return Handled{}, false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return Handled{}, false
	}
	t, err := time.Parse(time.RFC3339, occ)
	if err != nil {
		return Handled{}, false
	}
	return Handled{ScheduleID: n, Occurrence: t.UTC()}, true
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return ""
}
