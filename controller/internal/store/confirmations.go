package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Confirmation is a village broadcaster's word that a village without a
// box played a schedule's occurrence or a broadcast by hand.
type Confirmation struct {
	ID          int64
	Village     string
	ScheduleID  int64
	Occurrence  time.Time // with ScheduleID
	BroadcastID int64
	PlayedAt    time.Time
	Note        string
	CreatedAt   time.Time
	CreatedBy   string
}

// ClockSkew is how far in the future a reported time may be: the
// reporter's clock may run a little ahead.
const ClockSkew = 5 * time.Minute

// MaxNote bounds a confirmation's note, in bytes.
const MaxNote = 500

const confirmationCols = `id, village, schedule_id, occurrence, broadcast_id, played_at, note, created_at, created_by`

func scanConfirmation(s scanner) (Confirmation, error) {
	var c Confirmation
	var sched, bcast sql.NullInt64
	err := s.Scan(&c.ID, &c.Village, &sched, timeCol{&c.Occurrence}, &bcast, timeCol{&c.PlayedAt}, &c.Note, timeCol{&c.CreatedAt}, &c.CreatedBy)
	c.ScheduleID, c.BroadcastID = sched.Int64, bcast.Int64
	return c, err
}

// CreateConfirmation stores a hand confirmation after checking it makes
// sense: the village has no box, the schedule or broadcast targets it, the
// occurrence exists and has begun (or the broadcast was sent), and it was
// not confirmed already. PlayedAt defaults to now.
func (db *DB) CreateConfirmation(ctx context.Context, c Confirmation) (Confirmation, error) {
	now := db.now()
	c.ID, c.CreatedAt = 0, now
	if c.PlayedAt.IsZero() {
		c.PlayedAt = now
	}
	c.PlayedAt = c.PlayedAt.UTC()
	if c.PlayedAt.After(now.Add(ClockSkew)) {
		return Confirmation{}, cx.Invalid("played_at", "is in the future").With(api.ReasonPlayedInFuture)
	}
	if len(c.Note) > MaxNote {
		return Confirmation{}, cx.Invalid("note", fmt.Sprintf("is longer than %d bytes", MaxNote)).With(api.ReasonNoteTooLong, "max", MaxNote)
	}
	if (c.ScheduleID == 0) == (c.BroadcastID == 0) {
		return Confirmation{}, cx.Invalid("schedule_id", "give either schedule_id (with occurrence) or broadcast_id").With(api.ReasonConfirmWhich)
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var v playlists.Village
		err := tx.QueryRowContext(ctx, `SELECT code, name, township, device FROM villages WHERE code = $1`, c.Village).Scan(&v.Code, &v.Name, &v.Township, &v.Device)
		if isNoRows(err) {
			return cx.Errorf(cx.ENOTFOUND, "no village with code %s", c.Village).With(api.ReasonVillageUnknown, "code", c.Village)
		}
		if err != nil {
			return fmt.Errorf("confirm: %w", err)
		}
		if v.Device != playlists.DeviceManual {
			return cx.Errorf(cx.ECONFLICT, "village %s (%s) has a box, which reports what it played by itself; only villages without a box confirm by hand", v.Code, v.Name).With(api.ReasonConfirmHasBox, "name", v.Name)
		}
		var dup string
		if c.ScheduleID != 0 {
			if err := checkScheduleConfirmation(ctx, tx, &c, v, now); err != nil {
				return err
			}
			dup = fmt.Sprintf("occurrence %s of schedule %d", c.Occurrence.Format(time.RFC3339), c.ScheduleID)
		} else {
			if err := checkBroadcastConfirmation(ctx, tx, c, v); err != nil {
				return err
			}
			dup = fmt.Sprintf("broadcast %d", c.BroadcastID)
		}
		var at time.Time
		err = tx.QueryRowContext(ctx, `
			SELECT played_at FROM confirmations
			WHERE village = $1 AND (schedule_id = $2 AND occurrence = $3 OR broadcast_id = $4)`,
			c.Village, c.ScheduleID, occKey(c), c.BroadcastID).Scan(timeCol{&at})
		if err == nil {
			return cx.Errorf(cx.ECONFLICT, "village %s already confirmed %s (played at %s)", c.Village, dup, at.Format(time.RFC3339)).With(api.ReasonAlreadyConfirmed, "played_at", at.Format(time.RFC3339))
		}
		if !isNoRows(err) {
			return fmt.Errorf("confirm: %w", err)
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO confirmations (village, schedule_id, occurrence, broadcast_id, played_at, note, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			c.Village, nullID(c.ScheduleID), nullString(occKey(c)), nullID(c.BroadcastID), fmtTime(c.PlayedAt), c.Note, fmtTime(now), c.CreatedBy).Scan(&c.ID)
		if err != nil {
			return fmt.Errorf("confirm: %w", err)
		}
		return nil
	})
	if err != nil {
		return Confirmation{}, err
	}
	return c, nil
}

func occKey(c Confirmation) string {
	if c.ScheduleID == 0 {
		return ""
	}
	return playlists.OccurrenceKey(c.Occurrence)
}

func checkScheduleConfirmation(ctx context.Context, tx *sql.Tx, c *Confirmation, v playlists.Village, now time.Time) error {
	s, err := scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE id = $1`, c.ScheduleID))
	if isNoRows(err) {
		return cx.Invalid("schedule_id", fmt.Sprintf("there is no schedule with id %d", c.ScheduleID)).With(api.ReasonScheduleNotFound, "id", c.ScheduleID)
	}
	if err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	if len(s.Targets.Select([]playlists.Village{v})) == 0 {
		return cx.Invalid("schedule_id", fmt.Sprintf("schedule %d is not for village %s", s.ID, v.Code)).With(api.ReasonScheduleNotForVillage, "id", s.ID, "name", v.Name)
	}
	if c.Occurrence.IsZero() {
		return cx.Invalid("occurrence", "give the start of the occurrence that was played (RFC 3339)").With(api.ReasonOccurrenceRequired)
	}
	occ, err := s.Occurrences(c.Occurrence, c.Occurrence.Add(time.Second))
	if err != nil {
		return err
	}
	if len(occ) == 0 || !occ[0].Equal(c.Occurrence) {
		return cx.Invalid("occurrence", fmt.Sprintf("%s is not an occurrence of schedule %d", c.Occurrence.Format(time.RFC3339), s.ID)).With(api.ReasonNotOccurrence, "at", c.Occurrence.Format(time.RFC3339), "id", s.ID)
	}
	if c.Occurrence.After(now.Add(ClockSkew)) {
		return cx.Invalid("occurrence", "has not begun yet; confirm it once it has been played").With(api.ReasonOccurrenceNotYet, "at", c.Occurrence.Format(time.RFC3339))
	}
	c.Occurrence = occ[0].UTC()
	return nil
}

func checkBroadcastConfirmation(ctx context.Context, tx *sql.Tx, c Confirmation, v playlists.Village) error {
	b, err := getBroadcast(ctx, tx, c.BroadcastID)
	if cx.Code(err) == cx.ENOTFOUND {
		return cx.Invalid("broadcast_id", fmt.Sprintf("there is no broadcast with id %d", c.BroadcastID)).With(api.ReasonBroadcastNotFound, "id", c.BroadcastID)
	}
	if err != nil {
		return err
	}
	if len(b.Targets.Select([]playlists.Village{v})) == 0 {
		return cx.Invalid("broadcast_id", fmt.Sprintf("broadcast %d is not for village %s", b.ID, v.Code)).With(api.ReasonBroadcastNotForVillage, "id", b.ID, "name", v.Name)
	}
	if b.SentAt.IsZero() {
		return cx.Errorf(cx.ECONFLICT, "broadcast %d is %s and was never sent; there is nothing to confirm", b.ID, stateWords(b)).With(api.ReasonBroadcastNeverSent, "id", b.ID, "state", b.State)
	}
	return nil
}

// ScheduleConfirmations returns the hand confirmations of one occurrence.
func (db *DB) ScheduleConfirmations(ctx context.Context, scheduleID int64, occurrence string) ([]Confirmation, error) {
	return queryAll(ctx, db.db, "schedule confirmations", scanConfirmation,
		`SELECT `+confirmationCols+` FROM confirmations WHERE schedule_id = $1 AND occurrence = $2 ORDER BY village`, scheduleID, occurrence)
}

// BroadcastConfirmations returns the hand confirmations of a broadcast.
func (db *DB) BroadcastConfirmations(ctx context.Context, broadcastID int64) ([]Confirmation, error) {
	return queryAll(ctx, db.db, "broadcast confirmations", scanConfirmation,
		`SELECT `+confirmationCols+` FROM confirmations WHERE broadcast_id = $1 ORDER BY village`, broadcastID)
}
