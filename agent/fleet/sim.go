package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/identity"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
)

// SimOptions configures Simulate, the engine of `agent sim`. Controller,
// Dir, N and either Token (an admin API token) or Tokens are required.
type SimOptions struct {
	Controller string
	Token      string // admin API token: import, list villages, issue enrollment tokens
	Broker     string // optional broker override
	Dir        string // each box's data directory is Dir/<village>
	N          int
	// Import first imports N synthetic villages (device agent) through
	// the API; otherwise the sim runs the first N agent villages listed.
	Import bool
	// First skips the first First villages: with Import, the synthetic
	// villages are numbered from First; without, the first First agent
	// villages listed are left to others. Several sims, each with its own
	// First, share one county (one process holds only so many sockets).
	First int
	// Tokens, if set, are the villages to run and their enrollment
	// tokens, made beforehand: the sim then calls no admin API.
	Tokens map[string]string

	Offline           int           // boxes that start stopped, and come up at Duration/2
	DisconnectsPerMin float64       // random stop-and-restart of running boxes
	Skew              time.Duration // each box's clock is off by a uniform ±Skew
	ReportLoss        float64       // chance each report publish is lost
	Duration          time.Duration // 0: until ctx ends
	ResendAfter       time.Duration // box resend timeout (0: box default)
	StatusEvery       time.Duration // status line period (default 10 s)
	// ReadyLine prints "READY <n>" on a line of its own once every running
	// box is connected, for programs that drive the sim (the controller's
	// bench command).
	ReadyLine bool

	Out    io.Writer // progress, status and summary (default os.Stdout)
	Logger *slog.Logger
}

// SimResult is what a simulation ended with.
type SimResult struct {
	Boxes, Connected int
	ReportsMade      int64          // reports the boxes made (their seqs)
	ReportsPending   int64          // of them, still unacked
	Publishes, Lost  int64          // report batches published, and lost on the link
	Occurrences      map[string]int // occurrences handled, by outcome
	Broadcasts       map[string]int // broadcasts heard of, by status
	Played           int            // occurrences and broadcasts that began to sound
}

// ReportsAcked is how many reports the controller has acked.
func (r SimResult) ReportsAcked() int64 { return r.ReportsMade - r.ReportsPending }

// Simulate runs a fleet of simulated boxes against a real controller
// until Duration passes or ctx ends, printing progress, a status line every
// StatusEvery, and a summary at the end.
func Simulate(ctx context.Context, o SimOptions) (SimResult, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StatusEvery <= 0 {
		o.StatusEvery = 10 * time.Second
	}
	if o.Controller == "" || o.Dir == "" {
		return SimResult{}, errors.New("sim: controller and data directory are required")
	}
	if o.Tokens == nil && o.N <= 0 {
		return SimResult{}, errors.New("sim: -n must be at least 1")
	}
	// One keep-alive client for every box: a thousand boxes each with its
	// own idle pool would hold a thousand sockets to the controller.
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}}
	defer hc.CloseIdleConnections()
	c := &client.Client{URL: strings.TrimRight(o.Controller, "/"), Token: o.Token, HTTP: hc}
	start := time.Now()

	var villages []string
	tokens := map[string]string{}
	if o.Tokens != nil {
		for v, t := range o.Tokens {
			villages = append(villages, v)
			tokens[v] = t
		}
		sort.Strings(villages)
	} else {
		var err error
		if villages, err = pickVillages(ctx, c, o.First, o.N, o.Import, o.Out); err != nil {
			return SimResult{}, err
		}
		if err := enrollAll(ctx, c, o.Dir, villages, tokens, o.Out); err != nil {
			return SimResult{}, err
		}
	}

	offline := map[string]bool{}
	for _, i := range rand.Perm(len(villages))[:min(max(o.Offline, 0), len(villages))] {
		offline[villages[i]] = true
	}
	boxes := make([]Box, len(villages))
	for i, v := range villages {
		boxes[i] = Box{Village: v, EnrollToken: tokens[v], Stopped: offline[v]}
		if o.Skew > 0 {
			boxes[i].ClockSkew = time.Duration(rand.Int64N(int64(2*o.Skew)+1)) - o.Skew
		}
	}
	fmt.Fprintf(o.Out, "starting %d boxes (%d offline)\n", len(boxes), len(offline))
	var started atomic.Int64
	stopProgress := progress(o.Out, "started", &started, len(boxes)-len(offline), start)
	// The boxes outlive ctx (Ctrl-C) until the summary is taken; Close stops them.
	f, err := Start(context.WithoutCancel(ctx), Options{
		Controller: o.Controller, Broker: o.Broker, Dir: o.Dir, Boxes: boxes, Logger: o.Logger,
		ResendAfter: o.ResendAfter, ReportLoss: o.ReportLoss, HTTPClient: hc,
		Started: func(string) { started.Add(1) },
	})
	stopProgress()
	if err != nil {
		return SimResult{}, err
	}
	defer f.Close()

	// Connecting: progress every second until every running box is up.
	var end <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration - time.Since(start))
		defer t.Stop()
		end = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return f.summary(o.Out, start), nil
		case <-end:
			return f.summary(o.Out, start), nil
		case <-tick.C:
		}
		up, running := f.count()
		fmt.Fprintf(o.Out, "connected %d/%d (%s)\n", up, running, time.Since(start).Round(100*time.Millisecond))
		done = up == running
	}
	if o.ReadyLine {
		_, running := f.count()
		fmt.Fprintf(o.Out, "READY %d\n", running)
	}

	var wakeOffline <-chan time.Time
	if len(offline) > 0 && o.Duration > 0 {
		t := time.NewTimer(max(o.Duration/2-time.Since(start), 0))
		defer t.Stop()
		wakeOffline = t.C
	}
	var disconnect <-chan time.Time
	if o.DisconnectsPerMin > 0 {
		t := time.NewTicker(time.Duration(float64(time.Minute) / o.DisconnectsPerMin))
		defer t.Stop()
		disconnect = t.C
	}
	var restarts sync.WaitGroup
	defer restarts.Wait()
	over := make(chan struct{}) // closed before restarts.Wait
	defer close(over)
	status := time.NewTicker(o.StatusEvery)
	defer status.Stop()
	for {
		select {
		case <-ctx.Done():
			return f.summary(o.Out, start), nil
		case <-end:
			return f.summary(o.Out, start), nil
		case <-wakeOffline:
			for v := range offline {
				if err := f.StartBox(v); err != nil {
					fmt.Fprintf(o.Out, "start offline box %s: %v\n", v, err)
				}
			}
			fmt.Fprintf(o.Out, "the %d offline boxes are up\n", len(offline))
		case <-disconnect:
			v := villages[rand.IntN(len(villages))]
			if !f.Running(v) {
				continue
			}
			if err := f.StopBox(v); err != nil {
				fmt.Fprintf(o.Out, "stop box %s: %v\n", v, err)
			}
			restarts.Add(1)
			go func() {
				defer restarts.Done()
				t := time.NewTimer(time.Duration(1+rand.IntN(10)) * time.Second)
				defer t.Stop()
				select {
				case <-over:
					return
				case <-t.C:
				}
				if err := f.StartBox(v); err != nil {
					fmt.Fprintf(o.Out, "restart box %s: %v\n", v, err)
				}
			}()
		case <-status.C:
			r := f.result()
			fmt.Fprintf(o.Out, "%s: connected %d/%d, outbox backlog %d, played %d\n",
				time.Since(start).Round(time.Second), r.Connected, r.Boxes, r.ReportsPending, r.Played)
		}
	}
}

// count is how many boxes are connected, and how many running.
func (f *Fleet) count() (connected, running int) {
	for _, v := range f.order {
		if a := f.agent(v); a != nil {
			running++
			if a.Connected() {
				connected++
			}
		}
	}
	return connected, running
}

func (f *Fleet) result() SimResult {
	r := SimResult{Boxes: len(f.order), Occurrences: map[string]int{}, Broadcasts: map[string]int{}}
	r.Connected, _ = f.count()
	r.Publishes, r.Lost = f.Publishes()
	for _, v := range f.order {
		if made, pending, err := f.Reports(v); err == nil {
			r.ReportsMade += made
			r.ReportsPending += int64(pending)
		}
		occ, _ := f.Occurrences(v)
		for _, oc := range occ {
			r.Occurrences[oc.Outcome]++
			if oc.Outcome == api.EventStarted {
				r.Played++
			}
		}
		bs, _ := f.Broadcasts(v)
		for _, b := range bs {
			r.Broadcasts[b.Status]++
			if b.Plays > 0 {
				r.Played++
			}
		}
	}
	return r
}

func (f *Fleet) summary(w io.Writer, start time.Time) SimResult {
	r := f.result()
	fmt.Fprintf(w, "summary after %s: boxes %d, connected %d\n", time.Since(start).Round(time.Second), r.Boxes, r.Connected)
	fmt.Fprintf(w, "  reports: made %d, acked %d, pending %d; batches published %d, lost on the link %d\n",
		r.ReportsMade, r.ReportsAcked(), r.ReportsPending, r.Publishes, r.Lost)
	fmt.Fprintf(w, "  occurrences: %s\n", counts(r.Occurrences))
	fmt.Fprintf(w, "  broadcasts: %s\n", counts(r.Broadcasts))
	return r
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// simCounty is the county of the villages `agent sim --import` makes up.
const simCounty = "990100"

// SimVillagesCSV is the villages CSV for n synthetic villages: 12-digit
// codes in county 990100, ten to a township.
func SimVillagesCSV(n int) (csv []byte, codes []string) { return simVillagesCSV(0, n) }

// simVillagesCSV is SimVillagesCSV for the synthetic villages first to
// first+n-1.
func simVillagesCSV(first, n int) (csv []byte, codes []string) {
	var b bytes.Buffer
	b.WriteString("code,name,township,lat,lon,device\n")
	for i := first; i < first+n; i++ {
		t, v := i/10, i%10
		code := fmt.Sprintf("%s%03d%03d", simCounty, t+1, v+1)
		if t >= 999 { // past 999 townships, widen into the village digits
			code = fmt.Sprintf("%s%03d%03d", simCounty, t%999+1, 10*(t/999)+v+1)
		}
		codes = append(codes, code)
		fmt.Fprintf(&b, "%s,Sim village %d,Sim township %d,%.4f,%.4f,agent\n",
			code, i+1, t%999+1, 30+float64(i%1000)/1000, 110+float64(i/1000)/100)
	}
	return b.Bytes(), codes
}

// pickVillages imports n synthetic villages (from the first-th) if asked,
// then returns the first n agent villages the controller lists after
// skipping first of them (the imported ones if imported).
func pickVillages(ctx context.Context, c *client.Client, first, n int, importThem bool, out io.Writer) ([]string, error) {
	var want map[string]bool
	if importThem {
		csv, codes := simVillagesCSV(first, n)
		if _, err := c.ImportVillages(ctx, csv); err != nil {
			return nil, fmt.Errorf("import villages: %w", err)
		}
		fmt.Fprintf(out, "imported %d villages\n", n)
		want = map[string]bool{}
		for _, v := range codes {
			want[v] = true
		}
	}
	list, err := c.Villages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list villages: %w", err)
	}
	var vs []string
	skip := first
	if want != nil {
		skip = 0 // want holds exactly the imported ones
	}
	for _, v := range list {
		if v.Device == "agent" && (want == nil || want[v.Code]) && len(vs) < n {
			if skip > 0 {
				skip--
				continue
			}
			vs = append(vs, v.Code)
		}
	}
	if len(vs) < n {
		return nil, fmt.Errorf("the controller lists %d agent villages after skipping --first %d; -n is %d (use --import to make them)", len(vs), first, n)
	}
	return vs, nil
}

// enrollConcurrency bounds simultaneous requests for enrollment tokens.
const enrollConcurrency = 32

// enrollAll asks the controller for an enrollment token for every village
// whose data directory holds no identity yet.
func enrollAll(ctx context.Context, c *client.Client, dir string, villages []string, tokens map[string]string, out io.Writer) error {
	var need []string
	for _, v := range villages {
		if _, err := identity.Load(filepath.Join(dir, v)); err != nil {
			need = append(need, v)
		}
	}
	if len(need) == 0 {
		return nil
	}
	var mu sync.Mutex
	var done atomic.Int64
	var firstErr error
	stop := progress(out, "enrollment tokens", &done, len(need), time.Now())
	sem := make(chan struct{}, enrollConcurrency)
	var wg sync.WaitGroup
	for _, v := range need {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok, err := c.Enroll(ctx, v)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("enroll %s: %w", v, err)
				}
				return
			}
			tokens[v] = tok.Token
			done.Add(1)
		}()
	}
	wg.Wait()
	stop()
	return firstErr
}

// progress prints "what n/total (elapsed)" every second, and once more
// when the returned stop is called.
func progress(out io.Writer, what string, n *atomic.Int64, total int, since time.Time) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fmt.Fprintf(out, "%s %d/%d (%s)\n", what, n.Load(), total, time.Since(since).Round(100*time.Millisecond))
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
		fmt.Fprintf(out, "%s %d/%d (%s)\n", what, n.Load(), total, time.Since(since).Round(100*time.Millisecond))
	}
}
