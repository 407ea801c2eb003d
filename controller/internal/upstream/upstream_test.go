package upstream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/chain"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/upstream"
	"github.com/cunxiang/cunxiang/playlists"
)

const (
	countyEBRID   = "010411010100000001" // this platform
	provinceEBRID = "010211000000000001" // the upper platform
	east, west    = "110101001001", "110101001002"
	south         = "110101002001" // no box
)

var _ upstream.Store = (*store.DB)(nil)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// clock is a settable time shared by the store and the reporter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func identity(tb testing.TB, ebrid string) *ebd.Identity {
	tb.Helper()
	key, cert, err := ebd.GenerateIdentity(rand.Reader, ebrid, t0)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := ebd.LoadIdentity(key, cert)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func trust(tb testing.TB, id *ebd.Identity) *ebd.TrustStore {
	tb.Helper()
	ts, err := ebd.ParseTrust(id.CertPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

// received is a packet the mock platform accepted.
type received struct {
	EBDID  string
	Type   string
	Packet *ebd.Packet
}

// province is a mock upper platform: it reads the tar, verifies the
// SM2 signature against the county's certificate and answers a signed
// EBDResponse. Its mode says how it fails while it is "down".
type province struct {
	tb    testing.TB
	clk   *clock
	id    *ebd.Identity
	trust *ebd.TrustStore
	srv   *httptest.Server
	mode  atomic.Value // string: "up", "503", "drop", "unsigned", "badsig"
	seq   atomic.Uint64

	mu        sync.Mutex
	got       []received // accepted while up
	untrusted int        // accepted while answering with a key the county does not trust
	refused   []error
}

func newProvince(tb testing.TB, clk *clock, county *ebd.Identity) *province {
	p := &province{tb: tb, clk: clk, id: identity(tb, provinceEBRID), trust: trust(tb, county)}
	p.mode.Store("up")
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	tb.Cleanup(p.srv.Close)
	return p
}

func (p *province) serve(w http.ResponseWriter, r *http.Request) {
	mode := p.mode.Load().(string)
	switch mode {
	case "503":
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case "drop":
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-tar" {
		http.Error(w, "want a POST of application/x-tar", http.StatusBadRequest)
		return
	}
	trusted := p.trust
	if mode == "badsig" { // the county's certificate is not installed yet
		trusted = trust(p.tb, identity(p.tb, countyEBRID))
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	in, err := ebd.Receive(bytes.NewReader(body), ebd.Limits{}, trusted, p.clk.Now())
	if err != nil {
		p.mu.Lock()
		p.refused = append(p.refused, err)
		p.mu.Unlock()
	} else {
		p.mu.Lock()
		if mode == "unsigned" {
			p.untrusted++
		} else {
			p.got = append(p.got, received{EBDID: in.Packet.EBDID, Type: in.Packet.EBDType, Packet: in.Packet})
		}
		p.mu.Unlock()
	}
	related := ""
	if b, err := ebd.ReadTar(bytes.NewReader(body), ebd.Limits{}); err == nil {
		related = b.EBDID // named even when refused, as a platform answers
	}
	resp := ebd.Response(ebd.NewEBDID(ebd.KindBusiness, provinceEBRID, p.seq.Add(1)), provinceEBRID, countyEBRID, related, err, p.clk.Now())
	signer := p.id
	if mode == "unsigned" {
		signer = identity(p.tb, provinceEBRID) // a key the county does not trust
	}
	data, perr := signer.Pack(rand.Reader, resp, nil, p.clk.Now())
	if perr != nil {
		http.Error(w, perr.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Write(data)
}

func (p *province) packets(typ string) []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []received
	for _, r := range p.got {
		if typ == "" || r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// waitFor waits (up to 10 s) until cond holds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fixture struct {
	db     *store.DB
	path   string
	clk    *clock
	county *ebd.Identity
	prov   *province
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{path: filepath.Join(tb.TempDir(), "cx.db"), clk: &clock{t: t0}}
	f.open(tb)
	ctx := context.Background()
	if _, err := f.db.ImportVillages(ctx, []store.Village{
		{Code: east, Name: "东村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"},
		{Code: west, Name: "西村", Township: "东镇", Lat: 39.91, Lon: 116.41, Device: "agent"},
		{Code: south, Name: "南村", Township: "南镇", Lat: 39.8, Lon: 116.3, Device: "manual"},
	}); err != nil {
		tb.Fatal(err)
	}
	for _, v := range []string{east, west} {
		et, err := f.db.CreateEnrollToken(ctx, v, 0, "test")
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := f.db.Enroll(ctx, api.EnrollRequest{Village: v, Token: et.Token, AgentVersion: "1.0"}); err != nil {
			tb.Fatal(err)
		}
	}
	f.county = identity(tb, countyEBRID)
	f.prov = newProvince(tb, f.clk, f.county)
	return f
}

func (f *fixture) open(tb testing.TB) {
	tb.Helper()
	db, err := store.Open(context.Background(), f.path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	db.Now = f.clk.Now
	f.db = db
}

func (f *fixture) presence(tb testing.TB, village, status string) {
	tb.Helper()
	if err := f.db.SetPresence(context.Background(), village, api.Presence{Village: village, Status: status, At: f.clk.Now()}, f.clk.Now()); err != nil {
		tb.Fatal(err)
	}
}

// start runs a Reporter until the test ends (or stop is called); stop
// returns once Run has returned.
func (f *fixture) start(tb testing.TB, mod func(*upstream.Options)) (r *upstream.Reporter, stop func()) {
	tb.Helper()
	o := upstream.Options{
		Store: f.db, Identity: f.county, EBRID: countyEBRID, Dest: provinceEBRID, Upstream: f.prov.srv.URL + "/ebd",
		Trust: trust(tb, f.prov.id), Now: f.clk.Now,
		HeartbeatEvery: 20 * time.Millisecond, PollEvery: 10 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	r, err := upstream.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				tb.Fatal("Run did not return after its context ended")
			}
		})
	}
	tb.Cleanup(stop)
	return r, stop
}

func TestNewRefuses(t *testing.T) {
	f := newFixture(t)
	good := upstream.Options{Store: f.db, Identity: f.county, EBRID: countyEBRID, Upstream: "https://province.example/ebd"}
	if _, err := upstream.New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*upstream.Options){
		"no store":    func(o *upstream.Options) { o.Store = nil },
		"no identity": func(o *upstream.Options) { o.Identity = nil },
		"bad ebrid":   func(o *upstream.Options) { o.EBRID = "12345" },
		"bad dest":    func(o *upstream.Options) { o.Dest = "x" },
		"no url":      func(o *upstream.Options) { o.Upstream = "" },
		"not http":    func(o *upstream.Options) { o.Upstream = "ftp://province.example/" },
	} {
		t.Run(name, func(t *testing.T) {
			o := good
			mod(&o)
			if _, err := upstream.New(o); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestHeartbeats: ConnectionChecks arrive, signed with the county's key
// (the platform verifies them against the county's certificate), from
// this platform to the upper one, and the link's state says so.
func TestHeartbeats(t *testing.T) {
	f := newFixture(t)
	r, _ := f.start(t, nil)
	waitFor(t, "three heartbeats", func() bool { return len(f.prov.packets(ebd.TypeConnectionCheck)) >= 3 })
	hb := f.prov.packets(ebd.TypeConnectionCheck)
	for _, p := range hb {
		if p.Packet.SRC.EBRID != countyEBRID || p.Packet.DEST == nil || p.Packet.DEST.EBRID != provinceEBRID ||
			p.Packet.ConnectionCheck.RptTime != ebd.FormatTime(t0) || p.EBDID[:2] != ebd.KindHeartbeat {
			t.Errorf("heartbeat %+v", p.Packet)
		}
	}
	if len(f.prov.refused) > 0 {
		t.Errorf("the platform refused %v", f.prov.refused)
	}
	waitFor(t, "the link's state", func() bool { s := r.Status(); return s.LastHeartbeatOK && !s.LastHeartbeat.IsZero() })
}

// terminals returns the terminals of an inventory or state report by
// resource code.
func terminals(p *ebd.Packet) map[string]ebd.Resource {
	var items []ebd.Resource
	switch {
	case p.EBRDTInfo != nil:
		items = p.EBRDTInfo.Items
	case p.EBRDTState != nil:
		items = p.EBRDTState.Items
	}
	out := map[string]ebd.Resource{}
	for _, it := range items {
		out[it.EBRID] = it
	}
	return out
}

// TestTerminals: the boxes arrive as terminals (derived codes, or the
// province's where stored) with their states on start; a box going
// offline sends a new state report; a request sends a fresh inventory.
func TestTerminals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.presence(t, east, api.Online)
	f.presence(t, west, api.Online)
	eastID, _ := ebd.TerminalEBRID(east, 1)
	const westID = "061011010100100299" // assigned by the province
	if err := f.db.SetTerminalCode(ctx, west, westID); err != nil {
		t.Fatal(err)
	}
	r, _ := f.start(t, nil)
	waitFor(t, "inventory and state", func() bool {
		return len(f.prov.packets(ebd.TypeEBRDTInfo)) == 1 && len(f.prov.packets(ebd.TypeEBRDTState)) == 1
	})
	info := terminals(f.prov.packets(ebd.TypeEBRDTInfo)[0].Packet)
	if len(info) != 2 {
		t.Fatalf("inventory %v: want the two boxes, not the village without one", info)
	}
	e := info[eastID]
	if e.EBRName != "东村" || e.AreaCode != east || e.Longitude != "116.400000" || e.Latitude != "39.900000" || e.RptType != ebd.OpSync ||
		e.RelatedEBRPS == nil || e.RelatedEBRPS.EBRID != countyEBRID {
		t.Errorf("east box %+v", e)
	}
	if w, ok := info[westID]; !ok || w.EBRName != "西村" {
		t.Errorf("west box under the province's code: %+v (%v)", w, info)
	}
	st := terminals(f.prov.packets(ebd.TypeEBRDTState)[0].Packet)
	if st[eastID].StateCode != ebd.StateOn || st[westID].StateCode != ebd.StateOn {
		t.Fatalf("states %+v", st)
	}

	f.presence(t, west, api.Offline)
	waitFor(t, "a second state report", func() bool { return len(f.prov.packets(ebd.TypeEBRDTState)) >= 2 })
	st = terminals(f.prov.packets(ebd.TypeEBRDTState)[1].Packet)
	if st[eastID].StateCode != ebd.StateOn || st[westID].StateCode != ebd.StateOff {
		t.Fatalf("after west went offline: %+v", st)
	}
	if n := len(f.prov.packets(ebd.TypeEBRDTInfo)); n != 1 {
		t.Errorf("%d inventories: a state change is not an inventory change", n)
	}

	if err := r.Request(ctx, ebd.TypeEBRDTInfo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the requested inventory", func() bool { return len(f.prov.packets(ebd.TypeEBRDTInfo)) == 2 })
	if err := r.Request(ctx, ebd.TypeEBMBrdLog); err == nil {
		t.Error("a request for a report the reporter does not make was accepted")
	}
}

// broadcast makes a released broadcast to every village, playing 10 s,
// that expires in a minute.
func (f *fixture) broadcast(tb testing.TB, ebmid ...string) store.Broadcast {
	tb.Helper()
	ctx := context.Background()
	a, _, err := f.db.CreateAudio(ctx, store.Audio{SHA256: "aa", Title: "警报", DurationMS: 10000, SampleRate: 22050, Channels: 1}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := f.db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, Repeat: 1, ExpiresAt: f.clk.Now().Add(time.Minute), CreatedBy: "li", CreatedByKey: "user/1",
		EBMID: strings.Join(ebmid, "")}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (f *fixture) report(tb testing.TB, village string, seq int64, typ string, b store.Broadcast) {
	tb.Helper()
	_, err := f.db.IngestEvents(context.Background(), []store.IngestBatch{{Village: village, Version: "1.0", ReceivedAt: f.clk.Now(),
		Events: []api.Event{{Seq: seq, Type: typ, At: f.clk.Now(), BroadcastID: b.ID}}}})
	if err != nil {
		tb.Fatal(err)
	}
}

// TestBroadcastLog: a broadcast is logged upward once it has ended, once,
// with its EBMID, the coverage rate of the real coverage (one village of
// three played it) and the areas that heard it.
func TestBroadcastLog(t *testing.T) {
	f := newFixture(t)
	f.presence(t, east, api.Online)
	f.presence(t, west, api.Online)
	b := f.broadcast(t)
	const provinceEBMID = "010211000000000001202603010007"
	f.broadcast(t, provinceEBMID)
	f.report(t, east, 1, api.EventStarted, b)
	f.report(t, east, 2, api.EventFinished, b)
	f.report(t, west, 1, api.EventFailed, b)
	f.start(t, nil)
	waitFor(t, "the state report", func() bool { return len(f.prov.packets(ebd.TypeEBRDTState)) == 1 })
	// The village without a box may still be confirmed by hand: not over.
	if n := len(f.prov.packets(ebd.TypeEBMBrdLog)); n != 0 {
		t.Fatalf("%d logs of a broadcast that has not ended", n)
	}
	f.clk.Advance(time.Minute + 10*time.Second + 2*time.Minute) // its window and the grace are over
	waitFor(t, "the broadcast logs", func() bool { return len(f.prov.packets(ebd.TypeEBMBrdLog)) == 2 })
	logs := f.prov.packets(ebd.TypeEBMBrdLog)
	if p := logs[1].Packet.EBMBrdLog.Items[0]; p.EBM.EBMID != provinceEBMID || p.BrdStateCode != ebd.BrdFailed || p.Coverage.CoverageRate != "0.0000" {
		t.Errorf("the province's message was logged as %+v (%+v)", p, p.Coverage)
	}
	l := logs[0].Packet.EBMBrdLog
	if len(l.Items) != 1 {
		t.Fatalf("log %+v", l)
	}
	it := l.Items[0]
	if want := upstream.EBMID(countyEBRID, b); it.EBM.EBMID != want || !ebd.ValidEBMID(want) {
		t.Errorf("EBMID %s, want %s", it.EBM.EBMID, want)
	}
	if got, err := f.db.GetBroadcast(context.Background(), b.ID); err != nil || got.EBMID != it.EBM.EBMID {
		t.Errorf("the broadcast was stored with EBMID %q (%v), reported as %s", got.EBMID, err, it.EBM.EBMID)
	}
	if it.BrdStateCode != ebd.BrdSucceeded || it.Coverage == nil || it.Coverage.CoverageRate != "0.3333" || it.Coverage.AreaCode != east {
		t.Errorf("item %+v coverage %+v: want success, 1 of 3 villages, %s", it, it.Coverage, east)
	}
	eastID, _ := ebd.TerminalEBRID(east, 1)
	if it.ResBrdInfo == nil || len(it.ResBrdInfo.Items) != 2 || it.ResBrdInfo.Items[0].EBRID != eastID || it.ResBrdInfo.Items[0].BrdStateCode != ebd.BrdSucceeded ||
		it.ResBrdInfo.Items[1].BrdStateCode != ebd.BrdFailed {
		t.Errorf("per terminal %+v", it.ResBrdInfo)
	}
	// Logged once, however long the reporter keeps looking.
	f.clk.Advance(time.Hour)
	n := len(f.prov.packets(ebd.TypeConnectionCheck))
	waitFor(t, "more heartbeats", func() bool { return len(f.prov.packets(ebd.TypeConnectionCheck)) >= n+3 })
	if n := len(f.prov.packets(ebd.TypeEBMBrdLog)); n != 2 {
		t.Errorf("%d logs of two broadcasts", n)
	}
}

// startReports is how many reports a run queues when it starts: this
// platform's inventory and state, its terminals' inventory and states.
const startReports = 4

// queued is what the queue holds and held, oldest first.
func queued(tb testing.TB, db *store.DB) []store.EBDOut {
	tb.Helper()
	all, err := db.EBDOutbound(context.Background(), false, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	slices.Reverse(all)
	return all
}

// checkDelivered: every queued packet reached the platform exactly once,
// in the order queued, and the queue says so.
func checkDelivered(tb testing.TB, f *fixture) {
	tb.Helper()
	waitFor(tb, "the queue to drain", func() bool {
		_, ok, err := f.db.NextEBDOut(context.Background())
		return err == nil && !ok
	})
	var got []string
	for _, p := range f.prov.packets("") {
		if p.Type != ebd.TypeConnectionCheck {
			got = append(got, p.EBDID)
		}
	}
	var want []string
	for _, e := range queued(tb, f.db) {
		want = append(want, e.EBDID)
		if e.ResultCode != ebd.ResultOK || e.SentAt.IsZero() {
			tb.Errorf("packet %s: result %d, sent %v", e.EBDID, e.ResultCode, e.SentAt)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		tb.Fatalf("the platform got\n%v\nthe county queued\n%v", got, want)
	}
}

// TestUnreachable: while the platform cannot be reached, answers with a
// key the county does not trust, or refuses the county's signature (its
// certificate not installed yet), reports wait in the queue; once it is
// back every one arrives, once, in order.
func TestUnreachable(t *testing.T) {
	for _, mode := range []string{"503", "drop", "unsigned", "badsig"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			f.prov.mode.Store(mode)
			f.presence(t, east, api.Online)
			b := f.broadcast(t)
			f.report(t, east, 1, api.EventFinished, b)
			r, _ := f.start(t, nil)
			waitFor(t, "start reports queued", func() bool { return len(queued(t, f.db)) == startReports })
			f.presence(t, west, api.Online)
			f.presence(t, east, api.Offline)
			f.clk.Advance(time.Hour)
			waitFor(t, "state changes and the log queued", func() bool {
				q := queued(t, f.db)
				return len(q) >= startReports+2 && q[len(q)-1].Type == ebd.TypeEBMBrdLog
			})
			waitFor(t, "retries", func() bool { q := queued(t, f.db); return q[0].Attempts >= 3 })
			if len(f.prov.packets("")) != 0 {
				t.Fatalf("packets got through a platform that was down: %v", f.prov.packets(""))
			}
			f.prov.mu.Lock()
			untrusted := f.prov.untrusted
			f.prov.mu.Unlock()
			if (mode == "unsigned") != (untrusted > 0) {
				t.Fatalf("%d packets reached the platform whose answers are not trusted", untrusted)
			}
			if s := r.Status(); s.LastHeartbeatOK || s.LastError == "" {
				t.Errorf("status while down: %+v", s)
			}
			f.prov.mode.Store("up")
			checkDelivered(t, f)
			if q := queued(t, f.db); q[0].Type != ebd.TypeEBRPSInfo || q[1].Type != ebd.TypeEBRPSState || q[2].Type != ebd.TypeEBRDTInfo || q[3].Type != ebd.TypeEBRDTState {
				t.Errorf("queue %v", q)
			}
		})
	}
}

// TestRestart: reports queued while the platform was down are sent by the
// next run of the controller, on the same database.
func TestRestart(t *testing.T) {
	f := newFixture(t)
	f.prov.mode.Store("503")
	f.presence(t, east, api.Online)
	_, stop := f.start(t, nil)
	waitFor(t, "start reports queued", func() bool { return len(queued(t, f.db)) == startReports })
	f.presence(t, east, api.Offline)
	waitFor(t, "a state change queued", func() bool { return len(queued(t, f.db)) == startReports+1 })
	stop()
	before := queued(t, f.db)
	f.db.Close()

	f.open(t)
	f.prov.mode.Store("up")
	f.start(t, nil)
	waitFor(t, "the new run's start reports", func() bool { return len(queued(t, f.db)) >= 2*startReports+1 })
	checkDelivered(t, f)
	after := queued(t, f.db)
	for i, e := range before {
		if after[i].EBDID != e.EBDID {
			t.Fatalf("packet %d was %s before the restart, %s after", i, e.EBDID, after[i].EBDID)
		}
	}
}

// TestRunEnds: Run returns when its context ends, even while a post is
// hanging.
func TestRunEnds(t *testing.T) {
	f := newFixture(t)
	hang := make(chan struct{})
	defer close(hang)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices the client going away
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	_, stop := f.start(t, func(o *upstream.Options) { o.Upstream = srv.URL })
	waitFor(t, "start reports queued", func() bool { return len(queued(t, f.db)) == startReports })
	stop()
}

var _ chain.Requests = (*upstream.Reporter)(nil)

// TestRequested: what the upper platform asks for (through the inbound
// door) is queued and sent: a message's state, the terminals' states,
// the broadcast log of a period.
func TestRequested(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.presence(t, east, api.Online)
	const provinceEBMID = "010211000000000001202603010007"
	b := f.broadcast(t, provinceEBMID)
	f.report(t, east, 1, api.EventStarted, b)
	r, _ := f.start(t, nil)
	waitFor(t, "the start reports", func() bool { return len(f.prov.packets(ebd.TypeEBRDTState)) == 1 })

	ask := func(p *ebd.Packet) {
		t.Helper()
		if err := r.Requested(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	ask(&ebd.Packet{EBDType: ebd.TypeEBMStateRequest, EBMStateRequest: &ebd.EBMStateRequest{EBM: &ebd.EBM{EBMID: provinceEBMID}}})
	waitFor(t, "the state response", func() bool { return len(f.prov.packets(ebd.TypeEBMStateResponse)) == 1 })
	sr := f.prov.packets(ebd.TypeEBMStateResponse)[0].Packet.EBMStateResponse
	if sr.EBM.EBMID != provinceEBMID || sr.BrdStateCode != ebd.BrdInProgress || sr.Coverage == nil || sr.Coverage.CoverageRate != "0.0000" {
		t.Errorf("state response %+v %+v", sr, sr.Coverage)
	}
	if err := r.Requested(ctx, &ebd.Packet{EBDType: ebd.TypeEBMStateRequest, EBMStateRequest: &ebd.EBMStateRequest{EBM: &ebd.EBM{EBMID: "010211000000000001202603019999"}}}); err == nil {
		t.Error("a state request for an unknown message was not refused")
	}

	ask(&ebd.Packet{EBDType: ebd.TypeOMDRequest, OMDRequest: &ebd.OMDRequest{OMDType: ebd.TypeEBRDTState}})
	waitFor(t, "the requested states", func() bool { return len(f.prov.packets(ebd.TypeEBRDTState)) == 2 })

	ask(&ebd.Packet{EBDType: ebd.TypeOMDRequest, OMDRequest: &ebd.OMDRequest{OMDType: ebd.TypeEBMBrdLog}})
	waitFor(t, "the requested log", func() bool { return len(f.prov.packets(ebd.TypeEBMBrdLog)) == 1 })
	l := f.prov.packets(ebd.TypeEBMBrdLog)[0].Packet.EBMBrdLog
	if len(l.Items) != 1 || l.Items[0].EBM.EBMID != provinceEBMID {
		t.Errorf("log %+v", l)
	}
	ask(&ebd.Packet{EBDType: ebd.TypeOMDRequest, OMDRequest: &ebd.OMDRequest{OMDType: ebd.TypeEBRSTInfo}}) // no stations here: acknowledged only
}
