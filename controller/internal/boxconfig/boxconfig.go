// Package boxconfig is the controller's application service for box
// settings: the volume, quiet hours and time zone a township's or a
// village's loudspeaker boxes keep. Every door that sets them calls the
// same Service with a context and the acting person, never a web
// framework type; it owns the rules (who may, what settings may say),
// writes the audit log and waits for delivery to hand the settings to the
// broker. The store puts them and their command in the outbox in one
// transaction.
package boxconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/handoff"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Store is what the Service needs of the database. PutBoxConfig stores
// the settings of a township or village (store.ScopeTownship,
// store.ScopeVillage) and puts their command in the outbox.
type Store interface {
	PutBoxConfig(ctx context.Context, scope, name string, cfg api.BoxConfig, by string) (store.BoxConfig, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Options configure a Service. Store and Delivery are required.
type Options struct {
	Store    Store
	Delivery handoff.Delivery
	// DeliverWait is how long a change waits for the broker to take it
	// (handoff.DefaultWait if 0) before it answers that delivery is
	// pending (the controller goes on trying by itself).
	DeliverWait time.Duration

	Logger *slog.Logger
}

// Service sets box settings.
type Service struct {
	o   Options
	log *slog.Logger
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Delivery == nil {
		return nil, errors.New("boxconfig: Store and Delivery are required")
	}
	if o.DeliverWait <= 0 {
		o.DeliverWait = handoff.DefaultWait
	}
	s := &Service{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "boxconfig")
	return s, nil
}

// Who may change box settings, whatever the door.
var admins = []string{api.RoleAdmin}

// MaxQuietWindows bounds the quiet hours of one township or village: a
// day has room for few, and the signed command must stay far below the
// broker's packet limit.
const MaxQuietWindows = 24

// Put checks the settings of a township or village (scope
// store.ScopeTownship or store.ScopeVillage, name its name or code),
// stores them as set by p, writes them to the audit log and waits for
// the broker to take them. pending says it has not yet: the settings are
// stored and the controller goes on sending them by itself.
func (s *Service) Put(ctx context.Context, p people.Person, scope, name string, cfg api.BoxConfig) (bc store.BoxConfig, pending bool, err error) {
	if err := people.May(p, admins, "change box settings"); err != nil {
		return store.BoxConfig{}, false, err
	}
	if err := Check(cfg); err != nil {
		return store.BoxConfig{}, false, err
	}
	bc, err = s.o.Store.PutBoxConfig(ctx, scope, name, cfg, p.Name)
	if err != nil {
		return store.BoxConfig{}, false, err
	}
	people.Audit(ctx, s.o.Store, s.log, p, audit.ConfigPut, scope+"/"+name, params(bc))
	return bc, handoff.Wait(ctx, s.o.Delivery, s.o.DeliverWait, s.log, store.OutboxConfig, store.ConfigRef(scope, name)) != nil, nil
}

// Check checks box settings, naming the field at fault.
func Check(cfg api.BoxConfig) error {
	if len(cfg.QuietHours) > MaxQuietWindows {
		return cx.Invalid("quiet_hours", fmt.Sprintf("has %d windows; at most %d", len(cfg.QuietHours), MaxQuietWindows)).With(api.ReasonConfigQuietTooMany, "max", MaxQuietWindows)
	}
	for i, w := range cfg.QuietHours {
		if err := w.Validate(); err != nil {
			var fe *playlists.FieldError
			if errors.As(err, &fe) {
				fe.Field = strings.Replace(fe.Field, "quiet_hours", fmt.Sprintf("quiet_hours[%d]", i), 1)
			}
			return err
		}
	}
	if cfg.Volume < 0 || cfg.Volume > 100 {
		return cx.Invalid("volume", "must be a percentage from 1 to 100 (0 leaves it unset here)").With(api.ReasonConfigVolume)
	}
	if cfg.Timezone != "" {
		if _, err := time.LoadLocation(cfg.Timezone); err != nil {
			return cx.Invalid("timezone", fmt.Sprintf("%q is not an IANA time zone such as Asia/Shanghai", cfg.Timezone)).With(api.ReasonTimezoneUnknown, "value", cfg.Timezone)
		}
	}
	return nil
}

// params are the audit log's account of settings stored.
func params(bc store.BoxConfig) audit.Params {
	cfg := bc.Config
	p := audit.Params{"timezone": cfg.Timezone, "groups": audit.List(bc.Groups)}
	if cfg.Volume != 0 {
		p["volume"] = audit.Int(cfg.Volume)
	}
	quiet := make([]string, len(cfg.QuietHours))
	for i, w := range cfg.QuietHours {
		quiet[i] = w.From + "-" + w.To
	}
	p["quiet_hours"] = audit.List(quiet)
	p["unset"] = audit.Flag(p["volume"] == "" && p["quiet_hours"] == "" && p["timezone"] == "")
	return p
}
