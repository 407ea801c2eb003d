// Package upstream reports this county platform to the upper platform of
// the national emergency-broadcast chain (GY/T 384, docs/ebd.md): a
// ConnectionCheck heartbeat every HeartbeatEvery; this platform itself
// (EBRPSInfo, EBRPSState) on start and on request; the village boxes as
// terminals (EBRDTInfo) and their states (EBRDTState) on start, whenever
// they change and on request; and a broadcast log (EBMBrdLog) for every
// broadcast once it has ended, with the coverage it reached.
//
// Every report is signed and queued in the database before it is sent
// (store.EnqueueEBD), so none is lost across a restart; one sender POSTs
// the oldest, reads the platform's EBDResponse, and retries with
// exponential back-off while the platform cannot be reached. Nothing here
// is on the path of a local broadcast: a province that is down only makes
// the queue longer. Heartbeats are not queued: a late one says nothing.
package upstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// Store is what the reporter uses of the database.
type Store interface {
	Version() uint64
	VillageStates(ctx context.Context) ([]store.VillageState, error)
	TerminalCodes(ctx context.Context) (map[string]string, error)
	UnreportedBroadcasts(ctx context.Context, since time.Time, limit int) ([]store.Broadcast, error)
	BroadcastProgresses(ctx context.Context, lo, hi int64) (map[int64]store.BroadcastProgress, error)
	BroadcastEvents(ctx context.Context, broadcastID int64, test bool) ([]store.Event, error)
	BroadcastConfirmations(ctx context.Context, broadcastID int64) ([]store.Confirmation, error)
	EnqueueEBD(ctx context.Context, typ string, broadcastID int64, ebmid string, build func(seq int64) (string, []byte, error)) (store.EBDOut, bool, error)
	NextEBDOut(ctx context.Context) (store.EBDOut, bool, error)
	Broadcasts(ctx context.Context, limit int) ([]store.Broadcast, error)
	BroadcastByEBMID(ctx context.Context, ebmid string) (store.Broadcast, error)
	EBDOutSent(ctx context.Context, seq int64, resultCode int, resultDesc string) error
	EBDOutFailed(ctx context.Context, seq int64, cause string, next time.Time) error
}

// Defaults of Options.
const (
	// DefaultHeartbeatEvery is how often a ConnectionCheck is sent. The
	// standard's text is not public and the public implementations
	// disagree: Comtom's county server [S1] schedules its heartbeat job
	// every 2 minutes, Gospell's [S2] every 5 seconds (docs/ebd.md). A
	// minute lets the province see a dead link within a couple of
	// minutes without a packet every few seconds.
	DefaultHeartbeatEvery = time.Minute
	DefaultPollEvery      = 5 * time.Second
	DefaultRetryMin       = 2 * time.Second
	DefaultRetryMax       = 5 * time.Minute
	// DefaultReportWithin: broadcasts made this long before now are still
	// logged upward when they end (or when the reporter first runs).
	DefaultReportWithin = 7 * 24 * time.Hour
	DefaultTimeout      = 30 * time.Second
	// DefaultName names this platform in its EBRPSInfo when Options.Name
	// is empty.
	DefaultName = "村响应急广播平台"
)

// Options configure a Reporter. Store, Identity, EBRID and Upstream are
// required.
type Options struct {
	Store    Store
	Identity *ebd.Identity
	// EBRID is this platform's resource code; Dest the upper platform's
	// (optional: some platforms' reports carry no DEST).
	EBRID string
	Dest  string
	// Upstream is the URL the upper platform takes packets at.
	Upstream string
	// Name is this platform's name in its EBRPSInfo (DefaultName if "");
	// URL, if set, is where the upper platform sends it packets (its
	// POST /api/v1/ebd).
	Name, URL string
	// Trust, if set, holds the upper platform's certificates: its answers
	// must be signed by one of them, or the packet counts as not sent.
	Trust  *ebd.TrustStore
	HTTP   *http.Client // default: a client with DefaultTimeout
	Logger *slog.Logger
	Now    func() time.Time
	Rand   io.Reader // for signatures; default crypto/rand

	HeartbeatEvery time.Duration
	// PollEvery is how often the store is looked at for changed boxes and
	// ended broadcasts (a look costs an atomic load unless something
	// changed, or a broadcast is waiting to end).
	PollEvery time.Duration
	// RetryMin and RetryMax bound the back-off between attempts to send
	// the same packet: RetryMin, doubling, at most RetryMax.
	RetryMin, RetryMax time.Duration
	ReportWithin       time.Duration
}

// Reporter sends this platform's reports to the upper platform.
type Reporter struct {
	o    Options
	log  *slog.Logger
	lim  ebd.Limits
	wake chan struct{} // the sender: something was queued, or the link is back

	mu        sync.Mutex // the last reports queued, for "on change"
	lastInfo  map[string]string
	lastState map[string]string

	statusMu sync.Mutex
	status   Status
}

// Status is the state of the link, for the console.
type Status struct {
	HeartbeatSent   time.Time // when the latest heartbeat was sent
	LastHeartbeat   time.Time // the last heartbeat the platform answered
	LastHeartbeatOK bool      // whether the latest heartbeat was answered
	LastError       string    // the last failure to reach the platform
	LastErrorAt     time.Time
	LastSent        time.Time // the last queued packet the platform answered
}

// New checks o and makes a Reporter.
func New(o Options) (*Reporter, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("upstream: no store")
	case o.Identity == nil:
		return nil, errors.New("upstream: no identity to sign with")
	case !ebd.ValidEBRID(o.EBRID):
		return nil, fmt.Errorf("upstream: %q is not a resource code (18 or 23 digits)", o.EBRID)
	case o.Dest != "" && !ebd.ValidEBRID(o.Dest):
		return nil, fmt.Errorf("upstream: upper platform %q is not a resource code (18 or 23 digits)", o.Dest)
	}
	u, err := url.Parse(o.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream: %q is not an http(s) URL", o.Upstream)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: DefaultTimeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.URL != "" {
		if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("upstream: this platform's URL %q is not an http(s) URL", o.URL)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatEvery, DefaultHeartbeatEvery)
	def(&o.PollEvery, DefaultPollEvery)
	def(&o.RetryMin, DefaultRetryMin)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.ReportWithin, DefaultReportWithin)
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	return &Reporter{
		o: o, log: o.Logger.With("component", "upstream"), wake: make(chan struct{}, 1),
		// An answer is a small packet: no audio.
		lim: ebd.Limits{MaxFiles: 4, MaxFile: 1 << 20, MaxTotal: 2 << 20},
	}, nil
}

// Status returns the state of the link.
func (r *Reporter) Status() Status {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	return r.status
}

// Run reports until ctx ends; every goroutine it starts has ended when it
// returns.
func (r *Reporter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.heartbeats(ctx) }()
	go func() { defer wg.Done(); r.watch(ctx) }()
	go func() { defer wg.Done(); r.send(ctx) }()
	wg.Wait()
	return nil
}

func (r *Reporter) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Request queues a fresh full report of type typ (ebd.TypeEBRDTInfo,
// ebd.TypeEBRDTState, ebd.TypeEBRPSInfo or ebd.TypeEBRPSState), as an
// OMDRequest from the upper platform asks.
func (r *Reporter) Request(ctx context.Context, typ string) error {
	switch typ {
	case ebd.TypeEBRPSInfo, ebd.TypeEBRPSState:
		return r.queuePlatform(ctx, typ)
	case ebd.TypeEBRDTInfo, ebd.TypeEBRDTState:
	default:
		return fmt.Errorf("upstream: cannot report %q on request", typ)
	}
	states, codes, err := r.boxes(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if typ == ebd.TypeEBRDTInfo {
		_, err = r.queueInfo(ctx, states, codes, true)
	} else {
		_, err = r.queueState(ctx, states, codes, true)
	}
	return err
}

// Requested answers what the upper platform asked for (chain.Requests):
// an EBMStateRequest with the message's EBMStateResponse; an OMDRequest
// for EBRDTInfo, EBRDTState, EBRPSInfo or EBRPSState with a full report
// (EBRPS: this platform itself), for EBMBrdLog with the log of the
// broadcasts made in the period it names (the last day if it names
// none). Other inventories (stations, adapters, broadcast systems: a
// county platform of Cunxiang has none) are only acknowledged.
func (r *Reporter) Requested(ctx context.Context, p *ebd.Packet) error {
	switch {
	case p.EBMStateRequest != nil && p.EBMStateRequest.EBM != nil:
		ebmid := p.EBMStateRequest.EBM.EBMID
		b, err := r.o.Store.BroadcastByEBMID(ctx, ebmid)
		if err != nil {
			return err
		}
		return r.ReportState(ctx, b, ebmid)
	case p.OMDRequest != nil:
		switch p.OMDRequest.OMDType {
		case ebd.TypeEBRDTInfo, ebd.TypeEBRDTState, ebd.TypeEBRPSInfo, ebd.TypeEBRPSState:
			return r.Request(ctx, p.OMDRequest.OMDType)
		case ebd.TypeEBMBrdLog:
			return r.logPeriod(ctx, p.OMDRequest.Params)
		}
		r.log.Info("the upper platform asked for a report Cunxiang does not make", "omd_type", p.OMDRequest.OMDType)
	}
	return nil
}

// logPeriod queues one broadcast log of the broadcasts made in the
// period params names (the last day if none), as they stand now.
func (r *Reporter) logPeriod(ctx context.Context, params *ebd.Params) error {
	now := r.o.Now()
	from, to := now.Add(-24*time.Hour), now
	if params != nil {
		if t, err := ebd.ParseTime(params.RptStartTime); err == nil {
			from = t
		}
		if t, err := ebd.ParseTime(params.RptEndTime); err == nil {
			to = t
		}
	}
	bs, err := r.o.Store.Broadcasts(ctx, 1000)
	if err != nil {
		return err
	}
	states, codes, err := r.boxes(ctx)
	if err != nil {
		return err
	}
	var items []ebd.EBMBrdItem
	for i := len(bs) - 1; i >= 0; i-- { // oldest first
		b := bs[i]
		if b.CreatedAt.Before(from) || b.CreatedAt.After(to) {
			continue
		}
		it, err := r.brdItem(ctx, b, EBMID(r.o.EBRID, b), states, codes, now, false)
		if err != nil {
			return err
		}
		items = append(items, it)
	}
	_, err = r.queue(ctx, ebd.TypeEBMBrdLog, 0, "", func(p *ebd.Packet, now time.Time) {
		p.EBMBrdLog = &ebd.EBMBrdLog{Params: &ebd.Params{RptStartTime: ebd.FormatTime(from), RptEndTime: ebd.FormatTime(to), RptType: ebd.RptFull}, Items: items}
	})
	return err
}

// ReportState queues an EBMStateResponse for broadcast b, reported as the
// message ebmid, as an EBMStateRequest from the upper platform asks.
func (r *Reporter) ReportState(ctx context.Context, b store.Broadcast, ebmid string) error {
	states, codes, err := r.boxes(ctx)
	if err != nil {
		return err
	}
	it, err := r.brdItem(ctx, b, ebmid, states, codes, r.o.Now(), false)
	if err != nil {
		return err
	}
	_, err = r.queue(ctx, ebd.TypeEBMStateResponse, 0, "", func(p *ebd.Packet, now time.Time) {
		p.EBMStateResponse = &ebd.EBMStateResponse{RptTime: ebd.FormatTime(now), EBM: it.EBM,
			BrdStateCode: it.BrdStateCode, BrdStateDesc: it.BrdStateDesc, Coverage: it.Coverage}
	})
	return err
}

// queue signs a packet of type typ, whose body fill writes, and queues
// it; its EBDID is made from the queue's sequence number (business
// packets; the answers the inbound side makes use numbers from the clock
// in milliseconds, 10^15 and above, which the queue never reaches).
func (r *Reporter) queue(ctx context.Context, typ string, broadcastID int64, ebmid string, fill func(p *ebd.Packet, now time.Time)) (bool, error) {
	now := r.o.Now()
	_, queued, err := r.o.Store.EnqueueEBD(ctx, typ, broadcastID, ebmid, func(seq int64) (string, []byte, error) {
		id := ebd.NewEBDID(ebd.KindBusiness, r.o.EBRID, uint64(seq))
		p := ebd.Header(typ, id, r.o.EBRID, r.o.Dest, now)
		fill(&p, now)
		data, err := r.o.Identity.Pack(r.o.Rand, &p, nil, now)
		return id, data, err
	})
	if err != nil {
		return false, fmt.Errorf("queue %s: %w", typ, err)
	}
	if queued {
		r.kick()
	}
	return queued, nil
}

// heartbeats sends a ConnectionCheck every HeartbeatEvery, the first at
// once. When the platform answers again after a failure, the sender is
// woken so the queue drains without waiting out its back-off.
func (r *Reporter) heartbeats(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	wasOK := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.o.Now()
		r.statusMu.Lock()
		r.status.HeartbeatSent = now
		r.statusMu.Unlock()
		p := ebd.Header(ebd.TypeConnectionCheck, ebd.NewEBDID(ebd.KindHeartbeat, r.o.EBRID, uint64(now.UnixMilli())), r.o.EBRID, r.o.Dest, now)
		p.RelatedEBD = &ebd.RelatedEBD{}
		p.ConnectionCheck = &ebd.ConnectionCheck{RptTime: ebd.FormatTime(now)}
		data, err := r.o.Identity.Pack(r.o.Rand, &p, nil, now)
		if err == nil {
			var code int
			var desc string
			if code, desc, err = r.post(ctx, p.EBDID, data); err == nil {
				err = notAVerdict(code, desc)
			}
		}
		r.statusMu.Lock()
		r.status.LastHeartbeatOK = err == nil
		if err == nil {
			r.status.LastHeartbeat = r.o.Now()
		} else {
			r.status.LastError, r.status.LastErrorAt = err.Error(), r.o.Now()
		}
		r.statusMu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil && wasOK:
			r.log.Warn("heartbeat to the upper platform failed", "err", err)
		case err == nil && !wasOK:
			r.log.Info("the upper platform answers heartbeats again")
			r.kick()
		}
		wasOK = err == nil
		t.Reset(r.o.HeartbeatEvery)
	}
}

// send POSTs queued packets, oldest first, one at a time: a packet that
// fails stays at the head (order is kept) and is tried again after a
// back-off that doubles from RetryMin up to RetryMax.
func (r *Reporter) send(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	// wait waits d, or until woken if wakeable; ok is false when ctx ended.
	wait := func(d time.Duration, wakeable bool) (timedOut, ok bool) {
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(d)
		wk := r.wake
		if !wakeable {
			wk = nil
		}
		select {
		case <-ctx.Done():
			return false, false
		case <-t.C:
			return true, true
		case <-wk:
			return false, true
		}
	}
	for ctx.Err() == nil {
		e, ok, err := r.o.Store.NextEBDOut(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("read the upstream queue", "err", err)
			}
			if _, ok := wait(r.o.RetryMin, false); !ok {
				return
			}
			continue
		}
		if !ok {
			if _, ok := wait(r.o.PollEvery, true); !ok {
				return
			}
			continue
		}
		if d := e.NextAttemptAt.Sub(r.o.Now()); d > 0 {
			// The back-off is waited out on the real timer (Now may be a
			// test's clock). A kick ends it early: if the link is back
			// (a heartbeat was answered) the packet goes at once,
			// otherwise the head is read again and waited for anew.
			timedOut, ok := wait(d, true)
			if !ok {
				return
			}
			if !timedOut && !r.linkUp() {
				continue
			}
		}
		code, desc, err := r.post(ctx, e.EBDID, e.Packet)
		if ctx.Err() != nil {
			return // not the packet's fault: it is tried again on the next run
		}
		if err == nil {
			err = notAVerdict(code, desc)
		}
		if err != nil {
			back := r.o.RetryMin << min(e.Attempts, 30)
			if back > r.o.RetryMax || back <= 0 {
				back = r.o.RetryMax
			}
			if e.Attempts == 0 {
				r.log.Warn("report to the upper platform not delivered; retrying", "type", e.Type, "ebdid", e.EBDID, "err", err)
			}
			r.statusMu.Lock()
			r.status.LastError, r.status.LastErrorAt = err.Error(), r.o.Now()
			r.statusMu.Unlock()
			if err := r.o.Store.EBDOutFailed(ctx, e.Seq, err.Error(), r.o.Now().Add(back)); err != nil && ctx.Err() == nil {
				r.log.Error("record a failed report", "ebdid", e.EBDID, "err", err)
			}
			continue
		}
		if code != ebd.ResultOK && code != ebd.ResultUnprocessed {
			r.log.Warn("the upper platform refused a report", "type", e.Type, "ebdid", e.EBDID, "result", code, "desc", desc)
		}
		if err := r.o.Store.EBDOutSent(ctx, e.Seq, code, desc); err != nil {
			if ctx.Err() == nil {
				r.log.Error("record a sent report", "ebdid", e.EBDID, "err", err)
				wait(r.o.RetryMin, false)
			}
			continue
		}
		r.statusMu.Lock()
		r.status.LastSent = r.o.Now()
		r.statusMu.Unlock()
	}
}

// notAVerdict is an error for the answers that say nothing about the
// packet: 4, the platform does not trust our certificate yet (it is
// installed by hand), and 5, it failed itself. A report so answered waits
// and is retried, as for an unreachable platform.
func notAVerdict(code int, desc string) error {
	if code == ebd.ResultBadSig || code == ebd.ResultOther {
		return fmt.Errorf("the upper platform answered %d: %s", code, desc)
	}
	return nil
}

func (r *Reporter) linkUp() bool {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	return r.status.LastHeartbeatOK
}

// post sends one signed archive and reads the platform's EBDResponse,
// signed by a trusted certificate if Trust is set. A packet counts as
// delivered when the platform answered 0 (received), 1 (accepted), 2
// (unreadable) or 3 (incomplete): sending it again would change nothing.
// 4 (signature refused: our certificate is not installed there yet) and
// 5 (its own failure) are retried like an unreachable platform.
func (r *Reporter) post(ctx context.Context, ebdid string, data []byte) (code int, desc string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.o.Upstream, bytes.NewReader(data))
	if err != nil {
		return 0, "", fmt.Errorf("post %s: %w", ebdid, err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("post %s: %w", ebdid, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, r.lim.MaxTotal+1<<16)
	if resp.StatusCode/100 != 2 {
		io.Copy(io.Discard, body)
		return 0, "", fmt.Errorf("post %s: the upper platform answered %s", ebdid, resp.Status)
	}
	var p *ebd.Packet
	if r.o.Trust != nil {
		in, err := ebd.Receive(body, r.lim, r.o.Trust, r.o.Now())
		if err != nil {
			return 0, "", fmt.Errorf("answer to %s: %w", ebdid, err)
		}
		p = in.Packet
	} else {
		b, err := ebd.ReadTar(body, r.lim)
		if err != nil {
			return 0, "", fmt.Errorf("answer to %s: %w", ebdid, err)
		}
		if p, err = ebd.Decode(ebd.PacketName(b.EBDID), b.Packet); err != nil {
			return 0, "", fmt.Errorf("answer to %s: %w", ebdid, err)
		}
	}
	if p.EBDResponse == nil {
		return 0, "", fmt.Errorf("answer to %s: a %s packet, not an EBDResponse", ebdid, p.EBDType)
	}
	if p.RelatedEBD != nil && p.RelatedEBD.EBDID != "" && p.RelatedEBD.EBDID != ebdid {
		return 0, "", fmt.Errorf("answer to %s: it answers %s", ebdid, p.RelatedEBD.EBDID)
	}
	code, err = strconv.Atoi(p.EBDResponse.ResultCode)
	if err != nil {
		return 0, "", fmt.Errorf("answer to %s: result code %q", ebdid, p.EBDResponse.ResultCode)
	}
	return code, p.EBDResponse.ResultDesc, nil
}

// watch queues this platform's inventory and state on start, the
// terminal inventory and states on start and whenever they change, and a
// broadcast log for every broadcast that ended.
func (r *Reporter) watch(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	var seen uint64
	first, platform := true, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if v := r.o.Store.Version(); first || v != seen {
			var err error
			if !platform {
				// The platform before its terminals, which name it.
				if err = r.queuePlatform(ctx, ebd.TypeEBRPSInfo); err == nil {
					err = r.queuePlatform(ctx, ebd.TypeEBRPSState)
				}
				platform = err == nil
			}
			if err == nil {
				err = r.boxesChanged(ctx, first)
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Error("report terminals upward", "err", err)
			} else {
				seen, first = v, false
			}
		}
		if err := r.logEnded(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("log broadcasts upward", "err", err)
		}
		t.Reset(r.o.PollEvery)
	}
}

func (r *Reporter) boxes(ctx context.Context) ([]store.VillageState, map[string]string, error) {
	states, err := r.o.Store.VillageStates(ctx)
	if err != nil {
		return nil, nil, err
	}
	codes, err := r.o.Store.TerminalCodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	return states, codes, nil
}

func (r *Reporter) boxesChanged(ctx context.Context, force bool) error {
	states, codes, err := r.boxes(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.queueInfo(ctx, states, codes, force); err != nil {
		return err
	}
	_, err = r.queueState(ctx, states, codes, force)
	return err
}

// queuePlatform queues this platform's own inventory item (EBRPSInfo:
// its resource code, name, the URL it takes packets at, its upper
// platform) or state (EBRPSState: running, since it is answering).
func (r *Reporter) queuePlatform(ctx context.Context, typ string) error {
	it := ebd.Resource{EBRID: r.o.EBRID}
	if typ == ebd.TypeEBRPSInfo {
		it.RptType, it.EBRName, it.URL = ebd.OpSync, r.o.Name, r.o.URL
		if r.o.Dest != "" {
			it.RelatedEBRPS = &ebd.Related{EBRID: r.o.Dest}
		}
	} else {
		it.StateCode, it.StateDesc = ebd.StateOn, "运行正常 (running)"
	}
	_, err := r.queue(ctx, typ, 0, "", func(p *ebd.Packet, now time.Time) {
		it.RptTime = ebd.FormatTime(now)
		list := &ebd.EBRPSList{Params: &ebd.Params{RptType: ebd.RptFull}, Items: []ebd.Resource{it}}
		if typ == ebd.TypeEBRPSInfo {
			p.EBRPSInfo = list
		} else {
			p.EBRPSState = list
		}
	})
	return err
}

// terminalID is the resource code of village v's box: the province's, or
// the derived one.
func terminalID(v store.VillageState, codes map[string]string) (string, error) {
	if c := codes[v.Code]; c != "" {
		return c, nil
	}
	return ebd.VillageTerminalEBRID(v.Code)
}

// terminals lists the villages that have (or are meant to have) a box.
func terminals(states []store.VillageState) []store.VillageState {
	var out []store.VillageState
	for _, v := range states {
		if v.Device == playlists.DeviceAgent {
			out = append(out, v)
		}
	}
	return out
}

// queueInfo queues the inventory if it differs from the last one queued
// (or force): every box as a terminal, and a Delete for those gone since.
func (r *Reporter) queueInfo(ctx context.Context, states []store.VillageState, codes map[string]string, force bool) (bool, error) {
	cur := map[string]string{}
	var items []ebd.Resource
	for _, v := range terminals(states) {
		id, err := terminalID(v, codes)
		if err != nil {
			r.log.Warn("a village box has no resource code", "village", v.Code, "err", err)
			continue
		}
		it := ebd.Resource{RptType: ebd.OpSync, RelatedEBRPS: &ebd.Related{EBRID: r.o.EBRID}, EBRID: id,
			EBRName: v.Name, Address: strings.TrimSpace(v.Township + v.Name), AreaCode: v.Code,
			Longitude: strconv.FormatFloat(v.Lon, 'f', 6, 64), Latitude: strconv.FormatFloat(v.Lat, 'f', 6, 64)}
		cur[id] = strings.Join([]string{it.EBRName, it.Address, it.AreaCode, it.Longitude, it.Latitude}, "\x00")
		items = append(items, it)
	}
	for id := range r.lastInfo {
		if _, ok := cur[id]; !ok {
			items = append(items, ebd.Resource{RptType: ebd.OpDelete, EBRID: id})
		}
	}
	if !force && sameMap(cur, r.lastInfo) {
		return false, nil
	}
	queued, err := r.queue(ctx, ebd.TypeEBRDTInfo, 0, "", func(p *ebd.Packet, now time.Time) {
		for i := range items {
			items[i].RptTime = ebd.FormatTime(now)
		}
		p.EBRDTInfo = &ebd.EBRDTList{Params: &ebd.Params{RptType: ebd.RptFull}, Items: items}
	})
	if err == nil {
		r.lastInfo = cur
	}
	return queued, err
}

// TerminalState is the state a box is reported in: on when online, off
// when it said it went offline (or its connection dropped), fault when it
// is expected but was never enrolled, was revoked, or was never heard
// from.
func TerminalState(v store.VillageState) (code, desc string) {
	a := v.Agent
	switch {
	case a == nil:
		return ebd.StateFault, "未注册广播盒 (no box enrolled)"
	case a.Revoked:
		return ebd.StateFault, "广播盒已被吊销 (box revoked)"
	case a.Presence == "online":
		return ebd.StateOn, "在线 (online)"
	case a.Presence == "offline":
		return ebd.StateOff, "离线 (offline)"
	}
	return ebd.StateFault, "广播盒从未上线 (never heard from)"
}

// queueState queues every terminal's state if any changed since the last
// report queued (or force).
func (r *Reporter) queueState(ctx context.Context, states []store.VillageState, codes map[string]string, force bool) (bool, error) {
	cur := map[string]string{}
	var items []ebd.Resource
	for _, v := range terminals(states) {
		id, err := terminalID(v, codes)
		if err != nil {
			continue
		}
		code, desc := TerminalState(v)
		cur[id] = code
		items = append(items, ebd.Resource{EBRID: id, StateCode: code, StateDesc: desc})
	}
	if !force && sameMap(cur, r.lastState) {
		return false, nil
	}
	queued, err := r.queue(ctx, ebd.TypeEBRDTState, 0, "", func(p *ebd.Packet, now time.Time) {
		for i := range items {
			items[i].RptTime = ebd.FormatTime(now)
		}
		p.EBRDTState = &ebd.EBRDTList{Params: &ebd.Params{RptType: ebd.RptFull}, Items: items}
	})
	if err == nil {
		r.lastState = cur
	}
	return queued, err
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// EBMID is the message ID broadcast b is reported upward as: its own
// (the upper platform's, for a broadcast made from its message; or the
// one stored when it was first reported), or else one made
// deterministically from its id and the day it was made (Beijing time),
// so that every report of it, before and after a restart, names the same
// message: this platform's EBRID + yyyyMMdd + the id's last 4 digits
// (unique unless more than 10,000 broadcasts are made in one day). The
// log stores it as the broadcast's EBMID (store.EnqueueEBD).
func EBMID(ebrid string, b store.Broadcast) string {
	if b.EBMID != "" {
		return b.EBMID
	}
	return ebd.NewEBMID(ebrid, b.CreatedAt, int(b.ID%10000))
}

// logEnded queues a broadcast log for every broadcast that ended since it
// was made (within ReportWithin) and was not logged yet.
func (r *Reporter) logEnded(ctx context.Context) error {
	now := r.o.Now()
	bs, err := r.o.Store.UnreportedBroadcasts(ctx, now.Add(-r.o.ReportWithin), 500)
	if err != nil || len(bs) == 0 {
		return err
	}
	lo, hi := bs[0].ID, bs[len(bs)-1].ID
	progress, err := r.o.Store.BroadcastProgresses(ctx, lo, hi)
	if err != nil {
		return err
	}
	var states []store.VillageState
	var codes map[string]string
	for _, b := range bs {
		if states == nil {
			if states, codes, err = r.boxes(ctx); err != nil {
				return err
			}
		}
		if !ended(b, progress[b.ID], broadcasts.Targeted(b.Targets, states), now) {
			continue
		}
		ebmid := EBMID(r.o.EBRID, b)
		it, err := r.brdItem(ctx, b, ebmid, states, codes, now, true)
		if err != nil {
			return err
		}
		if _, err := r.queue(ctx, ebd.TypeEBMBrdLog, b.ID, ebmid, func(p *ebd.Packet, now time.Time) {
			p.EBMBrdLog = &ebd.EBMBrdLog{Params: &ebd.Params{RptStartTime: ebd.FormatTime(b.CreatedAt), RptEndTime: ebd.FormatTime(now)},
				Items: []ebd.EBMBrdItem{it}}
		}); err != nil {
			return err
		}
	}
	return nil
}

// ended reports whether broadcast b is over, so that its coverage is
// final: its window (until the last box that may start it has finished,
// plus coverage.Grace) is over; or it was rejected; or cancelled a
// Grace ago, or before any box could have it; or every targeted village has a box and every box reported
// its end (villages without a box may be confirmed by hand until the
// window ends).
func ended(b store.Broadcast, p store.BroadcastProgress, villages []coverage.Village, now time.Time) bool {
	switch {
	case !now.Before(b.ExpiresAt.Add(b.Duration() + coverage.Grace)):
		return true
	case b.State == api.BroadcastRejected:
		return true
	case b.State == api.BroadcastCancelled:
		// Cancelled before any box could have it (held for its start,
		// or awaiting approval): nothing more will come. Else boxes
		// that had started it have a Grace to report.
		return !b.WasReleased() || !now.Before(b.CancelledAt.Add(coverage.Grace))
	case b.State != api.BroadcastReleased || len(villages) == 0:
		return false
	}
	for _, v := range villages {
		if v.Device != playlists.DeviceAgent {
			return false
		}
	}
	return p.Final >= len(villages)
}

// brdItem is broadcast b's line of a broadcast log (and its state): the
// state, the coverage rate (villages played / villages targeted, a ratio
// 0-1 as docs/ebd.md says Cunxiang sends), the areas reached (the codes
// of the villages that played it) and each terminal's part. final says
// the broadcast has ended: its state is then success, failure or
// cancelled, whatever may still be confirmed by hand.
func (r *Reporter) brdItem(ctx context.Context, b store.Broadcast, ebmid string, states []store.VillageState, codes map[string]string, now time.Time, final bool) (ebd.EBMBrdItem, error) {
	events, err := r.o.Store.BroadcastEvents(ctx, b.ID, b.Test)
	if err != nil {
		return ebd.EBMBrdItem{}, err
	}
	confs, err := r.o.Store.BroadcastConfirmations(ctx, b.ID)
	if err != nil {
		return ebd.EBMBrdItem{}, err
	}
	rep := broadcasts.Coverage(b, states, events, confs, now, nil)
	rate := 0.0
	if rep.Targeted > 0 {
		rate = float64(rep.Played) / float64(rep.Targeted)
	}
	byCode := map[string]store.VillageState{}
	for _, v := range states {
		byCode[v.Code] = v
	}
	// Each box's start and end, as it reported them: the first time it
	// began sounding it, and when it finished (or was cut off).
	started, ended := map[string]time.Time{}, map[string]time.Time{}
	for _, e := range events {
		switch e.Type {
		case api.EventStarted:
			if at, ok := started[e.Village]; !ok || e.At.Before(at) {
				started[e.Village] = e.At
			}
		case api.EventFinished, api.EventPartial:
			if e.At.After(ended[e.Village]) {
				ended[e.Village] = e.At
			}
		}
	}
	var reached []string
	var res []ebd.ResBrdItem
	for _, vs := range rep.Villages {
		if vs.Status == coverage.Played {
			reached = append(reached, vs.Code)
		}
		v := byCode[vs.Code]
		if v.Device != playlists.DeviceAgent {
			continue
		}
		id, err := terminalID(v, codes)
		if err != nil {
			continue
		}
		it := ebd.ResBrdItem{EBRID: id, BrdStateCode: villageBrdState(vs.Status)}
		if at, ok := started[vs.Code]; ok {
			it.StartTime = ebd.FormatTime(at)
			if end, ok := ended[vs.Code]; ok {
				it.EndTime = ebd.FormatTime(end)
			}
		}
		res = append(res, it)
	}
	state := ""
	if !final {
		progress, err := r.o.Store.BroadcastProgresses(ctx, b.ID, b.ID)
		if err != nil {
			return ebd.EBMBrdItem{}, err
		}
		state = broadcasts.State(b, progress[b.ID], coverage.Boxes(broadcasts.Targeted(b.Targets, states)), now)
	}
	code, desc := brdState(b, rep, final, state)
	it := ebd.EBMBrdItem{
		EBM:          &ebd.EBM{EBMID: ebmid},
		BrdStateCode: code, BrdStateDesc: desc,
		Coverage: &ebd.Coverage{CoverageRate: strconv.FormatFloat(rate, 'f', 4, 64), AreaCode: strings.Join(reached, ","),
			ResBrdStat: fmt.Sprintf("%d/%d", rep.Played, rep.Targeted)},
	}
	if len(res) > 0 {
		it.ResBrdInfo = &ebd.ResBrd{Items: res}
	}
	return it, nil
}

// brdState is the broadcast's BrdStateCode. An ended broadcast (final)
// was cancelled (5), failed (4: rejected, or no village played it) or
// succeeded (3: some village played it). One still running is in the
// state people see (broadcasts.State, from the boxes' reports): waiting
// (1) for approval or for boxes to start it, in progress (2), or already
// one of the ends.
func brdState(b store.Broadcast, rep coverage.Report, final bool, state string) (string, string) {
	switch {
	case b.State == api.BroadcastCancelled || state == broadcasts.StateCancelled:
		return ebd.BrdCancelled, "播发取消 (cancelled)"
	case b.State == api.BroadcastRejected || state == broadcasts.StateRejected:
		return ebd.BrdFailed, "本平台审批驳回 (rejected by an approver)"
	case !final && state == broadcasts.StatePending:
		return ebd.BrdWaiting, "等待审批 (waiting for approval)"
	case !final && state == broadcasts.StateScheduled:
		return ebd.BrdWaiting, "等待开始时间 (waiting for its start time)"
	case !final && state == broadcasts.StateSending:
		return ebd.BrdWaiting, "等待播发 (waiting)"
	case !final && state == broadcasts.StateInProgress:
		return ebd.BrdInProgress, fmt.Sprintf("播发中 %d/%d (in progress)", rep.Played, rep.Targeted)
	case rep.Played > 0:
		return ebd.BrdSucceeded, fmt.Sprintf("播发成功 %d/%d (played)", rep.Played, rep.Targeted)
	}
	return ebd.BrdFailed, "播发失败: 无村播放 (no village played it)"
}

// villageBrdState is one terminal's BrdStateCode.
func villageBrdState(status string) string {
	switch status {
	case coverage.Played:
		return ebd.BrdSucceeded
	case coverage.Cancelled:
		return ebd.BrdCancelled
	case coverage.Pending:
		return ebd.BrdWaiting
	}
	return ebd.BrdFailed
}
