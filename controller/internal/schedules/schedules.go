// Package schedules is the controller's application service for
// schedules: a playlist played to villages at set times. Every door that
// makes or withdraws one calls the same Service, with a context and the
// acting person, never a web framework type. The Service owns the rules
// (who may, what a schedule must say, which time zone its times are in),
// writes the audit log, and waits for delivery to hand the change
// to the broker; the store puts the change and its commands in the
// outbox in one transaction.
package schedules

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/handoff"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Store is what the Service needs of the database. CreateSchedule checks
// what needs the stored data (the playlist, the targets' townships and
// villages) and puts the schedule in the outbox; WithdrawSchedule puts
// its withdrawal there, again on every call.
type Store interface {
	CreateSchedule(ctx context.Context, s playlists.Schedule, createdBy string) (store.Schedule, error)
	WithdrawSchedule(ctx context.Context, id int64) (store.Schedule, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Delivery sends to the boxes what a change put in the store's outbox
// (handoff.Delivery).
type Delivery = handoff.Delivery

// Options configure a Service. Store and Delivery are required.
type Options struct {
	Store    Store
	Delivery Delivery
	// DeliverWait is how long a change waits for the broker to take it
	// (handoff.DefaultWait if 0) before it answers that delivery is
	// pending (the controller goes on trying by itself).
	DeliverWait time.Duration

	Logger *slog.Logger
}

// Service makes and withdraws schedules.
type Service struct {
	o   Options
	log *slog.Logger
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Delivery == nil {
		return nil, errors.New("schedules: Store and Delivery are required")
	}
	if o.DeliverWait <= 0 {
		o.DeliverWait = handoff.DefaultWait
	}
	s := &Service{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "schedules")
	return s, nil
}

// Who may make and withdraw schedules, whatever the door.
var operators = []string{api.RoleAdmin, api.RoleOperator}

// Draft is a schedule as a door asks for it: exactly one of OnceAt and
// Recurring says when it plays; Timezone ("" for
// playlists.DefaultTimezone) is the zone its times of day are in.
type Draft struct {
	PlaylistID int64
	Targets    playlists.Targets
	Timezone   string
	OnceAt     *time.Time
	Recurring  *playlists.Recurrence
}

// Location is the time zone a schedule's wall-clock times are in: its
// timezone, or playlists.DefaultTimezone if it names none. A door reading
// a wall-clock once_at reads it there.
func Location(timezone string) (*time.Location, error) {
	return playlists.Schedule{Timezone: zone(timezone)}.Location()
}

func zone(timezone string) string {
	if timezone == "" {
		return playlists.DefaultTimezone
	}
	return timezone
}

// Create checks the draft, stores the schedule as made by p (the store
// checks its playlist and targets and puts it in the outbox), writes it
// to the audit log and waits for the broker to take it. pending says the
// broker has not yet: the schedule is stored and the controller goes on
// sending it by itself.
func (s *Service) Create(ctx context.Context, p people.Person, d Draft) (sc store.Schedule, pending bool, err error) {
	if err := people.May(p, operators, "make a schedule"); err != nil {
		return store.Schedule{}, false, err
	}
	sched, err := s.check(d)
	if err != nil {
		return store.Schedule{}, false, err
	}
	sc, err = s.o.Store.CreateSchedule(ctx, sched, p.Name)
	if err != nil {
		return store.Schedule{}, false, err
	}
	people.Audit(ctx, s.o.Store, s.log, p, audit.ScheduleCreate, Object(sc), createParams(sc))
	return sc, s.deliver(ctx, store.OutboxSchedule, sc.ID) != nil, nil
}

// Withdraw withdraws a schedule in p's name: in the store and, through
// the outbox, on the boxes, by the groups it was published to.
// Withdrawing it again repeats the withdrawal on the boxes. pending says
// the broker has not taken the withdrawal yet (the controller goes on
// sending it).
func (s *Service) Withdraw(ctx context.Context, p people.Person, id int64) (sc store.Schedule, pending bool, err error) {
	if err := people.May(p, operators, "withdraw a schedule"); err != nil {
		return store.Schedule{}, false, err
	}
	sc, err = s.o.Store.WithdrawSchedule(ctx, id)
	if err != nil {
		return store.Schedule{}, false, err
	}
	people.Audit(ctx, s.o.Store, s.log, p, audit.ScheduleWithdraw, Object(sc), audit.Params{"groups": audit.List(sc.Groups)})
	return sc, s.deliver(ctx, store.OutboxWithdraw, sc.ID) != nil, nil
}

// check checks what a schedule must say, naming the field at fault, and
// returns the schedule to store. Whether it still plays from now on
// (store.OnceAtGrace) is checked by the store, at the time it stores it.
func (s *Service) check(d Draft) (playlists.Schedule, error) {
	sc := playlists.Schedule{PlaylistID: d.PlaylistID, Targets: d.Targets, Timezone: zone(d.Timezone), OnceAt: d.OnceAt, Recurring: d.Recurring}
	return sc, sc.Validate()
}

// deliver waits for what a change put in the outbox to reach the broker
// (handoff.Wait, at most Options.DeliverWait).
func (s *Service) deliver(ctx context.Context, kind string, id int64) error {
	return handoff.Wait(ctx, s.o.Delivery, s.o.DeliverWait, s.log, kind, store.IDRef(id))
}

// Object names a schedule in the audit log ("schedule/12").
func Object(sc store.Schedule) string { return "schedule/" + strconv.FormatInt(sc.ID, 10) }

// createParams are the audit log's account of a schedule made.
func createParams(sc store.Schedule) audit.Params {
	p := audit.Params{"playlist": audit.Int(sc.PlaylistID), "timezone": sc.Timezone, "groups": audit.List(sc.Groups)}
	if sc.OnceAt != nil {
		p["once_at"] = audit.Time(*sc.OnceAt)
	}
	if r := sc.Recurring; r != nil {
		p["times"], p["weekdays"], p["start_date"], p["end_date"], p["except_dates"] = audit.List(r.Times), audit.List(r.Weekdays), r.StartDate, r.EndDate, audit.List(r.ExceptDates)
	}
	return p
}
