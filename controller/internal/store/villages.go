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

// Village is one administrative village as staff imported it.
type Village struct {
	Code      string
	Name      string
	Township  string
	Lat, Lon  float64
	Device    string // playlists.DeviceAgent or playlists.DeviceManual
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Agent is what the controller knows of a village's enrolled box.
type Agent struct {
	Village       string
	MQTTUsername  string
	EnrolledAt    time.Time
	AgentVersion  string
	Presence      string    // api.Online, api.Offline, or "" when never heard from
	PresenceAt    time.Time // when Presence last changed, as received
	LastSeen      time.Time // last presence or report received
	ClockOffsetMS int64
	AckedSeq      int64
	// Revoked: an admin revoked the box (RevokeAgent); its credentials no
	// longer work until a box enrolls again.
	Revoked bool
}

// VillageState is a village with its box, if one is enrolled.
type VillageState struct {
	Village
	Agent *Agent
}

// ImportCounts says what an import did.
type ImportCounts struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Total   int `json:"total"`
}

// ImportVillages creates or updates (by code) every village in one
// transaction. The caller has validated the rows; a constraint failure
// rolls back everything.
func (db *DB) ImportVillages(ctx context.Context, vs []Village) (ImportCounts, error) {
	var c ImportCounts
	now := fmtTime(db.now())
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		existing := map[string]bool{}
		rows, err := tx.QueryContext(ctx, `SELECT code FROM villages`)
		if err != nil {
			return fmt.Errorf("import villages: %w", err)
		}
		for rows.Next() {
			var code string
			if err := rows.Scan(&code); err != nil {
				rows.Close()
				return fmt.Errorf("import villages: %w", err)
			}
			existing[code] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("import villages: %w", err)
		}
		stmt, err := tx.PrepareContext(ctx, `
			INSERT INTO villages (code, name, township, lat, lon, device, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
			ON CONFLICT (code) DO UPDATE SET
				name = excluded.name, township = excluded.township,
				lat = excluded.lat, lon = excluded.lon, device = excluded.device,
				updated_at = excluded.updated_at`)
		if err != nil {
			return fmt.Errorf("import villages: %w", err)
		}
		defer stmt.Close()
		for _, v := range vs {
			if _, err := stmt.ExecContext(ctx, v.Code, v.Name, v.Township, v.Lat, v.Lon, v.Device, now); err != nil {
				return fmt.Errorf("import village %s: %w", v.Code, err)
			}
			if existing[v.Code] {
				c.Updated++
			} else {
				c.Created++
				existing[v.Code] = true
			}
			c.Total++
		}
		return nil
	})
	if err != nil {
		return ImportCounts{}, err
	}
	return c, nil
}

// Villages lists every village as targeting and coverage see it, by code.
func (db *DB) Villages(ctx context.Context) ([]playlists.Village, error) {
	return villagesQ(ctx, db.db)
}

func villagesQ(ctx context.Context, q querier) ([]playlists.Village, error) {
	return queryAll(ctx, q, "villages", func(s scanner) (playlists.Village, error) {
		var v playlists.Village
		err := s.Scan(&v.Code, &v.Name, &v.Township, &v.Device)
		return v, err
	}, `SELECT code, name, township, device FROM villages ORDER BY code`)
}

const villageStateCols = `
	v.code, v.name, v.township, v.lat, v.lon, v.device, v.created_at, v.updated_at,
	a.village, a.mqtt_username, a.enrolled_at, a.agent_version, a.presence,
	a.presence_at, a.last_seen, a.clock_offset_ms, a.acked_seq,
	CASE WHEN a.secret_hash = '' THEN 1 ELSE 0 END`

func scanVillageState(s scanner) (VillageState, error) {
	var vs VillageState
	var aVillage, aUser, aVersion, aPresence sql.NullString
	var aOffset, aAcked, aRevoked sql.NullInt64
	var a Agent
	err := s.Scan(&vs.Code, &vs.Name, &vs.Township, &vs.Lat, &vs.Lon, &vs.Device,
		timeCol{&vs.CreatedAt}, timeCol{&vs.UpdatedAt},
		&aVillage, &aUser, timeCol{&a.EnrolledAt}, &aVersion, &aPresence,
		timeCol{&a.PresenceAt}, timeCol{&a.LastSeen}, &aOffset, &aAcked, &aRevoked)
	if err != nil {
		return vs, err
	}
	if aVillage.Valid {
		a.Village = aVillage.String
		a.MQTTUsername = aUser.String
		a.AgentVersion = aVersion.String
		a.Presence = aPresence.String
		a.ClockOffsetMS = aOffset.Int64
		a.AckedSeq = aAcked.Int64
		a.Revoked = aRevoked.Int64 == 1
		vs.Agent = &a
	}
	return vs, nil
}

// VillageStates lists every village with its box's enrollment and
// presence, by code, in one query.
func (db *DB) VillageStates(ctx context.Context) ([]VillageState, error) {
	return queryAll(ctx, db.db, "village states", scanVillageState, `SELECT `+villageStateCols+`
		FROM villages v LEFT JOIN agents a ON a.village = v.code
		ORDER BY v.code`)
}

// VillageState returns one village with its box.
func (db *DB) VillageState(ctx context.Context, code string) (VillageState, error) {
	row := db.db.QueryRowContext(ctx, `SELECT `+villageStateCols+`
		FROM villages v LEFT JOIN agents a ON a.village = v.code
		WHERE v.code = $1`, code)
	vs, err := scanVillageState(row)
	if isNoRows(err) {
		return vs, cx.Errorf(cx.ENOTFOUND, "no village with code %s", code).With(api.ReasonVillageUnknown, "code", code)
	}
	if err != nil {
		return vs, fmt.Errorf("village %s: %w", code, err)
	}
	return vs, nil
}

// UpdateVillage replaces the name, township, coordinates and device of
// the village v.Code, which the caller has validated (villagecsv), and
// returns it as it was before and after.
func (db *DB) UpdateVillage(ctx context.Context, v Village) (before, after Village, err error) {
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		vs, err := scanVillageState(tx.QueryRowContext(ctx, `SELECT `+villageStateCols+`
			FROM villages v LEFT JOIN agents a ON a.village = v.code WHERE v.code = $1`, v.Code))
		if isNoRows(err) {
			return cx.Errorf(cx.ENOTFOUND, "no village with code %s", v.Code).With(api.ReasonVillageUnknown, "code", v.Code)
		}
		if err != nil {
			return fmt.Errorf("update village %s: %w", v.Code, err)
		}
		before = vs.Village
		v.CreatedAt, v.UpdatedAt = before.CreatedAt, db.now()
		_, err = tx.ExecContext(ctx, `UPDATE villages SET name = $1, township = $2, lat = $3, lon = $4, device = $5, updated_at = $6 WHERE code = $7`,
			v.Name, v.Township, v.Lat, v.Lon, v.Device, fmtTime(v.UpdatedAt), v.Code)
		if err != nil {
			return fmt.Errorf("update village %s: %w", v.Code, err)
		}
		after = v
		return nil
	})
	return before, after, err
}
