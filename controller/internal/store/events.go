package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// IngestBatch is one box's report message as the broker delivered it.
type IngestBatch struct {
	Village, Version string
	Events           []api.Event
	ReceivedAt       time.Time
}

// IngestEvents stores the reports of many boxes in one transaction. A
// report already stored (same village and seq) is ignored, so redelivery is
// harmless. For each village in batches it returns the new acked seq: the
// highest N such that reports 1..N are all stored, which is what the box
// may drop from its outbox. It also records the box's last_seen and
// agent_version.
func (db *DB) IngestEvents(ctx context.Context, batches []IngestBatch) (acks map[string]int64, err error) {
	type seen struct {
		last    time.Time
		version string
	}
	now := db.now()
	batches = slices.Clone(batches) // ReceivedAt defaults are filled in below
	villages := map[string]*seen{}
	var order []string
	for i := range batches {
		if batches[i].ReceivedAt.IsZero() {
			batches[i].ReceivedAt = now
		}
		b := batches[i]
		s := villages[b.Village]
		if s == nil {
			s = &seen{}
			villages[b.Village] = s
			order = append(order, b.Village)
		}
		if b.ReceivedAt.After(s.last) {
			s.last = b.ReceivedAt
		}
		if b.Version != "" {
			s.version = b.Version
		}
	}
	acks = make(map[string]int64, len(villages))
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertEvents(ctx, tx, batches); err != nil {
			return err
		}
		// One statement per box, prepared once per transaction: parsing
		// SQL for every box cost more than storing its reports.
		upd, err := tx.PrepareContext(ctx, ackAndSeen)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		defer upd.Close()
		for _, v := range order {
			s := villages[v]
			var acked int64
			err := upd.QueryRowContext(ctx, nullTime(s.last), s.version, v).Scan(&acked)
			if isNoRows(err) {
				// No box row (not enrolled, or replaced meanwhile): the
				// reports are kept and the ack is worked out all the same.
				acked, err = advanceAck(ctx, tx, v)
			}
			if err != nil {
				return fmt.Errorf("ingest %s: %w", v, err)
			}
			acks[v] = acked
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return acks, nil
}

// ackAndSeen moves a box's acked seq to the highest N such that reports
// 1..N are all stored, reading only the reports after the seq already
// acked, and records when it was last heard from and its version. In the
// reports after acked_seq, seq - ROW_NUMBER() stays equal to acked_seq
// exactly along the run that continues it without a gap.
const ackAndSeen = `
	UPDATE agents SET
		acked_seq = COALESCE((
			SELECT MAX(seq) FROM (
				SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS run
				FROM events WHERE village = $3 AND seq > agents.acked_seq
			) AS after_ack WHERE run = agents.acked_seq), acked_seq),
		last_seen = CASE WHEN last_seen IS NULL OR last_seen < $1 THEN $1 ELSE last_seen END,
		agent_version = CASE WHEN $2 = '' THEN agent_version ELSE $2 END
	WHERE village = $3
	RETURNING acked_seq`

// insertEvents stores reports with one prepared statement, skipping any
// already stored. (Multi-row INSERTs measured slower here: preparing a
// statement with hundreds of parameters costs more than it saves.)
func insertEvents(ctx context.Context, tx *sql.Tx, batches []IngestBatch) error {
	ins, err := tx.PrepareContext(ctx, `
		INSERT INTO events (village, seq, type, at, schedule_id, occurrence, audio_id, reason, received_at, broadcast_id, test)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (village, seq) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer ins.Close()
	for _, b := range batches {
		recv := fmtTime(b.ReceivedAt)
		for _, e := range b.Events {
			var sched, bcast, audio, occ any
			if e.ScheduleID != 0 {
				sched = e.ScheduleID
			}
			if e.BroadcastID != 0 {
				bcast = e.BroadcastID
			}
			if e.AudioID != 0 {
				audio = e.AudioID
			}
			if e.Occurrence != nil {
				occ = playlists.OccurrenceKey(*e.Occurrence)
			}
			if _, err := ins.ExecContext(ctx, b.Village, e.Seq, e.Type, fmtTime(e.At), sched, occ, audio, e.Reason, recv, bcast, e.Test); err != nil {
				return fmt.Errorf("ingest %s seq %d: %w", b.Village, e.Seq, err)
			}
		}
	}
	return nil
}

// advanceAck finds the highest seq N of village such that 1..N are all
// stored, starting from the acked seq already recorded, so it reads only
// the reports since the last ack.
func advanceAck(ctx context.Context, tx *sql.Tx, village string) (int64, error) {
	var acked int64
	err := tx.QueryRowContext(ctx, `SELECT acked_seq FROM agents WHERE village = $1`, village).Scan(&acked)
	if err != nil && !isNoRows(err) {
		return 0, fmt.Errorf("ack %s: %w", village, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq FROM events WHERE village = $1 AND seq > $2 ORDER BY seq`, village, acked)
	if err != nil {
		return 0, fmt.Errorf("ack %s: %w", village, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return 0, fmt.Errorf("ack %s: %w", village, err)
		}
		if seq != acked+1 {
			break
		}
		acked = seq
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("ack %s: %w", village, err)
	}
	return acked, nil
}

// SetPresence records a box's presence message as received at receivedAt
// (see SetPresences).
func (db *DB) SetPresence(ctx context.Context, village string, p api.Presence, receivedAt time.Time) error {
	unknown, err := db.SetPresences(ctx, []PresenceUpdate{{Village: village, Presence: p, ReceivedAt: receivedAt}})
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		return cx.Errorf(cx.ENOTFOUND, "no enrolled box for village %s", village).With(api.ReasonNoEnrolledBox, "code", village)
	}
	return nil
}

// PresenceUpdate is one box's presence message, as received.
type PresenceUpdate struct {
	Village    string
	Presence   api.Presence
	ReceivedAt time.Time // zero: now
}

// SetPresences records presence messages in one transaction, in their
// order: when a broker restarts, every box says it is online again within
// seconds, and one commit (one disk sync) per box would queue them for
// longer than the reconnection takes. presence_at moves only when the
// status changes, so the retained message the broker hands the controller
// again after a restart does not make an offline box look as if it had
// just gone offline. Villages with no enrolled box are skipped and
// returned.
func (db *DB) SetPresences(ctx context.Context, ups []PresenceUpdate) (unknown []string, err error) {
	if len(ups) == 0 {
		return nil, nil
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		upd, err := tx.PrepareContext(ctx, `
		UPDATE agents SET
			presence_at = CASE WHEN presence IS NULL OR presence <> $1 THEN $2 ELSE presence_at END,
			presence = $1,
			last_seen = CASE WHEN $1 = 'online' AND (last_seen IS NULL OR last_seen < $2) THEN $2 ELSE last_seen END,
			clock_offset_ms = $3,
			agent_version = CASE WHEN $4 = '' THEN agent_version ELSE $4 END
		WHERE village = $5`)
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, u := range ups {
			at := u.ReceivedAt
			if at.IsZero() {
				at = db.now()
			}
			p := u.Presence
			res, err := upd.ExecContext(ctx, p.Status, fmtTime(at), p.ClockOffsetMS, p.Version, u.Village)
			if err != nil {
				return fmt.Errorf("set presence %s: %w", u.Village, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				unknown = append(unknown, u.Village)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set presence: %w", err)
	}
	return unknown, nil
}

// NextCommandSeq returns the next command sequence number. It increases
// strictly across the controller's whole life, restarts included.
func (db *DB) NextCommandSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE command_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("next command seq: %w", err)
	}
	return seq, nil
}

// Retained is a command the controller keeps retained on the broker, byte
// for byte, so it can publish it again after a restart.
type Retained struct {
	Topic      string
	Payload    []byte
	Seq        int64
	Kind       string
	ScheduleID int64
	ExpiresAt  time.Time // until when the state matters to boxes
	// SignedUntil is when the payload's signature expires (zero: not
	// known, for commands stored before it was recorded). A command
	// relevant for longer is signed again before then.
	SignedUntil time.Time
}

// PutRetained stores r, replacing whatever was retained on its topic
// (under the lease ctx carries, if any: WithLease).
func (db *DB) PutRetained(ctx context.Context, r Retained) error {
	if _, ok := ctx.Value(leaseCtxKey{}).(Lease); !ok {
		return putRetained(ctx, db.db, r)
	}
	// Not inTx: the broker's retained messages do not change Version.
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := db.checkLease(ctx, tx); err != nil {
		return err
	}
	if err := putRetained(ctx, tx, r); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func putRetained(ctx context.Context, q execer, r Retained) error {
	if r.Topic == "" {
		return fmt.Errorf("put retained: empty topic")
	}
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	_, err := q.ExecContext(ctx, `
		INSERT INTO retained (topic, payload, seq, kind, schedule_id, expires_at, signed_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (topic) DO UPDATE SET
			payload = excluded.payload, seq = excluded.seq, kind = excluded.kind,
			schedule_id = excluded.schedule_id, expires_at = excluded.expires_at, signed_until = excluded.signed_until`,
		r.Topic, r.Payload, r.Seq, r.Kind, r.ScheduleID, fmtTime(r.ExpiresAt), nullTime(r.SignedUntil))
	if err != nil {
		return fmt.Errorf("put retained %s: %w", r.Topic, err)
	}
	return nil
}

const retainedCols = `topic, payload, seq, kind, schedule_id, expires_at, signed_until`

func scanRetained(s scanner) (Retained, error) {
	var r Retained
	err := s.Scan(&r.Topic, &r.Payload, &r.Seq, &r.Kind, &r.ScheduleID, timeCol{&r.ExpiresAt}, timeCol{&r.SignedUntil})
	return r, err
}

// ListRetained returns every retained command in seq order.
func (db *DB) ListRetained(ctx context.Context) ([]Retained, error) {
	return queryAll(ctx, db.db, "list retained", scanRetained, `SELECT `+retainedCols+` FROM retained ORDER BY seq, topic`)
}

// RetainedAfter returns up to limit retained commands with a seq above
// seq, in seq order: the whole set can be read in pages without holding
// anything.
func (db *DB) RetainedAfter(ctx context.Context, seq int64, limit int) ([]Retained, error) {
	return queryAll(ctx, db.db, "retained after", scanRetained,
		`SELECT `+retainedCols+` FROM retained WHERE seq > $1 ORDER BY seq, topic LIMIT $2`, seq, limit)
}

// RetainedDue returns, in seq order after seq, up to limit retained
// commands that stay relevant after now and whose signature expires
// before before (or is not known) while they stay relevant after it:
// those to sign again. It reads no others.
func (db *DB) RetainedDue(ctx context.Context, now, before time.Time, seq int64, limit int) ([]Retained, error) {
	return queryAll(ctx, db.db, "retained due", scanRetained,
		`SELECT `+retainedCols+` FROM retained
		WHERE seq > $1 AND expires_at > $2 AND (signed_until IS NULL OR signed_until < $3) AND expires_at > COALESCE(signed_until, '')
		ORDER BY seq, topic LIMIT $4`, seq, fmtTime(now), fmtTime(before), limit)
}

// RetainedOn returns the retained commands stored on topics (those that
// have one), in seq order.
func (db *DB) RetainedOn(ctx context.Context, topics []string) ([]Retained, error) {
	var out []Retained
	for part := range slices.Chunk(topics, 500) { // bound the parameters of one statement
		rs, err := queryAll(ctx, db.db, "retained on", scanRetained,
			`SELECT `+retainedCols+` FROM retained WHERE topic IN (`+placeholders(1, len(part))+`)`, anys(part)...)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	slices.SortFunc(out, func(a, b Retained) int { return cmp.Or(cmp.Compare(a.Seq, b.Seq), strings.Compare(a.Topic, b.Topic)) })
	return out, nil
}

// placeholders is "$from, $from+1, ..." for n parameters.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// RetainedUntil returns the latest ExpiresAt of the retained commands of
// kind on any of topics, and false if none is stored. It reads those
// topics' rows by key, however many commands are retained in all.
func (db *DB) RetainedUntil(ctx context.Context, kind string, topics []string) (time.Time, bool, error) {
	var until time.Time
	found := false
	const chunk = 500 // bound the parameters of one statement
	for part := range slices.Chunk(topics, chunk) {
		var t time.Time
		err := db.db.QueryRowContext(ctx, `SELECT MAX(expires_at) FROM retained WHERE kind = $1 AND topic IN (`+placeholders(2, len(part))+`)`,
			append([]any{kind}, anys(part)...)...).Scan(timeCol{&t})
		if err != nil {
			return time.Time{}, false, fmt.Errorf("retained until: %w", err)
		}
		if !t.IsZero() && (!found || t.After(until)) {
			until, found = t, true
		}
	}
	return until, found, nil
}

// Event is a stored report of a box.
type Event struct {
	Village     string
	Seq         int64
	Type        string
	At          time.Time
	ScheduleID  int64
	BroadcastID int64
	Occurrence  string // playlists.OccurrenceKey, or "" for reports not about one occurrence
	AudioID     int64
	Reason      string
	Test        bool // a report of a test broadcast: never real coverage
	ReceivedAt  time.Time
}

const eventCols = `village, seq, type, at, schedule_id, broadcast_id, occurrence, audio_id, reason, test, received_at`

func scanEvent(s scanner) (Event, error) {
	var e Event
	var sched, bcast, audio sql.NullInt64
	var occ sql.NullString
	err := s.Scan(&e.Village, &e.Seq, &e.Type, timeCol{&e.At}, &sched, &bcast, &occ, &audio, &e.Reason, &e.Test, timeCol{&e.ReceivedAt})
	e.ScheduleID, e.BroadcastID, e.AudioID, e.Occurrence = sched.Int64, bcast.Int64, audio.Int64, occ.String
	return e, err
}

// ScheduleEvents returns, in one query, every report about an occurrence
// of a schedule together with the schedule's reports that name no
// occurrence (received, rejected, download failures), ordered by village
// and seq. Reports marked test are left out: they are never coverage.
func (db *DB) ScheduleEvents(ctx context.Context, scheduleID int64, occurrence string) ([]Event, error) {
	return queryAll(ctx, db.db, "schedule events", scanEvent, `
		SELECT `+eventCols+`
		FROM events
		WHERE schedule_id = $1 AND (occurrence = $2 OR occurrence IS NULL) AND NOT test
		ORDER BY village, seq`, scheduleID, occurrence)
}

// BroadcastEvents returns every report about a broadcast whose test mark
// is test (a test broadcast's reports are all marked, a real one's none),
// ordered by village and seq.
func (db *DB) BroadcastEvents(ctx context.Context, broadcastID int64, test bool) ([]Event, error) {
	return queryAll(ctx, db.db, "broadcast events", scanEvent, `
		SELECT `+eventCols+`
		FROM events
		WHERE broadcast_id = $1 AND test = $2
		ORDER BY village, seq`, broadcastID, test)
}
