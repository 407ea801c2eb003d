package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/cunxiang/cunxiang/controller/internal/audit"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/users"
)

// Password guessing is slowed where it comes from, never for an account as
// a whole: every failed login spends a token from the bucket of its (source
// address, username) pair and from the bucket of its source address, and an
// empty bucket refuses further attempts from that source (429 with
// Retry-After) until it refills. A person who mistypes a few times never
// notices; a guesser gets five tries a minute per account per address, and
// thirty in all from one address (a township office may sit behind one NAT
// address). A stranger who fails logins as every approver slows down only
// their own address: the approvers log in at once from theirs. IPv6 sources
// count by /64, the block one host can pick addresses from.
const (
	userBurst = 5
	userEvery = time.Minute
	addrBurst = 30
	addrEvery = 5 * time.Second
	// Buckets that have refilled are forgotten once there are this many.
	throttleKeep = 10000
)

// throttleKey is a bucket: a source and the username tried from it, or the
// source as a whole (user "").
type throttleKey struct{ addr, user string }

type throttleBucket struct {
	lim      *rate.Limiter
	failures int       // failed attempts since the bucket was last full
	last     time.Time // the latest of them
}

type loginThrottle struct {
	mu      sync.Mutex
	buckets map[throttleKey]*throttleBucket
}

// sourceOf is the source a client address counts as: the address itself,
// or its /64 for IPv6.
func sourceOf(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

func normUser(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// userKey is the username part of a pair's key: never "" (that is the
// source's own bucket) and bounded, whatever a stranger sends.
func userKey(user string) string {
	u := normUser(user)
	switch {
	case u == "":
		return "(empty)"
	case len([]rune(u)) > 64 || !utf8.ValidString(u):
		return "(a long or malformed username)"
	}
	return u
}

func (t *loginThrottle) keys(user, addr string) [2]throttleKey {
	src := sourceOf(addr)
	return [2]throttleKey{{src, userKey(user)}, {src, ""}}
}

// retryAfter is how long an empty bucket refuses; 0 when it has a token.
func retryAfter(l *rate.Limiter, now time.Time) time.Duration {
	tok := l.TokensAt(now)
	if tok >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tok) / float64(l.Limit()) * float64(time.Second)))
}

// wait is how long logins as user from addr are refused; 0 lets it try.
func (t *loginThrottle) wait(now time.Time, user, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d time.Duration
	for _, k := range t.keys(user, addr) {
		if b := t.buckets[k]; b != nil {
			d = max(d, retryAfter(b.lim, now))
		}
	}
	return d
}

// failed spends a token of each bucket of the attempt.
func (t *loginThrottle) failed(now time.Time, user, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buckets == nil {
		t.buckets = map[throttleKey]*throttleBucket{}
	}
	if len(t.buckets) >= throttleKeep {
		t.forgetRefilled(now)
	}
	for _, k := range t.keys(user, addr) {
		b := t.buckets[k]
		if b == nil {
			every, burst := userEvery, userBurst
			if k.user == "" {
				every, burst = addrEvery, addrBurst
			}
			b = &throttleBucket{lim: rate.NewLimiter(rate.Every(every), burst)}
			t.buckets[k] = b
		}
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			b.failures = 0
		}
		b.lim.AllowN(now, 1)
		b.failures++
		b.last = now
	}
}

func (t *loginThrottle) forgetRefilled(now time.Time) {
	for k, b := range t.buckets {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(t.buckets, k)
		}
	}
}

// list is every bucket that has not refilled, those refusing first.
func (t *loginThrottle) list(now time.Time) []api.LoginThrottle {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetRefilled(now)
	out := make([]api.LoginThrottle, 0, len(t.buckets))
	for k, b := range t.buckets {
		out = append(out, api.LoginThrottle{Addr: k.addr, User: k.user, Failures: b.failures, LastFailureAt: b.last.UTC(),
			RetryAfterS: int(math.Ceil(retryAfter(b.lim, now).Seconds()))})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.RetryAfterS > 0) != (b.RetryAfterS > 0) {
			return a.RetryAfterS > 0
		}
		if a.Addr != b.Addr {
			return a.Addr < b.Addr
		}
		return a.User < b.User
	})
	return out
}

// clear forgets the buckets of addr (any, if "") and user (any, if "";
// with a user, the address's own bucket stays), and says how many.
func (t *loginThrottle) clear(addr, user string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if addr != "" {
		addr = sourceOf(addr)
	}
	if user != "" {
		user = userKey(user)
	}
	n := 0
	for k := range t.buckets {
		if (addr == "" || k.addr == addr) && (user == "" || k.user == user) {
			delete(t.buckets, k)
			n++
		}
	}
	return n
}

// throttled answers 429 and returns true when logins as user from this
// client are refused for now.
func (s *Server) throttled(c *gin.Context, user string) bool {
	d := s.throttle.wait(s.now(), user, c.ClientIP())
	if d <= 0 {
		return false
	}
	secs := int(math.Ceil(d.Seconds()))
	c.Header("Retry-After", fmt.Sprint(secs))
	s.log.Warn("login refused: too many failed attempts", "user", users.AuditName(user), "remote", c.ClientIP(), "retry_after_s", secs)
	s.fail(c, &httpError{status: http.StatusTooManyRequests, code: "too_many_requests", reason: api.ReasonLoginThrottled, params: cx.Params("seconds", secs),
		msg: fmt.Sprintf("too many wrong passwords from this address; wait %d seconds and try again, or ask an administrator to clear the login limit or reset the password", secs)})
	return true
}

// getLoginThrottles lists the sources whose failed logins are being
// counted, and whether each is refused for now.
func (s *Server) getLoginThrottles(c *gin.Context) {
	c.JSON(http.StatusOK, api.LoginThrottles{Throttles: s.throttle.list(s.now())})
}

// deleteLoginThrottles lets logins through again: those of ?addr= and/or
// ?user=, or every one.
func (s *Server) deleteLoginThrottles(c *gin.Context) {
	addr, user := strings.TrimSpace(c.Query("addr")), strings.TrimSpace(c.Query("user"))
	if addr != "" {
		if _, err := netip.ParseAddr(addr); err != nil {
			if _, perr := netip.ParsePrefix(addr); perr != nil {
				s.fail(c, cx.Invalid("addr", fmt.Sprintf("%q is not an IP address (or an IPv6 /64 as listed)", addr)).With(api.ReasonAddrInvalid, "value", addr))
				return
			}
		}
	}
	n := s.throttle.clear(addr, user)
	p := audit.Params{"all": audit.Flag(addr == "" && user == ""), "cleared": audit.Int(n)}
	if user != "" {
		p["user"] = users.AuditName(user)
	}
	if addr != "" {
		p["source"] = sourceOf(addr)
	}
	noteAudit(c, audit.LoginThrottleClear, "login-throttles", p)
	c.JSON(http.StatusOK, api.ThrottlesCleared{Cleared: n})
}
