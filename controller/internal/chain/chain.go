// Package chain is the controller's door to the national emergency-
// broadcast chain (GY/T 384, formerly GD/J 083): it takes the signed
// packets the upper platform POSTs, verifies them before acting on
// anything, and acts through the same services as every other door: an
// emergency message (EBM) becomes a broadcast through the broadcasts
// service, a cancelling message cancels it. Every verified packet is kept
// by its EBDID, so one received again is answered as the first time and
// never acted on twice. The answer is always a signed EBDResponse.
package chain

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Broadcasts is what the Service needs of the broadcasts service.
type Broadcasts interface {
	Create(ctx context.Context, p broadcasts.Person, d broadcasts.Draft) (store.Broadcast, error)
	Cancel(ctx context.Context, p broadcasts.Person, id int64) (store.Broadcast, error)
	MaxTTL() time.Duration
}

// Store is what the Service needs of the database.
type Store interface {
	ClaimEBD(ctx context.Context, in store.EBDInbound) (store.EBDInbound, bool, error)
	FinishEBD(ctx context.Context, ebdid string, code int, desc string, response []byte, broadcastID int64) error
	ReleaseEBD(ctx context.Context, ebdid string) error
	BroadcastByEBMID(ctx context.Context, ebmid string) (store.Broadcast, error)
	Villages(ctx context.Context) ([]playlists.Village, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Clips puts a message's audio file into the audio library, checked and
// converted as an upload is.
type Clips interface {
	Import(ctx context.Context, name string, data []byte, title, by string) (store.Audio, error)
}

// Requests is told of the packets that ask for an answer of their own
// (EBMStateRequest, OMDRequest): the reporter sends it upward.
type Requests interface {
	Requested(ctx context.Context, p *ebd.Packet) error
}

// Options configure a Service. Store, Broadcasts, Trust and Identity are
// required.
type Options struct {
	Store      Store
	Broadcasts Broadcasts
	Clips      Clips    // nil: attached audio is not used, the text is spoken
	Requests   Requests // nil: requests are acknowledged only
	// Trust holds the upper platforms' certificates.
	Trust *ebd.TrustStore
	// Identity signs this platform's answers; EBRID is its resource code.
	Identity *ebd.Identity
	EBRID    string
	// LocalApproval makes emergency messages wait for a second person
	// here as the two-person rule says, instead of counting as approved
	// by the upper platform.
	LocalApproval bool
	Limits        ebd.Limits
	Logger        *slog.Logger
	Now           func() time.Time
}

// Service acts on the upper platform's packets.
type Service struct {
	o   Options
	log *slog.Logger
	now func() time.Time
	seq atomic.Uint64 // this process's answer EBDIDs
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Broadcasts == nil || o.Trust == nil || o.Identity == nil || !ebd.ValidEBRID(o.EBRID) {
		return nil, errors.New("chain: Store, Broadcasts, Trust, Identity and a valid EBRID are required")
	}
	s := &Service{o: o, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "chain")
	if s.now == nil {
		s.now = time.Now
	}
	// Answer IDs: unique across restarts without a counter on disk.
	s.seq.Store(uint64(s.now().UnixMilli()) * 1000)
	return s, nil
}

// Staleness bounds how far a packet's EBDTime may be from now: older
// packets are refused as possible replays of packets forgotten here.
const Staleness = 24 * time.Hour

// Outcome is what a packet did, for the door and its log.
type Outcome struct {
	EBDID, Type, Src string
	Code             int    // the EBDResponse result code
	Desc             string // its description
	Replayed         bool   // received before: answered as then
	BroadcastID      int64  // the broadcast it made or cancelled, if any
}

// Receive acts on one archive from the upper platform and returns the
// signed EBDResponse archive to answer with. err is not nil only when no
// answer can be made (this platform cannot sign, or the database failed:
// the upper platform should send again).
func (s *Service) Receive(ctx context.Context, r io.Reader, from string) ([]byte, Outcome, error) {
	now := s.now()
	// The archive's head is kept aside (not the archive, which may be
	// large and comes from anyone) so that a refused one can still be
	// answered about the EBDID its packet's file names.
	head := &prefix{max: 64 << 10}
	in, err := ebd.Receive(io.TeeReader(r, head), s.o.Limits, s.o.Trust, now)
	if err == nil {
		err = s.check(in.Packet, now)
	}
	if err != nil {
		// Not kept by its EBDID: a forger must not decide what the real
		// packet with that ID is answered.
		out := Outcome{EBDID: unknownEBDID}
		if in != nil {
			out.EBDID, out.Type, out.Src = in.Packet.EBDID, in.Packet.EBDType, in.Packet.SRC.EBRID
		} else if id := namedEBDID(head.b); id != "" {
			out.EBDID = id // as named, unverified: only to say what is refused
		}
		out.Code, out.Desc = resultOf(err)
		s.audit(ctx, from, audit.EBDRefused, out, err)
		answer, aerr := s.answer(out, now)
		return answer, out, aerr
	}
	p := in.Packet
	out := Outcome{EBDID: p.EBDID, Type: p.EBDType, Src: p.SRC.EBRID}
	prev, claimed, err := s.o.Store.ClaimEBD(ctx, store.EBDInbound{EBDID: p.EBDID, Src: p.SRC.EBRID, Type: p.EBDType, CertSN: in.Verified.CertSN})
	if err != nil {
		return nil, out, err
	}
	if !claimed {
		out.Replayed, out.BroadcastID = true, prev.BroadcastID
		if prev.Done {
			out.Code, out.Desc = prev.ResultCode, prev.ResultDesc
			s.audit(ctx, from, audit.EBDReplayed, out, nil)
			return prev.Response, out, nil
		}
		err := cx.Errorf(cx.EUNAVAILABLE, "packet %s is still being acted on; send it again shortly", p.EBDID).With(api.ReasonEBDInProgress, "value", p.EBDID)
		out.Code, out.Desc = resultOf(err)
		answer, aerr := s.answer(out, now)
		return answer, out, aerr
	}
	actErr := s.act(ctx, in, &out)
	if actErr != nil && cx.Code(actErr) == cx.EINTERNAL {
		// A fault of ours: forget the claim, so the retry is acted on.
		s.log.Error("act on EBD packet", "ebdid", p.EBDID, "type", p.EBDType, "err", actErr)
		if err := s.o.Store.ReleaseEBD(context.WithoutCancel(ctx), p.EBDID); err != nil {
			s.log.Error("release EBD claim", "ebdid", p.EBDID, "err", err)
		}
		return nil, out, actErr
	}
	out.Code, out.Desc = resultOf(actErr)
	if actErr == nil && out.Desc == ebd.ResultTexts[ebd.ResultOK] && out.BroadcastID != 0 {
		out.Desc += fmt.Sprintf(": broadcast %d", out.BroadcastID)
	}
	answer, err := s.answer(out, now)
	if err != nil {
		return nil, out, err
	}
	if err := s.o.Store.FinishEBD(context.WithoutCancel(ctx), p.EBDID, out.Code, out.Desc, answer, out.BroadcastID); err != nil {
		return nil, out, err
	}
	action := audit.EBDReceived
	if actErr != nil {
		action = audit.EBDRefused
	}
	s.audit(ctx, from, action, out, actErr)
	return answer, out, nil
}

// prefix keeps the first max bytes written to it.
type prefix struct {
	b   []byte
	max int
}

func (p *prefix) Write(b []byte) (int, error) {
	if room := p.max - len(p.b); room > 0 {
		p.b = append(p.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

// namedEBDID is the EBDID of the first EBDB_<EBDID>.xml among the tar
// headers in head, or "" if there is none there.
func namedEBDID(head []byte) string {
	tr := tar.NewReader(bytes.NewReader(head))
	for {
		h, err := tr.Next()
		if err != nil {
			return ""
		}
		if id, ok := strings.CutPrefix(h.Name, "EBDB_"); ok {
			if id = strings.TrimSuffix(id, ".xml"); ebd.ValidEBDID(id) {
				return id
			}
		}
	}
}

// unknownEBDID answers an archive whose packet cannot even be named.
const unknownEBDID = "000000000000000000000000000000000000"

// resultOf is ebd.ResultOf, but what fails here for a reason of ours (a
// service not available, a fault) is "other error", not the sender's.
func resultOf(err error) (int, string) {
	code, desc := ebd.ResultOf(err)
	if c := cx.Code(err); err != nil && (c == cx.EUNAVAILABLE || c == cx.EINTERNAL) {
		code, desc = ebd.ResultOther, ebd.ResultTexts[ebd.ResultOther]+": "+cx.Message(err)
	}
	return code, desc
}

// check refuses a verified packet that is not for this platform or too
// far from now.
func (s *Service) check(p *ebd.Packet, now time.Time) error {
	if p.DEST != nil && p.DEST.EBRID != "" && p.DEST.EBRID != s.o.EBRID {
		return cx.Errorf(cx.EINVALID, "the packet is addressed to %s, not to this platform (%s)", p.DEST.EBRID, s.o.EBRID).With(api.ReasonEBDNotHere, "value", p.DEST.EBRID)
	}
	at, err := ebd.ParseTime(p.EBDTime)
	if err != nil {
		return err
	}
	if d := now.Sub(at); d > Staleness || d < -time.Hour {
		return cx.Errorf(cx.EINVALID, "the packet's time %s is more than 24 hours from now; it may be an old packet replayed", p.EBDTime).With(api.ReasonEBDStale, "value", p.EBDTime)
	}
	return nil
}

// act does what a verified, first-received packet asks.
func (s *Service) act(ctx context.Context, in *ebd.Inbound, out *Outcome) error {
	p := in.Packet
	switch p.EBDType {
	case ebd.TypeEBM:
		if p.EBM.MsgBasicInfo != nil && p.EBM.MsgBasicInfo.MsgType == ebd.MsgCancel {
			return s.cancel(ctx, p, out)
		}
		return s.broadcast(ctx, in, out)
	case ebd.TypeEBMStateRequest, ebd.TypeOMDRequest:
		if s.o.Requests != nil {
			return s.o.Requests.Requested(ctx, p)
		}
	}
	// Heartbeats, answers to our reports and reports of others: received.
	return nil
}

// person is who a packet from the upper platform src acts as.
func person(src string) broadcasts.Person {
	return broadcasts.Person{Name: "上级平台 " + src, Key: "ebd/" + src, Role: api.RoleOperator}
}

// broadcast starts the broadcast an EBM asks for.
func (s *Service) broadcast(ctx context.Context, in *ebd.Inbound, out *Outcome) error {
	p := in.Packet
	if prev, err := s.o.Store.BroadcastByEBMID(ctx, p.EBM.EBMID); err == nil {
		// Carried before by another packet: done then, not twice.
		out.BroadcastID = prev.ID
		return nil
	}
	d, err := s.Draft(ctx, in)
	if err != nil {
		return err
	}
	b, err := s.o.Broadcasts.Create(ctx, person(p.SRC.EBRID), d)
	if b.ID != 0 {
		out.BroadcastID = b.ID
	}
	if reason, _ := cx.Reason(err); reason == api.ReasonEBMDuplicate {
		// Carried before by another packet: done then, not twice.
		if prev, perr := s.o.Store.BroadcastByEBMID(ctx, d.EBMID); perr == nil {
			out.BroadcastID = prev.ID
		}
		return nil
	}
	if b.ID != 0 && cx.Code(err) == cx.EINTERNAL {
		// Stored, and the controller goes on sending it (the outbox).
		return nil
	}
	return err
}

// Severity and priority of the standard's severity levels (MsgBasicInfo/
// Severity; docs/ebd.md): I and II sound as emergencies, III and IV as
// urgent, 10 (routine) as routine, 15 (test) as a test broadcast.
var severities = map[string]struct {
	priority playlists.Priority
	severity int
	test     bool
}{
	ebd.SeverityRed:     {playlists.Emergency, 1, false},
	ebd.SeverityOrange:  {playlists.Emergency, 2, false},
	ebd.SeverityYellow:  {playlists.Urgent, 3, false},
	ebd.SeverityBlue:    {playlists.Urgent, 4, false},
	ebd.SeverityUnknown: {playlists.Urgent, 4, false},
	"":                  {playlists.Urgent, 4, false},
	ebd.SeverityRoutine: {playlists.Routine, 4, false},
	ebd.SeverityTest:    {playlists.Routine, 4, true},
}

// Draft is the broadcast an EBM asks for, as the broadcasts service takes
// it from any door. Its audio file, if it has one, is put into the
// library; otherwise its description (or title) is spoken.
func (s *Service) Draft(ctx context.Context, in *ebd.Inbound) (broadcasts.Draft, error) {
	p := in.Packet
	m := p.EBM
	info, content := m.MsgBasicInfo, m.MsgContent
	if info == nil || content == nil {
		return broadcasts.Draft{}, cx.Invalid("EBM/MsgContent", "an emergency message to broadcast needs MsgBasicInfo and MsgContent").
			With(api.ReasonEBDMissing, "field", "EBM/MsgContent")
	}
	now := s.now()
	expires := now.Add(s.o.Broadcasts.MaxTTL()).Truncate(time.Second)
	if info.EndTime != "" {
		end, err := ebd.ParseTime(info.EndTime)
		if err != nil {
			return broadcasts.Draft{}, err
		}
		if !end.After(now) {
			return broadcasts.Draft{}, cx.Errorf(cx.EINVALID, "the message ended at %s; it is not broadcast", info.EndTime).With(api.ReasonEBMExpired, "value", info.EndTime)
		}
		if end.Before(expires) {
			expires = end
		}
	}
	var starts time.Time
	if info.StartTime != "" {
		// A message that starts later is held until then (the broadcasts
		// service keeps the hold in the store); one already started plays
		// at once.
		t, err := ebd.ParseTime(info.StartTime)
		if err != nil {
			return broadcasts.Draft{}, err
		}
		starts = t
	}
	villages, err := s.o.Store.Villages(ctx)
	if err != nil {
		return broadcasts.Draft{}, err
	}
	codes := content.AreaCodes()
	selected := capalert.Select(codes, villages)
	if len(selected) == 0 {
		return broadcasts.Draft{}, cx.Errorf(cx.EINVALID, "no village of this county is in the areas %s; nothing is broadcast", strings.Join(codes, ", ")).
			With(api.ReasonEBMNoVillages, "value", strings.Join(codes, ", "))
	}
	sev, ok := severities[info.Severity]
	if !ok {
		sev = severities[ebd.SeverityUnknown]
	}
	d := broadcasts.Draft{
		Targets: playlists.Targets{Villages: selected}, Priority: sev.priority, Severity: sev.severity,
		Test:      sev.test || info.MsgType == ebd.MsgDrillSimulated,
		EventType: clipRunes(info.EventType, broadcasts.MaxEventType), ExpiresAt: expires, StartsAt: starts,
		EBMID: m.EBMID, Source: "ebd:" + p.SRC.EBRID, ApprovedUpstream: !s.o.LocalApproval,
	}
	if d.EventType == "" {
		d.EventType = "ebm"
	}
	title := clipRunes(strings.TrimSpace(content.MsgTitle+" "+m.EBMID), 100)
	for _, a := range content.Auxiliary {
		if a.AuxiliaryType != ebd.AuxMP3 && a.AuxiliaryType != ebd.AuxWAV || s.o.Clips == nil {
			continue
		}
		f := in.Bundle.File(a.AuxiliaryDesc)
		clip, err := s.o.Clips.Import(ctx, f.Name, f.Data, title, person(p.SRC.EBRID).Name)
		if err != nil {
			s.log.Warn("EBM audio not used; its text is spoken", "ebmid", m.EBMID, "file", f.Name, "err", err)
			break
		}
		d.AudioID = clip.ID
		return d, nil
	}
	text := strings.TrimSpace(content.MsgDesc)
	if text == "" {
		text = strings.TrimSpace(content.MsgTitle)
	}
	d.Text = clipRunes(text, broadcasts.MaxText)
	return d, nil
}

// cancel cancels the broadcast of the message a cancelling EBM names: in
// RelatedInfo, or by its own EBMID.
func (s *Service) cancel(ctx context.Context, p *ebd.Packet, out *Outcome) error {
	ebmid := p.EBM.EBMID
	if p.EBM.RelatedInfo != nil && p.EBM.RelatedInfo.EBMID != "" {
		ebmid = p.EBM.RelatedInfo.EBMID
	}
	b, err := s.o.Store.BroadcastByEBMID(ctx, ebmid)
	if err != nil {
		return err
	}
	out.BroadcastID = b.ID
	if _, err := s.o.Broadcasts.Cancel(ctx, person(p.SRC.EBRID), b.ID); err != nil && cx.Code(err) != cx.EINTERNAL {
		return err
	}
	return nil
}

// answer signs the EBDResponse for out.
func (s *Service) answer(out Outcome, now time.Time) ([]byte, error) {
	id := ebd.NewEBDID(ebd.KindBusiness, s.o.EBRID, s.seq.Add(1))
	resp := ebd.Header(ebd.TypeEBDResponse, id, s.o.EBRID, out.Src, now)
	resp.RelatedEBD = &ebd.RelatedEBD{EBDID: out.EBDID}
	resp.EBDResponse = &ebd.EBDResponse{ResultCode: fmt.Sprint(out.Code), ResultDesc: out.Desc}
	return s.o.Identity.Pack(rand.Reader, &resp, nil, now)
}

func (s *Service) audit(ctx context.Context, from string, action audit.Action, out Outcome, err error) {
	params := audit.Params{"ebdid": out.EBDID, "type": out.Type, "src": out.Src, "code": fmt.Sprint(out.Code)}
	if out.BroadcastID != 0 {
		params["broadcast"] = audit.Int(out.BroadcastID)
	}
	if err != nil {
		params = audit.Refusal(params, err)
	}
	object := "ebd/" + out.EBDID
	if out.EBDID == "" {
		object = "ebd"
	}
	e := store.AuditEntry{Actor: person(out.Src).Name, Action: action.String(), Object: object, RemoteAddr: from,
		Detail: action.Detail(params), Params: params}
	if aerr := s.o.Store.Audit(context.WithoutCancel(ctx), e); aerr != nil {
		s.log.Error("audit EBD packet", "ebdid", out.EBDID, "err", aerr)
	}
}

func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
