package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Editing and deleting clips and playlists. Deleting marks the row
// (migration 00008): past broadcasts, schedules and reports keep naming
// it, and a box may still fetch a clip it was sent. What is still in use
// cannot be deleted; the refusal names every use.

// MaxTitleChars bounds a clip title or a playlist name, in characters.
const MaxTitleChars = 200

// Kinds of use in an in-use refusal (the Field of each detail).
const (
	UsePlaylist  = "playlist"
	UseSchedule  = "schedule"
	UseBroadcast = "broadcast"
)

func checkTitle(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", cx.Invalid(field, "is empty").With(api.ReasonTitleEmpty)
	}
	if n := utf8.RuneCountInString(s); n > MaxTitleChars {
		return "", cx.Invalid(field, fmt.Sprintf("is %d characters long; at most %d are allowed", n, MaxTitleChars)).With(api.ReasonTitleTooLong, "max", MaxTitleChars)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", cx.Invalid(field, fmt.Sprintf("contains the control character U+%04X; a title is plain text on one line", r)).With(api.ReasonTitleControl)
		}
	}
	return s, nil
}

// cannotDelete is what being in use forbids, for inUse.
const cannotDelete = "it cannot be deleted"

// inUse builds the conflict that refuses a change to what (so: what it
// may not do), used as uses say (each detail: Field the kind, Line its
// id, Reason its name).
func inUse(reason, name, what, so string, uses []api.RowError) error {
	parts := make([]string, len(uses))
	for i, u := range uses {
		parts[i] = fmt.Sprintf("%s %d", u.Field, u.Line)
		if u.Reason != "" {
			parts[i] += fmt.Sprintf(" (%q)", u.Reason)
		}
	}
	return &cx.Error{Code: cx.ECONFLICT, Message: what + " is in use, so " + so + ": " + strings.Join(parts, ", "), Details: uses,
		Reason: reason, Params: cx.Params("name", name, "uses", len(uses))}
}

// RenameAudio changes a clip's title.
func (db *DB) RenameAudio(ctx context.Context, id int64, title string) (Audio, error) {
	title, err := checkTitle("title", title)
	if err != nil {
		return Audio{}, err
	}
	var out Audio
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE audio SET title = $1 WHERE id = $2 AND deleted_at IS NULL`, title, id)
		if err != nil {
			return fmt.Errorf("rename audio %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return cx.Errorf(cx.ENOTFOUND, "no audio clip with id %d", id).With(api.ReasonClipNotFound, "id", id)
		}
		out, err = scanAudio(tx.QueryRowContext(ctx, `SELECT `+audioCols+` FROM audio WHERE id = $1`, id))
		return err
	})
	return out, err
}

// DeleteAudio marks a clip deleted unless a playlist (not deleted) or a
// broadcast that is still waiting or playing (not rejected, cancelled or
// expired) uses it.
func (db *DB) DeleteAudio(ctx context.Context, id int64) (Audio, error) {
	var out Audio
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a, err := scanAudio(tx.QueryRowContext(ctx, `SELECT `+audioCols+` FROM audio WHERE id = $1 AND deleted_at IS NULL`, id))
		if isNoRows(err) {
			return cx.Errorf(cx.ENOTFOUND, "no audio clip with id %d", id).With(api.ReasonClipNotFound, "id", id)
		}
		if err != nil {
			return fmt.Errorf("delete audio %d: %w", id, err)
		}
		uses, err := queryAll(ctx, tx, "clip uses", scanUse, `
			SELECT DISTINCT 'playlist', p.id, p.name FROM playlists p JOIN playlist_items i ON i.playlist_id = p.id
			WHERE i.audio_id = $1 AND p.deleted_at IS NULL
			ORDER BY 2`, id)
		if err != nil {
			return err
		}
		bs, err := db.activeBroadcasts(ctx, tx, "audio_id", id)
		if err != nil {
			return err
		}
		if uses = append(uses, bs...); len(uses) > 0 {
			return inUse(api.ReasonClipInUse, a.Title, fmt.Sprintf("audio clip %d (%q)", id, a.Title), cannotDelete, uses)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audio SET deleted_at = $1 WHERE id = $2`, fmtTime(db.now()), id); err != nil {
			return fmt.Errorf("delete audio %d: %w", id, err)
		}
		out = a
		return nil
	})
	return out, err
}

func scanUse(s scanner) (api.RowError, error) {
	var u api.RowError
	var id int64
	err := s.Scan(&u.Field, &id, &u.Reason)
	u.Line = int(id)
	return u, err
}

// activeBroadcasts lists, as uses, the broadcasts whose column col is id
// and that may still sound: waiting for approval or released, and not
// expired.
func (db *DB) activeBroadcasts(ctx context.Context, q querier, col string, id int64) ([]api.RowError, error) {
	return queryAll(ctx, q, "broadcast uses", scanUse, `
		SELECT 'broadcast', id, event_type FROM broadcasts
		WHERE `+col+` = $1 AND state IN ('`+api.BroadcastPending+`', '`+api.BroadcastReleased+`') AND expires_at > $2
		ORDER BY id`, id, fmtTime(db.now()))
}

// PlaylistChange is a partial update of a playlist; nil fields stay.
// Items and GapMS change what boxes play, so they may change only while
// no live schedule and no active broadcast uses the playlist.
type PlaylistChange struct {
	Name  *string
	GapMS *int64
	Items *[]playlists.Item
}

// UpdatePlaylist changes a playlist.
func (db *DB) UpdatePlaylist(ctx context.Context, id int64, ch PlaylistChange) (Playlist, error) {
	var out Playlist
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		ps, err := db.playlists(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(ps) == 0 || !ps[0].DeletedAt.IsZero() {
			return cx.Errorf(cx.ENOTFOUND, "no playlist with id %d", id).With(api.ReasonPlaylistNotFound, "id", id)
		}
		p := ps[0]
		if ch.Name != nil {
			if p.Name, err = checkTitle("name", *ch.Name); err != nil {
				return err
			}
		}
		if ch.GapMS != nil || ch.Items != nil {
			uses, err := db.playlistUses(ctx, tx, id)
			if err != nil {
				return err
			}
			if len(uses) > 0 {
				return inUse(api.ReasonPlaylistInUseEdit, p.Name, fmt.Sprintf("playlist %d (%q)", id, p.Name),
					"its clips and gap cannot change (withdraw the schedule, or make a new playlist)", uses)
			}
			if ch.GapMS != nil {
				p.GapMS = *ch.GapMS
			}
			if ch.Items != nil {
				p.Items = append([]playlists.Item(nil), (*ch.Items)...)
				if err := db.fillItems(ctx, tx, p.Items); err != nil {
					return err
				}
			}
		}
		if err := p.Validate(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE playlists SET name = $1, gap_ms = $2 WHERE id = $3`, p.Name, p.GapMS, id); err != nil {
			return fmt.Errorf("update playlist %d: %w", id, err)
		}
		if ch.Items != nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM playlist_items WHERE playlist_id = $1`, id); err != nil {
				return fmt.Errorf("update playlist %d: %w", id, err)
			}
			for i, it := range p.Items {
				if _, err := tx.ExecContext(ctx, `INSERT INTO playlist_items (playlist_id, position, audio_id, repeat) VALUES ($1, $2, $3, $4)`,
					id, i, it.AudioID, it.Repeat); err != nil {
					return fmt.Errorf("update playlist %d: %w", id, err)
				}
			}
		}
		out = p
		return nil
	})
	return out, err
}

// DeletePlaylist marks a playlist deleted unless a live schedule (not
// withdrawn, with a play still to come) or an active broadcast uses it.
func (db *DB) DeletePlaylist(ctx context.Context, id int64) (Playlist, error) {
	var out Playlist
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		ps, err := db.playlists(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(ps) == 0 || !ps[0].DeletedAt.IsZero() {
			return cx.Errorf(cx.ENOTFOUND, "no playlist with id %d", id).With(api.ReasonPlaylistNotFound, "id", id)
		}
		uses, err := db.playlistUses(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(uses) > 0 {
			return inUse(api.ReasonPlaylistInUse, ps[0].Name, fmt.Sprintf("playlist %d (%q)", id, ps[0].Name), cannotDelete, uses)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE playlists SET deleted_at = $1 WHERE id = $2`, fmtTime(db.now()), id); err != nil {
			return fmt.Errorf("delete playlist %d: %w", id, err)
		}
		out = ps[0]
		return nil
	})
	return out, err
}

// playlistUses lists the live schedules and active broadcasts of a
// playlist. A schedule is live while it is not withdrawn and has a play
// to come; one that will never play again does not hold its playlist.
func (db *DB) playlistUses(ctx context.Context, tx *sql.Tx, id int64) ([]api.RowError, error) {
	scheds, err := queryAll(ctx, tx, "playlist uses", scanSchedule,
		`SELECT `+scheduleCols+` FROM schedules WHERE playlist_id = $1 AND withdrawn_at IS NULL ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	var uses []api.RowError
	now := db.now()
	for _, s := range scheds {
		if next, err := s.Next(now, 1); err == nil && len(next) == 0 {
			continue
		}
		uses = append(uses, api.RowError{Field: UseSchedule, Line: int(s.ID), Reason: scheduleWhen(s)})
	}
	bs, err := db.activeBroadcasts(ctx, tx, "playlist_id", id)
	if err != nil {
		return nil, err
	}
	return append(uses, bs...), nil
}

// fillItems checks that every item names a clip that is stored and not
// deleted, and copies its sha256, duration and gain into it.
func (db *DB) fillItems(ctx context.Context, tx *sql.Tx, items []playlists.Item) error {
	for i := range items {
		it := &items[i]
		if it.Repeat == 0 {
			it.Repeat = 1
		}
		// A clip stored before loudness was measured (gain_db NULL)
		// plays as stored, at 0 dB.
		err := tx.QueryRowContext(ctx, `SELECT sha256, duration_ms, COALESCE(gain_db, 0) FROM audio WHERE id = $1 AND deleted_at IS NULL`, it.AudioID).Scan(&it.SHA256, &it.DurationMS, &it.GainDB)
		if isNoRows(err) {
			return cx.Invalid(fmt.Sprintf("items[%d].audio_id", i), fmt.Sprintf("there is no audio clip with id %d; upload it first or pick one from the audio list", it.AudioID)).With(api.ReasonClipNotFound, "id", it.AudioID)
		}
		if err != nil {
			return fmt.Errorf("playlist item %d: %w", i, err)
		}
	}
	return nil
}

// scheduleWhen names a schedule in an in-use refusal by when it plays:
// its time for a one-off, its times of day for a recurring one.
func scheduleWhen(s Schedule) string {
	if s.OnceAt != nil {
		loc, err := s.Location()
		if err != nil {
			loc = time.UTC
		}
		return s.OnceAt.In(loc).Format("2006-01-02 15:04")
	}
	if s.Recurring != nil {
		return strings.Join(s.Recurring.Times, ",")
	}
	return ""
}
