package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Audio is a clip of the library, stored in the playback format.
type Audio struct {
	ID         int64
	SHA256     string
	Title      string
	DurationMS int64
	SampleRate int
	Channels   int
	SizeBytes  int64
	CreatedAt  time.Time
	// LoudnessLUFS is the clip's integrated loudness (ITU-R BS.1770-4),
	// PeakDBFS its true peak and GainDB the gain a player applies to bring
	// it to the library's target (see media.Clip). They are nil for a clip
	// stored before loudness was measured: unknown, which is not 0 dB.
	LoudnessLUFS *float64
	PeakDBFS     *float64
	GainDB       *float64
	// CreatedBy names the user or token that uploaded the clip or had it
	// spoken; "" if unknown (stored before it was recorded, or by a CAP
	// alert).
	CreatedBy string
	// DeletedAt is set once the clip is deleted (DeleteAudio): it is out
	// of the library's list, but past broadcasts still name it and boxes
	// may still fetch it.
	DeletedAt time.Time
}

const audioCols = `id, sha256, title, duration_ms, sample_rate, channels, size_bytes, created_at, loudness_lufs, peak_dbfs, gain_db, created_by, deleted_at`

func scanAudio(s scanner) (Audio, error) {
	var a Audio
	var lufs, peak, gain sql.NullFloat64
	err := s.Scan(&a.ID, &a.SHA256, &a.Title, &a.DurationMS, &a.SampleRate, &a.Channels, &a.SizeBytes, timeCol{&a.CreatedAt},
		&lufs, &peak, &gain, &a.CreatedBy, timeCol{&a.DeletedAt})
	a.LoudnessLUFS, a.PeakDBFS, a.GainDB = floatPtr(lufs), floatPtr(peak), floatPtr(gain)
	return a, err
}

func floatPtr(f sql.NullFloat64) *float64 {
	if !f.Valid {
		return nil
	}
	return &f.Float64
}

// nullFloat stores nil as NULL.
func nullFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// CreateAudio records a clip. If a clip with the same sha256 is already
// stored, it returns that one and created=false, and does not call commit;
// if that clip was stored before loudness was measured, it takes a's
// measurement.
// Otherwise commit (which puts the file in place) runs inside the
// transaction, after the row is inserted and before it is committed: if
// commit fails, no row is stored; if the insert fails, no file is put in
// place.
func (db *DB) CreateAudio(ctx context.Context, a Audio, commit func() error) (stored Audio, created bool, err error) {
	if a.Title == "" {
		a.Title = a.SHA256[:min(12, len(a.SHA256))]
	}
	a.CreatedAt = db.now()
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		existing, err := scanAudio(tx.QueryRowContext(ctx, `SELECT `+audioCols+` FROM audio WHERE sha256 = $1`, a.SHA256))
		if err == nil {
			if !existing.DeletedAt.IsZero() {
				// Uploaded again after it was deleted: back in the
				// library, under the new title.
				_, err := tx.ExecContext(ctx, `UPDATE audio SET deleted_at = NULL, title = $1, created_by = $2 WHERE id = $3`, a.Title, a.CreatedBy, existing.ID)
				if err != nil {
					return fmt.Errorf("create audio: restore clip %d: %w", existing.ID, err)
				}
				existing.DeletedAt, existing.Title, existing.CreatedBy = time.Time{}, a.Title, a.CreatedBy
			}
			if existing.LoudnessLUFS == nil && a.LoudnessLUFS != nil {
				_, err := tx.ExecContext(ctx, `UPDATE audio SET loudness_lufs = $1, peak_dbfs = $2, gain_db = $3 WHERE id = $4`,
					nullFloat(a.LoudnessLUFS), nullFloat(a.PeakDBFS), nullFloat(a.GainDB), existing.ID)
				if err != nil {
					return fmt.Errorf("create audio: measure clip %d: %w", existing.ID, err)
				}
				existing.LoudnessLUFS, existing.PeakDBFS, existing.GainDB = a.LoudnessLUFS, a.PeakDBFS, a.GainDB
			}
			stored = existing
			return nil
		}
		if !isNoRows(err) {
			return fmt.Errorf("create audio: %w", err)
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO audio (sha256, title, duration_ms, sample_rate, channels, size_bytes, created_at, loudness_lufs, peak_dbfs, gain_db, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			a.SHA256, a.Title, a.DurationMS, a.SampleRate, a.Channels, a.SizeBytes, fmtTime(a.CreatedAt),
			nullFloat(a.LoudnessLUFS), nullFloat(a.PeakDBFS), nullFloat(a.GainDB), a.CreatedBy).Scan(&a.ID)
		if err != nil {
			return fmt.Errorf("create audio: %w", err)
		}
		if commit != nil {
			if err := commit(); err != nil {
				return err
			}
		}
		stored, created = a, true
		return nil
	})
	if err != nil {
		return Audio{}, false, err
	}
	return stored, created, nil
}

// Audio returns one clip, deleted or not.
func (db *DB) Audio(ctx context.Context, id int64) (Audio, error) {
	a, err := scanAudio(db.db.QueryRowContext(ctx, `SELECT `+audioCols+` FROM audio WHERE id = $1`, id))
	if isNoRows(err) {
		return a, cx.Errorf(cx.ENOTFOUND, "no audio clip with id %d", id).With(api.ReasonClipNotFound, "id", id)
	}
	if err != nil {
		return a, fmt.Errorf("audio %d: %w", id, err)
	}
	return a, nil
}

// AudioList lists the library (deleted clips left out), newest first.
func (db *DB) AudioList(ctx context.Context) ([]Audio, error) {
	return queryAll(ctx, db.db, "audio list", scanAudio, `SELECT `+audioCols+` FROM audio WHERE deleted_at IS NULL ORDER BY id DESC`)
}

// AudioCount returns how many clips are stored.
func (db *DB) AudioCount(ctx context.Context) (int, error) {
	var n int
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audio`).Scan(&n); err != nil {
		return 0, fmt.Errorf("audio count: %w", err)
	}
	return n, nil
}
