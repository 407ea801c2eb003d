package httpapi

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

// TestEBDStatusOff: without the chain set up, the page says so and there
// is no certificate to download.
func TestEBDStatusOff(t *testing.T) {
	e := newEnv(t)
	var st api.EBDStatus
	e.must(http.StatusOK, e.do("GET", "/api/v1/ebd/status", e.staff, nil), &st)
	if st.Enabled || st.EBRID != "" || st.Upstream != nil || st.Certificate != nil || st.Trusted == nil {
		t.Errorf("status %+v", st)
	}
	r := e.do("GET", "/api/v1/ebd/certificate", e.staff, nil)
	if r.Status != http.StatusServiceUnavailable || r.errBody(t).Error.Reason != api.ReasonEBDOff {
		t.Errorf("certificate: %d %s", r.Status, r.Body)
	}
}

// TestEBDStatus: the page's answers: this platform's code, the link as
// the reporter sees it with the queue's length from the database, the
// certificates with their serials, the own certificate as PEM; every
// packet that came to the door (a forged one too, with its reason, which
// the door did not keep), and the queued reports in their states.
func TestEBDStatus(t *testing.T) {
	answered := t0.Add(-time.Minute)
	e, p := newEBDEnv(t, func(o *EBDOptions) {
		o.Upstream, o.UpstreamEBRID = "https://province.example/ebd", provinceEBRID
		o.Link = func() EBDLink {
			return EBDLink{HeartbeatSent: t0, LastHeartbeat: answered, LastError: "connection refused", LastErrorAt: t0}
		}
	})
	ctx := t.Context()
	now := e.clk.Now()

	// A message acted on, and the same message signed by a stranger.
	pk, files := p.ebm("010211000000000001202603010001", ebdTone(t), now, nil)
	if resp, _ := e.postEBD(p, p.pack(pk, files, now)); resp.ResultCode != "1" {
		t.Fatalf("EBM answered %+v", resp)
	}
	sk, sc, _ := ebd.GenerateIdentity(rand.Reader, provinceEBRID, now.Add(-time.Hour))
	stranger, _ := ebd.LoadIdentity(sk, sc)
	forged, _ := p.ebm("010211000000000001202603010002", nil, now, nil)
	tarball, err := stranger.Pack(rand.Reader, forged, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.postEBD(p, tarball); resp.ResultCode != "4" {
		t.Fatalf("forgery answered %+v", resp)
	}

	// The province's heartbeat; a minute later a stranger's, which does
	// not count.
	heartbeat := func(seq uint64, at time.Time) *ebd.Packet {
		hb := ebd.Header(ebd.TypeConnectionCheck, ebd.NewEBDID(ebd.KindBusiness, provinceEBRID, seq), provinceEBRID, countyEBRID, at)
		hb.ConnectionCheck = &ebd.ConnectionCheck{RptTime: ebd.FormatTime(at)}
		return &hb
	}
	if resp, _ := e.postEBD(p, p.pack(heartbeat(90, now), nil, now)); resp.ResultCode != "1" {
		t.Fatalf("heartbeat answered %+v", resp)
	}
	e.clk.Advance(time.Minute)
	if tarball, err = stranger.Pack(rand.Reader, heartbeat(91, e.clk.Now()), nil, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.postEBD(p, tarball); resp.ResultCode != "4" {
		t.Fatalf("forged heartbeat answered %+v", resp)
	}

	// Two reports queued: one tried and failed, one delivered.
	for _, typ := range []string{ebd.TypeEBRDTInfo, ebd.TypeEBRDTState} {
		if _, _, err := e.db.EnqueueEBD(ctx, typ, 0, "", func(seq int64) (string, []byte, error) {
			return ebd.NewEBDID(ebd.KindBusiness, countyEBRID, uint64(seq)), []byte("tar"), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	head, _, _ := e.db.NextEBDOut(ctx)
	if err := e.db.EBDOutSent(ctx, head.Seq, 1, "接收解析及数据校验成功"); err != nil {
		t.Fatal(err)
	}
	head, _, _ = e.db.NextEBDOut(ctx)
	if err := e.db.EBDOutFailed(ctx, head.Seq, "the upper platform answered 503", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	viewer := e.token("viewer", "viewer", "")
	var st api.EBDStatus
	e.must(http.StatusOK, e.do("GET", "/api/v1/ebd/status", viewer, nil), &st)
	u := st.Upstream
	if st.HeartbeatReceivedAt == nil || !st.HeartbeatReceivedAt.Equal(now) {
		t.Errorf("the province's last heartbeat shown as %v; want %v (not the stranger's a minute later)", st.HeartbeatReceivedAt, now)
	}
	if !st.Enabled || st.EBRID != countyEBRID || st.DoorURL != "http://controller.test/api/v1/ebd" || u == nil || u.URL != "https://province.example/ebd" || u.EBRID != provinceEBRID ||
		u.Reachable || u.HeartbeatAt == nil || !u.HeartbeatAt.Equal(answered) || u.HeartbeatSentAt == nil || u.LastError != "connection refused" ||
		u.Queued != 1 || u.OldestQueuedAt == nil {
		t.Fatalf("status %+v upstream %+v", st, u)
	}
	if len(st.Trusted) != 1 || st.Trusted[0].CertSN != p.id.CertSN() || st.Trusted[0].State != api.CertValid ||
		!strings.Contains(st.Trusted[0].Subject, provinceEBRID) || st.Certificate == nil || st.Certificate.CertSN == p.id.CertSN() {
		t.Fatalf("certificates: trusted %+v, own %+v", st.Trusted, st.Certificate)
	}
	cert := e.do("GET", "/api/v1/ebd/certificate", viewer, nil)
	if cert.Status != http.StatusOK || !strings.Contains(cert.Header.Get("Content-Disposition"), "ebd-cert-"+countyEBRID+".pem") {
		t.Fatalf("certificate: %d %v", cert.Status, cert.Header)
	}
	if trust, err := ebd.ParseTrust(cert.Body); err != nil || ebd.SerialHex(trust.Certificates()[0]) != st.Certificate.CertSN {
		t.Fatalf("the downloaded certificate is not this platform's: %v", err)
	}

	var in api.EBDInboundList
	e.must(http.StatusOK, e.do("GET", "/api/v1/ebd/inbound", viewer, nil), &in)
	if len(in.Packets) != 4 || in.Packets[1].Type != ebd.TypeConnectionCheck || in.Packets[0].Outcome != "refused" {
		t.Fatalf("inbound %+v; want the forged heartbeat, the heartbeat, the forgery, the message", in.Packets)
	}
	refused, received := in.Packets[2], in.Packets[3]
	if refused.Outcome != "refused" || refused.ResultCode != ebd.ResultBadSig || refused.Reason != api.ReasonEBDCertUnknown ||
		refused.Params["value"] != stranger.CertSN() || refused.EBDID != forged.EBDID || refused.CertSN != "" || refused.RemoteAddr == "" {
		t.Errorf("the forgery: %+v", refused)
	}
	if received.Outcome != "received" || received.ResultCode != ebd.ResultOK || received.BroadcastID == 0 || received.Type != ebd.TypeEBM ||
		received.CertSN != p.id.CertSN() || !strings.Contains(received.ResultDesc, fmt.Sprintf("broadcast %d", received.BroadcastID)) {
		t.Errorf("the message: %+v", received)
	}

	e.must(http.StatusOK, e.do("GET", "/api/v1/ebd/inbound?limit=1", viewer, nil), &in)
	if len(in.Packets) != 1 || in.Packets[0].Outcome != "refused" {
		t.Errorf("limit 1: %+v", in.Packets)
	}

	var out api.EBDOutboundList
	e.must(http.StatusOK, e.do("GET", "/api/v1/ebd/outbound", viewer, nil), &out)
	if len(out.Reports) != 2 || out.Reports[0].State != api.EBDRetrying || out.Reports[0].NextAt == nil || out.Reports[0].LastError == "" ||
		out.Reports[1].State != api.EBDDelivered || out.Reports[1].ResultCode == nil || *out.Reports[1].ResultCode != 1 || out.Reports[1].SentAt == nil {
		t.Errorf("outbound %+v", out.Reports)
	}
	r := e.do("GET", "/api/v1/ebd/outbound?limit=0", viewer, nil)
	if r.Status != http.StatusBadRequest || r.errBody(t).Error.Reason != api.ReasonLimitRange {
		t.Errorf("limit 0: %d %s", r.Status, r.Body)
	}
}

// TestEBDTerminals: every village with a box is a terminal, with the code
// derived from its village's until the province's is set; a code that is
// not one, another box's (derived or assigned) or this platform's is
// refused with its reason; a change is audited, and the reporter's
// inventory (the store's codes) carries it; "" goes back.
func TestEBDTerminals(t *testing.T) {
	e, _ := newEBDEnv(t, nil)
	var list api.EBDTerminalList
	e.must(http.StatusOK, e.do("GET", "/api/v1/ebd/terminals", e.staff, nil), &list)
	if len(list.Terminals) != 4 || list.Terminals[0].Village != "110101001001" || list.Terminals[0].EBRID != "060111010100100101" ||
		list.Terminals[0].Assigned || list.Terminals[0].Derived != list.Terminals[0].EBRID {
		t.Fatalf("terminals %+v", list.Terminals)
	}
	const east, province = "110101001001", "43411010100100103010201"
	put := func(village, code string) resp {
		t.Helper()
		return e.do("PUT", "/api/v1/ebd/terminals/"+village, e.admin, api.EBDTerminalChange{EBRID: code})
	}
	for _, tt := range []struct {
		name, code string
		status     int
		reason     string
	}{
		{"not digits", "0601-1101", http.StatusBadRequest, api.ReasonEBDTerminalInvalid},
		{"too short", "06011101010010010", http.StatusBadRequest, api.ReasonEBDTerminalInvalid},
		{"the west village's derived code", "060111010100100201", http.StatusConflict, api.ReasonEBDTerminalTaken},
		{"this platform's", countyEBRID, http.StatusBadRequest, api.ReasonEBDTerminalPlatform},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := put(east, tt.code)
			if r.Status != tt.status || r.errBody(t).Error.Reason != tt.reason {
				t.Errorf("%d %s", r.Status, r.Body)
			}
		})
	}
	var got api.EBDTerminal
	e.must(http.StatusOK, put(east, " "+province+" "), &got)
	if got.EBRID != province || !got.Assigned || got.Derived != "060111010100100101" {
		t.Fatalf("after the change %+v", got)
	}
	if codes, _ := e.db.TerminalCodes(t.Context()); codes[east] != province {
		t.Fatalf("stored codes %v", codes)
	}
	if r := put("110101003001", province); r.Status != http.StatusConflict || r.errBody(t).Error.Reason != api.ReasonEBDTerminalTaken {
		t.Errorf("the same code for a second box: %d %s", r.Status, r.Body)
	}
	// 北村 has no box yet; its derived code is kept for the day it gets one.
	if r := put("110101003001", "060111010100200201"); r.Status != http.StatusConflict || r.errBody(t).Error.Reason != api.ReasonEBDTerminalTaken {
		t.Errorf("the derived code of a village without a box: %d %s", r.Status, r.Body)
	}
	var log struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit?action=ebd.terminal", e.admin, nil), &log)
	if len(log.Entries) != 1 || log.Entries[0].Object != "village/"+east || log.Entries[0].Params["to"] != province ||
		log.Entries[0].Params["from"] != "060111010100100101" {
		t.Fatalf("audit %+v", log.Entries)
	}
	e.must(http.StatusOK, put(east, ""), &got)
	if got.EBRID != got.Derived || got.Assigned {
		t.Fatalf("back to the derived code: %+v", got)
	}
	if codes, _ := e.db.TerminalCodes(t.Context()); len(codes) != 0 {
		t.Fatalf("stored codes %v", codes)
	}
	if r := e.do("PUT", "/api/v1/ebd/terminals/"+east, e.staff, api.EBDTerminalChange{EBRID: province}); r.Status != http.StatusForbidden {
		t.Errorf("an operator set a code: %d", r.Status)
	}
	if r := put("110101009999", province); r.Status != http.StatusNotFound {
		t.Errorf("an unknown village: %d %s", r.Status, r.Body)
	}
}

// TestEBDClient: api/client's methods for the 上级平台 page reach their
// routes and read their answers, matching openapi.yaml.
func TestEBDClient(t *testing.T) {
	e, _ := newEBDEnv(t, func(o *EBDOptions) { o.Upstream = "https://province.example/ebd" })
	ts := httptest.NewServer(contractHandler(t, e.h))
	t.Cleanup(ts.Close)
	ctx := t.Context()
	admin := &client.Client{URL: ts.URL, Token: e.admin}
	st, err := admin.EBDStatus(ctx)
	if err != nil || !st.Enabled || st.Upstream == nil || st.Upstream.URL != "https://province.example/ebd" || st.Certificate == nil {
		t.Fatalf("status %+v %v", st, err)
	}
	if pemData, err := admin.EBDCertificate(ctx); err != nil || !bytes.Contains(pemData, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("certificate %q %v", pemData, err)
	}
	if in, err := admin.EBDInbound(ctx, 10); err != nil || len(in) != 0 {
		t.Fatalf("inbound %+v %v", in, err)
	}
	if out, err := admin.EBDOutbound(ctx, 10); err != nil || len(out) != 0 {
		t.Fatalf("outbound %+v %v", out, err)
	}
	got, err := admin.SetEBDTerminal(ctx, "110101001001", "43411010100100103010201")
	if err != nil || !got.Assigned {
		t.Fatalf("set %+v %v", got, err)
	}
	if ts, err := admin.EBDTerminals(ctx); err != nil || ts[0].EBRID != "43411010100100103010201" {
		t.Fatalf("terminals %+v %v", ts, err)
	}
	if _, err := admin.SetEBDTerminal(ctx, "110101001001", "x"); client.StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("a bad code: %v", err)
	}
}
