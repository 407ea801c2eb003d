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

// Broadcast is a stored broadcast.
type Broadcast struct {
	ID int64
	// Exactly one of AudioID and PlaylistID names what plays; Text is what
	// was spoken when the clip came from text-to-speech.
	AudioID    int64
	PlaylistID int64
	Text       string
	// Playlist is what the boxes get, with each clip's sha256, duration and
	// loudness gain, fixed when the broadcast was created.
	Playlist        playlists.Playlist
	Targets         playlists.Targets
	Groups          []api.Group
	Priority        playlists.Priority
	Severity        int
	EventType       string
	Repeat          int
	Volume          int
	ForceFullVolume bool
	Test            bool
	ExpiresAt       time.Time
	// StartsAt, if set, is the earliest a box may get it: a released
	// broadcast is held (Held) until then, out of the outbox, and put
	// there by ReleaseHeld.
	StartsAt time.Time
	Held     bool

	State         string
	NeedsApproval bool
	CreatedAt     time.Time
	CreatedBy     string // the actor's name, for people
	CreatedByKey  string // Token.Principal of the creator, for the two-person rule

	DecidedAt      time.Time // approval or rejection
	DecidedBy      string
	DecisionReason string
	SentAt         time.Time // first successful publication
	SendError      string    // why the last publication failed, if it did
	CancelledAt    time.Time
	CancelledBy    string

	// EBMID is the emergency message's ID in the national chain (GY/T
	// 384): the upper platform's, for a broadcast made from its message;
	// unique. Source says which door made it ("" for the API and console,
	// "cap", "ebd:<the sender's EBRID>").
	EBMID  string
	Source string
}

// Wire is the broadcast as boxes get it.
func (b Broadcast) Wire() api.BroadcastState {
	return api.BroadcastState{
		ID: b.ID, Priority: b.Priority, Severity: b.Severity, EventType: b.EventType, Test: b.Test,
		Playlist: b.Playlist, Repeat: b.Repeat, IssuedAt: b.CreatedAt, ExpiresAt: b.ExpiresAt,
		Volume: b.Volume, ForceFullVolume: b.ForceFullVolume,
	}
}

// WasReleased reports whether the broadcast was ever cleared to send (and
// so may be on boxes): released now, or cancelled after it needed no
// approval or was approved, and its start had come.
func (b Broadcast) WasReleased() bool {
	switch b.State {
	case api.BroadcastReleased:
		return true
	case api.BroadcastCancelled:
		return !b.Held && (!b.NeedsApproval || !b.DecidedAt.IsZero())
	}
	return false
}

// Duration is how long the broadcast sounds, repeats included.
func (b Broadcast) Duration() time.Duration {
	return time.Duration(max(b.Repeat, 1)) * b.Playlist.Duration()
}

const broadcastCols = `id, audio_id, playlist_id, text, playlist, targets, groups, priority, severity, event_type,
	repeat, volume, force_full_volume, test, expires_at, state, needs_approval, created_at, created_by, created_by_key,
	decided_at, decided_by, decision_reason, sent_at, send_error, cancelled_at, cancelled_by, ebm_id, source, starts_at, held`

func scanBroadcast(s scanner) (Broadcast, error) {
	var b Broadcast
	var audio, playlist sql.NullInt64
	var pl, targets, groups string
	err := s.Scan(&b.ID, &audio, &playlist, &b.Text, &pl, &targets, &groups, &b.Priority, &b.Severity, &b.EventType,
		&b.Repeat, &b.Volume, &b.ForceFullVolume, &b.Test, timeCol{&b.ExpiresAt}, &b.State, &b.NeedsApproval,
		timeCol{&b.CreatedAt}, &b.CreatedBy, &b.CreatedByKey,
		timeCol{&b.DecidedAt}, &b.DecidedBy, &b.DecisionReason, timeCol{&b.SentAt}, &b.SendError,
		timeCol{&b.CancelledAt}, &b.CancelledBy, &b.EBMID, &b.Source, timeCol{&b.StartsAt}, &b.Held)
	if err != nil {
		return b, err
	}
	b.AudioID, b.PlaylistID = audio.Int64, playlist.Int64
	for _, j := range []struct {
		what string
		src  string
		dst  any
	}{{"playlist", pl, &b.Playlist}, {"targets", targets, &b.Targets}, {"groups", groups, &b.Groups}} {
		if err := json.Unmarshal([]byte(j.src), j.dst); err != nil {
			return b, fmt.Errorf("broadcast %d %s: %w", b.ID, j.what, err)
		}
	}
	return b, nil
}

// CreateBroadcast stores a broadcast whose fields the caller has checked.
// It checks what they name against what is stored (the clip or playlist,
// the townships and villages targeted), fixes the playlist the boxes will
// get, and computes the broker groups. needsApproval is asked, with the
// villages the targets reach, whether the broadcast must wait for a second
// person; the broadcast is stored pending_approval or released. A
// released one whose StartsAt is still to come is held: it enters the
// outbox at StartsAt (ReleaseHeld).
func (db *DB) CreateBroadcast(ctx context.Context, b Broadcast, needsApproval func(reached []playlists.Village) bool) (Broadcast, error) {
	b.ID = 0
	b.CreatedAt = db.now()
	b.ExpiresAt = b.ExpiresAt.UTC()
	if !b.StartsAt.IsZero() {
		b.StartsAt = b.StartsAt.UTC()
	}
	b.DecidedAt, b.DecidedBy, b.DecisionReason, b.SentAt, b.SendError, b.CancelledAt, b.CancelledBy = time.Time{}, "", "", time.Time{}, "", time.Time{}, ""
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		switch {
		case b.AudioID != 0:
			var title string
			it := playlists.Item{AudioID: b.AudioID, Repeat: 1}
			err := tx.QueryRowContext(ctx, `SELECT sha256, duration_ms, COALESCE(gain_db, 0), title FROM audio WHERE id = $1 AND deleted_at IS NULL`, b.AudioID).Scan(&it.SHA256, &it.DurationMS, &it.GainDB, &title)
			if isNoRows(err) {
				return cx.Invalid("audio_id", fmt.Sprintf("there is no audio clip with id %d", b.AudioID)).With(api.ReasonClipNotFound, "id", b.AudioID)
			}
			if err != nil {
				return fmt.Errorf("create broadcast: %w", err)
			}
			b.Playlist = playlists.Playlist{Name: title, Items: []playlists.Item{it}}
		case b.PlaylistID != 0:
			ps, err := db.playlists(ctx, tx, b.PlaylistID)
			if err != nil {
				return err
			}
			if len(ps) == 0 || !ps[0].DeletedAt.IsZero() {
				return cx.Invalid("playlist_id", fmt.Sprintf("there is no playlist with id %d", b.PlaylistID)).With(api.ReasonPlaylistNotFound, "id", b.PlaylistID)
			}
			b.Playlist = ps[0].Playlist
		default:
			return cx.Invalid("audio_id", "give one of audio_id, playlist_id and text").With(api.ReasonContentChooseOne)
		}
		villages, err := villagesQ(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkTargets(b.Targets, villages); err != nil {
			return err
		}
		b.Groups = api.GroupsFor(b.Targets, villages)
		if b.Groups == nil {
			b.Groups = []api.Group{}
		}
		reached := b.Targets.Select(villages)
		if needsApproval != nil {
			if err := db.lockPerson(ctx, tx, b.CreatedByKey); err != nil {
				return err
			}
			alone, err := releasedAlone(ctx, tx, b.CreatedByKey, b.CreatedAt)
			if err != nil {
				return err
			}
			for _, o := range alone {
				reached = append(reached, o.Targets.Select(villages)...)
			}
		}
		b.NeedsApproval = needsApproval != nil && needsApproval(reached)
		b.State = api.BroadcastReleased
		if b.NeedsApproval {
			b.State = api.BroadcastPending
		}
		b.Held = b.State == api.BroadcastReleased && b.StartsAt.After(b.CreatedAt)
		pl, _ := json.Marshal(b.Playlist)
		targets, _ := json.Marshal(b.Targets)
		groups, _ := json.Marshal(b.Groups)
		err = tx.QueryRowContext(ctx, `
			INSERT INTO broadcasts (audio_id, playlist_id, text, playlist, targets, groups, priority, severity, event_type,
				repeat, volume, force_full_volume, test, expires_at, state, needs_approval, created_at, created_by, created_by_key, ebm_id, source,
				starts_at, held)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) RETURNING id`,
			nullID(b.AudioID), nullID(b.PlaylistID), b.Text, string(pl), string(targets), string(groups), b.Priority, b.Severity, b.EventType,
			b.Repeat, b.Volume, b.ForceFullVolume, b.Test, fmtTime(b.ExpiresAt), b.State, b.NeedsApproval,
			fmtTime(b.CreatedAt), b.CreatedBy, b.CreatedByKey, b.EBMID, b.Source, nullTime(b.StartsAt), b.Held).Scan(&b.ID)
		if isUniqueViolation(err) && b.EBMID != "" {
			return cx.Errorf(cx.ECONFLICT, "the emergency message %s was broadcast already", b.EBMID).With(api.ReasonEBMDuplicate, "value", b.EBMID)
		}
		if err != nil {
			return fmt.Errorf("create broadcast: %w", err)
		}
		if err := bindIdempotency(ctx, tx, "broadcast/"+IDRef(b.ID)); err != nil {
			return err
		}
		if err := bindCAPClaim(ctx, tx, b.ID); err != nil {
			return err
		}
		if b.State == api.BroadcastReleased && !b.Held {
			return db.enqueue(ctx, tx, OutboxBroadcast, IDRef(b.ID))
		}
		return nil
	})
	if err != nil {
		return Broadcast{}, err
	}
	return b, nil
}

// releasedAlone lists the person's urgent and emergency broadcasts that
// went out without a second person's approval and have not expired nor
// been cancelled. A new broadcast is judged with the villages these still
// reach: otherwise one person could sound the county alone, one township
// at a time, each under the approval threshold.
func releasedAlone(ctx context.Context, q querier, person string, now time.Time) ([]Broadcast, error) {
	if person == "" {
		return nil, nil
	}
	all, err := queryAll(ctx, q, "broadcasts released alone", scanBroadcast, `SELECT `+broadcastCols+` FROM broadcasts
		WHERE created_by_key = $1 AND state = $2 AND needs_approval = $3 AND priority IN ($4, $5)`,
		person, api.BroadcastReleased, false, playlists.Urgent, playlists.Emergency)
	if err != nil {
		return nil, err
	}
	live := all[:0]
	for _, b := range all {
		if now.Before(b.ExpiresAt) {
			live = append(live, b)
		}
	}
	return live, nil
}

// lockBroadcast makes a transaction that decides on broadcast id from
// what it reads the only one doing so until it ends. SQLite's write
// transactions (BEGIN IMMEDIATE) already run one at a time; PostgreSQL's
// (read committed) did not: an approval that read "pending" overwrote a
// cancellation committed meanwhile, and the cancelled emergency sounded.
func (db *DB) lockBroadcast(ctx context.Context, tx *sql.Tx, id int64) error {
	if !db.postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT id FROM broadcasts WHERE id = $1 FOR UPDATE`, id); err != nil {
		return fmt.Errorf("lock broadcast %d: %w", id, err)
	}
	return nil
}

// lockPerson makes a transaction that judges a person's new broadcast by
// their other ones (releasedAlone) the only one doing so for them until it
// ends (on PostgreSQL; SQLite's write transactions run one at a time):
// otherwise two emergencies sent at once, one township each, each missed
// the other and both went out without a second person.
func (db *DB) lockPerson(ctx context.Context, tx *sql.Tx, person string) error {
	if !db.postgres || person == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockReleasedAlone, person); err != nil {
		return fmt.Errorf("lock broadcasts of %s: %w", person, err)
	}
	return nil
}

// lockReleasedAlone is the first key of lockPerson's advisory locks.
const lockReleasedAlone = 7001

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// GetBroadcast returns one broadcast.
func (db *DB) GetBroadcast(ctx context.Context, id int64) (Broadcast, error) {
	return getBroadcast(ctx, db.db, id)
}

func getBroadcast(ctx context.Context, q querier, id int64) (Broadcast, error) {
	b, err := scanBroadcast(q.QueryRowContext(ctx, `SELECT `+broadcastCols+` FROM broadcasts WHERE id = $1`, id))
	if isNoRows(err) {
		return b, cx.Errorf(cx.ENOTFOUND, "no broadcast with id %d", id).With(api.ReasonBroadcastNotFound, "id", id)
	}
	if err != nil {
		return b, fmt.Errorf("broadcast %d: %w", id, err)
	}
	return b, nil
}

// Broadcasts lists up to limit broadcasts (1..1000, 100 otherwise), newest
// first.
func (db *DB) Broadcasts(ctx context.Context, limit int) ([]Broadcast, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return queryAll(ctx, db.db, "broadcasts", scanBroadcast, `SELECT `+broadcastCols+` FROM broadcasts ORDER BY id DESC LIMIT $1`, limit)
}

// updateBroadcast runs change on broadcast id inside a transaction; change
// checks the stored broadcast and returns the SQL that changes it (or ""
// for no change). outbox, if not nil, names the outbox entry the change
// causes (or "" for none), given the broadcast before and after it; the
// entry commits with the change.
func (db *DB) updateBroadcast(ctx context.Context, id int64, change func(b Broadcast, now time.Time) (string, []any, error), outbox func(before, after Broadcast) string) (Broadcast, error) {
	var out Broadcast
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockBroadcast(ctx, tx, id); err != nil {
			return err
		}
		b, err := getBroadcast(ctx, tx, id)
		if err != nil {
			return err
		}
		query, args, err := change(b, db.now())
		if err != nil {
			return err
		}
		if query != "" {
			if _, err := tx.ExecContext(ctx, query, append(args, id)...); err != nil {
				return fmt.Errorf("update broadcast %d: %w", id, err)
			}
		}
		if out, err = getBroadcast(ctx, tx, id); err != nil {
			return err
		}
		if outbox == nil {
			return nil
		}
		if kind := outbox(b, out); kind != "" {
			return db.enqueue(ctx, tx, kind, IDRef(id))
		}
		return nil
	})
	return out, err
}

// DecideBroadcast approves or rejects a broadcast waiting for approval.
// by is the decider's name and byKey their Token.Principal: the person who
// created a broadcast may not decide on it (the two-person rule).
func (db *DB) DecideBroadcast(ctx context.Context, id int64, approve bool, by, byKey, reason string) (Broadcast, error) {
	return db.updateBroadcast(ctx, id, func(b Broadcast, now time.Time) (string, []any, error) {
		verb := "approve"
		if !approve {
			verb = "reject"
		}
		switch {
		case b.State != api.BroadcastPending:
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d is %s, not waiting for approval", id, stateWords(b)).With(api.ReasonNotPending, "id", id, "state", b.State)
		case !now.Before(b.ExpiresAt):
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d expired at %s before anyone approved it; create it again if it is still needed", id, b.ExpiresAt.Format(time.RFC3339)).With(api.ReasonBroadcastExpired, "id", id)
		case byKey == "" || byKey == b.CreatedByKey:
			return "", nil, cx.Errorf(cx.EFORBIDDEN, "you created broadcast %d (as %s), so you may not %s it, not with another session nor with a token you minted: a different person must (two-person rule)", id, b.CreatedBy, verb).With(api.ReasonSelfApproval, "id", id, "verb", verb)
		}
		state := api.BroadcastReleased
		if !approve {
			state = api.BroadcastRejected
		}
		// Approved before its start: held until then.
		held := approve && b.StartsAt.After(now)
		return `UPDATE broadcasts SET state = $1, decided_at = $2, decided_by = $3, decision_reason = $4, held = $5 WHERE id = $6`,
			[]any{state, fmtTime(now), by, reason, held}, nil
	}, func(_, after Broadcast) string {
		if after.State == api.BroadcastReleased && !after.Held {
			return OutboxBroadcast
		}
		return ""
	})
}

// stateWords describes a stored state in a message.
func stateWords(b Broadcast) string {
	switch b.State {
	case api.BroadcastPending:
		return "waiting for approval"
	case api.BroadcastReleased:
		if b.NeedsApproval {
			return "already approved"
		}
		return "already released (it needed no approval)"
	case api.BroadcastRejected:
		return "rejected"
	case api.BroadcastCancelled:
		return "cancelled"
	}
	return b.State
}

// ResendBroadcast puts a released broadcast in the outbox again: after a
// delivery that failed, or to be sure. Boxes that have it already ignore
// it.
func (db *DB) ResendBroadcast(ctx context.Context, id int64) (Broadcast, error) {
	return db.updateBroadcast(ctx, id, func(b Broadcast, now time.Time) (string, []any, error) {
		switch {
		case b.State != api.BroadcastReleased:
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d is %s; only a released broadcast can be sent", id, stateWords(b)).With(api.ReasonNotReleased, "id", id, "state", b.State)
		case b.Held:
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d starts at %s; it is sent to the boxes then", id, b.StartsAt.Format(time.RFC3339)).With(api.ReasonNotStarted, "id", id, "at", b.StartsAt.Format(time.RFC3339))
		case !now.Before(b.ExpiresAt):
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d expired at %s; boxes would not play it", id, b.ExpiresAt.UTC().Format(time.RFC3339)).With(api.ReasonBroadcastExpired, "id", id)
		}
		return "", nil, nil
	}, func(_, _ Broadcast) string { return OutboxBroadcast })
}

// CancelBroadcast cancels a broadcast that is waiting for approval or
// released. Cancelling it again changes nothing (and lets the caller
// repeat the cancellation on the boxes); a rejected or expired broadcast
// cannot be cancelled.
func (db *DB) CancelBroadcast(ctx context.Context, id int64, by string) (Broadcast, error) {
	return db.updateBroadcast(ctx, id, func(b Broadcast, now time.Time) (string, []any, error) {
		switch {
		case b.State == api.BroadcastCancelled:
			return "", nil, nil
		case b.State == api.BroadcastRejected:
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d was rejected, so it was never sent; there is nothing to cancel", id).With(api.ReasonRejectedNoCancel, "id", id)
		case !now.Before(b.ExpiresAt):
			return "", nil, cx.Errorf(cx.ECONFLICT, "broadcast %d expired at %s; boxes no longer play it", id, b.ExpiresAt.Format(time.RFC3339)).With(api.ReasonBroadcastExpired, "id", id)
		}
		return `UPDATE broadcasts SET state = $1, cancelled_at = $2, cancelled_by = $3 WHERE id = $4`,
			[]any{api.BroadcastCancelled, fmtTime(now), by}, nil
	}, func(_, after Broadcast) string {
		// Cancelling again repeats the cancellation on the boxes.
		if after.WasReleased() {
			return OutboxCancel
		}
		return ""
	})
}

// BroadcastProgress is how many villages reported what about a broadcast
// (reports of the other test mark are not counted).
type BroadcastProgress struct {
	Started   int // started, finished or cut off (partial)
	Final     int // finished, failed, cut off, cancelled, expired or rejected it
	Played    int // finished
	Confirmed int // confirmed by hand (villages without a box)
}

// BroadcastProgresses returns the progress of the broadcasts with ids from
// lo to hi, in two queries; broadcasts nobody reported on are absent.
func (db *DB) BroadcastProgresses(ctx context.Context, lo, hi int64) (map[int64]BroadcastProgress, error) {
	out := map[int64]BroadcastProgress{}
	rows, err := db.db.QueryContext(ctx, `
		SELECT e.broadcast_id,
			COUNT(DISTINCT CASE WHEN e.type IN ('started', 'finished', 'partial') THEN e.village END),
			COUNT(DISTINCT CASE WHEN e.type IN ('finished', 'failed', 'partial', 'cancelled', 'expired', 'rejected') THEN e.village END),
			COUNT(DISTINCT CASE WHEN e.type = 'finished' THEN e.village END)
		FROM events e JOIN broadcasts b ON b.id = e.broadcast_id AND b.test = e.test
		WHERE e.broadcast_id BETWEEN $1 AND $2
		GROUP BY e.broadcast_id`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("broadcast progress: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var p BroadcastProgress
		if err := rows.Scan(&id, &p.Started, &p.Final, &p.Played); err != nil {
			return nil, fmt.Errorf("broadcast progress: %w", err)
		}
		out[id] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("broadcast progress: %w", err)
	}
	type conf struct{ id, n int64 }
	confs, err := queryAll(ctx, db.db, "broadcast confirmations", func(s scanner) (conf, error) {
		var c conf
		return c, s.Scan(&c.id, &c.n)
	}, `SELECT broadcast_id, COUNT(*) FROM confirmations WHERE broadcast_id BETWEEN $1 AND $2 GROUP BY broadcast_id`, lo, hi)
	if err != nil {
		return nil, err
	}
	for _, c := range confs {
		p := out[c.id]
		p.Confirmed = int(c.n)
		out[c.id] = p
	}
	return out, nil
}

// BroadcastByEBMID returns the broadcast made from (or reported upward
// as) the emergency message ebmid.
func (db *DB) BroadcastByEBMID(ctx context.Context, ebmid string) (Broadcast, error) {
	b, err := scanBroadcast(db.db.QueryRowContext(ctx, `SELECT `+broadcastCols+` FROM broadcasts WHERE ebm_id = $1 AND ebm_id <> ''`, ebmid))
	if isNoRows(err) {
		return b, cx.Errorf(cx.ENOTFOUND, "no broadcast of the emergency message %s", ebmid).With(api.ReasonEBMUnknown, "value", ebmid)
	}
	if err != nil {
		return b, fmt.Errorf("broadcast of %s: %w", ebmid, err)
	}
	return b, nil
}

// NextHeldStart is the earliest start of a held broadcast that has not
// expired; ok is false when none is held.
func (db *DB) NextHeldStart(ctx context.Context) (at time.Time, ok bool, err error) {
	var s sql.NullString
	err = db.db.QueryRowContext(ctx, `SELECT MIN(starts_at) FROM broadcasts WHERE held AND state = $1 AND expires_at > $2`,
		api.BroadcastReleased, fmtTime(db.now())).Scan(&s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next held broadcast: %w", err)
	}
	if !s.Valid {
		return time.Time{}, false, nil
	}
	if err := (timeCol{&at}).parse(s.String); err != nil {
		return time.Time{}, false, err
	}
	return at, true, nil
}

// ReleaseHeld puts every held broadcast whose start has come into the
// outbox, clearing Held in the same transaction, and returns them. One
// that expired while held stays held: no box is to play it.
func (db *DB) ReleaseHeld(ctx context.Context) ([]Broadcast, error) {
	var out []Broadcast
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		now := fmtTime(db.now())
		due, err := queryAll(ctx, tx, "held broadcasts due", scanBroadcast, `SELECT `+broadcastCols+` FROM broadcasts
			WHERE held AND state = $1 AND starts_at <= $2 AND expires_at > $2 ORDER BY starts_at, id`, api.BroadcastReleased, now)
		if err != nil {
			return err
		}
		for _, b := range due {
			// Guarded: a cancellation committed meanwhile is kept.
			res, err := tx.ExecContext(ctx, `UPDATE broadcasts SET held = $1 WHERE id = $2 AND held AND state = $3`, false, b.ID, api.BroadcastReleased)
			if err != nil {
				return fmt.Errorf("release held broadcast %d: %w", b.ID, err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue // cancelled meanwhile
			}
			if err := db.enqueue(ctx, tx, OutboxBroadcast, IDRef(b.ID)); err != nil {
				return err
			}
			b.Held = false
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
