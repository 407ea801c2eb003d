package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/playlists"
)

// Scopes of box settings.
const (
	ScopeTownship = "township"
	ScopeVillage  = "village"
)

// BoxConfig is the stored settings of a township's or one village's
// boxes, and the broker groups that reach them.
type BoxConfig struct {
	Scope     string // ScopeTownship or ScopeVillage
	Name      string // the township's name or the village's code
	Config    api.BoxConfig
	Groups    []api.Group
	UpdatedAt time.Time // zero when nothing was ever set
	UpdatedBy string
}

// PutBoxConfig stores the settings of a township or village (the caller
// has validated cfg) and returns them with the groups to publish them to.
func (db *DB) PutBoxConfig(ctx context.Context, scope, name string, cfg api.BoxConfig, by string) (BoxConfig, error) {
	out := BoxConfig{Scope: scope, Name: name, Config: cfg, UpdatedAt: db.now(), UpdatedBy: by}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		groups, err := configGroups(ctx, tx, scope, name)
		if err != nil {
			return err
		}
		out.Groups = groups
		c, _ := json.Marshal(cfg)
		g, _ := json.Marshal(groups)
		_, err = tx.ExecContext(ctx, `
			INSERT INTO box_configs (scope, name, config, groups, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (scope, name) DO UPDATE SET
				config = excluded.config, groups = excluded.groups, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			scope, name, string(c), string(g), fmtTime(out.UpdatedAt), by)
		if err != nil {
			return fmt.Errorf("put config %s %s: %w", scope, name, err)
		}
		return db.enqueue(ctx, tx, OutboxConfig, ConfigRef(scope, name))
	})
	if err != nil {
		return BoxConfig{}, err
	}
	return out, nil
}

// GetBoxConfig returns the settings of a township or village; one never
// set has an empty Config and a zero UpdatedAt.
func (db *DB) GetBoxConfig(ctx context.Context, scope, name string) (BoxConfig, error) {
	out := BoxConfig{Scope: scope, Name: name}
	groups, err := configGroups(ctx, db.db, scope, name)
	if err != nil {
		return out, err
	}
	out.Groups = groups
	var c string
	err = db.db.QueryRowContext(ctx, `SELECT config, updated_at, updated_by FROM box_configs WHERE scope = $1 AND name = $2`, scope, name).
		Scan(&c, timeCol{&out.UpdatedAt}, &out.UpdatedBy)
	if isNoRows(err) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("config %s %s: %w", scope, name, err)
	}
	if err := json.Unmarshal([]byte(c), &out.Config); err != nil {
		return out, fmt.Errorf("config %s %s: %w", scope, name, err)
	}
	return out, nil
}

// configGroups is where a township's or village's settings go: the
// village's own group, or the township groups (9-digit code prefixes) of
// the township's villages. A prefix shared with villages of another
// township would carry the settings to them too, so it is refused.
func configGroups(ctx context.Context, q querier, scope, name string) ([]api.Group, error) {
	villages, err := villagesQ(ctx, q)
	if err != nil {
		return nil, err
	}
	switch scope {
	case ScopeVillage:
		for _, v := range villages {
			if v.Code != name {
				continue
			}
			if v.Device != playlists.DeviceAgent {
				return nil, cx.Errorf(cx.ECONFLICT, "village %s (%s) has no box, so it has no settings to send", v.Code, v.Name).With(api.ReasonVillageNoBox, "code", v.Code)
			}
			return []api.Group{api.VillageGroup(v.Code)}, nil
		}
		return nil, cx.Errorf(cx.ENOTFOUND, "no village with code %s", name).With(api.ReasonVillageUnknown, "code", name)
	case ScopeTownship:
		var prefixes []string
		for _, v := range villages {
			if p := api.TownshipCode(v.Code); v.Township == name && !slices.Contains(prefixes, p) {
				prefixes = append(prefixes, p)
			}
		}
		if len(prefixes) == 0 {
			return nil, cx.Errorf(cx.ENOTFOUND, "no village is in a township named %q; check the spelling against the village list", name).With(api.ReasonTownshipUnknown, "name", name)
		}
		var groups []api.Group
		for _, p := range prefixes {
			for _, v := range villages {
				if v.Township != name && strings.HasPrefix(v.Code, p) {
					return nil, cx.Errorf(cx.ECONFLICT, "township %q shares the code prefix %s with village %s of township %q, so its boxes cannot be told apart; set the villages' settings one by one", name, p, v.Code, v.Township).
						With(api.ReasonTownshipPrefixShared, "name", name, "village", v.Name, "other", v.Township)
				}
			}
			groups = append(groups, api.TownshipGroup(p))
		}
		slices.Sort(groups)
		return groups, nil
	}
	return nil, fmt.Errorf("config: unknown scope %q", scope)
}
