package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cunxiang/cunxiang/api"
	bolt "go.etcd.io/bbolt"
)

// Broadcast is a broadcast the box has heard of, and how far it got.
//
// Status is the type of the last report that moved it on: received (it
// waits), started (it is sounding, or was when the box stopped), partial
// (cut off; it waits to play again from the start), and the final ones,
// finished, cancelled, expired and failed, after which it never sounds.
type Broadcast struct {
	State      api.BroadcastState `json:"state"`
	ReceivedAt time.Time          `json:"received_at"`
	Status     string             `json:"status"`
	// Plays counts the times it began to sound.
	Plays int `json:"plays,omitempty"`
	// Reported lists the audio ids whose download was reported.
	Reported []int64 `json:"reported,omitempty"`
}

// Over reports whether the broadcast is done with: it never sounds again.
func (b Broadcast) Over() bool { return Over(b.Status) }

// Over reports whether a broadcast in status (an event type) is done with.
func Over(status string) bool {
	switch status {
	case api.EventFinished, api.EventCancelled, api.EventExpired, api.EventFailed:
		return true
	}
	return false
}

func getBroadcast(b *bolt.Bucket, id int64) (Broadcast, bool, error) {
	raw := b.Get(idKey(id))
	if raw == nil {
		return Broadcast{}, false, nil
	}
	var r Broadcast
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, false, fmt.Errorf("broadcast %d: %w", id, err)
	}
	return r, true, nil
}

func putBroadcast(b *bolt.Bucket, r Broadcast) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(idKey(r.State.ID), raw)
}

// PutBroadcast applies a broadcast.put. A broadcast heard of for the first
// time is stored as received and ev (its received report) is appended,
// then downloaded, the downloaded reports of its clips already on disk,
// which are recorded as reported (one transaction, so one disk sync, for
// what MarkBroadcastDownloaded would do after it); one heard of before
// (the controller re-signed it) keeps its status, so a broadcast that
// finished, or was cancelled, never sounds again. It returns the
// broadcast as stored and whether it was new.
func (d *DB) PutBroadcast(c api.Command, receivedAt time.Time, ev api.Event, downloaded ...api.Event) (Broadcast, bool, error) {
	if c.Kind != api.KindBroadcastPut || c.Broadcast == nil {
		return Broadcast{}, false, fmt.Errorf("put broadcast: not a broadcast.put")
	}
	var r Broadcast
	var isNew bool
	err := d.command(c, func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketBcasts)
		old, ok, err := getBroadcast(b, c.Broadcast.ID)
		if err != nil {
			return false, err
		}
		if ok {
			r = old
			if !r.Over() {
				r.State = *c.Broadcast
			}
			return false, putBroadcast(b, r)
		}
		isNew = true
		r = Broadcast{State: *c.Broadcast, ReceivedAt: receivedAt.UTC(), Status: api.EventReceived}
		var fresh []api.Event // one per clip
		for _, dl := range downloaded {
			if !slices.Contains(r.Reported, dl.AudioID) {
				r.Reported = append(r.Reported, dl.AudioID)
				fresh = append(fresh, dl)
			}
		}
		if err := putBroadcast(b, r); err != nil {
			return false, err
		}
		for _, e := range append([]api.Event{ev}, fresh...) {
			if _, err := appendTx(tx, e); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	return r, isNew, err
}

// PeekBroadcast tells, without writing (so without waiting for a disk
// sync), what PutBroadcast(c) would find: the broadcast as stored and
// whether it is known, or the replay guard's ErrDuplicate or ErrReplay.
// The box applies commands one at a time, so the answer holds until it
// applies c: a broadcast heard of for the first time can be handed to the
// planner to sound while PutBroadcast syncs.
func (d *DB) PeekBroadcast(c api.Command) (Broadcast, bool, error) {
	if c.Kind != api.KindBroadcastPut || c.Broadcast == nil {
		return Broadcast{}, false, fmt.Errorf("peek broadcast: not a broadcast.put")
	}
	var r Broadcast
	var ok bool
	err := d.db.View(func(tx *bolt.Tx) error {
		if err := checkGuard(tx.Bucket(bucketGuard), []byte(c.ObjectKey()), c); err != nil {
			return err
		}
		var err error
		r, ok, err = getBroadcast(tx.Bucket(bucketBcasts), c.Broadcast.ID)
		return err
	})
	return r, ok, err
}

// CancelBroadcast applies a broadcast.cancel. A broadcast that has not
// finished (waiting or sounding) becomes cancelled and ev, its cancelled
// report with Test filled in from the broadcast, is appended; it reports
// whether it appended. One never heard of is remembered as cancelled, so it
// can never start, without a report.
func (d *DB) CancelBroadcast(c api.Command, ev api.Event) (Broadcast, bool, error) {
	if c.Kind != api.KindBroadcastCancel || c.Cancel == nil {
		return Broadcast{}, false, fmt.Errorf("cancel broadcast: not a broadcast.cancel")
	}
	var r Broadcast
	var reported bool
	err := d.command(c, func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketBcasts)
		old, ok, err := getBroadcast(b, c.Cancel.BroadcastID)
		if err != nil {
			return false, err
		}
		if !ok {
			r = Broadcast{State: api.BroadcastState{ID: c.Cancel.BroadcastID}, Status: api.EventCancelled}
			return false, putBroadcast(b, r)
		}
		r = old
		if r.Over() {
			return false, nil
		}
		r.Status = api.EventCancelled
		if err := putBroadcast(b, r); err != nil {
			return false, err
		}
		ev.Test = r.State.Test
		_, err = appendTx(tx, ev)
		reported = err == nil
		return true, err
	})
	return r, reported, err
}

// Advance moves a broadcast on to ev.Type (started, partial, finished,
// failed or expired) and appends ev, in one transaction. It returns false,
// appending nothing, when the broadcast is over or unknown: a broadcast
// that finished or was cancelled never starts again, whatever restarts or
// re-sent commands happen.
func (d *DB) Advance(id int64, ev api.Event) (bool, error) {
	return d.changeBroadcast(id, ev, func(r *Broadcast) bool {
		r.Status = ev.Type
		if ev.Type == api.EventStarted {
			r.Plays++
		}
		return true
	})
}

// changeBroadcast runs fn on a broadcast that is not over; if fn says so,
// the broadcast is stored as fn left it and ev appended, in one
// transaction. It reports whether it appended.
func (d *DB) changeBroadcast(id int64, ev api.Event, fn func(r *Broadcast) bool) (bool, error) {
	var changed bool
	err := d.update(func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bucketBcasts)
		r, found, err := getBroadcast(b, id)
		if err != nil || !found || r.Over() || !fn(&r) {
			return false, err
		}
		if err := putBroadcast(b, r); err != nil {
			return false, err
		}
		if _, err := appendTx(tx, ev); err != nil {
			return false, err
		}
		changed = true
		return true, nil
	})
	return changed, err
}

// Broadcasts returns every broadcast the box remembers, by id.
func (d *DB) Broadcasts() ([]Broadcast, error) {
	var out []Broadcast
	err := d.db.View(func(tx *bolt.Tx) (err error) {
		out, err = broadcasts(tx, false)
		return err
	})
	return out, err
}

// broadcasts returns every broadcast, or with live only those not over.
// Those over are most of the bucket (they are kept a week): they are told
// apart by their status alone, without decoding the rest.
func broadcasts(tx *bolt.Tx, live bool) ([]Broadcast, error) {
	var out []Broadcast
	b := tx.Bucket(bucketBcasts)
	if b == nil {
		return nil, nil // a state file from before broadcasts, opened read-only
	}
	err := b.ForEach(func(k, v []byte) error {
		if live {
			var s struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("broadcast: %w", err)
			}
			if Over(s.Status) {
				return nil
			}
		}
		var r Broadcast
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("broadcast: %w", err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// MarkBroadcastDownloaded records that audioID of the broadcast is on disk
// and appends ev, once per (broadcast, audio). It reports whether it
// appended; a broadcast that is over or unknown is left alone.
func (d *DB) MarkBroadcastDownloaded(id, audioID int64, ev api.Event) (bool, error) {
	return d.changeBroadcast(id, ev, func(r *Broadcast) bool {
		if slices.Contains(r.Reported, audioID) {
			return false
		}
		r.Reported = append(r.Reported, audioID)
		return true
	})
}

// PruneBroadcasts forgets broadcasts that are over and expired before t.
// Their commands' signatures lapse a day after expiry, so none can come
// back to be played; the replay guard remembers their seq regardless.
func (d *DB) PruneBroadcasts(before time.Time) (int, error) {
	n := 0
	err := d.update(func(tx *bolt.Tx) (bool, error) {
		cur := tx.Bucket(bucketBcasts).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			var r Broadcast
			if err := json.Unmarshal(v, &r); err == nil && (!r.Over() || !r.State.ExpiresAt.Before(before)) {
				continue
			}
			if err := cur.Delete(); err != nil {
				return false, err
			}
			n++
		}
		return false, nil
	})
	return n, err
}

// PutConfig applies a config.put: the config of the command's target group
// replaces the one held for it. Nothing is reported.
func (d *DB) PutConfig(c api.Command) error {
	if c.Kind != api.KindConfigPut || c.Config == nil {
		return fmt.Errorf("put config: not a config.put")
	}
	return d.command(c, func(tx *bolt.Tx) (bool, error) {
		raw, err := json.Marshal(c.Config)
		if err != nil {
			return false, err
		}
		return false, tx.Bucket(bucketConfig).Put([]byte(c.Target), raw)
	})
}

// Configs returns the config held for each group.
func (d *DB) Configs() (map[api.Group]api.BoxConfig, error) {
	var out map[api.Group]api.BoxConfig
	err := d.db.View(func(tx *bolt.Tx) (err error) {
		out, err = configs(tx)
		return err
	})
	return out, err
}

func configs(tx *bolt.Tx) (map[api.Group]api.BoxConfig, error) {
	out := map[api.Group]api.BoxConfig{}
	b := tx.Bucket(bucketConfig)
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var c api.BoxConfig
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("config %s: %w", k, err)
		}
		out[api.Group(k)] = c
		return nil
	})
	return out, err
}
