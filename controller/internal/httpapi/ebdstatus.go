package httpapi

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"github.com/gin-gonic/gin"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// The console's 上级平台 page: this platform's place in the national
// chain, its link to the upper platform, the packets each way, and the
// resource codes of the village boxes.

// ebdStore is what these routes read and change of the database.
type ebdStore interface {
	EBDInbounds(ctx context.Context, limit int) ([]store.EBDInbound, error)
	LastEBDReceived(ctx context.Context, typ string) (time.Time, error)
	EBDOutbound(ctx context.Context, unsentOnly bool, limit int) ([]store.EBDOut, error)
	EBDOutQueue(ctx context.Context) (int, time.Time, error)
	TerminalCodes(ctx context.Context) (map[string]string, error)
	SetTerminalCode(ctx context.Context, village, ebrid string) error
}

// EBDLink is the state of the reports to the upper platform (main hands
// over upstream.Reporter's).
type EBDLink struct {
	HeartbeatSent, LastHeartbeat time.Time
	LastHeartbeatOK              bool
	LastError                    string
	LastErrorAt, LastSent        time.Time
}

// ebdListMax bounds the packet lists (?limit=, default 100).
const ebdListMax = 500

func ebdLimit(c *gin.Context) (int, error) {
	l := c.Query("limit")
	if l == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > ebdListMax {
		return 0, cx.Invalid("limit", fmt.Sprintf("%q is not a number from 1 to %d", l, ebdListMax)).With(api.ReasonLimitRange, "value", l, "max", ebdListMax)
	}
	return n, nil
}

func (s *Server) certificate(c *smx509.Certificate, now time.Time) api.EBDCertificate {
	st := api.CertValid
	switch {
	case now.After(c.NotAfter):
		st = api.CertExpired
	case now.Before(c.NotBefore):
		st = api.CertNotYetValid
	}
	return api.EBDCertificate{CertSN: ebd.SerialHex(c), Subject: c.Subject.String(), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), State: st}
}

// getEBDStatus says whether the door is open, with what codes and
// certificates, and how the reports to the upper platform are going.
func (s *Server) getEBDStatus(c *gin.Context) (any, error) {
	e := s.o.EBD
	out := api.EBDStatus{Trusted: []api.EBDCertificate{}}
	if e == nil {
		return out, nil
	}
	now := s.now()
	out.Enabled, out.EBRID, out.LocalApproval = true, e.EBRID, e.LocalApproval
	out.DoorURL = strings.TrimSuffix(s.o.PublicURL, "/") + "/api/v1/ebd"
	hb, err := s.store.LastEBDReceived(c.Request.Context(), ebd.TypeConnectionCheck)
	if err != nil {
		return nil, err
	}
	out.HeartbeatReceivedAt = timePtr(hb)
	if e.Identity != nil {
		own := s.certificate(e.Identity.Cert, now)
		out.Certificate = &own
	}
	if e.Trust != nil {
		for _, cert := range e.Trust.Certificates() {
			out.Trusted = append(out.Trusted, s.certificate(cert, now))
		}
	}
	if e.Upstream != "" {
		u := &api.EBDUpstream{URL: e.Upstream, EBRID: e.UpstreamEBRID}
		if e.Link != nil {
			l := e.Link()
			u.Reachable, u.HeartbeatSentAt, u.HeartbeatAt = l.LastHeartbeatOK, timePtr(l.HeartbeatSent), timePtr(l.LastHeartbeat)
			u.LastSentAt, u.LastError, u.LastErrorAt = timePtr(l.LastSent), l.LastError, timePtr(l.LastErrorAt)
		}
		n, oldest, err := s.store.EBDOutQueue(c.Request.Context())
		if err != nil {
			return nil, err
		}
		u.Queued, u.OldestQueuedAt = n, timePtr(oldest)
		out.Upstream = u
	}
	return out, nil
}

// getEBDCertificate downloads this platform's certificate (PEM), for the
// province to install.
func (s *Server) getEBDCertificate(c *gin.Context) {
	e := s.o.EBD
	if e == nil || e.Identity == nil {
		s.fail(c, &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonEBDOff,
			Message: "this controller is not set up for the upper platform: start it with --ebr-id and --ebd-trust"})
		return
	}
	data := e.Identity.CertPEM
	if len(data) == 0 {
		data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Identity.Cert.Raw})
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="ebd-cert-%s.pem"`, e.EBRID))
	c.Data(http.StatusOK, "application/x-pem-file", data)
}

// ebdOutcomes are the audit actions of the door, by the outcome they
// name.
var ebdOutcomes = map[string]string{
	audit.EBDReceived.String(): "received",
	audit.EBDRefused.String():  "refused",
	audit.EBDReplayed.String(): "replayed",
}

// getEBDInbound lists the packets that came to the door, newest first:
// every arrival as the audit log has it (refused ones too, which the door
// does not keep), with what the door kept of the packet (its answer's
// description, the certificate that signed it).
func (s *Server) getEBDInbound(c *gin.Context) (any, error) {
	limit, err := ebdLimit(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Request.Context()
	// "ebd" also matches the terminal codes' changes, which are left out
	// below: ask for more, so that they rarely shorten the list.
	es, err := s.store.AuditLog(ctx, store.AuditFilter{Action: "ebd", Limit: min(2*limit, 1000)})
	if err != nil {
		return nil, err
	}
	kept, err := s.store.EBDInbounds(ctx, limit)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]store.EBDInbound, len(kept))
	for _, k := range kept {
		byID[k.EBDID] = k
	}
	out := api.EBDInboundList{Packets: []api.EBDInbound{}}
	for _, e := range es {
		outcome, ok := ebdOutcomes[e.Action]
		if !ok {
			continue
		}
		p := e.Params
		in := api.EBDInbound{ReceivedAt: e.At.UTC(), EBDID: p["ebdid"], Type: p["type"], Src: p["src"], Outcome: outcome,
			Reason: p["error_reason"], Error: p["error"], RemoteAddr: e.RemoteAddr}
		in.ResultCode, _ = strconv.Atoi(p["code"])
		in.ResultDesc = ebd.ResultTexts[in.ResultCode]
		if in.Reason != "" {
			in.Params = reasonParams(p)
		}
		if b, err := strconv.ParseInt(p["broadcast"], 10, 64); err == nil {
			in.BroadcastID = b
		}
		// The door keeps a packet that passed its signature check; one
		// refused before (signature, time, address) is only audited.
		if k, ok := byID[in.EBDID]; ok && k.Done && !(outcome == "refused" && k.ResultCode != in.ResultCode) {
			in.ResultDesc, in.CertSN = k.ResultDesc, k.CertSN
		}
		out.Packets = append(out.Packets, in)
		if len(out.Packets) == limit {
			break
		}
	}
	return out, nil
}

// reasonParams are the parameters of a refusal's reason among an audit
// entry's (the door's own are not the reason's).
func reasonParams(p map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		switch k {
		case "ebdid", "src", "code", "broadcast", "error", "error_reason":
		default:
			out[k] = v
		}
	}
	return out
}

// outState is the state a queued report is in.
func outState(e store.EBDOut) string {
	switch {
	case !e.SentAt.IsZero() && (e.ResultCode == ebd.ResultOK || e.ResultCode == ebd.ResultUnprocessed):
		return api.EBDDelivered
	case !e.SentAt.IsZero():
		return api.EBDRefused
	case e.Attempts > 0:
		return api.EBDRetrying
	}
	return api.EBDQueued
}

// getEBDOutbound lists the reports queued for the upper platform, newest
// first: those waiting, and those sent in the last month with the
// platform's answer.
func (s *Server) getEBDOutbound(c *gin.Context) (any, error) {
	limit, err := ebdLimit(c)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.EBDOutbound(c.Request.Context(), c.Query("unsent") == "true", limit)
	if err != nil {
		return nil, err
	}
	out := api.EBDOutboundList{Reports: make([]api.EBDOutbound, 0, len(rows))}
	for _, e := range rows {
		r := api.EBDOutbound{Seq: e.Seq, EBDID: e.EBDID, Type: e.Type, BroadcastID: e.BroadcastID, CreatedAt: e.CreatedAt.UTC(),
			State: outState(e), Attempts: e.Attempts, LastError: e.LastError, SentAt: timePtr(e.SentAt), ResultDesc: e.ResultDesc}
		if e.SentAt.IsZero() {
			r.NextAt = timePtr(e.NextAttemptAt)
		} else {
			code := e.ResultCode
			r.ResultCode = &code
		}
		out.Reports = append(out.Reports, r)
	}
	return out, nil
}

// terminals lists the villages with a box (every village if all) as
// terminals, with their codes.
func (s *Server) terminals(ctx context.Context, all bool) ([]api.EBDTerminal, error) {
	vs, err := s.store.Villages(ctx)
	if err != nil {
		return nil, err
	}
	codes, err := s.store.TerminalCodes(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.EBDTerminal{}
	for _, v := range vs {
		if v.Device != playlists.DeviceAgent && !all {
			continue
		}
		t := api.EBDTerminal{Village: v.Code, Name: v.Name, Township: v.Township}
		t.Derived, _ = ebd.VillageTerminalEBRID(v.Code)
		t.EBRID, t.Assigned = codes[v.Code], codes[v.Code] != ""
		if !t.Assigned {
			t.EBRID = t.Derived
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b api.EBDTerminal) int { return strings.Compare(a.Village, b.Village) })
	return out, nil
}

func (s *Server) getEBDTerminals(c *gin.Context) (any, error) {
	ts, err := s.terminals(c.Request.Context(), false)
	if err != nil {
		return nil, err
	}
	return api.EBDTerminalList{Terminals: ts}, nil
}

// putEBDTerminal sets the resource code the province assigned to a
// village's box ("" or the derived code: back to the derived one). The
// code must have the shape of one, and be no other box's (assigned or
// derived) nor this platform's, or the upper platform could not tell
// them apart. The reporter sends the changed inventory by itself (the
// store's Version moves).
func (s *Server) putEBDTerminal(c *gin.Context) (any, error) {
	code, err := villageParam(c)
	if err != nil {
		return nil, err
	}
	var req api.EBDTerminalChange
	if err := decodeJSON(c, &req); err != nil {
		return nil, err
	}
	ctx := c.Request.Context()
	v, err := s.store.VillageState(ctx, code)
	if err != nil {
		return nil, err
	}
	want := strings.TrimSpace(req.EBRID)
	derived, err := ebd.VillageTerminalEBRID(v.Code)
	if err != nil {
		return nil, fmt.Errorf("derive the terminal code of village %s: %w", v.Code, err)
	}
	switch {
	case want == "" || want == derived:
		want = ""
	case !ebd.ValidEBRID(want):
		return nil, cx.Invalid("ebr_id", fmt.Sprintf("%q is not a resource code of 18 or 23 digits", want)).With(api.ReasonEBDTerminalInvalid, "value", want)
	case s.o.EBD != nil && want == s.o.EBD.EBRID:
		return nil, cx.Invalid("ebr_id", fmt.Sprintf("%s is this platform's own resource code", want)).With(api.ReasonEBDTerminalPlatform, "value", want)
	}
	// Every village's code, a box or not yet: one that gets a box later
	// must not find its derived code taken.
	ts, err := s.terminals(ctx, true)
	if err != nil {
		return nil, err
	}
	var before api.EBDTerminal
	for _, t := range ts {
		if t.Village == v.Code {
			before = t
			continue
		}
		if want != "" && t.EBRID == want {
			return nil, cx.Errorf(cx.ECONFLICT, "%s is already the terminal code of %s (%s)", want, t.Name, t.Village).
				With(api.ReasonEBDTerminalTaken, "value", want, "code", t.Village, "name", t.Name)
		}
	}
	if err := s.store.SetTerminalCode(ctx, v.Code, want); err != nil {
		return nil, err
	}
	after := api.EBDTerminal{Village: v.Code, Name: v.Name, Township: v.Township, Derived: derived, EBRID: want, Assigned: want != ""}
	if want == "" {
		after.EBRID = derived
	}
	noteAudit(c, audit.EBDTerminal, "village/"+v.Code, audit.Params{"from": before.EBRID, "to": after.EBRID, "derived": audit.Flag(!after.Assigned)})
	return after, nil
}
