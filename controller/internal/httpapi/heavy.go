package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"
)

// The heavy read routes (coverage reports) run in a pool of their own, so
// that however many of them are asked for at once, creating, approving
// and cancelling an emergency (and the database connections they need)
// are never queued behind them.
const (
	// maxHeavy is how many heavy computations run at once.
	maxHeavy = 2
	// heavyWait is how long a request waits for a place in the pool
	// before it is answered 503 with Retry-After.
	heavyWait = 10 * time.Second
	// heavyRetryAfter is the Retry-After of that answer, in seconds.
	heavyRetryAfter = 5
	// heavyTimeout bounds one computation, which goes on when the
	// request that started it leaves (others may be waiting for it).
	heavyTimeout = time.Minute
	// reportCacheTTL bounds how long a computed report is served while
	// the data is unchanged: a report also changes with time alone (an
	// occurrence's window for reports closes, a broadcast expires).
	reportCacheTTL = 5 * time.Second
	// reportCacheSize bounds the cached reports (ranges × townships).
	reportCacheSize = 64
)

// errBusy is the answer when the heavy pool stays full.
var errBusy = &httpError{status: http.StatusServiceUnavailable, code: "unavailable", reason: api.ReasonBusy,
	msg: "too many reports are being computed; try again in a few seconds"}

// heavyPool is the bounded pool of the heavy read routes.
type heavyPool struct {
	slots chan struct{}
	wait  time.Duration // heavyWait; tests shorten it
}

func newHeavyPool() heavyPool {
	return heavyPool{slots: make(chan struct{}, maxHeavy), wait: heavyWait}
}

// acquire takes a place, waiting at most p.wait; release gives it back.
func (p heavyPool) acquire(ctx context.Context) error {
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p heavyPool) release() { <-p.slots }

// heavy runs a route in the heavy pool.
func (s *Server) heavy(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.pool.acquire(c.Request.Context()); err != nil {
			s.failBusy(c, err)
			return
		}
		defer s.pool.release()
		h(c)
	}
}

// failBusy answers a request that found no place in the heavy pool.
func (s *Server) failBusy(c *gin.Context, err error) {
	switch {
	case errors.Is(err, errBusy):
		c.Header("Retry-After", strconv.Itoa(heavyRetryAfter))
	case c.Request.Context().Err() != nil && errors.Is(err, c.Request.Context().Err()):
		// The client left while waiting: not a server fault.
		c.AbortWithStatus(http.StatusServiceUnavailable)
		return
	}
	s.fail(c, err)
}

// reportKey names a coverage report: its range and township.
type reportKey struct {
	from, to, town string
}

// cachedReport is a computed coverage report with the store version it
// was computed at.
type cachedReport struct {
	version uint64
	at      time.Time
	report  api.CoverageReport
	body    []byte // report as JSON
}

// reportCache keeps computed coverage reports while the data they were
// computed from is unchanged (Store.Version) and for at most
// reportCacheTTL; requests for a report being computed wait for that
// computation rather than start their own.
type reportCache struct {
	mu     sync.Mutex
	m      map[reportKey]*cachedReport
	flight singleflight.Group
}

// get returns the cached report for k if it is still current.
func (rc *reportCache) get(k reportKey, version uint64, now time.Time) *cachedReport {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e := rc.m[k]; e != nil && e.version == version && now.Sub(e.at) < reportCacheTTL && !now.Before(e.at) {
		return e
	}
	return nil
}

func (rc *reportCache) put(k reportKey, e *cachedReport) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.m == nil || len(rc.m) >= reportCacheSize {
		rc.m = map[reportKey]*cachedReport{}
	}
	rc.m[k] = e
}

// coverageReport returns the report of k, from the cache or computed in
// the heavy pool. The version is read before the computation's reads, so
// a change committed during it makes the next request compute again.
func (s *Server) coverageReport(ctx context.Context, k reportKey, compute func(ctx context.Context, now time.Time) (api.CoverageReport, error)) (*cachedReport, error) {
	version := s.store.Version()
	if e := s.reportsCache.get(k, version, s.now()); e != nil {
		return e, nil
	}
	flightKey := k.from + "\x00" + k.to + "\x00" + k.town + "\x00" + strconv.FormatUint(version, 10)
	ch := s.reportsCache.flight.DoChan(flightKey, func() (any, error) {
		// Others may wait for this computation: it does not end with
		// the request that started it.
		ctx := context.WithoutCancel(ctx)
		if err := s.pool.acquire(ctx); err != nil {
			return nil, err
		}
		defer s.pool.release()
		cctx, cancel := context.WithTimeout(ctx, heavyTimeout)
		defer cancel()
		now := s.now()
		r, err := compute(cctx, now)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		e := &cachedReport{version: version, at: now, report: r, body: body}
		s.reportsCache.put(k, e)
		return e, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*cachedReport), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
