// Package villages is the controller's application service for the
// county's villages and their loudspeaker boxes: importing the village
// list, editing a village, issuing enrollment tokens, enrolling a box,
// revoking and replacing one. Every door calls the same Service with a
// context and the acting person, never a web framework type; it owns
// the rules (who may, what a village row may say, that an import is all
// or nothing, that a revoked box's account and sessions go with its
// credentials) and writes the audit log.
package villages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/villagecsv"
	"github.com/cunxiang/cunxiang/playlists"
)

// Person is who acts (people.Person, which every service shares).
type Person = people.Person

// Store is what the Service needs of the database.
type Store interface {
	ImportVillages(ctx context.Context, vs []store.Village) (store.ImportCounts, error)
	VillageState(ctx context.Context, code string) (store.VillageState, error)
	UpdateVillage(ctx context.Context, v store.Village) (before, after store.Village, err error)
	CreateEnrollToken(ctx context.Context, village string, ttl time.Duration, createdBy string) (store.EnrollToken, error)
	EnrollWith(ctx context.Context, req api.EnrollRequest, provision func(context.Context, store.AgentCredentials) error) (store.AgentCredentials, error)
	RevokeAgent(ctx context.Context, village string, unprovision func(ctx context.Context, username string) error) error
	CreateConfirmation(ctx context.Context, c store.Confirmation) (store.Confirmation, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// BrokerAccounts keeps boxes' accounts on an external MQTT broker.
type BrokerAccounts interface {
	PutBox(ctx context.Context, village, username, password string) error
	// DeleteBox deletes a revoked box's account and disconnects its
	// sessions.
	DeleteBox(ctx context.Context, village, username string) error
}

// Sessions cuts a box's open MQTT sessions once its old credentials no
// longer work (the embedded broker).
type Sessions interface {
	Revoke(village string)
}

// MaxCSVBytes bounds a village list: a province's 20,000 villages fit in
// a few megabytes.
const MaxCSVBytes = 16 << 20

// MaxAgentVersion bounds the agent version a box enrolls with, in bytes.
const MaxAgentVersion = 100

// Options configure a Service. Store is required.
type Options struct {
	Store Store
	// Accounts, if set, creates and deletes each box's account on an
	// external broker (the embedded broker checks the store itself).
	Accounts BrokerAccounts
	// Sessions, if set, disconnects a box's sessions as soon as it is
	// re-enrolled or revoked.
	Sessions Sessions
	// EnrollTTL is how long an enrollment token lives
	// (store.DefaultEnrollTTL if 0).
	EnrollTTL time.Duration

	Logger *slog.Logger
}

// Service changes villages and their boxes.
type Service struct {
	o   Options
	log *slog.Logger
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil {
		return nil, errors.New("villages: Store is required")
	}
	if o.EnrollTTL <= 0 {
		o.EnrollTTL = store.DefaultEnrollTTL
	}
	s := &Service{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "villages")
	return s, nil
}

// Who may change villages and boxes, whatever the door.
var admins = []string{api.RoleAdmin}

func object(code string) string { return "village/" + code }

func (s *Service) audit(ctx context.Context, p Person, a audit.Action, object string, params audit.Params) {
	people.Audit(ctx, s.o.Store, s.log, p, a, object, params)
}

// Import reads a village list (a CSV, villagecsv) and stores it: new
// villages are added, known ones updated. It is all or nothing: a list
// with any bad line is refused (EINVALID, every bad line in the details)
// and nothing changes.
func (s *Service) Import(ctx context.Context, p Person, csv []byte) (store.ImportCounts, error) {
	if err := people.May(p, admins, "import villages"); err != nil {
		return store.ImportCounts{}, err
	}
	if len(csv) > MaxCSVBytes {
		return store.ImportCounts{}, cx.Errorf(cx.ETOOLARGE, "the village list is larger than %d MiB; split it", MaxCSVBytes>>20).With(api.ReasonCSVTooLarge, "limit", fmt.Sprintf("%d MiB", MaxCSVBytes>>20))
	}
	rows, err := villagecsv.Parse(bytes.NewReader(csv))
	if err != nil {
		return store.ImportCounts{}, err
	}
	vs := make([]store.Village, len(rows))
	for i, r := range rows {
		vs[i] = store.Village{Code: r.Code, Name: r.Name, Township: r.Township, Lat: r.Lat, Lon: r.Lon, Device: r.Device}
	}
	counts, err := s.o.Store.ImportVillages(ctx, vs)
	if err != nil {
		return store.ImportCounts{}, err
	}
	s.audit(ctx, p, audit.VillageImport, "villages", audit.Params{"created": audit.Int(counts.Created), "updated": audit.Int(counts.Updated), "total": audit.Int(counts.Total)})
	return counts, nil
}

// Edit changes the fields of village code that ch sets, checked by the
// rules of the import (villagecsv); the code is the key and does not
// change. It returns the village as it now is.
func (s *Service) Edit(ctx context.Context, p Person, code string, ch api.VillageChange) (store.VillageState, error) {
	if err := people.May(p, admins, "edit a village"); err != nil {
		return store.VillageState{}, err
	}
	cur, err := s.o.Store.VillageState(ctx, code)
	if err != nil {
		return store.VillageState{}, err
	}
	f := map[string]string{"code": code, "name": cur.Name, "township": cur.Township,
		"lat": strconv.FormatFloat(cur.Lat, 'f', -1, 64), "lon": strconv.FormatFloat(cur.Lon, 'f', -1, 64), "device": cur.Device}
	for k, v := range map[string]*string{"name": ch.Name, "township": ch.Township, "device": ch.Device} {
		if v != nil {
			f[k] = *v
		}
	}
	for k, v := range map[string]*float64{"lat": ch.Lat, "lon": ch.Lon} {
		if v != nil {
			f[k] = strconv.FormatFloat(*v, 'f', -1, 64)
		}
	}
	row, problems := villagecsv.CheckFields(f)
	if len(problems) > 0 {
		return store.VillageState{}, &cx.Error{Code: cx.EINVALID, Field: problems[0].Field, Message: problems[0].Reason, Details: problems,
			Reason: api.ReasonVillageInvalid, Params: cx.Params("n", len(problems))}
	}
	before, after, err := s.o.Store.UpdateVillage(ctx, store.Village{Code: code, Name: row.Name, Township: row.Township, Lat: row.Lat, Lon: row.Lon, Device: row.Device})
	if err != nil {
		return store.VillageState{}, err
	}
	s.audit(ctx, p, audit.VillageUpdate, object(code), change(before, after))
	return s.o.Store.VillageState(ctx, code)
}

// change says what an edit changed, field by field: <field>_from and
// <field>_to of each field changed.
func change(a, b store.Village) audit.Params {
	p := audit.Params{}
	add := func(field string, x, y any) {
		if fx, fy := fmt.Sprint(x), fmt.Sprint(y); fx != fy {
			p[field+"_from"], p[field+"_to"] = fx, fy
		}
	}
	add("name", a.Name, b.Name)
	add("township", a.Township, b.Township)
	add("lat", a.Lat, b.Lat)
	add("lon", a.Lon, b.Lon)
	add("device", a.Device, b.Device)
	p["unchanged"] = audit.Flag(len(p) == 0)
	return p
}

// EnrollToken issues a one-time token with which a box enrolls as
// village code's.
func (s *Service) EnrollToken(ctx context.Context, p Person, code string) (store.EnrollToken, error) {
	if err := people.May(p, admins, "issue an enrollment token"); err != nil {
		return store.EnrollToken{}, err
	}
	return s.enrollToken(ctx, p, code, false)
}

func (s *Service) enrollToken(ctx context.Context, p Person, code string, replacement bool) (store.EnrollToken, error) {
	et, err := s.o.Store.CreateEnrollToken(ctx, code, s.o.EnrollTTL, p.Name)
	if err != nil {
		return store.EnrollToken{}, err
	}
	params := audit.Params{"expires_at": audit.Time(et.ExpiresAt)}
	if replacement {
		params["replacement"] = audit.Flag(true)
	}
	s.audit(ctx, p, audit.VillageEnrollToken, object(code), params)
	return et, nil
}

// Enroll enrolls a box with its one-time token (a box has no person:
// from is where it calls from, for the audit log). It gets its MQTT
// credentials, made on the external broker first if there is one; the
// sessions of the village's previous box are cut.
func (s *Service) Enroll(ctx context.Context, from string, req api.EnrollRequest) (store.AgentCredentials, error) {
	switch {
	case req.Token == "":
		return store.AgentCredentials{}, &cx.Error{Code: cx.EUNAUTHORIZED, Reason: api.ReasonEnrollTokenMissing, Message: "give the enrollment token from the office"}
	case req.Village != "" && !api.ValidVillageCode(req.Village):
		return store.AgentCredentials{}, cx.Invalid("village", "must be the 12-digit village code").With(api.ReasonVillageCodeInvalid, "code", req.Village)
	case len(req.AgentVersion) > MaxAgentVersion:
		return store.AgentCredentials{}, cx.Invalid("agent_version", fmt.Sprintf("is longer than %d characters", MaxAgentVersion)).With(api.ReasonAgentVersionTooLong, "max", MaxAgentVersion)
	}
	var provision func(context.Context, store.AgentCredentials) error
	if s.o.Accounts != nil {
		provision = func(ctx context.Context, cr store.AgentCredentials) error {
			if err := s.o.Accounts.PutBox(ctx, cr.Village, cr.Username, cr.Password); err != nil {
				s.log.Error("create box account on the broker", "village", cr.Village, "err", err)
				return &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonBrokerEnrollFailed, Message: "the MQTT broker did not accept this box's account; the token is still valid, try again shortly"}
			}
			return nil
		}
	}
	creds, err := s.o.Store.EnrollWith(ctx, req, provision)
	if err != nil {
		return store.AgentCredentials{}, err
	}
	// The old password no longer works: cut the sessions opened with it
	// before the new box learns its own.
	if s.o.Sessions != nil {
		s.o.Sessions.Revoke(creds.Village)
	}
	box := Person{Name: store.AgentUsername(creds.Village), From: from}
	s.audit(ctx, box, audit.AgentEnroll, object(creds.Village), audit.Params{"version": req.AgentVersion})
	return creds, nil
}

// Revoke cuts village code's box off (a stolen or lost box): its
// credentials stop working, its account on the broker goes and its open
// sessions are disconnected at once. A new box enrolls with a new token.
// It returns the village as it now is.
func (s *Service) Revoke(ctx context.Context, p Person, code string) (store.VillageState, error) {
	if err := people.May(p, admins, "revoke a box"); err != nil {
		return store.VillageState{}, err
	}
	if err := s.revoke(ctx, p, code); err != nil {
		return store.VillageState{}, err
	}
	return s.o.Store.VillageState(ctx, code)
}

func (s *Service) revoke(ctx context.Context, p Person, code string) error {
	var unprovision func(context.Context, string) error
	if s.o.Accounts != nil {
		unprovision = func(ctx context.Context, username string) error {
			if err := s.o.Accounts.DeleteBox(ctx, code, username); err != nil {
				s.log.Error("delete box account on the broker", "village", code, "err", err)
				return &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonBrokerRevokeFailed, Message: "the MQTT broker did not delete this box's account, so nothing was revoked; try again shortly"}
			}
			return nil
		}
	}
	if err := s.o.Store.RevokeAgent(ctx, code, unprovision); err != nil {
		return err
	}
	if s.o.Sessions != nil {
		s.o.Sessions.Revoke(code)
	}
	s.audit(ctx, p, audit.AgentRevoke, object(code), nil)
	return nil
}

// Replace replaces village code's box in one step: the old box is
// revoked (if it is enrolled) and an enrollment token is issued for the
// box that takes its place. A village without a box (device manual) has
// nothing to replace.
func (s *Service) Replace(ctx context.Context, p Person, code string) (store.EnrollToken, error) {
	if err := people.May(p, admins, "replace a box"); err != nil {
		return store.EnrollToken{}, err
	}
	v, err := s.o.Store.VillageState(ctx, code)
	if err != nil {
		return store.EnrollToken{}, err
	}
	if v.Device != playlists.DeviceAgent {
		return store.EnrollToken{}, cx.Errorf(cx.ECONFLICT, "village %s has no box (device %s); set its device to agent first", code, v.Device).With(api.ReasonVillageNoBox, "code", code)
	}
	if v.Agent != nil && !v.Agent.Revoked {
		if err := s.revoke(ctx, p, code); err != nil {
			return store.EnrollToken{}, err
		}
	}
	return s.enrollToken(ctx, p, code, true)
}

// Who may confirm that a village played something by hand: an admin, or
// the village's own account.
var confirmers = []string{api.RoleAdmin, api.RoleVillage}

// Confirm records that village c.Village, which has no box, played a
// schedule's occurrence or a broadcast by hand, as p says; coverage then
// counts it played, confirmed by hand. A village account confirms only
// for its own village.
func (s *Service) Confirm(ctx context.Context, p Person, c store.Confirmation) (store.Confirmation, error) {
	if err := people.May(p, confirmers, "confirm a village played"); err != nil {
		return store.Confirmation{}, err
	}
	if p.Role == api.RoleVillage && p.Village != c.Village {
		return store.Confirmation{}, &cx.Error{Code: cx.EFORBIDDEN, Reason: api.ReasonOtherVillage,
			Message: fmt.Sprintf("a village account acts only for its own village (%s), not %s", p.Village, c.Village)}
	}
	if c.ScheduleID == 0 && !c.Occurrence.IsZero() {
		return store.Confirmation{}, cx.Invalid("occurrence", "goes with schedule_id; a broadcast has no occurrences").With(api.ReasonConfirmWhich)
	}
	c.Note, c.CreatedBy = strings.TrimSpace(c.Note), p.Name
	c, err := s.o.Store.CreateConfirmation(ctx, c)
	if err != nil {
		return store.Confirmation{}, err
	}
	params := audit.Params{"played_at": audit.Time(c.PlayedAt), "note": c.Note}
	if c.ScheduleID != 0 {
		params["schedule"], params["occurrence_at"] = audit.Int(c.ScheduleID), audit.Time(c.Occurrence)
	} else {
		params["broadcast"] = audit.Int(c.BroadcastID)
	}
	s.audit(ctx, p, audit.ConfirmationCreate, object(c.Village), params)
	return c, nil
}
