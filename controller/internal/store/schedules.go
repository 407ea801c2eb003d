package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Schedule is a stored schedule with the groups it was published to.
type Schedule struct {
	playlists.Schedule
	// Groups are the broker groups the schedule was published to, kept so
	// that its withdrawal reaches exactly the same boxes even if the
	// village list changed since.
	Groups      []api.Group
	CreatedAt   time.Time
	CreatedBy   string
	WithdrawnAt time.Time // zero while the schedule is live
}

// OnceAtGrace is how far in the past a one-off schedule's time may be when
// it is created: a clerk who clicks "now" a little late still gets it.
const OnceAtGrace = time.Minute

// CreateSchedule validates a schedule against the domain rules and what is
// stored (its playlist, the townships and villages it targets), computes
// the broker groups that reach its targets, and stores it.
func (db *DB) CreateSchedule(ctx context.Context, s playlists.Schedule, createdBy string) (Schedule, error) {
	if s.Timezone == "" {
		s.Timezone = playlists.DefaultTimezone
	}
	s.ID = 0
	if err := s.Validate(); err != nil {
		return Schedule{}, err
	}
	now := db.now()
	if s.OnceAt != nil {
		t := s.OnceAt.UTC()
		s.OnceAt = &t
		if t.Before(now.Add(-OnceAtGrace)) {
			return Schedule{}, cx.Invalid("once_at", fmt.Sprintf("%s is in the past; give a time from now on", t.Format(time.RFC3339))).With(api.ReasonOnceInPast, "at", t.Format(time.RFC3339))
		}
	}
	if last, ok := s.Last(); ok && s.Recurring != nil && !last.After(now) {
		return Schedule{}, cx.Invalid("recurring.end_date", "is in the past, so this schedule would never play").With(api.ReasonEndDateInPast)
	}
	out := Schedule{Schedule: s, CreatedAt: now, CreatedBy: createdBy}
	out.bound()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM playlists WHERE id = $1 AND deleted_at IS NULL`, s.PlaylistID).Scan(&one)
		if isNoRows(err) {
			return cx.Invalid("playlist_id", fmt.Sprintf("there is no playlist with id %d", s.PlaylistID)).With(api.ReasonPlaylistNotFound, "id", s.PlaylistID)
		}
		if err != nil {
			return fmt.Errorf("create schedule: %w", err)
		}
		villages, err := villagesQ(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkTargets(s.Targets, villages); err != nil {
			return err
		}
		out.Groups = api.GroupsFor(s.Targets, villages)
		if out.Groups == nil {
			out.Groups = []api.Group{}
		}
		targets, _ := json.Marshal(s.Targets)
		groups, _ := json.Marshal(out.Groups)
		var recurring any
		if s.Recurring != nil {
			b, _ := json.Marshal(s.Recurring)
			recurring = string(b)
		}
		var onceAt any
		if s.OnceAt != nil {
			onceAt = fmtTime(*s.OnceAt)
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO schedules (playlist_id, targets, timezone, once_at, recurring, groups, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			s.PlaylistID, string(targets), s.Timezone, onceAt, recurring, string(groups), fmtTime(now), createdBy).Scan(&out.ID)
		if err != nil {
			return fmt.Errorf("create schedule: %w", err)
		}
		if err := bindIdempotency(ctx, tx, "schedule/"+IDRef(out.ID)); err != nil {
			return err
		}
		return db.enqueue(ctx, tx, OutboxSchedule, IDRef(out.ID))
	})
	if err != nil {
		return Schedule{}, err
	}
	return out, nil
}

// checkTargets reports the first township or village the targets name that
// is not in the village list.
func checkTargets(t playlists.Targets, villages []playlists.Village) error {
	towns := map[string]bool{}
	codes := map[string]bool{}
	for _, v := range villages {
		towns[v.Township] = true
		codes[v.Code] = true
	}
	if t.All && len(villages) == 0 {
		return cx.Invalid("targets.all", "there are no villages yet; import the village list first").With(api.ReasonNoVillagesYet)
	}
	for i, n := range t.Townships {
		if !towns[n] {
			return cx.Invalid(fmt.Sprintf("targets.townships[%d]", i), fmt.Sprintf("no village is in a township named %q; check the spelling against the village list", n)).With(api.ReasonTownshipUnknown, "name", n)
		}
	}
	for i, c := range t.Villages {
		if !api.ValidVillageCode(c) {
			return cx.Invalid(fmt.Sprintf("targets.villages[%d]", i), fmt.Sprintf("%q is not a 12-digit village code", c)).With(api.ReasonVillageCodeInvalid, "code", c)
		}
		if !codes[c] {
			return cx.Invalid(fmt.Sprintf("targets.villages[%d]", i), fmt.Sprintf("there is no village with code %s", c)).With(api.ReasonVillageUnknown, "code", c)
		}
	}
	return nil
}

const scheduleCols = `id, playlist_id, targets, timezone, once_at, recurring, groups, created_at, created_by, withdrawn_at`

func scanSchedule(sc scanner) (Schedule, error) {
	var s Schedule
	var targets, groups string
	var recurring sql.NullString
	var onceAt time.Time
	err := sc.Scan(&s.ID, &s.PlaylistID, &targets, &s.Timezone, timeCol{&onceAt}, &recurring, &groups,
		timeCol{&s.CreatedAt}, &s.CreatedBy, timeCol{&s.WithdrawnAt})
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(targets), &s.Targets); err != nil {
		return s, fmt.Errorf("schedule %d targets: %w", s.ID, err)
	}
	if err := json.Unmarshal([]byte(groups), &s.Groups); err != nil {
		return s, fmt.Errorf("schedule %d groups: %w", s.ID, err)
	}
	if recurring.Valid {
		s.Recurring = new(playlists.Recurrence)
		if err := json.Unmarshal([]byte(recurring.String), s.Recurring); err != nil {
			return s, fmt.Errorf("schedule %d recurrence: %w", s.ID, err)
		}
	}
	if !onceAt.IsZero() {
		s.OnceAt = &onceAt
	}
	s.bound()
	return s, nil
}

// bound makes a recurring schedule begin at its creation, to the second
// (as stored): the slots of its first day that came before it are not
// occurrences on any screen, in any report nor on any box.
func (s *Schedule) bound() {
	if s.Recurring == nil || s.CreatedAt.IsZero() {
		s.NotBefore = nil
		return
	}
	nb := s.CreatedAt.UTC().Truncate(time.Second)
	s.NotBefore = &nb
}

// GetSchedule returns one schedule, withdrawn or not.
func (db *DB) GetSchedule(ctx context.Context, id int64) (Schedule, error) {
	s, err := scanSchedule(db.db.QueryRowContext(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE id = $1`, id))
	if isNoRows(err) {
		return s, cx.Errorf(cx.ENOTFOUND, "no schedule with id %d", id).With(api.ReasonScheduleNotFound, "id", id)
	}
	if err != nil {
		return s, fmt.Errorf("schedule %d: %w", id, err)
	}
	return s, nil
}

// Schedules lists schedules, newest first; withdrawn ones only if asked.
func (db *DB) Schedules(ctx context.Context, withdrawn bool) ([]Schedule, error) {
	return queryAll(ctx, db.db, "schedules", scanSchedule,
		`SELECT `+scheduleCols+` FROM schedules WHERE $1 OR withdrawn_at IS NULL ORDER BY id DESC`, withdrawn)
}

// WithdrawSchedule marks a schedule withdrawn (once; withdrawing again keeps
// the first time) and returns it.
func (db *DB) WithdrawSchedule(ctx context.Context, id int64) (Schedule, error) {
	var s Schedule
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE schedules SET withdrawn_at = $1 WHERE id = $2 AND withdrawn_at IS NULL`, fmtTime(db.now()), id); err != nil {
			return fmt.Errorf("withdraw schedule %d: %w", id, err)
		}
		var err error
		s, err = scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE id = $1`, id))
		if isNoRows(err) {
			return cx.Errorf(cx.ENOTFOUND, "no schedule with id %d", id).With(api.ReasonScheduleNotFound, "id", id)
		}
		if err != nil {
			return fmt.Errorf("withdraw schedule %d: %w", id, err)
		}
		// Withdrawing again repeats the withdrawal on the boxes.
		return db.enqueue(ctx, tx, OutboxWithdraw, IDRef(id))
	})
	return s, err
}
