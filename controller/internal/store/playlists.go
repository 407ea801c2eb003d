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

// Playlist is a stored playlist; its items carry each clip's sha256,
// duration and loudness gain from the library.
type Playlist struct {
	playlists.Playlist
	CreatedAt time.Time
	DeletedAt time.Time // zero unless deleted (DeletePlaylist)
}

// CreatePlaylist validates and stores a playlist. Every item must name a
// stored clip; a Repeat of 0 is stored as 1.
func (db *DB) CreatePlaylist(ctx context.Context, p playlists.Playlist) (Playlist, error) {
	p.Items = append([]playlists.Item(nil), p.Items...)
	if err := p.Validate(); err != nil {
		return Playlist{}, err
	}
	out := Playlist{CreatedAt: db.now()}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.fillItems(ctx, tx, p.Items); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO playlists (name, gap_ms, created_at) VALUES ($1, $2, $3) RETURNING id`,
			p.Name, p.GapMS, fmtTime(out.CreatedAt)).Scan(&p.ID)
		if err != nil {
			return fmt.Errorf("create playlist: %w", err)
		}
		for i, it := range p.Items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO playlist_items (playlist_id, position, audio_id, repeat) VALUES ($1, $2, $3, $4)`,
				p.ID, i, it.AudioID, it.Repeat); err != nil {
				return fmt.Errorf("create playlist: %w", err)
			}
		}
		return bindIdempotency(ctx, tx, "playlist/"+IDRef(p.ID))
	})
	if err != nil {
		return Playlist{}, err
	}
	out.Playlist = p
	return out, nil
}

// GetPlaylist returns one playlist with its items, deleted or not (a
// schedule's report names its playlist for ever).
func (db *DB) GetPlaylist(ctx context.Context, id int64) (Playlist, error) {
	ps, err := db.playlists(ctx, db.db, id)
	if err != nil {
		return Playlist{}, err
	}
	if len(ps) == 0 {
		return Playlist{}, cx.Errorf(cx.ENOTFOUND, "no playlist with id %d", id).With(api.ReasonPlaylistNotFound, "id", id)
	}
	return ps[0], nil
}

// Playlists lists every playlist not deleted, with its items, newest
// first.
func (db *DB) Playlists(ctx context.Context) ([]Playlist, error) {
	ps, err := db.playlists(ctx, db.db, 0)
	out := ps[:0]
	for _, p := range ps {
		if p.DeletedAt.IsZero() {
			out = append(out, p)
		}
	}
	return out, err
}

// playlists loads one playlist (id > 0) or all, in two queries.
func (db *DB) playlists(ctx context.Context, q querier, id int64) ([]Playlist, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, gap_ms, created_at, deleted_at FROM playlists WHERE $1 = 0 OR id = $1 ORDER BY id DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("playlists: %w", err)
	}
	var out []Playlist
	index := map[int64]int{}
	for rows.Next() {
		var p Playlist
		if err := rows.Scan(&p.ID, &p.Name, &p.GapMS, timeCol{&p.CreatedAt}, timeCol{&p.DeletedAt}); err != nil {
			rows.Close()
			return nil, fmt.Errorf("playlists: %w", err)
		}
		p.Items = []playlists.Item{}
		index[p.ID] = len(out)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("playlists: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	rows, err = q.QueryContext(ctx, `
		SELECT i.playlist_id, i.audio_id, i.repeat, a.sha256, a.duration_ms, COALESCE(a.gain_db, 0)
		FROM playlist_items i JOIN audio a ON a.id = i.audio_id
		WHERE $1 = 0 OR i.playlist_id = $1
		ORDER BY i.playlist_id, i.position`, id)
	if err != nil {
		return nil, fmt.Errorf("playlist items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int64
		var it playlists.Item
		if err := rows.Scan(&pid, &it.AudioID, &it.Repeat, &it.SHA256, &it.DurationMS, &it.GainDB); err != nil {
			return nil, fmt.Errorf("playlist items: %w", err)
		}
		if k, ok := index[pid]; ok {
			out[k].Items = append(out[k].Items, it)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("playlist items: %w", err)
	}
	return out, nil
}
